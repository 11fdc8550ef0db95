//! The `ramanujan` binary: `up` (the system, embedded or over NATS), `agent` (one agent per
//! process on NATS), `bridge` (NATS to agents running as Spin components).

use clap::Parser;
use ramanujan::config::{Cli, Command, DEFAULT_LOG_FILTER, LogArgs, ServeArgs};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: agents' rewriting steps allocate and free
/// whole e-graphs on several threads, and glibc's per-thread arenas kept about
/// four times the live heap resident (measured: 1.2 GB live, 4.7 GB RSS).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_tracing(log: &LogArgs) {
    let filter = EnvFilter::try_new(&log.log_level).unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if log.log_json {
        builder.json().init()
    } else {
        builder.init()
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or_else(|| Command::Up(ServeArgs::default())) {
        Command::Up(args) => {
            init_tracing(&args.log);
            ramanujan::serve(args, ramanujan::shutdown_signal())
                .await
                .map_err(|e| e.to_string())
        }
        Command::Agent(args) => {
            init_tracing(&args.log);
            ramanujan::run_agent(args, ramanujan::shutdown_signal()).await
        }
        Command::Bridge(args) => {
            init_tracing(&args.log);
            ramanujan::run_bridge(args, ramanujan::shutdown_signal()).await
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ramanujan: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
