//! The `POST /egraph/saturate` request and its validation.

use ramanujan_core::ReplicaState;
use ramanujan_core::limits::LimitsRequest;
use ramanujan_core::parse::parse_expr;
use ramanujan_core::rules::{RuleBook, RuleSpec};
use ramanujan_core::saturate::{Saturation, Scheduler};
use ramanujan_http::ApiError;
use serde::Deserialize;
use std::time::Duration;

/// `{"expression": "...", "rules": [...], "limits": {...}, ...}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaturateRequest {
    /// The expression, as an s-expression.
    #[schema(example = "(* (+ a b) (+ a b))")]
    pub expression: String,
    /// Extra rules, each with a colour.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// Include the built-in RED, BLUE and GREEN rules (default true).
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub default_rules: bool,
    /// Fold constant subexpressions (default true).
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub fold_constants: bool,
    /// `backoff` (default) or `simple`.
    #[serde(default)]
    pub scheduler: Scheduler,
    /// `{"nodes", "iterations", "time_ms"}`.
    #[serde(default)]
    pub limits: LimitsRequest,
    /// A replicated e-graph (an `EGraph` CRDT state, e.g. merged by `/crdt/merge`)
    /// to start from: what it already knows about the expression counts.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub state: Option<ReplicaState>,
}

fn yes() -> bool {
    true
}

/// A checked request: the parsed expression, limits and memo key. Rules are
/// compiled only by [`Checked::into_saturation`], so a cache hit never pays for it.
pub struct Checked {
    request: SaturateRequest,
    expr: ramanujan_core::lang::Expr,
    limits: ramanujan_core::saturate::Limits,
    /// BLAKE3 of the parsed expression, the rules as given, the options and the resolved limits.
    pub key: [u8; 32],
}

impl SaturateRequest {
    /// Parses the expression, resolves the limits and computes the memo key.
    pub fn check(self, default_time: Duration, ceiling: Duration) -> Result<Checked, ApiError> {
        let expr = parse_expr(&self.expression).map_err(|e| ApiError::bad_request(format!("expression: {e}")))?;
        let limits = self
            .limits
            .resolve(default_time, ceiling)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        if let Some(state) = &self.state
            && state.term_count() > limits.nodes
        {
            return Err(ApiError::bad_request(format!(
                "state: {} terms exceed the node limit {}",
                state.term_count(),
                limits.nodes
            )));
        }
        let mut h = blake3::Hasher::new();
        let mut field = |bytes: &[u8]| {
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        // What the answer means: bump when the pipeline or the built-in rules change,
        // so answers memoised in a shared store by an older version are not served.
        field(b"pipeline: colour fixpoint v1");
        field(expr.to_string().as_bytes());
        for rule in &self.rules {
            let nonzero = rule.nonzero.join(",");
            let integer = rule.integer.join(",");
            let parts = [&rule.name, &rule.lhs, &rule.rhs, rule.color.name(), &nonzero, &integer];
            parts.iter().for_each(|p| field(p.as_bytes()));
            field(&[u8::from(rule.bidirectional)]);
        }
        field(&[
            u8::from(self.default_rules),
            u8::from(self.fold_constants),
            self.scheduler as u8,
        ]);
        field(&(limits.nodes as u64).to_le_bytes());
        field(&(limits.iterations as u64).to_le_bytes());
        field(&(limits.time.as_millis() as u64).to_le_bytes());
        // Only the facts matter to a saturation, not who recorded them when.
        field(self.state.as_ref().map_or(String::new(), |s| s.digest()).as_bytes());
        let key = *h.finalize().as_bytes();
        Ok(Checked {
            request: self,
            expr,
            limits,
            key,
        })
    }
}

impl Checked {
    /// Compiles the rules and answers the saturation to run.
    pub fn into_saturation(self) -> Result<Saturation, ApiError> {
        let r = self.request;
        let rules = RuleBook::new(r.default_rules, &r.rules).map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Saturation {
            expr: self.expr,
            rules,
            fold_constants: r.fold_constants,
            scheduler: r.scheduler,
            limits: self.limits,
            start: r.state,
        })
    }
}
