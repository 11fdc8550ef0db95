//! Carrying envelopes between agents.

use agent_orchestrator::protocol::Envelope;
use duck_colors::SplitMix64;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};

/// Moves envelopes to the agent they are addressed to. Delivery may fail or
/// drop; anti-entropy repairs what is lost.
pub trait Transport: Send + Sync + 'static {
    /// Sends one envelope; `false` when it was dropped.
    fn send(&self, envelope: Envelope) -> bool;
    /// Envelopes dropped so far (full mailbox, injected loss, unknown recipient).
    fn dropped(&self) -> u64;
}

/// Bounded in-process mailboxes, one per agent.
pub struct InProcessTransport {
    mailboxes: HashMap<String, SyncSender<Envelope>>,
    /// Drop each message with this probability (deterministic stream): fault tests.
    loss: Option<(f64, Mutex<SplitMix64>)>,
    dropped: AtomicU64,
}

impl InProcessTransport {
    /// A transport to these mailboxes, losing a fraction `loss` of messages
    /// (drawn from a SplitMix64 stream seeded with `seed`).
    pub fn new(mailboxes: HashMap<String, SyncSender<Envelope>>, loss: f64, seed: u64) -> Self {
        InProcessTransport {
            mailboxes,
            loss: (loss > 0.0).then(|| (loss, Mutex::new(SplitMix64::new(seed)))),
            dropped: AtomicU64::new(0),
        }
    }
}

impl Transport for InProcessTransport {
    fn send(&self, envelope: Envelope) -> bool {
        if let Some((p, stream)) = &self.loss {
            let draw = stream.lock().unwrap_or_else(|e| e.into_inner()).next_f64();
            if draw < *p {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
        }
        let delivered = match self.mailboxes.get(&envelope.to) {
            Some(mailbox) => match mailbox.try_send(envelope) {
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

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
