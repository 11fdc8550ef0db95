//! # interaction-timeline
//!
//! Every interaction of the network (see [`ramanujan_events`]) appended to
//! DuckDB, and `/timeline/...` over it:
//!
//! - [`store`]: the append-only `events` table, batches written with DuckDB's
//!   appender, and the queries, every value a bound parameter.
//! - [`writer`]: the thread that drains an [`Emitter`]'s queue into the store,
//!   in batches; a failed write makes the timeline degraded and counts the
//!   events lost, and never reaches back to the emitting agents.
//! - [`causal`]: `order=causal`, a topological order of happens-before as
//!   the events' dots and `seen` record it.
//! - [`routes`]: `GET /timeline/query`, `GET /timeline/submissions/{id}`,
//!   `GET /timeline/stats`, `POST /timeline/events`, `GET /timeline/health`.
//!
//! [`Timeline::open`] starts it over a file (or in memory) and hands out the
//! [`Emitter`] the agents and components emit through.
//!
//! [`Emitter`]: ramanujan_events::Emitter

pub mod causal;
pub mod routes;
pub mod store;
pub mod writer;

pub use routes::{openapi, router};
pub use store::{FileFormat, Filter, Store, StoreError};
pub use writer::{Retention, Timeline};
