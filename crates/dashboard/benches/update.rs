//! The server's time to build one dashboard update (`GET /api/metrics`, what
//! each `/api/metrics/stream` event carries) and one Prometheus scrape
//! (`GET /metrics`), for 9 agents (S(2,3)) and 48 (the expander), in process,
//! after 20 settled submissions. Issue #18's goal: an update for 48 agents in
//! at most 5 ms.
//!
//! Run: `cargo bench -p dashboard --bench update`

use criterion::{Criterion, criterion_group, criterion_main};
use dashboard::{RequestMetrics, Settling};
use ramanujan_agent::Network;
use ramanujan_core::parse::parse_expr;
use ramanujan_http::testing::send_raw;
use ramanujan_network::{InProcessNetwork, NetworkConfig, TopologyKind};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A network of `topology` that took 20 submissions through the host's
/// follower, each followed until it settled (so the update carries their times).
fn network(topology: TopologyKind) -> (Arc<InProcessNetwork>, Arc<Settling>) {
    let network = InProcessNetwork::start(NetworkConfig {
        topology,
        sync_interval: Duration::from_millis(200),
        ..NetworkConfig::default()
    })
    .unwrap();
    let settling = Settling::new(network.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (_closing_tx, closing) = tokio::sync::watch::channel(false);
    runtime.block_on(async {
        tokio::spawn(dashboard::settling::follow(Arc::downgrade(&settling), closing));
        for i in 0..20 {
            let expr = format!("(+ (* a{i} b) (* a{i} c))");
            settling.submit(parse_expr(&expr).unwrap()).await.unwrap();
        }
        let started = Instant::now();
        while settling.convergence().settled < 20 && started.elapsed() < Duration::from_secs(120) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert_eq!(settling.convergence().settled, 20, "every submission settles");
    let started = Instant::now();
    while !network.is_converged() && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(50));
    }
    (network, settling)
}

fn benches(c: &mut Criterion) {
    for (name, topology) in [
        ("9_agents", TopologyKind::Sierpinski),
        ("48_agents", TopologyKind::Ramanujan { agents: 48, degree: 4 }),
    ] {
        let (network, settling) = network(topology);
        let (_closing_tx, closing) = tokio::sync::watch::channel(false);
        let requests = RequestMetrics::new();
        let app = dashboard::router(
            requests.clone(),
            settling,
            Default::default(),
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
