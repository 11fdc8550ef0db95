//! What an open dashboard costs the network: envelopes per second through nine
//! agents on NATS JetStream (5,000 submissions put straight into their inboxes,
//! rewriting off, the clock stopped when all nine hold the same digest), served
//! by a distributed host (`ramanujan up --nats`, with its timeline consuming the
//! agents' events) with and without a reader of its dashboard, alternating.
//! Issue #18's goal: at most 5% slower with the dashboard connected.
//!
//! Readers: `client` reads what the page reads, as the page does (the metrics
//! stream, and each refresh `/timeline/stats` and `/timeline/query`) without
//! drawing it: the host's cost. `chromium` opens the page itself in Debian's
//! headless Chromium, whose rendering shares this machine's two cores.
//!
//! Run: `cargo bench -p ramanujan --bench dashboard_cost -- [rounds=3] [reader=client|chromium|both]`
//!
//! With `measure=update` it measures instead the server's time to build one
//! update over NATS, for 9 agents and for 48 (the expander): issue #18's goal
//! is at most 5 ms for 48.

#[path = "../tests/browser/harness.rs"]
mod harness;

use ramanujan::config::ServeArgs;
use ramanujan_network::agent_id;
use ramanujan_network::nats::{AgentConfig, LocalBroker, run_nats_agent};
use ramanujan_wire::wire::{self, Inbound};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SUBMISSIONS: usize = 5_000;
const AGENTS: usize = 9;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Reader {
    None,
    Client,
    Chromium,
}

fn random_expr(rng: &mut impl Rng, depth: u32) -> String {
    if depth == 0 || rng.random_bool(0.3) {
        return if rng.random_bool(0.5) {
            format!("x{}", rng.random_range(0..1_000_000))
        } else {
            rng.random_range(0..100).to_string()
        };
    }
    let op = ["+", "*", "-"][rng.random_range(0..3)];
    format!("({op} {} {})", random_expr(rng, depth - 1), random_expr(rng, depth - 1))
}

async fn get(http: &reqwest::Client, url: String) -> Value {
    match http.get(url).send().await {
        Ok(response) => response.json().await.unwrap_or_default(),
        Err(_) => Value::Null,
    }
}

/// What the page asks the host while it is open, without drawing it: the
/// metrics stream, and at each update the timeline's last minute and its
/// newest events.
async fn read_like_the_page(base: String) {
    let http = reqwest::Client::new();
    let Ok(mut stream) = http.get(format!("{base}/api/metrics/stream")).send().await else {
        return;
    };
    let mut text = String::new();
    let mut last_event_us = 0i64;
    while let Ok(Some(chunk)) = stream.chunk().await {
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let update: Value = serde_json::from_str(data).unwrap_or_default();
            let now = update["now_us"].as_i64().unwrap_or(0);
            let _ = get(
                &http,
                format!("{base}/timeline/stats?since={}&until={now}", now - 60_000_000),
            )
            .await;
            let since = (last_event_us + 1).max(now - 120_000_000);
            let events = get(&http, format!("{base}/timeline/query?since={since}&limit=500")).await;
            for e in events["events"].as_array().into_iter().flatten() {
                last_event_us = last_event_us.max(e["at_us"].as_i64().unwrap_or(0));
            }
        }
    }
}

/// A fresh broker, `agents` agents on it (rewriting off) and a distributed
/// host over them, every agent alive.
struct Running {
    _dir: tempfile::TempDir,
    broker: LocalBroker,
    base: String,
    http: reqwest::Client,
    stop: tokio::sync::watch::Sender<bool>,
    host: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(agents: usize) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::start(dir.path()).unwrap();
    let mut args = ServeArgs {
        nats: Some(broker.url()),
        ..ServeArgs::default()
    };
    args.network.in_memory = true;
    if agents != 9 {
        args.network.topology = "ramanujan".into();
        args.network.num_agents = agents;
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    for index in 0..agents {
        let mut stopped = stopped.clone();
        let config = AgentConfig {
            nats_url: broker.url(),
            index,
            topology: args.network.topology_kind(),
            seed: args.network.seed,
            sync_interval: Duration::from_secs(5),
            heartbeat_interval: Duration::from_millis(200),
            data_dir: None,
            batch: 256,
            work: ramanujan_agent::agent::WorkLimits {
                goal_iterations: 0,
                ..Default::default()
            },
            node_id: "bench".into(),
            events: true,
        };
        tokio::spawn(async move {
            let _ = run_nats_agent(config, async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await;
        });
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut host_stopped = stopped.clone();
    let host = tokio::spawn(ramanujan::serve_on(listener, args, async move {
        let _ = host_stopped.wait_for(|s| *s).await;
    }));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = get(&http, format!("{base}/agents/status")).await;
        let up = status["agents"].as_array().cloned().unwrap_or_default();
        if up.len() == agents && up.iter().all(|a| a["status"] == "alive") {
            break;
        }
        assert!(Instant::now() < deadline, "agents never came up: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Running {
        _dir: dir,
        broker,
        base,
        http,
        stop,
        host,
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(30), self.host).await;
    }
}

/// The server's time to build one dashboard update over NATS: `agents` agents,
/// 20 submissions through the host followed until settled, then 50
/// `GET /api/metrics` one after another (each asks every agent for its state
/// over the broker). Prints the round trip on loopback and the host's own
/// latency for the route.
async fn update_time(agents: usize) {
    let net = start(agents).await;
    let (base, http) = (&net.base, &net.http);
    for i in 0..20 {
        let expression = format!("(+ (* a{i} b) (* a{i} c))");
        let accepted = http
            .post(format!("{base}/agents/submit"))
            .json(&serde_json::json!({ "expression": expression }))
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status().as_u16(), 202);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while get(http, format!("{base}/api/metrics")).await["convergence"]["settled"] != 20 {
        assert!(Instant::now() < deadline, "the submissions never settled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut round_trips = Vec::new();
    let mut last = Value::Null;
    for _ in 0..50 {
        let started = Instant::now();
        last = get(http, format!("{base}/api/metrics")).await;
        round_trips.push(started.elapsed().as_secs_f64() * 1e3);
        assert_eq!(last["network"]["agents"].as_array().map(Vec::len), Some(agents));
    }
    round_trips.sort_by(f64::total_cmp);
    let at = |q: f64| round_trips[((q * round_trips.len() as f64).ceil() as usize).max(1) - 1];
    let route = last["performance"]["routes"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["route"] == "/api/metrics").cloned())
        .unwrap_or_default();
    println!(
        "{agents} agents over NATS: GET /api/metrics round trip p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms; \
         the host's own latency for the route over {} requests: p50 {} ms, p99 {} ms",
        at(0.5),
        at(0.95),
        at(1.0),
        route["requests"],
        route["p50_ms"],
        route["p99_ms"]
    );
    net.stop().await;
}

/// One run: a fresh broker, nine agents and a host, the reader if any, then
/// the flood. Envelopes per second.
async fn run(reader: Reader) -> f64 {
    let net = start(AGENTS).await;
    let (base, http) = (net.base.clone(), net.http.clone());
    let mut browser = None;
    let mut client = None;
    match reader {
        Reader::None => {}
        Reader::Client => client = Some(tokio::spawn(read_like_the_page(base.clone()))),
        Reader::Chromium => {
            let chromium = harness::install_browser();
            let mut child = Command::new("node")
                .args(["dashboard.mjs", "hold", &base])
                .env("CHROMIUM", chromium)
                .current_dir(harness::browser_dir())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("node runs");
            let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            tokio::task::block_in_place(|| std::io::BufRead::read_line(&mut out, &mut line)).unwrap();
            assert_eq!(line.trim(), "ready", "the page opened");
            browser = Some(child);
        }
    }

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let exprs: Vec<String> = (0..SUBMISSIONS).map(|_| random_expr(&mut rng, 3)).collect();
    let nats = async_nats::connect(net.broker.url()).await.unwrap();
    let js = async_nats::jetstream::new(nats);
    let started = Instant::now();
    let mut window = Vec::new();
    for (n, expression) in exprs.into_iter().enumerate() {
        let inbound = Inbound::Submit {
            request: format!("load-{n}"),
            expression,
        };
        let payload = wire::encode_inbound(&inbound).unwrap();
        window.push(
            js.publish(wire::sync_subject(n % AGENTS), payload.into())
                .await
                .unwrap(),
        );
        if window.len() == 256 {
            for ack in window.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in window.drain(..) {
        ack.await.unwrap();
    }
    loop {
        let status = get(&http, format!("{base}/agents/status")).await;
        if status["distinct_digests"] == 1 && status["agents"][0]["facts"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "never converged: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let mut received = 0;
    for i in 0..AGENTS {
        let state = get(&http, format!("{base}/agent/{}/state", agent_id(i))).await;
        received += state["counters"]["messages_received"].as_u64().unwrap_or(0);
    }
    if let Some(mut child) = browser {
        drop(child.stdin.take());
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some(client) = client {
        client.abort();
    }
    net.stop().await;
    let rate = received as f64 / took.as_secs_f64();
    println!(
        "  {:<10} {received} envelopes in {:.2} s = {rate:>8.0} envelopes/s",
        format!("{reader:?}").to_lowercase(),
        took.as_secs_f64()
    );
    rate
}

fn arg(name: &str) -> Option<String> {
    std::env::args().find_map(|a| a.strip_prefix(&format!("{name}=")).map(str::to_string))
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches`: nothing to check quickly
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if arg("measure").as_deref() == Some("update") {
        for agents in [9, 48] {
            runtime.block_on(update_time(agents));
        }
        return;
    }
    let rounds: usize = arg("rounds").map_or(3, |n| n.parse().expect("rounds=N"));
    let readers = match arg("reader").as_deref() {
        Some("client") => vec![Reader::Client],
        Some("chromium") => vec![Reader::Chromium],
        _ => vec![Reader::Client, Reader::Chromium],
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    for reader in readers {
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            without.push(runtime.block_on(run(Reader::None)));
            with.push(runtime.block_on(run(reader)));
        }
        println!(
            "reader {reader:?}: envelopes/s with it {:.0}, without {:.0} (means of {rounds}): {:.3}x",
            mean(&with),
            mean(&without),
            mean(&with) / mean(&without)
        );
    }
}
