//! `/agents/...` and `/agent/{id}/...`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use ramanujan_agent::network::{Network, NetworkError};
use ramanujan_agent::protocol::Envelope;
use ramanujan_core::parse::parse_expr;
use ramanujan_http::{ApiError, JsonBody};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

type Net = State<Arc<dyn Network>>;

/// A network's error as the routes answer it: 404, 400 or 503 with
/// `{"error": ...}`. Domain errors become HTTP here and nowhere else.
pub fn api_error(e: NetworkError) -> ApiError {
    match e {
        NetworkError::NotFound(m) => ApiError::not_found(m),
        NetworkError::Invalid(m) => ApiError::bad_request(m),
        NetworkError::Unavailable(m) => ApiError::unavailable(m),
    }
}

/// The routes, over a running network.
pub fn router(network: Arc<dyn Network>) -> Router {
    Router::new()
        .route("/agents/health", get(health))
        .route("/agents/status", get(status))
        .route("/agents/submit", post(submit))
        .route("/agents/submissions/{id}", get(submission))
        .route("/agent/{id}/state", get(state))
        .route("/agent/{id}/egraph", get(egraph))
        .route("/agent/{id}/sync", post(sync))
        .route("/agent/{id}/message", post(message))
        .route("/agent/{id}/messages", get(messages))
        .with_state(network)
}

/// The network's health: `degraded` (with the reason) when it cannot work
/// normally now, as `/health` says it.
async fn health(State(net): Net) -> Json<Value> {
    Json(match net.degraded() {
        None => json!({"status": "ok", "component": "agent-orchestrator"}),
        Some(reason) => json!({"status": "degraded", "component": "agent-orchestrator", "reason": reason}),
    })
}

/// An agent's id as a route names it: `agent-3`, or its number alone (`3`),
/// as the original design writes them.
fn agent_id(id: String) -> String {
    match id.parse::<u64>() {
        Ok(n) if id.bytes().all(|b| b.is_ascii_digit()) => format!("agent-{n}"),
        _ => id,
    }
}

async fn status(State(net): Net) -> Json<Value> {
    Json(json!(net.status().await))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitRequest {
    expression: String,
}

async fn submit(
    State(net): Net,
    JsonBody(req): JsonBody<SubmitRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let expr = parse_expr(&req.expression).map_err(|e| ApiError::bad_request(format!("expression: {e}")))?;
    let submission = net.submit(expr).await.map_err(api_error)?;
    let follow = format!("/agents/submissions/{}", submission.id);
    let mut body = json!(submission);
    body["follow"] = json!(follow);
    Ok((StatusCode::ACCEPTED, Json(body)))
}

async fn submission(State(net): Net, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(net.submission(id).await.map_err(api_error)?)))
}

async fn state(State(net): Net, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = agent_id(id);
    Ok(Json(json!(net.agent_state(id).await.map_err(api_error)?)))
}

async fn egraph(State(net): Net, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = agent_id(id);
    let replica = net.agent_replica(id.clone()).await.map_err(api_error)?;
    Ok(Json(json!({
        "agent_id": id,
        "terms": replica.term_count(),
        "equalities": replica.equality_count(),
        "digest": replica.digest(),
        "state": replica,
    })))
}

async fn sync(State(net): Net, Path(id): Path<String>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = agent_id(id);
    let started = net.sync(id.clone()).await.map_err(api_error)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"agent_id": id, "sync_requests_sent": started})),
    ))
}

async fn message(
    State(net): Net,
    Path(id): Path<String>,
    JsonBody(envelope): JsonBody<Envelope>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = agent_id(id);
    if envelope.to != id {
        return Err(ApiError::bad_request(format!(
            "message is addressed to `{}`, not `{id}`",
            envelope.to
        )));
    }
    net.deliver(envelope).await.map_err(api_error)?;
    Ok((StatusCode::ACCEPTED, Json(json!({"accepted": true}))))
}

async fn messages(State(net): Net, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = agent_id(id);
    Ok(Json(
        json!({"agent_id": id, "messages": net.agent_messages(id.clone()).await.map_err(api_error)?}),
    ))
}
