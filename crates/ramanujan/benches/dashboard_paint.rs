//! The dashboard's first paint on loopback, in Debian's headless Chromium:
//! each of 20 loads in a fresh browser context (nothing cached) against the
//! embedded host with 9 agents, timed by the browser's own performance entries.
//! Issue #18's goal: first paint within 1 s.
//!
//! Run: `cargo bench -p ramanujan --bench dashboard_paint`

#[path = "../tests/browser/harness.rs"]
mod harness;

use std::time::Duration;

const LOADS: usize = 20;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once, short.
    let loads = if std::env::args().any(|a| a == "--bench") {
        LOADS
    } else {
        2
    };
    let host = harness::start(15_000, 1_000);
    let printed = harness::run_script(
        "first_paint.mjs",
        &[&host.base, &loads.to_string()],
        Duration::from_secs(300),
        |_| {},
    );
    let loads: Vec<serde_json::Value> = printed
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    assert!(!loads.is_empty(), "the script timed no load: {printed:?}");
    println!(
        "{} loads of /dashboard, fresh context each (ms from navigation start):",
        loads.len()
    );
    for field in ["response_end", "first_contentful_paint", "network_drawn", "load"] {
        let mut ms: Vec<f64> = loads.iter().map(|l| l[field].as_f64().unwrap_or(f64::NAN)).collect();
        ms.sort_by(f64::total_cmp);
        let rank = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        println!(
            "  {field:<24} p50 {:>7.1}  p95 {:>7.1}  max {:>7.1}",
            rank(0.5),
            rank(0.95),
            ms[ms.len() - 1]
        );
    }
    println!("  transferred: {} bytes", loads[0]["transferred_bytes"]);
}
