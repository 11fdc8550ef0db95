//! The agent network over a NATS JetStream broker.
//!
//! - [`broker`]: the JetStream stream, connecting, an agent's inbox consumer
//!   (subjects and payloads are `ramanujan_wire::wire`).
//! - [`agent`]: one agent per process (`ramanujan agent --id N --nats URL`).
//! - [`local_broker`]: a `nats-server` on a loopback port, for tests and benchmarks.
//! - [`remote`]: the host's view of agents on the broker (`ramanujan up --nats URL`).
//! - [`timeline_feed`]: the agents' interaction events from the broker to the host's timeline.

pub mod agent;
pub mod broker;
pub mod local_broker;
pub mod remote;
pub mod timeline_feed;

pub use agent::{AgentConfig, run_nats_agent};
pub use local_broker::{LocalBroker, cluster_url};
pub use remote::{NatsNetwork, RemoteConfig};
pub use timeline_feed::{FeedSink, feed_timeline};
