//! [`Emitter`]: events out of agents and components without blocking them.

use crate::event::Event;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

/// A bounded queue of events towards the timeline. [`Emitter::emit_all`]
/// never waits: events that do not fit (the writer is behind, or gone) are
/// counted in [`Emitter::dropped`] and let go. Events travel in batches, one
/// per call, so an agent's step of a hundred events wakes the reader once.
#[derive(Clone, Debug)]
pub struct Emitter {
    batches: SyncSender<Vec<Event>>,
    counts: Arc<Counts>,
}

/// The reading end of an [`Emitter`]'s queue.
#[derive(Debug)]
pub struct EventQueue {
    batches: Receiver<Vec<Event>>,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    capacity: u64,
    queued: AtomicU64,
    emitted: AtomicU64,
    dropped: AtomicU64,
}

impl Emitter {
    /// An emitter and the reading end of its queue, which holds at most
    /// `capacity` events.
    pub fn bounded(capacity: usize) -> (Emitter, EventQueue) {
        let capacity = capacity.max(1);
        let (batches, receiver) = sync_channel(capacity);
        let counts = Arc::new(Counts {
            capacity: capacity as u64,
            ..Counts::default()
        });
        let emitter = Emitter {
            batches,
            counts: counts.clone(),
        };
        (
            emitter,
            EventQueue {
                batches: receiver,
                counts,
            },
        )
    }

    /// Queues an event (see [`Emitter::emit_all`]).
    pub fn emit(&self, event: Event) {
        self.emit_all(vec![event]);
    }

    /// Queues events as one batch, stamping each with the time now if it has
    /// none; all of them are dropped if they do not fit.
    pub fn emit_all(&self, mut events: Vec<Event>) {
        let n = events.len() as u64;
        if n == 0 {
            return;
        }
        let counts = &self.counts;
        if counts.queued.fetch_add(n, Ordering::SeqCst) + n > counts.capacity {
            counts.queued.fetch_sub(n, Ordering::SeqCst);
            counts.dropped.fetch_add(n, Ordering::Relaxed);
            return;
        }
        let now = now_us();
        for event in &mut events {
            if event.at_us == 0 {
                event.at_us = now;
            }
        }
        // Counted before it can be read, so that a reader never sees more
        // taken than emitted.
        counts.emitted.fetch_add(n, Ordering::SeqCst);
        if self.batches.try_send(events).is_err() {
            counts.emitted.fetch_sub(n, Ordering::SeqCst);
            counts.queued.fetch_sub(n, Ordering::SeqCst);
            counts.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts `n` events lost before they reached this emitter (an agent's
    /// own buffer was full), so that [`Emitter::dropped`] tells of them too.
    pub fn count_dropped(&self, n: u64) {
        self.counts.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Events queued so far.
    pub fn emitted(&self) -> u64 {
        self.counts.emitted.load(Ordering::SeqCst)
    }

    /// Events let go so far: the queue was full or its reader gone.
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }

    /// Events in the queue now.
    pub fn queued(&self) -> u64 {
        self.counts.queued.load(Ordering::SeqCst)
    }
}

impl EventQueue {
    /// The next batch, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Vec<Event>, RecvTimeoutError> {
        let batch = self.batches.recv_timeout(timeout)?;
        self.taken(&batch);
        Ok(batch)
    }

    /// The next batch if one is waiting.
    pub fn try_recv(&self) -> Option<Vec<Event>> {
        let batch = self.batches.try_recv().ok()?;
        self.taken(&batch);
        Some(batch)
    }

    fn taken(&self, batch: &[Event]) {
        self.counts.queued.fetch_sub(batch.len() as u64, Ordering::SeqCst);
    }
}

/// Microseconds since the Unix epoch (0 before it).
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Kind;

    fn merge() -> Event {
        Event {
            at_us: 0,
            source: "agent-0".into(),
            submission: None,
            dot: None,
            seen: Default::default(),
            event: Kind::Merge { facts_new: 1 },
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (emitter, queue) = Emitter::bounded(3);
        for _ in 0..10 {
            emitter.emit(merge());
        }
        assert_eq!((emitter.emitted(), emitter.dropped(), emitter.queued()), (3, 7, 3));
        emitter.emit_all(vec![merge(), merge()]);
        assert_eq!(emitter.dropped(), 9, "a batch that does not fit goes whole");
        let first = queue.try_recv().unwrap();
        assert!(first[0].at_us > 1_700_000_000_000_000, "stamped: {}", first[0].at_us);
        assert_eq!(emitter.queued(), 2);
        emitter.emit_all(vec![merge()]);
        assert_eq!(emitter.queued(), 3, "room again once the reader took some");
        drop(queue);
        emitter.emit(merge());
        assert_eq!(emitter.dropped(), 10, "a gone reader drops too");
    }
}
