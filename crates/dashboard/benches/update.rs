//! The server's time to build one dashboard update (`GET /api/metrics`, what
//! each `/api/metrics/stream` event carries) and one Prometheus scrape
//! (`GET /metrics`), for 9 agents (S(2,3)) and 48 (the expander), in process,
//! after 20 settled submissions. Issue #18's goal: an update for 48 agents in
//! at most 5 ms.
//!
//! Run: `cargo bench -p dashboard --bench update`

use criterion::{Criterion, criterion_group, criterion_main};
use dashboard::RequestMetrics;
use ramanujan_core::parse::parse_expr;
use ramanujan_http::testing::send_raw;
use ramanujan_network::{InProcessNetwork, NetworkConfig, TopologyKind};
use std::time::{Duration, Instant};

fn network(topology: TopologyKind) -> std::sync::Arc<InProcessNetwork> {
    let network = InProcessNetwork::start(NetworkConfig {
        topology,
        sync_interval: Duration::from_millis(200),
        ..NetworkConfig::default()
    })
    .unwrap();
    for i in 0..20 {
        let expr = format!("(+ (* a{i} b) (* a{i} c))");
        network.submit_expr(&parse_expr(&expr).unwrap()).unwrap();
    }
    let started = Instant::now();
    while !network.is_converged() && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(50));
    }
    network
}

fn benches(c: &mut Criterion) {
    for (name, topology) in [
        ("9_agents", TopologyKind::Sierpinski),
        ("48_agents", TopologyKind::Ramanujan { agents: 48, degree: 4 }),
    ] {
        let network = network(topology);
        let (_closing_tx, closing) = tokio::sync::watch::channel(false);
        let requests = RequestMetrics::new();
        let app = dashboard::router(
            requests.clone(),
            network.clone(),
            Vec::new(),
            Duration::from_secs(1),
            closing,
        )
        .layer(axum::middleware::from_fn_with_state(requests, dashboard::track));
        let mut group = c.benchmark_group(name);
        group.bench_function("api_metrics", |b| {
            b.iter(|| {
                let (status, body) = send_raw(&app, "GET", "/api/metrics", "");
                assert!(status.is_success() && !body.is_empty());
            })
        });
        group.bench_function("prometheus_scrape", |b| {
            b.iter(|| {
                let (status, body) = send_raw(&app, "GET", "/metrics", "");
                assert!(status.is_success() && !body.is_empty());
            })
        });
        group.finish();
        network.shutdown();
    }
}

criterion_group! {
    name = update;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(update);
