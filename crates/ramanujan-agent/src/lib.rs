//! # ramanujan-agent
//!
//! One agent of the network as a state machine with no I/O, and what every
//! driver (the in-process threads, NATS, Spin) and the `/agents` routes share:
//!
//! - [`agent`]: one agent: it floods events, runs anti-entropy, rewrites with
//!   its colour's rules, and (GREEN) verifies.
//! - [`protocol`]: the messages agents exchange, the same on every transport.
//! - [`topology`]: the Sierpiński graph S(2,3) (nine agents, the default) and
//!   random regular expanders measured against the Ramanujan bound, coloured by
//!   duck-colors so that neighbours run different rule streams.
//! - [`defaults`]: configuration defaults every host (native, Spin) takes.
//! - [`events`]: the interaction events an agent records for the timeline.
//! - [`network`]: what the `/agents` routes need from a running network, and
//!   its domain errors.
//! - [`store`]: durable storage of a replica, as a trait.
//! - [`release`]: save before send, for the drivers that keep agents alive.

pub mod agent;
pub mod defaults;
pub mod events;
pub mod network;
pub mod protocol;
pub mod release;
pub mod store;
pub mod topology;

pub use network::Network;
