//! What every component's OpenAPI description shares: the `{"error": ...}`
//! body and the error answers of a JSON body or a query string. Each
//! component describes its own routes (`#[utoipa::path]` on the handler, one
//! `openapi()` per crate); the host merges them and serves `/openapi.json`.

use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

/// Every error answer: `{"error": "what went wrong, for a person"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
}

/// How a route that takes a JSON body ([`crate::JsonBody`]) refuses one.
#[derive(IntoResponses)]
pub enum JsonBodyErrors {
    /// The body is not JSON (a syntax error, or trailing data).
    #[response(
        status = 400,
        description = "the body is not valid JSON, or its content was refused (named in `error`)"
    )]
    BadJson(ErrorBody),
    /// The body is larger than the route takes.
    #[response(status = 413, description = "the body is larger than the route takes")]
    TooLarge(ErrorBody),
    /// `Content-Type` is not JSON.
    #[response(status = 415, description = "the body's `Content-Type` is not `application/json`")]
    NotJson(ErrorBody),
    /// Well-formed JSON of the wrong shape.
    #[response(
        status = 422,
        description = "well-formed JSON that does not fit the route; `error` starts with the field's path"
    )]
    WrongShape(ErrorBody),
}

/// How a route that reads its query string ([`crate::QueryParams`]) refuses one.
#[derive(IntoResponses)]
pub enum QueryErrors {
    /// The query string is malformed or a parameter has the wrong type.
    #[response(
        status = 400,
        description = "a malformed query string, or a parameter of the wrong type or out of range"
    )]
    BadQuery(ErrorBody),
}

/// A component's health: `{"status": "ok", "component": "..."}` (`degraded`,
/// with a `reason`, when it serves but something it needs is missing).
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded`.
    pub status: String,
    /// Which component answers.
    pub component: String,
    /// Why it is degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
