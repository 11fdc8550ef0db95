//! # transduction-2tdx
//!
//! Pattern → rule → code, and rule books synced between sites.
//!
//! - [`mine`]: rules mined from the terms of a grammar up to a size (as Ruler
//!   does: terms that agree at random points are candidates, kept when sound
//!   and not derivable from the rules known so far); [`generalise`]: rules
//!   from equalities (given, or derived by the network's agents) by
//!   anti-unifying their sides.
//! - [`rule`]: a rule in normal form, its content key, its colour by direction
//!   and its provenance; [`enumerate`]: the terms of a grammar with their
//!   values at random points.
//! - [`codegen`]: a rule book as a Rust module that builds it as egg rewrites,
//!   and such a module read back into rules.
//! - [`book`]: a rule book as a CRDT (an observed-remove set of rule keys,
//!   content-addressed bodies, enabled and colour registers), a state from
//!   elsewhere checked whole before it merges; [`brief`]: syncing it in
//!   brief (what changed since, and a hash per rule); [`store`]: where a
//!   process keeps it; [`kv_book`]: where short-lived instances sharing a
//!   key-value store (Spin's) keep it without losing a write.
//! - [`agents`]: the rules a network's agents run from a book.
//! - [`service`], [`routes`]: the component. Routes: `GET /2tdx/health`,
//!   `GET|POST /2tdx/rules`, `PATCH|DELETE /2tdx/rules/{key}`,
//!   `POST /2tdx/mine`, `POST /2tdx/codegen`, `POST /2tdx/parse`,
//!   `POST /2tdx/sync`, `POST /2tdx/sync/brief`, `POST /2tdx/sync/peer`, and
//!   the same under `/sync`, with `GET /sync/health`.

pub mod agents;
pub mod book;
pub mod brief;
pub mod codegen;
pub mod enumerate;
pub mod generalise;
pub mod kv_book;
pub mod mine;
pub mod routes;
pub mod rule;
pub mod service;
pub mod store;

pub use routes::{ReplicaSource, openapi, router};
pub use service::{AgentsStatus, Peer, TdxConfig, TdxService};
