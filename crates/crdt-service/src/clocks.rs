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

use std::ops::Range;
use yrs::IdSet;

/// Clocks per client: yrs' own [`IdSet`], whose ranges per client are kept
/// sorted and coalesced (neither overlapping nor touching) by yrs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Clocks(IdSet);

impl Clocks {
    /// The clocks an id set names, coalesced (each range inserted anew: yrs
    /// coalesces on insert) and without clients that name none.
    pub fn of(set: &IdSet) -> Clocks {
        Clocks(IdSet::from_iter(
            set.iter()
                .filter(|(_, ranges)| ranges.iter().any(|r| !r.is_empty()))
                .map(|(client, ranges)| (*client, ranges.iter().cloned().collect::<Vec<_>>())),
        ))
    }

    /// How many clients these clocks name.
    pub fn client_count(&self) -> usize {
        self.0.len()
    }

    /// Every client with its ranges, by client id.
    pub fn clients(&self) -> impl Iterator<Item = (u64, impl ExactSizeIterator<Item = &Range<u32>>)> {
        self.0.iter().map(|(client, ranges)| (client.get(), ranges.iter()))
    }

    /// Adds `other`'s clocks.
    pub fn add(&mut self, other: &Clocks) {
        self.0.merge_with(other.0.clone());
    }

    /// These clocks without `other`'s.
    pub fn without(&self, other: &Clocks) -> Clocks {
        Clocks(self.0.diff(&other.0))
    }

    /// How many gaps these clocks leave: clients that do not start at 0, and
    /// holes between ranges. A full state has none; a diff has some.
    pub fn gaps(&self) -> usize {
        self.0
            .iter()
            .map(|(_, ranges)| ranges.len() - usize::from(ranges.iter().next().is_some_and(|r| r.start == 0)))
            .sum()
    }

    /// A client and clock where one of `held`'s ranges resumes after a gap
    /// strictly inside one of these ranges: where yrs would split a block of
    /// an update holding these clocks and then read freed memory.
    pub fn straddled_resumption(&self, held: &Clocks) -> Option<(u64, u32)> {
        for (client, ranges) in self.0.iter() {
            let Some(held) = held.0.get(client) else { continue };
            let ranges: Vec<&Range<u32>> = ranges.iter().collect();
            for start in held.iter().map(|(r, ())| r.start).filter(|&s| s > 0) {
                let before = ranges.partition_point(|r| r.start < start);
                if before > 0 && start < ranges[before - 1].end {
                    return Some((client.get(), start));
                }
            }
        }
        None
    }
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
        let clients: Vec<(u64, Vec<Range<u32>>)> = c.clients().map(|(id, r)| (id, r.cloned().collect())).collect();
        assert_eq!(clients, [(1, std::iter::once(0..5).collect()), (2, vec![4..6, 8..9])]);
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
