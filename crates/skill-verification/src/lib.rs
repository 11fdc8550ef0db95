//! # skill-verification
//!
//! Seventeen verifiers reach a consensus on which skill (label) an image's
//! embedding shows, against labelled reference examples:
//!
//! - [`references`]: the examples, an observed-remove set keyed by content
//!   hash, which hosts exchange and merge (`GET /skills/state`, `POST /skills/merge`);
//! - [`images`]: PNG or JPEG to an embedding through an ONNX model
//!   (ResNet50's preprocessing, tract);
//! - [`panel`]: the verifiers, each a k-nearest-neighbour judge in its own
//!   seeded random projection and on its own sample of the references;
//! - [`consensus`]: the quorum rule (`n − ⌊(n − 1) / 3⌋` of `n`, 12 of 17)
//!   and the decision;
//! - [`service`]: the state, the verifiers run as parallel jobs within a
//!   deadline, counters and timeline events;
//! - [`store`]: where a host keeps its references across restarts (a redb
//!   file natively), written before a change is answered;
//! - [`sync`]: anti-entropy between hosts (pull a peer's membership, fetch
//!   only the examples missing, merge);
//! - [`routes`]: `/skills/...` and `/verify/...`.

pub mod consensus;
pub mod embedding;
pub mod images;
pub mod panel;
pub mod references;
pub mod routes;
pub mod service;
pub mod store;
pub mod sync;

pub use panel::PanelConfig;
pub use routes::{openapi, router};
pub use service::{Fault, SkillConfig, SkillService};
