//! # agent-orchestrator
//!
//! The agent network, without its transports:
//!
//! - [`topology`]: the Sierpiński graph S(2,3) (nine agents, the default) and
//!   random regular expanders measured against the Ramanujan bound, coloured by
//!   duck-colors so that neighbours run different rule streams.
//! - [`agent`]: one agent as a state machine with no I/O — it floods events,
//!   runs anti-entropy, rewrites with its colour's rules, and (GREEN) verifies.
//! - [`protocol`]: the messages agents exchange, the same on every transport.
//! - [`defaults`]: configuration defaults every host (native, Spin) takes.
//! - [`network`]: what the `/agents` routes need from a running network.
//! - [`routes`]: `/agents/...` and `/agent/{id}/...`.
//! - [`store`]: durable storage of a replica, as a trait.
//! - [`release`]: save before send, for the drivers that keep agents alive.
//! - [`wire`]: subjects and payloads on the broker.
//! - [`inbox`]: what an agent does with an inbox message, for every driver.
//! - [`hosted`]: agents kept in a key-value store between requests (Spin), and
//!   the `/agents` routes' [`network::Network`] over them.
//! - [`webhook`]: `/nats/webhook/{topic}`, how the NATS bridge reaches hosted agents.
//! - [`signature`]: the HMAC that bridge and hosted agents sign with.
//!
//! Hosts (the in-process runtime, NATS) implement [`network::Network`].

pub mod agent;
pub mod defaults;
pub mod hosted;
mod hosted_network;
pub mod inbox;
pub mod network;
pub mod protocol;
pub mod release;
pub mod routes;
pub mod signature;
pub mod store;
pub mod topology;
pub mod webhook;
pub mod wire;

pub use network::Network;
pub use routes::router;
