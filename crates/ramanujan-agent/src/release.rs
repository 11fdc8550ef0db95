//! Save before send, for every driver that keeps an agent alive between
//! messages (the thread driver and the NATS driver; the Spin driver saves its
//! whole snapshot before it publishes, and keeps nothing between requests).
//!
//! What an agent produces (a step's events, a sync tick's refutations, the
//! flood of a submission) carries facts it has just recorded. They go out only
//! once the agent's journal is durable, or a crash right after sending would
//! leave peers holding facts its store never had, under dots its next life
//! would reuse. While the store fails, messages are held back, in order, and go
//! out after the next save that succeeds.

use crate::protocol::Envelope;

/// At most this many messages wait for a failing store; older ones are
/// dropped (anti-entropy repairs what neighbours miss).
pub const MAX_HELD_BACK: usize = 10_000;

/// Messages waiting for a save (see the module's documentation).
#[derive(Debug, Default)]
pub struct Release {
    held_back: Vec<Envelope>,
}

impl Release {
    /// Queues `out` behind what is held back and calls `save` (the driver's
    /// write of the agent's journal, true when it is durable). When it
    /// succeeded, answers everything to send, in order; when it failed,
    /// answers `None` and keeps the messages (the newest [`MAX_HELD_BACK`]).
    pub fn after_save(&mut self, out: Vec<Envelope>, save: impl FnOnce() -> bool) -> Option<Vec<Envelope>> {
        self.held_back.extend(out);
        if !save() {
            let excess = self.held_back.len().saturating_sub(MAX_HELD_BACK);
            self.held_back.drain(..excess);
            return None;
        }
        Some(std::mem::take(&mut self.held_back))
    }

    /// Messages waiting for a save that succeeds.
    pub fn held_back(&self) -> usize {
        self.held_back.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Body;

    fn envelope(seq: u64) -> Envelope {
        Envelope {
            from: "agent-0".into(),
            to: "agent-1".into(),
            seq,
            body: Body::SyncRequest {
                clock: Default::default(),
                digest: String::new(),
            },
        }
    }

    fn seqs(out: &[Envelope]) -> Vec<u64> {
        out.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn nothing_goes_out_while_the_store_fails_and_everything_in_order_once_it_saves() {
        let mut release = Release::default();
        assert_eq!(release.after_save(vec![envelope(1), envelope(2)], || false), None);
        assert_eq!(release.after_save(vec![envelope(3)], || false), None);
        assert_eq!(release.held_back(), 3);
        let out = release.after_save(vec![envelope(4)], || true).unwrap();
        assert_eq!(seqs(&out), [1, 2, 3, 4]);
        assert_eq!(release.held_back(), 0);
        assert_eq!(seqs(&release.after_save(vec![envelope(5)], || true).unwrap()), [5]);
    }

    #[test]
    fn a_store_that_keeps_failing_holds_back_only_the_newest_messages() {
        let mut release = Release::default();
        let many: Vec<Envelope> = (0..MAX_HELD_BACK as u64 + 5).map(envelope).collect();
        assert_eq!(release.after_save(many, || false), None);
        assert_eq!(release.held_back(), MAX_HELD_BACK);
        let out = release.after_save(Vec::new(), || true).unwrap();
        assert_eq!(out.first().map(|e| e.seq), Some(5));
        assert_eq!(out.len(), MAX_HELD_BACK);
    }
}
