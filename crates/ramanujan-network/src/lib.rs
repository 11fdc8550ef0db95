//! # ramanujan-network
//!
//! Runs the agent network natively. Each agent of
//! [`ramanujan_agent::agent::Agent`] gets a thread and a bounded mailbox; a
//! [`Transport`] carries envelopes between mailboxes. [`InProcessNetwork`]
//! implements [`ramanujan_agent::Network`], so the `/agents` routes serve it.
//!
//! - [`transport`]: the transport trait and the in-process transport (with
//!   optional deterministic message loss, for fault tests).
//! - [`nats`]: the same agents over a NATS JetStream broker, one per process.
//! - [`redb_store`]: each agent's replica in a redb file, restored at restart.
//! - [`runtime`]: agent threads, sync and heartbeat timers, lifecycle.

pub mod nats;
pub mod redb_store;
pub mod runtime;
pub mod tools;
pub mod transport;

pub use redb_store::RedbStore;
pub use runtime::{InProcessNetwork, NetworkConfig, TopologyKind, agent_id};
pub use transport::{InProcessTransport, Mail};
