//! The interaction events an agent records for the timeline (see
//! `ramanujan-events`), when its driver asks it to
//! ([`Agent::record_events`](crate::agent::Agent::record_events)): each
//! submission it takes, message it sends or takes in, merge that brought
//! news, rewriting step and verification. The driver takes them
//! ([`Agent::take_events`](crate::agent::Agent::take_events)), stamps them
//! with its clock and emits them; the agent keeps at most [`AGENT_EVENTS`]
//! between two takes, and counts the rest as dropped.

use ramanujan_core::clock::CausalContext;
use ramanujan_core::replica::ReplicaState;
use ramanujan_events::{Event, EventDot};
use std::collections::BTreeMap;

/// Most events an agent keeps between two takes.
pub const AGENT_EVENTS: usize = 10_000;

/// Events recorded and not yet taken.
#[derive(Debug, Default)]
pub(crate) struct EventLog {
    events: Vec<Event>,
    dropped: u64,
}

impl EventLog {
    pub(crate) fn push(&mut self, event: Event) {
        if self.events.len() < AGENT_EVENTS {
            self.events.push(event);
        } else {
            self.dropped += 1;
        }
    }

    /// The events recorded since the last take, and how many did not fit.
    pub(crate) fn take(&mut self) -> (Vec<Event>, u64) {
        (std::mem::take(&mut self.events), std::mem::take(&mut self.dropped))
    }
}

/// The dot of a delta one event recorded.
pub(crate) fn dot_of(delta: &ReplicaState) -> Option<EventDot> {
    let clock = delta.clock();
    let (agent, counter) = match clock.cloud().iter().next() {
        Some(dot) => (dot.0.to_string(), dot.1),
        None => clock.counters().iter().next().map(|(a, &n)| (a.clone(), n))?,
    };
    Some(EventDot { agent, counter })
}

/// What a replica has seen: each agent's contiguous event counter.
pub(crate) fn seen_of(clock: &CausalContext) -> BTreeMap<String, u64> {
    clock.counters().clone()
}
