//! Why rewriting stopped: one typed reason for a saturation, a phase, a
//! rewriting step and a submission's budget, written as the snake-case names
//! the HTTP answers have always used.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a runner hook answers to stop a runner because both sides met.
pub const PROVED: &str = "proved";

/// Why rewriting (a saturation, one phase or step, or a submission's whole
/// budget) stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// Nothing more applies: the rules' fixpoint.
    Saturated,
    /// The iterations allowed were used.
    IterationLimit,
    /// The e-graph reached its e-node limit.
    NodeLimit,
    /// The time allowed was used.
    TimeLimit,
    /// A submission's iterations over all its steps are spent.
    IterationBudget,
    /// A submission's e-nodes over all its steps are spent.
    NodeBudget,
    /// The replica holds as many terms as it may.
    MaxTerms,
    /// Both sides of an equality met (a derivation check stops there).
    Proved,
    /// Extraction ran (the last phase of a saturation).
    Done,
    /// No iteration ran.
    NotStopped,
}

impl Stop {
    /// The snake-case name, as answers write it.
    pub fn name(self) -> &'static str {
        match self {
            Stop::Saturated => "saturated",
            Stop::IterationLimit => "iteration_limit",
            Stop::NodeLimit => "node_limit",
            Stop::TimeLimit => "time_limit",
            Stop::IterationBudget => "iteration_budget",
            Stop::NodeBudget => "node_budget",
            Stop::MaxTerms => "max_terms",
            Stop::Proved => "proved",
            Stop::Done => "done",
            Stop::NotStopped => "not_stopped",
        }
    }

    /// A submission's budget (or the replica) is spent: it is never rewritten again.
    pub fn ends_for_good(self) -> bool {
        matches!(self, Stop::IterationBudget | Stop::NodeBudget | Stop::MaxTerms)
    }

    /// egg's reason, as this one (`None`: the runner has not stopped).
    pub fn of_egg(reason: Option<&egg::StopReason>) -> Stop {
        match reason {
            None => Stop::NotStopped,
            Some(egg::StopReason::Saturated) => Stop::Saturated,
            Some(egg::StopReason::IterationLimit(_)) => Stop::IterationLimit,
            Some(egg::StopReason::NodeLimit(_)) => Stop::NodeLimit,
            Some(egg::StopReason::TimeLimit(_)) => Stop::TimeLimit,
            // Only hooks stop a runner so: the derivation check's, when both
            // sides meet ([`PROVED`]).
            Some(egg::StopReason::Other(why)) if why == PROVED => Stop::Proved,
            Some(egg::StopReason::Other(_)) => Stop::NotStopped,
        }
    }
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_answers_have_always_written() {
        for stop in [
            Stop::Saturated,
            Stop::IterationLimit,
            Stop::NodeLimit,
            Stop::TimeLimit,
            Stop::IterationBudget,
            Stop::NodeBudget,
            Stop::MaxTerms,
            Stop::Proved,
            Stop::Done,
            Stop::NotStopped,
        ] {
            let json = serde_json::to_string(&stop).unwrap();
            assert_eq!(json, format!("\"{}\"", stop.name()));
            assert_eq!(serde_json::from_str::<Stop>(&json).unwrap(), stop);
        }
    }
}
