//! The HTTP surface: `/skills/...` and `/verify/...`.

use crate::references::{Provenance, ReferenceState, check_label};
use crate::service::{Analysis, AnalyzeRequest, ChangeReport, NewExample, SkillService, SkillStats};
use crate::sync::{FetchRequest, Fetched, Membership};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue};
use ramanujan_http::{ApiError, JsonBody};
use serde::{Deserialize, Serialize};
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

/// The skills held (label, examples), the panel of verifiers and the image model.
#[utoipa::path(get, path = "/skills", tag = "skill-verification", responses((status = 200, description = "the skills, the panel and the image model", body = Skills)))]
async fn list(State(s): Service) -> Json<Skills> {
    let config = s.config();
    Json(Skills {
        skills: s
            .skills()
            .into_iter()
            .map(|(label, examples)| SkillCount { label, examples })
            .collect(),
        examples: s.len(),
        verifiers: config.panel.verifiers,
        dim: config.panel.dim,
        image_model: s.model().map(|m| ImageModelInfo {
            dim: m.dim(),
            digest: m.digest().to_string(),
        }),
    })
}

/// `GET /skills`.
#[derive(Serialize, utoipa::ToSchema)]
struct Skills {
    /// Each skill held and its examples.
    skills: Vec<SkillCount>,
    /// Examples held in all.
    examples: usize,
    /// Verifiers on the panel.
    verifiers: usize,
    /// The embeddings' dimension.
    dim: usize,
    /// The image model, when one is loaded (images are then taken as well as embeddings).
    image_model: Option<ImageModelInfo>,
}

/// A skill and how many examples show it.
#[derive(Serialize, utoipa::ToSchema)]
struct SkillCount {
    /// Its label.
    label: String,
    /// Its examples.
    examples: usize,
}

/// The image model loaded.
#[derive(Serialize, utoipa::ToSchema)]
struct ImageModelInfo {
    /// The dimension of its embeddings.
    dim: usize,
    /// Its file's digest.
    digest: String,
}

/// `GET /skills/{label}`.
#[derive(Serialize, utoipa::ToSchema)]
struct SkillExamples {
    /// The skill.
    label: String,
    /// Its examples: their keys and provenance.
    examples: Vec<KeyedExample>,
}

/// An example's key and where it came from.
#[derive(Serialize, utoipa::ToSchema)]
struct KeyedExample {
    /// Its content key.
    key: String,
    /// Everyone who added it.
    provenance: Vec<Provenance>,
}

/// `GET /skills/health`.
#[derive(Serialize, utoipa::ToSchema)]
struct SkillHealth {
    /// `ok`.
    status: &'static str,
    /// Examples held.
    references: usize,
    /// Some are held: analyses can be answered.
    ready: bool,
    /// Verifiers on the panel.
    verifiers: usize,
}

/// Reference examples to add.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AddExamples {
    /// The examples.
    examples: Vec<NewExample>,
}

/// Adds reference examples (an embedding, or an image with an image model).
#[utoipa::path(post, path = "/skills/examples", tag = "skill-verification", request_body = AddExamples,
    responses((status = 201, description = "some were new", body = ChangeReport),
        (status = 200, description = "all were held already", body = ChangeReport), ramanujan_http::JsonBodyErrors))]
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

/// Removes one example.
#[utoipa::path(delete, path = "/skills/examples/{key}", tag = "skill-verification", params(("key" = String, Path, description = "the example's key")),
    responses((status = 200, description = "what was removed", body = ChangeReport), (status = 404, description = "no such example", body = ramanujan_http::ErrorBody),
        (status = 400, description = "a malformed key", body = ramanujan_http::ErrorBody)))]
async fn remove_example(State(s): Service, Path(key): Path<String>) -> Result<Json<ChangeReport>, ApiError> {
    let report = s
        .remove_example(&key)?
        .ok_or_else(|| ApiError::not_found(format!("no example with key {key:?}")))?;
    Ok(Json(report))
}

/// One skill's examples, with provenance.
#[utoipa::path(get, path = "/skills/{label}", tag = "skill-verification", params(("label" = String, Path, description = "a skill's label")),
    responses((status = 200, description = "the skill's examples", body = SkillExamples), (status = 404, description = "no such skill", body = ramanujan_http::ErrorBody),
        (status = 400, description = "not a valid label", body = ramanujan_http::ErrorBody)))]
async fn skill(State(s): Service, Path(label): Path<String>) -> Result<Json<SkillExamples>, ApiError> {
    let examples = s.skill(&label);
    if examples.is_empty() {
        return Err(unknown_skill(&label));
    }
    let examples = examples
        .into_iter()
        .map(|(key, provenance)| KeyedExample { key, provenance })
        .collect();
    Ok(Json(SkillExamples { label, examples }))
}

/// Removes a skill and all its examples.
#[utoipa::path(delete, path = "/skills/{label}", tag = "skill-verification", params(("label" = String, Path, description = "a skill's label")),
    responses((status = 200, description = "what was removed", body = ChangeReport), (status = 404, description = "no such skill", body = ramanujan_http::ErrorBody),
        (status = 400, description = "not a valid label", body = ramanujan_http::ErrorBody)))]
async fn remove_skill(State(s): Service, Path(label): Path<String>) -> Result<Json<ChangeReport>, ApiError> {
    let report = s.remove_skill(&label)?.ok_or_else(|| unknown_skill(&label))?;
    Ok(Json(report))
}

fn unknown_skill(label: &str) -> ApiError {
    match check_label(label) {
        Ok(()) => ApiError::not_found(format!("no skill {label:?}")),
        Err(e) => ApiError::bad_request(e.to_string()),
    }
}

/// The 17 verifiers' analysis of an image embedding: each one's vote, the
/// consensus, and (with `claimed_skill`) whether the claim holds.
#[utoipa::path(post, path = "/skills/analyze", tag = "skill-verification", request_body = AnalyzeRequest,
    responses((status = 200, description = "the analysis", body = Analysis), ramanujan_http::JsonBodyErrors,
        (status = 404, description = "`claimed_skill` is not a skill held", body = ramanujan_http::ErrorBody),
        (status = 409, description = "no reference examples yet: add some with `POST /skills/examples`", body = ramanujan_http::ErrorBody),
        (status = 500, description = "the image model failed on this image", body = ramanujan_http::ErrorBody)))]
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

/// Checks a claim: `/skills/analyze` with `claimed_skill` required.
#[utoipa::path(post, path = "/verify", tag = "skill-verification", request_body = AnalyzeRequest,
    responses((status = 200, description = "the analysis, with the claim's verdict", body = Analysis), ramanujan_http::JsonBodyErrors,
        (status = 404, description = "`claimed_skill` is not a skill held", body = ramanujan_http::ErrorBody),
        (status = 409, description = "no reference examples yet: add some with `POST /skills/examples`", body = ramanujan_http::ErrorBody),
        (status = 500, description = "the image model failed on this image", body = ramanujan_http::ErrorBody)))]
async fn verify(s: Service, JsonBody(request): JsonBody<AnalyzeRequest>) -> Result<Response, ApiError> {
    if request.claimed_skill.is_none() {
        return Err(ApiError::bad_request(
            "POST /verify checks a claim: send `claimed_skill` (or use POST /skills/analyze)",
        ));
    }
    analyze(s, JsonBody(request)).await
}

/// The reference set as a CRDT state (for `/skills/merge` elsewhere).
#[utoipa::path(get, path = "/skills/state", tag = "skill-verification", responses((status = 200, description = "the state", body = ReferenceState)))]
async fn state(State(s): Service) -> Json<ReferenceState> {
    Json(s.state())
}

/// Merges another site's reference set.
#[utoipa::path(post, path = "/skills/merge", tag = "skill-verification", request_body(content = ReferenceState, description = "a state from `GET /skills/state`"),
    responses((status = 200, description = "what the merge changed", body = ChangeReport), ramanujan_http::JsonBodyErrors))]
async fn merge(State(s): Service, JsonBody(state): JsonBody<ReferenceState>) -> Result<Json<ChangeReport>, ApiError> {
    Ok(Json(s.merge(state)?))
}

/// The keys held and their digest (what a peer compares before fetching).
#[utoipa::path(get, path = "/skills/membership", tag = "skill-verification", responses((status = 200, description = "the membership", body = Membership)))]
async fn membership(State(s): Service) -> Json<Membership> {
    Json(s.membership())
}

/// The examples of the keys asked for (those held).
#[utoipa::path(post, path = "/skills/fetch", tag = "skill-verification", request_body = FetchRequest,
    responses((status = 200, description = "the examples by key", body = Fetched), ramanujan_http::JsonBodyErrors))]
async fn fetch(State(s): Service, JsonBody(request): JsonBody<FetchRequest>) -> Result<Json<Fetched>, ApiError> {
    let examples = s.examples_for(&request.keys)?;
    Ok(Json(Fetched { examples }))
}

/// Analyses run, their verdicts and timings, syncs.
#[utoipa::path(get, path = "/skills/stats", tag = "skill-verification", responses((status = 200, description = "the counters", body = SkillStats)))]
async fn stats(State(s): Service) -> Json<SkillStats> {
    Json(s.stats())
}

/// `ok`; `ready` once some reference examples are held.
#[utoipa::path(get, path = "/skills/health", tag = "skill-verification", responses((status = 200, description = "`ok`, and whether analyses can be answered", body = SkillHealth)))]
async fn health(State(s): Service) -> Json<SkillHealth> {
    let references = s.len();
    Json(SkillHealth {
        status: "ok",
        references,
        ready: references > 0,
        verifiers: s.config().panel.verifiers,
    })
}

/// `/verify/health`: the same as `/skills/health`.
#[utoipa::path(get, path = "/verify/health", tag = "skill-verification", responses((status = 200, description = "as `GET /skills/health`", body = SkillHealth)))]
#[allow(dead_code)] // describes the route `health` also serves
fn verify_health() {}

/// The component's routes, described (merged into the host's `/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(
        list,
        add_examples,
        remove_example,
        skill,
        remove_skill,
        analyze,
        verify,
        state,
        merge,
        membership,
        fetch,
        stats,
        health,
        verify_health
    ))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}
