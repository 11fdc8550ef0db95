//! `egraph-service` as a Spin component in the wasmtime-crates test host
//! (`spin-test-host`, Spin's key-value in memory): every request gets a fresh
//! instance, as under Spin, so an answer memoised in one instance is found by
//! the next only through the shared key-value store.

mod common;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;
use spin_test_host::SpinHost;

async fn call(host: &SpinHost, method: &str, path: &str, body: &str) -> (u16, Value) {
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = host.handle(request).await.expect("the component answers");
    let status = response.status().as_u16();
    (status, serde_json::from_slice(response.body()).unwrap_or(Value::Null))
}

#[test]
fn egraph_service_shares_its_memo_between_instances_through_key_value() {
    let wasm = common::spin_components().join("spin_egraph_service.wasm");
    let host = SpinHost::new(&wasm, &["default"], &[("COMPONENT_ID", "egraph-test")]).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
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
    rt.block_on(async {
        let (status, answer) = call(&ungranted, "POST", "/egraph/saturate", r#"{"expression": "(* x 1)"}"#).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["cached"], false);
    });
}
