//! One colour's rules applied to an expression or to a replica, answered as a
//! delta that any replica can merge.

use crate::color::Color;
use crate::extract::CanonicalExtractor;
use crate::lang::Expr;
use crate::materialize::{Materialized, export, expr_terms};
use crate::replica::{Facts, ReplicaError, ReplicaState};
use crate::rules::RuleBook;
use crate::saturate::{Limits, PhaseReport, Scheduler, run_phase};
use crate::term::TermKey;
use serde::Serialize;
use std::time::Instant;

/// What a stream is asked to rewrite.
#[derive(Debug, Clone)]
pub enum StreamInput {
    /// A fresh expression.
    Expression(Expr),
    /// A whole replica state.
    State(ReplicaState),
}

/// What a stream answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StreamOutcome {
    /// New facts (terms and equalities with provenance), with the resulting clock.
    #[schema(value_type = Object)]
    pub delta: ReplicaState,
    /// The input expression's term (its key, hex), when an expression was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub root: Option<TermKey>,
    /// The input expression's canonical form after rewriting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canonical: Option<String>,
    /// How the rewriting went.
    pub phase: PhaseReport,
    /// Digest of the replica after merging the delta.
    pub digest: String,
}

/// Applies `color`'s rules from `rules` as `agent` to `input`; `limits.nodes` is
/// how many e-nodes rewriting may add to the input's e-graph.
pub fn apply_stream(
    color: Color,
    agent: &str,
    input: StreamInput,
    rules: &RuleBook,
    scheduler: Scheduler,
    limits: Limits,
) -> Result<StreamOutcome, ReplicaError> {
    let deadline = Instant::now() + limits.time;
    // `delta` holds what was recorded before rewriting: the expression's own terms.
    let (mut state, input_delta, root) = match input {
        StreamInput::Expression(expr) => {
            let mut facts = Facts::default();
            let root = expr_terms(&expr, &mut facts);
            let mut state = ReplicaState::new();
            let delta = state.record(agent, facts)?;
            (state, Some(delta), Some(root))
        }
        StreamInput::State(state) => (state, None, None),
    };
    let known = Materialized::new(&state);
    // `limits.nodes` bounds what rewriting adds, whatever the replica already holds.
    let limits = Limits {
        nodes: known.egraph.total_size().saturating_add(limits.nodes),
        ..limits
    };
    let (egraph, phase) = run_phase(known.egraph.clone(), rules, color, scheduler, limits, deadline);
    let facts = export(&egraph, agent, color, &known);
    let rewritten = state.record(agent, facts)?;
    let delta = match input_delta {
        Some(mut delta) => {
            delta.merge(&rewritten);
            delta
        }
        None => rewritten,
    };
    let canonical = root.and_then(|key| {
        let class = known.ids.get(&key)?;
        CanonicalExtractor::new(&egraph)
            .expr(&egraph, *class)
            .map(|e| e.to_string())
    });
    Ok(StreamOutcome {
        digest: state.digest(),
        delta,
        root,
        canonical,
        phase,
    })
}
