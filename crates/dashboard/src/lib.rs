//! # dashboard
//!
//! What a host has done and how its network is, for people and for monitoring
//! systems: `GET /metrics` in the Prometheus text format (0.0.4) and
//! `GET /api/metrics` as JSON, with a `performance` section (requests, error
//! counts and latency percentiles per route). Each host owns one
//! [`RequestMetrics`], counted by the [`track`] middleware it layers on its
//! router, and reads its network when asked ([`scrape`]).
//!
//! The live page (issue #18) comes next; this crate serves its feeds.

pub mod requests;
pub mod scrape;

pub use requests::{RequestMetrics, RoutePerformance, track};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ramanujan_agent::Network;
use ramanujan_http::memo::CacheStats;
use serde_json::json;
use std::sync::Arc;

/// Reads one component's memo cache (its hits, misses, entries and bytes).
pub type CacheProbe = Arc<dyn Fn() -> CacheStats + Send + Sync>;

#[derive(Clone)]
struct Feeds {
    requests: Arc<RequestMetrics>,
    network: Arc<dyn Network>,
    caches: Arc<[(&'static str, CacheProbe)]>,
}

/// `/metrics` and `/api/metrics` over a host's request metrics, its network
/// and its components' caches (each by the component's name).
pub fn router(
    requests: Arc<RequestMetrics>,
    network: Arc<dyn Network>,
    caches: Vec<(&'static str, CacheProbe)>,
) -> Router {
    Router::new()
        .route("/metrics", get(prometheus))
        .route("/api/metrics", get(api))
        .with_state(Feeds {
            requests,
            network,
            caches: caches.into(),
        })
}

impl Feeds {
    async fn snapshot(&self) -> scrape::Snapshot {
        let mut snapshot = scrape::gather(self.network.as_ref()).await;
        snapshot.caches = self
            .caches
            .iter()
            .map(|(name, probe)| (name.to_string(), probe()))
            .collect();
        snapshot
    }
}

async fn prometheus(State(feeds): State<Feeds>) -> Response {
    let snapshot = feeds.snapshot().await;
    let mut out = String::new();
    let encoded = feeds.requests.encode(&mut out).and_then(|()| snapshot.encode(&mut out));
    match encoded {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            out,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": "the metrics could not be encoded"})),
        )
            .into_response(),
    }
}

async fn api(State(feeds): State<Feeds>) -> Response {
    let snapshot = feeds.snapshot().await;
    axum::Json(json!({
        "performance": {
            "uptime_seconds": feeds.requests.uptime().as_secs_f64(),
            "routes": feeds.requests.performance(),
            "caches": snapshot.caches,
            "resident_memory_bytes": snapshot.resident_memory_bytes,
        },
        "network": snapshot,
    }))
    .into_response()
}
