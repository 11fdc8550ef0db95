//! The labelled references: an observed-remove set of examples keyed by
//! content hash, so two hosts that learn different examples converge.
//!
//! Membership is a `crdts::Orswot` (an add wins over a concurrent remove it
//! has not seen); the examples themselves are content-addressed (the key is a
//! hash of the label and the unit vector), so two hosts holding one key hold
//! the same example, and their provenance records are unioned. A host keeps the
//! content of its members only: every state carries the content of each of its
//! members, so a merge always finds it on one side.

use crate::embedding::Embedding;
use crdts::{CmRDT, CvRDT, Orswot};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use thiserror::Error;

/// Where an example came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// The host that took it in (its `AGENT_ID`).
    pub host: String,
    /// What the client said it is (an image id, a dataset and row), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One labelled example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Example {
    /// The skill it shows.
    pub label: String,
    /// Its embedding, unit length.
    pub embedding: Vec<f32>,
    /// Everyone who added it (one example added on two hosts has two).
    pub provenance: BTreeSet<Provenance>,
}

impl Example {
    /// Its content key: 32 hex digits of BLAKE3 over the label and the unit
    /// vector's bits, so the same content has the same key on every host.
    pub fn key(&self) -> String {
        key_of(&self.label, &self.embedding)
    }
}

/// The content key of a label and a unit vector (see [`Example::key`]).
pub fn key_of(label: &str, unit: &[f32]) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(label.len() as u64).to_le_bytes());
    hasher.update(label.as_bytes());
    for v in unit {
        hasher.update(&v.to_le_bytes());
    }
    hasher.finalize().to_hex()[..32].to_string()
}

/// Why a label or a peer's state is refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ReferenceError {
    /// An empty, overlong or control-character label.
    #[error("label {0:?} is not a skill name: use 1 to 128 printable characters")]
    BadLabel(String),
    /// A peer's state that is not a state this host could have made.
    #[error("the reference state does not fit: {0}")]
    BadState(String),
}

/// See [`ReferenceSet::digest`].
pub fn digest_of(members: &Orswot<String, String>) -> String {
    let mut hasher = blake3::Hasher::new();
    let field = |hasher: &mut blake3::Hasher, bytes: &[u8]| {
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    let dots = |hasher: &mut blake3::Hasher, clock: &crdts::VClock<String>| {
        hasher.update(&(clock.dots.len() as u64).to_le_bytes());
        for (actor, n) in &clock.dots {
            field(hasher, actor.as_bytes());
            hasher.update(&n.to_le_bytes());
        }
    };
    dots(&mut hasher, &members.read_ctx().add_clock);
    let mut entries: Vec<_> = members.iter().map(|e| (e.val.clone(), e.rm_clock)).collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, clock) in &entries {
        field(&mut hasher, key.as_bytes());
        dots(&mut hasher, clock);
    }
    hasher.finalize().to_hex()[..32].to_string()
}

/// Checks a skill name: 1 to 128 characters, none of them control characters.
pub fn check_label(label: &str) -> Result<(), ReferenceError> {
    let n = label.chars().count();
    if n == 0 || n > 128 || label.chars().any(char::is_control) || label.trim() != label {
        return Err(ReferenceError::BadLabel(label.to_string()));
    }
    Ok(())
}

/// The replicated set of labelled examples. Cloning it is cheap next to its
/// content (the examples are shared), so a change is made on a copy and kept
/// only once it is stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReferenceSet {
    members: Orswot<String, String>,
    examples: BTreeMap<String, Arc<Example>>,
}

/// A [`ReferenceSet`] on the wire (`GET /skills/state`, `POST /skills/merge`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferenceState {
    /// Membership: the observed-remove set of example keys (`crdts`' `Orswot`).
    #[schema(value_type = Object)]
    pub members: Orswot<String, String>,
    /// The content of every member, by key.
    pub examples: BTreeMap<String, Example>,
}

/// What a change did to the set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// Keys that became members.
    pub added: Vec<String>,
    /// Keys that stopped being members.
    pub removed: Vec<String>,
    /// Keys that stayed members but gained provenance.
    pub touched: Vec<String>,
}

impl Change {
    /// Whether it changed nothing.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.touched.is_empty()
    }
}

impl ReferenceSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds labelled, already checked examples as `actor`, all under one add
    /// context. Keys already held gain the provenance and stay.
    pub fn add(&mut self, actor: &str, examples: Vec<(String, Embedding, Provenance)>) -> Change {
        let mut change = Change::default();
        let mut keys = Vec::with_capacity(examples.len());
        for (label, embedding, provenance) in examples {
            let key = key_of(&label, embedding.values());
            match self.examples.get_mut(&key) {
                Some(held) if !held.provenance.contains(&provenance) => {
                    Arc::make_mut(held).provenance.insert(provenance);
                    change.touched.push(key.clone());
                }
                Some(_) => {}
                None => {
                    change.added.push(key.clone());
                    let example = Example {
                        label,
                        embedding: embedding.values().to_vec(),
                        provenance: BTreeSet::from([provenance]),
                    };
                    self.examples.insert(key.clone(), Arc::new(example));
                }
            }
            keys.push(key);
        }
        if !keys.is_empty() {
            let ctx = self.members.read_ctx().derive_add_ctx(actor.to_string());
            let op = self.members.add_all(keys, ctx);
            self.members.apply(op);
        }
        change.added.sort();
        change.added.dedup();
        change.touched.sort();
        change.touched.dedup();
        change.touched.retain(|k| change.added.binary_search(k).is_err());
        change
    }

    /// Removes the examples with these keys (those it holds).
    pub fn remove(&mut self, keys: &[String]) -> Change {
        let held: Vec<String> = keys
            .iter()
            .filter(|k| self.examples.contains_key(*k))
            .cloned()
            .collect();
        for key in &held {
            let ctx = self.members.contains(key).derive_rm_ctx();
            let op = self.members.rm(key.clone(), ctx);
            self.members.apply(op);
            self.examples.remove(key);
        }
        let mut removed = held;
        removed.sort();
        removed.dedup();
        Change {
            removed,
            ..Change::default()
        }
    }

    /// The keys of every example of `label`.
    pub fn keys_of(&self, label: &str) -> Vec<String> {
        self.examples
            .iter()
            .filter(|(_, e)| e.label == label)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Merges a peer's state (checked with [`ReferenceSet::check_state`]).
    pub fn merge(&mut self, state: ReferenceState) -> Change {
        let before: BTreeSet<String> = self.examples.keys().cloned().collect();
        self.members.merge(state.members);
        let mut touched = Vec::new();
        for (key, example) in state.examples {
            match self.examples.get_mut(&key) {
                Some(held) => {
                    if !example.provenance.is_subset(&held.provenance) {
                        Arc::make_mut(held).provenance.extend(example.provenance);
                        touched.push(key);
                    }
                }
                None => {
                    self.examples.insert(key, Arc::new(example));
                }
            }
        }
        let members: BTreeSet<String> = self.members.read().val.into_iter().collect();
        self.examples.retain(|k, _| members.contains(k));
        let after: BTreeSet<String> = self.examples.keys().cloned().collect();
        touched.retain(|k| before.contains(k) && after.contains(k));
        Change {
            added: after.difference(&before).cloned().collect(),
            removed: before.difference(&after).cloned().collect(),
            touched,
        }
    }

    /// Checks a peer's state before anything of it is merged: each example of
    /// dimension `dim`, finite and of unit length, a valid label, its key its
    /// content's hash, and every member's content present.
    pub fn check_state(state: &ReferenceState, dim: usize) -> Result<(), ReferenceError> {
        let bad = |m: String| Err(ReferenceError::BadState(m));
        for (key, example) in &state.examples {
            check_label(&example.label).or_else(|e| bad(format!("example {key}: {e}")))?;
            if example.embedding.len() != dim {
                return bad(format!(
                    "example {key} has dimension {}, this host takes {dim}",
                    example.embedding.len()
                ));
            }
            if example.embedding.iter().any(|v| !v.is_finite()) {
                return bad(format!("example {key} has a value that is not finite"));
            }
            let norm: f64 = example.embedding.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            if (norm - 1.0).abs() > 1e-3 {
                return bad(format!("example {key} is not of unit length"));
            }
            if example.provenance.is_empty() {
                return bad(format!("example {key} has no provenance"));
            }
            if example.key() != *key {
                return bad(format!("example {key}'s key is not the hash of its content"));
            }
        }
        for member in state.members.read().val {
            if !state.examples.contains_key(&member) {
                return bad(format!("member {member} comes without its example"));
            }
        }
        Ok(())
    }

    /// The state to send a peer.
    pub fn state(&self) -> ReferenceState {
        ReferenceState {
            members: self.members.clone(),
            examples: self.examples.iter().map(|(k, e)| (k.clone(), (**e).clone())).collect(),
        }
    }

    /// A set holding exactly `state` (checked with [`ReferenceSet::check_state`]):
    /// what a host reloads from its store.
    pub fn from_state(state: ReferenceState) -> Self {
        let mut set = ReferenceSet::new();
        set.merge(state);
        set
    }

    /// Membership: the observed-remove set of keys (what a store keeps beside
    /// the examples, and what a peer pulls first).
    pub fn members(&self) -> &Orswot<String, String> {
        &self.members
    }

    /// A digest of the membership: 32 hex digits of BLAKE3 over the set's
    /// clock and each member's key and dots, in order. Two replicas with the
    /// same digest hold the same members with the same dots (removes deferred
    /// for adds not yet seen are not counted).
    pub fn digest(&self) -> String {
        digest_of(&self.members)
    }

    /// The members of a peer's `members` to fetch before merging it: those
    /// with an add this set has not seen. That is every key it lacks and has
    /// not removed (a key whose every dot it has seen was removed here, and
    /// the merge drops it), and every key it holds that the peer added too
    /// (the peer's provenance comes with the example).
    pub fn missing_from(&self, members: &Orswot<String, String>) -> Vec<String> {
        let clock = self.members.read_ctx().add_clock;
        let mut missing: Vec<String> = members
            .iter()
            .filter(|entry| entry.rm_clock.dots.iter().any(|(actor, &n)| clock.get(actor) < n))
            .map(|entry| entry.val.clone())
            .collect();
        missing.sort();
        missing
    }

    /// Checks that merging `members` with `examples` (each checked as in
    /// [`ReferenceSet::check_state`]) leaves no member without its content:
    /// each is held here, among `examples`, or removed here.
    pub fn check_covers(
        &self,
        members: &Orswot<String, String>,
        examples: &BTreeMap<String, Example>,
        dim: usize,
    ) -> Result<(), ReferenceError> {
        let state = ReferenceState {
            members: Orswot::new(),
            examples: examples.clone(),
        };
        Self::check_state(&state, dim)?;
        let uncovered = self
            .missing_from(members)
            .into_iter()
            .filter(|k| !examples.contains_key(k) && !self.examples.contains_key(k))
            .count();
        if uncovered > 0 {
            return Err(ReferenceError::BadState(format!(
                "{uncovered} members come without their examples"
            )));
        }
        Ok(())
    }

    /// Merges a peer's membership and the examples it lacked (checked with
    /// [`ReferenceSet::check_covers`]).
    pub fn merge_members(&mut self, members: Orswot<String, String>, examples: BTreeMap<String, Example>) -> Change {
        self.merge(ReferenceState { members, examples })
    }

    /// Every example, by key (in key order).
    pub fn examples(&self) -> &BTreeMap<String, Arc<Example>> {
        &self.examples
    }

    /// Examples per label, in label order.
    pub fn counts(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for example in self.examples.values() {
            *counts.entry(example.label.as_str()).or_insert(0) += 1;
        }
        counts
    }

    /// How many examples it holds.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(label: &str, v: &[f32]) -> (String, Embedding, Provenance) {
        let provenance = Provenance {
            host: "test".into(),
            source: None,
        };
        (label.into(), Embedding::new(v.to_vec(), v.len()).unwrap(), provenance)
    }

    fn keys(set: &ReferenceSet) -> Vec<String> {
        set.examples().keys().cloned().collect()
    }

    #[test]
    fn two_hosts_that_learn_different_examples_converge() {
        let mut a = ReferenceSet::new();
        let mut b = ReferenceSet::new();
        a.add("a", vec![ex("cat", &[1.0, 0.0]), ex("dog", &[0.0, 1.0])]);
        b.add("b", vec![ex("cat", &[1.0, 0.1]), ex("dog", &[0.0, 1.0])]);
        let (sa, sb) = (a.state(), b.state());
        ReferenceSet::check_state(&sa, 2).unwrap();
        a.merge(sb);
        b.merge(sa);
        assert_eq!(keys(&a), keys(&b));
        assert_eq!(a.len(), 3, "the shared dog example is one, held by both");
        let dog = &a.examples()[&key_of("dog", &[0.0, 1.0])];
        assert_eq!(dog.provenance.len(), 1, "same host name: one record");
        assert_eq!(a.counts(), BTreeMap::from([("cat", 2), ("dog", 1)]));
    }

    #[test]
    fn an_add_wins_over_a_concurrent_remove_and_a_seen_add_loses() {
        let mut a = ReferenceSet::new();
        a.add("a", vec![ex("cat", &[1.0, 0.0])]);
        let mut b = a.clone();
        let key = keys(&a)[0].clone();
        // a removes what it saw; b adds the same example again concurrently.
        a.remove(std::slice::from_ref(&key));
        b.add("b", vec![ex("cat", &[1.0, 0.0])]);
        let mut a2 = a.clone();
        a2.merge(b.state());
        b.merge(a.state());
        assert_eq!(keys(&a2), vec![key.clone()]);
        assert_eq!(keys(&b), vec![key.clone()]);
        // A remove after seeing every add removes it everywhere.
        a2.remove(std::slice::from_ref(&key));
        b.merge(a2.state());
        assert!(b.is_empty() && a2.is_empty());
    }

    #[test]
    fn a_state_that_does_not_fit_is_refused_whole() {
        let mut a = ReferenceSet::new();
        a.add("a", vec![ex("cat", &[1.0, 0.0])]);
        let good = a.state();
        assert!(ReferenceSet::check_state(&good, 3).is_err(), "wrong dimension");
        let mut forged = good.clone();
        forged.examples.values_mut().next().unwrap().label = "dog".into();
        assert!(
            ReferenceSet::check_state(&forged, 2).is_err(),
            "key is not the content's"
        );
        let mut hollow = good.clone();
        hollow.examples.clear();
        assert!(ReferenceSet::check_state(&hollow, 2).is_err(), "member without content");
        let mut long = good;
        long.examples.values_mut().next().unwrap().embedding = vec![2.0, 0.0];
        assert!(ReferenceSet::check_state(&long, 2).is_err(), "not unit length");
    }

    #[test]
    fn labels_are_checked() {
        assert!(check_label("cat").is_ok());
        assert!(check_label("").is_err());
        assert!(check_label(" cat").is_err());
        assert!(check_label("a\nb").is_err());
        assert!(check_label(&"x".repeat(129)).is_err());
    }
}
