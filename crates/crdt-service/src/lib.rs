//! # crdt-service
//!
//! Merges CRDT states for other components and outside clients:
//!
//! - [`kinds`]: the types behind one trait — `TextCRDT`, `Map`, `Array` (Yjs
//!   documents on yrs, [`yjs`]), `GCounter`, `PNCounter`, `LWWRegister`,
//!   `MVRegister`, `ORSet`, `CausalContext` (the `crdts` crate's serde states) and
//!   the core's `EGraph`.
//! - [`merge`]: merging, memoised in a bounded LRU keyed by a canonical form
//!   of the inputs, with identical / hit / contained / miss counted apart; diffs
//!   and operations.
//! - [`types`]: wire names and what `GET /crdt/types` says.
//!
//! Routes: `POST /crdt/merge`, `POST /crdt/diff`, `POST /crdt/apply`,
//! `GET /crdt/types`, `GET /crdt/stats`.

mod clocks;
pub mod kinds;
pub mod merge;
pub mod types;
pub mod yjs;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use merge::Merger;
use ramanujan_events::{Emitter, Event, Kind};
use ramanujan_http::{ApiError, JsonBody};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use types::CrdtType;

/// Answers the merge cache keeps by default.
pub const DEFAULT_CACHE_CAPACITY: usize = 4096;

/// The service's state: the merger and where its merges are recorded.
struct Service {
    merger: Arc<Merger>,
    events: Option<Emitter>,
}

/// The `/crdt` routes, with a merge memo of `cache_capacity` answers; each
/// merge is recorded as a `crdt_merge` event in `events`, if given.
pub fn router(cache_capacity: usize, events: Option<Emitter>) -> Router {
    router_over(Arc::new(Merger::new(cache_capacity)), events)
}

/// The `/crdt` routes over `merger`, which the host may also read (its
/// counters for `/metrics`).
pub fn router_over(merger: Arc<Merger>, events: Option<Emitter>) -> Router {
    Router::new()
        .route("/crdt/merge", post(merge))
        .route("/crdt/diff", post(diff))
        .route("/crdt/apply", post(apply))
        .route("/crdt/types", get(types))
        .route("/crdt/stats", get(stats))
        .route("/crdt/health", get(health))
        .with_state(Arc::new(Service { merger, events }))
}

/// States of one CRDT type to merge.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CrdtMergeRequest)]
struct MergeRequest {
    /// The type: one of `TextCRDT`, `Map`, `Array`, `GCounter`, `PNCounter`, `LWWRegister`, `MVRegister`, `ORSet`, `CausalContext`, `EGraph` (`GET /crdt/types`).
    #[schema(example = "GCounter")]
    crdt_type: String,
    /// The states, each in the type's wire form.
    states: Vec<Value>,
    /// For Yjs types: the root to read.
    #[serde(default)]
    root: Option<String>,
}

/// What `state` has that `since` lacks.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CrdtDiffRequest)]
struct DiffRequest {
    /// The type: one of `TextCRDT`, `Map`, `Array`, `GCounter`, `PNCounter`, `LWWRegister`, `MVRegister`, `ORSet`, `CausalContext`, `EGraph` (`GET /crdt/types`).
    #[schema(example = "GCounter")]
    crdt_type: String,
    /// The newer state.
    state: Value,
    /// The older state (none: everything).
    #[serde(default)]
    since: Option<Value>,
}

/// Operations applied to a state.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CrdtApplyRequest)]
struct ApplyRequest {
    /// The type: one of `TextCRDT`, `Map`, `Array`, `GCounter`, `PNCounter`, `LWWRegister`, `MVRegister`, `ORSet`, `CausalContext`, `EGraph` (`GET /crdt/types`).
    #[schema(example = "GCounter")]
    crdt_type: String,
    /// The state to start from (none: the empty one).
    #[serde(default)]
    state: Option<Value>,
    /// The operations, in the type's form (`GET /crdt/types`).
    ops: Vec<Value>,
    /// Who applies them.
    #[serde(default)]
    actor: Option<String>,
    /// For Yjs types: the root to change.
    #[serde(default)]
    root: Option<String>,
}

fn json_response(body: bytes::Bytes) -> Response {
    (StatusCode::OK, [(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Merges states of one type: the least upper bound, memoised.
#[utoipa::path(post, path = "/crdt/merge", tag = "crdt-service", request_body = MergeRequest,
    responses((status = 200, description = "the merged state and its value (the `x-crdt-merge` header says how it was answered)", body = merge::CrdtAnswer), ramanujan_http::JsonBodyErrors))]
async fn merge(
    State(service): State<Arc<Service>>,
    JsonBody(req): JsonBody<MergeRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (body, outcome) = service
        .merger
        .merge(&req.crdt_type, req.states, req.root.as_deref())
        .map_err(|e| ApiError::bad_request(e.0))?;
    if let Some(events) = &service.events {
        events.emit(Event::from_component(
            "crdt-service",
            Kind::CrdtMerge {
                crdt_type: req.crdt_type,
                cache: outcome.name().to_string(),
                duration_us: started.elapsed().as_micros() as u64,
            },
        ));
    }
    let mut response = json_response(body);
    response
        .headers_mut()
        .insert("x-crdt-merge", HeaderValue::from_static(outcome.name()));
    Ok(response)
}

/// The part of `state` that `since` lacks (a delta).
#[utoipa::path(post, path = "/crdt/diff", tag = "crdt-service", request_body = DiffRequest,
    responses((status = 200, description = "the delta", body = merge::CrdtDelta), ramanujan_http::JsonBodyErrors))]
async fn diff(State(service): State<Arc<Service>>, JsonBody(req): JsonBody<DiffRequest>) -> Result<Response, ApiError> {
    let body = service
        .merger
        .diff(&req.crdt_type, req.state, req.since)
        .map_err(|e| ApiError::bad_request(e.0))?;
    Ok(json_response(body))
}

/// Applies operations to a state.
#[utoipa::path(post, path = "/crdt/apply", tag = "crdt-service", request_body = ApplyRequest,
    responses((status = 200, description = "the new state and its value", body = merge::CrdtAnswer), ramanujan_http::JsonBodyErrors))]
async fn apply(
    State(service): State<Arc<Service>>,
    JsonBody(req): JsonBody<ApplyRequest>,
) -> Result<Response, ApiError> {
    let body = service
        .merger
        .apply(
            &req.crdt_type,
            req.state,
            req.ops,
            req.actor.as_deref(),
            req.root.as_deref(),
        )
        .map_err(|e| ApiError::bad_request(e.0))?;
    Ok(json_response(body))
}

/// The types served, their wire forms and operations.
/// The types served (`GET /crdt/types`).
#[derive(Serialize, utoipa::ToSchema)]
struct Types {
    /// Each type: its wire form, operations, diff and value.
    types: [types::TypeInfo; 10],
}

#[utoipa::path(get, path = "/crdt/types", tag = "crdt-service", responses((status = 200, description = "the types", body = Types)))]
async fn types() -> Json<Types> {
    Json(Types {
        types: CrdtType::ALL.map(CrdtType::describe),
    })
}

#[utoipa::path(get, path = "/crdt/health", tag = "crdt-service", responses((status = 200, description = "the component answers", body = ramanujan_http::openapi::Health)))]
async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "component": "crdt-service"}))
}

/// The merge memo's counters.
#[utoipa::path(get, path = "/crdt/stats", tag = "crdt-service", responses((status = 200, description = "merges by how they were answered, the cache's size", body = merge::MergeStats)))]
async fn stats(State(service): State<Arc<Service>>) -> Json<merge::MergeStats> {
    Json(service.merger.stats())
}

/// The component's routes, described (merged into the host's `/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(merge, diff, apply, types, health, stats))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}
