//! `/agents/...` and `/agent/{id}/...`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use ramanujan_agent::agent::LogEntry;
use ramanujan_agent::network::{AgentState, Network, NetworkError, NetworkStatus, Submission, SubmissionStatus};
use ramanujan_agent::protocol::Envelope;
use ramanujan_core::ReplicaState;
use ramanujan_core::parse::parse_expr;
use ramanujan_http::{ApiError, JsonBody};
use serde::{Deserialize, Serialize};
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
#[utoipa::path(get, path = "/agents/health", tag = "agent-orchestrator", responses((status = 200, description = "`ok`, or `degraded` with the reason", body = ramanujan_http::openapi::Health)))]
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

/// Every agent (colour, status, facts, digest, neighbours), whether the
/// network has converged, and its counters.
#[utoipa::path(get, path = "/agents/status", tag = "agent-orchestrator", responses((status = 200, description = "the network's status", body = NetworkStatus)))]
async fn status(State(net): Net) -> Json<NetworkStatus> {
    Json(net.status().await)
}

/// An expression for the network to settle.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SubmitRequest {
    /// An s-expression.
    #[schema(example = "(* 0 (+ p q))")]
    expression: String,
}

/// A submission taken: what to follow.
#[derive(Serialize, utoipa::ToSchema)]
struct Submitted {
    #[serde(flatten)]
    submission: Submission,
    /// Where to follow it: `/agents/submissions/{id}`.
    follow: String,
}

/// Submits an expression: answered once its entry agent saved it; the
/// network then spreads and rewrites it (follow `follow`).
#[utoipa::path(post, path = "/agents/submit", tag = "agent-orchestrator", request_body = SubmitRequest,
    responses((status = 202, description = "saved by its entry agent", body = Submitted),
        ramanujan_http::JsonBodyErrors, (status = 503, description = "the network cannot answer now (a broker down, a timeout); retrying is safe", body = ramanujan_http::ErrorBody)))]
async fn submit(
    State(net): Net,
    JsonBody(req): JsonBody<SubmitRequest>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let expr = parse_expr(&req.expression).map_err(|e| ApiError::bad_request(format!("expression: {e}")))?;
    let submission = net.submit(expr).await.map_err(api_error)?;
    let follow = format!("/agents/submissions/{}", submission.id);
    Ok((StatusCode::ACCEPTED, Json(Submitted { submission, follow })))
}

/// Where a submission stands: its canonical form in each replica, whether
/// it has settled.
#[utoipa::path(get, path = "/agents/submissions/{id}", tag = "agent-orchestrator",
    params(("id" = String, Path, description = "the id `POST /agents/submit` answered")),
    responses((status = 200, description = "the submission", body = SubmissionStatus),
        (status = 404, description = "no such submission", body = ramanujan_http::ErrorBody), (status = 503, description = "the network cannot answer now (a broker down, a timeout); retrying is safe", body = ramanujan_http::ErrorBody)))]
async fn submission(State(net): Net, Path(id): Path<String>) -> Result<Json<SubmissionStatus>, ApiError> {
    Ok(Json(net.submission(id).await.map_err(api_error)?))
}

/// An agent's state: colour, neighbours, counters, canonical forms.
#[utoipa::path(get, path = "/agent/{id}/state", tag = "agent-orchestrator", params(("id" = String, Path, description = "an agent: `agent-3`, or its number alone (`3`)")),
    responses((status = 200, description = "the agent's state", body = AgentState), (status = 404, description = "no such agent", body = ramanujan_http::ErrorBody), (status = 400, description = "the agent refused the request (named in `error`)", body = ramanujan_http::ErrorBody), (status = 503, description = "the network cannot answer now (a broker down, a timeout); retrying is safe", body = ramanujan_http::ErrorBody)))]
async fn state(State(net): Net, Path(id): Path<String>) -> Result<Json<AgentState>, ApiError> {
    let id = agent_id(id);
    Ok(Json(net.agent_state(id).await.map_err(api_error)?))
}

/// An agent's replica, counted.
#[derive(Serialize, utoipa::ToSchema)]
struct AgentReplica {
    /// The agent.
    agent_id: String,
    /// Terms its replica holds.
    terms: usize,
    /// Equalities its replica holds.
    equalities: usize,
    /// Digest of its facts.
    digest: String,
    /// The replica itself: content-addressed terms and equalities with provenance.
    #[schema(value_type = Object)]
    state: ReplicaState,
}

/// An agent's replica: its terms and equalities (content-addressed).
#[utoipa::path(get, path = "/agent/{id}/egraph", tag = "agent-orchestrator", params(("id" = String, Path, description = "an agent: `agent-3`, or its number alone (`3`)")),
    responses((status = 200, description = "the agent's replica", body = AgentReplica), (status = 404, description = "no such agent", body = ramanujan_http::ErrorBody), (status = 400, description = "the agent refused the request (named in `error`)", body = ramanujan_http::ErrorBody), (status = 503, description = "the network cannot answer now (a broker down, a timeout); retrying is safe", body = ramanujan_http::ErrorBody)))]
async fn egraph(State(net): Net, Path(id): Path<String>) -> Result<Json<AgentReplica>, ApiError> {
    let id = agent_id(id);
    let replica = net.agent_replica(id.clone()).await.map_err(api_error)?;
    Ok(Json(AgentReplica {
        agent_id: id,
        terms: replica.term_count(),
        equalities: replica.equality_count(),
        digest: replica.digest(),
        state: replica,
    }))
}

/// An anti-entropy round started.
#[derive(Serialize, utoipa::ToSchema)]
struct SyncStarted {
    /// The agent.
    agent_id: String,
    /// Neighbours asked.
    sync_requests_sent: usize,
}

/// Starts an anti-entropy round from this agent with its neighbours now.
#[utoipa::path(post, path = "/agent/{id}/sync", tag = "agent-orchestrator", params(("id" = String, Path, description = "an agent: `agent-3`, or its number alone (`3`)")),
    responses((status = 202, description = "the round started", body = SyncStarted), (status = 404, description = "no such agent", body = ramanujan_http::ErrorBody), (status = 400, description = "the agent refused the request (named in `error`)", body = ramanujan_http::ErrorBody), (status = 503, description = "the network cannot answer now (a broker down, a timeout); retrying is safe", body = ramanujan_http::ErrorBody)))]
async fn sync(State(net): Net, Path(id): Path<String>) -> Result<(StatusCode, Json<SyncStarted>), ApiError> {
    let id = agent_id(id);
    let sync_requests_sent = net.sync(id.clone()).await.map_err(api_error)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SyncStarted {
            agent_id: id,
            sync_requests_sent,
        }),
    ))
}

/// A message taken in.
#[derive(Serialize, utoipa::ToSchema)]
struct Accepted {
    /// Always true.
    accepted: bool,
}

/// Delivers a message from another agent (signed with the network's key when
/// `NETWORK_KEY` is set).
#[utoipa::path(post, path = "/agent/{id}/message", tag = "agent-orchestrator", params(("id" = String, Path, description = "an agent: `agent-3`, or its number alone (`3`)")), request_body(content = Object, description = "an envelope: `from`, `to`, `seq`, `body`"),
    responses((status = 202, description = "taken in", body = Accepted), ramanujan_http::JsonBodyErrors,
        (status = 401, description = "`NETWORK_KEY` is set and the signature is missing or wrong", body = ramanujan_http::ErrorBody), (status = 404, description = "no such agent", body = ramanujan_http::ErrorBody), (status = 400, description = "the agent refused the request (named in `error`)", body = ramanujan_http::ErrorBody), (status = 503, description = "the network cannot answer now (a broker down, a timeout); retrying is safe", body = ramanujan_http::ErrorBody)))]
async fn message(
    State(net): Net,
    Path(id): Path<String>,
    JsonBody(envelope): JsonBody<Envelope>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let id = agent_id(id);
    if envelope.to != id {
        return Err(ApiError::bad_request(format!(
            "message is addressed to `{}`, not `{id}`",
            envelope.to
        )));
    }
    net.deliver(envelope).await.map_err(api_error)?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { accepted: true })))
}

/// An agent's latest messages.
#[derive(Serialize, utoipa::ToSchema)]
struct AgentMessages {
    /// The agent.
    agent_id: String,
    /// Its message log, oldest first.
    messages: Vec<LogEntry>,
}

/// The messages an agent took in lately.
#[utoipa::path(get, path = "/agent/{id}/messages", tag = "agent-orchestrator", params(("id" = String, Path, description = "an agent: `agent-3`, or its number alone (`3`)")),
    responses((status = 200, description = "the agent's latest messages", body = AgentMessages), (status = 404, description = "no such agent", body = ramanujan_http::ErrorBody), (status = 400, description = "the agent refused the request (named in `error`)", body = ramanujan_http::ErrorBody), (status = 503, description = "the network cannot answer now (a broker down, a timeout); retrying is safe", body = ramanujan_http::ErrorBody)))]
async fn messages(State(net): Net, Path(id): Path<String>) -> Result<Json<AgentMessages>, ApiError> {
    let id = agent_id(id);
    let messages = net.agent_messages(id.clone()).await.map_err(api_error)?;
    Ok(Json(AgentMessages { agent_id: id, messages }))
}

/// The component's routes, described (merged into the host's `/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(health, status, submit, submission, state, egraph, sync, message, messages))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}
