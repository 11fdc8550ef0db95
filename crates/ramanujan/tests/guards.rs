//! The host's guards over real loopback TCP: API keys and their scopes, the
//! per-client rate limit, CORS, and the request timeout.

use ramanujan::config::ServeArgs;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

const WRITE_KEY: &str = "w-0123456789abcdef-secret";
const READ_KEY: &str = "r-0123456789abcdef-secret";

struct Server {
    base: String,
    _stop: oneshot::Sender<()>,
}

async fn start(mut args: ServeArgs) -> Server {
    args.network.in_memory = true;
    args.log.log_level = "warn".into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(ramanujan::serve_on(listener, args, async {
        let _ = stopped.await;
    }));
    // Up once it answers.
    let started = Instant::now();
    while reqwest::get(format!("{base}/health")).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the host came up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Server { base, _stop: stop }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Sends `method path` with `body` (JSON, for anything but GET) and the key.
async fn call(
    base: &str,
    method: &str,
    path: &str,
    body: &Value,
    key: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let method: reqwest::Method = method.parse().unwrap();
    let mut request = client().request(method.clone(), format!("{base}{path}"));
    if method != reqwest::Method::GET {
        request = request.json(body);
    }
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

fn keyed() -> ServeArgs {
    ServeArgs {
        api_keys: Some(format!("write:{WRITE_KEY},read:{READ_KEY}")),
        ..ServeArgs::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutating_route_needs_a_write_key_and_reads_a_read_key() {
    let server = start(keyed()).await;
    let base = &server.base;
    let mutating: [(&str, &str, Value); 9] = [
        ("POST", "/agents/submit", json!({"expression": "(+ a 0)"})),
        ("POST", "/egraph/saturate", json!({"expression": "(+ a 0)"})),
        ("POST", "/stream/red/apply", json!({"expression": "(+ a 0)"})),
        ("POST", "/stream/green/verify", json!({"lhs": "(+ a 0)", "rhs": "a"})),
        ("POST", "/crdt/merge", json!({"type": "GCounter", "states": []})),
        ("POST", "/agent/agent-0/message", json!({})),
        ("POST", "/agent/agent-0/sync", json!({})),
        ("POST", "/2tdx/rules", json!({"rules": []})),
        ("POST", "/skills/analyze", json!({})),
    ];
    for (method, path, body) in &mutating {
        let (status, headers, text) = call(base, method, path, body, None).await;
        assert_eq!(status, 401, "{method} {path} without a key: {text}");
        let challenge = headers.get("www-authenticate").expect("a 401 says how to authenticate");
        assert!(challenge.to_str().unwrap().starts_with("Bearer"), "{challenge:?}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert!(error["error"].as_str().unwrap().contains("write"), "{text}");

        let (status, headers, text) = call(base, method, path, body, Some(READ_KEY)).await;
        assert_eq!(status, 403, "{method} {path} with a read key: {text}");
        assert!(
            headers["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("insufficient_scope")
        );
        assert!(!text.contains(READ_KEY), "an error never shows the key: {text}");

        let (status, _, text) = call(base, method, path, body, Some("not-a-key-this-host-holds")).await;
        assert_eq!(status, 401, "{method} {path} with a wrong key: {text}");
        assert!(!text.contains("not-a-key"), "{text}");

        let (status, _, text) = call(base, method, path, body, Some(WRITE_KEY)).await;
        assert!(
            status != 401 && status != 403 && status < 500,
            "{method} {path} with a write key: {status} {text}"
        );
    }
    // Reading: a read key (or a write key) suffices, none does not.
    for path in ["/agents/status", "/status", "/2tdx/rules", "/colors/palette"] {
        assert_eq!(
            call(base, "GET", path, &Value::Null, None).await.0,
            401,
            "GET {path} without a key"
        );
        for key in [READ_KEY, WRITE_KEY] {
            let (status, _, text) = call(base, "GET", path, &Value::Null, Some(key)).await;
            assert!(status != 401 && status != 403, "GET {path}: {status} {text}");
        }
    }
    // Health probes carry no keys: the host's and every component's.
    for path in [
        "/health",
        "/agents/health",
        "/egraph/health",
        "/crdt/health",
        "/colors/health",
        "/stream/red/health",
        "/stream/blue/health",
        "/stream/green/health",
        "/timeline/health",
        "/skills/health",
        "/2tdx/health",
        "/dashboard/health",
    ] {
        let (status, _, text) = call(base, "GET", path, &Value::Null, None).await;
        assert_eq!(status, 200, "GET {path}: {text}");
        let health: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(health["status"], "ok", "GET {path}: {text}");
    }
    // The API's description and its explorer are no secret either; writing
    // to them still needs a key.
    for path in ["/openapi.json", "/docs/", "/docs/swagger-ui.css"] {
        let (status, _, text) = call(base, "GET", path, &Value::Null, None).await;
        assert_eq!(status, 200, "GET {path}: {text}");
    }
    assert_eq!(call(base, "POST", "/openapi.json", &json!({}), None).await.0, 401);
    // Agents answer to their number too, as the original design names them.
    let (status, _, by_number) = call(base, "GET", "/agent/3/state", &Value::Null, Some(READ_KEY)).await;
    assert_eq!(status, 200, "{by_number}");
    let by_number: Value = serde_json::from_str(&by_number).unwrap();
    assert_eq!(by_number["agent_id"], "agent-3", "{by_number}");
    for missing in ["/agent/9/state", "/agent/99999999999999999999/state", "/agent/-1/state"] {
        assert_eq!(
            call(base, "GET", missing, &Value::Null, Some(READ_KEY)).await.0,
            404,
            "{missing}"
        );
    }
    // An acknowledged submission with the write key is really in.
    let (status, _, text) = call(
        base,
        "POST",
        "/agents/submit",
        &json!({"expression": "(* x 1)"}),
        Some(WRITE_KEY),
    )
    .await;
    assert_eq!(status, 202, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_past_its_rate_gets_429_and_another_client_does_not() {
    let other = "w-another-client-0123456789";
    let server = start(ServeArgs {
        api_keys: Some(format!("write:{WRITE_KEY},write:{other}")),
        rate_limit: 1,
        rate_limit_burst: 5,
        ..ServeArgs::default()
    })
    .await;
    let base = &server.base;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..8 {
        let (status, headers, text) = call(base, "GET", "/agents/status", &Value::Null, Some(WRITE_KEY)).await;
        if status == 429 {
            retry_after = headers.get("retry-after").map(|v| v.to_str().unwrap().to_string());
            let error: Value = serde_json::from_str(&text).unwrap();
            assert!(error["error"].as_str().unwrap().contains("RATE_LIMIT"), "{text}");
        }
        statuses.push(status);
    }
    assert_eq!(&statuses[..5], &[200; 5], "the burst passes: {statuses:?}");
    assert!(statuses[5..].iter().all(|&s| s == 429), "past the burst: {statuses:?}");
    let seconds: u64 = retry_after.expect("a 429 says when to retry").parse().unwrap();
    assert!((1..=2).contains(&seconds), "{seconds}");
    // Another key is another client.
    assert_eq!(
        call(base, "GET", "/agents/status", &Value::Null, Some(other)).await.0,
        200
    );
    // Refused keys are not counted against anyone's budget, and refused
    // without one: a wrong key is a 401, not a 429.
    assert_eq!(
        call(
            base,
            "GET",
            "/agents/status",
            &Value::Null,
            Some("wrong-key-0123456789")
        )
        .await
        .0,
        401
    );
    // The budget refills: one request a second.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        call(base, "GET", "/agents/status", &Value::Null, Some(WRITE_KEY))
            .await
            .0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_answer_allowed_origins_only() {
    let server = start(ServeArgs {
        cors_origins: Some("https://app.example, http://localhost:5173".into()),
        ..keyed()
    })
    .await;
    let preflight = |origin: &'static str| {
        client()
            .request(reqwest::Method::OPTIONS, format!("{}/agents/submit", server.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(headers["access-control-allow-origin"], "https://app.example");
    let methods = headers["access-control-allow-methods"].to_str().unwrap().to_string();
    assert!(methods.contains("POST"), "{methods}");
    let allowed_headers = headers["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    assert!(allowed_headers.contains("authorization"), "{allowed_headers}");

    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        refused.headers().get("access-control-allow-origin").is_none(),
        "no CORS grant for an origin not listed: {:?}",
        refused.headers()
    );
    // A refusal still carries the grant, so the allowed page can read why.
    let response = client()
        .post(format!("{}/agents/submit", server.base))
        .header("origin", "http://localhost:5173")
        .json(&json!({"expression": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_timeout_is_cut_off_and_its_work_stops() {
    let server = start(ServeArgs {
        timeout_seconds: 1,
        compute_threads: Some(1),
        ..ServeArgs::default()
    })
    .await;
    let base = &server.base;
    // A blow-up (a sum of 30 terms under associativity and commutativity)
    // that would run for a minute if it could.
    let sum = (1..=30).fold("s".to_string(), |acc, i| format!("(+ x{i} {acc})"));
    let (status, _, text) = call(
        base,
        "POST",
        "/egraph/saturate",
        &json!({"expression": sum, "limits": {"time_ms": 60_000}}),
        None,
    )
    .await;
    assert_eq!(
        status, 400,
        "no request may ask for more time than the host gives it: {text}"
    );
    assert!(text.contains("time_ms"), "{text}");

    let started = Instant::now();
    let (status, headers, text) = call(
        base,
        "POST",
        "/egraph/saturate",
        &json!({"expression": sum, "limits": {"time_ms": 1_000, "nodes": 500_000, "iterations": 10_000}}),
        None,
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("TIMEOUT_SECONDS"), "{text}");
    assert!(headers.contains_key("retry-after"));
    assert!(took < Duration::from_secs(5), "cut off at the timeout, took {took:?}");
    // The one compute thread serves again within seconds: the cut-off work
    // ran to its own limit (no more than the timeout) and was extracted, it
    // did not run on. A request queued behind it may itself be cut off
    // meanwhile (503), so it is asked again.
    let started = Instant::now();
    loop {
        let (status, _, text) = call(
            base,
            "POST",
            "/egraph/saturate",
            &json!({"expression": "(* a 1)"}),
            None,
        )
        .await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{text}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the compute thread never came back: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mining_keeps_within_the_timeout_and_answers_what_it_found() {
    // A debug build takes about 9 s for size 7.
    let server = start(ServeArgs {
        timeout_seconds: 8,
        ..ServeArgs::default()
    })
    .await;
    // Size 7 takes about a second in release, far more in a debug build;
    // the run stops at its budget and answers what it found.
    let started = Instant::now();
    let (status, _, text) = call(
        &server.base,
        "POST",
        "/2tdx/mine",
        &json!({"source": "enumeration", "known": "none", "options": {"max_size": 7, "time_ms": 120_000}}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    println!("mined in {:?}: {}", started.elapsed(), answer["stop_reason"]);
    // Its budget is four fifths of the timeout: 6.4 s.
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    // At its budget on this machine kind (a debug build needs about 9 s);
    // a faster one may finish first.
    assert!(
        ["time_limit", "done"].contains(&answer["stop_reason"].as_str().unwrap()),
        "{text}"
    );
    assert!(
        !answer["rules"].as_array().unwrap().is_empty(),
        "what it found by then: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_to_agent_requests_need_the_network_keys_signature() {
    let network_key = "the-network-key-0123456789";
    let server = start(ServeArgs {
        network_key: Some(network_key.into()),
        ..keyed()
    })
    .await;
    let base = &server.base;
    let sign = |key: &str, path: &str, body: &[u8]| ramanujan_wire::signature::sign(key.as_bytes(), path, body);
    let post = |path: &'static str, body: Vec<u8>, signature: Option<String>| {
        let mut request = client()
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header(ramanujan_wire::signature::SIGNATURE_HEADER, signature);
        }
        request.send()
    };
    let sync = b"{}".to_vec();
    let path = "/agent/agent-1/sync";
    // Unsigned, signed with another key, signed for another route, or a
    // body other than the one signed: 401, counted.
    let forged: [Option<String>; 3] = [
        None,
        Some(sign("another-key-0123456789abc", path, &sync)),
        Some(sign(network_key, "/agent/agent-2/sync", &sync)),
    ];
    for signature in forged {
        let response = post(path, sync.clone(), signature).await.unwrap();
        assert_eq!(response.status(), 401);
        let text = response.text().await.unwrap();
        assert!(text.contains("NETWORK_KEY") && !text.contains(network_key), "{text}");
    }
    let response = post(path, b"{ }".to_vec(), Some(sign(network_key, path, &sync)))
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "a body other than the one signed");
    // Signed: taken without an API key (the signature is the agent's credential).
    let response = post(path, sync.clone(), Some(sign(network_key, path, &sync)))
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let (_, _, status) = call(base, "GET", "/status", &Value::Null, Some(READ_KEY)).await;
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["refused_agent_signatures"], 4, "{status}");
    // Other routes still need an API key.
    assert_eq!(
        call(base, "GET", "/agent/agent-1/state", &Value::Null, None).await.0,
        401
    );
}
