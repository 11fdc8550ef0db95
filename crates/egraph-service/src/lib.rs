//! # egraph-service
//!
//! `POST /egraph/saturate` runs rounds of RED, BLUE and GREEN rewriting on an
//! expression until a whole round changes nothing (the colours' common fixpoint)
//! or a limit stops it, then GREEN verification and extraction, and answers the
//! canonical form, its cost, the e-class and e-node counts, the rounds and why
//! they stopped, each phase's report and the verification. Answers are memoised (a [`MemoCache`], bounded in count and bytes) keyed by a content hash of
//! expression, rules, options and limits, and, where the host shares a
//! key-value store ([`Runtime::shared`], Spin's on Spin), there too under
//! `egraph/memo/{key}`, so that every instance answers what any one computed.
//! `GET /egraph/stats` shows the hit ratio, `GET /egraph/health` that the
//! service is up.

mod request;

pub use ramanujan_http::{CacheStats, MemoCache};
pub use request::{Checked, SaturateRequest};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use ramanujan_core::saturate::SaturationReport;
use ramanujan_events::{Event, Kind};
use ramanujan_http::{ApiError, JsonBody, Runtime, offload};
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Default number of memoised answers (`EGRAPH_CACHE_CAPACITY`).
pub const DEFAULT_CACHE_CAPACITY: usize = 1024;

/// The service's state.
pub struct EgraphService {
    runtime: Runtime,
    cache: MemoCache,
    saturations: AtomicU64,
    /// Answers found in the shared store (after a miss in the local cache).
    shared_hits: AtomicU64,
}

/// `GET /egraph/stats`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EgraphStats {
    /// The memo cache of answers.
    pub cache: ramanujan_http::memo::CacheStats,
    /// Saturations run (cache misses).
    pub saturations: u64,
    /// The store shared between hosts (Spin's key-value store).
    pub shared: SharedStats,
}

/// The shared store's use.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SharedStats {
    /// A shared store is configured.
    pub enabled: bool,
    /// Answers found there after a miss in the local cache.
    pub hits: u64,
}

/// A saturation's answer: the report, whether it came from the memo cache,
/// and the request's key there.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = SaturateAnswer)]
struct Answer<'a> {
    /// Answered from the memo cache (or the shared store).
    cached: bool,
    /// The request's key in the memo cache (hex).
    key: String,
    #[serde(flatten)]
    report: &'a SaturationReport,
}

fn hex(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

fn json_bytes(value: &impl Serialize) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value).map(Bytes::from).map_err(|e| ApiError {
        status: http::StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("could not encode the answer: {e}"),
    })
}

fn json_response(body: Bytes) -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

impl EgraphService {
    /// A service with a cache of `cache_capacity` answers (and at most
    /// [`ramanujan_http::memo::DEFAULT_MAX_BYTES`] of them).
    pub fn new(runtime: Runtime, cache_capacity: usize) -> Self {
        Self::with_cache_bytes(runtime, cache_capacity, ramanujan_http::memo::DEFAULT_MAX_BYTES)
    }

    /// A service with a cache of at most `cache_capacity` answers and
    /// `max_bytes` bytes of them (`CACHE_SIZE_MB`).
    pub fn with_cache_bytes(runtime: Runtime, cache_capacity: usize, max_bytes: usize) -> Self {
        EgraphService {
            runtime,
            cache: MemoCache::with_max_bytes(cache_capacity, max_bytes),
            saturations: AtomicU64::new(0),
            shared_hits: AtomicU64::new(0),
        }
    }

    /// Validates, answers from the cache, or saturates and caches; records
    /// a `saturation` event (how long, whether cached) for each answer.
    pub async fn saturate(&self, req: SaturateRequest) -> Result<Response, ApiError> {
        let started = Instant::now();
        let (response, cached) = self.answer(req).await?;
        if let Some(events) = &self.runtime.events {
            events.emit(Event::from_component(
                "egraph-service",
                Kind::Saturation {
                    duration_us: started.elapsed().as_micros() as u64,
                    cached,
                },
            ));
        }
        Ok(response)
    }

    /// The answer, and whether it came from a cache.
    async fn answer(&self, req: SaturateRequest) -> Result<(Response, bool), ApiError> {
        let checked = req.check(self.runtime.saturation_timeout, self.runtime.time_ceiling)?;
        let key = checked.key;
        if let Some(hit) = self.cache.get(&key) {
            return Ok((json_response(hit), true));
        }
        let shared_key = format!("egraph/memo/{}", hex(&key));
        if let Some(store) = &self.runtime.shared {
            // A store that fails is a cache that misses: the answer is computed.
            if let Ok(Some(hit)) = store.get(&shared_key).await {
                self.shared_hits.fetch_add(1, Ordering::Relaxed);
                let hit = Bytes::from(hit);
                self.cache.put(key, hit.clone());
                return Ok((json_response(hit), true));
            }
        }
        let saturation = checked.into_saturation()?;
        self.saturations.fetch_add(1, Ordering::Relaxed);
        let report = offload::run(&self.runtime.offload, move || saturation.run()).await?;
        let key_hex = hex(&key);
        let hit = json_bytes(&Answer {
            cached: true,
            key: key_hex.clone(),
            report: &report,
        })?;
        if let Some(store) = &self.runtime.shared
            && let Err(e) = store.set(&shared_key, hit.to_vec()).await
        {
            tracing::warn!(error = %e, "could not share a memoised answer");
        }
        self.cache.put(key, hit);
        let answer = json_bytes(&Answer {
            cached: false,
            key: key_hex,
            report: &report,
        })?;
        Ok((json_response(answer), false))
    }

    /// The memo cache's counters (a hit is a saturation answered from it).
    pub fn cache_stats(&self) -> ramanujan_http::memo::CacheStats {
        self.cache.stats()
    }

    /// `/egraph/stats`.
    pub fn stats(&self) -> EgraphStats {
        EgraphStats {
            cache: self.cache.stats(),
            saturations: self.saturations.load(Ordering::Relaxed),
            shared: SharedStats {
                enabled: self.runtime.shared.is_some(),
                hits: self.shared_hits.load(Ordering::Relaxed),
            },
        }
    }
}

/// Saturates an expression with the RED, BLUE and GREEN rules (and any given),
/// answering its canonical form, the phases run and GREEN's verification;
/// answers are memoised by request.
#[utoipa::path(post, path = "/egraph/saturate", tag = "egraph-service", request_body = SaturateRequest,
    responses(
        (status = 200, description = "the canonical form, the phases and GREEN's verification", body = Answer),
        ramanujan_http::JsonBodyErrors,
        (status = 503, description = "too many saturations waiting, or the time ran out", body = ramanujan_http::ErrorBody),
    ))]
async fn saturate(
    State(s): State<Arc<EgraphService>>,
    JsonBody(req): JsonBody<SaturateRequest>,
) -> Result<Response, ApiError> {
    s.saturate(req).await
}

/// The memo cache's counters and the saturations run.
#[utoipa::path(get, path = "/egraph/stats", tag = "egraph-service", responses((status = 200, description = "the cache's counters and the saturations run", body = EgraphStats)))]
async fn stats(State(s): State<Arc<EgraphService>>) -> Json<EgraphStats> {
    Json(s.stats())
}

#[utoipa::path(get, path = "/egraph/health", tag = "egraph-service", responses((status = 200, description = "the component answers", body = ramanujan_http::openapi::Health)))]
async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "component": "egraph-service"}))
}

/// The component's routes, described (merged into the host's `/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(saturate, stats, health))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

/// The component's routes, over a service with a cache of `cache_capacity` answers.
pub fn router(runtime: Runtime, cache_capacity: usize) -> Router {
    router_over(Arc::new(EgraphService::new(runtime, cache_capacity)))
}

/// The component's routes over `service`, which the host may also read (its
/// cache's counters for `/metrics`).
pub fn router_over(service: Arc<EgraphService>) -> Router {
    Router::new()
        .route("/egraph/saturate", post(saturate))
        .route("/egraph/stats", get(stats))
        .route("/egraph/health", get(health))
        .with_state(service)
}
