//! Subjects and payloads on the broker.
//!
//! | subject | kind | carries |
//! |---|---|---|
//! | `agent.{i}.sync` | JetStream (stream `RAMANUJAN`, durable consumer `agent-{i}`) | [`Inbound`]: envelopes for agent `i`, and submissions |
//! | `agent.{i}.ack` | core | [`SubmitAck`]: agent `i` saved a submission durably |
//! | `agent.{i}.state` | core request/reply | [`Query`] → JSON answer |
//! | `agent.{i}.heartbeat` | core | [`Beat`]: agent `i` is alive, and what it holds |
//! | `broadcast.heartbeat` | core | the host is alive; every agent beats at once |
//! | `network.status` | core request/reply | the host's `GET /agents/status` |

use agent_orchestrator::protocol::Envelope;
use async_nats::jetstream;
use ramanujan_core::Color;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The JetStream stream holding every agent's inbox.
pub const STREAM: &str = "RAMANUJAN";
/// The host pings on this; every agent answers with a heartbeat.
pub const BROADCAST_HEARTBEAT: &str = "broadcast.heartbeat";
/// The host answers its network status here.
pub const NETWORK_STATUS: &str = "network.status";
/// Largest message an agent publishes; the broker's `max_payload` must allow it.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

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
    rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
}

/// What arrives in an agent's inbox (MessagePack, see [`encode_inbound`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
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
    /// The canonical form of a term it holds: `{"canonical": "..."}` or null.
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

/// How long an agent's inbox message may stay unacknowledged before JetStream redelivers it.
pub const ACK_WAIT: Duration = Duration::from_secs(5);

/// Creates the inbox stream if it is missing (idempotent; every process calls it).
pub async fn ensure_stream(js: &jetstream::Context) -> Result<jetstream::stream::Stream, String> {
    js.get_or_create_stream(jetstream::stream::Config {
        name: STREAM.into(),
        subjects: vec!["agent.*.sync".into()],
        storage: jetstream::stream::StorageType::File,
        // Acknowledged messages leave the stream; a full stream refuses new ones
        // (the publisher sees it, anti-entropy repairs later) instead of dropping old ones.
        retention: jetstream::stream::RetentionPolicy::WorkQueue,
        discard: jetstream::stream::DiscardPolicy::New,
        max_bytes: 1 << 30,
        max_messages: 1_000_000,
        max_message_size: MAX_MESSAGE_BYTES as i32,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .map_err(|e| format!("creating the JetStream stream {STREAM}: {e}"))
}

/// Connects to the broker; keeps reconnecting for ever after a disconnect.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, String> {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(Duration::from_secs(3)))
        .max_reconnects(None)
        .reconnect_delay_callback(|attempt| Duration::from_millis((50 * attempt as u64).min(1_000)))
        .connect(url)
        .await
        .map_err(|e| format!("connecting to {url}: {e}"))
}
