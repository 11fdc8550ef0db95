//! `/timeline/query` and `/timeline/stats` over 1,000,000 events, through the
//! router (query string parsed, DuckDB queried, JSON answered): p50 and p99
//! of each, with the events of a 9-agent network's shape (nine sources, ten
//! types, 20,000 submissions, one event every 100 µs).
//!
//! `cargo bench -p interaction-timeline --bench query`

use axum::body::Body;
use axum::http::Request;
use interaction_timeline::{Timeline, router};
use ramanujan_events::event::{LifecycleState, Verdict};
use ramanujan_events::{Event, EventDot, Kind};
use std::time::{Duration, Instant};
use tower::ServiceExt;

const EVENTS: usize = 1_000_000;
const START_US: i64 = 1_764_806_400_000_000;

fn event(i: usize) -> Event {
    let source = format!("agent-{}", i % 9);
    let peer = format!("agent-{}", (i + 1) % 9);
    let kind = match i % 10 {
        0..=2 => Kind::MessageSent {
            to: peer,
            route: if i.is_multiple_of(7) { "sync_request" } else { "event" }.into(),
            facts: 12,
            bytes: None,
        },
        3..=5 => Kind::MessageReceived {
            from: peer,
            route: "event".into(),
            facts: 12,
            bytes: None,
        },
        6 => Kind::Merge {
            facts_new: (i % 40) as u64,
        },
        7 => Kind::RewriteStep {
            color: ["red", "blue", "green"][i % 3].into(),
            iterations: 2,
            facts: 31,
            stop: "saturated".into(),
            duration_us: (i % 5_000) as u64,
        },
        8 => Kind::Verification {
            verdict: Verdict::Verified,
            equality: "(+ a b) = (+ b a)".into(),
        },
        _ => match i % 1_000 {
            9 => Kind::Lifecycle {
                state: LifecycleState::Start,
            },
            _ => Kind::Submission {
                expression: "(* (+ a b) (+ a b))".into(),
            },
        },
    };
    Event {
        at_us: START_US + 100 * i as i64,
        source: source.clone(),
        submission: Some(format!("{:032x}", i / 50)),
        dot: matches!(kind, Kind::RewriteStep { .. } | Kind::Submission { .. }).then(|| EventDot {
            agent: source,
            counter: i as u64,
        }),
        seen: Default::default(),
        event: kind,
    }
}

fn percentiles(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort_unstable();
    let at = |p: f64| times[((p * times.len() as f64).ceil() as usize).max(1) - 1];
    (at(0.5), at(0.99))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let timeline = Timeline::open(None).unwrap();
    let started = Instant::now();
    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(10_000) {
        let events: Vec<Event> = chunk.iter().map(|&i| event(i)).collect();
        timeline.append_now(&events).unwrap();
    }
    println!("{EVENTS} events written in {:.2?}", started.elapsed());
    let app = router(timeline);
    let window = (START_US + 50_000_000, START_US + 51_000_000); // 1 s of 100 s: 10,000 events
    let cases = [
        (
            "query agent=agent-3&type=rewrite_step&limit=100",
            "/timeline/query?agent=agent-3&type=rewrite_step&limit=100".to_string(),
            300,
        ),
        (
            "query submission=<one of 20,000> (50 events)",
            format!("/timeline/query?submission={:032x}", 12_345),
            300,
        ),
        (
            "query one second of 100 (limit 1,000)",
            format!("/timeline/query?since={}&until={}", window.0, window.1),
            300,
        ),
        (
            "query order=causal, same second",
            format!("/timeline/query?since={}&until={}&order=causal", window.0, window.1),
            300,
        ),
        ("stats, all 1,000,000", "/timeline/stats".to_string(), 30),
        (
            "stats, one second",
            format!("/timeline/stats?since={}&until={}", window.0, window.1),
            300,
        ),
    ];
    for (name, path, runs) in cases {
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let request = Request::get(&path).body(Body::empty()).unwrap();
            let t = Instant::now();
            let response = runtime.block_on(app.clone().oneshot(request)).unwrap();
            let status = response.status();
            let _ = runtime
                .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
                .unwrap();
            times.push(t.elapsed());
            assert_eq!(status, 200, "{path}");
        }
        let (p50, p99) = percentiles(times);
        println!("{name:<52} n={runs:<4} p50 {:>9.2?}  p99 {:>9.2?}", p50, p99);
    }
}
