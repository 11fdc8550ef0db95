//! The replicated state: grow-only sets of terms and of asserted equalities with
//! provenance, each fact tagged with the dot of the event that first made it, and a
//! vector clock.
//!
//! Equalities and refutations form a two-phase set: a GREEN agent that refutes
//! an equality records a [`Refutation`], a grow-only fact like the others, and
//! every replica that holds it leaves that equality out of its e-graph and
//! canonical forms ([`ReplicaState::live_equalities`]), whichever arrived first.
//!
//! `merge` is set union (keeping the least dot of a fact seen twice) and a clock
//! maximum, so it is commutative, associative and idempotent. `delta_since(clock)`
//! answers every fact whose dot that clock has not seen: with the invariant that a
//! replica whose clock covers a dot holds every fact made at that event, this is
//! exactly what a peer at `clock` may lack.

use crate::clock::{CausalContext, Dot};
use crate::color::Color;
use crate::term::{Term, TermKey, WireTerm};
use serde::{Deserialize, Serialize};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Who asserted an equality, by which rule, in which colour.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Provenance {
    /// The asserting agent (shared: every equality it asserts names it).
    pub agent: Arc<str>,
    /// The rule (or `input`, `congruence`, `constant-fold`; shared likewise).
    pub rule: Arc<str>,
    /// The rule's colour.
    pub color: Color,
}

/// An asserted equality between two terms; `lhs < rhs` always.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Equality {
    /// The smaller key.
    pub lhs: TermKey,
    /// The larger key.
    pub rhs: TermKey,
    /// Who asserted it and why.
    pub provenance: Provenance,
}

impl Equality {
    /// An equality between two different terms, oriented so that `lhs < rhs`.
    pub fn new(a: TermKey, b: TermKey, provenance: Provenance) -> Option<Self> {
        match a.cmp(&b) {
            std::cmp::Ordering::Less => Some(Equality {
                lhs: a,
                rhs: b,
                provenance,
            }),
            std::cmp::Ordering::Greater => Some(Equality {
                lhs: b,
                rhs: a,
                provenance,
            }),
            std::cmp::Ordering::Equal => None,
        }
    }

    /// The equality's identity: a hash of its two sides. The same equality
    /// asserted by several agents, or by several rules, is one fact; a replica
    /// keeps the least provenance it has seen for it (see [`ReplicaState::merge`]).
    pub fn key(&self) -> u128 {
        equality_key(self.lhs, self.rhs)
    }
}

/// The identity of the equality between two terms, in either order.
pub fn equality_key(a: TermKey, b: TermKey) -> u128 {
    let (lhs, rhs) = if a <= b { (a, b) } else { (b, a) };
    let mut h = blake3::Hasher::new();
    h.update(&lhs.0.to_le_bytes());
    h.update(&rhs.0.to_le_bytes());
    u128::from_le_bytes(h.finalize().as_bytes()[..16].try_into().expect("16 bytes"))
}

/// A GREEN agent's finding that an equality is false (it found a
/// counterexample): the equality's two sides, `lhs < rhs`, and who refuted it.
/// Its identity is the equality's ([`equality_key`]): one refutation excludes
/// every assertion of that equality.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Refutation {
    /// The smaller key.
    pub lhs: TermKey,
    /// The larger key.
    pub rhs: TermKey,
    /// The refuting agent.
    pub agent: String,
}

impl Refutation {
    /// The refutation of `equality` by `agent`.
    pub fn of(equality: &Equality, agent: &str) -> Self {
        Refutation {
            lhs: equality.lhs,
            rhs: equality.rhs,
            agent: agent.to_string(),
        }
    }

    /// The refuted equality's identity.
    pub fn key(&self) -> u128 {
        equality_key(self.lhs, self.rhs)
    }
}

/// Facts made by one local event, before they get a dot.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// New terms, children before parents or in any order (closure is checked).
    pub terms: Vec<Term>,
    /// New equalities.
    pub equalities: Vec<Equality>,
    /// Terms submitted as goals: each is rewritten on its own budget (see
    /// [`ReplicaState::roots`]).
    pub roots: Vec<TermKey>,
    /// Equalities found false.
    pub refutations: Vec<Refutation>,
}

/// Why a state or delta was refused. Nothing of it was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    /// A term's key does not match its content.
    #[error("term {0}: key does not match its content")]
    KeyMismatch(String),
    /// A term could not be read.
    #[error("term {0}: {1}")]
    BadTerm(String, String),
    /// A fact's dot is newer than the sender's own clock.
    #[error("a fact's dot {0:?} is not covered by the state's clock")]
    DotBeyondClock(Dot),
    /// An equality relates a term to itself.
    #[error("equality relates term {0} to itself")]
    Reflexive(TermKey),
    /// A refutation's sides are not in key order (`lhs < rhs`).
    #[error("refutation of term {0}: sides must be in key order, lhs < rhs")]
    Unordered(TermKey),
}

/// A fact, as the index by dot names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FactId {
    Term(TermKey),
    Equality(u128),
    Root(TermKey),
    Refutation(u128),
}

/// The replicated e-graph state: a state-based CRDT.
#[derive(Debug, Clone, Default)]
pub struct ReplicaState {
    terms: BTreeMap<TermKey, (Term, Dot)>,
    equalities: BTreeMap<u128, (Equality, Dot)>,
    /// Submitted roots, a grow-only set like the others.
    roots: BTreeMap<TermKey, Dot>,
    /// Refuted equalities, by the equality's key: the second phase of the
    /// equalities' two-phase set.
    refuted: BTreeMap<u128, (Refutation, Dot)>,
    clock: CausalContext,
    /// The sum (mod 2^128) of a hash of every fact, kept as facts come: the
    /// digest in constant time (see [`ReplicaState::digest`]).
    fact_sum: u128,
    /// Facts by the dot they were recorded with, so that `delta_since` costs
    /// what the peer lacks, not the replica. A fact whose dot was lowered later
    /// stays listed under the old one too; entries are checked against the
    /// fact's current dot.
    by_dot: BTreeMap<Arc<str>, BTreeMap<u64, Vec<FactId>>>,
}

impl PartialEq for ReplicaState {
    fn eq(&self, other: &Self) -> bool {
        self.terms == other.terms
            && self.equalities == other.equalities
            && self.roots == other.roots
            && self.refuted == other.refuted
            && self.clock == other.clock
    }
}

impl Eq for ReplicaState {}

/// A fact's share of the digest: a 128-bit XXH3 hash of a tag and its bytes,
/// each part prefixed by its length. XXH3, not BLAKE3: the digest is a sum
/// anyway (see [`ReplicaState::digest`]), and every agent hashes every fact it
/// merges, where BLAKE3 was a twelfth of a 48-agent network's CPU.
fn fact_hash(tag: &[u8], parts: &[&[u8]]) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    h.update(tag);
    for part in parts {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.digest128()
}

fn term_hash(key: TermKey) -> u128 {
    fact_hash(b"term", &[&key.0.to_le_bytes()])
}

fn root_hash(key: TermKey) -> u128 {
    fact_hash(b"root", &[&key.0.to_le_bytes()])
}

fn refutation_hash(r: &Refutation) -> u128 {
    fact_hash(b"refutation", &[&r.key().to_le_bytes(), r.agent.as_bytes()])
}

fn equality_hash(eq: &Equality) -> u128 {
    let p = &eq.provenance;
    fact_hash(
        b"equality",
        &[
            &eq.key().to_le_bytes(),
            p.agent.as_bytes(),
            p.rule.as_bytes(),
            p.color.name().as_bytes(),
        ],
    )
}

/// Keeps the least dot; answers whether it changed.
fn keep_least(slot: &mut Dot, dot: &Dot) -> bool {
    let lower = dot < slot;
    if lower {
        *slot = dot.clone();
    }
    lower
}

/// One equality asserted twice: keep the least provenance, and the least dot
/// among its assertions. A minimum under a total order, so merging stays
/// commutative, associative and idempotent, and every replica ends with the same
/// provenance: a replica whose clock covers the kept dot received that
/// provenance, and one that does not is sent it by `delta_since`.
fn keep_least_assertion(slot: &mut (Equality, Dot), other: &(Equality, Dot)) -> bool {
    let replace = replaces_assertion(slot, other);
    if replace {
        *slot = other.clone();
    }
    replace
}

/// Whether `other` is the assertion [`keep_least_assertion`] keeps over `held`.
fn replaces_assertion(held: &(Equality, Dot), other: &(Equality, Dot)) -> bool {
    (&other.0.provenance, &other.1) < (&held.0.provenance, &held.1)
}

/// One equality refuted twice: keep the least refuting agent and dot, as for
/// assertions.
fn keep_least_refutation(slot: &mut (Refutation, Dot), other: &(Refutation, Dot)) -> bool {
    let replace = (&other.0.agent, &other.1) < (&slot.0.agent, &slot.1);
    if replace {
        *slot = other.clone();
    }
    replace
}

impl ReplicaState {
    /// An empty replica.
    pub fn new() -> Self {
        Self::default()
    }

    /// The vector clock.
    pub fn clock(&self) -> &CausalContext {
        &self.clock
    }

    /// Number of terms.
    pub fn term_count(&self) -> usize {
        self.terms.len()
    }

    /// Number of asserted equalities.
    pub fn equality_count(&self) -> usize {
        self.equalities.len()
    }

    /// Number of refutations (refuted equalities, held or not yet).
    pub fn refutation_count(&self) -> usize {
        self.refuted.len()
    }

    /// About how many bytes of heap the replica holds: each kind of fact
    /// counted at its map entry's size (B-tree nodes run about two-thirds
    /// full), plus a term's children and the index by dot. An estimate from
    /// counts, read in constant time; `crates/ramanujan-agent/tests/memory.rs`
    /// checks it against what dropping an agent frees.
    pub fn approx_heap_bytes(&self) -> usize {
        use std::mem::size_of;
        /// A map entry of `K` and `V` in a B-tree two-thirds full.
        fn entry<K, V>() -> usize {
            (size_of::<K>() + size_of::<V>()) * 3 / 2
        }
        /// A fact's place in the index by dot.
        const INDEXED: usize = size_of::<FactId>() * 2;
        /// A term's children (two, on average), counted as if this replica's
        /// own: an upper bound where agents of one process share them.
        const CHILDREN: usize = 2 * size_of::<TermKey>() + 16;
        let facts = self.fact_count();
        self.terms.len() * (entry::<TermKey, (Term, Dot)>() + CHILDREN)
            + self.equalities.len() * entry::<u128, (Equality, Dot)>()
            + self.roots.len() * entry::<TermKey, Dot>()
            + self.refuted.len() * (entry::<u128, (Refutation, Dot)>() + 16)
            + facts * INDEXED
    }

    /// Number of facts of every kind: terms, equalities, roots and refutations.
    pub fn fact_count(&self) -> usize {
        self.terms.len() + self.equalities.len() + self.roots.len() + self.refuted.len()
    }

    /// Whether the replica holds no facts.
    pub fn is_empty(&self) -> bool {
        self.fact_count() == 0
    }

    /// The submitted roots: terms someone asked the network to rewrite. Each is
    /// a goal with its own rewriting budget; the terms under it are its region.
    pub fn roots(&self) -> impl Iterator<Item = TermKey> + '_ {
        self.roots.keys().copied()
    }

    /// Whether a term was submitted as a root.
    pub fn is_root(&self, key: TermKey) -> bool {
        self.roots.contains_key(&key)
    }

    /// A term by key.
    pub fn term(&self, key: TermKey) -> Option<&Term> {
        self.terms.get(&key).map(|(t, _)| t)
    }

    /// All terms, by key order.
    pub fn terms(&self) -> impl Iterator<Item = (TermKey, &Term)> {
        self.terms.iter().map(|(k, (t, _))| (*k, t))
    }

    /// All asserted equalities, by key order, refuted ones included (the set
    /// grows only; see [`ReplicaState::live_equalities`]).
    pub fn equalities(&self) -> impl Iterator<Item = &Equality> {
        self.equalities.values().map(|(e, _)| e)
    }

    /// The equalities that shape answers: asserted and not refuted.
    pub fn live_equalities(&self) -> impl Iterator<Item = &Equality> {
        self.equalities
            .iter()
            .filter(|(k, _)| !self.refuted.contains_key(k))
            .map(|(_, (e, _))| e)
    }

    /// The equality with this key ([`equality_key`]), if asserted here.
    pub fn equality(&self, key: u128) -> Option<&Equality> {
        self.equalities.get(&key).map(|(e, _)| e)
    }

    /// Whether the replica holds an assertion of the equality with this key.
    pub fn asserts(&self, key: u128) -> bool {
        self.equalities.contains_key(&key)
    }

    /// Whether the equality with this key ([`equality_key`]) was refuted.
    pub fn is_refuted(&self, key: u128) -> bool {
        self.refuted.contains_key(&key)
    }

    /// All refutations, by the refuted equality's key.
    pub fn refutations(&self) -> impl Iterator<Item = &Refutation> {
        self.refuted.values().map(|(r, _)| r)
    }

    /// Records facts made by `agent` as one event; only facts not already held get
    /// its dot. Answers the delta of the new facts, whose clock is that one event
    /// (empty, with no tick, if nothing was new), so any replica may merge it.
    pub fn record(&mut self, agent: &str, facts: Facts) -> Result<ReplicaState, ReplicaError> {
        let mut delta = ReplicaState::default();
        let placeholder = Dot(agent.into(), 0);
        for term in facts.terms {
            let key = term.key();
            if !self.terms.contains_key(&key) {
                delta.terms.insert(key, (term, placeholder.clone()));
            }
        }
        for eq in facts.equalities {
            if eq.lhs == eq.rhs {
                return Err(ReplicaError::Reflexive(eq.lhs));
            }
            let key = eq.key();
            if !self.equalities.contains_key(&key) {
                delta.equalities.insert(key, (eq, placeholder.clone()));
            }
        }
        for root in facts.roots {
            if !self.roots.contains_key(&root) {
                delta.roots.insert(root, placeholder.clone());
            }
        }
        for mut refutation in facts.refutations {
            if refutation.lhs == refutation.rhs {
                return Err(ReplicaError::Reflexive(refutation.lhs));
            }
            if refutation.lhs > refutation.rhs {
                std::mem::swap(&mut refutation.lhs, &mut refutation.rhs);
            }
            let key = refutation.key();
            if !self.refuted.contains_key(&key) {
                delta.refuted.insert(key, (refutation, placeholder.clone()));
            }
        }
        if delta.is_empty() {
            return Ok(delta);
        }
        let dot = self.clock.tick(agent);
        delta.terms.values_mut().for_each(|(_, d)| *d = dot.clone());
        delta.equalities.values_mut().for_each(|(_, d)| *d = dot.clone());
        delta.roots.values_mut().for_each(|d| *d = dot.clone());
        delta.refuted.values_mut().for_each(|(_, d)| *d = dot.clone());
        delta.clock = CausalContext::of_event(dot.clone());
        delta.fact_sum = delta.sum_of_facts();
        self.fact_sum = self.fact_sum.wrapping_add(delta.fact_sum);
        self.terms.extend(delta.terms.iter().map(|(k, v)| (*k, v.clone())));
        self.equalities
            .extend(delta.equalities.iter().map(|(k, v)| (*k, v.clone())));
        self.roots.extend(delta.roots.iter().map(|(k, d)| (*k, d.clone())));
        self.refuted.extend(delta.refuted.iter().map(|(k, v)| (*k, v.clone())));
        delta.reindex();
        for facts in delta.by_dot.values().flat_map(|m| m.values()) {
            for &fact in facts {
                self.index(&dot, fact);
            }
        }
        Ok(delta)
    }

    fn index(&mut self, dot: &Dot, fact: FactId) {
        // The agent's name is cloned only the first time it is seen.
        let by_counter = match self.by_dot.get_mut(&*dot.0) {
            Some(by_counter) => by_counter,
            None => self.by_dot.entry(dot.0.clone()).or_default(),
        };
        by_counter.entry(dot.1).or_default().push(fact);
    }

    /// Rebuilds the index by dot from the facts.
    fn reindex(&mut self) {
        let mut by_dot: BTreeMap<Arc<str>, BTreeMap<u64, Vec<FactId>>> = BTreeMap::new();
        let mut add = |dot: &Dot, fact: FactId| {
            by_dot
                .entry(dot.0.clone())
                .or_default()
                .entry(dot.1)
                .or_default()
                .push(fact);
        };
        for (k, (_, d)) in &self.terms {
            add(d, FactId::Term(*k));
        }
        for (k, (_, d)) in &self.equalities {
            add(d, FactId::Equality(*k));
        }
        for (k, d) in &self.roots {
            add(d, FactId::Root(*k));
        }
        for (k, (_, d)) in &self.refuted {
            add(d, FactId::Refutation(*k));
        }
        self.by_dot = by_dot;
    }

    /// The digest sum computed from scratch.
    fn sum_of_facts(&self) -> u128 {
        let terms = self.terms.keys().map(|&k| term_hash(k));
        let equalities = self.equalities.values().map(|(e, _)| equality_hash(e));
        let roots = self.roots.keys().map(|&k| root_hash(k));
        let refuted = self.refuted.values().map(|(r, _)| refutation_hash(r));
        terms
            .chain(equalities)
            .chain(roots)
            .chain(refuted)
            .fold(0u128, u128::wrapping_add)
    }

    /// Terms named (as a child or an equality side) but not held: the delta that
    /// brings them has not arrived yet. Facts that depend on them wait, unmaterialised.
    pub fn pending(&self) -> BTreeSet<TermKey> {
        let named = self.terms.values().flat_map(|(t, _)| t.args.iter().copied());
        let sides = self.equalities.values().flat_map(|(e, _)| [e.lhs, e.rhs]);
        let roots = self.roots.keys().copied();
        named
            .chain(sides)
            .chain(roots)
            .filter(|k| !self.terms.contains_key(k))
            .collect()
    }

    /// Merges another state or delta into this one: set union and clock maximum.
    /// Answers how many facts were new. Deltas may arrive in any order: a fact that
    /// names a term not yet held is kept and waits (see [`ReplicaState::pending`]).
    pub fn merge(&mut self, other: &ReplicaState) -> MergeStats {
        if self.is_empty() {
            // Every fact is new: a copy, without hashing and indexing them one
            // by one (a journal starts empty after each save).
            let mut clock = std::mem::replace(self, other.clone()).clock;
            clock.merge(&other.clock);
            self.clock = clock;
            return MergeStats {
                new_terms: other.terms.len(),
                new_equalities: other.equalities.len(),
                new_roots: other.roots.len(),
                new_refutations: other.refuted.len(),
            };
        }
        self.merge_noting(other, None)
    }

    /// [`ReplicaState::merge`], also copying every fact that was new here into
    /// `journal` (facts only; the journal's clock is left alone). A store kept
    /// up to date from such journals never needs to scan the whole replica.
    pub fn merge_noting(&mut self, other: &ReplicaState, journal: Option<&mut ReplicaState>) -> MergeStats {
        match journal {
            Some(journal) => self.merge_calling(other, |fact| journal.copy_fact(other, fact)),
            None => self.merge_calling(other, |_| {}),
        }
    }

    /// [`ReplicaState::merge`], answering also what changed this replica, as
    /// [`ReplicaState::merge_noting`] would note it: `other` itself (shared,
    /// not copied) when every one of its facts did, as an event's facts do
    /// where they are news.
    pub fn merge_news(&mut self, other: &Arc<ReplicaState>) -> (MergeStats, Arc<ReplicaState>) {
        let facts = other.fact_count();
        let mut noted = Vec::with_capacity(facts);
        let stats = self.merge_calling(other, |fact| noted.push(fact));
        if noted.len() == facts {
            return (stats, Arc::clone(other));
        }
        let mut news = ReplicaState::new();
        for fact in noted {
            news.copy_fact(other, fact);
        }
        (stats, Arc::new(news))
    }

    /// Copies one fact of `from` (which holds it) into this state.
    fn copy_fact(&mut self, from: &ReplicaState, fact: FactId) {
        match fact {
            FactId::Term(key) => {
                if let Some((term, dot)) = from.terms.get(&key) {
                    self.insert_term(key, term.clone(), dot.clone());
                }
            }
            FactId::Equality(key) => {
                if let Some(assertion) = from.equalities.get(&key) {
                    self.insert_equality(key, assertion.clone());
                }
            }
            FactId::Root(key) => {
                if let Some(dot) = from.roots.get(&key) {
                    self.insert_root(key, dot.clone());
                }
            }
            FactId::Refutation(key) => {
                if let Some(refutation) = from.refuted.get(&key) {
                    self.insert_refutation(key, refutation.clone());
                }
            }
        }
    }

    /// [`ReplicaState::merge`], naming to `note` every fact of `other` that
    /// changed this replica (new here, or a provenance kept instead of the
    /// one held), whose `other` version a store must learn.
    fn merge_calling(&mut self, other: &ReplicaState, mut note: impl FnMut(FactId)) -> MergeStats {
        let mut stats = MergeStats::default();
        // Each fact is looked up once (`entry`), and its dot indexed after.
        for (key, (term, dot)) in &other.terms {
            let indexed = match self.terms.entry(*key) {
                Entry::Occupied(mut mine) => keep_least(&mut mine.get_mut().1, dot),
                Entry::Vacant(slot) => {
                    slot.insert((term.clone(), dot.clone()));
                    self.fact_sum = self.fact_sum.wrapping_add(term_hash(*key));
                    note(FactId::Term(*key));
                    stats.new_terms += 1;
                    true
                }
            };
            if indexed {
                self.index(dot, FactId::Term(*key));
            }
        }
        for (key, theirs) in &other.equalities {
            let (eq, dot) = theirs;
            let indexed = match self.equalities.entry(*key) {
                Entry::Occupied(mut mine) => {
                    // The held assertion is hashed only when it is replaced.
                    let kept = replaces_assertion(mine.get(), theirs);
                    if kept {
                        let before = equality_hash(&mine.get().0);
                        *mine.get_mut() = theirs.clone();
                        self.fact_sum = self.fact_sum.wrapping_sub(before).wrapping_add(equality_hash(eq));
                        // A store must learn the provenance kept, or a replica restored
                        // from it would disagree with its peers for good.
                        note(FactId::Equality(*key));
                    }
                    kept
                }
                Entry::Vacant(slot) => {
                    slot.insert((eq.clone(), dot.clone()));
                    self.fact_sum = self.fact_sum.wrapping_add(equality_hash(eq));
                    note(FactId::Equality(*key));
                    stats.new_equalities += 1;
                    true
                }
            };
            if indexed {
                self.index(dot, FactId::Equality(*key));
            }
        }
        for (key, dot) in &other.roots {
            let indexed = match self.roots.entry(*key) {
                Entry::Occupied(mut mine) => keep_least(mine.get_mut(), dot),
                Entry::Vacant(slot) => {
                    slot.insert(dot.clone());
                    self.fact_sum = self.fact_sum.wrapping_add(root_hash(*key));
                    note(FactId::Root(*key));
                    stats.new_roots += 1;
                    true
                }
            };
            if indexed {
                self.index(dot, FactId::Root(*key));
            }
        }
        for (key, theirs) in &other.refuted {
            let indexed = match self.refuted.entry(*key) {
                Entry::Occupied(mut mine) => {
                    let before = refutation_hash(&mine.get().0);
                    let kept = keep_least_refutation(mine.get_mut(), theirs);
                    if kept {
                        self.fact_sum = self
                            .fact_sum
                            .wrapping_sub(before)
                            .wrapping_add(refutation_hash(&theirs.0));
                        note(FactId::Refutation(*key));
                    }
                    kept
                }
                Entry::Vacant(slot) => {
                    slot.insert(theirs.clone());
                    self.fact_sum = self.fact_sum.wrapping_add(refutation_hash(&theirs.0));
                    note(FactId::Refutation(*key));
                    stats.new_refutations += 1;
                    true
                }
            };
            if indexed {
                self.index(&theirs.1, FactId::Refutation(*key));
            }
        }
        self.clock.merge(&other.clock);
        stats
    }

    /// The facts in parts of at most `max_facts` each, every part with the whole
    /// clock: merged together they give this state back (for storage in pages;
    /// a part alone claims more than it holds, so never send one to a peer).
    pub fn split(&self, max_facts: usize) -> Vec<ReplicaState> {
        let max_facts = max_facts.max(1);
        let mut parts = vec![ReplicaState::default()];
        let room = |parts: &mut Vec<ReplicaState>| {
            let last = parts.last().expect("a part");
            if last.fact_count() >= max_facts {
                parts.push(ReplicaState::default());
            }
        };
        for (k, v) in &self.terms {
            room(&mut parts);
            parts.last_mut().expect("a part").terms.insert(*k, v.clone());
        }
        for (k, v) in &self.equalities {
            room(&mut parts);
            parts.last_mut().expect("a part").equalities.insert(*k, v.clone());
        }
        for (k, d) in &self.roots {
            room(&mut parts);
            parts.last_mut().expect("a part").roots.insert(*k, d.clone());
        }
        for (k, v) in &self.refuted {
            room(&mut parts);
            parts.last_mut().expect("a part").refuted.insert(*k, v.clone());
        }
        for part in &mut parts {
            part.clock = self.clock.clone();
            part.fact_sum = part.sum_of_facts();
            part.reindex();
        }
        parts
    }

    /// These facts with another clock: a journal of new facts, stamped with the
    /// clock of the replica that holds them all.
    pub fn with_clock(mut self, clock: CausalContext) -> ReplicaState {
        self.clock = clock;
        self
    }

    /// Every fact whose event `clock` has not seen, with this replica's clock: what
    /// a replica whose clock is `clock` lacks. Merge it only into that replica (or
    /// one that has seen more): the clock it carries speaks for facts left out
    /// because `clock` had seen them.
    pub fn delta_since(&self, clock: &CausalContext) -> ReplicaState {
        let mut out = ReplicaState {
            clock: self.clock.clone(),
            ..ReplicaState::default()
        };
        for (actor, by_counter) in &self.by_dot {
            for (&n, facts) in by_counter.range(clock.get(actor).saturating_add(1)..) {
                let dot = Dot(actor.clone(), n);
                if clock.covers(&dot) {
                    continue;
                }
                for &fact in facts {
                    match fact {
                        FactId::Term(k) => {
                            if let Some(v) = self.terms.get(&k).filter(|(_, d)| *d == dot) {
                                out.terms.insert(k, v.clone());
                            }
                        }
                        FactId::Equality(k) => {
                            if let Some(v) = self.equalities.get(&k).filter(|(_, d)| *d == dot) {
                                out.equalities.insert(k, v.clone());
                            }
                        }
                        FactId::Root(k) => {
                            if let Some(d) = self.roots.get(&k).filter(|d| **d == dot) {
                                out.roots.insert(k, d.clone());
                            }
                        }
                        FactId::Refutation(k) => {
                            if let Some(v) = self.refuted.get(&k).filter(|(_, d)| *d == dot) {
                                out.refuted.insert(k, v.clone());
                            }
                        }
                    }
                }
            }
        }
        out.reindex();
        out.with_sum()
    }

    /// A digest of the facts and each equality's kept provenance (not the
    /// clock or the dots): replicas holding the same facts agree. It is the sum
    /// (mod 2^128) of a 128-bit XXH3 hash of each fact, kept up to date as facts
    /// arrive, so it costs nothing to ask. A sum is not collision resistant
    /// against someone choosing facts to forge one (Wagner's generalised
    /// birthday attack): it is a fast "probably in sync" check between agents
    /// of one network, never a proof of content.
    pub fn digest(&self) -> String {
        format!("{:032x}", self.fact_sum)
    }

    fn with_sum(mut self) -> Self {
        self.fact_sum = self.sum_of_facts();
        self
    }

    fn indexed(mut self) -> Self {
        self.reindex();
        self
    }

    fn insert_term(&mut self, key: TermKey, term: Term, dot: Dot) {
        self.index(&dot, FactId::Term(key));
        if self.terms.insert(key, (term, dot)).is_none() {
            self.fact_sum = self.fact_sum.wrapping_add(term_hash(key));
        }
    }

    fn insert_equality(&mut self, key: u128, assertion: (Equality, Dot)) {
        self.index(&assertion.1, FactId::Equality(key));
        let added = equality_hash(&assertion.0);
        if let Some((old, _)) = self.equalities.insert(key, assertion) {
            self.fact_sum = self.fact_sum.wrapping_sub(equality_hash(&old));
        }
        self.fact_sum = self.fact_sum.wrapping_add(added);
    }

    fn insert_refutation(&mut self, key: u128, refutation: (Refutation, Dot)) {
        self.index(&refutation.1, FactId::Refutation(key));
        let added = refutation_hash(&refutation.0);
        if let Some((old, _)) = self.refuted.insert(key, refutation) {
            self.fact_sum = self.fact_sum.wrapping_sub(refutation_hash(&old));
        }
        self.fact_sum = self.fact_sum.wrapping_add(added);
    }

    fn insert_root(&mut self, key: TermKey, dot: Dot) {
        self.index(&dot, FactId::Root(key));
        if self.roots.insert(key, dot).is_none() {
            self.fact_sum = self.fact_sum.wrapping_add(root_hash(key));
        }
    }

    /// Keys of terms this replica has and `other` lacks.
    pub fn terms_missing_from(&self, other: &ReplicaState) -> BTreeSet<TermKey> {
        self.terms
            .keys()
            .filter(|k| !other.terms.contains_key(k))
            .copied()
            .collect()
    }

    /// Equalities this replica has and `other` lacks.
    pub fn equalities_missing_from<'a>(&'a self, other: &'a ReplicaState) -> impl Iterator<Item = &'a Equality> {
        self.equalities
            .iter()
            .filter(|(k, _)| !other.equalities.contains_key(k))
            .map(|(_, (e, _))| e)
    }
}

/// What a merge added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = ReplicaMergeStats)]
pub struct MergeStats {
    /// Terms that were new here.
    pub new_terms: usize,
    /// Equalities that were new here.
    pub new_equalities: usize,
    /// Roots that were new here.
    pub new_roots: usize,
    /// Refutations that were new here.
    pub new_refutations: usize,
}

/// A fact's dot as it travels: `["agent", n]`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFactTerm {
    // The fields of a `WireTerm`, spelt out: `flatten` would make serde buffer
    // every term before decoding it (and ignore `deny_unknown_fields`).
    op: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    args: Vec<TermKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    dot: Dot,
}

impl WireFactTerm {
    #[cfg(test)]
    fn new(term: WireTerm, dot: Dot) -> Self {
        WireFactTerm {
            op: term.op,
            args: term.args,
            value: term.value,
            dot,
        }
    }

    fn term(self) -> (WireTerm, Dot) {
        let term = WireTerm {
            op: self.op,
            args: self.args,
            value: self.value,
        };
        (term, self.dot)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEquality {
    lhs: TermKey,
    rhs: TermKey,
    agent: String,
    rule: String,
    color: Color,
    dot: Dot,
}

/// The wire form of a [`ReplicaState`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireState {
    #[serde(default)]
    clock: CausalContext,
    #[serde(default)]
    terms: BTreeMap<TermKey, WireFactTerm>,
    #[serde(default)]
    equalities: Vec<WireEquality>,
    /// Submitted roots with their dots; absent when there are none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    roots: BTreeMap<TermKey, Dot>,
    /// Refuted equalities; absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    refuted: Vec<WireRefutation>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRefutation {
    lhs: TermKey,
    rhs: TermKey,
    agent: String,
    dot: Dot,
}

/// A held term as [`WireFactTerm`] writes it, borrowed: encoding a state
/// copies none of its facts.
#[derive(Serialize)]
struct WireFactTermRef<'a> {
    op: &'a str,
    #[serde(skip_serializing_if = "<[TermKey]>::is_empty")]
    args: &'a [TermKey],
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<std::borrow::Cow<'a, str>>,
    dot: &'a Dot,
}

/// A held equality as [`WireEquality`] writes it, borrowed.
#[derive(Serialize)]
struct WireEqualityRef<'a> {
    lhs: TermKey,
    rhs: TermKey,
    agent: &'a str,
    rule: &'a str,
    color: Color,
    dot: &'a Dot,
}

/// A held refutation as [`WireRefutation`] writes it, borrowed.
#[derive(Serialize)]
struct WireRefutationRef<'a> {
    lhs: TermKey,
    rhs: TermKey,
    agent: &'a str,
    dot: &'a Dot,
}

/// Writes what an iterator yields as a sequence.
struct Collect<F>(F);

impl<F: Fn() -> I, I: Iterator<Item = T>, T: Serialize> Serialize for Collect<F> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((self.0)())
    }
}

/// Writes the pairs an iterator yields as a map.
struct CollectMap<F>(F);

impl<F: Fn() -> I, I: Iterator<Item = (K, V)>, K: Serialize, V: Serialize> Serialize for CollectMap<F> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map((self.0)())
    }
}

/// Written as [`WireState`] is (the same fields, names and order), from
/// borrowed facts.
impl Serialize for ReplicaState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let fields = 3 + usize::from(!self.roots.is_empty()) + usize::from(!self.refuted.is_empty());
        let mut state = s.serialize_struct("WireState", fields)?;
        state.serialize_field("clock", &self.clock)?;
        state.serialize_field(
            "terms",
            &CollectMap(|| {
                self.terms.iter().map(|(key, (term, dot))| {
                    let (op, value) = term.wire_op_and_value();
                    let args = &term.args[..];
                    (key, WireFactTermRef { op, args, value, dot })
                })
            }),
        )?;
        state.serialize_field(
            "equalities",
            &Collect(|| {
                self.equalities.values().map(|(e, dot)| WireEqualityRef {
                    lhs: e.lhs,
                    rhs: e.rhs,
                    agent: &e.provenance.agent,
                    rule: &e.provenance.rule,
                    color: e.provenance.color,
                    dot,
                })
            }),
        )?;
        if self.roots.is_empty() {
            state.skip_field("roots")?;
        } else {
            state.serialize_field("roots", &self.roots)?;
        }
        if self.refuted.is_empty() {
            state.skip_field("refuted")?;
        } else {
            state.serialize_field(
                "refuted",
                &Collect(|| {
                    self.refuted.values().map(|(r, dot)| WireRefutationRef {
                        lhs: r.lhs,
                        rhs: r.rhs,
                        agent: &r.agent,
                        dot,
                    })
                }),
            )?;
        }
        state.end()
    }
}

impl TryFrom<WireState> for ReplicaState {
    type Error = ReplicaError;
    fn try_from(w: WireState) -> Result<Self, ReplicaError> {
        let check_dot = |dot: &Dot| {
            if w.clock.covers(dot) && dot.1 > 0 {
                Ok(())
            } else {
                Err(ReplicaError::DotBeyondClock(dot.clone()))
            }
        };
        let mut terms = BTreeMap::new();
        for (key, fact) in w.terms {
            let (wire, dot) = fact.term();
            let term = Term::try_from(wire).map_err(|e| ReplicaError::BadTerm(key.to_string(), e))?;
            if term.key() != key {
                return Err(ReplicaError::KeyMismatch(key.to_string()));
            }
            check_dot(&dot)?;
            terms.insert(key, (term, dot));
        }
        let mut equalities = BTreeMap::new();
        for e in w.equalities {
            check_dot(&e.dot)?;
            let provenance = Provenance {
                agent: e.agent.into(),
                rule: e.rule.into(),
                color: e.color,
            };
            let eq = Equality::new(e.lhs, e.rhs, provenance).ok_or(ReplicaError::Reflexive(e.lhs))?;
            let assertion = (eq, e.dot);
            match equalities.entry(assertion.0.key()) {
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(assertion);
                }
                std::collections::btree_map::Entry::Occupied(mut slot) => {
                    keep_least_assertion(slot.get_mut(), &assertion);
                }
            }
        }
        for dot in w.roots.values() {
            check_dot(dot)?;
        }
        let mut refuted = BTreeMap::new();
        for r in w.refuted {
            check_dot(&r.dot)?;
            if r.lhs >= r.rhs {
                return Err(ReplicaError::Unordered(r.lhs));
            }
            let fact = (
                Refutation {
                    lhs: r.lhs,
                    rhs: r.rhs,
                    agent: r.agent,
                },
                r.dot,
            );
            match refuted.entry(fact.0.key()) {
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(fact);
                }
                std::collections::btree_map::Entry::Occupied(mut slot) => {
                    keep_least_refutation(slot.get_mut(), &fact);
                }
            }
        }
        Ok(ReplicaState {
            terms,
            equalities,
            roots: w.roots,
            refuted,
            clock: w.clock,
            fact_sum: 0,
            by_dot: BTreeMap::new(),
        }
        .with_sum()
        .indexed())
    }
}

impl<'de> Deserialize<'de> for ReplicaState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ReplicaState::try_from(WireState::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_expr;

    /// The wire form as it was built before [`ReplicaState`]'s borrowing
    /// `Serialize`: every fact copied into a [`WireState`].
    fn copied_wire_state(state: &ReplicaState) -> WireState {
        WireState {
            clock: state.clock.clone(),
            terms: state
                .terms
                .iter()
                .map(|(k, (t, d))| (*k, WireFactTerm::new(t.into(), d.clone())))
                .collect(),
            equalities: state
                .equalities
                .values()
                .map(|(e, d)| WireEquality {
                    lhs: e.lhs,
                    rhs: e.rhs,
                    agent: e.provenance.agent.to_string(),
                    rule: e.provenance.rule.to_string(),
                    color: e.provenance.color,
                    dot: d.clone(),
                })
                .collect(),
            roots: state.roots.clone(),
            refuted: state
                .refuted
                .values()
                .map(|(r, d)| WireRefutation {
                    lhs: r.lhs,
                    rhs: r.rhs,
                    agent: r.agent.clone(),
                    dot: d.clone(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_state_is_written_as_its_copied_wire_form_byte_for_byte() {
        let expr = parse_expr("(+ (* x 3/7) (pow (neg y) -2))").expect("parses");
        let mut facts = Facts::default();
        let root = crate::materialize::expr_terms(&expr, &mut facts);
        let mut with_roots = ReplicaState::new();
        facts.roots.push(root);
        let mut delta = with_roots.record("agent-1", facts).expect("records");
        let keys: Vec<TermKey> = with_roots.terms.keys().copied().collect();
        let provenance = Provenance {
            agent: "agent-2".into(),
            rule: "comm-add".into(),
            color: Color::Red,
        };
        let asserted = Facts {
            equalities: vec![Equality::new(keys[0], keys[1], provenance).expect("two terms")],
            refutations: vec![Refutation {
                lhs: keys[2].min(keys[3]),
                rhs: keys[2].max(keys[3]),
                agent: "agent-3".into(),
            }],
            ..Facts::default()
        };
        delta.merge(&with_roots.record("agent-2", asserted).expect("records"));
        let terms_only = {
            let mut t = ReplicaState::new();
            let mut facts = Facts::default();
            crate::materialize::expr_terms(&expr, &mut facts);
            t.record("agent-4", facts).expect("records")
        };
        for state in [&with_roots, &delta, &terms_only, &ReplicaState::new()] {
            let copied = copied_wire_state(state);
            assert_eq!(
                serde_json::to_string(state).unwrap(),
                serde_json::to_string(&copied).unwrap()
            );
            assert_eq!(
                rmp_serde::to_vec_named(state).unwrap(),
                rmp_serde::to_vec_named(&copied).unwrap()
            );
            assert_eq!(rmp_serde::to_vec(state).unwrap(), rmp_serde::to_vec(&copied).unwrap());
        }
        assert!(with_roots.refutation_count() == 1 && !with_roots.roots.is_empty());
    }
}
