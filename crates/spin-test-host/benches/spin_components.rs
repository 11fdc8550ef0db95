//! The Spin components that import Spin's key-value (agent-orchestrator,
//! egraph-service) in the wasmtime-crates test host, next to the same routers
//! served natively, both called in process (no sockets):
//!
//! - `cold_start`: one request on a fresh instance (instantiate + answer), as
//!   the test host serves every request; `duck-colors` (no Spin imports) for scale;
//! - `webhook`: a signed `agent.4.sync` message (a sync push) into an agent
//!   holding a replica of about 1,000 terms: load the agent from key-value,
//!   handle, save. The native router keeps its key-value in memory too;
//! - `egraph`: `POST /egraph/saturate` of an expression seen before (wasm: a
//!   fresh instance finds it in key-value; native: the in-memory memo) and of a
//!   new expression each time (saturation, extraction, and storing the answer).
//!
//! Run: `cargo bench -p spin-test-host --bench spin_components` (builds the Spin
//! components in release first).

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use ramanujan_agent::agent::WorkLimits;
use ramanujan_agent::network::BoxFuture;
use ramanujan_agent::protocol::{Body, Envelope};
use ramanujan_agent::topology::TopologyKind;
use ramanujan_core::replica::ReplicaState;
use ramanujan_hosted::hosted::{Hosted, HostedConfig, MemoryKeyValue, Publisher};
use ramanujan_wire::signature::{SIGNATURE_HEADER, sign};
use ramanujan_wire::wire::{self, Inbound};
use spin_test_host::SpinHost;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tower::ServiceExt;

const SECRET: &str = "bench";

fn components() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("spin-components");
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(root.join("spin/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .unwrap();
    assert!(status.success());
    target.join("wasm32-wasip2/release")
}

/// Nothing is published in these workloads; a publish would be a bench bug.
struct NoPublisher;

impl Publisher for NoPublisher {
    fn publish<'a>(&'a self, subject: &'a str, _: Option<&'a str>, _: Vec<u8>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { Err(format!("unexpected publish on {subject}")) })
    }
}

/// A balanced sum of `n` distinct symbols: about 2n terms.
fn big_expression(from: usize, n: usize) -> String {
    if n == 1 {
        return format!("x{from}");
    }
    let half = n / 2;
    format!(
        "(+ {} {})",
        big_expression(from, half),
        big_expression(from + half, n - half)
    )
}

fn request(method: &str, path: &str, body: Vec<u8>, signature: Option<String>) -> http::Request<Full<Bytes>> {
    let mut r = http::Request::builder()
        .method(method)
        .uri(format!("http://localhost{path}"));
    if let Some(s) = signature {
        r = r.header(SIGNATURE_HEADER, s);
    }
    r.body(Full::new(Bytes::from(body))).unwrap()
}

fn webhook(topic: &str, body: Vec<u8>) -> http::Request<Full<Bytes>> {
    let signature = sign(SECRET.as_bytes(), topic, &body);
    request("POST", &format!("/nats/webhook/{topic}"), body, Some(signature))
}

/// A sync push from agent-3 with message number `seq` (nothing new after the first).
fn push(seq: u64) -> Vec<u8> {
    wire::encode_inbound(&Inbound::Envelope(Envelope {
        from: "agent-3".into(),
        to: "agent-4".into(),
        seq,
        body: Body::SyncPush {
            delta: ReplicaState::new(),
        },
    }))
    .unwrap()
}

fn benches(c: &mut Criterion) {
    let wasm = components();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let submit = wire::encode_inbound(&Inbound::Submit {
        request: "bench".into(),
        expression: big_expression(0, 500),
    })
    .unwrap();

    // The component, with an agent holding ~1,000 terms and no rewriting (max_terms 1).
    let spin = SpinHost::new(&wasm.join("spin_agent_orchestrator.wasm"), &["default"], &[]).unwrap();
    for (k, v) in [("webhook_secret", SECRET), ("agents", "4"), ("max_terms", "1")] {
        spin.set_variable(k, v);
    }
    // The submission floods to the neighbours, which fails without a bridge: saved, then 503.
    let status = rt
        .block_on(spin.handle(webhook("agent.4.sync", submit.clone())))
        .unwrap()
        .status();
    assert_eq!(status, 503);
    assert!(spin.kv_get("default", "agent-4").is_some());

    // The same router natively.
    let hosted = Hosted::new(
        HostedConfig {
            topology: TopologyKind::Sierpinski,
            seed: 1069,
            agents: [4].into(),
            node_id: "native".into(),
            sync_interval: std::time::Duration::from_millis(ramanujan_agent::defaults::SYNC_INTERVAL_MS),
            health_timeout: std::time::Duration::from_millis(ramanujan_agent::defaults::HEALTH_TIMEOUT_MS),
            work: WorkLimits {
                max_terms: 1,
                ..WorkLimits::default()
            },
        },
        Arc::new(MemoryKeyValue::default()),
        Arc::new(NoPublisher),
    );
    let native = ramanujan_hosted::webhook::router(hosted, Some(SECRET.as_bytes().to_vec()));
    let status = rt
        .block_on(
            native
                .clone()
                .oneshot(webhook("agent.4.sync", submit).map(axum::body::Body::new)),
        )
        .unwrap()
        .status();
    assert_eq!(status, 503);

    let colors = SpinHost::new(&wasm.join("spin_duck_colors.wasm"), &[], &[]).unwrap();
    let mut group = c.benchmark_group("cold_start");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("duck_colors GET /colors/palette", |b| {
        b.iter(|| {
            let r = rt
                .block_on(colors.handle(request("GET", "/colors/palette", Vec::new(), None)))
                .unwrap();
            assert_eq!(r.status(), 200);
        })
    });
    group.bench_function("agent_orchestrator GET /agents/status (1,000-term agent)", |b| {
        b.iter(|| {
            let r = rt
                .block_on(spin.handle(request("GET", "/agents/status", Vec::new(), None)))
                .unwrap();
            assert_eq!(r.status(), 200);
        })
    });
    group.finish();

    let seq = AtomicU64::new(1);
    let mut group = c.benchmark_group("webhook agent.4.sync (1,000-term agent)");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("wasm (test host)", |b| {
        b.iter(|| {
            let body = push(seq.fetch_add(1, Ordering::Relaxed));
            let r = rt.block_on(spin.handle(webhook("agent.4.sync", body))).unwrap();
            assert_eq!(r.status(), 200, "{:?}", r.body());
        })
    });
    group.bench_function("native router", |b| {
        b.iter(|| {
            let body = push(seq.fetch_add(1, Ordering::Relaxed));
            let r = rt
                .block_on(
                    native
                        .clone()
                        .oneshot(webhook("agent.4.sync", body).map(axum::body::Body::new)),
                )
                .unwrap();
            let status = r.status();
            let bytes = rt.block_on(r.into_body().collect()).unwrap().to_bytes();
            assert_eq!(status, 200, "{bytes:?}");
        })
    });
    group.finish();
}

fn json_post(path: &str, body: String) -> http::Request<Full<Bytes>> {
    let mut r = request("POST", path, body.into_bytes(), None);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn egraph(c: &mut Criterion) {
    let wasm = components();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let spin = SpinHost::new(&wasm.join("spin_egraph_service.wasm"), &["default"], &[]).unwrap();
    let native = egraph_service::router(
        ramanujan_http::Runtime::default(),
        egraph_service::DEFAULT_CACHE_CAPACITY,
    );
    let seen = r#"{"expression": "(+ (* a b) (* a c))"}"#.to_string();
    let cached = |r: &http::Response<Bytes>| -> bool {
        serde_json::from_slice::<serde_json::Value>(r.body()).unwrap()["cached"] == true
    };
    let native_call = |req: http::Request<Full<Bytes>>| -> http::Response<Bytes> {
        let r = rt
            .block_on(native.clone().oneshot(req.map(axum::body::Body::new)))
            .unwrap();
        let (parts, body) = r.into_parts();
        http::Response::from_parts(parts, rt.block_on(body.collect()).unwrap().to_bytes())
    };
    // Warm both memos.
    rt.block_on(spin.handle(json_post("/egraph/saturate", seen.clone())))
        .unwrap();
    native_call(json_post("/egraph/saturate", seen.clone()));

    let mut group = c.benchmark_group("egraph POST /egraph/saturate");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("seen before, wasm (fresh instance, key-value hit)", |b| {
        b.iter(|| {
            let r = rt
                .block_on(spin.handle(json_post("/egraph/saturate", seen.clone())))
                .unwrap();
            assert!(cached(&r));
        })
    });
    group.bench_function("seen before, native (memo hit)", |b| {
        b.iter(|| assert!(cached(&native_call(json_post("/egraph/saturate", seen.clone())))))
    });
    let n = AtomicU64::new(0);
    let fresh = || {
        format!(
            r#"{{"expression": "(+ (* a{0} b) (* a{0} c))"}}"#,
            n.fetch_add(1, Ordering::Relaxed)
        )
    };
    group.bench_function("new expression, wasm", |b| {
        b.iter(|| {
            let r = rt
                .block_on(spin.handle(json_post("/egraph/saturate", fresh())))
                .unwrap();
            assert!(!cached(&r));
        })
    });
    group.bench_function("new expression, native", |b| {
        b.iter(|| assert!(!cached(&native_call(json_post("/egraph/saturate", fresh())))))
    });
    group.finish();
}

criterion_group!(spin_components, benches, egraph);
criterion_main!(spin_components);
