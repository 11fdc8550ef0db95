//! The host's API contract: every component's description merged into one
//! OpenAPI 3.1 document, served at `/openapi.json`, with an API explorer at
//! `/docs` (Swagger UI, its assets inside the binary: no CDN).
//!
//! Each component describes its own routes next to their handlers
//! (`#[utoipa::path]`); this module adds the host's own routes and what the
//! host's layers may answer on any route: 401, 403, 429 and 503 from the
//! guards, 413 past the body limit.

use axum::Router;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr, Response, ResponseBuilder};
use utoipa_swagger_ui::SwaggerUi;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/openapi.json";
/// Where the explorer is served.
pub const EXPLORER_PATH: &str = "/docs";

/// Whether `path` is the document or the explorer (open to reads without a key).
pub fn is_public(path: &str) -> bool {
    path == DOCUMENT_PATH || ramanujan_http::access::is_under(path, EXPLORER_PATH)
}

/// `GET /health`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct HostHealth {
    /// `ok`, or `degraded` (the network cannot work normally now).
    pub status: &'static str,
    /// Why it is degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /status`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct HostStatus {
    /// `ok`, or `degraded`.
    pub status: &'static str,
    /// Why it is degraded (null when not).
    pub degraded: Option<String>,
    /// Agent-to-agent requests refused for their signature since start
    /// (null: no `NETWORK_KEY`, the routes are open).
    pub refused_agent_signatures: Option<u64>,
    /// The host's version.
    pub version: &'static str,
    /// `embedded` or `distributed`.
    pub mode: &'static str,
    /// Since the host started.
    pub uptime_seconds: f64,
    /// Each component, its route prefix and whether it serves.
    pub components: Vec<ComponentState>,
}

/// One component of the host.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ComponentState {
    /// Its name.
    pub name: &'static str,
    /// Its route prefix.
    pub routes: &'static str,
    /// `serving`.
    pub state: &'static str,
}

/// The host's routes other than the components'.
#[allow(dead_code)] // only their descriptions are used
mod host {
    /// `ok`, or `degraded` with the reason (the network cannot work normally now).
    #[utoipa::path(get, path = "/health", tag = "host", responses((status = 200, description = "`ok`, or `degraded` with the reason", body = super::HostHealth)))]
    pub fn health() {}

    /// Version, mode, uptime, each component's state and routes.
    #[utoipa::path(get, path = "/status", tag = "host", responses((status = 200, description = "the host's status", body = super::HostStatus)))]
    pub fn status() {}

    /// This document.
    #[utoipa::path(get, path = "/openapi.json", tag = "host", responses((status = 200, description = "the OpenAPI 3.1 document", body = Object)))]
    pub fn document() {}

    /// An API explorer over this document.
    #[utoipa::path(get, path = "/docs", tag = "host", responses((status = 303, description = "on to `/docs/`, Swagger UI (its page and assets under `/docs/`)"),
        (status = 200, description = "the page, for a client that follows the redirect", content_type = "text/html", body = String)))]
    pub fn explorer() {}
}

/// The whole host's description.
pub fn document() -> OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(
        info(
            title = "Ramanujan",
            description = "A network of agents that settle expressions by coloured equality saturation, and the components around it."
        ),
        paths(host::health, host::status, host::document, host::explorer)
    )]
    struct Host;
    let mut api = <Host as utoipa::OpenApi>::openapi();
    api.info.version = env!("CARGO_PKG_VERSION").into();
    for part in components() {
        api.merge(part);
    }
    add_host_answers(&mut api);
    api
}

/// Each component's description.
fn components() -> [OpenApi; 10] {
    [
        egraph_service::openapi(),
        ramanujan_stream::openapi(),
        stream_green::openapi(),
        duck_colors::openapi(),
        crdt_service::openapi(),
        agent_orchestrator::openapi(),
        interaction_timeline::openapi(),
        skill_verification::openapi(),
        transduction_2tdx::openapi(),
        dashboard::openapi(),
    ]
}

/// What the host's layers may answer on every route, beside the route's own.
fn add_host_answers(api: &mut OpenApi) {
    let error = |description: &str| -> RefOr<Response> {
        let schema = utoipa::openapi::Ref::from_schema_name("ErrorBody");
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::content::ContentBuilder::new()
                    .schema(Some(schema))
                    .build(),
            )
            .build()
            .into()
    };
    let components = api.components.get_or_insert_with(Default::default);
    components.schemas.insert(
        "ErrorBody".into(),
        <ramanujan_http::ErrorBody as utoipa::PartialSchema>::schema(),
    );
    components.security_schemes.insert(
        "bearer".into(),
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()).into(),
    );
    let always = [
        (
            "429",
            "past the client's rate limit (`RATE_LIMIT`); `Retry-After` says when to come back",
        ),
        (
            "503",
            "the host is shedding load, or the request ran past `TIMEOUT_SECONDS`",
        ),
    ];
    let guarded = [
        (
            "401",
            "`API_KEYS` is set and no known bearer key was sent (`WWW-Authenticate` says how)",
        ),
        (
            "403",
            "the key's scope does not cover the route (a read key on a write route)",
        ),
    ];
    for (path, item) in api.paths.paths.iter_mut() {
        // The streams' health is described once, as `/stream/{color}/health`.
        let open = crate::guard::access::HEALTH_ROUTES.contains(&path.replace("{color}", "red").as_str())
            || is_public(path)
            || dashboard::page::is_shell(&path.replace("{name}", "dashboard.js"));
        for (method, operation) in operations(item) {
            let mut answers: Vec<(&str, &str)> = always.to_vec();
            if !open || !matches!(method, HttpMethod::Get | HttpMethod::Head) {
                answers.extend(guarded);
                operation.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
                    "bearer",
                    Vec::<String>::new(),
                )]);
            }
            if operation.request_body.is_some() {
                answers.push(("413", "the body is larger than `MAX_BODY_BYTES`"));
            }
            for (status, description) in answers {
                operation
                    .responses
                    .responses
                    .entry(status.into())
                    .or_insert_with(|| error(description));
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> Vec<(HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, &mut item.get),
        (HttpMethod::Post, &mut item.post),
        (HttpMethod::Put, &mut item.put),
        (HttpMethod::Patch, &mut item.patch),
        (HttpMethod::Delete, &mut item.delete),
        (HttpMethod::Head, &mut item.head),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
    .collect()
}

/// The document as served: [`document`] in JSON, with what utoipa leaves
/// out of serde's strictness put back (see [`exact`]).
pub fn document_json() -> serde_json::Value {
    let mut json = serde_json::to_value(document()).expect("the document is JSON");
    exact(&mut json);
    json
}

/// Makes the schemas as strict as the handlers' decoding, where utoipa's
/// rendering is looser: a tuple (`prefixItems`) takes exactly its items
/// (serde refuses another length), and the object variants of a tagged enum
/// refuse unknown fields (every one the handlers decode denies them, as
/// their structs do, which utoipa already renders).
fn exact(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(fields) => {
            if let Some(Value::Array(prefix)) = fields.get("prefixItems") {
                let n = prefix.len();
                fields.entry("minItems").or_insert(n.into());
                fields.entry("maxItems").or_insert(n.into());
            }
            if let Some(Value::Array(variants)) = fields.get_mut("oneOf") {
                // A tagged variant: an object with a property that takes one value (its tag).
                let tagged = |variant: &serde_json::Map<String, Value>| {
                    variant
                        .get("properties")
                        .and_then(Value::as_object)
                        .is_some_and(|properties| {
                            properties
                                .values()
                                .any(|p| p.get("enum").and_then(Value::as_array).is_some_and(|e| e.len() == 1))
                        })
                };
                for variant in variants.iter_mut().filter_map(Value::as_object_mut) {
                    if tagged(variant) {
                        variant.entry("additionalProperties").or_insert(false.into());
                    }
                }
            }
            fields.values_mut().for_each(exact);
        }
        Value::Array(items) => items.iter_mut().for_each(exact),
        _ => {}
    }
}

/// `/openapi.json` and `/docs` (Swagger UI asks no outside validator about
/// the document: its default would send the document's address to swagger.io).
pub fn router(api: serde_json::Value) -> Router {
    let config = utoipa_swagger_ui::Config::new([DOCUMENT_PATH]).validator_url("none");
    Router::new().merge(
        SwaggerUi::new(EXPLORER_PATH)
            .external_url_unchecked(DOCUMENT_PATH, api)
            .config(config),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    /// Merging keeps one schema per name: two components naming different
    /// schemas alike would describe one route with the other's body.
    #[test]
    fn no_two_components_give_one_schema_name_to_different_schemas() {
        let mut seen: BTreeMap<String, (String, serde_json::Value)> = BTreeMap::new();
        for part in super::components() {
            let owner = part.paths.paths.keys().next().cloned().unwrap_or_default();
            for (name, schema) in part.components.into_iter().flat_map(|c| c.schemas) {
                let schema = serde_json::to_value(schema).unwrap();
                match seen.get(&name) {
                    Some((first, other)) => assert_eq!(other, &schema, "`{name}` of {first} and of {owner}"),
                    None => {
                        seen.insert(name, (owner.clone(), schema));
                    }
                }
            }
        }
        assert!(seen.len() > 20, "{:?}", seen.keys());
    }
}
