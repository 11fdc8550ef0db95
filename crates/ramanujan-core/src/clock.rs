//! Vector clocks and dots: which agent's events a replica has seen.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One event of one agent: the agent's id and its counter at that event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dot(pub String, pub u64);

/// For each agent, how many of its events have been seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VectorClock(pub BTreeMap<String, u64>);

impl VectorClock {
    /// The counter of `agent` (0 if never seen).
    pub fn get(&self, agent: &str) -> u64 {
        self.0.get(agent).copied().unwrap_or(0)
    }

    /// Whether the event `dot` has been seen.
    pub fn covers(&self, dot: &Dot) -> bool {
        dot.1 <= self.get(&dot.0)
    }

    /// Starts a new event of `agent` and answers its dot.
    pub fn tick(&mut self, agent: &str) -> Dot {
        let n = self.0.entry(agent.to_string()).or_insert(0);
        *n += 1;
        Dot(agent.to_string(), *n)
    }

    /// Pointwise maximum: afterwards this clock has seen all that `other` has.
    pub fn merge(&mut self, other: &VectorClock) {
        for (agent, &n) in &other.0 {
            let mine = self.0.entry(agent.clone()).or_insert(0);
            *mine = (*mine).max(n);
        }
    }

    /// Whether this clock has seen everything `other` has.
    pub fn dominates(&self, other: &VectorClock) -> bool {
        other.0.iter().all(|(agent, &n)| self.get(agent) >= n)
    }
}
