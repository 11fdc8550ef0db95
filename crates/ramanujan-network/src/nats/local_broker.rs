//! A `nats-server` on a free loopback port, for tests, benchmarks and local
//! trials: JetStream on, its store in a directory you give, `max_payload` 8 MiB.
//! Killed when dropped. [`LocalBroker::cluster`] starts several, clustered.

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
        Self::start_on(dir, free_port()?, extra)
    }

    /// `size` servers forming one NATS cluster on loopback (server `i` keeps
    /// its store under `dir/n{i}`), each routed to all the others; answers
    /// once each listens (JetStream answers a little later, once they have
    /// elected a leader). Their URLs joined with commas ([`cluster_url`]) are
    /// what a process connects to.
    pub fn cluster(dir: &Path, size: usize) -> Result<Vec<LocalBroker>, String> {
        let routes: Vec<u16> = (0..size).map(|_| free_port()).collect::<Result<_, _>>()?;
        let routes_conf = routes
            .iter()
            .map(|port| format!("nats-route://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(", ");
        (0..size)
            .map(|i| {
                let own = dir.join(format!("n{i}"));
                std::fs::create_dir_all(&own).map_err(|e| e.to_string())?;
                let extra = format!(
                    "server_name: n{i}\nlog_file: \"{}\"\ncluster {{ name: ramanujan, listen: 127.0.0.1:{}, routes: [{routes_conf}] }}",
                    own.join("nats.log").display(),
                    routes[i]
                );
                Self::start_on(&own, free_port()?, &extra)
            })
            .collect()
    }

    fn start_on(dir: &Path, port: u16, extra: &str) -> Result<LocalBroker, String> {
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

/// The URL of every server of a cluster, comma-separated, as `--nats` takes it.
pub fn cluster_url(servers: &[LocalBroker]) -> String {
    servers.iter().map(LocalBroker::url).collect::<Vec<_>>().join(",")
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        self.kill();
    }
}
