//! # ramanujan-events
//!
//! What happens in a Ramanujan network, as typed events, and how they leave
//! the code that makes them without slowing it:
//!
//! - [`event`]: one interaction ([`Event`]): when, where, its causal position,
//!   and what happened ([`Kind`]).
//! - [`emit`]: [`Emitter`], a bounded queue that never blocks the emitting
//!   agent or component: what does not fit is counted as dropped.
//!
//! The interaction-timeline component stores them in DuckDB and answers
//! queries over them. This crate has no I/O and builds for `wasm32-wasip2`.

pub mod emit;
pub mod event;

pub use emit::{Emitter, EventQueue};
pub use event::{Event, EventDot, Kind};
