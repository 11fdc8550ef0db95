//! # ramanujan-http
//!
//! What every component's `axum::Router` shares, on every host:
//! [`ApiError`] (`{"error": ...}` answers), [`JsonBody`] (strict JSON bodies),
//! [`MemoCache`] (answers kept, bounded in count and bytes), [`Offload`] (where CPU-heavy work runs) and [`Runtime`] (what a host hands a
//! component). No domain types: the components bring those.

pub mod access;
pub mod error;
pub mod json;
pub mod kv;
pub mod memo;
pub mod offload;
pub mod openapi;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::ApiError;
pub use json::{JsonBody, QueryParams, decode_json};
pub use memo::{CacheStats, MemoCache};
pub use offload::{Inline, Offload};
pub use openapi::{ErrorBody, JsonBodyErrors, QueryErrors};

use std::sync::Arc;
use std::time::Duration;

/// What a host gives every component.
#[derive(Clone)]
pub struct Runtime {
    /// Where saturations run.
    pub offload: Arc<dyn Offload>,
    /// Default saturation time limit (`SATURATION_TIMEOUT_MS`, 5000).
    pub saturation_timeout: Duration,
    /// Most time a request may ask a saturation for: natively the host's
    /// request timeout (`TIMEOUT_SECONDS`), so no work outlives the request
    /// it answers; elsewhere the core's ceiling (60 s).
    pub time_ceiling: Duration,
    /// This process's agent id, used in provenance (`AGENT_ID`).
    pub agent_id: String,
    /// A key-value store shared by every instance of the app (Spin's), for
    /// caches that should outlive one instance; `None` natively.
    pub shared: Option<Arc<dyn kv::KeyValue>>,
    /// Where the component's interactions go (the interaction timeline's
    /// queue, natively); `None`: they are not recorded.
    pub events: Option<ramanujan_events::Emitter>,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime {
            offload: Arc::new(Inline),
            saturation_timeout: Duration::from_millis(5_000),
            // The core's ceiling (`ramanujan_core::limits::MAX_TIME_MS`).
            time_ceiling: Duration::from_millis(60_000),
            agent_id: "local".into(),
            shared: None,
            events: None,
        }
    }
}
