//! What agents say to each other, on every transport.
//!
//! Facts travel in two ways. An **event** (the facts of one recording, whose clock
//! is that single event) is flooded: each agent merges it and forwards it to its
//! other neighbours if it was news. **Anti-entropy** repairs whatever was lost: an
//! agent sends a neighbour its clock and digest, the neighbour answers with
//! `delta_since` that clock plus its own clock, and the first agent pushes back what
//! the neighbour lacks. Merges are idempotent, so duplicates are harmless.

use ramanujan_core::clock::CausalContext;
use ramanujan_core::replica::ReplicaState;
use ramanujan_core::term::TermKey;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A message between two agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Sender's agent id.
    pub from: String,
    /// Recipient's agent id.
    pub to: String,
    /// Sender's message counter: (from, seq) names the message, so replays are spotted.
    pub seq: u64,
    /// What it says.
    pub body: Body,
}

/// The kinds of message, as `{"type": "event", "data": {...}}`: the tag comes
/// apart from the fields, so decoders read the fields straight away instead of
/// buffering the whole body to find the tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case", deny_unknown_fields)]
pub enum Body {
    /// The facts of one event (its clock is that event alone): safe to merge anywhere.
    Event {
        /// The facts (shared by the copies flooded to each neighbour).
        delta: Arc<ReplicaState>,
        /// The submissions these facts are about (the one submitted, or the one
        /// whose rewriting derived them): receivers that rewrite them look again.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        about: Vec<TermKey>,
    },
    /// Anti-entropy, first step: the sender's clock and digest.
    SyncRequest {
        /// What the sender has seen.
        clock: CausalContext,
        /// Digest of the sender's facts.
        digest: String,
    },
    /// Anti-entropy, second step: what the requester lacks, and the responder's clock.
    SyncReply {
        /// `delta_since` the request's clock (empty when the digests agreed).
        delta: ReplicaState,
        /// The responder's clock, so the requester can push back what it lacks.
        clock: CausalContext,
        /// The digests agreed: nothing to do.
        in_sync: bool,
    },
    /// Anti-entropy, third step: what the responder lacked.
    SyncPush {
        /// `delta_since` the reply's clock.
        delta: ReplicaState,
    },
}

impl Body {
    /// The message kind, as on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Event { .. } => "event",
            Body::SyncRequest { .. } => "sync_request",
            Body::SyncReply { .. } => "sync_reply",
            Body::SyncPush { .. } => "sync_push",
        }
    }

    /// Facts carried.
    pub fn facts(&self) -> usize {
        let delta: &ReplicaState = match self {
            Body::Event { delta, .. } => delta,
            Body::SyncReply { delta, .. } | Body::SyncPush { delta } => delta,
            Body::SyncRequest { .. } => return 0,
        };
        delta.term_count() + delta.equality_count()
    }
}
