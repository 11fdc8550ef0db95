//! # dashboard
//!
//! What a host has done and how its network is, for people and for monitoring
//! systems: `GET /metrics` in the Prometheus text format (0.0.4),
//! `GET /api/metrics` as JSON, with a `performance` section (requests, error
//! counts and latency percentiles per route, caches), and the same JSON as
//! server-sent events every `METRICS_REFRESH_MS` at `GET /api/metrics/stream`. Each host owns one
//! [`RequestMetrics`], counted by the [`track`] middleware it layers on its
//! router, and reads its network when asked ([`scrape`]).
//!
//! The live page itself is [`page`]: `GET /` and `GET /dashboard`, every asset
//! embedded.

pub mod page;
pub mod requests;
pub mod scrape;
pub mod settling;

pub use requests::{RequestMetrics, RoutePerformance, track};
pub use scrape::{CacheProbe, Probes, Reading, ReadingsProbe};
pub use settling::Settling;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::future::Either;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Milliseconds between two updates of `/api/metrics/stream` unless the host
/// says otherwise (`METRICS_REFRESH_MS`).
pub const DEFAULT_REFRESH_MS: u64 = 1_000;

#[derive(Clone)]
struct Feeds {
    requests: Arc<RequestMetrics>,
    network: Arc<Settling>,
    probes: Arc<Probes>,
    refresh: Duration,
    closing: watch::Receiver<bool>,
    /// The last update the streams sent and when it was built: every stream
    /// that asks within half a refresh sends the same one, so the host builds
    /// about one update per refresh however many pages are open.
    shared: SharedUpdate,
}

/// The last update built for the streams, and when.
type SharedUpdate = Arc<tokio::sync::Mutex<Option<(Instant, Arc<str>)>>>;

/// `/metrics`, `/api/metrics` and `/api/metrics/stream` over a host's request
/// metrics, its network (with the submissions it follows: see [`settling`])
/// and what its components report ([`Probes`]: caches and readings); the stream
/// sends an update every `refresh`, and ends once `closing` turns true (the
/// host is stopping: it waits for every open response).
pub fn router(
    requests: Arc<RequestMetrics>,
    network: Arc<Settling>,
    probes: Probes,
    refresh: Duration,
    closing: watch::Receiver<bool>,
) -> Router {
    Router::new()
        .route("/metrics", get(prometheus))
        .route("/api/metrics", get(api))
        .route("/api/metrics/stream", get(stream))
        .route("/dashboard/health", get(health))
        .with_state(Feeds {
            requests,
            network,
            probes: Arc::new(probes),
            refresh,
            closing,
            shared: Arc::default(),
        })
        .merge(page::router())
}

/// The host's metrics in Prometheus's text format.
#[utoipa::path(get, path = "/metrics", tag = "dashboard", responses((status = 200, description = "Prometheus text", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)))]
async fn prometheus(State(feeds): State<Feeds>) -> Response {
    let snapshot = feeds.snapshot().await;
    let mut out = String::new();
    let mut settling = prometheus_client::registry::Registry::default();
    feeds.network.register(&mut settling);
    let encoded = feeds
        .requests
        .encode(&mut out)
        .and_then(|()| snapshot.encode(&mut out))
        .and_then(|()| prometheus_client::encoding::prometheus_text::encode(&mut out, &settling));
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

/// `stopping` once the host is stopping (its streams are ending).
#[utoipa::path(get, path = "/dashboard/health", tag = "dashboard", responses((status = 200, description = "`ok`, or `stopping`", body = ramanujan_http::openapi::Health)))]
async fn health(State(feeds): State<Feeds>) -> Response {
    let status = if *feeds.closing.borrow() { "stopping" } else { "ok" };
    axum::Json(serde_json::json!({"status": status, "component": "dashboard"})).into_response()
}

/// What the dashboard draws: requests, the network, submissions settling,
/// components' caches and readings.
#[utoipa::path(get, path = "/api/metrics", tag = "dashboard", responses((status = 200, description = "one update", body = Update)))]
async fn api(State(feeds): State<Feeds>) -> Response {
    axum::Json(feeds.update().await).into_response()
}

/// `/api/metrics` as server-sent events: an `update` event at once, then one
/// every refresh. Each is read when the client is ready for it, so a client
/// that does not read costs nothing and queues nothing.
#[utoipa::path(get, path = "/api/metrics/stream", tag = "dashboard", responses((status = 200, description = "server-sent `update` events, one per refresh, until the host stops", content_type = "text/event-stream", body = String)))]
async fn stream(State(feeds): State<Feeds>) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let updates = futures_util::stream::unfold((feeds, true), |(feeds, first)| async move {
        if !first {
            let paced = std::pin::pin!(tokio::time::sleep(feeds.refresh));
            let mut closing = feeds.closing.clone();
            let closed = std::pin::pin!(async move {
                let _ = closing.wait_for(|&c| c).await;
            });
            if let Either::Right(_) = futures_util::future::select(paced, closed).await {
                return None;
            }
        }
        if *feeds.closing.borrow() {
            return None;
        }
        let update = feeds.shared_update().await;
        let event = Event::default().event("update").data(&*update);
        Some((Ok(event), (feeds, false)))
    });
    Sse::new(updates)
}

impl Feeds {
    /// The update the streams share: the last one built, if it is younger
    /// than half a refresh, else a new one (built once while other streams
    /// wait for it).
    async fn shared_update(&self) -> Arc<str> {
        let mut shared = self.shared.lock().await;
        if let Some((built, update)) = shared.as_ref()
            && built.elapsed() < self.refresh / 2
        {
            return update.clone();
        }
        let update: Arc<str> = serde_json::to_string(&self.update().await).unwrap_or_default().into();
        *shared = Some((Instant::now(), update.clone()));
        update
    }

    async fn snapshot(&self) -> scrape::Snapshot {
        scrape::gather(self.network.as_ref(), &self.probes).await
    }

    /// What `/api/metrics` answers and each stream update carries.
    async fn update(&self) -> Update {
        let snapshot = self.snapshot().await;
        // The host's clock, so a page asks the timeline about the host's last minute.
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Update {
            refresh_ms: self.refresh.as_millis() as u64,
            now_us,
            performance: Performance {
                uptime_seconds: self.requests.uptime().as_secs_f64(),
                routes: self.requests.performance(),
                families: self.requests.families(),
                caches: snapshot.caches.clone(),
                components: snapshot.components.clone(),
                resident_memory_bytes: snapshot.resident_memory_bytes,
            },
            network: snapshot,
            convergence: self.network.convergence(),
        }
    }
}

/// What `/api/metrics` answers and each stream update carries.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Update {
    /// How often the stream sends one, in milliseconds.
    pub refresh_ms: u64,
    /// The host's clock, µs since the Unix epoch.
    pub now_us: u64,
    /// Requests, caches, components' readings, memory.
    pub performance: Performance,
    /// The network: agents, edges, whether it has converged.
    pub network: scrape::Snapshot,
    /// Time to settled of the submissions the host took.
    pub convergence: settling::Convergence,
}

/// The host's work, as `/api/metrics` reports it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Performance {
    /// Since the host started.
    pub uptime_seconds: f64,
    /// Per route.
    pub routes: Vec<RoutePerformance>,
    /// Per route family (`/agents`, `/crdt`, ...).
    pub families: Vec<RoutePerformance>,
    /// Each component's memo cache, by component.
    pub caches: std::collections::BTreeMap<String, ramanujan_http::memo::CacheStats>,
    /// What each component reports of its own work, by component.
    pub components: std::collections::BTreeMap<String, Vec<Reading>>,
    /// The process's resident memory, where the system tells it (Linux).
    pub resident_memory_bytes: Option<u64>,
}

/// The dashboard's routes, described (merged into the host's `/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(prometheus, health, api, stream, page::index, page::dashboard, page::asset))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}
