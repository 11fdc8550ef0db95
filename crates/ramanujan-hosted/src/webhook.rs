//! `/nats/webhook/{topic}`: how agents hosted in a component (on Spin, which
//! has no NATS trigger) receive broker messages from the NATS bridge
//! (`ramanujan bridge`). The `/agents` routes over the same agents are
//! [`agent_orchestrator::routes`] over [`Hosted`]'s [`ramanujan_agent::network::Network`].
//!
//! | topic | body | does |
//! |---|---|---|
//! | `agent.{i}.sync` | MessagePack [`Inbound`](ramanujan_wire::wire::Inbound) | handles an inbox message |
//! | `agent.{i}.tick` | JSON `{"sync": bool}` | heartbeat, rewriting, anti-entropy if `sync` |
//! | `agent.{i}.state` | JSON [`Query`](ramanujan_wire::wire::Query) | answers it |
//!
//! Every webhook must carry a valid [`signature`] (else 401,
//! and the bridge does not acknowledge the message); a malformed body gets 400
//! (the bridge moves it to a dead-letter subject). Answers are JSON: a
//! [`Report`](crate::hosted::Report) for `sync` and `tick`, the query's answer
//! for `state`.

use crate::hosted::Hosted;
use agent_orchestrator::api_error;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use ramanujan_http::ApiError;
use ramanujan_wire::signature;
use ramanujan_wire::wire;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Largest webhook body: the largest broker message, and some.
pub const MAX_WEBHOOK_BYTES: usize = wire::MAX_MESSAGE_BYTES + 64 * 1024;

#[derive(Clone)]
struct Webhook {
    hosted: Hosted,
    /// `None`: not configured, so every webhook is refused.
    secret: Option<Arc<[u8]>>,
}

/// The routes. Without a secret every webhook gets 503: unsigned broker
/// messages are never taken.
pub fn router(hosted: Hosted, secret: Option<Vec<u8>>) -> Router {
    let state = Webhook {
        hosted,
        secret: secret.filter(|s| !s.is_empty()).map(Arc::from),
    };
    Router::new()
        .route("/nats/webhook/{topic}", post(webhook))
        .with_state(state)
}

/// What a topic asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topic {
    Sync(usize),
    Tick(usize),
    State(usize),
}

fn parse_topic(topic: &str) -> Option<Topic> {
    let rest = topic.strip_prefix("agent.")?;
    let (index, kind) = rest.split_once('.')?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) || index.len() > 6 {
        return None;
    }
    let index = index.parse().ok()?;
    match kind {
        "sync" => Some(Topic::Sync(index)),
        "tick" => Some(Topic::Tick(index)),
        "state" => Some(Topic::State(index)),
        _ => None,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tick {
    sync: bool,
}

async fn webhook(
    State(hook): State<Webhook>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(secret) = hook.secret.as_deref() else {
        return Err(ApiError::unavailable(
            "no webhook secret is configured (WEBHOOK_SECRET); unsigned broker messages are refused",
        ));
    };
    let body = axum::body::to_bytes(body, MAX_WEBHOOK_BYTES)
        .await
        .map_err(|_| ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("webhook bodies are at most {MAX_WEBHOOK_BYTES} bytes"),
        })?;
    signature::verify_headers(secret, &topic, &body, &headers).map_err(|e| ApiError {
        status: StatusCode::UNAUTHORIZED,
        message: e.to_string(),
    })?;
    let parsed = parse_topic(&topic).ok_or_else(|| {
        ApiError::not_found(format!(
            "unknown topic `{topic}`; expected agent.{{i}}.sync, agent.{{i}}.tick or agent.{{i}}.state"
        ))
    })?;
    let answer = match parsed {
        Topic::Sync(i) => json!(hook.hosted.inbound(i, &body).await.map_err(api_error)?),
        Topic::Tick(i) => {
            let tick: Tick = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("a tick is {{\"sync\": bool}}: {e}")))?;
            json!(hook.hosted.tick(i, tick.sync).await.map_err(api_error)?)
        }
        Topic::State(i) => hook.hosted.query(i, &body).await.map_err(api_error)?,
    };
    Ok((StatusCode::OK, Json(answer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_name_an_agent_and_a_kind() {
        assert_eq!(parse_topic("agent.3.sync"), Some(Topic::Sync(3)));
        assert_eq!(parse_topic("agent.0.tick"), Some(Topic::Tick(0)));
        assert_eq!(parse_topic("agent.12.state"), Some(Topic::State(12)));
        for bad in [
            "agent..sync",
            "agent.x.sync",
            "agent.3",
            "agent.3.ack",
            "foo.3.sync",
            "agent.+3.sync",
            "agent.9999999.sync",
        ] {
            assert_eq!(parse_topic(bad), None, "{bad}");
        }
    }
}
