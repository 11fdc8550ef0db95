//! Interop with the real Yjs: `tests/yjs/interop.mjs` (Node.js, the `yjs` npm
//! package pinned in `package-lock.json`) edits documents, sends them to this
//! service over HTTP, applies the answers back in Yjs and compares texts.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Installs the pinned `yjs` once (`npm ci`), unless it is there.
fn install_yjs(dir: &Path) {
    if dir.join("node_modules/yjs/package.json").exists() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .expect("npm runs (Node.js 18+ and npm are needed for this test)");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

#[test]
fn yjs_documents_round_trip_through_the_service() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/yjs");
    install_yjs(&dir);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(async move { axum::serve(listener, crdt_service::router(256, None)).await });
    let mut child = Command::new("node")
        .arg("interop.mjs")
        .arg(&url)
        .current_dir(&dir)
        .spawn()
        .expect("node runs");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("interop.mjs took over 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "interop.mjs failed: {status}");
}
