//! The `POST /egraph/saturate` request and its validation.

use ramanujan_core::parse::parse_expr;
use ramanujan_core::rules::{RuleBook, RuleSpec};
use ramanujan_core::saturate::{Saturation, Scheduler};
use ramanujan_http::ApiError;
use ramanujan_http::limits::LimitsRequest;
use serde::Deserialize;
use std::time::Duration;

/// `{"expression": "...", "rules": [...], "limits": {...}, ...}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaturateRequest {
    /// The expression, as an s-expression.
    pub expression: String,
    /// Extra rules, each with a colour.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// Include the built-in RED, BLUE and GREEN rules (default true).
    #[serde(default = "yes")]
    pub default_rules: bool,
    /// Fold constant subexpressions (default true).
    #[serde(default = "yes")]
    pub fold_constants: bool,
    /// `backoff` (default) or `simple`.
    #[serde(default)]
    pub scheduler: Scheduler,
    /// `{"nodes", "iterations", "time_ms"}`.
    #[serde(default)]
    pub limits: LimitsRequest,
}

fn yes() -> bool {
    true
}

impl SaturateRequest {
    /// Checks everything and answers the saturation to run and its memo key: a hash
    /// of the parsed expression, the rules, the options and the resolved limits.
    pub fn into_saturation(self, default_time: Duration) -> Result<(Saturation, [u8; 32]), ApiError> {
        let expr = parse_expr(&self.expression).map_err(|e| ApiError::bad_request(format!("expression: {e}")))?;
        let rules = RuleBook::new(self.default_rules, &self.rules).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let limits = self.limits.resolve(default_time)?;
        let mut h = blake3::Hasher::new();
        let identity = serde_json::json!({
            "expression": expr.to_string(),
            "rules": rules.specs,
            "fold": self.fold_constants,
            "scheduler": self.scheduler,
            "limits": [limits.nodes as u64, limits.iterations as u64, limits.time.as_millis() as u64],
        });
        h.update(identity.to_string().as_bytes());
        let key = *h.finalize().as_bytes();
        Ok((
            Saturation {
                expr,
                rules,
                fold_constants: self.fold_constants,
                scheduler: self.scheduler,
                limits,
            },
            key,
        ))
    }
}
