//! What every Spin component shares: a request goes to the same
//! `axum::Router` the native host serves, with the host's JSON 404 for
//! routes the component does not have; and Spin's key-value store behind
//! `ramanujan_http::kv::KeyValue`, for the components that keep state there.

mod kv;

pub use kv::{OneThread, SpinKeyValue, one_thread, shared_store};

use axum::Router;
use axum::body::Body;
use ramanujan_http::Runtime;
use spin_sdk::http::Request;
use std::time::Duration;
use tower::ServiceExt;

/// Answers `request` with `router`.
pub async fn serve(router: Router, request: Request) -> axum::response::Response {
    let router = router.fallback(ramanujan_http::error::not_found);
    match router.oneshot(request.map(Body::new)).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The runtime a component gets on Spin: saturations run inline (a request
/// owns its instance), `SATURATION_TIMEOUT_MS` (default 5,000) and
/// `COMPONENT_ID` (default the component's name) from the environment.
pub fn runtime(component: &str) -> Runtime {
    let timeout = std::env::var("SATURATION_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    Runtime {
        saturation_timeout: Duration::from_millis(timeout),
        agent_id: std::env::var("COMPONENT_ID").unwrap_or_else(|_| component.to_string()),
        ..Runtime::default()
    }
}

/// The answer of a component whose configuration is wrong: a 500 saying why.
pub fn misconfigured(message: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    ramanujan_http::ApiError {
        status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("misconfigured: {message}"),
    }
    .into_response()
}
