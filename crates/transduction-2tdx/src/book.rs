//! A rule book as a CRDT, so sites that edit it apart converge.
//!
//! - **Membership** is an observed-remove set of rule keys (`crdts::Orswot`,
//!   the crdt-service's `ORSet`): a remove takes away only the adds it has seen,
//!   so a concurrent re-add survives.
//! - **Bodies** (the rule behind a key) are content-addressed and grow-only: the
//!   key is a hash of the normalised sides and conditions, so two sites holding
//!   one key hold the same law. Name and provenance may differ; the merge keeps
//!   the least by their JSON text, which every site computes alike.
//! - **Enabled** and **colour** are multi-value registers per key
//!   (`crdts::MVReg`, the crdt-service's `MVRegister`). Concurrent writes are
//!   both kept and resolved when read: **disable wins** over a concurrent enable
//!   (an enable that has seen the disable re-enables), and concurrent colours
//!   resolve by the core's colour merge (`ramanujan_color::merge_colors`).
//!
//! A state from elsewhere is checked whole before anything merges: every body's
//! key is recomputed from its content, every body not held yet passes the
//! core's soundness check, every member has a body, and the book stays within
//! [`MAX_BOOK_RULES`].

use crate::mine::compile_checked;
use crate::rule::{NormalForm, Rule};
use crdts::{CmRDT, CvRDT, MVReg, Orswot};
use ramanujan_core::color::{Color, merge_colors};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Most rules a book holds (bodies, members or not).
pub const MAX_BOOK_RULES: usize = 10_000;

/// A site's rule book, as it replicates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookState {
    /// Keys of the rules in the book (`crdts`' `Orswot`).
    #[schema(value_type = Object)]
    pub members: Orswot<String, String>,
    /// Every rule body ever added, by key (shared: a copy of the book, which
    /// each change makes, copies no body).
    #[schema(value_type = BTreeMap<String, Rule>)]
    pub rules: BTreeMap<String, Arc<Rule>>,
    /// Enabled, per key.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, Object>)]
    pub enabled: BTreeMap<String, MVReg<bool, String>>,
    /// Colour, per key (the body's colour until one is written).
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, Object>)]
    pub colors: BTreeMap<String, MVReg<Color, String>>,
}

/// A rule as the book reads now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BookEntry {
    /// The rule (its colour the resolved one).
    #[serde(flatten)]
    pub rule: Rule,
    /// Whether agents use it.
    pub enabled: bool,
    /// Concurrent writes not yet superseded: enabled values, colours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict: Option<Conflict>,
}

/// Concurrent values a register holds.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Conflict {
    /// Enabled values written concurrently.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub enabled: Vec<bool>,
    /// Colours written concurrently.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub colors: Vec<Color>,
}

/// What a change to a book changed: the keys whose body or registers did,
/// and whether the membership did. Storing and summarising a change touch
/// only that, not the whole book.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changed {
    /// Whether the membership changed.
    pub members: bool,
    /// Keys whose body, enabled or colour register changed.
    pub keys: BTreeSet<String>,
}

impl Changed {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        !self.members && self.keys.is_empty()
    }

    /// A change to `key`'s registers (and to the membership, if `members`).
    pub fn of_key(key: &str, members: bool) -> Changed {
        Changed {
            members,
            keys: BTreeSet::from([key.to_string()]),
        }
    }

    /// Both changes.
    pub fn and(mut self, other: Changed) -> Changed {
        self.members |= other.members;
        self.keys.extend(other.keys);
        self
    }
}

/// A state from elsewhere that cannot merge, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadState(pub String);

/// The least of two bodies by their JSON text (a total order every site shares).
fn least(a: Arc<Rule>, b: Arc<Rule>) -> Arc<Rule> {
    let text = |r: &Arc<Rule>| serde_json::to_string(&**r).unwrap_or_default();
    if text(&b) < text(&a) { b } else { a }
}

/// Each entry of `walked` with the entry of `other` under the same key: found
/// by walking both maps in key order, or by a search per key when `walked`
/// is much the smaller (a handful of changes against a whole book).
fn paired<'a, V, W>(
    walked: &'a BTreeMap<String, V>,
    other: &'a BTreeMap<String, W>,
) -> impl Iterator<Item = (&'a String, &'a V, Option<&'a W>)> {
    let search = walked.len().saturating_mul(16) < other.len();
    let mut others = other.iter().peekable();
    walked.iter().map(move |(key, value)| {
        let found = if search {
            other.get(key)
        } else {
            while others.next_if(|(k, _)| *k < key).is_some() {}
            others.next_if(|(k, _)| *k == key).map(|(_, w)| w)
        };
        (key, value, found)
    })
}

/// Merges registers by key into `held`, noting the keys that changed (an
/// empty register merges as nothing and is not kept).
fn merge_registers<V: Clone + PartialEq>(
    held: &mut BTreeMap<String, MVReg<V, String>>,
    other: BTreeMap<String, MVReg<V, String>>,
    changed: &mut Changed,
) {
    let same: Vec<bool> = paired(&other, held)
        .map(|(_, theirs, mine)| mine == Some(theirs))
        .collect();
    for ((key, register), same) in other.into_iter().zip(same) {
        if same {
            continue;
        }
        match held.get_mut(&key) {
            Some(mine) => {
                let before = mine.clone();
                mine.merge(register);
                if *mine != before {
                    changed.keys.insert(key);
                }
            }
            None if register == MVReg::default() => {}
            None => {
                held.insert(key.clone(), register);
                changed.keys.insert(key);
            }
        }
    }
}

impl BookState {
    /// Whether `key` is in the book.
    pub fn contains(&self, key: &str) -> bool {
        self.members.contains(&key.to_string()).val
    }

    /// Adds `rule` (already checked) as `actor`, enabled.
    pub fn add(&mut self, rule: Rule, actor: &str) {
        let key = rule.key.clone();
        let rule = Arc::new(rule);
        let body = match self.rules.remove(&key) {
            Some(held) => least(held, rule),
            None => rule,
        };
        self.rules.insert(key.clone(), body);
        let op = self
            .members
            .add(key.clone(), self.members.read_ctx().derive_add_ctx(actor.to_string()));
        self.members.apply(op);
        self.set_enabled(&key, true, actor);
    }

    /// Removes `key`; `false` if it was not in the book.
    pub fn remove(&mut self, key: &str) -> bool {
        let held = self.members.contains(&key.to_string());
        if !held.val {
            return false;
        }
        let op = self.members.rm(key.to_string(), held.derive_rm_ctx());
        self.members.apply(op);
        true
    }

    /// Enables or disables `key` as `actor`.
    pub fn set_enabled(&mut self, key: &str, enabled: bool, actor: &str) {
        let register = self.enabled.entry(key.to_string()).or_default();
        let op = register.write(enabled, register.read_ctx().derive_add_ctx(actor.to_string()));
        register.apply(op);
    }

    /// Sets the colour of `key` as `actor`.
    pub fn set_color(&mut self, key: &str, color: Color, actor: &str) {
        let register = self.colors.entry(key.to_string()).or_default();
        let op = register.write(color, register.read_ctx().derive_add_ctx(actor.to_string()));
        register.apply(op);
    }

    /// The rule `key` as the book reads now, if it is in the book.
    pub fn entry(&self, key: &str) -> Option<BookEntry> {
        if !self.contains(key) {
            return None;
        }
        let mut rule = Rule::clone(self.rules.get(key)?);
        // Sorted: a register's concurrent values come in the order merges left them.
        let mut enabled: Vec<bool> = self.enabled.get(key).map(|r| r.read().val).unwrap_or_default();
        enabled.sort();
        let mut colors: Vec<Color> = self.colors.get(key).map(|r| r.read().val).unwrap_or_default();
        colors.sort_by_key(|c| c.name());
        if let Some(first) = colors.first() {
            rule.spec.color = colors.iter().fold(*first, |a, &b| merge_colors(a, b));
        }
        let conflicted = |n: usize| n > 1;
        let conflict = (conflicted(enabled.len()) || conflicted(colors.len())).then(|| Conflict {
            enabled: if conflicted(enabled.len()) {
                enabled.clone()
            } else {
                Vec::new()
            },
            colors: if conflicted(colors.len()) {
                colors.clone()
            } else {
                Vec::new()
            },
        });
        Some(BookEntry {
            rule,
            // Disable wins over a concurrent enable; enabled when never written.
            enabled: enabled.iter().all(|&e| e),
            conflict,
        })
    }

    /// Every rule in the book, by key.
    pub fn entries(&self) -> Vec<BookEntry> {
        let mut keys: Vec<String> = self.members.read().val.into_iter().collect();
        keys.sort();
        keys.iter().filter_map(|k| self.entry(k)).collect()
    }

    /// The enabled rules, by key: what agents run.
    pub fn enabled_rules(&self) -> Vec<Rule> {
        self.entries()
            .into_iter()
            .filter(|e| e.enabled)
            .map(|e| e.rule)
            .collect()
    }

    /// Checks a state from elsewhere whole (see the module's documentation);
    /// bodies this book already holds under the same key skip the soundness
    /// check.
    pub fn check_incoming(&self, other: &BookState) -> Result<(), BadState> {
        let bad = |m: String| Err(BadState(m));
        let held = self.rules.len()
            + paired(&other.rules, &self.rules)
                .filter(|(_, _, held)| held.is_none())
                .count();
        if held > MAX_BOOK_RULES {
            return bad(format!(
                "the merged book would hold {held} rules, more than {MAX_BOOK_RULES}"
            ));
        }
        // Deferred removes (keyed by clocks) cannot be written as JSON, so a
        // state that arrived as JSON carries none.
        for (key, rule, held) in paired(&other.rules, &self.rules) {
            if held == Some(rule) {
                // Held as it is: checked whole when it entered.
                continue;
            }
            if rule.key != *key {
                return bad(format!("rule {key} is filed under another key ({})", rule.key));
            }
            let normal = NormalForm::of_spec(&rule.spec).map_err(|e| BadState(format!("rule {key}: {e}")))?;
            if normal.key() != *key {
                return bad(format!(
                    "rule {key}: its key is not the hash of its normalised sides ({})",
                    normal.key()
                ));
            }
            if held.is_none_or(|held| held.spec != rule.spec) {
                compile_checked(&rule.spec).map_err(|e| BadState(format!("rule {key}: {e}")))?;
            }
        }
        for member in other.members.read().val {
            if !other.rules.contains_key(&member) && !self.rules.contains_key(&member) {
                return bad(format!("rule {member} is a member without a body"));
            }
        }
        /// A key of `registers` with a body in neither book.
        fn bodiless<'a, V>(
            registers: &'a BTreeMap<String, V>,
            theirs: &'a BookState,
            ours: &BookState,
        ) -> Option<&'a String> {
            paired(registers, &theirs.rules)
                .find_map(|(key, _, body)| (body.is_none() && !ours.rules.contains_key(key)).then_some(key))
        }
        for (what, bodiless) in [
            ("enabled", bodiless(&other.enabled, other, self)),
            ("colour", bodiless(&other.colors, other, self)),
        ] {
            if let Some(k) = bodiless {
                return bad(format!("an {what} register for {k}, which has no body"));
            }
        }
        Ok(())
    }

    /// Merges a state checked by [`BookState::check_incoming`], answering
    /// what changed here.
    pub fn merge(&mut self, other: BookState) -> Changed {
        let mut changed = Changed::default();
        // What both sides hold alike (most of it, between sites in step) is skipped.
        if self.members != other.members {
            let before = self.members.clone();
            self.members.merge(other.members);
            changed.members = self.members != before;
        }
        let same: Vec<bool> = paired(&other.rules, &self.rules)
            .map(|(_, theirs, held)| held == Some(theirs))
            .collect();
        for ((key, rule), same) in other.rules.into_iter().zip(same) {
            if same {
                continue;
            }
            match self.rules.get_mut(&key) {
                Some(held) => {
                    let kept = least(held.clone(), rule);
                    if kept != *held {
                        *held = kept;
                        changed.keys.insert(key);
                    }
                }
                None => {
                    self.rules.insert(key.clone(), rule);
                    changed.keys.insert(key);
                }
            }
        }
        merge_registers(&mut self.enabled, other.enabled, &mut changed);
        merge_registers(&mut self.colors, other.colors, &mut changed);
        changed
    }

    /// What a peer that sent `peer` lacks: the bodies and registers that
    /// differ from its own, and the membership unless it is the same (an
    /// empty set merges as nothing). A peer in sync gets an empty state.
    pub fn lacked_by(&self, peer: &BookState) -> BookState {
        fn differing<V: Clone + PartialEq>(
            ours: &BTreeMap<String, V>,
            theirs: &BTreeMap<String, V>,
        ) -> BTreeMap<String, V> {
            paired(ours, theirs)
                .filter(|(_, v, t)| *t != Some(*v))
                .map(|(k, v, _)| (k.clone(), v.clone()))
                .collect()
        }
        BookState {
            members: if self.members == peer.members {
                Orswot::default()
            } else {
                self.members.clone()
            },
            rules: differing(&self.rules, &peer.rules),
            enabled: differing(&self.enabled, &peer.enabled),
            colors: differing(&self.colors, &peer.colors),
        }
    }

    /// A digest of what the book reads (members, bodies, resolved enabled and
    /// colour): two sites with the same digest read the same book.
    pub fn digest(&self) -> String {
        let text = serde_json::to_string(&self.entries()).unwrap_or_default();
        blake3::hash(text.as_bytes()).to_hex()[..32].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mine::check_rule;
    use ramanujan_core::rules::RuleSpec;

    fn rule(lhs: &str, rhs: &str, color: Color) -> Rule {
        let spec = RuleSpec {
            name: String::new(),
            lhs: lhs.into(),
            rhs: rhs.into(),
            color,
            bidirectional: false,
            nonzero: vec![],
            integer: vec![],
        };
        check_rule(&spec, "user").unwrap()
    }

    /// One round trip as the service makes it: `b` answers what `a` lacks
    /// (read before it merges) and merges `a`; `a` merges the answer.
    fn synced(a: &mut BookState, b: &mut BookState) {
        b.check_incoming(a).unwrap();
        let answer = b.lacked_by(a);
        b.merge(a.clone());
        a.check_incoming(&answer).unwrap();
        a.merge(answer);
        assert_eq!(a.digest(), b.digest());
        // In step now: the next round trip carries nothing back.
        assert_eq!(b.lacked_by(a), BookState::default());
        assert_eq!(a, b);
    }

    #[test]
    fn one_round_trip_converges_and_merging_is_a_join() {
        let (mut a, mut b) = (BookState::default(), BookState::default());
        a.add(rule("(+ ?a 0)", "?a", Color::Green), "a");
        b.add(rule("(* ?a 1)", "?a", Color::Green), "b");
        b.add(rule("(+ ?x ?y)", "(+ ?y ?x)", Color::Red), "b");
        synced(&mut a, &mut b);
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.entries().len(), 3);
        // Idempotent, commutative.
        let mut twice = a.clone();
        twice.merge(a.clone());
        assert_eq!(twice.digest(), a.digest());
        let (mut ab, mut ba) = (a.clone(), b.clone());
        ab.merge(b.clone());
        ba.merge(a.clone());
        assert_eq!(ab.digest(), ba.digest());
    }

    #[test]
    fn disable_wins_over_a_concurrent_enable_and_a_later_enable_wins() {
        let (mut a, mut b) = (BookState::default(), BookState::default());
        let r = rule("(+ ?a 0)", "?a", Color::Green);
        let key = r.key.clone();
        a.add(r, "a");
        synced(&mut a, &mut b);
        a.set_enabled(&key, false, "a");
        b.set_enabled(&key, true, "b");
        synced(&mut a, &mut b);
        let entry = a.entry(&key).unwrap();
        assert!(!entry.enabled);
        assert_eq!(entry.conflict.unwrap().enabled.len(), 2);
        assert_eq!(a.digest(), b.digest());
        b.set_enabled(&key, true, "b");
        synced(&mut a, &mut b);
        assert!(a.entry(&key).unwrap().enabled);
        assert!(a.entry(&key).unwrap().conflict.is_none());
    }

    #[test]
    fn a_concurrent_re_add_survives_a_remove() {
        let (mut a, mut b) = (BookState::default(), BookState::default());
        let r = rule("(+ ?a 0)", "?a", Color::Green);
        let key = r.key.clone();
        a.add(r.clone(), "a");
        synced(&mut a, &mut b);
        assert!(a.remove(&key));
        b.add(r, "b");
        synced(&mut a, &mut b);
        assert!(a.contains(&key) && b.contains(&key));
        // A remove both have seen holds.
        assert!(a.remove(&key));
        synced(&mut a, &mut b);
        assert!(!a.contains(&key) && !b.contains(&key));
    }

    #[test]
    fn forged_states_are_refused_whole() {
        let book = BookState::default();
        let mut forged = BookState::default();
        let mut r = rule("(+ ?a 0)", "?a", Color::Green);
        r.spec.rhs = "0".into();
        forged.add(r, "x");
        assert!(book.check_incoming(&forged).unwrap_err().0.contains("not the hash"));

        let mut unsound = BookState::default();
        let spec = RuleSpec {
            name: "bad".into(),
            lhs: "(* ?a ?b)".into(),
            rhs: "(+ ?a ?b)".into(),
            color: Color::Red,
            bidirectional: false,
            nonzero: vec![],
            integer: vec![],
        };
        let normal = NormalForm::of_spec(&spec).unwrap();
        let bad = normal.into_rule(
            "bad".into(),
            Color::Red,
            rule("(+ ?a 0)", "?a", Color::Green).provenance,
        );
        unsound.add(bad, "x");
        assert!(book.check_incoming(&unsound).unwrap_err().0.contains("unsound"));
    }
}
