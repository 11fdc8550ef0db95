//! `POST /skills/analyze` over HTTP against the embedded host (`ramanujan up
//! --in-memory`, served in this process on a loopback port): 10,000 labelled
//! references of dimension 2,048 loaded through `POST /skills/examples`, then
//! `concurrency` clients posting analyses back to back for `seconds`, client
//! and server sharing the machine's cores (as `wrk` does in the cache-hit
//! bench). The peer, same run and same clients: `GET /skills/health`, the
//! cheapest route of the same server. Issue #19's goal: p99 ≤ 20 ms and at
//! least 500 requests/s on 2 cores.
//!
//! Run: `cargo bench -p ramanujan --bench skills_analyze -- [refs=10000] [seconds=10] [concurrency=8]`

use ramanujan::config::ServeArgs;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DIM: usize = 2048;
const SKILLS: usize = 20;

/// Request `i`.
type MakeRequest = Arc<dyn Fn(usize) -> reqwest::RequestBuilder + Send + Sync>;
/// Whether the answer to request `i` is right.
type Check = Arc<dyn Fn(usize, &Value) -> bool + Send + Sync>;

fn arg(name: &str, default: usize) -> usize {
    std::env::args()
        .find_map(|a| a.strip_prefix(&format!("{name}=")).and_then(|v| v.parse().ok()))
        .unwrap_or(default)
}

/// A labelled point near one of the skills' centres.
fn sample(rng: &mut ChaCha8Rng, centres: &[Vec<f32>], i: usize) -> (String, Vec<f32>) {
    let c = &centres[i % SKILLS];
    let v = c.iter().map(|x| x + 0.6 * rng.random_range(-1.0f32..1.0)).collect();
    (format!("skill-{}", i % SKILLS), v)
}

struct Run {
    requests: usize,
    failures: usize,
    wrong: usize,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `concurrency` clients sending `request(i)` back to back for `seconds`.
async fn load(concurrency: usize, seconds: u64, request: MakeRequest, expect: Check) -> Run {
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut clients = Vec::new();
    for c in 0..concurrency {
        let (request, expect) = (request.clone(), expect.clone());
        clients.push(tokio::spawn(async move {
            let (mut times, mut failures, mut wrong, mut i) = (Vec::new(), 0, 0, c);
            while Instant::now() < until {
                let sent = Instant::now();
                match request(i).send().await {
                    Ok(r) if r.status().is_success() => {
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        times.push(sent.elapsed());
                        if !expect(i, &body) {
                            wrong += 1;
                        }
                    }
                    _ => failures += 1,
                }
                i += concurrency;
            }
            (times, failures, wrong)
        }));
    }
    let (mut times, mut failures, mut wrong) = (Vec::new(), 0, 0);
    for client in clients {
        let (t, f, w) = client.await.expect("a client panicked");
        times.extend(t);
        failures += f;
        wrong += w;
    }
    let elapsed = started.elapsed().as_secs_f64();
    times.sort();
    let at = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    Run {
        requests: times.len(),
        failures,
        wrong,
        per_second: times.len() as f64 / elapsed,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    }
}

fn main() {
    let refs = arg("refs", 10_000);
    let seconds = arg("seconds", 10) as u64;
    let concurrency = arg("concurrency", 8);
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async move {
        let mut args = ServeArgs::default();
        args.network.in_memory = true;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("its address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(ramanujan::serve_on(listener, args, async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::new();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let centres: Vec<Vec<f32>> = (0..SKILLS)
            .map(|_| (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect())
            .collect();
        let loaded = Instant::now();
        for first in (0..refs).step_by(50) {
            let examples: Vec<Value> = (first..(first + 50).min(refs))
                .map(|i| {
                    let (label, embedding) = sample(&mut rng, &centres, i);
                    json!({"label": label, "embedding": embedding})
                })
                .collect();
            let r = client
                .post(format!("{base}/skills/examples"))
                .json(&json!({ "examples": examples }))
                .send()
                .await
                .expect("the host answers");
            assert!(
                r.status().is_success(),
                "loading: {}",
                r.text().await.unwrap_or_default()
            );
        }
        println!(
            "loaded {refs} references over HTTP in {:.1} s",
            loaded.elapsed().as_secs_f64()
        );

        // 200 distinct queries (their JSON made once), cycled.
        let queries: Arc<Vec<(String, String)>> = Arc::new(
            (0..200)
                .map(|i| {
                    let (label, embedding) = sample(&mut rng, &centres, i);
                    let body = json!({"image_id": format!("q{i}"), "embedding": embedding}).to_string();
                    (label, body)
                })
                .collect(),
        );
        let (c, b, q) = (client.clone(), base.clone(), queries.clone());
        let analyze: MakeRequest = Arc::new(move |i| {
            c.post(format!("{b}/skills/analyze"))
                .header("content-type", "application/json")
                .body(q[i % q.len()].1.clone())
        });
        let q = queries.clone();
        let right_label: Check = Arc::new(move |i, body| body["label"].as_str() == Some(q[i % q.len()].0.as_str()));
        let (c, b) = (client.clone(), base.clone());
        let health: MakeRequest = Arc::new(move |_| c.get(format!("{b}/skills/health")));
        let anything: Check = Arc::new(|_, _| true);

        // Warm up, then measure each route.
        load(concurrency, 1, analyze.clone(), right_label.clone()).await;
        let ours = load(concurrency, seconds, analyze, right_label).await;
        let peer = load(concurrency, seconds, health, anything).await;
        for (name, run) in [("POST /skills/analyze", &ours), ("GET /skills/health (peer)", &peer)] {
            println!(
                "{name}: {} requests, {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} failed, {} wrong label",
                run.requests, run.per_second, run.p50_ms, run.p99_ms, run.failures, run.wrong
            );
        }
        println!(
            "analyze serves at {:.3}x the peer's rate ({refs} references, {concurrency} clients, {seconds} s each)",
            ours.per_second / peer.per_second
        );
        let stats: Value = client
            .get(format!("{base}/skills/stats"))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats JSON");
        println!("/skills/stats: {stats}");
        let _ = stop.send(());
        let _ = server.await;
    });
}
