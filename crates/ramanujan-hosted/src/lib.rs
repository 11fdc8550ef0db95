//! # ramanujan-hosted
//!
//! The Spin driver: agents that live in a key-value store between requests.
//!
//! - [`hosted`]: load an agent, hand it a request's work, save it, publish what
//!   it sent; and the `/agents` routes' [`Network`](ramanujan_agent::Network)
//!   over the agents hosted here.
//! - [`webhook`]: `/nats/webhook/{topic}`, how the NATS bridge reaches hosted agents.

pub mod hosted;
mod hosted_network;
pub mod webhook;
