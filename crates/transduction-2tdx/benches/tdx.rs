//! transduction-2tdx's figures (issue #20):
//!
//! - **mining**: [`mine_enumeration`] over `+ - * neg`, `a b c`, `0 1 -1` at
//!   each size up to `size=` (7), next to the same grammar's plain term count
//!   and the time to build and evaluate every plain term (the
//!   part of the work an enumeration without e-graph pruning does before it
//!   even looks for rules);
//! - **sync**: `POST /2tdx/sync` over loopback HTTP against a site holding
//!   `rules=` (1,000) rules, kept in redb as the host keeps them: a peer in
//!   sync (the answer is empty), a peer that holds nothing (the answer is
//!   every rule), a peer one new rule ahead (checked, merged, stored
//!   durably), next to an echo route on the same server taking and
//!   answering the same bytes (HTTP and copying only: the floor); the same
//!   in brief (`POST /2tdx/sync/brief`: a summary and what changed since the
//!   last sync); and once, a site taking the 1,000 rules it does not hold
//!   (each body's soundness checked).
//!
//! Run: `cargo bench -p transduction-2tdx --bench tdx` (`-- size=N rules=N requests=N`).

use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use ramanujan_core::color::Color;
use ramanujan_core::lang::Expr;
use ramanujan_core::rules::RuleSpec;
use ramanujan_http::offload::Inline;
use std::sync::Arc;
use std::time::{Duration, Instant};
use transduction_2tdx::book::{BookState, Changed};
use transduction_2tdx::brief::{BriefSync, Summary, changes_since};
use transduction_2tdx::enumerate::{Grammar, Leaves, Points, check, counts, layer};
use transduction_2tdx::mine::{MineOptions, check_rule, mine_enumeration};
use transduction_2tdx::rule::Rule;
use transduction_2tdx::store::{BookStore, RedbBook};
use transduction_2tdx::{TdxConfig, TdxService, router};

fn arg(name: &str, default: usize) -> usize {
    std::env::args()
        .find_map(|a| a.strip_prefix(&format!("{name}=")).and_then(|v| v.parse().ok()))
        .unwrap_or(default)
}

fn percentiles(mut times: Vec<Duration>) -> String {
    times.sort();
    let at = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    format!("p50 {:.3} ms, p99 {:.3} ms", at(0.5), at(0.99))
}

fn mining(max_size: usize) {
    println!("## mining: + - * neg over a b c and 0 1 -1");
    let grammar = Grammar::default();
    for size in 3..=max_size {
        let leaves = check(&grammar, size).unwrap();
        let plain: usize = counts(&leaves, size).iter().sum();
        let started = Instant::now();
        let evaluated = build_and_evaluate(&leaves, size);
        let plain_time = started.elapsed();
        assert_eq!(evaluated, plain);
        let options = MineOptions {
            max_size: size,
            ..MineOptions::default()
        };
        let mut runs = Vec::new();
        let mut last = None;
        for _ in 0..3 {
            let started = Instant::now();
            let mined = mine_enumeration(&grammar, &options, &[]).unwrap();
            runs.push(started.elapsed());
            last = Some(mined);
        }
        runs.sort();
        let mined = last.unwrap();
        println!(
            "size {size}: mined in {:.0} ms (median of 3; {:.0}–{:.0}), {} terms built upon of {plain} plain ({:.1} %), \
             {} candidates, {} rules, stop {}; plain terms built and evaluated in {:.0} ms",
            runs[1].as_secs_f64() * 1e3,
            runs[0].as_secs_f64() * 1e3,
            runs[2].as_secs_f64() * 1e3,
            mined.terms,
            100.0 * mined.terms as f64 / plain as f64,
            mined.candidates,
            mined.rules.len(),
            mined.stop_reason,
            plain_time.as_secs_f64() * 1e3,
        );
    }
}

/// Builds every term of the grammar up to `max_size` and evaluates each at
/// the miner's points (what `enumerate::enumerate` does, without its size
/// limit);
/// answers how many.
fn build_and_evaluate(leaves: &Leaves, max_size: usize) -> usize {
    let points = Points::new(&leaves.variables);
    let mut by_size: Vec<Vec<Expr>> = vec![Vec::new()];
    let mut evaluated = 0;
    for size in 1..=max_size {
        let smaller: Vec<Vec<&Expr>> = by_size.iter().map(|l| l.iter().collect()).collect();
        let terms = layer(leaves, &smaller, size);
        for term in &terms {
            std::hint::black_box(points.values(term));
            evaluated += 1;
        }
        by_size.push(terms);
    }
    evaluated
}

/// `n` distinct sound rules: `(+ ?a k) => (+ k ?a)`, checked as the routes check them.
fn rules(n: usize) -> Vec<Rule> {
    rules_from(0, n)
}

/// The rules for `k` in `first..first + n`.
fn rules_from(first: usize, n: usize) -> Vec<Rule> {
    (first..first + n)
        .map(|k| {
            let spec = RuleSpec {
                name: format!("comm-{k}"),
                lhs: format!("(+ ?a {k})"),
                rhs: format!("(+ {k} ?a)"),
                color: Color::Red,
                bidirectional: false,
                nonzero: Vec::new(),
                integer: Vec::new(),
            };
            check_rule(&spec, "bench").unwrap()
        })
        .collect()
}

fn site(name: &str, dir: &std::path::Path) -> Arc<TdxService> {
    let config = TdxConfig {
        site: name.into(),
        ..TdxConfig::default()
    };
    let store = RedbBook::in_dir(&dir.join(name)).unwrap();
    Arc::new(
        TdxService::new(config, Arc::new(Inline))
            .with_store(Arc::new(store))
            .unwrap(),
    )
}

async fn timed_posts(client: &reqwest::Client, url: &str, body: &Bytes, requests: usize) -> (Vec<Duration>, usize) {
    let mut times = Vec::with_capacity(requests);
    let mut answer_bytes = 0;
    for _ in 0..requests {
        let started = Instant::now();
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        answer_bytes = response.bytes().await.unwrap().len();
        times.push(started.elapsed());
    }
    (times, answer_bytes)
}

async fn sync(n: usize, requests: usize) {
    println!("## /2tdx/sync over loopback HTTP, {n} rules, {requests} requests each");
    let dir = tempfile::tempdir().unwrap();
    let checked = Instant::now();
    let rules = rules(n);
    println!(
        "{n} rules checked (soundness) in {:.0} ms",
        checked.elapsed().as_secs_f64() * 1e3
    );
    let a = site("site-a", dir.path());
    a.add(rules).unwrap();
    let full = Bytes::from(serde_json::to_vec(&a.book()).unwrap());
    let empty = Bytes::from(serde_json::to_vec(&BookState::default()).unwrap());

    let app = router(a.clone(), None).merge(Router::new().route("/echo", post(|body: Bytes| async move { body })));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    let url = format!("{base}/2tdx/sync");
    // Warm up the connection and the caches.
    timed_posts(&client, &url, &full, 20).await;
    timed_posts(&client, &format!("{base}/echo"), &full, 20).await;

    let (in_sync, in_sync_bytes) = timed_posts(&client, &url, &full, requests).await;
    let (echo_full, _) = timed_posts(&client, &format!("{base}/echo"), &full, requests).await;
    let (cold, cold_bytes) = timed_posts(&client, &url, &empty, requests).await;
    let (echo_cold, _) = timed_posts(&client, &format!("{base}/echo"), &full, requests).await;
    println!(
        "peer in sync (sends {} bytes, answer {in_sync_bytes} bytes): {}; echo of the same bytes: {}",
        full.len(),
        percentiles(in_sync),
        percentiles(echo_full)
    );
    println!(
        "peer holding nothing (sends {} bytes, answer {cold_bytes} bytes): {}; echo of {} bytes: {}",
        empty.len(),
        percentiles(cold),
        full.len(),
        percentiles(echo_cold)
    );

    // Where a sync with a peer in step spends its time, step by step.
    let reps = 50;
    let step = |f: &mut dyn FnMut()| {
        let started = Instant::now();
        for _ in 0..reps {
            f();
        }
        started.elapsed().as_secs_f64() * 1e3 / reps as f64
    };
    let ours = a.book();
    let theirs: BookState = serde_json::from_slice(&full).unwrap();
    println!(
        "in step, by part (ms each): parse {:.3}, check {:.3}, clone {:.3}, merge {:.3}, compare {:.3}, answer {:.3}",
        step(&mut || drop(std::hint::black_box(
            serde_json::from_slice::<BookState>(&full).unwrap()
        ))),
        step(&mut || ours.check_incoming(&theirs).unwrap()),
        step(&mut || drop(std::hint::black_box(ours.clone()))),
        step(&mut || {
            let mut next = ours.clone();
            next.merge(theirs.clone());
            std::hint::black_box(next);
        }),
        step(&mut || assert!(std::hint::black_box(&ours) == &theirs)),
        step(&mut || drop(std::hint::black_box(ours.lacked_by(&theirs)))),
    );
    let store = RedbBook::in_dir(&dir.path().join("store-only")).unwrap();
    store.save(&ours, &Changed::default()).unwrap();
    let one = Changed::of_key(ours.rules.keys().next().unwrap(), true);
    println!(
        "storing a change of one rule and the membership durably (ms each): {:.3}, of which encoding the membership {:.3}",
        step(&mut || store.save(&ours, &one).unwrap()),
        step(&mut || drop(std::hint::black_box(serde_json::to_vec(&ours.members).unwrap()))),
    );

    // A peer one edit ahead: its state is this site's plus one rule this
    // site has not seen (checked, merged, stored durably, answered).
    let edits = requests.min(200);
    let extra: Vec<Rule> = rules_from(n, edits);
    let bodies: Vec<Bytes> = extra
        .into_iter()
        .map(|rule| {
            let mut state = a.book();
            state.add(rule, "site-b");
            Bytes::from(serde_json::to_vec(&state).unwrap())
        })
        .collect();
    let mut ahead = Vec::with_capacity(edits);
    for body in &bodies {
        let (times, _) = timed_posts(&client, &url, body, 1).await;
        ahead.extend(times);
    }
    println!(
        "peer one new rule ahead ({edits} requests, each a new rule): {}",
        percentiles(ahead)
    );

    // The same two cases in brief (`/2tdx/sync/brief`): a peer that synced
    // before sends what changed since, beside a summary of its book.
    let brief_url = format!("{base}/2tdx/sync/brief");
    let held = a.book().rules.len();
    let agreed = Summary::of(&a.book());
    let in_step = BriefSync {
        summary: agreed.clone(),
        changes: BookState::default(),
    };
    let in_step = Bytes::from(serde_json::to_vec(&in_step).unwrap());
    timed_posts(&client, &brief_url, &in_step, 20).await;
    let (brief_in_sync, brief_in_sync_bytes) = timed_posts(&client, &brief_url, &in_step, requests).await;
    println!(
        "in brief, {held} rules, peer in step (sends {} bytes, answer {brief_in_sync_bytes} bytes): {}",
        in_step.len(),
        percentiles(brief_in_sync)
    );
    let bodies: Vec<Bytes> = rules_from(2 * n, edits)
        .into_iter()
        .map(|rule| {
            let mut state = a.book();
            let base = Summary::of(&state);
            state.add(rule, "site-b");
            let summary = Summary::of(&state);
            let brief = BriefSync {
                changes: changes_since(&state, &summary, &base),
                summary,
            };
            Bytes::from(serde_json::to_vec(&brief).unwrap())
        })
        .collect();
    let mut ahead = Vec::with_capacity(edits);
    let mut sent = 0;
    for body in &bodies {
        sent = body.len();
        let (times, _) = timed_posts(&client, &brief_url, body, 1).await;
        ahead.extend(times);
    }
    println!(
        "in brief, {held} rules and more, peer one new rule ahead ({edits} requests, each a new rule, ~{sent} bytes sent): {}",
        percentiles(ahead)
    );

    // The same, in process (no HTTP, no JSON parse of the request): the
    // service's own part, and that part without the durable write.
    let in_process = |service: &TdxService, first: usize| {
        let states: Vec<BookState> = rules_from(first, 50)
            .into_iter()
            .map(|rule| {
                let mut state = service.book();
                state.add(rule, "site-b");
                state
            })
            .collect();
        let started = Instant::now();
        for state in states {
            service.serve_sync(state).unwrap();
        }
        started.elapsed().as_secs_f64() * 1e3 / 50.0
    };
    let memory = Arc::new(TdxService::new(TdxConfig::default(), Arc::new(Inline)));
    memory.add(rules_from(0, n)).unwrap();
    println!(
        "one new rule ahead, in process (ms each): {:.3} stored in redb, {:.3} in memory",
        in_process(&a, 3 * n),
        in_process(&memory, 3 * n),
    );

    // A site that holds none of them takes them all once: each body checked.
    let c = site("site-c", dir.path());
    let started = Instant::now();
    c.serve_sync(a.book()).unwrap();
    println!(
        "a site taking {n} rules it does not hold (each checked, stored): {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(c.stats().digest, a.stats().digest);
    server.abort();
}

fn main() {
    let size = arg("size", 7);
    let n = arg("rules", 1_000);
    let requests = arg("requests", 500);
    mining(size);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(sync(n, requests));
}
