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
use serde_json::json;
use std::sync::Arc;

#[derive(Clone)]
struct Feeds {
    requests: Arc<RequestMetrics>,
    network: Arc<dyn Network>,
}

/// `/metrics` and `/api/metrics` over a host's request metrics and network.
pub fn router(requests: Arc<RequestMetrics>, network: Arc<dyn Network>) -> Router {
    Router::new()
        .route("/metrics", get(prometheus))
        .route("/api/metrics", get(api))
        .with_state(Feeds { requests, network })
}

async fn prometheus(State(feeds): State<Feeds>) -> Response {
    let snapshot = scrape::gather(feeds.network.as_ref()).await;
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
    let snapshot = scrape::gather(feeds.network.as_ref()).await;
    axum::Json(json!({
        "performance": {
            "uptime_seconds": feeds.requests.uptime().as_secs_f64(),
            "routes": feeds.requests.performance(),
            "resident_memory_bytes": snapshot.resident_memory_bytes,
        },
        "network": snapshot,
    }))
    .into_response()
}
