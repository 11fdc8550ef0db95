//! Agents' lives as the host sees them, into the timeline: a watcher that
//! reads every agent's lifecycle (from its heartbeats) a few times per health
//! timeout and records each change to suspect, dead, or alive again.
//!
//! Starts and restarts are recorded by the drivers that do them; this records
//! what only an observer can tell: that an agent stopped beating.

use ramanujan_agent::network::{Lifecycle, Network};
use ramanujan_events::event::LifecycleState;
use ramanujan_events::{Emitter, Event, Kind};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The event for an agent whose lifecycle went from `before` to `now`, if
/// the change is one to record.
fn change(before: Lifecycle, now: Lifecycle) -> Option<LifecycleState> {
    match (before, now) {
        (a, b) if a == b => None,
        (_, Lifecycle::Suspect) => Some(LifecycleState::Suspect),
        (_, Lifecycle::Dead) => Some(LifecycleState::Dead),
        (Lifecycle::Suspect | Lifecycle::Dead, Lifecycle::Alive) => Some(LifecycleState::Alive),
        _ => None,
    }
}

/// Reads `network`'s lifecycles every `every` and emits each change; runs
/// until dropped.
pub async fn watch(network: Arc<dyn Network>, events: Emitter, every: Duration) {
    let mut known: HashMap<String, Lifecycle> = HashMap::new();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let mut changes = Vec::new();
        for (agent, now) in network.lifecycles().await {
            let before = known.insert(agent.clone(), now).unwrap_or(Lifecycle::Starting);
            if let Some(state) = change(before, now) {
                changes.push(Event::from_component(&agent, Kind::Lifecycle { state }));
            }
        }
        events.emit_all(changes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_an_observer_alone_can_tell_are_recorded() {
        use Lifecycle::*;
        assert_eq!(change(Starting, Alive), None, "a start is the driver's to record");
        assert_eq!(change(Alive, Alive), None);
        assert_eq!(change(Alive, Suspect), Some(LifecycleState::Suspect));
        assert_eq!(change(Suspect, Dead), Some(LifecycleState::Dead));
        assert_eq!(change(Alive, Dead), Some(LifecycleState::Dead), "a missed look");
        assert_eq!(change(Dead, Dead), None);
        assert_eq!(change(Dead, Alive), Some(LifecycleState::Alive));
        assert_eq!(change(Suspect, Alive), Some(LifecycleState::Alive));
        assert_eq!(change(Starting, Suspect), Some(LifecycleState::Suspect));
    }
}
