//! The HTTP surface: `/2tdx/...` and the sync routes again under `/sync/...`.

use crate::book::{BookEntry, BookState};
use crate::brief::{BriefAnswer, BriefSync};
use crate::codegen::{MAX_SOURCE_BYTES, generate, parse};
use crate::enumerate::Grammar;
use crate::generalise::{Generalised, MAX_EQUALITIES, generalise, replica_equalities};
use crate::mine::{MineOptions, Mined, check_rule, mine_enumeration};
use crate::rule::Rule;
use crate::service::{ChangeError, TdxService, TdxStats};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use ramanujan_core::color::Color;
use ramanujan_core::parse::parse_expr;
use ramanujan_core::replica::ReplicaState;
use ramanujan_core::rules::{MAX_CUSTOM_RULES, RuleSpec, default_rules};
use ramanujan_http::{ApiError, JsonBody, QueryParams, offload};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Where `POST /2tdx/mine` with `"source": "network"` reads the equalities the
/// agents derived: a replica of the host's network (a GREEN agent's).
pub trait ReplicaSource: Send + Sync {
    /// The replica, and the agent it is from.
    fn replica(&self) -> BoxFuture<'_, Result<(String, ReplicaState), String>>;
}

/// The component's state as its routes see it.
#[derive(Clone)]
struct Tdx {
    service: Arc<TdxService>,
    network: Option<Arc<dyn ReplicaSource>>,
}

/// The `/2tdx` and `/sync` routes over `service`; `network` (if any) is where
/// mining from the network reads.
pub fn router(service: Arc<TdxService>, network: Option<Arc<dyn ReplicaSource>>) -> Router {
    let under_sync = Router::new()
        .route("/sync", post(sync))
        .route("/sync/brief", post(sync_brief))
        .route("/sync/peer", post(sync_peer))
        .route("/sync/health", get(health));
    Router::new()
        .route("/2tdx/health", get(health))
        .route("/2tdx/rules", get(rules).post(add_rules))
        .route("/2tdx/rules/{key}", patch(update_rule).delete(remove_rule))
        .route("/2tdx/mine", post(mine))
        .route("/2tdx/codegen", post(codegen))
        .route("/2tdx/parse", post(parse_code))
        .route("/2tdx/sync", post(sync))
        .route("/2tdx/sync/brief", post(sync_brief))
        .route("/2tdx/sync/peer", post(sync_peer))
        .merge(under_sync)
        .with_state(Tdx { service, network })
}

/// How a route that takes the site's sync key refuses a request without it
/// (the answer [`unauthorised`] gives).
#[derive(utoipa::IntoResponses)]
enum KeyRefused {
    /// No key, or not the site's.
    #[response(
        status = 401,
        description = "`TDX_API_KEY` is set and the bearer key is missing or wrong"
    )]
    #[allow(dead_code)] // only its description is used
    Unauthorised(ramanujan_http::ErrorBody),
}

/// A 401 asking for the bearer key.
fn unauthorised() -> Response {
    let mut response = ApiError {
        status: StatusCode::UNAUTHORIZED,
        message: "this route needs `Authorization: Bearer <key>` with the site's sync key (TDX_API_KEY)".into(),
    }
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"2tdx\""),
    );
    response
}

/// Whether the request carries the key (when one is configured).
fn authorised(tdx: &Tdx, headers: &HeaderMap) -> bool {
    tdx.service
        .authorised(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()))
}

fn change_error(e: ChangeError) -> ApiError {
    match e {
        ChangeError::Bad(m) => ApiError::bad_request(m),
        ChangeError::NotFound(_) => ApiError::not_found(e.to_string()),
        ChangeError::Store(_) => ApiError::unavailable(e.to_string()),
    }
}

/// `ok`, this site's name and the book's counters.
#[utoipa::path(get, path = "/2tdx/health", tag = "transduction-2tdx", responses((status = 200, description = "`ok`, this site and its book's counters", body = TdxHealth)))]
async fn health(State(tdx): State<Tdx>) -> Json<TdxHealth> {
    Json(TdxHealth {
        status: "ok",
        site: tdx.service.config().site.clone(),
        book: tdx.service.stats(),
    })
}

/// `GET /2tdx/health`.
#[derive(Serialize, utoipa::ToSchema)]
struct TdxHealth {
    /// `ok`.
    status: &'static str,
    /// This site's name.
    site: String,
    /// The book's counters, the peer's and the agents' state.
    book: TdxStats,
}

/// `GET /2tdx/rules`.
#[derive(Serialize, utoipa::ToSchema)]
struct BookRules {
    /// What the whole book reads, as a digest.
    digest: String,
    /// Rules answered.
    count: usize,
    /// The rules, by key.
    #[schema(value_type = Vec<BookEntrySchema>)]
    rules: Vec<BookEntry>,
}

/// A rule as the book reads now (`book::BookEntry`, whose rule is
/// flattened in: described field by field, since a rule's own schema allows
/// no other field).
#[derive(utoipa::ToSchema)]
#[schema(as = BookEntry)]
#[allow(dead_code)] // only its description is used
struct BookEntrySchema {
    /// The rule's key.
    key: String,
    /// The rule (its colour the resolved one).
    spec: RuleSpec,
    /// Where it came from.
    provenance: crate::rule::Provenance,
    /// Whether agents use it.
    enabled: bool,
    /// Concurrent writes not yet superseded.
    conflict: Option<crate::book::Conflict>,
}

/// Rules added to the book.
#[derive(Serialize, utoipa::ToSchema)]
struct Added {
    /// Keys added.
    added: Vec<String>,
    /// Keys the book held already.
    already: Vec<String>,
}

/// A rule removed.
#[derive(Serialize, utoipa::ToSchema)]
struct Removed {
    /// Its key.
    removed: String,
}

/// What mining found, and what the book took of it with `add`.
#[derive(Serialize, utoipa::ToSchema)]
struct MineResult {
    #[serde(flatten)]
    #[schema(inline)]
    answer: MineAnswer,
    /// With `add`: what the book took.
    #[serde(skip_serializing_if = "Option::is_none")]
    book: Option<Added>,
}

/// Rules read from a module.
#[derive(Serialize, utoipa::ToSchema)]
struct Parsed {
    /// The rules read, checked.
    rules: Vec<Rule>,
    /// With `add`: what the book took.
    #[serde(skip_serializing_if = "Option::is_none")]
    book: Option<Added>,
}

/// A sync with the peer done.
#[derive(Serialize, utoipa::ToSchema)]
struct Synced {
    /// Always true.
    synced: bool,
    /// The book's counters after it.
    book: TdxStats,
}

/// `GET /2tdx/rules?color=&enabled=`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RulesQuery {
    /// Only rules of this colour.
    color: Option<Color>,
    /// Only enabled (or disabled) rules.
    enabled: Option<bool>,
}

/// The rule book: each rule with its colour, whether enabled, provenance.
#[utoipa::path(get, path = "/2tdx/rules", tag = "transduction-2tdx", params(RulesQuery),
    responses((status = 200, description = "the rules", body = BookRules), ramanujan_http::QueryErrors))]
async fn rules(State(tdx): State<Tdx>, QueryParams(q): QueryParams<RulesQuery>) -> Json<BookRules> {
    let digest = tdx.service.stats().digest;
    let rules: Vec<BookEntry> = tdx
        .service
        .entries()
        .into_iter()
        .filter(|e| q.color.is_none_or(|c| e.rule.spec.color == c))
        .filter(|e| q.enabled.is_none_or(|on| e.enabled == on))
        .collect();
    Json(BookRules {
        digest,
        count: rules.len(),
        rules,
    })
}

/// Checks rules given as specs, naming the first bad one by its position.
fn check_specs(specs: &[RuleSpec], source: &str) -> Result<Vec<Rule>, ApiError> {
    if specs.len() > MAX_CUSTOM_RULES {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_CUSTOM_RULES} rules per request, not {}",
            specs.len()
        )));
    }
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            check_rule(spec, source)
                .map_err(|e| ApiError::bad_request(format!("rule {} (`{}`): {e}", i + 1, spec.name)))
        })
        .collect()
}

/// Rules to add.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AddRules {
    /// The rules (at most 256), each checked for soundness first.
    rules: Vec<RuleSpec>,
}

/// Adds rules to the book once verified sound.
#[utoipa::path(post, path = "/2tdx/rules", tag = "transduction-2tdx", request_body = AddRules,
    responses((status = 200, description = "what the book took", body = Added), ramanujan_http::JsonBodyErrors, KeyRefused))]
async fn add_rules(State(tdx): State<Tdx>, headers: HeaderMap, JsonBody(body): JsonBody<AddRules>) -> Response {
    if !authorised(&tdx, &headers) {
        return unauthorised();
    }
    let result = async {
        let checked = offload::run(&tdx.service.offload, move || check_specs(&body.rules, "user")).await??;
        add(&tdx, checked)
    }
    .await;
    result.map(Json).into_response()
}

/// Adds checked rules to the book, answering what was added.
fn add(tdx: &Tdx, rules: Vec<Rule>) -> Result<Added, ApiError> {
    let (added, already) = tdx.service.add(rules).map_err(change_error)?;
    Ok(Added { added, already })
}

/// A change to one rule.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RuleUpdate {
    /// Enable or disable it.
    enabled: Option<bool>,
    /// Move it to another colour.
    color: Option<Color>,
}

/// Enables, disables or recolours a rule.
#[utoipa::path(patch, path = "/2tdx/rules/{key}", tag = "transduction-2tdx", params(("key" = String, Path, description = "a rule's key (hash of its normalised patterns)")), request_body = RuleUpdate,
    responses((status = 200, description = "the rule as it is now", body = BookEntrySchema), ramanujan_http::JsonBodyErrors, KeyRefused,
        (status = 404, description = "no such rule", body = ramanujan_http::ErrorBody)))]
async fn update_rule(
    State(tdx): State<Tdx>,
    headers: HeaderMap,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<RuleUpdate>,
) -> Response {
    if !authorised(&tdx, &headers) {
        return unauthorised();
    }
    if body.enabled.is_none() && body.color.is_none() {
        return ApiError::bad_request("give `enabled`, `color` or both").into_response();
    }
    tdx.service
        .update(&key, body.enabled, body.color)
        .map(Json)
        .map_err(change_error)
        .into_response()
}

/// Removes a rule.
#[utoipa::path(delete, path = "/2tdx/rules/{key}", tag = "transduction-2tdx", params(("key" = String, Path, description = "a rule's key (hash of its normalised patterns)")),
    responses((status = 200, description = "the rule removed", body = Removed), KeyRefused,
        (status = 404, description = "no such rule", body = ramanujan_http::ErrorBody)))]
async fn remove_rule(State(tdx): State<Tdx>, headers: HeaderMap, Path(key): Path<String>) -> Response {
    if !authorised(&tdx, &headers) {
        return unauthorised();
    }
    tdx.service
        .remove(&key)
        .map(|()| Json(Removed { removed: key }))
        .map_err(change_error)
        .into_response()
}

/// Which rules a mined rule must not already follow from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum Known {
    /// None: mine from scratch.
    None,
    /// The core's built-in rules.
    Builtin,
    /// The book's enabled rules, with the built-in ones when the host's
    /// agents run them: what agents run.
    #[default]
    Book,
}

/// One equality, as text.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EqualityText {
    /// One side, an s-expression.
    lhs: String,
    /// The other side.
    rhs: String,
}

/// What to mine rules from: `source` is `enumeration`, `equalities` or `network`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
enum MineRequest {
    /// Ruler-style: every term of a grammar up to a size.
    Enumeration {
        #[serde(default)]
        grammar: Grammar,
        #[serde(default)]
        options: MineOptions,
        #[serde(default)]
        known: Known,
        #[serde(default)]
        add: bool,
    },
    /// Equalities given in the request.
    Equalities {
        equalities: Vec<EqualityText>,
        #[serde(default)]
        known: Known,
        #[serde(default)]
        add: bool,
    },
    /// Equalities the network's agents derived (a GREEN agent's replica).
    Network {
        /// Largest term taken, in nodes.
        #[serde(default = "default_network_size")]
        max_size: usize,
        /// Most equalities generalised.
        #[serde(default = "default_network_limit")]
        limit: usize,
        #[serde(default)]
        known: Known,
        #[serde(default)]
        add: bool,
    },
}

fn default_network_size() -> usize {
    12
}

fn default_network_limit() -> usize {
    500
}

/// Iterations of the known rules when checking what they derive.
const DERIVE_ITERATIONS: usize = 6;

/// `Mined` (from enumeration) or `Generalised` (from equalities).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
enum MineAnswer {
    Enumeration(Mined),
    Equalities(Generalised),
}

impl MineAnswer {
    fn rules(&self) -> &[Rule] {
        match self {
            MineAnswer::Enumeration(m) => &m.rules,
            MineAnswer::Equalities(g) => &g.rules,
        }
    }
}

fn known_rules(tdx: &Tdx, known: Known) -> Vec<RuleSpec> {
    let builtin = || Color::ALL.into_iter().flat_map(default_rules);
    match known {
        Known::None => Vec::new(),
        Known::Builtin => builtin().collect(),
        Known::Book => builtin()
            .filter(|_| tdx.service.config().builtin_rules)
            .chain(tdx.service.enabled_rules().into_iter().map(|r| r.spec))
            .collect(),
    }
}

fn parse_equalities(
    equalities: &[EqualityText],
) -> Result<Vec<(ramanujan_core::lang::Expr, ramanujan_core::lang::Expr)>, ApiError> {
    if equalities.len() > MAX_EQUALITIES {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_EQUALITIES} equalities per request, not {}",
            equalities.len()
        )));
    }
    equalities
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let side = |name: &str, text: &str| {
                parse_expr(text).map_err(|err| ApiError::bad_request(format!("equality {}: {name}: {err}", i + 1)))
            };
            Ok((side("lhs", &e.lhs)?, side("rhs", &e.rhs)?))
        })
        .collect()
}

/// Mines rules: from enumerated terms (as Ruler does), from equalities given,
/// or from what the network's agents derived; each verified, and kept only if
/// the known rules cannot derive it; with `add`, added to the book.
#[utoipa::path(post, path = "/2tdx/mine", tag = "transduction-2tdx", request_body = MineRequest,
    responses((status = 200, description = "the rules mined, with what was tried", body = MineResult), ramanujan_http::JsonBodyErrors, KeyRefused,
        (status = 404, description = "`source: network` on a host that runs no agent network", body = ramanujan_http::ErrorBody),
        (status = 503, description = "the time ran out", body = ramanujan_http::ErrorBody)))]
async fn mine(State(tdx): State<Tdx>, headers: HeaderMap, JsonBody(request): JsonBody<MineRequest>) -> Response {
    let add_requested = match &request {
        MineRequest::Enumeration { add, .. }
        | MineRequest::Equalities { add, .. }
        | MineRequest::Network { add, .. } => *add,
    };
    if add_requested && !authorised(&tdx, &headers) {
        return unauthorised();
    }
    let result: Result<MineResult, ApiError> = async {
        let (answer, add) = match request {
            MineRequest::Enumeration {
                grammar,
                options,
                known,
                add,
            } => {
                let known = known_rules(&tdx, known);
                let ceiling = tdx.service.config().time_ceiling.as_millis() as u64;
                let options = MineOptions {
                    time_ms: options.time_ms.min((ceiling * 4 / 5).max(1)),
                    ..options
                };
                let mined = offload::run(&tdx.service.offload, move || {
                    mine_enumeration(&grammar, &options, &known)
                })
                .await?
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
                (MineAnswer::Enumeration(mined), add)
            }
            MineRequest::Equalities { equalities, known, add } => {
                let equalities = parse_equalities(&equalities)?;
                let known = known_rules(&tdx, known);
                let found = offload::run(&tdx.service.offload, move || {
                    generalise(&equalities, &known, "equalities", DERIVE_ITERATIONS)
                })
                .await?
                .map_err(ApiError::bad_request)?;
                (MineAnswer::Equalities(found), add)
            }
            MineRequest::Network {
                max_size,
                limit,
                known,
                add,
            } => {
                let Some(network) = &tdx.network else {
                    return Err(ApiError::not_found("this host runs no agent network to mine from"));
                };
                if limit == 0 || limit > MAX_EQUALITIES || max_size == 0 || max_size > 64 {
                    return Err(ApiError::bad_request(format!(
                        "limit must be 1 to {MAX_EQUALITIES} and max_size 1 to 64"
                    )));
                }
                let (agent, replica) = network.replica().await.map_err(ApiError::unavailable)?;
                let known = known_rules(&tdx, known);
                let found = offload::run(&tdx.service.offload, move || {
                    let equalities = replica_equalities(&replica, max_size, limit);
                    generalise(&equalities, &known, &format!("network ({agent})"), DERIVE_ITERATIONS)
                })
                .await?
                .map_err(ApiError::bad_request)?;
                (MineAnswer::Equalities(found), add)
            }
        };
        let book = if add {
            Some(self::add(&tdx, answer.rules().to_vec())?)
        } else {
            None
        };
        Ok(MineResult { answer, book })
    }
    .await;
    result.map(Json).into_response()
}

/// What to write as Rust.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CodegenRequest {
    /// The rules to write; the book's enabled rules when absent.
    rules: Option<Vec<RuleSpec>>,
}

/// A Rust module that builds the rules as egg rewrites (formatted).
#[utoipa::path(post, path = "/2tdx/codegen", tag = "transduction-2tdx", request_body = CodegenRequest,
    responses((status = 200, description = "the module", content_type = "text/x-rust; charset=utf-8", body = String), ramanujan_http::JsonBodyErrors))]
async fn codegen(State(tdx): State<Tdx>, JsonBody(request): JsonBody<CodegenRequest>) -> Response {
    let specs = match request.rules {
        Some(specs) => match check_specs(&specs, "user") {
            Ok(_) => specs,
            Err(e) => return e.into_response(),
        },
        None => tdx.service.enabled_rules().into_iter().map(|r| r.spec).collect(),
    };
    ([(header::CONTENT_TYPE, "text/x-rust; charset=utf-8")], generate(&specs)).into_response()
}

/// `POST /2tdx/parse?add=`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ParseQuery {
    /// Also add the rules read to the book.
    #[serde(default)]
    add: bool,
}

/// Reads rules back from a Rust module `/2tdx/codegen` wrote.
#[utoipa::path(post, path = "/2tdx/parse", tag = "transduction-2tdx", params(ParseQuery),
    request_body(content = String, content_type = "text/plain", description = "the Rust source"),
    responses((status = 200, description = "the rules read (and what the book took, with `add`)", body = Parsed),
        (status = 400, description = "not UTF-8, not such a module, or a rule that is not sound", body = ramanujan_http::ErrorBody),
        (status = 413, description = "longer than the source taken", body = ramanujan_http::ErrorBody), KeyRefused))]
async fn parse_code(
    State(tdx): State<Tdx>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<ParseQuery>,
    body: Bytes,
) -> Response {
    if q.add && !authorised(&tdx, &headers) {
        return unauthorised();
    }
    let result: Result<Parsed, ApiError> = async {
        if body.len() > MAX_SOURCE_BYTES {
            return Err(ApiError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: format!("Rust source longer than {MAX_SOURCE_BYTES} bytes"),
            });
        }
        let source = std::str::from_utf8(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not UTF-8: {e}")))?
            .to_string();
        let specs = parse(&source).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let rules = offload::run(&tdx.service.offload, move || check_specs(&specs, "code")).await??;
        let book = if q.add { Some(add(&tdx, rules.clone())?) } else { None };
        Ok(Parsed { rules, book })
    }
    .await;
    result.map(Json).into_response()
}

/// Merges a peer's book and answers what the peer lacks (one round trip
/// converges both). Also at `/sync`.
#[utoipa::path(post, path = "/2tdx/sync", tag = "transduction-2tdx", request_body(content = BookState, description = "the peer's book state"),
    responses((status = 200, description = "what the peer lacks", body = BookState), (status = 400, description = "not JSON", body = ramanujan_http::ErrorBody),
        (status = 422, description = "JSON that is not a book state", body = ramanujan_http::ErrorBody), KeyRefused))]
async fn sync(State(tdx): State<Tdx>, headers: HeaderMap, body: Bytes) -> Response {
    serve_sync(tdx, &headers, &body, |service, theirs: BookState| {
        service.serve_sync(theirs)
    })
    .await
}

/// `POST /2tdx/sync/brief`: what the peer changed since they last synced,
/// beside a summary of its book (see [`crate::brief`]).
#[utoipa::path(post, path = "/2tdx/sync/brief", tag = "transduction-2tdx", request_body(content = BriefSync, description = "the peer's changes and a summary of its book"),
    responses((status = 200, description = "what the peer lacks, by the summary", body = BriefAnswer), (status = 400, description = "not JSON", body = ramanujan_http::ErrorBody),
        (status = 422, description = "JSON that is not a book state", body = ramanujan_http::ErrorBody), KeyRefused))]
async fn sync_brief(State(tdx): State<Tdx>, headers: HeaderMap, body: Bytes) -> Response {
    serve_sync(tdx, &headers, &body, |service, theirs: BriefSync| {
        service.serve_brief(theirs)
    })
    .await
}

/// A sync request of either form: the key checked, the body decoded (a
/// refusal of either counted), then served off the async workers.
async fn serve_sync<T, A>(
    tdx: Tdx,
    headers: &HeaderMap,
    body: &[u8],
    serve: impl FnOnce(&TdxService, T) -> Result<A, ChangeError> + Send + 'static,
) -> Response
where
    T: serde::de::DeserializeOwned + Send + 'static,
    A: serde::Serialize + Send + 'static,
{
    if !authorised(&tdx, headers) {
        tdx.service.count_refused_sync();
        return unauthorised();
    }
    let theirs: T = match ramanujan_http::decode_json(body) {
        Ok(theirs) => theirs,
        Err(e) => {
            tdx.service.count_refused_sync();
            return e.into_response();
        }
    };
    let service = tdx.service.clone();
    match offload::run(&tdx.service.offload, move || serve(&service, theirs)).await {
        Ok(Ok(answer)) => Json(answer).into_response(),
        Ok(Err(e)) => change_error(e).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Syncs with the configured peer now.
#[utoipa::path(post, path = "/2tdx/sync/peer", tag = "transduction-2tdx",
    responses((status = 200, description = "synced", body = Synced), KeyRefused,
        (status = 404, description = "no peer configured", body = ramanujan_http::ErrorBody),
        (status = 502, description = "the peer sync failed; the local book is untouched", body = ramanujan_http::ErrorBody)))]
async fn sync_peer(State(tdx): State<Tdx>, headers: HeaderMap) -> Response {
    if !authorised(&tdx, &headers) {
        return unauthorised();
    }
    match tdx.service.sync_with_peer().await {
        Ok(true) => Json(Synced {
            synced: true,
            book: tdx.service.stats(),
        })
        .into_response(),
        Ok(false) => ApiError::not_found("no peer configured (PEER_ENDPOINT or VERS_ENDPOINT)").into_response(),
        Err(e) => ApiError {
            status: StatusCode::BAD_GATEWAY,
            message: format!("the peer sync failed, local rules untouched: {e}"),
        }
        .into_response(),
    }
}

/// The routes `/sync/...` repeat (the original design's names).
mod under_sync {
    #[utoipa::path(post, path = "/sync", tag = "transduction-2tdx", request_body(content = crate::book::BookState, description = "the peer's book state"),
        responses((status = 200, description = "as `POST /2tdx/sync`", body = crate::book::BookState), (status = 400, description = "not JSON", body = ramanujan_http::ErrorBody),
            (status = 422, description = "JSON that is not a book state", body = ramanujan_http::ErrorBody), super::KeyRefused))]
    #[allow(dead_code)]
    pub fn sync() {}
    #[utoipa::path(post, path = "/sync/brief", tag = "transduction-2tdx", request_body(content = crate::brief::BriefSync, description = "the peer's changes and a summary"),
        responses((status = 200, description = "as `POST /2tdx/sync/brief`", body = crate::brief::BriefAnswer), (status = 400, description = "not JSON", body = ramanujan_http::ErrorBody),
            (status = 422, description = "JSON that is not a book state", body = ramanujan_http::ErrorBody), super::KeyRefused))]
    #[allow(dead_code)]
    pub fn brief() {}
    #[utoipa::path(post, path = "/sync/peer", tag = "transduction-2tdx", responses((status = 200, description = "as `POST /2tdx/sync/peer`", body = super::Synced), super::KeyRefused,
        (status = 404, description = "no peer configured", body = ramanujan_http::ErrorBody),
        (status = 502, description = "the peer sync failed; the local book is untouched", body = ramanujan_http::ErrorBody)))]
    #[allow(dead_code)]
    pub fn peer() {}
    #[utoipa::path(get, path = "/sync/health", tag = "transduction-2tdx", responses((status = 200, description = "as `GET /2tdx/health`", body = super::TdxHealth)))]
    #[allow(dead_code)]
    pub fn health() {}
}

/// The component's routes, described (merged into the host's `/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(
        health,
        rules,
        add_rules,
        update_rule,
        remove_rule,
        mine,
        codegen,
        parse_code,
        sync,
        sync_brief,
        sync_peer,
        under_sync::sync,
        under_sync::brief,
        under_sync::peer,
        under_sync::health
    ))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}
