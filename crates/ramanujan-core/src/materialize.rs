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
use std::collections::HashMap;

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

/// Exports a rewritten e-graph as facts.
///
/// Every e-class is named by the term of its canonical node; every other node of
/// the class becomes a term (children named canonically) and an equality with
/// that name. Equalities between terms that `known` already holds equal are left
/// out, so a delta carries only new knowledge. Each equality's provenance is the
/// rule that derived one of its sides, if the derivation log says; otherwise
/// `congruence`.
pub fn export(egraph: &EGraph, agent: &str, color: Color, known: Option<&Materialized>) -> Facts {
    let extractor = CanonicalExtractor::new(egraph);
    let mut rep: HashMap<Id, TermKey> = HashMap::with_capacity(egraph.number_of_classes());
    let mut facts = Facts::default();
    // Name classes in increasing cost so children are named before parents.
    let mut classes: Vec<(u64, Id)> = egraph
        .classes()
        .filter_map(|c| Some((extractor.cost(egraph, c.id)?, c.id)))
        .collect();
    classes.sort_unstable();
    for &(_, class) in &classes {
        let node = extractor.node(egraph, class).expect("costed classes have a node");
        let term = Term::from_node(node, |c| rep[&egraph.find(c)]);
        rep.insert(class, term.key());
        facts.terms.push(term);
    }
    let name = |node: &Math| -> Option<Term> {
        let named = node.children().iter().all(|c| rep.contains_key(&egraph.find(*c)));
        named.then(|| Term::from_node(node, |c| rep[&egraph.find(c)]))
    };
    let mut derived: HashMap<TermKey, (String, Color)> = HashMap::new();
    for d in &egraph.analysis.derivations {
        if let Some(term) = name(&egraph.id_to_node(d.id).clone().map_children(|c| egraph.find(c))) {
            derived
                .entry(term.key())
                .or_insert_with(|| (d.rule.to_string(), d.color));
        }
    }
    for &(_, class) in &classes {
        let rep_key = rep[&class];
        for node in egraph[class].iter() {
            let Some(term) = name(node) else { continue };
            let key = term.key();
            if key == rep_key || known.is_some_and(|k| k.equivalent(key, rep_key)) {
                continue;
            }
            let (rule, rule_color) = derived
                .get(&key)
                .or_else(|| derived.get(&rep_key))
                .cloned()
                .unwrap_or_else(|| ("congruence".to_string(), color));
            let provenance = Provenance {
                agent: agent.to_string(),
                rule,
                color: rule_color,
            };
            facts.terms.push(term);
            facts.equalities.extend(Equality::new(key, rep_key, provenance));
        }
    }
    facts
}
