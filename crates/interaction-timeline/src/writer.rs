//! [`Timeline`]: the store, the thread that writes what agents and components
//! emit into it in batches, and its health.

use crate::store::{Filter, Stats, Store, StoreError, Stored};
use ramanujan_events::{Emitter, Event, EventQueue};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most events the writer appends in one batch.
pub const BATCH: usize = 8_192;
/// Events the emitters' queue holds before it drops (see [`Emitter`]).
pub const QUEUE: usize = 65_536;
/// How long the writer waits for a batch to fill once its first event came:
/// each batch is a commit, and a network's events come in a trickle.
pub const LINGER: Duration = Duration::from_millis(25);
/// A batch this large is written without waiting for more: its commit is
/// already a small part of its cost.
pub const LINGER_BELOW: usize = 1_024;
/// The writer stops waiting for a batch to fill when no event came for this long.
pub const LINGER_GAP: Duration = Duration::from_millis(5);
/// Events at most written after the timeline is told to stop: what was
/// queued then, not what producers still add.
const STOP_DRAIN: usize = 1 << 20;
/// How often the writer moves events past their retention out of the table.
pub const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// How long events stay in the table (`TIMELINE_RETENTION`), how many it
/// holds at most (`TIMELINE_MAX_EVENTS`), and where older ones go before they
/// leave it. The size is counted in events, not bytes: a DuckDB file does not
/// shrink when rows leave it (it reuses their space), so a bound on its bytes
/// would not free what a reader expects.
#[derive(Debug, Clone, Default)]
pub struct Retention {
    /// Events older than this leave the table.
    pub keep: Option<Duration>,
    /// Past this many events, the oldest written leave the table.
    pub max_events: Option<u64>,
    /// A directory for the Parquet files they are written to first; none
    /// drops them (a timeline in memory keeps nothing anyway).
    pub archive: Option<PathBuf>,
}

/// The timeline: its database, its writer, and the emitter that feeds it.
pub struct Timeline {
    emitter: Emitter,
    /// For queries (DuckDB connections are not shared between threads).
    reader: Mutex<Store>,
    /// For batches posted to `/timeline/events`, written before they are acknowledged.
    direct: Mutex<Store>,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    retention: Option<Retention>,
}

/// What the writer and the routes share.
#[derive(Default)]
struct Shared {
    /// The next `seq`.
    seq: AtomicU64,
    /// Events the writer wrote from the queue.
    written: AtomicU64,
    /// Events posted to `/timeline/events` and written.
    posted: AtomicU64,
    /// Events moved out of the table by retention.
    retired: AtomicU64,
    /// Events whose batch failed to be written.
    lost: AtomicU64,
    /// The last write failure, while no write has succeeded since.
    failing: Mutex<Option<String>>,
    stop: AtomicBool,
}

/// What `/timeline/health` answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = TimelineHealth)]
pub struct Health {
    /// `ok`, or `degraded` while writes fail.
    pub status: &'static str,
    /// Why it is degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Events written.
    pub written: u64,
    /// Events emitted and not written: the queue was full, or their write failed.
    pub dropped: u64,
    /// Events waiting in the queue.
    pub queued: u64,
    /// Events moved out of the table by retention (into Parquet files, if archived).
    pub retired: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Timeline {
    /// Opens the timeline in the DuckDB file `path` (in memory if none) and
    /// starts its writer.
    pub fn open(path: Option<&Path>) -> Result<Arc<Timeline>, StoreError> {
        Timeline::open_with(path, None)
    }

    /// [`Timeline::open`], moving events past `retention` out of the table
    /// every [`RETENTION_EVERY`].
    pub fn open_with(path: Option<&Path>, retention: Option<Retention>) -> Result<Arc<Timeline>, StoreError> {
        let store = match path {
            Some(path) => Store::open(path)?,
            None => Store::in_memory()?,
        };
        let shared = Arc::new(Shared::default());
        shared.seq.store(store.next_seq()?, Ordering::SeqCst);
        let (emitter, queue) = Emitter::bounded(QUEUE);
        let timeline = Arc::new(Timeline {
            emitter,
            reader: Mutex::new(store.connect()?),
            direct: Mutex::new(store.connect()?),
            shared: shared.clone(),
            writer: Mutex::new(None),
            retention: retention.clone(),
        });
        let handle = std::thread::Builder::new()
            .name("timeline-writer".into())
            .spawn(move || write_batches(store, queue, shared, retention))
            .map_err(|e| StoreError::from_message(format!("starting the writer: {e}")))?;
        *lock(&timeline.writer) = Some(handle);
        Ok(timeline)
    }

    /// The emitter agents and components send their events through.
    pub fn emitter(&self) -> Emitter {
        self.emitter.clone()
    }

    /// Writes a batch now (for `POST /timeline/events`): once this returns
    /// `Ok`, every event of it is stored.
    pub fn append_now(&self, events: &[Event]) -> Result<(), StoreError> {
        self.write_now(events, |store, first| store.append(first, events))
    }

    /// Writes a batch from the broker feed `consumer` now, with `through`
    /// (the last broker sequence in it) as the feed's position, in one
    /// transaction: once this returns `Ok`, both are stored.
    pub fn append_fed(&self, consumer: &str, through: u64, events: &[Event]) -> Result<(), StoreError> {
        self.write_now(events, |store, first| {
            store.append_fed(first, events, consumer, through)
        })
    }

    /// Numbers `events` and has `write` store them from the first number, on
    /// the connection for direct writes; counts them once stored.
    fn write_now(
        &self,
        events: &[Event],
        write: impl FnOnce(&Store, u64) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let first = self.shared.seq.fetch_add(events.len() as u64, Ordering::SeqCst);
        write(&lock(&self.direct), first)?;
        self.shared.posted.fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The last broker sequence the feed `consumer` wrote, if it wrote any.
    pub fn feed_position(&self, consumer: &str) -> Result<Option<u64>, StoreError> {
        lock(&self.direct).feed_position(consumer)
    }

    /// Events that pass `filter`.
    pub fn query(&self, filter: &Filter) -> Result<Vec<Stored>, StoreError> {
        lock(&self.reader).query(filter)
    }

    /// Events that pass `filter`, up to [`crate::store::MAX_EXPORT`] (for exports).
    pub fn query_export(&self, filter: &Filter) -> Result<Vec<Stored>, StoreError> {
        lock(&self.reader).query_at_most(filter, crate::store::MAX_EXPORT)
    }

    /// Writes the events that pass `filter` to `path` in `format`.
    pub fn export(&self, filter: &Filter, format: crate::store::FileFormat, path: &Path) -> Result<(), StoreError> {
        lock(&self.reader).export(filter, format, path)
    }

    /// Applies the retention now (the writer does every [`RETENTION_EVERY`]):
    /// how many events left the table, and the Parquet file they went to.
    /// Nothing without a retention.
    pub fn retain_now(&self) -> Result<(u64, Option<PathBuf>), StoreError> {
        let Some(retention) = &self.retention else {
            return Ok((0, None));
        };
        let done = retain(&lock(&self.reader), retention)?;
        self.shared.retired.fetch_add(done.0, Ordering::Relaxed);
        Ok(done)
    }

    /// Counts, percentiles and flows over a time range.
    pub fn stats(&self, since_us: Option<i64>, until_us: Option<i64>) -> Result<Stats, StoreError> {
        lock(&self.reader).stats(since_us, until_us)
    }

    /// Whether writes succeed, and what was written and lost.
    pub fn health(&self) -> Health {
        let reason = lock(&self.shared.failing).clone();
        let written = self.shared.written.load(Ordering::Relaxed) + self.shared.posted.load(Ordering::Relaxed);
        let lost = self.shared.lost.load(Ordering::Relaxed);
        Health {
            status: if reason.is_some() { "degraded" } else { "ok" },
            reason,
            written,
            dropped: self.emitter.dropped() + lost,
            queued: self.emitter.queued(),
            retired: self.shared.retired.load(Ordering::Relaxed),
        }
    }

    /// Waits until every event emitted so far is written (or lost), at most
    /// `timeout`; answers whether it got there.
    pub fn settle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.shared.handled() >= self.emitter.emitted() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

impl Shared {
    /// Events the writer has taken from the queue, written or lost.
    fn handled(&self) -> u64 {
        self.written.load(Ordering::Relaxed) + self.lost.load(Ordering::Relaxed)
    }
}

impl Drop for Timeline {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = lock(&self.writer).take() {
            let _ = handle.join();
        }
    }
}

/// The writer: takes what is queued, up to [`BATCH`] at a time or what came
/// within [`LINGER`] of the first while it holds fewer than [`LINGER_BELOW`]
/// (and events keep coming, each within [`LINGER_GAP`] of the last), and
/// appends it.
fn write_batches(store: Store, queue: EventQueue, shared: Arc<Shared>, retention: Option<Retention>) {
    let mut retained = Instant::now();
    loop {
        if let Some(retention) = &retention
            && retained.elapsed() >= RETENTION_EVERY
        {
            retained = Instant::now();
            match retain(&store, retention) {
                Ok((n, _)) => {
                    shared.retired.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the timeline's retention failed; the events stay");
                }
            }
        }
        if shared.stop.load(Ordering::SeqCst) {
            // What was queued when the timeline stopped is written; what
            // producers still running emit after it is not waited for (they
            // would keep the writer, and whoever drops the timeline, forever).
            let mut rest = Vec::new();
            while rest.len() < STOP_DRAIN
                && let Some(more) = queue.try_recv()
            {
                rest.extend(more);
            }
            for batch in rest.chunks(BATCH) {
                append(&store, &shared, batch);
            }
            return;
        }
        let mut batch = match queue.recv_timeout(Duration::from_millis(50)) {
            Ok(events) => events,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(_) => return,
        };
        let deadline = Instant::now() + LINGER;
        while batch.len() < BATCH {
            while batch.len() < BATCH
                && let Some(more) = queue.try_recv()
            {
                batch.extend(more);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if batch.len() >= LINGER_BELOW || left.is_zero() {
                break;
            }
            // Events still coming: wait for more, while they keep coming.
            match queue.recv_timeout(left.min(LINGER_GAP)) {
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        append(&store, &shared, &batch);
    }
}

/// Appends one batch, counting it written or lost.
fn append(store: &Store, shared: &Shared, batch: &[Event]) {
    let n = batch.len() as u64;
    let first_seq = shared.seq.fetch_add(n, Ordering::SeqCst);
    match store.append(first_seq, batch) {
        Ok(()) => {
            *lock(&shared.failing) = None;
            shared.written.fetch_add(n, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::warn!(error = %e, events = n, "the timeline could not write a batch; it is lost");
            *lock(&shared.failing) = Some(e.to_string());
            shared.lost.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Moves the events older than `retention.keep`, and the oldest beyond
/// `retention.max_events`, out of the table.
fn retain(store: &Store, retention: &Retention) -> Result<(u64, Option<PathBuf>), StoreError> {
    let cutoff = retention.keep.map(|keep| {
        let keep = i64::try_from(keep.as_micros()).unwrap_or(i64::MAX);
        ramanujan_events::emit::now_us().saturating_sub(keep)
    });
    store.retain(cutoff, retention.max_events, retention.archive.as_deref())
}
