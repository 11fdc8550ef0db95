//! The HTTP surface: `/skills/...` and `/verify/...`.

use crate::references::{ReferenceState, check_label};
use crate::service::{AnalyzeRequest, NewExample, SkillService};
use crate::sync::{FetchRequest, Fetched, Membership};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue};
use ramanujan_http::{ApiError, JsonBody};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Names a skill cannot have: they are routes under `/skills/`.
pub const RESERVED_LABELS: [&str; 8] = [
    "analyze",
    "examples",
    "fetch",
    "health",
    "membership",
    "merge",
    "state",
    "stats",
];

/// The routes over `service`.
pub fn router(service: Arc<SkillService>) -> Router {
    Router::new()
        .route("/skills", get(list))
        .route("/skills/examples", post(add_examples))
        .route("/skills/examples/{key}", delete(remove_example))
        .route("/skills/analyze", post(analyze))
        .route("/skills/state", get(state))
        .route("/skills/merge", post(merge))
        .route("/skills/membership", get(membership))
        .route("/skills/fetch", post(fetch))
        .route("/skills/stats", get(stats))
        .route("/skills/health", get(health))
        .route("/skills/{label}", get(skill).delete(remove_skill))
        .route("/verify", post(verify))
        .route("/verify/health", get(health))
        .with_state(service)
}

type Service = State<Arc<SkillService>>;

async fn list(State(s): Service) -> Json<Value> {
    let skills: Vec<Value> = s
        .skills()
        .into_iter()
        .map(|(label, examples)| json!({"label": label, "examples": examples}))
        .collect();
    let config = s.config();
    let model = s.model().map(|m| json!({"dim": m.dim(), "digest": m.digest()}));
    Json(json!({
        "skills": skills,
        "examples": s.len(),
        "verifiers": config.panel.verifiers,
        "dim": config.panel.dim,
        "image_model": model,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddExamples {
    examples: Vec<NewExample>,
}

async fn add_examples(State(s): Service, JsonBody(body): JsonBody<AddExamples>) -> Result<Response, ApiError> {
    if let Some((i, e)) = body
        .examples
        .iter()
        .enumerate()
        .find(|(_, e)| RESERVED_LABELS.contains(&e.label.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "examples[{i}]: {:?} is reserved (a route under /skills/); reserved: {}",
            e.label,
            RESERVED_LABELS.join(", ")
        )));
    }
    let report = s.add_examples(body.examples).await?;
    let status = if report.added.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(report)).into_response())
}

async fn remove_example(State(s): Service, Path(key): Path<String>) -> Result<Json<Value>, ApiError> {
    let report = s
        .remove_example(&key)?
        .ok_or_else(|| ApiError::not_found(format!("no example with key {key:?}")))?;
    Ok(Json(json!(report)))
}

async fn skill(State(s): Service, Path(label): Path<String>) -> Result<Json<Value>, ApiError> {
    let examples = s.skill(&label);
    if examples.is_empty() {
        return Err(unknown_skill(&label));
    }
    let examples: Vec<Value> = examples
        .into_iter()
        .map(|(key, provenance)| json!({"key": key, "provenance": provenance}))
        .collect();
    Ok(Json(json!({"label": label, "examples": examples})))
}

async fn remove_skill(State(s): Service, Path(label): Path<String>) -> Result<Json<Value>, ApiError> {
    let report = s.remove_skill(&label)?.ok_or_else(|| unknown_skill(&label))?;
    Ok(Json(json!(report)))
}

fn unknown_skill(label: &str) -> ApiError {
    match check_label(label) {
        Ok(()) => ApiError::not_found(format!("no skill {label:?}")),
        Err(e) => ApiError::bad_request(e.to_string()),
    }
}

async fn analyze(State(s): Service, JsonBody(request): JsonBody<AnalyzeRequest>) -> Result<Response, ApiError> {
    let (analysis, took) = s.analyze(request).await?;
    let body = serde_json::to_vec(&analysis).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let timing = format!("panel;dur={:.3}", took.as_secs_f64() * 1e3);
    if let Ok(v) = HeaderValue::from_str(&timing) {
        headers.insert("server-timing", v);
    }
    Ok(response)
}

async fn verify(s: Service, JsonBody(request): JsonBody<AnalyzeRequest>) -> Result<Response, ApiError> {
    if request.claimed_skill.is_none() {
        return Err(ApiError::bad_request(
            "POST /verify checks a claim: send `claimed_skill` (or use POST /skills/analyze)",
        ));
    }
    analyze(s, JsonBody(request)).await
}

async fn state(State(s): Service) -> Json<ReferenceState> {
    Json(s.state())
}

async fn merge(State(s): Service, JsonBody(state): JsonBody<ReferenceState>) -> Result<Json<Value>, ApiError> {
    let report = s.merge(state)?;
    Ok(Json(json!(report)))
}

async fn membership(State(s): Service) -> Json<Membership> {
    Json(s.membership())
}

async fn fetch(State(s): Service, JsonBody(request): JsonBody<FetchRequest>) -> Result<Json<Fetched>, ApiError> {
    let examples = s.examples_for(&request.keys)?;
    Ok(Json(Fetched { examples }))
}

async fn stats(State(s): Service) -> Json<Value> {
    Json(json!(s.stats()))
}

async fn health(State(s): Service) -> Json<Value> {
    let references = s.len();
    Json(json!({
        "status": "ok",
        "references": references,
        "ready": references > 0,
        "verifiers": s.config().panel.verifiers,
    }))
}
