//! The `events` table in DuckDB: one row per event, appended in batches with
//! DuckDB's appender, never updated. The columns queries filter and
//! aggregate on are their own; the whole event is kept as JSON beside them.
//!
//! No SQL is built from request text: a query picks among fixed clauses and
//! binds every value.

use ramanujan_duckdb::duckdb::{self, Connection, OptionalExt, params_from_iter, types::Value};
use ramanujan_events::event::TYPES;
use ramanujan_events::{Event, EventDot, Kind};
use serde::Serialize;
use std::path::Path;

/// The table. `seq` is the order the timeline took events in; `detail` is
/// what happened (the event's `event`, as JSON), `seen` its source's seen
/// counters (JSON) if it says; the other columns are the event's own.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS events (
    seq UBIGINT NOT NULL,
    at_us BIGINT NOT NULL,
    source VARCHAR NOT NULL,
    type VARCHAR NOT NULL,
    submission VARCHAR,
    peer VARCHAR,
    route VARCHAR,
    bytes UBIGINT,
    duration_us UBIGINT,
    dot_agent VARCHAR,
    dot_counter UBIGINT,
    seen VARCHAR,
    detail VARCHAR NOT NULL
)";

/// How far each feed from a broker has written: the last broker sequence
/// whose events are in `events`, updated in the same transaction as them.
const FEED_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS feed_positions (
    consumer VARCHAR PRIMARY KEY,
    stream_seq UBIGINT NOT NULL
)";

/// Most events one query answers.
pub const MAX_LIMIT: usize = 10_000;
/// Most events one export (`/api/timeline`) carries.
pub const MAX_EXPORT: usize = 100_000;

/// The columns, in order, as exports carry them.
const COLUMNS: &str =
    "seq, at_us, source, type, submission, peer, route, bytes, duration_us, dot_agent, dot_counter, seen, detail";

/// A file format DuckDB writes an export or an archive in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Apache Parquet.
    Parquet,
    /// CSV with a header row.
    Csv,
}

impl FileFormat {
    fn copy_options(self) -> &'static str {
        match self {
            FileFormat::Parquet => "(FORMAT parquet)",
            FileFormat::Csv => "(FORMAT csv, HEADER)",
        }
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[error("timeline storage: {0}")]
pub struct StoreError(String);

impl StoreError {
    /// A failure described by `message`.
    pub fn from_message(message: String) -> Self {
        StoreError(message)
    }
}

impl From<duckdb::Error> for StoreError {
    fn from(e: duckdb::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// A connection to the timeline's database.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (or creates) the database in `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::init(Connection::open(path)?)
    }

    /// A database in memory.
    pub fn in_memory() -> Result<Store, StoreError> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store, StoreError> {
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(FEED_SCHEMA)?;
        Ok(Store { conn })
    }

    /// Another connection to the same database (for readers beside the writer).
    pub fn connect(&self) -> Result<Store, StoreError> {
        Ok(Store {
            conn: self.conn.try_clone()?,
        })
    }

    /// The next `seq` to give: one past the largest stored.
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        let next: u64 = self
            .conn
            .query_row("SELECT coalesce(max(seq) + 1, 0) FROM events", [], |r| r.get(0))?;
        Ok(next)
    }

    /// The last broker sequence the feed `consumer` wrote ([`Store::append_fed`]).
    pub fn feed_position(&self, consumer: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT stream_seq FROM feed_positions WHERE consumer = ?",
                [consumer],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Appends events from a broker feed as [`Store::append`] does and
    /// records `through` as `consumer`'s position, in one transaction: after a
    /// crash, the events of a batch and the position that says so are both
    /// there or both not.
    pub fn append_fed(&self, first_seq: u64, events: &[Event], consumer: &str, through: u64) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN TRANSACTION")?;
        let done = self.append(first_seq, events).and_then(|()| {
            self.conn.execute(
                "INSERT INTO feed_positions VALUES (?, ?)
                 ON CONFLICT (consumer) DO UPDATE SET stream_seq = excluded.stream_seq",
                duckdb::params![consumer, through],
            )?;
            Ok(())
        });
        match done {
            Ok(()) => Ok(self.conn.execute_batch("COMMIT")?),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Appends events, numbered from `first_seq`, as one batch: all or none.
    pub fn append(&self, first_seq: u64, events: &[Event]) -> Result<(), StoreError> {
        let mut appender = self.conn.appender("events")?;
        for (i, event) in events.iter().enumerate() {
            let detail = serde_json::to_string(&event.event).map_err(|e| StoreError(e.to_string()))?;
            let seen = (!event.seen.is_empty())
                .then(|| serde_json::to_string(&event.seen))
                .transpose()
                .map_err(|e| StoreError(e.to_string()))?;
            let dot = event.dot.as_ref();
            appender.append_row(duckdb::params![
                first_seq + i as u64,
                event.at_us,
                event.source,
                event.event.name(),
                event.submission,
                event.event.peer(),
                route(&event.event),
                event.event.bytes(),
                event.event.duration_us(),
                dot.map(|d| d.agent.as_str()),
                dot.map(|d| d.counter),
                seen,
                detail,
            ])?;
        }
        appender.flush()?;
        Ok(())
    }

    /// Events that pass `filter`, by time (ties in the order taken).
    pub fn query(&self, filter: &Filter) -> Result<Vec<Stored>, StoreError> {
        self.query_at_most(filter, MAX_LIMIT)
    }

    /// [`Store::query`], with `filter.limit` bounded by `max`.
    pub fn query_at_most(&self, filter: &Filter, max: usize) -> Result<Vec<Stored>, StoreError> {
        let (clause, mut values) = filter.clause();
        let sql = format!(
            "SELECT seq, at_us, source, submission, dot_agent, dot_counter, seen, detail
             FROM events{clause} ORDER BY at_us, seq LIMIT ?"
        );
        values.push(Value::UBigInt(filter.limit.min(max) as u64));
        let mut statement = self.conn.prepare(&sql)?;
        let rows = statement.query_map(params_from_iter(values), |row| {
            Ok((
                row.get::<_, u64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<String>>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, Option<u64>>(5)?,
                row.get::<_, Option<String>>(6)?,
                row.get::<_, String>(7)?,
            ))
        })?;
        let mut events = Vec::new();
        for row in rows {
            let (seq, at_us, source, submission, dot_agent, dot_counter, seen, detail) = row?;
            let bad = |e: serde_json::Error| StoreError(format!("row {seq}: {e}"));
            let event = Event {
                at_us,
                source,
                submission,
                dot: dot_agent
                    .zip(dot_counter)
                    .map(|(agent, counter)| EventDot { agent, counter }),
                seen: seen
                    .map(|s| serde_json::from_str(&s))
                    .transpose()
                    .map_err(bad)?
                    .unwrap_or_default(),
                event: serde_json::from_str(&detail).map_err(bad)?,
            };
            events.push(Stored { seq, event });
        }
        Ok(events)
    }

    /// Writes the events that pass `filter` (at most [`MAX_EXPORT`], by
    /// time) to the file `path` as DuckDB writes `format`.
    pub fn export(&self, filter: &Filter, format: FileFormat, path: &Path) -> Result<(), StoreError> {
        let (clause, mut values) = filter.clause();
        values.push(Value::UBigInt(filter.limit.min(MAX_EXPORT) as u64));
        // COPY takes no parameters: the rows go through a temporary table
        // made with bound ones, and the path is this process's own.
        self.conn.execute_batch("DROP TABLE IF EXISTS export_rows")?;
        self.conn.execute(
            &format!(
                "CREATE TEMP TABLE export_rows AS SELECT {COLUMNS} FROM events{clause} ORDER BY at_us, seq LIMIT ?"
            ),
            params_from_iter(values),
        )?;
        let copied = self.copy_to("export_rows", format, path);
        self.conn.execute_batch("DROP TABLE IF EXISTS export_rows")?;
        copied
    }

    fn copy_to(&self, table: &str, format: FileFormat, path: &Path) -> Result<(), StoreError> {
        let path = path
            .to_str()
            .filter(|p| !p.contains('\''))
            .ok_or_else(|| StoreError(format!("cannot write to {}: not a plain path", path.display())))?;
        self.conn
            .execute_batch(&format!("COPY {table} TO '{path}' {}", format.copy_options()))?;
        Ok(())
    }

    /// Moves the events older than `cutoff_us`, and all but the newest
    /// `max_events` written, out of the table: into a Parquet file in
    /// `archive` first, if given. Exactly the rows written
    /// to the file go (events that arrive meanwhile stay), and only once it
    /// is written. Answers how many went, and the file.
    pub fn retain(
        &self,
        cutoff_us: Option<i64>,
        max_events: Option<u64>,
        archive: Option<&Path>,
    ) -> Result<(u64, Option<std::path::PathBuf>), StoreError> {
        // The oldest `seq` kept by the count: that of the max_events-th newest.
        let first_kept: u64 = match max_events {
            Some(n) => self
                .conn
                .query_row(
                    "SELECT seq FROM events ORDER BY seq DESC LIMIT 1 OFFSET ?",
                    [n.saturating_sub(1).min(i64::MAX as u64) as i64],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0),
            None => 0,
        };
        let cutoff_us = cutoff_us.unwrap_or(i64::MIN);
        self.conn.execute_batch("DROP TABLE IF EXISTS retired_rows")?;
        self.conn.execute(
            &format!(
                "CREATE TEMP TABLE retired_rows AS SELECT {COLUMNS} FROM events \
                 WHERE at_us < ? OR seq < ? ORDER BY at_us, seq"
            ),
            duckdb::params![cutoff_us, first_kept],
        )?;
        let result = self.retire(archive);
        self.conn.execute_batch("DROP TABLE IF EXISTS retired_rows")?;
        result
    }

    fn retire(&self, archive: Option<&Path>) -> Result<(u64, Option<std::path::PathBuf>), StoreError> {
        let (old, first, last): (u64, Option<i64>, Option<i64>) =
            self.conn
                .query_row("SELECT count(*), min(at_us), max(at_us) FROM retired_rows", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
        let (Some(first), Some(last)) = (first, last) else {
            return Ok((0, None));
        };
        let file = match archive {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| StoreError(format!("creating {}: {e}", dir.display())))?;
                let file = dir.join(format!("events-{first}-{last}.parquet"));
                self.copy_to("retired_rows", FileFormat::Parquet, &file)?;
                Some(file)
            }
            None => None,
        };
        self.conn
            .execute_batch("DELETE FROM events WHERE seq IN (SELECT seq FROM retired_rows)")?;
        Ok((old, file))
    }

    /// Counts, latency percentiles and message flows of the events in a
    /// time range.
    pub fn stats(&self, since_us: Option<i64>, until_us: Option<i64>) -> Result<Stats, StoreError> {
        let filter = Filter {
            since_us,
            until_us,
            ..Filter::default()
        };
        let (clause, values) = filter.clause();
        let (events, first, last): (u64, Option<i64>, Option<i64>) = self.conn.query_row(
            &format!("SELECT count(*), min(at_us), max(at_us) FROM events{clause}"),
            params_from_iter(values.clone()),
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        // The window: as asked, or the span of the events in it.
        let from = since_us.or(first).unwrap_or(0);
        let to = until_us.or(last).unwrap_or(from);
        // In i128: a window from i64::MIN to i64::MAX is asked for, not an overflow.
        let seconds = ((i128::from(to) - i128::from(from)) as f64 / 1e6).max(1e-6);

        let mut by_type = Vec::new();
        let mut statement = self.conn.prepare(&format!(
            "SELECT type, count(*), count(duration_us),
                    quantile_disc(duration_us, 0.5), quantile_disc(duration_us, 0.95),
                    quantile_disc(duration_us, 0.99)
             FROM events{clause} GROUP BY type ORDER BY type"
        ))?;
        let rows = statement.query_map(params_from_iter(values.clone()), |r| {
            Ok(TypeStats {
                r#type: r.get(0)?,
                count: r.get(1)?,
                timed: r.get(2)?,
                p50_us: r.get(3)?,
                p95_us: r.get(4)?,
                p99_us: r.get(5)?,
            })
        })?;
        for row in rows {
            by_type.push(row?);
        }

        let sent = Filter {
            kind: Some("message_sent".into()),
            ..filter
        };
        let (clause, values) = sent.clause();
        let mut flows = Vec::new();
        let mut statement = self.conn.prepare(&format!(
            "SELECT source, peer, count(*), sum(bytes) FROM events{clause}
             GROUP BY source, peer ORDER BY source, peer"
        ))?;
        let rows = statement.query_map(params_from_iter(values.clone()), |r| {
            let messages: u64 = r.get(2)?;
            let bytes: Option<i128> = r.get(3)?;
            Ok(Flow {
                from: r.get(0)?,
                to: r.get(1)?,
                messages,
                messages_per_second: messages as f64 / seconds,
                bytes_per_second: bytes.map(|b| b as f64 / seconds),
            })
        })?;
        for row in rows {
            flows.push(row?);
        }
        let (messages, syncs): (u64, u64) = self.conn.query_row(
            &format!("SELECT count(*), count(*) FILTER (WHERE route LIKE 'sync%') FROM events{clause}"),
            params_from_iter(values),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(Stats {
            events,
            since_us: from,
            until_us: to,
            by_type,
            flows,
            messages_sent: messages,
            sync_ratio: (messages > 0).then(|| syncs as f64 / messages as f64),
        })
    }
}

/// Which events a query wants. Every field is checked before it gets here
/// (see [`Filter::check`]).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Events of this agent or component.
    pub source: Option<String>,
    /// Events of this type (one of [`TYPES`]).
    pub kind: Option<String>,
    /// Events about this submission.
    pub submission: Option<String>,
    /// At or after (µs since the epoch).
    pub since_us: Option<i64>,
    /// Before (µs since the epoch).
    pub until_us: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

impl Filter {
    /// What is wrong with it, naming the field: an unknown type, a reversed
    /// range, a limit over [`MAX_LIMIT`].
    pub fn check(&self) -> Result<(), String> {
        if let Some(kind) = &self.kind
            && !TYPES.contains(&kind.as_str())
        {
            return Err(format!(
                "type: unknown event type `{kind}`; one of {}",
                TYPES.join(", ")
            ));
        }
        if let (Some(since), Some(until)) = (self.since_us, self.until_us)
            && since > until
        {
            return Err(format!("since: {since} is after until ({until})"));
        }
        if self.limit > MAX_LIMIT {
            return Err(format!("limit: {} is over the maximum, {MAX_LIMIT}", self.limit));
        }
        Ok(())
    }

    /// ` WHERE ...` (or nothing) and the values it binds, in order.
    fn clause(&self) -> (String, Vec<Value>) {
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        let mut text = |column: &'static str, value: &Option<String>| {
            if let Some(v) = value {
                conditions.push(column);
                values.push(Value::Text(v.clone()));
            }
        };
        text("source = ?", &self.source);
        text("type = ?", &self.kind);
        text("submission = ?", &self.submission);
        if let Some(since) = self.since_us {
            conditions.push("at_us >= ?");
            values.push(Value::BigInt(since));
        }
        if let Some(until) = self.until_us {
            conditions.push("at_us < ?");
            values.push(Value::BigInt(until));
        }
        let clause = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        (clause, values)
    }
}

/// The route (or message kind) of a message event.
fn route(kind: &Kind) -> Option<&str> {
    match kind {
        Kind::MessageSent { route, .. } | Kind::MessageReceived { route, .. } => Some(route),
        Kind::Webhook { topic, .. } => Some(topic),
        _ => None,
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stored {
    /// Its place in the order the timeline took events in.
    pub seq: u64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// What `/timeline/stats` answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = TimelineStats)]
pub struct Stats {
    /// Events in the window.
    pub events: u64,
    /// The window's start (as asked, or the first event's time).
    pub since_us: i64,
    /// Its end (as asked, or the last event's time).
    pub until_us: i64,
    /// Per type: counts and latency percentiles.
    pub by_type: Vec<TypeStats>,
    /// Messages sent per (from, to).
    pub flows: Vec<Flow>,
    /// Messages sent in the window.
    pub messages_sent: u64,
    /// The share of them that were anti-entropy (`sync_*`); none without messages.
    pub sync_ratio: Option<f64>,
}

/// Counts and latency percentiles of one event type.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TypeStats {
    /// The type.
    #[serde(rename = "type")]
    pub r#type: String,
    /// Events of it.
    pub count: u64,
    /// Of those, events that say how long they took.
    pub timed: u64,
    /// Median duration (µs), nearest rank; none if none is timed.
    pub p50_us: Option<u64>,
    /// 95th percentile.
    pub p95_us: Option<u64>,
    /// 99th percentile.
    pub p99_us: Option<u64>,
}

/// Messages from one agent to another.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Flow {
    /// The sender.
    pub from: String,
    /// The receiver.
    pub to: Option<String>,
    /// Messages sent.
    pub messages: u64,
    /// Per second of the window.
    pub messages_per_second: f64,
    /// Bytes per second, where sizes are known (not in process).
    pub bytes_per_second: Option<f64>,
}
