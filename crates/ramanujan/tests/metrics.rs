//! `/metrics` and `/api/metrics` of a live host over loopback TCP, the
//! Prometheus text read back by Prometheus's own Python client (its parser of
//! the text format, pinned from PyPI) and checked by `promtool check metrics`
//! (Debian's `prometheus` package).

use ramanujan::config::ServeArgs;
use ramanujan_network::tools::{PROMETHEUS_CLIENT, promtool, python_library};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

struct Host {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start() -> Host {
    start_with(ServeArgs::default()).await
}

async fn start_with(mut args: ServeArgs) -> Host {
    args.network.in_memory = true;
    args.network.sync_interval = 100;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(ramanujan::serve_on(listener, args, async {
        let _ = stopped.await;
    }));
    Host { base, stop, task }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, String) {
    let mut request = client().request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Submits `expr`; answers the host's acceptance.
async fn submit(host: &Host, expr: &str) -> Value {
    let (status, body) = call(
        reqwest::Method::POST,
        format!("{}/agents/submit", host.base),
        Some(json!({"expression": expr})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Submits `expr` and waits (bounded) until it is settled.
async fn settle(host: &Host, expr: &str) {
    let follow = submit(host, expr).await["follow"].as_str().unwrap().to_string();
    let started = Instant::now();
    loop {
        let (_, body) = call(reqwest::Method::GET, format!("{}{follow}", host.base), None).await;
        if serde_json::from_str::<Value>(&body).unwrap()["settled"] == true {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{expr} not settled: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One sample as the parser read it: its name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// `/metrics`, checked for its content type and parsed by
/// `prometheus_client.parser` (which refuses what the format does not allow).
async fn scrape(host: &Host) -> Vec<Sample> {
    let response = client().get(format!("{}/metrics", host.base)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await.unwrap();
    let site = python_library(&PROMETHEUS_CLIENT).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.txt");
    std::fs::write(&path, &text).unwrap();
    let script = "import json, sys\n\
                  from prometheus_client.parser import text_string_to_metric_families\n\
                  families = list(text_string_to_metric_families(open(sys.argv[1]).read()))\n\
                  print(json.dumps([[s.name, s.labels, s.value] for f in families for s in f.samples]))\n";
    let out = std::process::Command::new("python3")
        .env("PYTHONPATH", site)
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "Prometheus's parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And Prometheus's own linter: `promtool check metrics` reads the text on
    // its standard input and fails on what Prometheus would refuse or warn about.
    let mut promtool = std::process::Command::new(promtool().unwrap())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool refused /metrics: {}{}\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let samples: Vec<(String, HashMap<String, String>, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    samples
        .into_iter()
        .map(|(name, labels, value)| Sample { name, labels, value })
        .collect()
}

/// The sum of the samples named `name` whose labels include `with`.
fn total(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && with
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// Requests are counted per route (the declared route, not the path; one
/// label for every unmatched path), agents by lifecycle, messages, steps and
/// memory are there, and the counters move with the work; `/api/metrics`
/// reports the same routes with percentiles. A second host in the same
/// process counts only its own requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_each_route_and_move_with_the_work() {
    let host = start().await;
    settle(&host, "(+ (* a b) (* a c))").await;
    for path in ["/no/such/route", "/another/unknown/path"] {
        let (status, _) = call(reqwest::Method::GET, format!("{}{path}", host.base), None).await;
        assert_eq!(status, 404);
    }
    let (status, _) = call(
        reqwest::Method::POST,
        format!("{}/agents/submit", host.base),
        Some(json!({"expression": "(+ a"})),
    )
    .await;
    assert_eq!(status, 400);
    // The same saturation and the same merge twice: a miss, then a hit.
    for _ in 0..2 {
        let (status, body) = call(
            reqwest::Method::POST,
            format!("{}/egraph/saturate", host.base),
            Some(json!({"expression": "(+ x (* 0 y))"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let counters =
            json!({"crdt_type": "GCounter", "states": [{"inner": {"dots": {"a": 2}}}, {"inner": {"dots": {"b": 3}}}]});
        let (status, body) = call(
            reqwest::Method::POST,
            format!("{}/crdt/merge", host.base),
            Some(counters),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }

    let before = scrape(&host).await;
    for component in ["egraph-service", "crdt-service"] {
        let of = [("component", component)];
        assert_eq!(total(&before, "ramanujan_cache_hits_total", &of), 1.0, "{component}");
        assert_eq!(total(&before, "ramanujan_cache_misses_total", &of), 1.0, "{component}");
        assert_eq!(total(&before, "ramanujan_cache_entries", &of), 1.0, "{component}");
        assert!(total(&before, "ramanujan_cache_bytes", &of) > 0.0, "{component}");
    }
    let requests = "ramanujan_http_requests_total";
    let (route, method) = (("route", "/agents/submit"), ("method", "POST"));
    assert_eq!(total(&before, requests, &[route, method, ("status", "202")]), 1.0);
    assert_eq!(total(&before, requests, &[route, method, ("status", "400")]), 1.0);
    // The follow-up polls, under their declared route.
    assert!(total(&before, requests, &[("route", "/agents/submissions/{id}")]) >= 1.0);
    assert_eq!(
        total(&before, requests, &[("route", "unmatched"), ("status", "404")]),
        2.0
    );
    assert!(
        !before
            .iter()
            .any(|s| s.labels.get("route").is_some_and(|r| r.starts_with("/no/")))
    );
    let latency = "ramanujan_http_request_duration_seconds";
    assert_eq!(
        total(&before, &format!("{latency}_count"), &[("route", "/agents/submit")]),
        2.0
    );
    assert_eq!(
        total(
            &before,
            &format!("{latency}_bucket"),
            &[("route", "/agents/submit"), ("le", "+Inf")]
        ),
        2.0
    );
    assert_eq!(total(&before, "ramanujan_agents", &[("state", "alive")]), 9.0);
    assert_eq!(total(&before, "ramanujan_submissions", &[]), 1.0);
    assert!(total(&before, "process_resident_memory_bytes", &[]) > 1e6);
    let agents: std::collections::HashSet<&str> = before
        .iter()
        .filter(|s| s.name == "ramanujan_agent_facts")
        .map(|s| s.labels["agent"].as_str())
        .collect();
    assert_eq!(agents.len(), 9);
    let estimates: Vec<f64> = before
        .iter()
        .filter(|s| s.name == "ramanujan_agent_memory_bytes_estimate")
        .map(|s| s.value)
        .collect();
    assert_eq!(estimates.len(), 9);
    assert!(estimates.iter().all(|&b| b > 1_000.0), "{estimates:?}");
    let sent_before = total(&before, "ramanujan_agent_messages_sent_total", &[]);
    let steps_before = total(&before, "ramanujan_agent_rewrite_steps_total", &[]);
    assert!(sent_before > 0.0 && steps_before > 0.0);
    assert!(
        total(
            &before,
            "ramanujan_agent_verifications_total",
            &[("verdict", "verified")]
        ) > 0.0
    );

    settle(&host, "(* (+ x 1) (+ x 1))").await;
    let after = scrape(&host).await;
    assert_eq!(total(&after, requests, &[route, method, ("status", "202")]), 2.0);
    assert!(total(&after, "ramanujan_agent_messages_sent_total", &[]) > sent_before);
    // Messages per agent and kind: the submission's facts travelled as events,
    // the 100 ms anti-entropy as requests and replies; every kind is a label
    // of every agent (zero where none went).
    let sent = "ramanujan_agent_messages_sent_total";
    let events_sent = total(&after, sent, &[("kind", "event")]);
    let events_received = total(&after, "ramanujan_agent_messages_received_total", &[("kind", "event")]);
    assert!(events_sent > total(&before, sent, &[("kind", "event")]));
    assert!(events_received > 0.0 && events_received <= events_sent);
    assert!(total(&after, sent, &[("kind", "sync_request")]) > 0.0);
    assert!(total(&after, sent, &[("kind", "sync_reply")]) > 0.0);
    for kind in ["event", "sync_request", "sync_reply", "sync_push"] {
        let agents = after
            .iter()
            .filter(|s| s.name == sent && s.labels["kind"] == kind)
            .count();
        assert_eq!(agents, 9, "{kind}");
    }
    assert!(total(&after, "ramanujan_agent_rewrite_steps_total", &[]) > steps_before);
    // The scrape itself was counted.
    assert!(total(&after, requests, &[("route", "/metrics"), ("status", "200")]) >= 1.0);

    let (status, body) = call(reqwest::Method::GET, format!("{}/api/metrics", host.base), None).await;
    assert_eq!(status, 200, "{body}");
    let api: Value = serde_json::from_str(&body).unwrap();
    let routes = api["performance"]["routes"].as_array().unwrap();
    let submitted = routes.iter().find(|r| r["route"] == "/agents/submit").unwrap();
    assert_eq!(submitted["requests"], 3);
    assert_eq!(submitted["client_errors"], 1);
    let (p50, p99, max) = (
        submitted["p50_ms"].as_f64().unwrap(),
        submitted["p99_ms"].as_f64().unwrap(),
        submitted["max_ms"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{submitted}");
    assert_eq!(api["network"]["agents"].as_array().unwrap().len(), 9);
    assert_eq!(api["performance"]["caches"]["egraph-service"]["hits"], 1);
    assert!(api["performance"]["resident_memory_bytes"].as_u64().unwrap() > 1_000_000);
    let other = start().await;
    let theirs = scrape(&other).await;
    assert_eq!(total(&theirs, requests, &[("route", "/agents/submit")]), 0.0);
    let ours = scrape(&host).await;
    assert_eq!(total(&ours, requests, &[route, ("status", "202")]), 2.0);
    // Both stop promptly while their agents still tick.
    for h in [host, other] {
        h.stop.send(()).unwrap();
        let stopped = tokio::time::timeout(Duration::from_secs(30), h.task).await;
        stopped.expect("the host stops within 30 s").unwrap().unwrap();
    }
}

/// The next `update` event of a metrics stream (`text` holds what was read
/// past the last event), checked to be one.
async fn next_update(response: &mut reqwest::Response, text: &mut String) -> Value {
    loop {
        if let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            assert!(event.contains("event: update"), "{event}");
            let data = event.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            return serde_json::from_str(data).unwrap();
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("an update within 10 s")
            .unwrap()
            .expect("the stream goes on");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// Reads `/api/metrics/stream` until its first `update` event.
async fn first_update(base: &str) -> Value {
    let mut response = client().get(format!("{base}/api/metrics/stream")).send().await.unwrap();
    next_update(&mut response, &mut String::new()).await
}

/// Pages opened together share one update: the host builds it once, not once
/// per stream (each update carries the host's clock when it was built).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_opened_together_share_one_update() {
    let host = start_with(ServeArgs {
        metrics_refresh_ms: 60_000,
        ..ServeArgs::default()
    })
    .await;
    let updates = futures_util::future::join_all((0..6).map(|_| first_update(&host.base))).await;
    let built: std::collections::BTreeSet<u64> = updates.iter().map(|u| u["now_us"].as_u64().unwrap()).collect();
    assert_eq!(built.len(), 1, "six streams, one update: {built:?}");
    // A plain read is built for the asker.
    let (_, body) = call(reqwest::Method::GET, format!("{}/api/metrics", host.base), None).await;
    let fresh: Value = serde_json::from_str(&body).unwrap();
    assert!(fresh["now_us"].as_u64().unwrap() > *built.first().unwrap());
    host.stop.send(()).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(30), host.task).await;
}

/// `/api/metrics/stream` sends an update at once and then one every
/// `METRICS_REFRESH_MS`, each the JSON `/api/metrics` answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sends_an_update_every_refresh() {
    let host = start_with(ServeArgs {
        metrics_refresh_ms: 100,
        ..ServeArgs::default()
    })
    .await;
    let mut response = client()
        .get(format!("{}/api/metrics/stream", host.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let started = Instant::now();
    let (mut text, mut updates) = (String::new(), Vec::new());
    while updates.len() < 3 {
        let update = next_update(&mut response, &mut text).await;
        updates.push((started.elapsed(), update));
    }
    for (_, update) in &updates {
        assert_eq!(update["refresh_ms"], 100);
        assert!(update["performance"]["routes"].is_array(), "{update}");
        assert_eq!(update["network"]["agents"].as_array().unwrap().len(), 9);
    }
    // Paced by the refresh, not sent as fast as they can be built.
    assert!(updates[2].0 >= Duration::from_millis(180), "{:?}", updates[2].0);
    // Stopping the host ends the stream (a browser left open does not keep
    // the host from stopping).
    host.stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), host.task)
        .await
        .expect("the host stops with a stream open")
        .unwrap()
        .unwrap();
    drop(response);
}

/// Submissions made by any client (here plain HTTP, not the page) are timed
/// by the host until settled: `/api/metrics` carries each with its bounds and
/// the percentiles, `/metrics` the histogram; a host that followed them all
/// follows none once they settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_times_every_submission_until_settled() {
    let host = start().await;
    let exprs: Vec<String> = (0..12).map(|i| format!("(+ (* a{i} b) (* a{i} c))")).collect();
    let started = Instant::now();
    for expr in &exprs {
        submit(&host, expr).await;
    }
    let convergence = loop {
        let (_, body) = call(reqwest::Method::GET, format!("{}/api/metrics", host.base), None).await;
        let api: Value = serde_json::from_str(&body).unwrap();
        if api["convergence"]["settled"] == 12 {
            break api["convergence"].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{}", api["convergence"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let waited_ms = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!(convergence["following"], 0, "{convergence}");
    assert_eq!(convergence["unfollowed"], 0, "{convergence}");
    assert_eq!(convergence["over"], 12, "{convergence}");
    let recent = convergence["recent"].as_array().unwrap();
    let mut expressions: Vec<&str> = recent.iter().map(|s| s["expression"].as_str().unwrap()).collect();
    expressions.sort_unstable();
    let mut submitted: Vec<&str> = exprs.iter().map(String::as_str).collect();
    submitted.sort_unstable();
    assert_eq!(expressions, submitted);
    for settled in recent {
        let (low, high) = (
            settled["unsettled_ms"].as_f64().unwrap(),
            settled["settled_ms"].as_f64().unwrap(),
        );
        assert!(0.0 <= low && low < high && high <= waited_ms, "{settled}");
        let (_, body) = call(
            reqwest::Method::GET,
            format!("{}/agents/submissions/{}", host.base, settled["id"].as_str().unwrap()),
            None,
        )
        .await;
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["settled"], true, "{body}");
    }
    let p = |q: &str| convergence[q].as_f64().unwrap();
    assert!(0.0 < p("p50_ms") && p("p50_ms") <= p("p95_ms") && p("p95_ms") <= p("p99_ms"));
    let samples = scrape(&host).await;
    assert_eq!(total(&samples, "ramanujan_submission_settle_seconds_count", &[]), 12.0);
    assert_eq!(total(&samples, "ramanujan_submissions_following", &[]), 0.0);
    assert_eq!(total(&samples, "ramanujan_submissions_unfollowed_total", &[]), 0.0);
    host.stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), host.task)
        .await
        .expect("the host stops within 30 s")
        .unwrap()
        .unwrap();
}

/// skill-verification's analyses reach `/metrics` and `/api/metrics`:
/// `agent_consensus_success_rate` (as the original design names it), the mean
/// score variance, and the counts, equal to what `/skills/stats` says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skill_analyses_are_counted_in_the_metrics() {
    let host = start_with(ServeArgs {
        skill_embedding_dim: 4,
        ..ServeArgs::default()
    })
    .await;
    let value = |samples: &[Sample], name: &str| {
        let found: Vec<f64> = samples.iter().filter(|s| s.name == name).map(|s| s.value).collect();
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        found[0]
    };
    let before = scrape(&host).await;
    assert_eq!(value(&before, "agent_consensus_success_rate"), 0.0);
    assert_eq!(value(&before, "skill_analyses_total"), 0.0);
    // Two well-separated skills, eight examples each.
    let examples: Vec<Value> = (0..16)
        .map(|i| {
            let (label, base) = if i % 2 == 0 {
                ("cat", [1.0, 0.0])
            } else {
                ("dog", [0.0, 1.0])
            };
            let jitter = 0.01 * f64::from(i);
            json!({"label": label, "embedding": [base[0], base[1], jitter, 0.02]})
        })
        .collect();
    let url = |path: &str| format!("{}{path}", host.base);
    let (status, body) = call(
        reqwest::Method::POST,
        url("/skills/examples"),
        Some(json!({"examples": examples})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for (i, (embedding, claim)) in [([1.0, 0.0, 0.05, 0.0], "cat"), ([0.0, 1.0, 0.0, 0.05], "cat")]
        .iter()
        .enumerate()
    {
        let request = json!({"image_id": format!("probe-{i}"), "embedding": embedding, "claimed_skill": claim});
        let (status, body) = call(reqwest::Method::POST, url("/skills/analyze"), Some(request)).await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, stats) = call(reqwest::Method::GET, url("/skills/stats"), None).await;
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["analyses"], 2, "{stats}");
    let after = scrape(&host).await;
    assert_eq!(value(&after, "skill_analyses_total"), 2.0);
    let rate = stats["agent_consensus_success_rate"].as_f64().unwrap();
    assert_eq!(value(&after, "agent_consensus_success_rate"), rate);
    assert_eq!(rate, 1.0, "both probes sit in a cluster: {stats}");
    assert_eq!(value(&after, "skill_claims_verified_total"), 1.0);
    assert_eq!(value(&after, "skill_claims_not_verified_total"), 1.0);
    let variance = stats["score_variance_mean"].as_f64().unwrap();
    assert!((value(&after, "skill_consensus_score_variance_mean") - variance).abs() < 1e-12);
    assert_eq!(value(&after, "skill_references"), 16.0);
    let (_, api) = call(reqwest::Method::GET, url("/api/metrics"), None).await;
    let api: Value = serde_json::from_str(&api).unwrap();
    let readings = api["performance"]["components"]["skill-verification"]
        .as_array()
        .unwrap();
    let rate_reading = readings
        .iter()
        .find(|r| r["name"] == "agent_consensus_success_rate")
        .unwrap();
    assert_eq!(rate_reading["value"], 1.0, "{readings:?}");
    host.stop.send(()).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(30), host.task).await;
}
