//! Causal contexts: exactly which events of which agents a replica has seen.
//!
//! A plain vector clock says "every event of `a` up to `n`", which is only true
//! of a replica that received them all. Deltas arrive out of order and can be
//! lost, so the clock here is a dotted causal context (as in delta-state CRDTs,
//! Almeida et al. 2018): a contiguous prefix per agent plus the set of events seen
//! beyond it. Merging two contexts is set union, so it is exact for full states and
//! single events alike, and `covers` never claims an event whose facts were not
//! received.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One event of one agent: the agent's id and its counter at that event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dot(pub Arc<str>, pub u64);

/// Which events have been seen: every event of each agent up to its counter,
/// plus the events in `cloud` beyond it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CausalContext {
    /// For each agent, how many of its first events have all been seen.
    #[serde(default)]
    counters: BTreeMap<String, u64>,
    /// Events seen beyond the contiguous prefix: `[agent, counter]` pairs.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    #[schema(value_type = Vec<(String, u64)>)]
    cloud: BTreeSet<Dot>,
}

impl CausalContext {
    /// A context holding one event.
    pub fn of_event(dot: Dot) -> Self {
        let mut clock = CausalContext::default();
        clock.cloud.insert(dot);
        clock.compact();
        clock
    }

    /// The contiguous counter of `agent` (0 if none of its events has been seen).
    pub fn get(&self, agent: &str) -> u64 {
        self.counters.get(agent).copied().unwrap_or(0)
    }

    /// The contiguous counters, by agent.
    pub fn counters(&self) -> &BTreeMap<String, u64> {
        &self.counters
    }

    /// Events seen beyond the contiguous counters.
    pub fn cloud(&self) -> &BTreeSet<Dot> {
        &self.cloud
    }

    /// Whether the event `dot` has been seen.
    pub fn covers(&self, dot: &Dot) -> bool {
        dot.1 <= self.get(&dot.0) || self.cloud.contains(dot)
    }

    /// Starts a new event of `agent`, after every event of it seen so far.
    pub fn tick(&mut self, agent: &str) -> Dot {
        let beyond = self.cloud.iter().filter(|d| &*d.0 == agent).map(|d| d.1).max();
        let n = beyond.unwrap_or(0).max(self.get(agent)) + 1;
        let dot = Dot(agent.into(), n);
        self.cloud.insert(dot.clone());
        self.compact();
        dot
    }

    /// Union: afterwards this context has seen all that `other` has.
    pub fn merge(&mut self, other: &CausalContext) {
        for (agent, &n) in &other.counters {
            let mine = self.counters.entry(agent.clone()).or_insert(0);
            *mine = (*mine).max(n);
        }
        self.cloud.extend(other.cloud.iter().cloned());
        self.compact();
    }

    /// Whether this context has seen everything `other` has.
    pub fn dominates(&self, other: &CausalContext) -> bool {
        other.counters.iter().all(|(agent, &n)| self.get(agent) >= n) && other.cloud.iter().all(|d| self.covers(d))
    }

    /// Folds cloud events that extend a counter into it, and drops covered ones.
    fn compact(&mut self) {
        let cloud = std::mem::take(&mut self.cloud);
        // The cloud is ordered by agent, then counter, so each run extends in order.
        for dot in cloud {
            let counter = self.counters.entry(dot.0.to_string()).or_insert(0);
            if dot.1 == *counter + 1 {
                *counter = dot.1;
            } else if dot.1 > *counter {
                self.cloud.insert(dot);
            }
        }
        self.counters.retain(|_, n| *n > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: &str, n: u64) -> Dot {
        Dot(a.into(), n)
    }

    #[test]
    fn out_of_order_events_are_exact() {
        let mut c = CausalContext::of_event(dot("a", 3));
        assert!(c.covers(&dot("a", 3)) && !c.covers(&dot("a", 1)) && !c.covers(&dot("a", 2)));
        c.merge(&CausalContext::of_event(dot("a", 1)));
        assert_eq!((c.get("a"), c.cloud().len()), (1, 1));
        c.merge(&CausalContext::of_event(dot("a", 2)));
        assert_eq!((c.get("a"), c.cloud().len()), (3, 0));
    }

    #[test]
    fn tick_goes_past_every_seen_event() {
        let mut c = CausalContext::of_event(dot("a", 5));
        assert_eq!(c.tick("a"), dot("a", 6));
        assert!(!c.covers(&dot("a", 4)));
    }

    #[test]
    fn merge_is_union() {
        let mut x = CausalContext::of_event(dot("a", 2));
        x.merge(&CausalContext::of_event(dot("b", 1)));
        let y = CausalContext::of_event(dot("a", 1));
        let (mut xy, mut yx) = (x.clone(), y.clone());
        xy.merge(&y);
        yx.merge(&x);
        assert_eq!(xy, yx);
        assert!(xy.dominates(&x) && xy.dominates(&y) && !x.dominates(&xy));
        assert_eq!(xy.get("a"), 2);
    }
}
