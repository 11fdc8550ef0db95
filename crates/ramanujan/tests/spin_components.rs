//! Components as Spin components in the wasmtime-crates test host
//! (`spin-test-host`, Spin's key-value in memory): every request gets a fresh
//! instance, as under Spin, so what one instance keeps reaches the next only
//! through the shared key-value store: `egraph-service`'s memo,
//! `transduction-2tdx`'s rule book.

mod common;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;
use spin_test_host::SpinHost;

async fn call(host: &SpinHost, method: &str, path: &str, body: &str) -> (u16, Value) {
    call_with_key(host, method, path, body, None).await
}

async fn call_with_key(host: &SpinHost, method: &str, path: &str, body: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let request = request.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let response = host.handle(request).await.expect("the component answers");
    let status = response.status().as_u16();
    (status, serde_json::from_slice(response.body()).unwrap_or(Value::Null))
}

/// Runs a test's requests on a current-thread runtime.
fn block_on<F: std::future::Future>(test: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(test)
}

#[test]
fn egraph_service_shares_its_memo_between_instances_through_key_value() {
    let wasm = common::spin_components().join("spin_egraph_service.wasm");
    let host = SpinHost::new(&wasm, &["default"], &[("COMPONENT_ID", "egraph-test")]).unwrap();
    block_on(async {
        let body = r#"{"expression": "(+ (* a b) (* a c))"}"#;
        let (status, first) = call(&host, "POST", "/egraph/saturate", body).await;
        assert_eq!(status, 200, "{first}");
        assert_eq!(first["cached"], false);
        assert!(first["canonical"].is_string(), "{first}");
        let key = first["key"].as_str().unwrap();
        let stored = host
            .kv_get("default", &format!("egraph/memo/{key}"))
            .expect("the answer is in key-value");
        let stored: Value = serde_json::from_slice(&stored).unwrap();
        assert_eq!(stored["canonical"], first["canonical"]);

        // A fresh instance: its own memo is empty, the shared store answers.
        let (status, second) = call(&host, "POST", "/egraph/saturate", body).await;
        assert_eq!(status, 200);
        assert_eq!(second["cached"], true, "{second}");
        assert_eq!(second["canonical"], first["canonical"]);
        let (_, stats) = call(&host, "GET", "/egraph/stats", "").await;
        assert_eq!(stats["shared"]["enabled"], true, "{stats}");

        let (status, answer) = call(&host, "POST", "/egraph/saturate", r#"{"expression": "(+ a"}"#).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer["error"].is_string());
    });
    // Without the store granted, the component still answers (the cache misses).
    let ungranted = SpinHost::new(&wasm, &[], &[]).unwrap();
    block_on(async {
        let (status, answer) = call(&ungranted, "POST", "/egraph/saturate", r#"{"expression": "(* x 1)"}"#).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["cached"], false);
    });
}

/// transduction-2tdx on Spin keeps its rule book in key-value: a rule added
/// in one instance is listed by the next, a sync merges into it, the key is
/// asked for, and what Spin cannot do (a peer on an interval, mining from
/// agents in another component) answers 404 saying so.
#[test]
fn transduction_2tdx_keeps_its_rule_book_in_key_value_between_instances() {
    let wasm = common::spin_components().join("spin_transduction_2tdx.wasm");
    let key = "spin-test-key";
    let host = SpinHost::new(
        &wasm,
        &["default"],
        &[("TDX_API_KEY", key), ("LOCAL_ENDPOINT", "spin-site")],
    )
    .unwrap();
    block_on(async {
        let zero = r#"{"rules": [{"name": "zero", "lhs": "(+ ?x 0)", "rhs": "?x", "color": "GREEN"}]}"#;
        let (status, answer) = call(&host, "POST", "/2tdx/rules", zero).await;
        assert_eq!(status, 401, "{answer}");
        let (status, added) = call_with_key(&host, "POST", "/2tdx/rules", zero, Some(key)).await;
        assert_eq!(status, 200, "{added}");
        // One key per write, each the merge of what its writer read: one now.
        let stored = host.kv_keys("default", transduction_2tdx::kv_book::BOOK_PREFIX);
        assert_eq!(stored.len(), 1, "the book is in key-value: {stored:?}");

        // A fresh instance reads it.
        let (status, listed) = call(&host, "GET", "/2tdx/rules", "").await;
        assert_eq!(status, 200, "{listed}");
        assert_eq!(listed["count"], 1, "{listed}");

        // A peer's state with one more rule merges in; the answer is what it lacks.
        let (_, book) = call(&host, "GET", "/2tdx/rules", "").await;
        let mut peer: Value = serde_json::from_slice(&host.kv_get("default", &stored[0]).unwrap()).unwrap();
        let one = ramanujan_core::rules::RuleSpec {
            name: "one".into(),
            lhs: "(* ?x 1)".into(),
            rhs: "?x".into(),
            color: ramanujan_core::Color::Green,
            bidirectional: false,
            nonzero: Vec::new(),
            integer: Vec::new(),
        };
        let mut state: transduction_2tdx::book::BookState = serde_json::from_value(peer.take()).unwrap();
        state.add(transduction_2tdx::mine::check_rule(&one, "peer").unwrap(), "peer-site");
        let body = serde_json::to_string(&state).unwrap();
        let (status, lacked) = call_with_key(&host, "POST", "/2tdx/sync", &body, Some(key)).await;
        assert_eq!(status, 200, "{lacked}");
        let (_, listed) = call(&host, "GET", "/2tdx/rules", "").await;
        assert_eq!(listed["count"], 2, "{listed}");
        let now = host.kv_keys("default", transduction_2tdx::kv_book::BOOK_PREFIX);
        assert!(
            now.len() == 1 && now != stored,
            "the write replaced the key it merged: {now:?}"
        );
        // Where the app's agents read the rules they run.
        let given: Value = serde_json::from_slice(&host.kv_get("default", "agents/rules").unwrap()).unwrap();
        assert_eq!(given["builtin"], true, "{given}");
        assert_eq!(given["rules"].as_array().unwrap().len(), 2, "{given}");
        assert_ne!(listed["digest"], book["digest"]);
        // In step now: the same state again changes nothing and answers nothing.
        let (status, lacked) = call_with_key(&host, "POST", "/sync", &body, Some(key)).await;
        assert_eq!(status, 200, "{lacked}");
        assert_eq!(lacked["rules"], serde_json::json!({}), "{lacked}");

        let (status, answer) = call_with_key(&host, "POST", "/2tdx/sync/peer", "{}", Some(key)).await;
        assert_eq!(status, 404, "{answer}");
        let (status, answer) = call(&host, "POST", "/2tdx/mine", r#"{"source": "network"}"#).await;
        assert_eq!(status, 404, "{answer}");
        let (status, answer) = call_with_key(
            &host,
            "POST",
            "/2tdx/rules",
            r#"{"rules": [{"name": "bad", "lhs": "(+ ?x 0)", "rhs": "?y", "color": "GREEN"}]}"#,
            Some(key),
        )
        .await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("?y"), "{answer}");
        let (status, health) = call(&host, "GET", "/2tdx/health", "").await;
        assert_eq!(status, 200, "{health}");
        assert_eq!(health["site"], "spin-site", "{health}");
    });
}

/// On Spin a panic aborts the instance (wasm has no unwinding), so what would
/// make yrs panic must be refused before it reaches yrs: every input in the
/// Yjs fuzz target's seeds (inputs that once crashed or exhausted it) gets a
/// 4xx or an answer from the component, never a 500 or a trap, through every
/// route the fuzz target drives.
#[test]
fn crdt_service_on_spin_refuses_the_fuzz_corpus_crash_inputs_with_4xx() {
    use base64::Engine;
    let wasm = common::spin_components().join("spin_crdt_service.wasm");
    let host = SpinHost::new(&wasm, &["default"], &[]).unwrap();
    // A real text document (client 1, "héllo 😀"), as the fuzz target merges with.
    let text = "AQEBAAQBBHRleHQLaMOpbGxvIPCfmIAA";
    let seeds = common::root().join("fuzz/seeds/yjs_update");
    let mut files: Vec<_> = std::fs::read_dir(&seeds).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    block_on(async {
        for file in &files {
            let input = base64::engine::general_purpose::STANDARD.encode(std::fs::read(file).unwrap());
            let name = file.file_name().unwrap().to_string_lossy().to_string();
            let mut bodies = Vec::new();
            for crdt_type in ["TextCRDT", "Map", "Array"] {
                bodies.push((
                    "/crdt/merge",
                    serde_json::json!({"crdt_type": crdt_type, "states": [input, text]}),
                ));
                bodies.push((
                    "/crdt/merge",
                    serde_json::json!({"crdt_type": crdt_type, "states": [input, input], "root": "text"}),
                ));
                bodies.push((
                    "/crdt/diff",
                    serde_json::json!({"crdt_type": crdt_type, "state": input, "since": text}),
                ));
            }
            bodies.push((
                "/crdt/diff",
                serde_json::json!({"crdt_type": "TextCRDT", "state": text, "since": input}),
            ));
            bodies.push((
                "/crdt/apply",
                serde_json::json!({"crdt_type": "TextCRDT", "state": input, "actor": "2",
                                   "ops": [{"op": "insert", "index": 0, "text": "x"}]}),
            ));
            for (path, body) in bodies {
                let (status, answer) = call(&host, "POST", path, &body.to_string()).await;
                assert!(status < 500, "{name} on {path} {body}: {status} {answer}");
                if status >= 400 {
                    assert!(answer["error"].is_string(), "{name} on {path}: {answer}");
                }
            }
        }
    });
}

/// With `API_KEYS` set in its environment, a component asks for a bearer key
/// of the scope a request needs, as the native host does with `API_KEYS`;
/// health probes stay open; unset, it is open; a malformed setting is a 500
/// that shows no key.
#[test]
fn a_spin_component_asks_for_api_keys_when_they_are_set() {
    let wasm = common::spin_components().join("spin_crdt_service.wasm");
    let (write, read) = ("w-spin-key-0123456789abcdef", "r-spin-key-0123456789abcdef");
    let merge =
        r#"{"crdt_type": "GCounter", "states": [{"inner": {"dots": {"a": 1}}}, {"inner": {"dots": {"b": 2}}}]}"#;
    block_on(async {
        let open = SpinHost::new(&wasm, &[], &[]).unwrap();
        let (status, answer) = call(&open, "POST", "/crdt/merge", merge).await;
        assert_eq!(status, 200, "no keys set: open ({answer})");

        let keys = format!("write:{write},read:{read}");
        let guarded = SpinHost::new(&wasm, &[], &[("API_KEYS", keys.as_str())]).unwrap();
        assert_eq!(
            call(&guarded, "GET", "/crdt/health", "").await.0,
            200,
            "health needs no key"
        );
        for (key, status) in [
            (None, 401),
            (Some("not-a-key-0123456789"), 401),
            (Some(read), 403),
            (Some(write), 200),
        ] {
            let (got, answer) = call_with_key(&guarded, "POST", "/crdt/merge", merge, key).await;
            assert_eq!(got, status, "POST with {key:?}: {answer}");
            assert!(
                !answer.to_string().contains("0123456789"),
                "no key in an answer: {answer}"
            );
        }
        assert_eq!(call(&guarded, "GET", "/crdt/types", "").await.0, 401);
        assert_eq!(
            call_with_key(&guarded, "GET", "/crdt/types", "", Some(read)).await.0,
            200
        );

        let broken = SpinHost::new(&wasm, &[], &[("API_KEYS", "admin:w-spin-key-0123456789abcdef")]).unwrap();
        let (status, answer) = call(&broken, "POST", "/crdt/merge", merge).await;
        assert_eq!(status, 500, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("API_KEYS"), "{answer}");
        assert!(!answer.to_string().contains("0123456789"), "{answer}");
    });
}

/// A JSON number is read exactly, on Spin as natively, so hosts that take the
/// same state hold the same value. `serde_json`'s default (best-effort)
/// parsing reads `1764634988578647934e-3` as 1764634988578647.8; the
/// workspace builds it with `float_roundtrip` everywhere (the tests' build had
/// it already, through a dev-dependency, while the Spin components and the
/// shipped binary did not).
#[test]
fn a_spin_component_reads_json_numbers_exactly_as_the_native_host_does() {
    let wasm = common::spin_components().join("spin_crdt_service.wasm");
    let merge = r#"{"crdt_type": "LWWRegister", "states": [{"val": 1764634988578647934e-3, "marker": 2}, {"val": 0, "marker": 1}]}"#;
    let exact = 1_764_634_988_578_648.0;
    let native: Value = serde_json::from_str(merge).unwrap();
    assert_eq!(native["states"][0]["val"].as_f64(), Some(exact));
    block_on(async {
        let host = SpinHost::new(&wasm, &[], &[]).unwrap();
        let (status, answer) = call(&host, "POST", "/crdt/merge", merge).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["value"].as_f64(), Some(exact), "{answer}");
    });
}
