//! `/timeline/...`: typed parameters only; every value reaches DuckDB as a
//! bound parameter.
//!
//! | route | answers |
//! |---|---|
//! | `GET /timeline/query?agent=&type=&submission=&since=&until=&limit=&order=time\|causal` | events by time, or in causal order (see [`crate::causal`]); `since`/`until` in µs since the epoch; `limit` ≤ 10,000, default 1,000 |
//! | `GET /timeline/submissions/{id}` | one submission's story: where it entered, the agents it reached and when, each rewriting step |
//! | `GET /timeline/stats?since=&until=` | counts and latency p50/p95/p99 per type, messages/s and bytes/s per flow, the sync share of messages |
//! | `POST /timeline/events` | a batch (`{"events": [...]}`, at most 10,000), schema-checked, written before the answer |
//! | `GET /api/timeline?format=json\|ndjson\|csv\|parquet&agent=&type=&submission=&since=&until=&limit=` | an export, by time, at most 100,000 events (the default) |
//! | `GET /timeline/health` | `ok` or `degraded` (writes failing), events written, dropped and queued |

use crate::store::{FileFormat, Filter, MAX_EXPORT, MAX_LIMIT};
use crate::writer::Timeline;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ramanujan_events::{Event, Kind};
use ramanujan_http::{ApiError, QueryParams, decode_json};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

type Shared = State<Arc<Timeline>>;

/// The routes, over a timeline.
pub fn router(timeline: Arc<Timeline>) -> Router {
    Router::new()
        .route("/timeline/query", get(query))
        .route("/timeline/submissions/{id}", get(submission))
        .route("/timeline/stats", get(stats))
        .route("/timeline/events", post(events))
        .route("/timeline/health", get(health))
        .route("/api/timeline", get(export))
        .with_state(timeline)
}

/// A storage failure as HTTP (503: the timeline cannot answer now).
fn unavailable(e: crate::StoreError) -> ApiError {
    ApiError::unavailable(e.to_string())
}

/// Runs DuckDB work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, crate::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::unavailable(format!("the timeline's query failed: {e}")))?
        .map_err(unavailable)
}

/// `GET /timeline/query`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct QueryRequest {
    /// Only events of this agent or component.
    agent: Option<String>,
    /// Only events of this type (`submission`, `message_sent`, `merge`, `rewrite_step`, ...).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    kind: Option<String>,
    /// Only events of this submission.
    submission: Option<String>,
    /// From this time on (µs since the epoch).
    since: Option<i64>,
    /// Up to this time (µs since the epoch).
    until: Option<i64>,
    /// Most events answered (at most 10,000; default 1,000).
    limit: Option<usize>,
    /// `time` (default) or `causal` (a topological order of happens-before).
    order: Option<String>,
}

/// Events by time, or in causal order.
#[utoipa::path(get, path = "/timeline/query", tag = "interaction-timeline", params(QueryRequest),
    responses((status = 200, description = "the events", body = Events), ramanujan_http::QueryErrors, (status = 503, description = "the timeline cannot read or write now", body = ramanujan_http::ErrorBody)))]
async fn query(State(timeline): Shared, QueryParams(q): QueryParams<QueryRequest>) -> Result<Json<Events>, ApiError> {
    let causal = match q.order.as_deref() {
        None | Some("time") => false,
        Some("causal") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "order: unknown order `{other}`; use `time` or `causal`"
            )));
        }
    };
    let filter = Filter {
        source: q.agent,
        kind: q.kind,
        submission: q.submission,
        since_us: q.since,
        until_us: q.until,
        limit: q.limit.unwrap_or(1_000),
    };
    filter.check().map_err(ApiError::bad_request)?;
    let events = blocking(move || timeline.query(&filter)).await?;
    // The window is the first `limit` events by time, in causal order if asked.
    let (events, order) = if causal {
        (crate::causal::causal_order(events), "causal")
    } else {
        (events, "time")
    };
    Ok(Json(Events {
        count: events.len(),
        order,
        events,
    }))
}

/// `GET /timeline/query`.
#[derive(Serialize, utoipa::ToSchema)]
struct Events {
    /// Events answered.
    count: usize,
    /// `time` or `causal`.
    order: &'static str,
    /// The events, in that order.
    #[schema(value_type = Vec<StoredEvent>)]
    events: Vec<crate::store::Stored>,
}

/// An event as stored (`store::Stored`, whose event is flattened in:
/// described field by field, since the event's own schema allows no other
/// field, as `POST /timeline/events` takes none).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // only its description is used
struct StoredEvent {
    /// Its place in the order the timeline took events in.
    seq: u64,
    /// When, in microseconds since the Unix epoch.
    at_us: i64,
    /// The agent or component it happened in.
    source: String,
    /// The submission it is about, if one.
    submission: Option<String>,
    /// The dot of the facts it recorded, if it recorded any.
    dot: Option<ramanujan_events::EventDot>,
    /// What its source had seen: the highest contiguous event counter per
    /// agent (absent when nothing).
    #[schema(required = false)]
    seen: BTreeMap<String, u64>,
    /// What happened.
    event: Kind,
}

/// `GET /timeline/submissions/{id}`.
#[derive(Serialize, utoipa::ToSchema)]
struct Story {
    /// The submission.
    submission: String,
    /// Where and when it entered; none if the timeline missed it.
    entered: Option<Reached>,
    /// Each agent it reached, first time, and from whom (none where it entered).
    reached: Vec<Reached>,
    /// Each rewriting step about it.
    steps: Vec<Step>,
    /// Events about it.
    events: usize,
    /// The story is cut at the most events a query answers.
    truncated: bool,
}

/// An agent that held a submission, and since when.
#[derive(Serialize, utoipa::ToSchema)]
struct Reached {
    /// The agent.
    agent: String,
    /// When (µs since the epoch).
    at_us: i64,
    /// The agent it came from, if by message.
    from: Option<String>,
}

/// One rewriting step.
#[derive(Serialize, utoipa::ToSchema)]
struct Step {
    /// The agent.
    agent: String,
    /// When (µs since the epoch).
    at_us: i64,
    /// Its colour.
    color: String,
    /// Iterations run.
    iterations: u64,
    /// Facts derived.
    facts: u64,
    /// Why it stopped.
    stop: String,
    /// How long it took.
    duration_us: u64,
}

/// One submission's story: where it entered, the agents it reached and when,
/// each rewriting step, when it settled.
#[utoipa::path(get, path = "/timeline/submissions/{id}", tag = "interaction-timeline",
    params(("id" = String, Path, description = "a submission id")),
    responses((status = 200, description = "the story", body = Story),
        (status = 404, description = "no events of that submission", body = ramanujan_http::ErrorBody), (status = 503, description = "the timeline cannot read or write now", body = ramanujan_http::ErrorBody)))]
async fn submission(State(timeline): Shared, Path(id): Path<String>) -> Result<Json<Story>, ApiError> {
    let filter = Filter {
        submission: Some(id.clone()),
        limit: MAX_LIMIT,
        ..Filter::default()
    };
    let events = blocking(move || timeline.query(&filter)).await?;
    if events.is_empty() {
        return Err(ApiError::not_found(format!(
            "the timeline holds no event about submission `{id}`"
        )));
    }
    let entered = events
        .iter()
        .find(|e| matches!(e.event.event, Kind::Submission { .. }))
        .map(|e| Reached {
            agent: e.event.source.clone(),
            at_us: e.event.at_us,
            from: None,
        });
    // The first time each agent held it: it entered there, or a message about it came in.
    let mut reached: BTreeMap<&str, (i64, Option<&str>)> = BTreeMap::new();
    for stored in &events {
        let event = &stored.event;
        let from = match &event.event {
            Kind::Submission { .. } => None,
            Kind::MessageReceived { from, .. } => Some(from.as_str()),
            _ => continue,
        };
        reached.entry(event.source.as_str()).or_insert((event.at_us, from));
    }
    let steps: Vec<Step> = events
        .iter()
        .filter_map(|e| match &e.event.event {
            Kind::RewriteStep {
                color,
                iterations,
                facts,
                stop,
                duration_us,
            } => Some(Step {
                agent: e.event.source.clone(),
                at_us: e.event.at_us,
                color: color.clone(),
                iterations: *iterations,
                facts: *facts,
                stop: stop.clone(),
                duration_us: *duration_us,
            }),
            _ => None,
        })
        .collect();
    Ok(Json(Story {
        submission: id,
        entered,
        reached: reached
            .iter()
            .map(|(agent, (at_us, from))| Reached {
                agent: agent.to_string(),
                at_us: *at_us,
                from: from.map(str::to_string),
            })
            .collect(),
        steps,
        events: events.len(),
        truncated: events.len() == MAX_LIMIT,
    }))
}

/// `GET /timeline/stats`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StatsRequest {
    /// From this time on (µs since the epoch).
    since: Option<i64>,
    /// Up to this time (µs since the epoch).
    until: Option<i64>,
}

/// Counts and latency percentiles per type, traffic per flow.
#[utoipa::path(get, path = "/timeline/stats", tag = "interaction-timeline", params(StatsRequest),
    responses((status = 200, description = "the statistics", body = crate::store::Stats), ramanujan_http::QueryErrors, (status = 503, description = "the timeline cannot read or write now", body = ramanujan_http::ErrorBody)))]
async fn stats(
    State(timeline): Shared,
    QueryParams(q): QueryParams<StatsRequest>,
) -> Result<Json<crate::store::Stats>, ApiError> {
    let filter = Filter {
        since_us: q.since,
        until_us: q.until,
        ..Filter::default()
    };
    filter.check().map_err(ApiError::bad_request)?;
    let stats = blocking(move || timeline.stats(q.since, q.until)).await?;
    Ok(Json(stats))
}

/// Most events one `POST /timeline/events` takes.
pub const MAX_BATCH: usize = 10_000;

/// `POST /timeline/events`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Batch {
    /// The events.
    events: Vec<Event>,
}

/// Records a batch of events (at most 10,000), written before the answer.
#[utoipa::path(post, path = "/timeline/events", tag = "interaction-timeline",
    request_body(content = Batch, description = "at most 10,000 events, each with `source` and `event`"),
    responses((status = 201, description = "the events written", body = Written), ramanujan_http::JsonBodyErrors, (status = 503, description = "the timeline cannot read or write now", body = ramanujan_http::ErrorBody)))]
async fn events(State(timeline): Shared, body: Bytes) -> Result<(StatusCode, Json<Written>), ApiError> {
    // A batch that does not fit the schema is a bad request (400), naming the field.
    let batch: Batch = decode_json(&body).map_err(|e| ApiError {
        status: StatusCode::BAD_REQUEST,
        ..e
    })?;
    if batch.events.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "events: {} events is over the maximum batch, {MAX_BATCH}",
            batch.events.len()
        )));
    }
    if let Some(i) = batch.events.iter().position(|e| e.source.is_empty()) {
        return Err(ApiError::bad_request(format!("events[{i}].source: empty")));
    }
    let mut events = batch.events;
    let now = ramanujan_events::emit::now_us();
    for event in &mut events {
        if event.at_us == 0 {
            event.at_us = now;
        }
    }
    let n = events.len();
    blocking(move || timeline.append_now(&events)).await?;
    Ok((StatusCode::CREATED, Json(Written { written: n })))
}

/// `POST /timeline/events`.
#[derive(Serialize, utoipa::ToSchema)]
struct Written {
    /// Events written.
    written: usize,
}

/// `ok`, or `degraded` when writes fail; events written, dropped and queued.
#[utoipa::path(get, path = "/timeline/health", tag = "interaction-timeline", responses((status = 200, description = "the timeline's health", body = crate::writer::Health)))]
async fn health(State(timeline): Shared) -> Json<crate::writer::Health> {
    Json(timeline.health())
}

/// `GET /api/timeline`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ExportRequest {
    /// `json` (default), `ndjson`, `csv` or `parquet`.
    format: Option<String>,
    /// Only events of this agent or component.
    agent: Option<String>,
    /// Only events of this type (`submission`, `message_sent`, `merge`, `rewrite_step`, ...).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    kind: Option<String>,
    /// Only events of this submission.
    submission: Option<String>,
    /// From this time on (µs since the epoch).
    since: Option<i64>,
    /// Up to this time (µs since the epoch).
    until: Option<i64>,
    /// Most events (default and most: 100,000).
    limit: Option<usize>,
}

/// A file of this process's own, removed when dropped.
struct ExportFile(std::path::PathBuf);

impl ExportFile {
    fn new(extension: &str) -> ExportFile {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("ramanujan-timeline-export-{}-{n}.{extension}", std::process::id());
        ExportFile(std::env::temp_dir().join(name))
    }
}

impl Drop for ExportFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An export of events, by time.
#[utoipa::path(get, path = "/api/timeline", tag = "interaction-timeline", params(ExportRequest),
    responses((status = 200, description = "the events in the format asked for",
            content((Vec<Object> = "application/json"), (String = "application/x-ndjson"), (String = "text/csv"), (Vec<u8> = "application/vnd.apache.parquet"))),
        ramanujan_http::QueryErrors, (status = 503, description = "the timeline cannot read or write now", body = ramanujan_http::ErrorBody)))]
async fn export(State(timeline): Shared, QueryParams(q): QueryParams<ExportRequest>) -> Result<Response, ApiError> {
    let filter = Filter {
        source: q.agent,
        kind: q.kind,
        submission: q.submission,
        since_us: q.since,
        until_us: q.until,
        limit: q.limit.unwrap_or(MAX_EXPORT),
    };
    if filter.limit > MAX_EXPORT {
        return Err(ApiError::bad_request(format!(
            "limit: {} is over the most one export carries, {MAX_EXPORT}",
            filter.limit
        )));
    }
    Filter {
        limit: 0,
        ..filter.clone()
    }
    .check()
    .map_err(ApiError::bad_request)?;
    let format = q.format.unwrap_or_else(|| "json".into());
    let file = match format.as_str() {
        "json" | "ndjson" => None,
        "csv" => Some((FileFormat::Csv, "text/csv", "csv")),
        "parquet" => Some((FileFormat::Parquet, "application/vnd.apache.parquet", "parquet")),
        other => {
            return Err(ApiError::bad_request(format!(
                "format: unknown format `{other}`; one of json, ndjson, csv, parquet"
            )));
        }
    };
    let Some((file_format, content_type, extension)) = file else {
        let events = blocking(move || timeline.query_export(&filter)).await?;
        if format == "json" {
            return Ok(Json(events).into_response());
        }
        let mut body = String::new();
        for event in &events {
            body.push_str(&serde_json::to_string(event).unwrap_or_default());
            body.push('\n');
        }
        return Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response());
    };
    let bytes = blocking(move || {
        let file = ExportFile::new(extension);
        timeline.export(&filter, file_format, &file.0)?;
        std::fs::read(&file.0).map_err(|e| crate::StoreError::from_message(format!("reading the export: {e}")))
    })
    .await?;
    let disposition = format!("attachment; filename=\"timeline.{extension}\"");
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

/// The component's routes, described (merged into the host's `/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(query, submission, stats, events, health, export))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}
