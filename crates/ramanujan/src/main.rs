use clap::Parser;
use ramanujan::config::{Cli, Command, ServeArgs};
use tracing_subscriber::EnvFilter;

fn init_tracing(args: &ServeArgs) {
    let filter = EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_json {
        builder.json().init()
    } else {
        builder.init()
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Up(args)) => args,
        None => ServeArgs::default(),
    };
    init_tracing(&args);
    match ramanujan::serve(args, ramanujan::shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ramanujan: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
