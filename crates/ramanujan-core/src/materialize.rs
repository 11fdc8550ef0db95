//! Between replicated facts and a live e-graph: materialising a state as an
//! e-graph (set union is followed by this rebuild), and exporting what rewriting
//! added to an e-graph as new facts.

use crate::analysis::{ColoredAnalysis, EGraph};
use crate::color::Color;
use crate::extract::CanonicalExtractor;
use crate::lang::{Expr, Math};
use crate::replica::{Equality, Facts, Provenance, ReplicaState};
use crate::term::{Term, TermKey};
use egg::{Id, Language};
use std::collections::{HashMap, HashSet};

/// A replica state materialised as an egg e-graph, with each term's e-class.
pub struct Materialized {
    /// The e-graph: every term added, every equality unioned, rebuilt.
    pub egraph: EGraph,
    /// The (uncanonical) id of each term.
    pub ids: HashMap<TermKey, Id>,
}

impl Materialized {
    /// Builds the e-graph of a state: every term whose descendants are all held
    /// (pending ones are left out), every equality between such terms, with
    /// constants folded, rebuilt.
    pub fn new(state: &ReplicaState) -> Self {
        Self::build(state, true)
    }

    /// [`Materialized::new`], folding constants or not.
    pub fn build(state: &ReplicaState, fold_constants: bool) -> Self {
        let mut m = Materialized {
            egraph: EGraph::new(ColoredAnalysis::new(fold_constants)),
            ids: HashMap::new(),
        };
        for (key, _) in state.terms() {
            m.add_term(state, key);
        }
        for eq in state.equalities() {
            if let (Some(&a), Some(&b)) = (m.ids.get(&eq.lhs), m.ids.get(&eq.rhs)) {
                m.egraph.union(a, b);
                m.egraph[a].data.colors.insert(eq.provenance.color);
            }
        }
        m.egraph.rebuild();
        m
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
            let pending: Vec<TermKey> = term
                .args
                .iter()
                .filter(|a| !self.ids.contains_key(a))
                .copied()
                .collect();
            if pending.is_empty() {
                let id = self.egraph.add(term.to_node(|k| self.ids[&k]));
                self.ids.insert(key, id);
                stack.pop();
            } else {
                stack.extend(pending);
            }
        }
        self.ids.get(&root).copied()
    }

    /// The e-class of a term, if held.
    pub fn class_of(&self, key: TermKey) -> Option<Id> {
        self.ids.get(&key).map(|&id| self.egraph.find(id))
    }

    /// Whether two held terms are known equal.
    pub fn equivalent(&self, a: TermKey, b: TermKey) -> bool {
        matches!((self.class_of(a), self.class_of(b)), (Some(x), Some(y)) if x == y)
    }
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
    let mut present: HashSet<Math> = HashSet::with_capacity(held.len());
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
            agent: agent.to_string(),
            rule,
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
        present.insert(node);
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
