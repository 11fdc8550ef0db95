//! # ramanujan-wire
//!
//! Agents on a broker, the same for agents running natively (`ramanujan
//! agent`) and agents running as Spin components behind the bridge:
//!
//! - [`wire`]: subjects and payloads on the broker, outbox packing, query answers.
//! - [`inbox`]: what an agent does with an inbox message, for every driver.
//! - [`signature`]: the HMAC that bridge and hosted agents sign with.

pub mod inbox;
pub mod signature;
pub mod wire;
