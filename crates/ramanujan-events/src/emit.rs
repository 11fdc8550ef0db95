//! [`Emitter`]: events out of agents and components without blocking them.

use crate::event::Event;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

/// A bounded queue of events towards the timeline. [`Emitter::emit`] never
/// waits: an event that does not fit (the writer is behind, or gone) is
/// counted in [`Emitter::dropped`] and let go.
#[derive(Clone, Debug)]
pub struct Emitter {
    queue: SyncSender<Event>,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    emitted: AtomicU64,
    dropped: AtomicU64,
}

impl Emitter {
    /// An emitter and the receiving end of its queue, which holds at most
    /// `capacity` events.
    pub fn bounded(capacity: usize) -> (Emitter, Receiver<Event>) {
        let (queue, receiver) = sync_channel(capacity.max(1));
        let emitter = Emitter {
            queue,
            counts: Arc::default(),
        };
        (emitter, receiver)
    }

    /// Queues an event, stamping it with the time now if it has none.
    pub fn emit(&self, mut event: Event) {
        if event.at_us == 0 {
            event.at_us = now_us();
        }
        match self.queue.try_send(event) {
            Ok(()) => self.counts.emitted.fetch_add(1, Ordering::Relaxed),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed)
            }
        };
    }

    /// Queues each event (see [`Emitter::emit`]).
    pub fn emit_all(&self, events: impl IntoIterator<Item = Event>) {
        for event in events {
            self.emit(event);
        }
    }

    /// Counts `n` events lost before they reached this emitter (an agent's
    /// own buffer was full), so that [`Emitter::dropped`] tells of them too.
    pub fn count_dropped(&self, n: u64) {
        self.counts.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Events queued so far.
    pub fn emitted(&self) -> u64 {
        self.counts.emitted.load(Ordering::Relaxed)
    }

    /// Events let go so far: the queue was full or its reader gone.
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
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
        let (emitter, receiver) = Emitter::bounded(3);
        for _ in 0..10 {
            emitter.emit(merge());
        }
        assert_eq!((emitter.emitted(), emitter.dropped()), (3, 7));
        let first = receiver.recv().unwrap();
        assert!(first.at_us > 1_700_000_000_000_000, "stamped: {}", first.at_us);
        drop(receiver);
        emitter.emit(merge());
        assert_eq!(emitter.dropped(), 8, "a gone reader drops too");
    }
}
