//! Agent-to-agent routes (`POST /agent/{id}/message`, `POST /agent/{id}/sync`)
//! take only requests signed with the network's key (`NETWORK_KEY`), as the
//! bridge's webhooks are: the `x-ramanujan-signature` header, an HMAC-SHA256
//! of the body under the key, for the route's path, timestamped (five minutes
//! either way; the agent's replay window drops a message sent twice). A
//! request unsigned, signed with another key or for another route gets 401
//! and is counted. Without a key these routes stay open, as the embedded
//! quick start is.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use ramanujan_http::ApiError;
use ramanujan_wire::signature;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The network's key, and what it refused.
pub struct NetworkKey {
    secret: Vec<u8>,
    max_body: usize,
    refused: AtomicU64,
}

impl NetworkKey {
    /// `secret`, reading bodies of at most `max_body` bytes.
    pub fn new(secret: Vec<u8>, max_body: usize) -> NetworkKey {
        NetworkKey {
            secret,
            max_body,
            refused: AtomicU64::new(0),
        }
    }

    /// Requests refused for their signature since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// Whether `path` is an agent-to-agent route: `/agent/{id}/message` or `/agent/{id}/sync`.
pub fn agent_to_agent(path: &str) -> bool {
    let mut parts = path.split('/');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(""), Some("agent"), Some(id), Some("message" | "sync"), None) if !id.is_empty()
    )
}

fn refuse(status: StatusCode, message: String) -> Response {
    let mut response = ApiError { status, message }.into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Signature header=\"x-ramanujan-signature\""),
    );
    response
}

/// The middleware.
pub async fn verify(State(key): State<Arc<NetworkKey>>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST || !agent_to_agent(request.uri().path()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, key.max_body).await else {
        return ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("the body is over {} bytes (MAX_BODY_BYTES)", key.max_body),
        }
        .into_response();
    };
    if let Err(e) = signature::verify_headers(&key.secret, parts.uri.path(), &bytes, &parts.headers) {
        key.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(path = %parts.uri.path(), reason = %e, "an agent-to-agent request was refused");
        return refuse(
            StatusCode::UNAUTHORIZED,
            format!("agent-to-agent requests are signed with the network's key (NETWORK_KEY): {e}"),
        );
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

#[cfg(test)]
mod tests {
    use super::agent_to_agent;

    #[test]
    fn only_the_two_agent_routes_are_agent_to_agent() {
        for yes in ["/agent/agent-0/message", "/agent/3/sync"] {
            assert!(agent_to_agent(yes), "{yes}");
        }
        for no in [
            "/agent//message",
            "/agent/a/state",
            "/agent/a/message/x",
            "/agents/submit",
            "/agent/a/messages",
        ] {
            assert!(!agent_to_agent(no), "{no}");
        }
    }
}
