//! Syncing in brief: a site that has synced with its peer before sends only
//! what changed since, beside a summary of everything it holds (a hash of each
//! rule's entry and one of the membership), and the peer answers only what
//! differs. One round trip, as a whole-state sync, without either side sending
//! the bodies both already hold.
//!
//! Why it is enough: after a sync both sites hold the same entries (the
//! receiver merged what the sender sent, the sender merged what the receiver
//! answered). So an entry the sender has not changed since is one the receiver
//! held then and holds now, or more (sites only grow). The receiver therefore
//! answers every entry whose hash differs from the sender's, and merges the
//! sender's changes; both end equal. A receiver that lacks a key the sender
//! did not send (it lost its state, or is a new site at the same address)
//! says which, and the sender falls back to a whole-state sync.
//!
//! Hashes are of a canonical form: a register's concurrent values and the
//! membership's entries in sorted order, whatever order merges left them in.

use crate::book::{BookState, Changed};
use crdts::{MVReg, Orswot, VClock};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// What a site holds, in brief.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = BookSummary)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// A hash of the membership (its clock and each member's dots).
    pub members: String,
    /// Per rule key, a hash of its entry: body, enabled and colour registers.
    pub entries: BTreeMap<String, String>,
}

/// `POST /2tdx/sync/brief`: what the sender holds, and what it changed since
/// it last synced with the receiver.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BriefSync {
    /// Everything the sender holds, in brief.
    pub summary: Summary,
    /// The entries (and the membership, if it changed) that changed since.
    pub changes: BookState,
}

/// The answer to a [`BriefSync`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BriefAnswer {
    /// What the sender lacks: every entry whose hash differs, and the
    /// membership if its hash does.
    pub lacked: BookState,
    /// Keys the sender holds and the receiver does not, though the sender did
    /// not send them: the receiver lost what they last agreed on, so the
    /// sender should sync its whole state. Nothing was merged then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wanted: Vec<String>,
}

/// Hex of the first 16 bytes of a BLAKE3 hash.
fn short_hex(hash: blake3::Hash) -> String {
    hash.to_hex()[..32].to_string()
}

/// `value` as JSON bytes with every object's keys in sorted order (whatever
/// map type wrote them), so equal values give equal bytes.
fn canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String(key.clone()).to_string().as_bytes());
                out.push(b':');
                canonical(&map[key], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// Feeds `bytes` into `hasher`, length-prefixed.
fn feed(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// Feeds a register's values in sorted order, so the same register hashes
/// alike whatever order merges left its values in.
fn feed_register<V: Serialize>(hasher: &mut blake3::Hasher, register: Option<&MVReg<V, String>>) {
    let value = register
        .map(serde_json::to_value)
        .and_then(Result::ok)
        .unwrap_or_default();
    let mut values: Vec<Vec<u8>> = match value.get("vals") {
        Some(Value::Array(vals)) => vals
            .iter()
            .map(|v| {
                let mut out = Vec::new();
                canonical(v, &mut out);
                out
            })
            .collect(),
        _ => Vec::new(),
    };
    values.sort();
    hasher.update(&(values.len() as u64).to_le_bytes());
    for value in values {
        feed(hasher, &value);
    }
}

/// The hash of `key`'s entry in `book`.
fn entry_hash(book: &BookState, key: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"2tdx-entry\0");
    // A body's JSON has no maps: its bytes are already canonical.
    feed(
        &mut hasher,
        &serde_json::to_vec(&book.rules.get(key)).unwrap_or_default(),
    );
    feed_register(&mut hasher, book.enabled.get(key));
    feed_register(&mut hasher, book.colors.get(key));
    short_hex(hasher.finalize())
}

/// Feeds a clock's dots (actor, counter) in actor order.
fn feed_clock(hasher: &mut blake3::Hasher, clock: &VClock<String>) {
    hasher.update(&(clock.dots.len() as u64).to_le_bytes());
    for (actor, counter) in &clock.dots {
        feed(hasher, actor.as_bytes());
        hasher.update(&counter.to_le_bytes());
    }
}

/// The hash of a membership: its clock, then each member (sorted) with its
/// dots. (Deferred removes never travel as JSON, so they are left out.)
fn members_hash(members: &Orswot<String, String>) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"2tdx-members.v2\0");
    feed_clock(&mut hasher, &members.read_ctx().add_clock);
    let mut entries: Vec<(&String, VClock<String>)> = members.iter().map(|entry| (entry.val, entry.rm_clock)).collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    hasher.update(&(entries.len() as u64).to_le_bytes());
    for (member, dots) in &entries {
        feed(&mut hasher, member.as_bytes());
        feed_clock(&mut hasher, dots);
    }
    short_hex(hasher.finalize())
}

impl Summary {
    /// `book` in brief.
    pub fn of(book: &BookState) -> Summary {
        Summary {
            members: members_hash(&book.members),
            entries: book
                .rules
                .keys()
                .map(|key| (key.clone(), entry_hash(book, key)))
                .collect(),
        }
    }

    /// The summary of `after`, this being the summary of the book `changed`
    /// changed into `after`: only what changed is hashed again.
    pub fn update(&mut self, after: &BookState, changed: &Changed) {
        if changed.members {
            self.members = members_hash(&after.members);
        }
        // Bodies are grow-only: no key leaves; a key is summarised once it has one.
        for key in changed.keys.iter().filter(|k| after.rules.contains_key(*k)) {
            self.entries.insert(key.clone(), entry_hash(after, key));
        }
    }
}

/// What in `book` (summarised as `ours`) differs from what `base` summarises:
/// each entry whose hash differs, and the membership if its hash does. The
/// sender's changes since the summary both sites last agreed on; and, against
/// the sender's summary, the receiver's answer.
pub fn changes_since(book: &BookState, ours: &Summary, base: &Summary) -> BookState {
    let mut changes = BookState::default();
    if ours.members != base.members {
        changes.members = book.members.clone();
    }
    for (key, hash) in &ours.entries {
        if base.entries.get(key) != Some(hash) {
            copy_entry(book, key, &mut changes);
        }
    }
    changes
}

/// Copies `key`'s entry (body, enabled and colour registers) from `book` into `into`.
fn copy_entry(book: &BookState, key: &str, into: &mut BookState) {
    if let Some(rule) = book.rules.get(key) {
        into.rules.insert(key.to_string(), rule.clone());
    }
    if let Some(register) = book.enabled.get(key) {
        into.enabled.insert(key.to_string(), register.clone());
    }
    if let Some(register) = book.colors.get(key) {
        into.colors.insert(key.to_string(), register.clone());
    }
}

/// The keys the sender of `brief` holds and neither `book` nor its changes
/// do: what the receiver would have to ask for.
pub fn missing(book: &BookState, brief: &BriefSync) -> Vec<String> {
    brief
        .summary
        .entries
        .keys()
        .filter(|key| !book.rules.contains_key(*key) && !brief.changes.rules.contains_key(*key))
        .cloned()
        .collect()
}

/// The receiver's answer, from its book (summarised as `ours`) after merging
/// the brief's changes: what differs from the sender's summary.
pub fn answer(book: &BookState, ours: &Summary, theirs: &Summary) -> BriefAnswer {
    BriefAnswer {
        lacked: changes_since(book, ours, theirs),
        wanted: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mine::check_rule;
    use ramanujan_core::color::Color;
    use ramanujan_core::rules::RuleSpec;

    fn rule(lhs: &str, rhs: &str) -> crate::rule::Rule {
        let spec = RuleSpec::new("", lhs, rhs, Color::Red);
        check_rule(&spec, "test").unwrap()
    }

    /// A whole-state sync: `a` sends its book, `b` merges and answers.
    fn full_sync(a: &mut BookState, b: &mut BookState) {
        let answer = b.lacked_by(a);
        b.merge(a.clone());
        a.merge(answer);
    }

    /// A sync in brief from `a` (which last agreed with `b` on `base`) to `b`;
    /// the new base, or the keys `b` wants.
    fn brief_sync(a: &mut BookState, b: &mut BookState, base: &Summary) -> Result<Summary, Vec<String>> {
        let ours = Summary::of(a);
        let brief = BriefSync {
            changes: changes_since(a, &ours, base),
            summary: ours,
        };
        let wanted = missing(b, &brief);
        if !wanted.is_empty() {
            return Err(wanted);
        }
        b.merge(brief.changes.clone());
        let reply = answer(b, &Summary::of(b), &brief.summary);
        a.merge(reply.lacked);
        Ok(Summary::of(a))
    }

    fn sites() -> (BookState, BookState, Summary) {
        let (mut a, mut b) = (BookState::default(), BookState::default());
        for (lhs, rhs) in [("(+ ?a 0)", "?a"), ("(* ?a 1)", "?a"), ("(* ?a 0)", "0")] {
            a.add(rule(lhs, rhs), "site-a");
        }
        b.add(rule("(- ?a 0)", "?a"), "site-b");
        full_sync(&mut a, &mut b);
        assert_eq!(a.digest(), b.digest());
        let base = Summary::of(&a);
        (a, b, base)
    }

    #[test]
    fn concurrent_edits_converge_in_one_round_trip_in_brief() {
        let (mut a, mut b, base) = sites();
        let keys: Vec<String> = a.rules.keys().cloned().collect();
        // a adds a rule and disables one; b disables another and re-colours one.
        a.add(rule("(pow ?a 1)", "?a"), "site-a");
        a.set_enabled(&keys[0], false, "site-a");
        b.set_enabled(&keys[1], false, "site-b");
        b.set_color(&keys[2], Color::Blue, "site-b");
        b.remove(&keys[3]);
        let ours = Summary::of(&a);
        let changes = changes_since(&a, &ours, &base);
        assert_eq!(changes.rules.len(), 2, "only what changed since is sent");
        brief_sync(&mut a, &mut b, &base).unwrap();
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a, b, "equal states, not only equal reads");
        assert_eq!(Summary::of(&a), Summary::of(&b));
    }

    #[test]
    fn in_step_sends_and_answers_nothing() {
        let (mut a, mut b, base) = sites();
        let ours = Summary::of(&a);
        assert_eq!(changes_since(&a, &ours, &base), BookState::default());
        assert_eq!(answer(&b, &Summary::of(&b), &ours), BriefAnswer::default());
        brief_sync(&mut a, &mut b, &base).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn a_receiver_that_lost_its_state_asks_for_the_whole() {
        let (mut a, _, base) = sites();
        let mut fresh = BookState::default();
        let wanted = brief_sync(&mut a, &mut fresh, &base).unwrap_err();
        assert_eq!(wanted.len(), a.rules.len());
        assert_eq!(fresh, BookState::default(), "nothing merged");
    }

    #[test]
    fn a_summary_updated_with_a_change_is_the_summary_of_the_result() {
        let (a, b, _) = sites();
        let key = a.rules.keys().next().unwrap().clone();
        let mut after = a.clone();
        let added = rule("(pow ?a 1)", "?a");
        let mut changed = Changed::of_key(&added.key, true);
        after.add(added, "site-a");
        after.set_enabled(&key, false, "site-a");
        changed = changed.and(Changed::of_key(&key, false));
        changed = changed.and(after.merge(b.clone()));
        let mut summary = Summary::of(&a);
        summary.update(&after, &changed);
        assert_eq!(summary, Summary::of(&after));
        // A merge names every key it changed, and nothing when it changes nothing.
        let mut behind = a.clone();
        assert!(after.merge(behind.clone()).is_empty(), "a peer behind changes nothing");
        let mut summary = Summary::of(&behind);
        let changed = behind.merge(after.clone());
        assert!(changed.members && !changed.keys.is_empty());
        summary.update(&behind, &changed);
        assert_eq!(summary, Summary::of(&behind));
        assert_eq!(behind, after);
    }

    #[test]
    fn hashes_do_not_depend_on_the_order_merges_leave() {
        let (a, _, _) = sites();
        let key = a.rules.keys().next().unwrap().clone();
        // Two concurrent writes, merged in either order.
        let (mut x, mut y) = (a.clone(), a.clone());
        x.set_enabled(&key, false, "site-x");
        y.set_enabled(&key, true, "site-y");
        let (mut xy, mut yx) = (x.clone(), y.clone());
        xy.merge(y.clone());
        yx.merge(x.clone());
        assert_eq!(Summary::of(&xy), Summary::of(&yx));
        // A different state hashes differently.
        assert_ne!(Summary::of(&x).entries[&key], Summary::of(&xy).entries[&key]);
        assert_ne!(
            Summary::of(&a).members,
            Summary::of(&{
                let mut b = a.clone();
                b.remove(&key);
                b
            })
            .members
        );
    }
}
