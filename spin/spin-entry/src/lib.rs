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

/// Answers `request` with `router`, once its API key lets it through (see
/// [`serve_with`]).
pub async fn serve(router: Router, request: Request) -> axum::response::Response {
    serve_with(router, request, &[]).await
}

/// Answers `request` with `router`. When the component's environment sets
/// `API_KEYS` (`write:<key>,read:<key>`, as for the native host), a request
/// needs a bearer key of the scope its method needs (401, 403 otherwise),
/// but for health probes, the broker's webhook (signed with the webhook
/// secret) and paths under `exempt` (routes that check a key of their own).
pub async fn serve_with(router: Router, request: Request, exempt: &[&str]) -> axum::response::Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let open = ramanujan_http::access::is_health(&method, &path)
        || ramanujan_http::access::is_under(&path, "/nats/webhook")
        || ramanujan_http::access::is_exempt(&path, exempt);
    if !open {
        match api_keys().await {
            Ok(Some(keys)) => {
                let authorization = request.headers().get(axum::http::header::AUTHORIZATION);
                if let Err(refused) = ramanujan_http::access::check(&keys, &method, &path, authorization) {
                    return axum::response::IntoResponse::into_response(refused);
                }
            }
            Ok(None) => {}
            Err(e) => return misconfigured(&e),
        }
    }
    let router = router.fallback(ramanujan_http::error::not_found);
    match router.oneshot(request.map(Body::new)).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The keys of the environment's `API_KEYS` (what [`serve_with`] checks);
/// `None` when it is unset or
/// empty (the guard is off, as natively by default). The environment, not a
/// Spin variable: the stateless components import no Spin interface, so
/// that they also run in plain `wasmtime serve`.
pub async fn api_keys() -> Result<Option<ramanujan_http::access::ApiKeys>, String> {
    match std::env::var("API_KEYS") {
        Ok(text) if !text.trim().is_empty() => ramanujan_http::access::ApiKeys::parse(&text)
            .map(Some)
            .map_err(|e| format!("API_KEYS: {e}")),
        _ => Ok(None),
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
