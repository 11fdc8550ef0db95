//! The request timeout (`TIMEOUT_SECONDS`): a request whose answer is not
//! ready in time gets 503 with `{"error": ...}`, and its handler is dropped,
//! which stops its async work (a saturation already running on the compute
//! pool stops at its own time limit). A streamed body (server-sent events)
//! is not timed: its answer is ready at once.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use ramanujan_http::ApiError;
use std::time::Duration;

/// The middleware.
pub async fn cut_off(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!(
                    "the answer was not ready within {} s (TIMEOUT_SECONDS) and the request was cut off",
                    timeout.as_secs()
                ),
            }
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}
