//! What the integration tests share: the Spin components (built once per test
//! binary), and child processes of the `ramanujan` binary.
#![allow(dead_code)] // each test binary uses part of this

pub mod contract;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The directory holding the Spin components' `.wasm` files, built for
/// `wasm32-wasip2` in release (in a target directory of their own: the outer
/// `cargo test` holds its own) the first time it is asked for.
pub fn spin_components() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        ramanujan_network::tools::ensure_rust_target("wasm32-wasip2").unwrap();
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

/// A child process, killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// SIGKILL: no chance to clean up.
    pub fn kill9(self) {
        drop(self);
    }
}

/// Starts `ramanujan {args}` (its stderr discarded) and answers it with the
/// first `http://` word it prints on stdout.
pub fn spawn_printing_url(args: &[&str]) -> (Proc, String) {
    spawn_printing_url_env(args, &[])
}

/// [`spawn_printing_url`] with these environment variables set.
pub fn spawn_printing_url_env(args: &[&str], envs: &[(&str, &str)]) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ramanujan"))
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("`ramanujan {}` printed where it is: {line:?}", args[0]))
        .to_string();
    (Proc(child), url)
}

/// Options every process of a test network shares: quick anti-entropy and
/// health checks, small replicas, quiet logs.
pub const NETWORK_FLAGS: [&str; 8] = [
    "--sync-interval",
    "300",
    "--health-timeout",
    "1000",
    // Each submission's rewriting stays small, so debug-built agents keep up.
    "--goal-nodes",
    "50",
    "--log-level",
    "warn",
];

/// Starts `ramanujan agent` at position `index` on the broker at `url`, keeping its replica in `data`.
pub fn spawn_agent(index: usize, url: &str, data: &Path) -> Proc {
    spawn_agent_with(index, url, data, &NETWORK_FLAGS)
}

/// [`spawn_agent`] with other options than [`NETWORK_FLAGS`].
pub fn spawn_agent_with(index: usize, url: &str, data: &Path, flags: &[&str]) -> Proc {
    spawn_agent_env(index, url, data, flags, &[])
}

/// [`spawn_agent_with`] with these environment variables set.
pub fn spawn_agent_env(index: usize, url: &str, data: &Path, flags: &[&str], envs: &[(&str, &str)]) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_ramanujan"))
        .args(["agent", "--id", &index.to_string(), "--nats", url, "--data-dir"])
        .arg(data)
        .args(flags)
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Proc(child)
}

/// A random expression of depth at most `depth` over `vars` and the integers
/// below `constants`, with `+`, `*` and `-`.
pub fn random_expr(rng: &mut impl rand::Rng, depth: u32, vars: &[&str], constants: u32) -> String {
    if depth == 0 || rng.random_bool(0.3) {
        return if rng.random_bool(0.6) {
            vars[rng.random_range(0..vars.len())].to_string()
        } else {
            rng.random_range(0..constants).to_string()
        };
    }
    let op = ["+", "*", "-"][rng.random_range(0..3)];
    format!(
        "({op} {} {})",
        random_expr(rng, depth - 1, vars, constants),
        random_expr(rng, depth - 1, vars, constants)
    )
}

/// A host's HTTP API as the tests call it.
pub struct Host {
    /// Its base URL.
    pub base: String,
    /// The client, with a timeout per request.
    pub http: reqwest::blocking::Client,
}

impl Host {
    /// The host at `base`, each request bounded by `timeout`.
    pub fn new(base: String, timeout: std::time::Duration) -> Host {
        let http = reqwest::blocking::Client::builder().timeout(timeout).build().unwrap();
        Host { base, http }
    }

    /// `GET path`: the status and the JSON body (0 and null if it did not
    /// answer), checked against the API's description ([`contract`]).
    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        Self::answer("GET", path, self.http.get(format!("{}{path}", self.base)).send())
    }

    /// `POST path` with a JSON body: the status and the JSON answer (0 and
    /// null if it did not answer), checked against the API's description.
    pub fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        Self::answer(
            "POST",
            path,
            self.http.post(format!("{}{path}", self.base)).json(&body).send(),
        )
    }

    fn answer(
        method: &str,
        path: &str,
        sent: reqwest::Result<reqwest::blocking::Response>,
    ) -> (u16, serde_json::Value) {
        let Ok(r) = sent else {
            return (0, serde_json::Value::Null);
        };
        let status = r.status().as_u16();
        let json = r
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
        let Ok(body) = r.json::<serde_json::Value>() else {
            return (status, serde_json::Value::Null);
        };
        if json {
            contract::conforms(method, path, status, &body);
        }
        (status, body)
    }

    /// Submits; the network's answer if it acknowledged the submission.
    pub fn submit_answer(&self, expression: &str) -> Option<serde_json::Value> {
        let (code, answer) = self.post("/agents/submit", serde_json::json!({ "expression": expression }));
        (code == 202 && !answer.is_null()).then_some(answer)
    }

    /// Submits; the submission id if the network acknowledged it.
    pub fn submit(&self, expression: &str) -> Option<String> {
        self.submit_answer(expression)?["id"].as_str().map(str::to_string)
    }

    /// `GET /agents/status`.
    pub fn status(&self) -> serde_json::Value {
        self.get("/agents/status").1
    }
}

/// Checks that every replica holds every acknowledged submission and that all
/// are identical (`agents` of them); answers their digest.
pub fn every_replica_holds(host: &Host, agents: usize, acknowledged: &std::collections::BTreeSet<String>) -> String {
    use std::collections::HashSet;
    let mut digests = HashSet::new();
    for i in 0..agents {
        let (code, replica) = host.get(&format!("/agent/agent-{i}/egraph"));
        assert_eq!(code, 200, "{replica}");
        let replica: ramanujan_core::ReplicaState = serde_json::from_value(replica["state"].clone()).unwrap();
        digests.insert(replica.digest());
        let held: HashSet<String> = replica.terms().map(|(k, _)| k.to_string()).collect();
        let missing: Vec<&String> = acknowledged.iter().filter(|id| !held.contains(*id)).collect();
        assert!(
            missing.is_empty(),
            "agent-{i} lacks acknowledged submissions {missing:?}"
        );
    }
    assert_eq!(digests.len(), 1, "all replicas are identical");
    digests.into_iter().next().unwrap()
}
