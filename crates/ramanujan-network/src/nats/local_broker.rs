//! A `nats-server` on a free loopback port, for tests, benchmarks and local
//! trials: JetStream on, its store in a directory you give, `max_payload` 8 MiB.
//! Killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A local broker process.
pub struct LocalBroker {
    port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl LocalBroker {
    /// Starts `nats-server` (the pinned one on `PATH`, or else fetched: see
    /// [`crate::tools`]) with its JetStream store under `dir`.
    pub fn start(dir: &Path) -> Result<LocalBroker, String> {
        Self::start_configured(dir, "")
    }

    /// [`LocalBroker::start`] with more configuration (`authorization { token: "..." }`, say).
    pub fn start_configured(dir: &Path, extra: &str) -> Result<LocalBroker, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let conf = dir.join("nats.conf");
        let store = dir.join("jetstream");
        let text = format!(
            "listen: 127.0.0.1:{port}\nmax_payload: 8MB\njetstream {{ store_dir: \"{}\" }}\n{extra}\n",
            store.display()
        );
        std::fs::write(&conf, text).map_err(|e| e.to_string())?;
        let mut broker = LocalBroker {
            port,
            conf,
            child: None,
        };
        broker.restart()?;
        Ok(broker)
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port and store (after [`LocalBroker::kill`]).
    pub fn restart(&mut self) -> Result<(), String> {
        let program = crate::tools::program(&crate::tools::NATS_SERVER)?;
        let child = Command::new(program)
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting nats-server: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err("nats-server did not start listening in 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// SIGKILL: the broker gets no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        self.kill();
    }
}
