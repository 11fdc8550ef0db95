//! Test helpers: drive a component's router in-process (tower `oneshot`, the
//! real router, no sockets) and read its JSON answers.

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Runs a future to completion on the current thread.
pub fn block_on<F: Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

/// Sends one request and answers the status and the raw body.
pub fn send_raw(app: &Router, method: &str, path: &str, body: impl Into<Body>) -> (StatusCode, bytes::Bytes) {
    block_on(async {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(body.into())
            .expect("a valid request");
        let resp = app.clone().oneshot(req).await.expect("routers are infallible");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("a body").to_bytes();
        (status, bytes)
    })
}

/// Sends one request and answers the status and the JSON body (`Null` if not JSON).
pub fn send(app: &Router, method: &str, path: &str, body: impl Into<Body>) -> (StatusCode, Value) {
    let (status, bytes) = send_raw(app, method, path, body);
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// `GET path`.
pub fn get(app: &Router, path: &str) -> (StatusCode, Value) {
    send(app, "GET", path, Body::empty())
}

/// `POST path` with a JSON body.
pub fn post(app: &Router, path: &str, body: &Value) -> (StatusCode, Value) {
    send(app, "POST", path, body.to_string())
}
