//! `order=causal`: the events a query answered, in an order consistent with
//! happens-before as the events record it, ties broken by time.
//!
//! Two things put an event `e` after an event `d`: `d` came earlier from the
//! same source (each agent emits its events in the order they happened), or
//! `d` recorded facts with a dot that `e`'s `seen` reaches (`e`'s agent held
//! those facts when `e` happened). The order is a topological order of those
//! edges among the events answered (Kahn's algorithm, the earliest time
//! first among the events whose predecessors are all placed). An agent's
//! `seen` only grows, so an event reaching a dot also follows, through its
//! own source's order, every later event of its source that reached it.

use crate::store::Stored;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// `events` (in any order) in a causal order.
pub fn causal_order(events: Vec<Stored>) -> Vec<Stored> {
    let n = events.len();
    // Each source's events in the order the timeline took them.
    let mut by_source: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| events[i].seq);
    for &i in &order {
        by_source.entry(events[i].event.source.as_str()).or_default().push(i);
    }
    // Each agent's fact-recording events, by dot counter.
    let mut by_dot: HashMap<&str, Vec<(u64, usize)>> = HashMap::new();
    for (i, stored) in events.iter().enumerate() {
        if let Some(dot) = &stored.event.dot {
            by_dot.entry(dot.agent.as_str()).or_default().push((dot.counter, i));
        }
    }
    for dots in by_dot.values_mut() {
        dots.sort_unstable();
    }
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut waiting = vec![0usize; n];
    let mut edge = |from: usize, to: usize| {
        if from != to {
            successors[from].push(to);
            waiting[to] += 1;
        }
    };
    for chain in by_source.values() {
        for pair in chain.windows(2) {
            edge(pair[0], pair[1]);
        }
    }
    for (i, stored) in events.iter().enumerate() {
        for (agent, &seen) in &stored.event.seen {
            let Some(dots) = by_dot.get(agent.as_str()) else {
                continue;
            };
            // The latest event of that agent the seen counter reaches (the
            // earlier ones come before it in its source's order).
            let reached = dots.partition_point(|&(counter, _)| counter <= seen);
            if reached > 0 {
                edge(dots[reached - 1].1, i);
            }
        }
    }
    let key = |i: usize| Reverse((events[i].event.at_us, events[i].seq, i));
    let mut ready: BinaryHeap<_> = (0..n).filter(|&i| waiting[i] == 0).map(key).collect();
    let mut placed = Vec::with_capacity(n);
    while let Some(Reverse((_, _, i))) = ready.pop() {
        placed.push(i);
        for &next in &successors[i] {
            waiting[next] -= 1;
            if waiting[next] == 0 {
                ready.push(key(next));
            }
        }
    }
    // A cycle (events that contradict each other, as a producer may post)
    // leaves events unplaced: they follow in the order the timeline took
    // them, which keeps each source's order.
    if placed.len() < n {
        let mut rest: Vec<usize> = (0..n).filter(|&i| waiting[i] > 0).collect();
        rest.sort_by_key(|&i| events[i].seq);
        placed.extend(rest);
    }
    let mut slots: Vec<Option<Stored>> = events.into_iter().map(Some).collect();
    placed.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ramanujan_events::{Event, EventDot, Kind};

    fn stored(seq: u64, at_us: i64, source: &str, dot: Option<u64>, seen: &[(&str, u64)]) -> Stored {
        Stored {
            seq,
            event: Event {
                at_us,
                source: source.into(),
                submission: None,
                dot: dot.map(|counter| EventDot {
                    agent: source.into(),
                    counter,
                }),
                seen: seen.iter().map(|(a, n)| (a.to_string(), *n)).collect(),
                event: Kind::Merge { facts_new: 1 },
            },
        }
    }

    fn sources(events: &[Stored]) -> Vec<(String, u64)> {
        events.iter().map(|e| (e.event.source.clone(), e.seq)).collect()
    }

    /// b's clock runs 1 ms behind a's: by time, b's merge of a's facts would
    /// come before a recorded them (mutant: ordering by time alone fails).
    #[test]
    fn an_event_follows_the_facts_it_had_seen_whatever_the_clocks_say() {
        let events = vec![
            stored(0, 5_000, "a", Some(1), &[("a", 1)]),
            stored(1, 4_200, "b", None, &[("a", 1)]),
            stored(2, 4_100, "c", None, &[]),
            stored(3, 4_300, "b", Some(1), &[("a", 1), ("b", 1)]),
        ];
        let ordered = causal_order(events);
        let got = sources(&ordered);
        assert_eq!(
            got,
            [("c".into(), 2), ("a".into(), 0), ("b".into(), 1), ("b".into(), 3)],
            "c is concurrent and earliest; b's events follow a's dot"
        );
    }

    #[test]
    fn contradictions_fall_back_to_arrival_order_which_keeps_each_source_s_order() {
        // Two events that each claim to have seen the other (a posted batch may say anything).
        let events = vec![
            stored(0, 10, "a", Some(2), &[("b", 2)]),
            stored(1, 20, "b", Some(2), &[("a", 2)]),
            stored(2, 5, "a", None, &[]),
        ];
        let ordered = causal_order(events);
        assert_eq!(ordered.len(), 3, "nothing lost");
        let a: Vec<u64> = ordered
            .iter()
            .filter(|e| e.event.source == "a")
            .map(|e| e.seq)
            .collect();
        assert_eq!(a, [0, 2], "a's own order (by arrival), though its clock went back");
    }
}
