//! Subjects and payloads on the broker, the same for agents running natively
//! (`ramanujan agent`) and agents running as Spin components behind the bridge.
//!
//! | subject | kind | carries |
//! |---|---|---|
//! | `agent.{i}.sync` | JetStream (stream `RAMANUJAN`, durable consumer `agent-{i}`) | [`Inbound`]: envelopes for agent `i`, and submissions |
//! | `agent.{i}.ack` | core | [`SubmitAck`]: agent `i` saved a submission durably |
//! | `agent.{i}.state` | core request/reply | [`Query`] → JSON answer |
//! | `agent.{i}.heartbeat` | core | [`Beat`]: agent `i` is alive, and what it holds |
//! | `broadcast.heartbeat` | core | the host is alive; every agent beats at once |
//! | `network.status` | core request/reply | the host's `GET /agents/status` |
//! | `timeline.events` | JetStream (stream `RAMANUJAN_TIMELINE`, durable consumer of the host's timeline) | JSON array of interaction events |
//!
//! Broker payloads between agents are MessagePack with field names, so term keys
//! travel as 16 raw bytes; everything a person reads is JSON.

use ramanujan_agent::agent::Agent;
use ramanujan_agent::network::{AgentState, Lifecycle};
use ramanujan_agent::protocol::Envelope;
use ramanujan_core::Color;
use ramanujan_core::rules::RuleSpec;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The host pings on this; every agent answers with a heartbeat.
pub const BROADCAST_HEARTBEAT: &str = "broadcast.heartbeat";
/// The host answers its network status here.
pub const NETWORK_STATUS: &str = "network.status";
/// Largest message an agent publishes; the broker's `max_payload` must allow it.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
/// Most envelopes one broker message carries.
pub const MAX_ENVELOPES_PER_MESSAGE: usize = 1024;

/// Where agents publish their interaction events for the timeline.
pub const TIMELINE_SUBJECT: &str = "timeline.events";

/// Where the rules agents run are kept for them: the key in the broker's
/// key-value bucket `RAMANUJAN_RULES`, and in a Spin app's key-value store.
pub const AGENT_RULES_KEY: &str = "agents/rules";

/// The rules agents run, as the host publishes them (the enabled rules of
/// its rule book, each in its colour).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRuleSet {
    /// Whether they run the core's built-in rules too.
    pub builtin: bool,
    /// The rules beside them, each in its colour.
    pub rules: Vec<RuleSpec>,
    /// A digest of the rule book they were read from (of what it reads:
    /// `transduction_2tdx::book::BookState::digest`), where the book and this
    /// set are kept in one store (Spin): a set written out of order, or not
    /// at all, is seen as stale and written again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub book: Option<String>,
}

/// A batch of interaction events as published on [`TIMELINE_SUBJECT`] (JSON).
pub fn encode_events(events: &[ramanujan_events::Event]) -> Vec<u8> {
    serde_json::to_vec(events).unwrap_or_default()
}

/// A batch of interaction events from [`TIMELINE_SUBJECT`].
pub fn decode_events(bytes: &[u8]) -> Result<Vec<ramanujan_events::Event>, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// Agent `i`'s inbox.
pub fn sync_subject(index: usize) -> String {
    format!("agent.{index}.sync")
}

/// Where agent `i` acknowledges submissions.
pub fn ack_subject(index: usize) -> String {
    format!("agent.{index}.ack")
}

/// Where agent `i` answers queries.
pub fn state_subject(index: usize) -> String {
    format!("agent.{index}.state")
}

/// Where agent `i` beats.
pub fn heartbeat_subject(index: usize) -> String {
    format!("agent.{index}.heartbeat")
}

/// The topology position in an agent id `agent-{i}`.
pub fn index_of(id: &str) -> Option<usize> {
    id.strip_prefix("agent-")?.parse().ok()
}

/// Encodes an inbox message: MessagePack with field names (binary term keys,
/// and no serde buffering on the way back).
pub fn encode_inbound(inbound: &Inbound) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec_named(inbound).map_err(|e| e.to_string())
}

/// Decodes an inbox message.
pub fn decode_inbound(bytes: &[u8]) -> Result<Inbound, String> {
    let inbound: Inbound = rmp_serde::from_slice(bytes).map_err(|e| e.to_string())?;
    match &inbound {
        // No sender packs more: such a message is refused whole.
        Inbound::Envelopes(envelopes) if envelopes.len() > MAX_ENVELOPES_PER_MESSAGE => Err(format!(
            "{} envelopes in one message; at most {MAX_ENVELOPES_PER_MESSAGE}",
            envelopes.len()
        )),
        _ => Ok(inbound),
    }
}

/// What arrives in an agent's inbox (MessagePack, see [`encode_inbound`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
// Inbound values live one at a time on the way to an agent: boxing the common
// variant would add an allocation per message to save stack bytes.
#[allow(clippy::large_enum_variant)]
pub enum Inbound {
    /// A message from another agent.
    Envelope(Envelope),
    /// Several messages from one agent, in order: what it had for this agent
    /// after handling one batch (one broker message instead of many).
    Envelopes(Vec<Envelope>),
    /// An expression entering the network here; acknowledged on `agent.{i}.ack`
    /// once saved.
    Submit {
        /// The host's request id, echoed in the acknowledgement.
        request: String,
        /// The expression, in the surface syntax.
        expression: String,
    },
    /// Start anti-entropy with every neighbour now: `POST /agent/{id}/sync`
    /// for an agent kept in a store, which changes it only through its inbox.
    Sync,
}

/// An agent saved a submission (or refused it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitAck {
    /// The request id.
    pub request: String,
    /// The expression's root term key, once saved.
    pub root: Option<String>,
    /// Why it was refused.
    pub error: Option<String>,
    /// Refused for now, not for its content (the agent's replica is full): 503, not 400.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unavailable: bool,
}

/// A question to one agent on `agent.{i}.state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "want", rename_all = "snake_case", deny_unknown_fields)]
pub enum Query {
    /// Its `AgentState`.
    State,
    /// Its replica.
    Egraph,
    /// Its latest messages.
    Messages,
    /// Start anti-entropy with every neighbour now; answers `{"started": n}`.
    Sync,
    /// What it knows of a submitted term: a [`ramanujan_agent::network::HeldForm`].
    Canonical {
        /// The term key.
        root: String,
    },
}

/// An agent's heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Beat {
    /// Its id.
    pub agent_id: String,
    /// The process it runs in.
    pub node_id: String,
    /// Its colour.
    pub color: Color,
    /// Facts held.
    pub facts: usize,
    /// Digest of its facts.
    pub digest: String,
    /// No rewriting left to do.
    pub idle: bool,
    /// Names this life of the agent: changes when it restarts.
    pub incarnation: u64,
    /// Its neighbours.
    pub neighbors: Vec<String>,
}

impl Beat {
    /// The heartbeat of `agent`.
    pub fn of(agent: &Agent, node_id: &str, incarnation: u64) -> Beat {
        let replica = agent.replica();
        Beat {
            agent_id: agent.id().to_string(),
            node_id: node_id.to_string(),
            color: agent.color(),
            facts: replica.term_count() + replica.equality_count(),
            digest: replica.digest(),
            idle: !agent.is_dirty(),
            incarnation,
            neighbors: agent.neighbors().to_vec(),
        }
    }
}

/// Answers a [`Query`]: the JSON answer, and the envelopes to send (a `sync` query starts anti-entropy).
pub fn answer_query(agent: &mut Agent, query: Query, node_id: &str, uptime_seconds: f64) -> (Value, Vec<Envelope>) {
    match query {
        // The host fills in the lifecycle and restarts from heartbeats.
        Query::State => (
            json!(AgentState::of(agent, node_id, Lifecycle::Alive, uptime_seconds, 0)),
            Vec::new(),
        ),
        Query::Egraph => (json!(agent.replica()), Vec::new()),
        Query::Messages => (json!(agent.log().collect::<Vec<_>>()), Vec::new()),
        Query::Sync => {
            let out = agent.sync_with_neighbors();
            (json!({ "started": out.len() }), out)
        }
        Query::Canonical { root } => match root.parse() {
            Ok(key) => (json!(agent.held_form(key)), Vec::new()),
            Err(e) => (json!({ "error": e }), Vec::new()),
        },
    }
}

/// One broker message ready to publish: envelopes for one recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The recipient's inbox.
    pub subject: String,
    /// `Nats-Msg-Id`: `{from}:{first seq}-{last seq}`, so a retried publish is stored once.
    pub msg_id: String,
    /// The encoded [`Inbound`].
    pub payload: Vec<u8>,
    /// Envelopes it carries.
    pub envelopes: usize,
}

/// Turns envelopes into broker messages: those for the same recipient go
/// together, in order, in messages of bounded count and (estimated) size. An
/// envelope too large for the broker is left out (anti-entropy carries its
/// facts later, in smaller pieces); so is one for an id that is not `agent-{i}`.
pub fn outbox(out: Vec<Envelope>) -> Vec<Outgoing> {
    let mut by_recipient: BTreeMap<usize, Vec<Envelope>> = BTreeMap::new();
    for envelope in out {
        if let Some(to) = index_of(&envelope.to) {
            by_recipient.entry(to).or_default().push(envelope);
        }
    }
    let mut messages = Vec::new();
    for (to, envelopes) in by_recipient {
        for group in pack(envelopes) {
            let (Some(first), Some(last)) = (group.first(), group.last()) else {
                continue;
            };
            let msg_id = format!("{}:{}-{}", first.from, first.seq, last.seq);
            let count = group.len();
            let inbound = if count == 1 {
                Inbound::Envelope(group.into_iter().next().expect("one"))
            } else {
                Inbound::Envelopes(group)
            };
            let Ok(payload) = encode_inbound(&inbound) else {
                continue;
            };
            if payload.len() > MAX_MESSAGE_BYTES {
                tracing::warn!(bytes = payload.len(), "message too large for the broker; dropped");
                continue;
            }
            messages.push(Outgoing {
                subject: sync_subject(to),
                msg_id,
                payload,
                envelopes: count,
            });
        }
    }
    messages
}

/// Splits envelopes into groups of bounded count and (estimated) size; an
/// envelope too big to share a message travels alone.
fn pack(envelopes: Vec<Envelope>) -> Vec<Vec<Envelope>> {
    const BUDGET: usize = MAX_MESSAGE_BYTES / 2;
    let mut groups: Vec<Vec<Envelope>> = Vec::new();
    let mut size = 0;
    for envelope in envelopes {
        // About 120 bytes of JSON per fact, plus the envelope itself.
        let estimate = 200 + 120 * envelope.body.facts();
        let full = groups
            .last()
            .is_none_or(|g| g.len() >= MAX_ENVELOPES_PER_MESSAGE || size + estimate > BUDGET);
        if full {
            groups.push(Vec::new());
            size = 0;
        }
        size += estimate;
        groups.last_mut().expect("a group").push(envelope);
    }
    groups
}
