//! # stream-green
//!
//! The GREEN stream at `/stream/green`: like RED and BLUE it applies its rules
//! (identity laws) through `POST /stream/green/apply`; it also
//! - `POST /stream/green/verify` checks equalities — given as expressions, or all
//!   RED/BLUE equalities of a replica — by exact evaluation on random rational
//!   assignments and by egg's explanations, and lists steps claimed by both RED
//!   and BLUE;
//! - `POST /stream/green/converged` says whether replicas agree and, if not, what
//!   differs.

mod converged;
mod verify;

use axum::routing::post;
use ramanujan_core::Color;
use ramanujan_http::Runtime;
use std::sync::Arc;

/// The component's routes.
pub fn router(runtime: Runtime) -> axum::Router {
    let shared = Arc::new(runtime.clone());
    ramanujan_stream::router(Color::Green, runtime).merge(
        axum::Router::new()
            .route("/stream/green/verify", post(verify::verify))
            .route("/stream/green/converged", post(converged::converged))
            .with_state(shared),
    )
}

/// GREEN's own routes, described (the stream routes are
/// `ramanujan_stream::openapi`), merged into the host's `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(verify::verify, converged::converged))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}
