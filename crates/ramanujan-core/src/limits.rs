//! Saturation limits as clients send them, checked against hard ceilings.

use crate::saturate::Limits;
use serde::Deserialize;
use std::time::Duration;

/// Ceiling on the e-node limit a request may ask for.
pub const MAX_NODES: usize = 500_000;
/// Ceiling on iterations per colour.
pub const MAX_ITERATIONS: usize = 10_000;
/// Ceiling on the time limit, in milliseconds.
pub const MAX_TIME_MS: u64 = 60_000;

/// A limit a request asked for outside its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limits.{name} must be between {lo} and {hi}, got {got}")]
pub struct LimitOutOfRange {
    /// Which limit.
    pub name: &'static str,
    /// The least allowed.
    pub lo: u64,
    /// The most allowed.
    pub hi: u64,
    /// What was asked.
    pub got: u64,
}

/// `{"nodes": n, "iterations": n, "time_ms": n}`, each optional.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
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
    /// The limits to use, or the one out of range. `ceiling` is the most time
    /// this host lets a request ask for (at most [`MAX_TIME_MS`]): a host that
    /// cuts requests off after some time bounds their work by it too, and
    /// the default time is kept under it.
    pub fn resolve(self, default_time: Duration, ceiling: Duration) -> Result<Limits, LimitOutOfRange> {
        fn check(name: &'static str, v: Option<u64>, lo: u64, hi: u64) -> Result<Option<u64>, LimitOutOfRange> {
            match v {
                Some(got) if got < lo || got > hi => Err(LimitOutOfRange { name, lo, hi, got }),
                _ => Ok(v),
            }
        }
        let defaults = Limits::default();
        let nodes = check("nodes", self.nodes.map(|n| n as u64), 1, MAX_NODES as u64)?;
        let iterations = check(
            "iterations",
            self.iterations.map(|n| n as u64),
            1,
            MAX_ITERATIONS as u64,
        )?;
        let ceiling_ms = (ceiling.as_millis() as u64).clamp(1, MAX_TIME_MS);
        let time = check("time_ms", self.time_ms, 1, ceiling_ms)?;
        Ok(Limits {
            nodes: nodes.map_or(defaults.nodes, |n| n as usize),
            iterations: iterations.map_or(defaults.iterations, |n| n as usize),
            time: time.map_or(
                default_time.min(Duration::from_millis(ceiling_ms)),
                Duration::from_millis,
            ),
        })
    }
}
