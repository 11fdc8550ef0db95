//! Carrying envelopes between agents.

use duck_colors::SplitMix64;
use ramanujan_agent::protocol::Envelope;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};

/// What an in-process agent's mailbox carries.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // mail is an envelope; a box would allocate for each
pub enum Mail {
    /// A message from another agent (or the host, on its behalf).
    Envelope(Envelope),
    /// No message: the host gave the agent work (a submission, a status read
    /// that queued a step), so it should not sleep until its next tick.
    Wake,
}

/// Bounded in-process mailboxes, one per agent: moves envelopes to the agent
/// they are addressed to. Delivery may fail or drop; anti-entropy repairs
/// what is lost.
pub struct InProcessTransport {
    mailboxes: HashMap<String, SyncSender<Mail>>,
    /// Drop each message with this probability (deterministic stream): fault tests.
    loss: Option<(f64, Mutex<SplitMix64>)>,
    dropped: AtomicU64,
}

impl InProcessTransport {
    /// A transport to these mailboxes, losing a fraction `loss` of messages
    /// (drawn from a SplitMix64 stream seeded with `seed`).
    pub fn new(mailboxes: HashMap<String, SyncSender<Mail>>, loss: f64, seed: u64) -> Self {
        InProcessTransport {
            mailboxes,
            loss: (loss > 0.0).then(|| (loss, Mutex::new(SplitMix64::new(seed)))),
            dropped: AtomicU64::new(0),
        }
    }

    /// Wakes the agent `to` if it waits for mail; nothing if its mailbox is
    /// full (it has mail to wake it then) or unknown.
    pub fn wake(&self, to: &str) {
        if let Some(mailbox) = self.mailboxes.get(to) {
            let _ = mailbox.try_send(Mail::Wake);
        }
    }

    /// Sends one envelope; `false` when it was dropped.
    pub fn send(&self, envelope: Envelope) -> bool {
        if let Some((p, stream)) = &self.loss {
            let draw = stream.lock().unwrap_or_else(|e| e.into_inner()).next_f64();
            if draw < *p {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
        }
        let delivered = match self.mailboxes.get(&envelope.to) {
            Some(mailbox) => match mailbox.try_send(Mail::Envelope(envelope)) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            },
            None => false,
        };
        if !delivered {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        delivered
    }

    /// Sends envelopes in order (each may be dropped, as by [`Self::send`]).
    pub fn send_all(&self, out: Vec<Envelope>) {
        for envelope in out {
            self.send(envelope);
        }
    }

    /// Envelopes dropped so far (full mailbox, injected loss, unknown recipient).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
