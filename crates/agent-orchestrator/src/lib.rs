//! # agent-orchestrator
//!
//! The agent-orchestrator component: `/agents/...` and `/agent/{id}/...` over
//! any running network ([`Network`]): in process, over NATS, or hosted on Spin.
//! The agents themselves are `ramanujan-agent`'s.

pub mod routes;

pub use ramanujan_agent::Network;
pub use routes::{api_error, openapi, router};
