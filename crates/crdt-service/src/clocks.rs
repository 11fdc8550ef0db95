//! Which clocks of each client a Yjs state or document holds, as sorted,
//! coalesced ranges; and the check yrs needs before it applies an update to a
//! document that already holds something.
//!
//! # Why the check
//!
//! yrs 0.28 trims an incoming update by what the document holds
//! (`BlockSet::exclude`). When a range the document holds begins strictly
//! inside one of the update's blocks, yrs splits that block, frees the held
//! piece, and leaves the piece before it pointing at the freed one;
//! integrating then reads freed memory (found by the fuzz target as a crash,
//! confirmed under valgrind). A document's held ranges begin after clock 0
//! only past a gap: clocks of a client it received out of order. Between
//! states of one history such a range never begins inside a block (yrs
//! squashes only items that continue each other), so merging states of one
//! history in gap-free order never trips the check; states that disagree
//! about a client's history (one client id reused by two documents) can.

use std::collections::BTreeMap;
use std::ops::Range;
use yrs::IdSet;

/// Clocks per client: for each, sorted ranges that neither overlap nor touch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Clocks(BTreeMap<u64, Vec<Range<u32>>>);

impl Clocks {
    /// The clocks an id set names.
    pub fn of(set: &IdSet) -> Clocks {
        let clients = set
            .iter()
            .map(|(client, ranges)| (client.get(), coalesce(ranges.iter().cloned().collect())))
            .filter(|(_, ranges)| !ranges.is_empty())
            .collect();
        Clocks(clients)
    }

    /// Every client with its ranges, by client id.
    pub fn clients(&self) -> impl ExactSizeIterator<Item = (u64, &[Range<u32>])> {
        self.0.iter().map(|(client, ranges)| (*client, ranges.as_slice()))
    }

    /// Adds `other`'s clocks.
    pub fn add(&mut self, other: &Clocks) {
        for (client, ranges) in other.clients() {
            let mine = self.0.entry(client).or_default();
            mine.extend(ranges.iter().cloned());
            *mine = coalesce(std::mem::take(mine));
        }
    }

    /// These clocks without `other`'s.
    pub fn without(&self, other: &Clocks) -> Clocks {
        let mut left = BTreeMap::new();
        for (client, ranges) in self.clients() {
            let cut = other.0.get(&client).map_or(&[][..], Vec::as_slice);
            let kept = subtract(ranges, cut);
            if !kept.is_empty() {
                left.insert(client, kept);
            }
        }
        Clocks(left)
    }

    /// How many gaps these clocks leave: clients that do not start at 0, and
    /// holes between ranges. A full state has none; a diff has some.
    pub fn gaps(&self) -> usize {
        self.0
            .values()
            .map(|ranges| ranges.len() - usize::from(ranges.first().is_some_and(|r| r.start == 0)))
            .sum()
    }

    /// A client and clock where one of `held`'s ranges resumes after a gap
    /// strictly inside one of these ranges: where yrs would split a block of
    /// an update holding these clocks and then read freed memory.
    pub fn straddled_resumption(&self, held: &Clocks) -> Option<(u64, u32)> {
        for (client, ranges) in self.clients() {
            let Some(held) = held.0.get(&client) else { continue };
            for start in held.iter().map(|r| r.start).filter(|&s| s > 0) {
                let before = ranges.partition_point(|r| r.start < start);
                if before > 0 && start < ranges[before - 1].end {
                    return Some((client, start));
                }
            }
        }
        None
    }
}

/// Sorts ranges and joins those that overlap or touch; drops empty ones.
fn coalesce(mut ranges: Vec<Range<u32>>) -> Vec<Range<u32>> {
    ranges.retain(|r| !r.is_empty());
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut out: Vec<Range<u32>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// `ranges` without `cut` (both sorted and coalesced).
fn subtract(ranges: &[Range<u32>], cut: &[Range<u32>]) -> Vec<Range<u32>> {
    let mut out = Vec::new();
    let mut c = 0;
    for r in ranges {
        let mut start = r.start;
        while c < cut.len() && cut[c].end <= start {
            c += 1;
        }
        let mut k = c;
        while start < r.end {
            match cut.get(k) {
                Some(x) if x.start < r.end => {
                    if x.start > start {
                        out.push(start..x.start);
                    }
                    start = start.max(x.end);
                    k += 1;
                }
                _ => {
                    out.push(start..r.end);
                    start = r.end;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clocks(ranges: &[(u64, Range<u32>)]) -> Clocks {
        let mut set = IdSet::new();
        for (client, r) in ranges {
            set.insert(yrs::ID::new(yrs::ClientID::new(*client), r.start), r.end - r.start);
        }
        Clocks::of(&set)
    }

    #[test]
    fn ranges_are_coalesced_and_gaps_counted() {
        let c = clocks(&[(1, 3..5), (1, 0..2), (1, 2..3), (2, 4..6), (2, 8..9)]);
        let clients: Vec<(u64, &[Range<u32>])> = c.clients().collect();
        assert_eq!(
            (clients[0].0, clients[0].1.len(), clients[0].1[0].clone()),
            (1, 1, 0..5)
        );
        assert_eq!((clients[1].0, clients[1].1.to_vec()), (2, vec![4..6, 8..9]));
        assert_eq!(c.gaps(), 2);
        assert_eq!(clocks(&[(1, 0..9)]).gaps(), 0);
    }

    #[test]
    fn without_cuts_holes_and_ends() {
        let a = clocks(&[(1, 0..10), (1, 12..20), (2, 0..3)]);
        let b = clocks(&[(1, 2..4), (1, 9..13), (1, 19..25), (2, 0..3)]);
        assert_eq!(a.without(&b), clocks(&[(1, 0..2), (1, 4..9), (1, 13..19)]));
        let mut joined = a.without(&b);
        joined.add(&b);
        joined.add(&a);
        assert_eq!(joined, clocks(&[(1, 0..25), (2, 0..3)]));
    }

    #[test]
    fn a_held_range_resuming_inside_an_incoming_one_is_found() {
        let held = clocks(&[(1, 4..6)]);
        assert_eq!(clocks(&[(1, 0..8)]).straddled_resumption(&held), Some((1, 4)));
        assert_eq!(
            clocks(&[(1, 0..4)]).straddled_resumption(&held),
            None,
            "ends where it resumes"
        );
        assert_eq!(
            clocks(&[(1, 4..8)]).straddled_resumption(&held),
            None,
            "starts where it resumes"
        );
        assert_eq!(clocks(&[(2, 0..8)]).straddled_resumption(&held), None, "another client");
        let from_zero = clocks(&[(1, 0..6)]);
        assert_eq!(clocks(&[(1, 0..8)]).straddled_resumption(&from_zero), None, "no gap");
    }
}
