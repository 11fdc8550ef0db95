//! What the dashboard's browser test and benchmark share: Chromium and the
//! pinned playwright-core installed, an embedded host with its agent network at
//! hand, and a script of this directory run to its end.
#![allow(dead_code)] // the test and the benchmark each use part of this

use ramanujan::config::ServeArgs;
use ramanujan_network::InProcessNetwork;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Chromium and the pinned playwright-core, installed once (`npm ci`).
pub fn install_browser() -> PathBuf {
    static ONCE: Mutex<()> = Mutex::new(());
    let _one = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    let chromium = ramanujan_network::tools::chromium().unwrap();
    let dir = browser_dir();
    if !dir.join("node_modules/playwright-core/package.json").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm runs (Node.js 18+ and npm are needed for this test)");
        assert!(status.success(), "npm ci failed in {}", dir.display());
    }
    chromium
}

pub fn artifacts() -> PathBuf {
    let dir = std::env::var_os("RAMANUJAN_ARTIFACTS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(|t| PathBuf::from(t).join("artifacts")))
        .unwrap_or_else(|| std::env::temp_dir().join("ramanujan-artifacts"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct Host {
    pub base: String,
    pub network: Arc<InProcessNetwork>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub runtime: tokio::runtime::Runtime,
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.network.shutdown();
    }
}

/// The embedded host, as `ramanujan up --in-memory` serves it, keeping the
/// agent network at hand (to stop one of its agents).
pub fn start(health_timeout_ms: u64, refresh_ms: u64) -> Host {
    start_with(health_timeout_ms, refresh_ms, |_| {})
}

/// [`start`] with its settings changed by `configure` first (API keys, say).
pub fn start_with(health_timeout_ms: u64, refresh_ms: u64, configure: impl FnOnce(&mut ServeArgs)) -> Host {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut args = ServeArgs::default();
    args.network.in_memory = true;
    args.network.sync_interval = 500;
    args.network.health_timeout = health_timeout_ms;
    args.metrics_refresh_ms = refresh_ms;
    configure(&mut args);
    let timeline = ramanujan::open_timeline(&args).unwrap();
    let network = ramanujan::start_network(&args, Some(timeline.emitter())).unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let served = network.clone();
    runtime.spawn(async move {
        let watcher = tokio::spawn(ramanujan::lifecycle::watch(
            served.clone(),
            timeline.emitter(),
            ramanujan_agent::network::heartbeat_interval(args.network.health_timeout()),
        ));
        let skills = ramanujan::skills::open(&args, timeline.emitter()).unwrap();
        let rules = ramanujan::tdx::open(&args).unwrap();
        let guards = ramanujan::guard::Guards::from_args(&args).unwrap();
        let app = ramanujan::app(&args, guards, served, timeline, skills, rules, closing);
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
                let _ = closing_tx.send(true);
            })
            .await;
        watcher.abort();
    });
    Host {
        base,
        network,
        stop: Some(stop),
        runtime,
    }
}

/// Runs the `script` of this directory with `args`, calling `on_line` with each
/// line it prints; fails unless it ends well within `limit`. Answers what it printed.
pub fn run_script(script: &str, args: &[&str], limit: Duration, mut on_line: impl FnMut(&str)) -> Vec<String> {
    let chromium = install_browser();
    let mut child = Command::new("node")
        .arg(script)
        .args(args)
        .env("CHROMIUM", chromium)
        .current_dir(browser_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + limit;
    let mut printed = Vec::new();
    loop {
        while let Ok(line) = lines.try_recv() {
            on_line(&line);
            printed.push(line);
        }
        if let Some(status) = child.try_wait().unwrap() {
            while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
                printed.push(line);
            }
            let errors = errors.join().unwrap_or_default();
            assert!(
                status.success(),
                "the browser script failed ({status}); it printed: {printed:?}\n{errors}"
            );
            return printed;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the browser script did not finish within {limit:?}; it printed: {printed:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
