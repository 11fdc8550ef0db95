//! Saturation limits as clients send them, checked against hard ceilings.

use crate::error::ApiError;
use ramanujan_core::saturate::Limits;
use serde::Deserialize;
use std::time::Duration;

/// Ceiling on the e-node limit a request may ask for.
pub const MAX_NODES: usize = 500_000;
/// Ceiling on iterations per colour.
pub const MAX_ITERATIONS: usize = 10_000;
/// Ceiling on the time limit, in milliseconds.
pub const MAX_TIME_MS: u64 = 60_000;

/// `{"nodes": n, "iterations": n, "time_ms": n}`, each optional.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsRequest {
    /// Most e-nodes (default 10,000).
    pub nodes: Option<usize>,
    /// Most iterations of each colour over all rounds (default 30).
    pub iterations: Option<usize>,
    /// Time budget in ms (default `SATURATION_TIMEOUT_MS`).
    pub time_ms: Option<u64>,
}

impl LimitsRequest {
    /// The limits to use, or a 400 naming the one out of range.
    pub fn resolve(self, default_time: Duration) -> Result<Limits, ApiError> {
        fn check<T: PartialOrd + std::fmt::Display + Copy>(
            name: &str,
            v: Option<T>,
            lo: T,
            hi: T,
        ) -> Result<Option<T>, ApiError> {
            match v {
                Some(x) if x < lo || x > hi => Err(ApiError::bad_request(format!(
                    "limits.{name} must be between {lo} and {hi}, got {x}"
                ))),
                _ => Ok(v),
            }
        }
        let defaults = Limits::default();
        Ok(Limits {
            nodes: check("nodes", self.nodes, 1, MAX_NODES)?.unwrap_or(defaults.nodes),
            iterations: check("iterations", self.iterations, 1, MAX_ITERATIONS)?.unwrap_or(defaults.iterations),
            time: check("time_ms", self.time_ms, 1, MAX_TIME_MS)?.map_or(default_time, Duration::from_millis),
        })
    }
}
