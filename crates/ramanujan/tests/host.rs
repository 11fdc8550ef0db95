//! The host over real loopback TCP. Every JSON answer the tests get is
//! checked against the API's description (`common/contract.rs`).

#[path = "common/contract.rs"]
mod contract;

use ramanujan::config::ServeArgs;
use ramanujan_core::ReplicaState;
use ramanujan_core::materialize::Materialized;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

struct Server {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(mut args: ServeArgs) -> Server {
    // Tests never write a data directory into the source tree.
    args.network.in_memory = true;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(ramanujan::serve_on(listener, args, async {
        let _ = stopped.await;
    }));
    Server {
        base,
        stop: Some(stop),
        task,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn post(base: &str, path: &str, body: Value) -> (u16, Value) {
    let resp = client().post(format!("{base}{path}")).json(&body).send().await.unwrap();
    answer("POST", path, resp).await
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    let resp = client().get(format!("{base}{path}")).send().await.unwrap();
    answer("GET", path, resp).await
}

/// The status and JSON body, checked against the API's description.
async fn answer(method: &str, path: &str, resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let json = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    let body = resp.json().await.unwrap_or(Value::Null);
    if json {
        contract::conforms(method, path, status, &body);
    }
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_promptly_while_blow_ups_run() {
    let args = ServeArgs {
        compute_threads: Some(2),
        ..ServeArgs::default()
    };
    let server = start(args).await;
    let base = server.base.clone();
    let sum = |seed: usize| (1..=30).fold(format!("s{seed}"), |acc, i| format!("(+ x{i} {acc})"));
    let blow_ups: Vec<_> = (0..3)
        .map(|i| {
            let base = base.clone();
            let body =
                json!({"expression": sum(i), "scheduler": "simple", "limits": {"nodes": 100000, "time_ms": 4000}});
            tokio::spawn(async move { post(&base, "/egraph/saturate", body).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    let (status, body) = get(&base, "/health").await;
    let latency = asked.elapsed();
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    assert!(
        blow_ups.iter().any(|b| !b.is_finished()),
        "blow-ups should still be running"
    );
    assert!(
        latency < Duration::from_secs(2),
        "/health took {latency:?} during blow-ups"
    );
    for b in blow_ups {
        let (status, body) = b.await.unwrap();
        assert_eq!(status, 200, "{body}");
        let reason = body["stop_reason"].as_str().unwrap().to_string();
        assert!(["time_limit", "node_limit"].contains(&reason.as_str()), "{reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_not_a_hang() {
    let args = ServeArgs {
        compute_threads: Some(1),
        compute_queue: 1,
        ..ServeArgs::default()
    };
    let server = start(args).await;
    let slow = json!({"expression": (1..=30).fold("y".to_string(), |a, i| format!("(+ z{i} {a})")),
                      "scheduler": "simple", "limits": {"nodes": 100000, "time_ms": 2000}});
    let base = server.base.clone();
    let first = tokio::spawn(async move { post(&base, "/egraph/saturate", slow).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = post(&server.base, "/egraph/saturate", json!({"expression": "(+ a b)"})).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("busy"));
    assert_eq!(first.await.unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_every_component_and_shutdown_is_graceful() {
    let mut server = start(ServeArgs::default()).await;
    let (status, body) = get(&server.base, "/status").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 11);
    assert!(names.contains(&"egraph-service") && names.contains(&"dashboard"));
    let (status, _) = get(&server.base, "/no/such/route").await;
    assert_eq!(status, 404);
    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_then_blue_streams_prove_what_neither_proves_alone() {
    let server = start(ServeArgs::default()).await;
    let base = &server.base;
    for (color, polarity) in [("red", "positive"), ("blue", "negative"), ("green", "neutral")] {
        let (status, body) = get(base, &format!("/stream/{color}")).await;
        assert_eq!(status, 200);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["color"], color.to_uppercase());
        assert_eq!(body["polarity"], polarity);
    }
    // The goal: (a+b)^2 = a*a + 2ab + b*b. The client keeps a replica and merges every delta.
    let replica = |v: &Value| serde_json::from_value::<ReplicaState>(v["delta"].clone()).unwrap();
    let merged = |parts: &[&ReplicaState]| {
        let mut out = ReplicaState::new();
        parts.iter().for_each(|p| {
            out.merge(p);
        });
        out
    };
    let no_rules = |e: &str, agent: &str| json!({"expression": e, "default_rules": false, "agent": agent});
    let (_, lhs) = post(base, "/stream/green/apply", no_rules("(pow (+ a b) 2)", "user")).await;
    let (_, rhs) = post(
        base,
        "/stream/green/apply",
        no_rules("(+ (* a a) (+ (* 2 (* a b)) (* b b)))", "user"),
    )
    .await;
    let start = merged(&[&replica(&lhs), &replica(&rhs)]);
    let apply = |color: &str, state: &ReplicaState, agent: &str| {
        let body = json!({"state": state, "agent": agent});
        let path = format!("/stream/{color}/apply");
        async move { post(base, &path, body).await }
    };
    let proves = |state: &ReplicaState| {
        let keys = [
            lhs["root"].as_str().unwrap().parse().unwrap(),
            rhs["root"].as_str().unwrap().parse().unwrap(),
        ];
        Materialized::new(state).equivalent(keys[0], keys[1])
    };
    let (status, red) = apply("red", &start, "red-1").await;
    assert_eq!(status, 200, "{red}");
    let red_replica = merged(&[&start, &replica(&red)]);
    let (_, blue) = apply("blue", &start, "blue-1").await;
    let blue_replica = merged(&[&start, &replica(&blue)]);
    assert!(!proves(&red_replica), "RED alone must not prove it");
    assert!(!proves(&blue_replica), "BLUE alone must not prove it");
    // BLUE on the replica that merged RED's delta collects like terms.
    let (_, blue_after_red) = apply("blue", &red_replica, "blue-1").await;
    let both = merged(&[&red_replica, &replica(&blue_after_red)]);
    assert!(proves(&both), "RED then BLUE, merged, must prove it");

    // GREEN verifies every RED and BLUE equality of the merged replica.
    let (status, verified) = post(
        base,
        "/stream/green/verify",
        json!({"state": both, "derivations": false}),
    )
    .await;
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["passed"], true, "{}", verified["summary"]);
    assert!(verified["summary"]["verified"].as_u64().unwrap() > 0);
    // GREEN tells the RED-only and merged replicas apart, and says what RED lacks.
    let (_, converged) = post(
        base,
        "/stream/green/converged",
        json!({"replicas": [{"id": "red", "state": red_replica}, {"id": "both", "state": both}, {"id": "both-digest", "digest": both.digest()}]}),
    )
    .await;
    assert_eq!(converged["converged"], false, "{converged}");
    assert_eq!(converged["groups"].as_array().unwrap().len(), 2);
    assert_eq!(converged["lagging"][0]["replica"], "red");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_verify_refutes_a_false_equality_and_explains_a_true_one() {
    let server = start(ServeArgs::default()).await;
    let (status, body) = post(
        &server.base,
        "/stream/green/verify",
        json!({"equalities": [
            {"lhs": "(* a (+ b c))", "rhs": "(+ (* a b) (* a c))", "color": "RED", "rule": "distribute"},
            {"lhs": "(+ a b)", "rhs": "a", "color": "BLUE", "rule": "bogus"},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["passed"], false);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["semantic"]["status"], "verified");
    assert_eq!(results[0]["derivation"]["derivable"], true);
    assert!(
        results[0]["derivation"]["rules_used"]
            .as_array()
            .unwrap()
            .contains(&json!("distribute"))
    );
    assert_eq!(results[1]["semantic"]["status"], "refuted");
    assert_eq!(results[1]["derivation"]["derivable"], false);
}

/// Issue #14's false equalities, each built against a verifier that evaluated
/// modulo the public prime 2^61 − 1 on a fixed sample set: none is verified,
/// `passed` is false, and an inconclusive check alone is not a pass either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_verify_is_not_fooled_by_equalities_built_against_it() {
    let server = start(ServeArgs::default()).await;
    let p = "2305843009213693951";
    let tower = (0..10).fold("(pow x 2)".to_string(), |acc, _| format!("(pow {acc} 64)"));
    let product = (0..200).fold("1".to_string(), |acc, i| format!("(* {acc} (- x {i}))"));
    let equalities = [
        (p.to_string(), "0".to_string()),
        (format!("(* x {p})"), "0".to_string()),
        (format!("(/ 1 (- x {p}))"), "(/ 1 x)".to_string()),
        (tower, "(* x x)".to_string()),
        (product, "0".to_string()),
        ("(/ x 0)".to_string(), "5".to_string()),
        ("(pow x 1/2)".to_string(), "7".to_string()),
    ];
    for (lhs, rhs) in &equalities {
        let (status, body) = post(
            &server.base,
            "/stream/green/verify",
            json!({"equalities": [{"lhs": lhs, "rhs": rhs, "color": "BLUE"}], "derivations": false}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let verdict = &body["results"][0]["semantic"];
        assert_ne!(verdict["status"], "verified", "{lhs} = {rhs}: {verdict}");
        assert_eq!(body["passed"], false, "{lhs} = {rhs}: {body}");
        if verdict["status"] == "inconclusive" {
            assert!(verdict["reason"].as_str().is_some_and(|r| !r.is_empty()), "{verdict}");
        }
    }
}

/// A stream never emits equalities from an unsound rule: the request is refused
/// with the rule's counterexample.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_refuses_an_unsound_custom_rule() {
    let server = start(ServeArgs::default()).await;
    let (status, body) = post(
        &server.base,
        "/stream/blue/apply",
        json!({"expression": "(* a b)", "rules": [
            {"name": "mul-is-add", "lhs": "(* ?a ?b)", "rhs": "(+ ?a ?b)", "color": "BLUE"}
        ]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("mul-is-add") && error.contains("unsound"), "{error}");
}

/// The embedded agent network behind `/agents` and `/agent/{id}`: a submission
/// reaches all nine agents with one canonical form; state, messages and sync
/// answer; bad messages get JSON 4xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_network_routes() {
    let args = ServeArgs {
        network: ramanujan::config::NetworkArgs {
            sync_interval: 100,
            ..ServeArgs::default().network
        },
        ..ServeArgs::default()
    };
    let server = start(args).await;
    let base = server.base.clone();
    let (status, body) = get(&base, "/agents/status").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["topology"], "sierpinski");
    assert_eq!(body["agents"].as_array().unwrap().len(), 9);
    assert_eq!(body["edges"].as_array().unwrap().len(), 12);

    let (status, submitted) = post(&base, "/agents/submit", json!({"expression": "(+ (* a b) (* a c))"})).await;
    assert_eq!(status, 202, "{submitted}");
    let follow = submitted["follow"].as_str().unwrap().to_string();
    let started = Instant::now();
    let followed = loop {
        let (status, body) = get(&base, &follow).await;
        assert_eq!(status, 200, "{body}");
        if body["settled"] == true {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "not settled: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Settled on the form one saturation reaches, every colour finished.
    let (_, one) = post(&base, "/egraph/saturate", json!({"expression": "(+ (* a b) (* a c))"})).await;
    assert_eq!(one["canonical"], "(* a (+ b c))", "{one}");
    for (agent, form) in followed["canonical"].as_array().unwrap().iter().map(|p| (&p[0], &p[1])) {
        assert_eq!(form, &one["canonical"], "{agent}: {followed}");
    }
    assert!(followed["converged"] == true, "{followed}");
    for colour in followed["rewriting"].as_array().unwrap() {
        assert_eq!(colour["state"], "saturated", "{followed}");
    }
    assert_eq!(followed["present_in"], 9);
    assert_eq!(followed["unanswered"], json!([]), "every in-process agent answers");
    // Submitting it again (through the next entry agent) is the same submission.
    let (status, again) = post(&base, "/agents/submit", json!({"expression": "(+ (* a b) (* a c))"})).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(
        (&again["id"], &again["entry_agent"]),
        (&submitted["id"], &submitted["entry_agent"])
    );
    let (_, refollowed) = get(&base, &follow).await;
    assert_eq!(refollowed["entry_agent"], submitted["entry_agent"]);

    let (status, state) = get(&base, "/agent/agent-0/state").await;
    assert_eq!(status, 200, "{state}");
    for field in [
        "agent_id",
        "node_id",
        "egraph_nodes",
        "neighbors",
        "messages_received",
        "messages_sent",
        "syncs_completed",
        "uptime_seconds",
        "vector_clock",
        "color",
    ] {
        assert!(!state[field].is_null(), "{field} in {state}");
    }
    let (status, log) = get(&base, "/agent/agent-0/messages").await;
    assert_eq!(status, 200);
    assert!(!log["messages"].as_array().unwrap().is_empty());
    let (status, egraph) = get(&base, "/agent/agent-0/egraph").await;
    assert_eq!(status, 200);
    assert!(egraph["terms"].as_u64().unwrap() > 0);
    let (status, sync) = post(&base, "/agent/agent-0/sync", json!({})).await;
    assert_eq!((status, sync["sync_requests_sent"].as_u64()), (202, Some(2)));
    // The dashboard's update, with the submission settled in it (its shape
    // checked against the description like every answer here).
    let (status, update) = get(&base, "/api/metrics").await;
    assert_eq!(status, 200, "{update}");
    assert_eq!(update["network"]["agents"].as_array().map(Vec::len), Some(9));

    let sync_request = |from: &str, to: &str| json!({"from": from, "to": to, "seq": 1, "body": {"type": "sync_request", "data": {"clock": {}, "digest": ""}}});
    assert_eq!(
        post(&base, "/agent/agent-0/message", sync_request("agent-1", "agent-0"))
            .await
            .0,
        202
    );
    for (path, body, want) in [
        ("/agent/agent-0/message", sync_request("mallory", "agent-0"), 400),
        ("/agent/agent-0/message", sync_request("agent-1", "agent-2"), 400),
        ("/agent/agent-0/message", json!({"from": "agent-1"}), 422),
        ("/agent/nobody/state", Value::Null, 404),
        ("/agents/submit", json!({"expression": "(+ a"}), 400),
        ("/agents/submissions/ffff", Value::Null, 404),
    ] {
        let (status, body) = if body.is_null() {
            get(&base, path).await
        } else {
            post(&base, path, body).await
        };
        assert_eq!(status, want, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    drop(server);
}

#[tokio::test]
async fn colour_streams_feed_the_crdt_merge() {
    let server = start(ServeArgs::default()).await;
    let base = server.base.clone();
    // RED → CRDT: the RED stream's delta merged into the expression's terms.
    let (status, red) = post(&base, "/stream/red/merge", json!({"expression": "(* a (+ b c))"})).await;
    assert_eq!(status, 200, "{red}");
    assert_eq!(red["crdt_type"], "EGraph");
    assert!(
        red["merged"]["new_equalities"].as_u64().unwrap() > 0,
        "RED derived something: {red}"
    );
    // The same from BLUE, by another agent, then the two EGraph states merged.
    let (status, blue) = post(
        &base,
        "/stream/blue/merge",
        json!({"expression": "(+ (* a b) (* a c))", "agent": "blue-1"}),
    )
    .await;
    assert_eq!(status, 200, "{blue}");
    let (status, merged) = post(
        &base,
        "/crdt/merge",
        json!({"crdt_type": "EGraph", "states": [red["state"], blue["state"]]}),
    )
    .await;
    assert_eq!(status, 200, "{merged}");
    let facts = |v: &Value| v["value"]["terms"].as_u64().unwrap() + v["value"]["equalities"].as_u64().unwrap();
    // An equality both streams derived (RED's distribute, BLUE's factor) is one fact.
    assert!(
        facts(&merged) >= facts(&red).max(facts(&blue)),
        "the union holds all of either: {merged}"
    );
    // Merged, the two expressions are one class: RED's expansion meets BLUE's factoring.
    let state: ReplicaState = serde_json::from_value(merged["state"].clone()).unwrap();
    let m = Materialized::new(&state);
    let key = |e: &str| {
        ramanujan_core::materialize::expr_terms(&e.parse().unwrap(), &mut ramanujan_core::replica::Facts::default())
    };
    assert!(m.equivalent(key("(* a (+ b c))"), key("(+ (* a b) (* a c))")));
    // CRDT → e-graph: with no rules at all, only the merged state knows that the
    // expanded form equals the factored one.
    let ask = |state: Option<Value>| {
        let mut body = json!({"expression": "(+ (* a b) (* a c))", "default_rules": false});
        if let Some(state) = state {
            body["state"] = state;
        }
        body
    };
    let (status, alone) = post(&base, "/egraph/saturate", ask(None)).await;
    assert_eq!(
        (status, alone["canonical"].as_str()),
        (200, Some("(+ (* a b) (* a c))")),
        "{alone}"
    );
    let (status, seeded) = post(&base, "/egraph/saturate", ask(Some(merged["state"].clone()))).await;
    assert_eq!(
        (status, seeded["canonical"].as_str()),
        (200, Some("(* a (+ b c))")),
        "{seeded}"
    );
    // Bad input: a state that is not one.
    let (status, _) = post(&base, "/stream/red/merge", json!({"state": {"terms": 3}})).await;
    assert!((400..500).contains(&status));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crdt_bad_input_gets_a_4xx_and_the_service_stays_responsive() {
    let server = start(ServeArgs::default()).await;
    let base = server.base.clone();
    let text = "AQEBAAQBBHRleHQLaMOpbGxvIPCfmIAA";
    // A 50 MB body: refused by size, not read into memory.
    let huge = format!(
        r#"{{"crdt_type": "TextCRDT", "states": ["{}", "{text}"]}}"#,
        "A".repeat(50 * 1024 * 1024)
    );
    let sent = client()
        .post(format!("{base}/crdt/merge"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await;
    match sent {
        Ok(resp) => assert_eq!(resp.status().as_u16(), 413),
        // The server may answer 413 and close before the client finishes sending.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    let cases = [
        // 10,000 states in one request.
        (json!({"crdt_type": "TextCRDT", "states": vec![text; 10_000]}), 400),
        // Garbage and truncated base64, a valid update of the wrong type.
        (json!({"crdt_type": "TextCRDT", "states": [text, "@@@"]}), 400),
        (json!({"crdt_type": "TextCRDT", "states": [text, &text[..20]]}), 400),
        (json!({"crdt_type": "Map", "states": [text, text]}), 400),
        (
            json!({"crdt_type": "TextCRDT", "states": [text, text], "bogus": 1}),
            422,
        ),
    ];
    for (body, status) in cases {
        let started = Instant::now();
        let (got, answer) = post(&base, "/crdt/merge", body).await;
        assert_eq!(got, status, "{answer}");
        assert!(answer["error"].is_string(), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let (health, _) = get(&base, "/health").await;
        assert_eq!(health, 200);
    }
    // And real work still gets done.
    let (status, merged) = post(
        &base,
        "/crdt/merge",
        json!({"crdt_type": "TextCRDT", "states": [text, text]}),
    )
    .await;
    assert_eq!((status, merged["value"].clone()), (200, json!("héllo 😀")));
}

/// `CACHE_SIZE_MB` bounds each memo cache in bytes: merges of large documents,
/// each answer about 200 KB, fill the CRDT memo far past one megabyte, and it
/// never holds more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memo_caches_never_pass_cache_size_mb() {
    let server = start(ServeArgs {
        cache_size_mb: 1,
        ..ServeArgs::default()
    })
    .await;
    let mut documents = Vec::new();
    for actor in 1..=6usize {
        let text = format!("{actor:04} ").repeat(20_000);
        let (status, answer) = post(
            &server.base,
            "/crdt/apply",
            json!({"crdt_type": "TextCRDT", "actor": actor.to_string(),
                   "ops": [{"op": "insert", "index": 0, "text": text}]}),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        documents.push(answer["state"].clone());
    }
    let mut merged = 0;
    let mut answered_bytes = 0;
    for (i, a) in documents.iter().enumerate() {
        for b in &documents[i + 1..] {
            let (status, answer) = post(
                &server.base,
                "/crdt/merge",
                json!({"crdt_type": "TextCRDT", "states": [a, b]}),
            )
            .await;
            assert_eq!(status, 200, "{answer}");
            answered_bytes += answer.to_string().len();
            merged += 1;
            let (_, stats) = get(&server.base, "/crdt/stats").await;
            assert_eq!(stats["max_bytes"], 1 << 20, "{stats}");
            assert!(
                stats["bytes"].as_u64().unwrap() <= 1 << 20,
                "after {merged} merges: {stats}"
            );
        }
    }
    assert!(
        answered_bytes > 2 << 20,
        "the merges answered {answered_bytes} bytes: more than the memo may hold"
    );
    let (_, stats) = get(&server.base, "/crdt/stats").await;
    assert!(stats["entries"].as_u64().unwrap() < merged, "{stats}");
    assert!(stats["bytes"].as_u64().unwrap() > 0, "{stats}");
    let (_, egraph) = get(&server.base, "/egraph/stats").await;
    assert_eq!(egraph["cache"]["max_bytes"], 1 << 20, "{egraph}");
    let mut server = server;
    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Every route the code registers (`.route("...", get(..).post(..))` in the
/// host's crates), as (path, method): what `/openapi.json` must describe.
fn routes_in_source() -> std::collections::BTreeSet<(String, String)> {
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut routes = std::collections::BTreeSet::new();
    // The bridge is a binary of its own and the webhook serves only on Spin.
    let not_the_host = ["ramanujan-bridge", "ramanujan-hosted"];
    let mut files = vec![];
    for entry in std::fs::read_dir(&crates).unwrap() {
        let dir = entry.unwrap().path();
        if not_the_host.iter().any(|c| dir.ends_with(c)) {
            continue;
        }
        let mut stack = vec![dir.join("src")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
    }
    for file in files {
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let Some(call) = line.trim().strip_prefix(".route(") else {
                continue;
            };
            // The streams' routes are under a prefix per colour: `/stream/{color}`.
            let (path, methods) = if let Some(rest) = call.strip_prefix("&prefix,") {
                ("/stream/{color}".to_string(), rest)
            } else if let Some(rest) = call.strip_prefix("&format!(\"{prefix}") {
                let (tail, rest) = rest.split_once('"').unwrap();
                (format!("/stream/{{color}}{tail}"), rest)
            } else {
                let Some(rest) = call.strip_prefix('"') else { continue };
                let (path, rest) = rest.split_once('"').unwrap();
                (path.to_string(), rest)
            };
            for method in ["get", "post", "put", "patch", "delete"] {
                if methods.contains(&format!("{method}(")) {
                    routes.insert((path.clone(), method.to_string()));
                }
            }
        }
    }
    routes
}

/// A documented path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{color}", "red")
        .replace("{id}", "0")
        .replace("{key}", "no-such-key")
        .replace("{label}", "no-such-skill")
        .replace("{name}", "no-such-asset.js")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route_and_the_explorer_is_offline() {
    let server = start(ServeArgs::default()).await;
    let (status, doc) = get(&server.base, "/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();

    // Every route in the code is described...
    let in_source = routes_in_source();
    assert!(in_source.len() > 60, "the scan found the routes: {in_source:?}");
    let undocumented: Vec<_> = in_source
        .iter()
        .filter(|(path, method)| paths.get(path).is_none_or(|item| item.get(method).is_none()))
        .collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from /openapi.json: {undocumented:?}"
    );

    // ...and every description is a route, with its error answers declared.
    let http = client();
    let mut described = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            described += 1;
            let declared = operation["responses"].as_object().unwrap();
            assert!(
                declared.keys().any(|s| s.starts_with('2') || s.starts_with('3')),
                "{method} {path}: no success"
            );
            if operation.get("requestBody").is_some() {
                for status in ["413", "429", "503"] {
                    assert!(
                        declared.contains_key(status),
                        "{method} {path} does not declare {status}"
                    );
                }
            }
            let url = format!("{}{}", server.base, concrete(path));
            let request = match method.as_str() {
                "get" => http.get(&url),
                "post" => http.post(&url).json(&json!({})),
                "patch" => http.patch(&url).json(&json!({})),
                "delete" => http.delete(&url),
                other => panic!("{other} {path}"),
            };
            let response = request.send().await.unwrap();
            let code = response.status().as_u16();
            // Read the body unless it is the endless metrics stream.
            let body = if path.ends_with("/stream") && path.starts_with("/api") {
                String::new()
            } else {
                response.text().await.unwrap()
            };
            assert!(
                code != 405 && !(code == 404 && body.contains("no route for")),
                "{method} {path} is described but not routed: {code} {body}"
            );
            assert!(
                declared.contains_key(&code.to_string()) || code == 304,
                "{method} {path} answered {code}, which it does not declare: {body}"
            );
        }
    }
    assert!(described >= in_source.len(), "{described}");

    // A method a path does not take gets 405 with `Allow`.
    for (path, method) in [
        ("/egraph/saturate", "PUT"),
        ("/agents/status", "DELETE"),
        ("/crdt/merge", "QUERY"),
    ] {
        let response = http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", server.base),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 405, "{method} {path}");
        assert!(response.headers().contains_key("allow"), "{method} {path}: no Allow");
    }

    // The explorer's page and assets come from the host, not from a CDN.
    let page = http.get(format!("{}/docs/", server.base)).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("swagger-ui"), "{page}");
    assert!(!page.contains("https://") && !page.contains("http://"), "{page}");
    for asset in ["swagger-ui-bundle.js", "swagger-ui.css", "swagger-initializer.js"] {
        let response = http.get(format!("{}/docs/{asset}", server.base)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{asset}");
    }
    let initializer = http
        .get(format!("{}/docs/swagger-initializer.js", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("/openapi.json"), "{initializer}");
    // Nor does it send the document's address to an outside validator.
    assert!(initializer.contains(r#""validatorUrl": "none""#), "{initializer}");
}

#[test]
fn the_contract_check_refuses_what_the_description_does_not_allow() {
    // What every test's answers go through (common/contract.rs) catches a
    // wrong body, an undeclared status and a route that does not exist.
    contract::conforms(
        "GET",
        "/agents/status",
        200,
        &json!({"converged": true, "transport": "in-process", "topology": "sierpinski", "edges": [], "sync_interval_ms": 1000, "agents": [], "distinct_digests": 1, "submissions": 0}),
    );
    for (method, path, status, body) in [
        ("GET", "/agents/status", 200, json!({"converged": "yes"})),
        ("GET", "/agents/status", 418, json!({})),
        (
            "POST",
            "/agents/submit",
            202,
            json!({"id": "x", "expression": "(+ a b)"}),
        ),
        ("GET", "/no/such/route", 200, json!({})),
    ] {
        let refused = std::panic::catch_unwind(|| contract::conforms(method, path, status, &body));
        assert!(refused.is_err(), "{method} {path} {status} {body}");
    }
}
