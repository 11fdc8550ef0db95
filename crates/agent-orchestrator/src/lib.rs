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
//! - [`network`]: what the `/agents` routes need from a running network.
//! - [`routes`]: `/agents/...` and `/agent/{id}/...`.
//! - [`store`]: durable storage of a replica, as a trait.
//!
//! Hosts (the in-process runtime, NATS) implement [`network::Network`].

pub mod agent;
pub mod network;
pub mod protocol;
pub mod routes;
pub mod store;
pub mod topology;

pub use network::Network;
pub use routes::router;
