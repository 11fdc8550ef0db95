//! # stream-red
//!
//! The RED rule stream at `/stream/red`: `GET /stream/red` describes it (colour,
//! polarity, rules) and `POST /stream/red/apply` applies its rules to an
//! `expression` or a replica `state`, answering the delta of new terms and
//! equalities (with provenance) that any replica can merge.

use ramanujan_core::Color;
use ramanujan_http::Runtime;

/// The component's routes.
pub fn router(runtime: Runtime) -> axum::Router {
    ramanujan_stream::router(Color::Red, runtime)
}
