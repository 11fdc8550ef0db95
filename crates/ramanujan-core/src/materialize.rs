//! Between replicated facts and a live e-graph: materialising a state as an
//! e-graph (set union is followed by this rebuild), and exporting what rewriting
//! added to an e-graph as new facts.

use crate::analysis::EGraph;
use crate::color::Color;
use crate::congruence::{ClassGraph, CongruenceGraph};
use crate::extract::CanonicalExtractor;
use crate::lang::{Expr, Math};
use crate::replica::{Equality, Facts, Provenance, ReplicaState, equality_key};
use crate::term::{Term, TermKey};
use egg::{Id, Language};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::collections::{BTreeSet, VecDeque};

/// A replica state materialised as an e-graph, with each term's e-class.
///
/// An agent keeps a [`ReplicaGraph`] of its whole replica for good and takes
/// each delta into it ([`Materialization::absorb_deferred`], rebuilt when
/// read). Reading one submission happens on its
/// [`Materialization::region`], a small egg e-graph of its own
/// ([`Materialized`]); an agent rewrites a submission in another small one,
/// built from the submission's own facts ([`Materialization::add_held`],
/// [`Materialization::absorb_facts`]).
#[derive(Clone)]
pub struct Materialization<G: ClassGraph> {
    /// The e-graph: every term added, every equality unioned, rebuilt.
    pub egraph: G,
    /// The (uncanonical) id of each term.
    pub ids: HashMap<TermKey, Id>,
    /// Terms and equalities that name a term not held yet: they wait, and are
    /// retried when facts arrive.
    waiting_terms: BTreeSet<TermKey>,
    waiting_equalities: Vec<(TermKey, TermKey)>,
}

/// A state materialised as an egg e-graph: for rewriting, extraction and
/// regions.
pub type Materialized = Materialization<EGraph>;

/// A whole replica materialised for reading: a [`CongruenceGraph`], whose
/// rebuild costs what changed, that regions are cut from.
pub type ReplicaGraph = Materialization<CongruenceGraph>;

impl<G: ClassGraph> Materialization<G> {
    /// Builds the e-graph of a state: every term whose descendants are all held
    /// (pending ones are left out), every equality between such terms, with
    /// constants folded, rebuilt.
    pub fn new(state: &ReplicaState) -> Self {
        Self::build(state, true)
    }

    /// [`Materialized::new`], folding constants or not.
    pub fn build(state: &ReplicaState, fold_constants: bool) -> Self {
        let mut m = Self::empty(fold_constants);
        m.absorb(state, state);
        m
    }

    /// About how many bytes of heap the e-graph holds: each term added counted
    /// at [`ClassGraph::TERM_BYTES`] and its place in the id map. An
    /// estimate from counts, read in constant time (see
    /// [`ReplicaState::approx_heap_bytes`]).
    pub fn approx_heap_bytes(&self) -> usize {
        let waiting = self.waiting_terms.len() * 48 + self.waiting_equalities.len() * 32;
        self.ids.len() * (G::TERM_BYTES + 2 * std::mem::size_of::<(TermKey, Id)>()) + waiting
    }

    /// An empty e-graph.
    pub fn empty(fold_constants: bool) -> Self {
        Materialization {
            egraph: G::with_folding(fold_constants),
            ids: HashMap::new(),
            waiting_terms: BTreeSet::new(),
            waiting_equalities: Vec::new(),
        }
    }

    /// Adds the facts of `delta` (already merged into `state`, which holds the
    /// terms they name) and rebuilds. Answers the canonical classes the news
    /// touched: classes that gained a term or were merged. Adding costs the size
    /// of the news (and of whatever still waits); egg's rebuild then walks every
    /// class once, so callers absorb news in batches.
    ///
    /// A refutation of an equality that may already be unioned here cannot be
    /// undone in place (egg never splits a class): the e-graph is built again
    /// from `state`, without refuted equalities, and every class counts as
    /// touched. Refutations are rare; a sound network makes none.
    pub fn absorb(&mut self, state: &ReplicaState, delta: &ReplicaState) -> Vec<Id> {
        let unioned = |r: &crate::replica::Refutation| {
            state.asserts(r.key()) && self.ids.contains_key(&r.lhs) && self.ids.contains_key(&r.rhs)
        };
        if delta.refutations().any(unioned) {
            *self = Self::build(state, self.egraph.folds_constants());
            return self.egraph.class_ids();
        }
        self.absorb_state(state, delta, true)
    }

    /// Adds facts that name terms held in `state` (a rewriting step's export,
    /// whether or not `state` had them before) and rebuilds. Answers whether
    /// the e-graph gained a term or merged two classes. Refuted equalities are
    /// left out; the caller drops an e-graph that had unioned one (see
    /// [`Materialized::unions_any_of`]).
    pub fn absorb_facts(&mut self, state: &ReplicaState, facts: &Facts) -> bool {
        let before = self.shape();
        let terms: Vec<TermKey> = facts.terms.iter().map(Term::key).collect();
        let sides = facts.equalities.iter().map(|eq| (eq.lhs, eq.rhs));
        self.absorb_parts(state, terms, sides, true);
        before != self.shape()
    }

    /// [`Materialized::absorb_facts`] for a delta (refutations aside).
    pub fn absorb_delta(&mut self, state: &ReplicaState, delta: &ReplicaState) -> bool {
        let before = self.shape();
        self.absorb_state(state, delta, true);
        before != self.shape()
    }

    /// Terms held and classes: what changes when an absorb adds anything.
    fn shape(&self) -> (usize, usize) {
        (self.ids.len(), self.egraph.class_count())
    }

    /// [`Materialized::absorb_parts`] with a delta's terms and equalities.
    fn absorb_state(&mut self, state: &ReplicaState, delta: &ReplicaState, rebuild: bool) -> Vec<Id> {
        let terms: Vec<TermKey> = delta.terms().map(|(k, _)| k).collect();
        let sides = delta.equalities().map(|eq| (eq.lhs, eq.rhs));
        self.absorb_parts(state, terms, sides, rebuild)
    }

    /// Whether this e-graph holds both sides of one of `delta`'s refutations
    /// (it may have unioned them, and egg never splits a class).
    pub fn unions_any_of(&self, delta: &ReplicaState) -> bool {
        delta
            .refutations()
            .any(|r| self.ids.contains_key(&r.lhs) && self.ids.contains_key(&r.rhs))
    }

    /// Adds a term held in `state`, with its descendants, and rebuilds.
    /// Answers its class; none if `state` does not hold it all yet, and then
    /// it waits, as terms in a delta do, and comes in with a later absorb.
    pub fn add_held(&mut self, state: &ReplicaState, key: TermKey) -> Option<Id> {
        let Some(id) = self.add_term(state, key) else {
            self.waiting_terms.insert(key);
            return None;
        };
        self.egraph.rebuild();
        Some(self.egraph.find(id))
    }

    /// Adds terms (retrying those that waited) and unions equalities' sides
    /// (those still waiting too), then rebuilds; answers the touched classes.
    fn absorb_parts(
        &mut self,
        state: &ReplicaState,
        terms: Vec<TermKey>,
        new_sides: impl Iterator<Item = (TermKey, TermKey)>,
        rebuild: bool,
    ) -> Vec<Id> {
        let mut touched: Vec<Id> = Vec::new();
        let before = self.ids.len();
        let mut retry: Vec<TermKey> = std::mem::take(&mut self.waiting_terms).into_iter().collect();
        retry.extend(terms);
        for key in retry {
            if self.ids.contains_key(&key) {
                continue;
            }
            match self.add_term(state, key) {
                Some(id) => touched.push(id),
                None => {
                    self.waiting_terms.insert(key);
                }
            }
        }
        let newly_held = self.ids.len() > before;
        let mut sides: Vec<(TermKey, TermKey)> = if newly_held {
            std::mem::take(&mut self.waiting_equalities)
        } else {
            Vec::new()
        };
        sides.extend(new_sides);
        // Hashing a side pair to look it up costs, so only where there is anything to find.
        let any_refuted = state.refutation_count() > 0;
        for (lhs, rhs) in sides {
            if any_refuted && state.is_refuted(equality_key(lhs, rhs)) {
                continue;
            }
            match (self.ids.get(&lhs), self.ids.get(&rhs)) {
                (Some(&a), Some(&b)) => {
                    self.egraph.union(a, b);
                    touched.push(a);
                }
                _ => self.waiting_equalities.push((lhs, rhs)),
            }
        }
        if rebuild {
            self.egraph.rebuild();
        }
        let mut classes: Vec<Id> = touched.into_iter().map(|id| self.egraph.find(id)).collect();
        classes.sort_unstable();
        classes.dedup();
        classes
    }

    /// [`Materialized::absorb`] without egg's rebuild, which walks every class:
    /// for an e-graph that takes news far more often than it is read. Call
    /// [`Materialized::rebuild`] before reading classes' e-nodes or analysis
    /// data (`class_of` and `equivalent` see the unions, not yet their
    /// congruences).
    pub fn absorb_deferred(&mut self, state: &ReplicaState, delta: &ReplicaState) {
        if delta.refutations().next().is_some() {
            self.absorb(state, delta);
            return;
        }
        self.absorb_state(state, delta, false);
    }

    /// Rebuilds the e-graph if news came in since it was last rebuilt.
    pub fn rebuild(&mut self) {
        self.egraph.rebuild();
    }

    /// Adds a term and, first, its children (iteratively: terms can be deep).
    fn add_term(&mut self, state: &ReplicaState, root: TermKey) -> Option<Id> {
        let mut stack = vec![root];
        while let Some(&key) = stack.last() {
            if self.ids.contains_key(&key) {
                stack.pop();
                continue;
            }
            let term = state.term(key)?;
            // Children not held yet go on the stack, above this term.
            let above = stack.len();
            stack.extend(term.args.iter().filter(|a| !self.ids.contains_key(a)));
            if stack.len() == above {
                let id = self.egraph.add(term.to_node(|k| self.ids[&k]));
                self.egraph.data_mut(id).hold(key);
                self.ids.insert(key, id);
                stack.pop();
            }
        }
        self.ids.get(&root).copied()
    }

    /// Its terms grouped by e-class, each group and the groups sorted: what
    /// [`Materialization::from_classes`] makes the same e-graph again from.
    pub fn classes(&self) -> Vec<Vec<TermKey>> {
        let mut by_class: HashMap<Id, Vec<TermKey>> = HashMap::new();
        for (&key, &id) in &self.ids {
            by_class.entry(self.egraph.find(id)).or_default().push(key);
        }
        let mut classes: Vec<Vec<TermKey>> = by_class
            .into_values()
            .map(|mut keys| {
                keys.sort_unstable();
                keys
            })
            .collect();
        classes.sort_unstable();
        classes
    }

    /// The e-graph of `classes`' terms (held in `state`) with each group's
    /// terms unioned: the e-graph [`Materialization::classes`] was read from
    /// (congruences and folded constants follow again from the terms).
    pub fn from_classes(state: &ReplicaState, classes: &[Vec<TermKey>], fold_constants: bool) -> Self {
        let mut m = Self::empty(fold_constants);
        let terms = classes.iter().flatten().copied().collect();
        let sides = classes
            .iter()
            .filter_map(|class| class.split_first())
            .flat_map(|(first, rest)| rest.iter().map(move |key| (*first, *key)));
        m.absorb_parts(state, terms, sides, true);
        m
    }

    /// The e-class of a term, if held.
    pub fn class_of(&self, key: TermKey) -> Option<Id> {
        self.ids.get(&key).map(|&id| self.egraph.find(id))
    }

    /// Whether two held terms are known equal.
    pub fn equivalent(&self, a: TermKey, b: TermKey) -> bool {
        matches!((self.class_of(a), self.class_of(b)), (Some(x), Some(y)) if x == y)
    }

    /// The classes of a term's region with the e-nodes each keeps (see
    /// [`kept_nodes`]): breadth first from the root's class, at most `depth`
    /// classes down (`usize::MAX`: all of them), through kept e-nodes only.
    fn region_classes(&self, root: TermKey, depth: usize) -> Vec<(Id, Vec<Math>)> {
        let Some(start) = self.class_of(root) else {
            return Vec::new();
        };
        let graph = &self.egraph;
        let mut seen = HashSet::from_iter([start]);
        let mut order = vec![(start, 0)];
        let mut kept = Vec::new();
        let mut next = 0;
        while let Some(&(class, distance)) = order.get(next) {
            next += 1;
            let nodes = kept_nodes(graph, class, &mut Vec::new());
            if distance < depth {
                // Kept e-nodes have canonical children.
                for node in &nodes {
                    for &child in node.children() {
                        if seen.insert(child) {
                            order.push((child, distance + 1));
                        }
                    }
                }
            }
            kept.push((class, nodes));
        }
        kept
    }

    /// What a status reads of a held term, in place: its canonical form in
    /// the whole e-graph, and a digest of the classes its smallest forms go
    /// through (from its class, down every e-node of least size: the classes
    /// extraction chooses among), each with the e-nodes a region keeps of it
    /// (see [`kept_nodes`]) and its least size, classes named by their least
    /// held term. Two replicas with the same digest extract the same form from
    /// the same choices; a fact in flight that would change the form changes
    /// an e-node, a name or a size there. Costs those classes' e-nodes (a
    /// smallest form's classes, not everything other submissions put in the
    /// classes below it). `None` if the term is not held.
    pub fn form_view(&self, root: TermKey) -> Option<FormView> {
        let start = self.class_of(root)?;
        let graph = &self.egraph;
        let mut reads = Vec::new();
        let mut seen = HashSet::from_iter([start]);
        let mut classes: Vec<(Id, Vec<Math>)> = Vec::new();
        let mut next = vec![start];
        while let Some(class) = next.pop() {
            let nodes = kept_nodes(graph, class, &mut reads);
            reads.push(class);
            let least = graph.data(class).size;
            // Children of a least e-node are smaller still: this ends.
            for node in nodes.iter().filter(|n| graph.node_size(n) == least) {
                next.extend(node.children().iter().copied().filter(|&c| seen.insert(c)));
            }
            classes.push((class, nodes));
        }
        let parts: Vec<(Id, &[Math])> = classes.iter().map(|(c, nodes)| (*c, nodes.as_slice())).collect();
        let canonical = CanonicalExtractor::over(&parts).expr_with(|id| graph.find(id), start);
        let name = |class: Id| graph.data(class).name;
        let mut lines: Vec<NamedNode> = Vec::new();
        for (class, nodes) in &classes {
            let Some(class_name) = name(*class) else { continue };
            lines.push((class_name, format!("size {}", graph.data(*class).size), Vec::new()));
            for node in nodes {
                let children: Option<Vec<TermKey>> = node.children().iter().map(|&c| name(c)).collect();
                if let Some(children) = children {
                    lines.push((class_name, node.to_string(), children));
                }
            }
        }
        reads.sort_unstable();
        reads.dedup();
        Some(FormView {
            canonical,
            fingerprint: digest_lines(lines),
            reads,
        })
    }

    /// A term's region as an e-graph of its own: the e-nodes of its class and
    /// of every class below it, in the same classes, each class named by its
    /// least held term (and `root` by itself). Built from e-nodes, not from the
    /// terms that stand for them, so it costs the size of the region's e-graph
    /// however many names its classes collected. Extraction and rewriting there
    /// cost the size of the region, not of the whole replica; the canonical
    /// form of `root` is the same as in the whole e-graph (a class's canonical
    /// term depends only on the classes below it).
    pub fn region(&self, root: TermKey) -> Option<Materialized> {
        self.region_within(root, usize::MAX)
    }

    /// [`Materialized::region`] cut at `depth` classes below the root: an
    /// e-node whose children lie deeper is left out (a class left with no
    /// e-node is left out too). Every equality in it still holds; it is where a
    /// submission's rewriting looks first, before what other submissions put
    /// deep in shared classes.
    pub fn region_within(&self, root: TermKey, depth: usize) -> Option<Materialized> {
        let classes = self.region_classes(root, depth);
        if classes.is_empty() {
            return None;
        }
        let graph = &self.egraph;
        let mut sub = Materialized::empty(graph.folds_constants());
        let mut made: HashMap<Id, Id> = HashMap::with_capacity(classes.len());
        // Region e-nodes have canonical children (see `kept_nodes`).
        let mapped = |node: &Math, made: &HashMap<Id, Id>| -> Option<Math> {
            node.children()
                .iter()
                .all(|c| made.contains_key(c))
                .then(|| node.clone().map_children(|c| made[&c]))
        };
        // Each class first gets a node whose children are already made (every
        // class of terms has one: its terms are finite): each e-node waits for
        // its children's classes, and is ready once they are all made.
        let inside: HashSet<Id> = classes.iter().map(|&(class, _)| class).collect();
        let mut nodes: Vec<(Id, &Math)> = Vec::new();
        let mut unmade: Vec<usize> = Vec::new();
        let mut waiters: HashMap<Id, Vec<usize>> = HashMap::new();
        let mut ready: VecDeque<usize> = VecDeque::new();
        for (class, kept) in &classes {
            let class = *class;
            for node in kept {
                let mut children: Vec<Id> = node.children().to_vec();
                if !children.iter().all(|c| inside.contains(c)) {
                    continue;
                }
                children.sort_unstable();
                children.dedup();
                let n = nodes.len();
                nodes.push((class, node));
                unmade.push(children.len());
                if children.is_empty() {
                    ready.push_back(n);
                }
                for child in children {
                    waiters.entry(child).or_default().push(n);
                }
            }
        }
        while let Some(n) = ready.pop_front() {
            let (class, node) = nodes[n];
            if made.contains_key(&class) {
                continue;
            }
            let node = mapped(node, &made).expect("its children are made");
            made.insert(class, sub.egraph.add(node));
            for &w in waiters.get(&class).into_iter().flatten() {
                unmade[w] -= 1;
                if unmade[w] == 0 {
                    ready.push_back(w);
                }
            }
        }
        // Then every other node, into its class.
        for (class, kept) in &classes {
            let Some(&id) = made.get(class) else { continue };
            for node in kept {
                if let Some(node) = mapped(node, &made) {
                    let other = sub.egraph.add(node);
                    sub.egraph.union(id, other);
                }
            }
            let data = graph.data(*class);
            if let Some(name) = data.name {
                sub.ids.insert(name, id);
            }
        }
        sub.ids.insert(root, *made.get(&graph.find(self.ids[&root]))?);
        sub.egraph.rebuild();
        Some(sub)
    }
}

impl Materialized {
    /// A digest of this e-graph under its held names: every class named by its
    /// least held term, every e-node by its operator and its children's names.
    /// Two replicas whose regions of a term agree on it hold the same e-graph
    /// there, whatever ids egg gave it.
    pub fn fingerprint(&self) -> String {
        let mut name: HashMap<Id, TermKey> = HashMap::with_capacity(self.ids.len());
        for (&key, &id) in &self.ids {
            let slot = name.entry(self.egraph.find(id)).or_insert(key);
            *slot = (*slot).min(key);
        }
        let mut lines: Vec<NamedNode> = Vec::with_capacity(self.egraph.total_size());
        for class in self.egraph.classes() {
            let Some(&class_name) = name.get(&class.id) else {
                continue;
            };
            for node in class.iter() {
                let children: Option<Vec<TermKey>> = node
                    .children()
                    .iter()
                    .map(|c| name.get(&self.egraph.find(*c)).copied())
                    .collect();
                if let Some(children) = children {
                    lines.push((class_name, node.to_string(), children));
                }
            }
        }
        digest_lines(lines)
    }
}

/// One e-node under held names: its class's name, its operator, its
/// children's names.
type NamedNode = (TermKey, String, Vec<TermKey>);

/// A digest of e-nodes under held names, in any order.
fn digest_lines(mut lines: Vec<NamedNode>) -> String {
    lines.sort_unstable();
    let mut h = blake3::Hasher::new();
    for (class, op, children) in &lines {
        h.update(&class.0.to_le_bytes());
        h.update(&(op.len() as u64).to_le_bytes());
        h.update(op.as_bytes());
        h.update(&(children.len() as u64).to_le_bytes());
        for child in children {
            h.update(&child.0.to_le_bytes());
        }
    }
    h.finalize().to_hex()[..32].to_string()
}

/// What a status reads of one submission: see [`Materialization::form_view`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormView {
    /// The canonical form of the submission.
    pub canonical: Option<Expr>,
    /// A digest of the classes its smallest forms go through, under held
    /// names: agents whose digests of a term agree extract it from the same
    /// e-graph there.
    pub fingerprint: String,
    /// The classes it was read from: those it covers and the children of
    /// their e-nodes (see [`ReplicaGraph::take_changed`]):
    /// until one of them changes, the view stays what it is.
    pub reads: Vec<Id>,
}

impl ReplicaGraph {
    /// The classes whose e-nodes or data changed since the last call (see
    /// [`CongruenceGraph::take_changed`]); call it after [`Materialization::rebuild`].
    pub fn take_changed(&mut self) -> Vec<Id> {
        self.egraph.take_changed()
    }
}

/// How many e-nodes of one class a region keeps at most (see [`kept_nodes`]).
pub const REGION_NODES_PER_CLASS: usize = 64;

/// The e-nodes of `class` that a region keeps: all of them in a class of at
/// most [`REGION_NODES_PER_CLASS`], otherwise the [`REGION_NODES_PER_CLASS`]
/// smallest, by the tree size of their smallest term, ties broken by operator
/// and then by their children's names (least held terms). The smallest e-nodes
/// are kept, so a region's canonical forms are the whole e-graph's. What is
/// left out are the larger forms that a class gathers without bound when
/// factoring and the AC rules meet many submissions' terms (a class of 1 − v0
/// held 3,000 e-nodes after 90 submissions), which would otherwise draw every
/// class below them into every region that reaches the class. The choice
/// depends only on the e-graph's content, so agents that hold the same facts
/// keep the same e-nodes.
///
/// Appends to `reads` the children of all of the class's e-nodes.
fn kept_nodes<G: ClassGraph>(graph: &G, class: Id, reads: &mut Vec<Id>) -> Vec<Math> {
    let nodes = graph.canonical_nodes(class);
    reads.extend(nodes.iter().flat_map(|n| n.children().iter().copied()));
    if nodes.len() <= REGION_NODES_PER_CLASS {
        return nodes;
    }
    let name = |c: &Id| graph.data(*c).name;
    let mut keyed: Vec<_> = nodes
        .into_iter()
        .map(|n| {
            let children: Vec<Option<TermKey>> = n.children().iter().map(name).collect();
            ((graph.node_size(&n), n.to_string(), children), n)
        })
        .collect();
    keyed.select_nth_unstable_by(REGION_NODES_PER_CLASS - 1, |a, b| a.0.cmp(&b.0));
    keyed.truncate(REGION_NODES_PER_CLASS);
    keyed.into_iter().map(|(_, n)| n).collect()
}

/// The classes below `root` (`root` itself first), breadth first, each with its
/// distance in e-node edges from `root`, at most `depth` (`usize::MAX`: all).
pub(crate) fn classes_below(egraph: &EGraph, root: Id, depth: usize) -> Vec<(Id, usize)> {
    let root = egraph.find(root);
    let mut seen = HashSet::from_iter([root]);
    let mut order = vec![(root, 0)];
    let mut next = 0;
    while let Some(&(class, distance)) = order.get(next) {
        next += 1;
        if distance >= depth {
            continue;
        }
        for node in egraph[class].iter() {
            for &child in node.children() {
                let child = egraph.find(child);
                if seen.insert(child) {
                    order.push((child, distance + 1));
                }
            }
        }
    }
    order
}

/// Adds a parsed expression's terms to `facts` and answers the root's key.
pub fn expr_terms(expr: &Expr, facts: &mut Facts) -> TermKey {
    let mut keys: Vec<TermKey> = Vec::with_capacity(expr.len());
    for node in expr.iter() {
        let term = Term::from_node(node, |id| keys[usize::from(id)]);
        keys.push(term.key());
        facts.terms.push(term);
    }
    *keys.last().expect("expressions are never empty")
}

/// The key of a term held in `state`, rebuilt as an expression.
pub fn term_expr(state: &ReplicaState, root: TermKey) -> Option<Expr> {
    let mut expr = Expr::default();
    let mut added: HashMap<TermKey, Id> = HashMap::new();
    let mut stack = vec![root];
    while let Some(&key) = stack.last() {
        if added.contains_key(&key) {
            stack.pop();
            continue;
        }
        let term = state.term(key)?;
        let pending: Vec<TermKey> = term.args.iter().filter(|a| !added.contains_key(a)).copied().collect();
        if pending.is_empty() {
            let id = expr.add(term.to_node(|k| added[&k]));
            added.insert(key, id);
            stack.pop();
        } else {
            stack.extend(pending);
        }
    }
    Some(expr)
}

/// Exports what rewriting added to `known`'s e-graph as facts: the e-graph,
/// not a history of its names.
///
/// `egraph` is `known.egraph` after rewriting (egg ids stay valid). Each e-class
/// is named by the least key of a term already held in it, so a node whose
/// children were named before keeps its name however the cheapest forms move.
/// The facts are: a term for each e-node no held term stands for (a class that
/// holds no term yet is named by its cheapest node, children first); an equality
/// between each such node and its class's name, unless it is that name; and one
/// equality per pair of held classes that rewriting merged. Re-exporting an
/// unchanged e-graph yields nothing. Each equality's provenance is the rule that
/// derived one of its sides, if the derivation log says; otherwise `congruence`.
pub fn export(egraph: &EGraph, agent: &str, color: Color, known: &Materialized) -> Facts {
    let mut facts = Facts::default();
    let mut name: HashMap<Id, TermKey> = HashMap::new();
    // Held terms, least key first: the first held term of a class names it.
    let mut held: Vec<(TermKey, Id)> = known.ids.iter().map(|(&k, &id)| (k, id)).collect();
    held.sort_unstable();
    let mut present: HashSet<Math> = HashSet::with_capacity(known.egraph.total_size());
    let mut joined: HashSet<(Id, Id)> = HashSet::new();
    let mut derived: HashMap<Math, (String, Color)> = HashMap::new();
    for d in &egraph.analysis.derivations {
        let node = egraph.id_to_node(d.id).clone().map_children(|c| egraph.find(c));
        derived.entry(node).or_insert_with(|| (d.rule.to_string(), d.color));
    }
    let provenance = |nodes: &[&Math]| {
        let (rule, rule_color) = nodes
            .iter()
            .find_map(|n| derived.get(*n))
            .cloned()
            .unwrap_or_else(|| ("congruence".to_string(), color));
        Provenance {
            agent: agent.into(),
            rule: rule.into(),
            color: rule_color,
        }
    };
    let canonical_node = |id: Id| egraph.id_to_node(id).clone().map_children(|c| egraph.find(c));
    for &(key, id) in &held {
        let class = egraph.find(id);
        let node = canonical_node(id);
        let class_name = *name.entry(class).or_insert(key);
        // Held classes that rewriting merged: one equality joins each to the name.
        let named_id = known.ids[&class_name];
        let (before, named_before) = (known.egraph.find(id), known.egraph.find(named_id));
        if before != named_before && joined.insert((before, named_before)) {
            let why = provenance(&[&node, &canonical_node(named_id)]);
            facts.equalities.extend(Equality::new(key, class_name, why));
        }
    }
    // Every e-node the e-graph had before rewriting stands for held terms (or
    // is a folded constant that every replica folds again).
    for class in known.egraph.classes() {
        present.extend(class.iter().map(|n| n.clone().map_children(|c| egraph.find(c))));
    }
    // Classes that hold no term yet, named by their cheapest node, children first.
    let extractor = CanonicalExtractor::new(egraph);
    let mut fresh: Vec<(u64, Id)> = egraph
        .classes()
        .filter(|c| !name.contains_key(&c.id))
        .filter_map(|c| Some((extractor.cost(egraph, c.id)?, c.id)))
        .collect();
    fresh.sort_unstable();
    for (_, class) in fresh {
        let node = extractor.node(egraph, class).expect("costed classes have a node");
        let node = node.clone().map_children(|c| egraph.find(c));
        let term = Term::from_node(&node, |c| name[&c]);
        name.insert(class, term.key());
        present.insert(node);
        facts.terms.push(term);
    }
    let mut classes: Vec<(TermKey, Id)> = egraph
        .classes()
        .filter_map(|c| Some((*name.get(&c.id)?, c.id)))
        .collect();
    classes.sort_unstable();
    for (class_name, class) in classes {
        for node in egraph[class].iter() {
            if present.contains(node) || !node.children().iter().all(|c| name.contains_key(&egraph.find(*c))) {
                continue;
            }
            let term = Term::from_node(node, |c| name[&egraph.find(c)]);
            let why = provenance(&[node]);
            facts.equalities.extend(Equality::new(term.key(), class_name, why));
            facts.terms.push(term);
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_expr;
    use crate::replica::{Facts, Provenance};

    /// A class gathering far more e-nodes than a region keeps, all of one
    /// size: `x = (+ i (- x i))` for 300 constants i.
    fn crowded() -> (ReplicaState, TermKey) {
        let mut facts = Facts::default();
        let root = expr_terms(&parse_expr("(* x y)").unwrap(), &mut facts);
        facts.roots.push(root);
        let x = expr_terms(&parse_expr("x").unwrap(), &mut facts);
        for i in 1..=300 {
            let form = expr_terms(&parse_expr(&format!("(+ {i} (- x {i}))")).unwrap(), &mut facts);
            let why = Provenance {
                agent: "a".into(),
                rule: "test".into(),
                color: Color::Red,
            };
            facts.equalities.extend(Equality::new(x, form, why));
        }
        let mut state = ReplicaState::new();
        state.record("a", facts).unwrap();
        (state, root)
    }

    #[test]
    fn an_e_graph_made_again_from_its_classes_is_the_same_e_graph() {
        let (state, root) = crowded();
        let whole = Materialized::new(&state);
        let classes = whole.classes();
        assert!(
            classes.iter().any(|class| class.len() > 300),
            "the crowded class is one class"
        );
        let again = Materialized::from_classes(&state, &classes, true);
        assert_eq!(again.classes(), classes);
        let view = |m: &Materialized| m.form_view(root).map(|v| (v.canonical, v.fingerprint));
        assert_eq!(view(&again), view(&whole));
    }

    #[test]
    fn a_region_keeps_a_crowded_class_s_smallest_e_nodes_and_the_whole_graph_s_forms() {
        let (state, root) = crowded();
        let whole = Materialized::new(&state);
        let x = expr_terms(&parse_expr("x").unwrap(), &mut Facts::default());
        assert_eq!(whole.egraph[whole.class_of(x).unwrap()].len(), 301);
        let region = whole.region_within(root, 3).unwrap();
        // The root, x cut to 64 e-nodes, y, and below x's kept e-nodes their
        // constants and differences: about 200 (900 with every e-node of x).
        assert!(
            region.egraph.total_size() < 256,
            "{} e-nodes",
            region.egraph.total_size()
        );
        let form = |m: &Materialized| {
            let extractor = CanonicalExtractor::new(&m.egraph);
            extractor
                .expr(&m.egraph, m.class_of(root).unwrap())
                .unwrap()
                .to_string()
        };
        assert_eq!(form(&region), form(&whole));
        assert_eq!(form(&region), "(* x y)");
        // An agent that learnt the same facts in another order (so egg gave
        // them other ids) keeps the same e-nodes: the same fingerprint.
        let mut again = Materialized::empty(true);
        for eq in state.equalities().collect::<Vec<_>>().into_iter().rev() {
            let mut facts = Facts::default();
            facts.equalities.push(eq.clone());
            facts
                .terms
                .extend([eq.lhs, eq.rhs].map(|k| state.term(k).cloned().unwrap()));
            let delta = ReplicaState::new().record("b", facts).unwrap();
            again.absorb(&state, &delta);
        }
        again.absorb(&state, &state);
        assert_eq!(
            again.region_within(root, 3).unwrap().fingerprint(),
            region.fingerprint()
        );
    }
}
