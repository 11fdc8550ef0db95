//! The dashboard in real headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` pinned in `tests/browser/package-lock.json`), against a live
//! host on loopback: `tests/browser/dashboard.mjs` does the clicking, this file
//! starts the host, installs what the browser needs, and stops an agent when
//! the script is ready for it.
//!
//! The screenshot goes to `$RAMANUJAN_ARTIFACTS` (default: `artifacts/` in the
//! cargo target directory, else in the temporary directory).

#[path = "browser/harness.rs"]
mod harness;

use harness::{artifacts, run_script, start, start_with};
use std::time::Duration;

#[test]
fn the_page_follows_a_submission_until_every_agent_holds_it_settled() {
    let host = start(15_000, 1_000);
    let screenshot = artifacts().join("dashboard.png");
    let printed = run_script(
        "dashboard.mjs",
        &["submit", &host.base, screenshot.to_str().unwrap()],
        Duration::from_secs(180),
        |_| {},
    );
    assert_eq!(printed.last().map(String::as_str), Some("ok"), "{printed:?}");
    assert!(screenshot.exists(), "the screenshot is saved");
    eprintln!("screenshot: {}", screenshot.display());
    drop(host);
}

#[test]
fn an_agent_that_stops_is_shown_suspect_then_dead() {
    // Suspect after 1 s without a beat, dead after 2 s; the page reads every 100 ms.
    let host = start(1_000, 100);
    let network = host.network.clone();
    let mut halted = false;
    let printed = run_script(
        "dashboard.mjs",
        &["lifecycle", &host.base, "agent-4"],
        Duration::from_secs(180),
        |line| {
            if line == "ready" && !halted {
                network.halt_agent("agent-4").unwrap();
                halted = true;
            }
        },
    );
    assert!(halted, "the script said when it was ready");
    assert_eq!(printed.last().map(String::as_str), Some("ok"), "{printed:?}");
    let _runtime = &host.runtime;
}

#[test]
fn under_api_keys_the_page_asks_for_a_key_and_sends_it_with_every_request() {
    const READ: &str = "read-key-for-the-dashboard-0123";
    const WRITE: &str = "write-key-for-the-dashboard-4567";
    let host = start_with(15_000, 500, |args| {
        args.api_keys = Some(format!("read:{READ},write:{WRITE}"));
    });
    let printed = run_script(
        "dashboard.mjs",
        &["keys", &host.base, READ, WRITE],
        Duration::from_secs(180),
        |_| {},
    );
    assert_eq!(printed.last().map(String::as_str), Some("ok"), "{printed:?}");
    drop(host);
}
