//! schemathesis (from PyPI, pinned with hashes in `tests/schemathesis/`)
//! against a live host with API keys on, from its own `/openapi.json`: every
//! check on every operation (settings and their reasons in
//! `tests/schemathesis/schemathesis.toml`), bounded and seeded. No 5xx, no
//! answer that breaks the schema, no undeclared status, 405 with `Allow` for
//! undeclared methods, 401 without a key, and bodies the schema calls valid
//! accepted.

mod common;

use common::{root, spawn_printing_url_env};
use std::process::Command;

const WRITE_KEY: &str = "w-contract-key-0123456789abcdef";
const READ_KEY: &str = "r-contract-key-0123456789abcdef";

#[test]
fn schemathesis_finds_nothing_against_the_live_contract() {
    let dir = root().join("crates/ramanujan/tests/schemathesis");
    let requirements = std::fs::read_to_string(dir.join("requirements.txt")).unwrap();
    let site = ramanujan_network::tools::python_tool("schemathesis", &requirements)
        .expect("schemathesis installs from PyPI (pinned, hashed)");
    let keys = format!("write:{WRITE_KEY},read:{READ_KEY}");
    let (_host, base) = spawn_printing_url_env(
        &["up", "--port", "0", "--in-memory", "--log-level", "error"],
        &[("API_KEYS", keys.as_str())],
    );
    let scratch = tempfile::tempdir().unwrap();
    let report = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-junit.xml");
    // Bounded in time as a whole too (coreutils' `timeout`): a hang fails, it does not stall CI.
    let output = Command::new("timeout")
        .args(["600", "python3"])
        .arg(site.join("bin/schemathesis"))
        .arg("--no-color")
        .arg("--config-file")
        .arg(dir.join("schemathesis.toml"))
        .args(["run", &format!("{base}/openapi.json"), "--url", &base])
        .args(["-H", &format!("Authorization: Bearer {WRITE_KEY}")])
        // Bounded and repeatable: 20 cases per operation and phase, one seed.
        .args(["--max-examples", "20", "--seed", "2026", "--workers", "2"])
        .args(["--request-timeout", "30", "--generation-database", "none"])
        // No links between operations, so no stateful phase; the metrics
        // stream never ends (tests/metrics.rs reads it).
        .args([
            "--phases",
            "examples,coverage,fuzzing",
            "--exclude-path",
            "/api/metrics/stream",
        ])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(&report)
        .env("PYTHONPATH", &site)
        .current_dir(scratch.path())
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems (exit {:?}):\n{text}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    // It did test: every operation but the stream, with the generated cases it says.
    let summary = text.lines().find(|l| l.contains("Tested:")).unwrap_or_default();
    let tested: usize = summary.trim().trim_start_matches("Tested:").trim().parse().unwrap_or(0);
    assert!(tested >= 70, "operations tested: {summary:?}\n{text}");
    eprintln!(
        "{}",
        text.lines()
            .rev()
            .take(12)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
