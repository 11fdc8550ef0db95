//! What the WebAssembly tests share: the Spin components, built once per test binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The directory holding the Spin components' `.wasm` files, built for
/// `wasm32-wasip2` in release (in a target directory of their own: the outer
/// `cargo test` holds its own) the first time it is asked for.
#[allow(dead_code)] // not every test binary builds the components
pub fn spin_components() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("spin-components");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(root().join("spin/Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the Spin components failed");
        target.join("wasm32-wasip2/release")
    })
}
