//! An e-graph for reading a whole replica: congruence closure and the class
//! analysis, with a rebuild that costs what changed since the last one.
//!
//! egg's `EGraph::rebuild` ends by sorting and deduplicating the e-nodes of
//! every class (and re-indexing them by operator, for e-matching), so each
//! rebuild walks the whole e-graph. An agent's replica e-graph takes news many
//! times a second and is read as often; nothing e-matches on it (rewriting
//! happens in small e-graphs of one submission each), so walking it all per
//! rebuild made reading a submission's status cost the whole replica.
//! [`CongruenceGraph`] repairs only the classes whose members changed, as
//! egg's own upward merging does, and leaves a class's e-nodes as they came:
//! readers canonicalise and deduplicate the e-nodes of the classes they read
//! (see [`ClassGraph::canonical_nodes`]).
//!
//! [`ClassGraph`] is what [`crate::materialize::Materialization`] needs of an
//! e-graph; egg's `EGraph` (for rewriting and extraction) and
//! [`CongruenceGraph`] (for reading a replica) both have it.

use crate::analysis::{ClassData, ColoredAnalysis, EGraph, make_class_data};
use crate::lang::Math;
use egg::{Analysis, Id, Language};
use foldhash::{HashMap, HashMapExt};

/// What a materialised replica needs of an e-graph: adding e-nodes, unions,
/// rebuilding, and reading classes with their analysis data.
pub trait ClassGraph: Clone {
    /// About how many bytes of heap one e-node added costs (its place among
    /// the e-nodes, the hash-cons, its class and the class's analysis data):
    /// what [`crate::materialize::Materialization::approx_heap_bytes`] counts per term.
    const TERM_BYTES: usize;
    /// An empty e-graph, folding constants or not.
    fn with_folding(fold_constants: bool) -> Self;
    /// Whether it folds constants.
    fn folds_constants(&self) -> bool;
    /// Adds an e-node (children are any ids of their classes); answers its class.
    fn add(&mut self, node: Math) -> Id;
    /// Unions two classes; congruences and analysis follow at the next rebuild.
    fn union(&mut self, a: Id, b: Id);
    /// The canonical id of a class.
    fn find(&self, id: Id) -> Id;
    /// Restores congruence and the analysis, if anything changed since the last rebuild.
    fn rebuild(&mut self);
    /// The e-nodes of a class, as stored (children may be uncanonical and
    /// e-nodes repeated before a rebuild, and in a [`CongruenceGraph`] after it).
    fn nodes(&self, class: Id) -> &[Math];
    /// The analysis data of a class.
    fn data(&self, class: Id) -> &ClassData;
    /// The analysis data of a class, to note held terms and colours.
    fn data_mut(&mut self, class: Id) -> &mut ClassData;
    /// How many classes there are.
    fn class_count(&self) -> usize;
    /// The canonical ids of every class.
    fn class_ids(&self) -> Vec<Id>;

    /// The tree size of the smallest term through `node`: one plus its
    /// children's smallest sizes.
    fn node_size(&self, node: &Math) -> u64 {
        node.children()
            .iter()
            .fold(1, |size: u64, &c| size.saturating_add(self.data(c).size))
    }

    /// The e-nodes of a class with canonical children, sorted, each once.
    fn canonical_nodes(&self, class: Id) -> Vec<Math> {
        let mut nodes: Vec<Math> = self
            .nodes(class)
            .iter()
            .map(|n| n.clone().map_children(|c| self.find(c)))
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }
}

impl ClassGraph for EGraph {
    const TERM_BYTES: usize = 400;
    fn with_folding(fold_constants: bool) -> Self {
        EGraph::new(ColoredAnalysis::new(fold_constants))
    }

    fn folds_constants(&self) -> bool {
        self.analysis.fold_constants
    }

    fn add(&mut self, node: Math) -> Id {
        EGraph::add(self, node)
    }

    fn union(&mut self, a: Id, b: Id) {
        EGraph::union(self, a, b);
    }

    fn find(&self, id: Id) -> Id {
        EGraph::find(self, id)
    }

    fn rebuild(&mut self) {
        if !self.clean {
            EGraph::rebuild(self);
        }
    }

    fn nodes(&self, class: Id) -> &[Math] {
        &self[class].nodes
    }

    fn data(&self, class: Id) -> &ClassData {
        &self[class].data
    }

    fn data_mut(&mut self, class: Id) -> &mut ClassData {
        &mut self[class].data
    }

    fn class_count(&self) -> usize {
        self.number_of_classes()
    }

    fn class_ids(&self) -> Vec<Id> {
        self.classes().map(|c| c.id).collect()
    }
}

/// One class: its e-nodes (as added or merged in, children canonical when
/// added), the e-nodes that have it as a child (by e-node id), its data.
#[derive(Clone, Debug)]
struct Class {
    nodes: Vec<Math>,
    parents: Vec<Id>,
    data: ClassData,
}

/// An e-graph with congruence closure and the [`ColoredAnalysis`] (constant
/// folding with pruning, sizes, colours, held terms) whose rebuild costs the
/// classes that changed, not the whole e-graph. See the module docs.
///
/// Each e-node added gets an id (its first class); `added[id]` is the e-node
/// with the children it had then. Unions merge the class with fewer parents
/// into the other; the merged-away class's parents are re-canonicalised at
/// the next rebuild, and congruent ones unioned (egg's upward merging).
#[derive(Clone, Debug)]
pub struct CongruenceGraph {
    analysis: ColoredAnalysis,
    leader: Vec<Id>,
    added: Vec<Math>,
    classes: Vec<Option<Class>>,
    memo: HashMap<Math, Id>,
    pending: Vec<Id>,
    analysis_pending: Vec<Id>,
    class_count: usize,
    /// Classes whose e-nodes or data changed (or that were merged away)
    /// since [`CongruenceGraph::take_changed`] was last called.
    changed: Vec<Id>,
}

impl CongruenceGraph {
    /// The classes whose e-nodes or analysis data changed since the last
    /// call, by the ids they had then (a class merged into another is named
    /// too): what a reader that cached something read from a class must
    /// drop. A class made since has no reader yet and is not named.
    pub fn take_changed(&mut self) -> Vec<Id> {
        std::mem::take(&mut self.changed)
    }

    fn find_mut(&mut self, id: Id) -> Id {
        let mut root = id;
        while self.leader[usize::from(root)] != root {
            root = self.leader[usize::from(root)];
        }
        let mut at = id;
        while at != root {
            let next = self.leader[usize::from(at)];
            self.leader[usize::from(at)] = root;
            at = next;
        }
        root
    }

    fn class(&self, id: Id) -> &Class {
        self.classes[usize::from(self.find(id))]
            .as_ref()
            .expect("a canonical id names a class")
    }

    fn class_mut(&mut self, id: Id) -> &mut Class {
        let id = self.find_mut(id);
        self.classes[usize::from(id)]
            .as_mut()
            .expect("a canonical id names a class")
    }

    /// The analysis data an e-node with canonical children makes.
    fn make(&self, node: &Math) -> ClassData {
        make_class_data(self, node)
    }

    /// A class with a value gets it as an e-node and keeps only its leaves
    /// (what [`ColoredAnalysis`]'s `modify` does in egg).
    fn modify(&mut self, id: Id) {
        let Some(value) = self.class(id).data.constant.clone() else {
            return;
        };
        let constant = self.add(Math::Num(value));
        self.perform_union(id, constant);
        let id = self.find_mut(id);
        let nodes = &mut self.class_mut(id).nodes;
        let before = nodes.len();
        nodes.retain(|n| n.is_leaf());
        if nodes.len() != before {
            self.changed.push(id);
        }
    }

    fn perform_union(&mut self, a: Id, b: Id) -> bool {
        let (mut a, mut b) = (self.find_mut(a), self.find_mut(b));
        if a == b {
            return false;
        }
        if self.class(a).parents.len() < self.class(b).parents.len() {
            std::mem::swap(&mut a, &mut b);
        }
        self.leader[usize::from(b)] = a;
        self.class_count -= 1;
        self.changed.extend([a, b]);
        let gone = self.classes[usize::from(b)]
            .take()
            .expect("a canonical id names a class");
        self.pending.extend(gone.parents.iter().copied());
        let kept = self.classes[usize::from(a)]
            .as_mut()
            .expect("a canonical id names a class");
        let merged = self.analysis.merge(&mut kept.data, gone.data);
        if merged.0 {
            self.analysis_pending.extend(kept.parents.iter().copied());
        }
        if merged.1 {
            self.analysis_pending.extend(gone.parents.iter().copied());
        }
        kept.nodes.extend(gone.nodes);
        kept.parents.extend(gone.parents);
        self.modify(a);
        true
    }

    /// The e-node added as `id`, with its children's classes now.
    fn canonical_added(&mut self, id: Id) -> Math {
        let mut node = self.added[usize::from(id)].clone();
        node.update_children(|c| self.find_mut(c));
        node
    }
}

impl ClassGraph for CongruenceGraph {
    const TERM_BYTES: usize = 250;
    fn with_folding(fold_constants: bool) -> Self {
        CongruenceGraph {
            analysis: ColoredAnalysis::new(fold_constants),
            leader: Vec::new(),
            added: Vec::new(),
            classes: Vec::new(),
            memo: HashMap::new(),
            pending: Vec::new(),
            analysis_pending: Vec::new(),
            class_count: 0,
            changed: Vec::new(),
        }
    }

    fn folds_constants(&self) -> bool {
        self.analysis.fold_constants
    }

    fn add(&mut self, mut node: Math) -> Id {
        node.update_children(|c| self.find_mut(c));
        if let Some(&existing) = self.memo.get(&node) {
            return self.find_mut(existing);
        }
        let id = Id::from(self.added.len());
        let data = self.make(&node);
        for &child in node.children() {
            self.class_mut(child).parents.push(id);
        }
        self.leader.push(id);
        self.added.push(node.clone());
        self.classes.push(Some(Class {
            nodes: vec![node.clone()],
            parents: Vec::new(),
            data,
        }));
        self.memo.insert(node, id);
        self.class_count += 1;
        self.modify(id);
        self.find_mut(id)
    }

    fn union(&mut self, a: Id, b: Id) {
        self.perform_union(a, b);
    }

    fn find(&self, id: Id) -> Id {
        let mut root = id;
        while self.leader[usize::from(root)] != root {
            root = self.leader[usize::from(root)];
        }
        root
    }

    /// Egg's upward merging and analysis propagation, over the e-nodes whose
    /// children changed class since the last rebuild. Unlike egg, an e-node's
    /// data is made again from its children's classes now (egg uses the
    /// children it was added with), so `(- a b)` folds to 0 once `a` and `b`
    /// are one class, whichever was learnt first.
    fn rebuild(&mut self) {
        while !self.pending.is_empty() || !self.analysis_pending.is_empty() {
            while let Some(id) = self.pending.pop() {
                let node = self.canonical_added(id);
                if let Some(congruent) = self.memo.insert(node, id) {
                    self.perform_union(congruent, id);
                }
                // Its children changed class: its data may change too, even
                // when theirs did not (`(- a b)` once `a` is `b`).
                self.analysis_pending.push(id);
            }
            while let Some(id) = self.analysis_pending.pop() {
                let node = self.canonical_added(id);
                let data = self.make(&node);
                let class = self.find_mut(id);
                let kept = self.classes[usize::from(class)]
                    .as_mut()
                    .expect("a canonical id names a class");
                if self.analysis.merge(&mut kept.data, data).0 {
                    self.changed.push(class);
                    self.analysis_pending.extend(kept.parents.iter().copied());
                    self.modify(class);
                }
            }
        }
    }

    fn nodes(&self, class: Id) -> &[Math] {
        &self.class(class).nodes
    }

    fn data(&self, class: Id) -> &ClassData {
        &self.class(class).data
    }

    fn data_mut(&mut self, class: Id) -> &mut ClassData {
        let class = self.find_mut(class);
        self.changed.push(class);
        &mut self.class_mut(class).data
    }

    fn class_count(&self) -> usize {
        self.class_count
    }

    fn class_ids(&self) -> Vec<Id> {
        (0..self.classes.len())
            .filter(|&i| self.classes[i].is_some())
            .map(Id::from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::color::Color;
    use crate::materialize::{Materialized, ReplicaGraph, expr_terms};
    use crate::parse::parse_expr;
    use crate::replica::{Equality, Facts, Provenance, ReplicaState};
    use crate::term::TermKey;
    use proptest::prelude::*;

    fn term() -> impl Strategy<Value = String> {
        let leaf = prop::sample::select(vec!["a", "b", "c", "0", "1", "2"]).prop_map(str::to_string);
        leaf.prop_recursive(3, 16, 2, |inner| {
            (prop::sample::select(vec!["+", "*"]), inner.clone(), inner)
                .prop_map(|(op, l, r)| format!("({op} {l} {r})"))
        })
    }

    /// Facts of terms and (arbitrary, not necessarily true) equalities
    /// between them, recorded as one event per term or equality.
    fn events(terms: &[String], pairs: &[(usize, usize)]) -> (Vec<ReplicaState>, Vec<TermKey>) {
        let mut state = ReplicaState::new();
        let mut events = Vec::new();
        let mut keys = Vec::new();
        for text in terms {
            let mut facts = Facts::default();
            let key = expr_terms(&parse_expr(text).unwrap(), &mut facts);
            facts.roots.push(key);
            keys.push(key);
            events.push(state.record("a", facts).unwrap());
        }
        for &(l, r) in pairs {
            let why = Provenance {
                agent: "a".into(),
                rule: "test".into(),
                color: Color::Red,
            };
            let mut facts = Facts::default();
            facts
                .equalities
                .extend(Equality::new(keys[l % keys.len()], keys[r % keys.len()], why));
            events.push(state.record("a", facts).unwrap());
        }
        (events, keys)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Taken in event by event, in any order, and rebuilt after each,
        /// a replica graph holds the regions egg's e-graph of the whole
        /// state holds: the same classes (congruences found by upward
        /// merging), the same folded constants, the same pruned classes.
        #[test]
        fn a_replica_graph_holds_the_regions_egg_does(
            terms in prop::collection::vec(term(), 1..12),
            pairs in prop::collection::vec((0usize..12, 0usize..12), 0..8),
            order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
        ) {
            let (mut events, keys) = events(&terms, &pairs);
            let mut whole = ReplicaState::new();
            for e in &events {
                whole.merge(e);
            }
            let egg = Materialized::new(&whole);
            // Two values in one class: which one it keeps depends on the
            // order of unions (in egg too); GREEN refutes such equalities.
            prop_assume!(egg.egraph.analysis.constant_conflicts.is_empty());
            // A deterministic shuffle from `order`.
            let n = events.len();
            for i in (1..n).rev() {
                events.swap(i, (order as usize ^ i.wrapping_mul(2654435761)) % (i + 1));
            }
            let mut state = ReplicaState::new();
            let mut graph = ReplicaGraph::empty(true);
            // Views kept while no class they read changed stay what a
            // fresh read gives: `take_changed` names every change.
            let mut kept: std::collections::HashMap<TermKey, crate::materialize::FormView> = Default::default();
            for e in &events {
                let mut news = ReplicaState::new();
                state.merge_noting(e, Some(&mut news));
                graph.absorb_deferred(&state, &news);
                graph.rebuild();
                let changed = graph.take_changed();
                kept.retain(|_, view| !view.reads.iter().any(|c| changed.contains(c)));
                for &key in &keys {
                    let fresh = graph.form_view(key);
                    if let Some(view) = kept.get(&key) {
                        prop_assert_eq!(Some(view), fresh.as_ref());
                    } else if let Some(fresh) = fresh {
                        kept.insert(key, fresh);
                    }
                }
            }
            for &key in &keys {
                prop_assert_eq!(
                    graph.region(key).map(|r| r.fingerprint()),
                    egg.region(key).map(|r| r.fingerprint())
                );
                for &other in &keys {
                    prop_assert_eq!(graph.equivalent(key, other), egg.equivalent(key, other));
                }
            }
        }
    }

    /// `(- a b)` is 0 once `a` and `b` are one class, even when that was
    /// learnt after the difference was added (egg's rebuild makes the
    /// analysis again from the e-node as it was added, and misses it).
    #[test]
    fn a_difference_of_one_class_folds_to_zero_whenever_the_union_came() {
        let (events, keys) = events(&["(- a b)".into(), "a".into(), "b".into(), "0".into()], &[(1, 2)]);
        let mut state = ReplicaState::new();
        let mut graph = ReplicaGraph::empty(true);
        for e in &events {
            let mut news = ReplicaState::new();
            state.merge_noting(e, Some(&mut news));
            graph.absorb_deferred(&state, &news);
            graph.rebuild();
        }
        assert!(graph.equivalent(keys[0], keys[3]));
    }
}
