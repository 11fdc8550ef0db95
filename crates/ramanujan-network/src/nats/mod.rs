//! The agent network over a NATS JetStream broker.
//!
//! - [`wire`]: subjects and payloads.
//! - [`agent`]: one agent per process (`ramanujan agent --id N --nats URL`).
//! - [`remote`]: the host's view of agents on the broker (`ramanujan up --nats URL`).

pub mod agent;
pub mod remote;
pub mod wire;

pub use agent::{AgentConfig, run_agent};
pub use remote::{NatsNetwork, RemoteConfig};
