//! Fetches DuckDB's official prebuilt `libduckdb.so`, as the npm registry
//! ships it in `@duckdb/node-bindings-linux-x64`, checks the package's SHA-256,
//! and puts the library where the linker and `cargo run` / `cargo test` find it:
//! `duckdb/<version>/` in the cargo target directory, named as a link search
//! path (cargo adds search paths inside the target directory to the loader's
//! path when it runs a program). Once per target directory; nothing to do with
//! the `bundled-duckdb` feature, which builds DuckDB from source instead.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The npm package and version shipping DuckDB 1.5.6's library (keep in step
/// with the `duckdb` crate's version, 1.10506.x).
const PACKAGE: &str = "@duckdb/node-bindings-linux-x64@1.5.6-r.1";
/// SHA-256 of that package's tarball.
const TARBALL_SHA256: &str = "1b9f82478539bb9a1d1df44bd103121a12ae52142c07158dc52b97d2ec1d69ff";
const LIBRARY: &str = "libduckdb.so";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_BUNDLED_DUCKDB").is_some() {
        return;
    }
    let target = std::env::var("TARGET").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu" {
        panic!(
            "ramanujan-duckdb: no prebuilt DuckDB is pinned for {target}; \
             build DuckDB from source with `--features ramanujan-duckdb/bundled-duckdb`"
        );
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dir = cache_dir(&out_dir);
    if !dir.join(LIBRARY).is_file()
        && let Err(e) = fetch(&dir)
    {
        panic!(
            "ramanujan-duckdb: fetching DuckDB's library ({PACKAGE}) failed: {e}\n\
             (it needs npm and the npm registry; or build DuckDB from source with \
             `--features ramanujan-duckdb/bundled-duckdb`)"
        );
    }
    println!("cargo:rustc-link-search=native={}", dir.display());
    // This crate's own tests and examples find it without cargo, too.
    println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{}", dir.display());
    // Dependents that build programs meant to run outside cargo add this rpath.
    println!("cargo:lib_dir={}", dir.display());
}

/// `duckdb/<package version>` in the profile directory (`target/debug`,
/// `target/release`: `OUT_DIR` is `<profile>/build/<crate>-<hash>/out`), or in
/// `OUT_DIR` if it is laid out otherwise. cargo puts library paths inside the
/// profile directory on the library path of the tests and benches it runs,
/// and only those: the tests of every crate that links DuckDB find it there.
fn cache_dir(out_dir: &Path) -> PathBuf {
    let version = PACKAGE.rsplit('@').next().expect("a version");
    let build = out_dir.parent().and_then(Path::parent);
    let profile = build
        .filter(|b| b.file_name() == Some("build".as_ref()))
        .and_then(Path::parent);
    profile.unwrap_or(out_dir).join("duckdb").join(version)
}

/// Downloads the package with `npm pack`, checks its checksum, and extracts the
/// library into `dir` (staged, then renamed: a concurrent build loses the
/// rename and uses the winner's).
fn fetch(dir: &Path) -> Result<(), String> {
    let parent = dir.parent().expect("the cache has a parent");
    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    let staging = parent.join(format!(".staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| e.to_string())?;
    let fetched = fetch_into(&staging, dir);
    let _ = std::fs::remove_dir_all(&staging);
    fetched
}

fn fetch_into(staging: &Path, dir: &Path) -> Result<(), String> {
    let status = Command::new("npm")
        .args(["pack", "--silent", PACKAGE, "--pack-destination"])
        .arg(staging)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("running npm: {e}"))?;
    if !status.success() {
        return Err("`npm pack` failed".into());
    }
    let tarball = std::fs::read_dir(staging)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .ok_or("npm pack wrote no tarball")?;
    let bytes = std::fs::read(&tarball).map_err(|e| e.to_string())?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    if sha256 != TARBALL_SHA256 {
        return Err(format!(
            "the tarball's SHA-256 is {sha256}, not the pinned {TARBALL_SHA256}"
        ));
    }
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(staging)
        .arg(format!("package/{LIBRARY}"))
        .status()
        .map_err(|e| format!("running tar: {e}"))?;
    if !status.success() {
        return Err(format!("the tarball holds no package/{LIBRARY}"));
    }
    let library_dir = staging.join("package");
    if std::fs::rename(&library_dir, dir).is_err() && !dir.join(LIBRARY).is_file() {
        return Err(format!("could not move the library to {}", dir.display()));
    }
    Ok(())
}
