//! # ramanujan-stream
//!
//! The routes of a colour stream (`stream-red`, `stream-blue`, `stream-green`):
//! `GET /stream/{color}` and `POST /stream/{color}/apply`. GREEN adds `verify` and
//! `converged`, in the `stream-green` crate. Each rewriting a stream runs is
//! recorded as a `rewrite_step` event of the component (`stream-red`, ...).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use ramanujan_core::Color;
use ramanujan_core::limits::LimitsRequest;
use ramanujan_core::parse::parse_expr;
use ramanujan_core::replica::ReplicaState;
use ramanujan_core::rules::{RuleBook, RuleSpec, default_rules};
use ramanujan_core::saturate::{PhaseReport, Scheduler};
use ramanujan_core::stream::{StreamInput, StreamOutcome, apply_stream};
use ramanujan_events::{Event, Kind};
use ramanujan_http::error::ApiError;
use ramanujan_http::json::JsonBody;
use ramanujan_http::{Runtime, offload};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

/// `POST /stream/{color}/apply`: exactly one of `expression` and `state`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = StreamApplyRequest)]
pub struct ApplyRequest {
    /// An expression to rewrite.
    #[schema(example = "(+ (* a b) (* a c))")]
    pub expression: Option<String>,
    /// A replica state to rewrite.
    #[schema(value_type = Option<Object>)]
    pub state: Option<ReplicaState>,
    /// Agent id for provenance (default: the host's `AGENT_ID`).
    pub agent: Option<String>,
    /// Extra rules; each must be of this stream's colour.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// Include the built-in rules (default true).
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub default_rules: bool,
    /// Rule scheduling.
    #[serde(default)]
    pub scheduler: Scheduler,
    /// Limits.
    #[serde(default)]
    pub limits: LimitsRequest,
}

fn yes() -> bool {
    true
}

/// A stream of one colour.
pub struct ColorStream {
    /// The colour.
    pub color: Color,
    /// What the host provides.
    pub runtime: Runtime,
}

impl ColorStream {
    /// The component's name, e.g. `stream-red`.
    pub fn component(&self) -> String {
        format!("stream-{}", self.color.name().to_lowercase())
    }

    /// The route prefix, e.g. `/stream/red`.
    pub fn prefix(&self) -> String {
        format!("/stream/{}", self.color.name().to_lowercase())
    }

    fn status(&self) -> StreamStatus {
        StreamStatus {
            status: "ok",
            component: self.component(),
            color: self.color,
            polarity: self.color.polarity(),
            rules: default_rules(self.color),
        }
    }

    fn prepare(
        &self,
        req: ApplyRequest,
    ) -> Result<
        (
            String,
            StreamInput,
            RuleBook,
            ramanujan_core::saturate::Limits,
            Scheduler,
        ),
        ApiError,
    > {
        if let Some(rule) = req.rules.iter().find(|r| r.color != self.color) {
            return Err(ApiError::bad_request(format!(
                "{} applies {} rules; rule `{}` is {}",
                self.component(),
                self.color,
                rule.name,
                rule.color
            )));
        }
        let input = match (req.expression, req.state) {
            (Some(text), None) => StreamInput::Expression(
                parse_expr(&text).map_err(|e| ApiError::bad_request(format!("expression: {e}")))?,
            ),
            (None, Some(state)) => StreamInput::State(state),
            _ => return Err(ApiError::bad_request("give exactly one of `expression` and `state`")),
        };
        let agent = req.agent.unwrap_or_else(|| self.runtime.agent_id.clone());
        if agent.is_empty() || agent.len() > 128 {
            return Err(ApiError::bad_request("agent must be 1 to 128 characters"));
        }
        let book = RuleBook::new(req.default_rules, &req.rules).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let limits = req
            .limits
            .resolve(self.runtime.saturation_timeout, self.runtime.time_ceiling)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok((agent, input, book, limits, req.scheduler))
    }

    /// Records one rewriting this stream ran: its phase and the facts it derived.
    fn record(&self, phase: &PhaseReport, facts: usize) {
        if let Some(events) = &self.runtime.events {
            events.emit(Event::from_component(
                &self.component(),
                Kind::RewriteStep {
                    color: self.color.to_string(),
                    iterations: phase.iterations as u64,
                    facts: facts as u64,
                    stop: phase.stop_reason.to_string(),
                    duration_us: (phase.time_ms * 1e3) as u64,
                },
            ));
        }
    }
}

/// Facts (terms and equalities) of a stream's delta.
fn delta_facts(outcome: &StreamOutcome) -> usize {
    outcome.delta.term_count() + outcome.delta.equality_count()
}

async fn health(State(s): State<Arc<ColorStream>>) -> Json<Value> {
    Json(json!({"status": "ok", "component": format!("stream-{}", s.color.name())}))
}

async fn status(State(s): State<Arc<ColorStream>>) -> Json<StreamStatus> {
    Json(s.status())
}

/// `GET /stream/{color}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StreamStatus {
    /// `ok`.
    status: &'static str,
    /// `stream-red`, `stream-blue` or `stream-green`.
    component: String,
    /// The colour.
    color: Color,
    /// Its polarity.
    polarity: ramanujan_core::Polarity,
    /// The rules it applies.
    rules: Vec<RuleSpec>,
}

/// `POST /stream/{color}/merge`: an `EGraph` CRDT state, as `/crdt/merge` answers one.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StreamMerged {
    /// `EGraph`.
    crdt_type: &'static str,
    /// The input with the stream's delta merged in.
    #[schema(value_type = Object)]
    state: ReplicaState,
    /// The state counted.
    value: ReplicaValue,
    /// What merging the delta added.
    merged: ramanujan_core::replica::MergeStats,
}

/// An `EGraph` state's readable value.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReplicaValue {
    /// Terms.
    terms: usize,
    /// Equalities.
    equalities: usize,
    /// Digest of the facts.
    digest: String,
}

async fn apply(
    State(s): State<Arc<ColorStream>>,
    JsonBody(req): JsonBody<ApplyRequest>,
) -> Result<Json<StreamOutcome>, ApiError> {
    let (agent, input, book, limits, scheduler) = s.prepare(req)?;
    let color = s.color;
    let outcome = offload::run(&s.runtime.offload, move || {
        apply_stream(color, &agent, input, &book, scheduler, limits)
    })
    .await?;
    let outcome = outcome.map_err(|e| ApiError::bad_request(e.to_string()))?;
    s.record(&outcome.phase, delta_facts(&outcome));
    Ok(Json(outcome))
}

/// `POST /stream/{color}/merge`: the stream's delta merged into its input, as an
/// `EGraph` CRDT state in the shape `/crdt/merge` answers (colour → CRDT). The
/// input may be an expression (its terms are the starting state) or a state.
async fn merge(
    State(s): State<Arc<ColorStream>>,
    JsonBody(req): JsonBody<ApplyRequest>,
) -> Result<Json<StreamMerged>, ApiError> {
    let (agent, input, book, limits, scheduler) = s.prepare(req)?;
    let color = s.color;
    let merged = offload::run(&s.runtime.offload, move || {
        let mut base = match &input {
            StreamInput::State(state) => state.clone(),
            StreamInput::Expression(expr) => {
                let mut facts = ramanujan_core::replica::Facts::default();
                ramanujan_core::materialize::expr_terms(expr, &mut facts);
                let mut state = ramanujan_core::ReplicaState::new();
                state.record(&agent, facts).map_err(|e| e.to_string())?;
                state
            }
        };
        let input = StreamInput::State(base.clone());
        let outcome = apply_stream(color, &agent, input, &book, scheduler, limits).map_err(|e| e.to_string())?;
        let stats = base.merge(&outcome.delta);
        Ok::<_, String>((base, stats, outcome.phase.clone(), delta_facts(&outcome)))
    })
    .await?
    .map_err(ApiError::bad_request)?;
    let (state, stats, phase, facts) = merged;
    s.record(&phase, facts);
    Ok(Json(StreamMerged {
        crdt_type: "EGraph",
        value: ReplicaValue {
            terms: state.term_count(),
            equalities: state.equality_count(),
            digest: state.digest(),
        },
        state,
        merged: stats,
    }))
}

/// `GET /stream/{color}`, `POST /stream/{color}/apply` and `POST /stream/{color}/merge`.
pub fn router(color: Color, runtime: Runtime) -> Router {
    let stream = Arc::new(ColorStream { color, runtime });
    let prefix = stream.prefix();
    Router::new()
        .route(&prefix, get(status))
        .route(&format!("{prefix}/"), get(status))
        .route(&format!("{prefix}/health"), get(health))
        .route(&format!("{prefix}/apply"), post(apply))
        .route(&format!("{prefix}/merge"), post(merge))
        .with_state(stream)
}

/// The stream routes, described once for the three colours (`{color}` is
/// `red`, `blue` or `green`), merged into the host's `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(doc::status, doc::status_slash, doc::health, doc::apply, doc::merge))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

/// Descriptions of the routes [`router`] serves under each colour's prefix.
#[allow(dead_code)] // only their descriptions are used
mod doc {
    use super::ApplyRequest;

    #[utoipa::path(get, path = "/stream/{color}", tag = "streams", params(Colour),
        responses((status = 200, description = "the stream: colour, polarity, rules", body = super::StreamStatus), (status = 404, description = "no stream of that colour", body = ramanujan_http::ErrorBody)))]
    pub fn status() {}

    #[utoipa::path(get, path = "/stream/{color}/", tag = "streams", params(Colour),
        responses((status = 200, description = "as `GET /stream/{color}`", body = super::StreamStatus), (status = 404, description = "no stream of that colour", body = ramanujan_http::ErrorBody)))]
    pub fn status_slash() {}

    #[utoipa::path(get, path = "/stream/{color}/health", tag = "streams", params(Colour),
        responses((status = 200, description = "the stream answers", body = ramanujan_http::openapi::Health), (status = 404, description = "no stream of that colour", body = ramanujan_http::ErrorBody)))]
    pub fn health() {}

    /// Applies this colour's rules to an `expression` or a replica `state`,
    /// answering the delta of new terms and equalities (with provenance).
    #[utoipa::path(post, path = "/stream/{color}/apply", tag = "streams", params(Colour), request_body = ApplyRequest,
        responses((status = 200, description = "the delta, the canonical form, the stop reason", body = ramanujan_core::stream::StreamOutcome), ramanujan_http::JsonBodyErrors,
            (status = 404, description = "no stream of that colour", body = ramanujan_http::ErrorBody),
            (status = 503, description = "too many rewritings waiting, or the time ran out", body = ramanujan_http::ErrorBody)))]
    pub fn apply() {}

    /// Applies the rules and merges the delta into the given state.
    #[utoipa::path(post, path = "/stream/{color}/merge", tag = "streams", params(Colour), request_body = ApplyRequest,
        responses((status = 200, description = "the input with the delta merged in, as an `EGraph` CRDT state", body = super::StreamMerged), ramanujan_http::JsonBodyErrors,
            (status = 404, description = "no stream of that colour", body = ramanujan_http::ErrorBody),
            (status = 503, description = "too many rewritings waiting, or the time ran out", body = ramanujan_http::ErrorBody)))]
    pub fn merge() {}

    /// The stream's colour in a path.
    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Path)]
    struct Colour {
        /// `red`, `blue` or `green`.
        #[param(pattern = "^(red|blue|green)$")]
        color: String,
    }
}
