//! Deterministic extraction: the canonical form of every e-class.
//!
//! egg's `Extractor` breaks cost ties by e-node order, which depends on the order
//! facts arrived in. Replicas holding the same facts must name the same term, so
//! this extractor breaks ties by structural order instead: cost first, then the
//! operator, then the children's canonical forms, compared the same way.
//!
//! Cost is the tree size of the term (every node costs 1), so an optimal node's
//! children always cost strictly less than it. Classes are therefore settled in
//! increasing cost, and each settled class gets a rank that orders it among all
//! settled classes; comparing two candidates then only compares child ranks.

use crate::analysis::EGraph;
use crate::lang::{Expr, Math};
use egg::{Id, Language};
use std::cmp::Ordering;
use std::collections::HashMap;

/// The cost of a term: its tree size.
pub type Cost = u64;

/// The canonical choice for every e-class of a graph.
#[derive(Debug, Clone)]
pub struct CanonicalExtractor {
    /// Indexed by canonical class id.
    best: Vec<Option<Choice>>,
}

#[derive(Debug, Clone)]
struct Choice {
    cost: Cost,
    rank: usize,
    node: Math,
}

/// Orders operators: numbers, then symbols, then operators by name
/// (`*` `+` `-` `/` `neg` `pow`, byte order).
fn compare_ops(a: &Math, b: &Math) -> Ordering {
    fn position(n: &Math) -> u8 {
        match n {
            Math::Num(_) => 0,
            Math::Symbol(_) => 1,
            Math::Mul(_) => 2,
            Math::Add(_) => 3,
            Math::Sub(_) => 4,
            Math::Div(_) => 5,
            Math::Neg(_) => 6,
            Math::Pow(_) => 7,
        }
    }
    position(a).cmp(&position(b)).then_with(|| match (a, b) {
        (Math::Num(x), Math::Num(y)) => x.cmp(y),
        (Math::Symbol(x), Math::Symbol(y)) => x.as_str().cmp(y.as_str()),
        _ => Ordering::Equal,
    })
}

/// A dense map from class id to value.
type ByClass<T> = Vec<Option<T>>;

fn slot<T>(map: &ByClass<T>, id: Id) -> Option<&T> {
    map.get(usize::from(id)).and_then(Option::as_ref)
}

impl CanonicalExtractor {
    /// Computes the canonical choice of every class of a clean (rebuilt) graph.
    pub fn new(egraph: &EGraph) -> Self {
        let classes: Vec<(Id, &[Math])> = egraph.classes().map(|c| (c.id, c.nodes.as_slice())).collect();
        Self::over(&classes)
    }

    /// Computes the canonical choice of every class of a part of an e-graph:
    /// classes by canonical id, each with e-nodes whose children are canonical;
    /// an e-node with a child outside the part is never chosen.
    pub fn over(classes: &[(Id, &[Math])]) -> Self {
        let costs = Self::min_costs(classes);
        let mut by_cost: Vec<(Cost, Id)> = classes
            .iter()
            .filter_map(|&(class, _)| Some((*slot(&costs, class)?, class)))
            .collect();
        by_cost.sort_unstable_by_key(|&(c, _)| c);
        let mut nodes: ByClass<&[Math]> = vec![None; costs.len()];
        for &(class, class_nodes) in classes {
            nodes[usize::from(class)] = Some(class_nodes);
        }

        let mut best: ByClass<Choice> = vec![None; costs.len()];
        let mut rank = 0;
        for level in by_cost.chunk_by(|a, b| a.0 == b.0) {
            let cost = level[0].0;
            let mut chosen: Vec<(Id, Math)> = level
                .iter()
                .map(|&(_, class)| {
                    let node = slot(&nodes, class)
                        .expect("every costed class was given")
                        .iter()
                        .filter(|n| Self::node_cost(&costs, n) == Some(cost))
                        .min_by(|a, b| Self::compare_nodes(&best, a, b))
                        .expect("a class of finite cost has a node of that cost")
                        .clone();
                    (class, node)
                })
                .collect();
            chosen.sort_by(|a, b| Self::compare_nodes(&best, &a.1, &b.1));
            for (class, node) in chosen {
                best[usize::from(class)] = Some(Choice { cost, rank, node });
                rank += 1;
            }
        }
        CanonicalExtractor { best }
    }

    fn node_cost(costs: &ByClass<Cost>, node: &Math) -> Option<Cost> {
        node.children()
            .iter()
            .try_fold(1 as Cost, |sum, &c| Some(sum.saturating_add(*slot(costs, c)?)))
    }

    fn min_costs(classes: &[(Id, &[Math])]) -> ByClass<Cost> {
        let size = classes.iter().map(|&(c, _)| usize::from(c) + 1).max().unwrap_or(0);
        let mut costs: ByClass<Cost> = vec![None; size];
        let mut changed = true;
        while changed {
            changed = false;
            for &(class, nodes) in classes {
                let found = nodes.iter().filter_map(|n| Self::node_cost(&costs, n)).min();
                if let Some(cost) = found
                    && slot(&costs, class).is_none_or(|&old| cost < old)
                {
                    costs[usize::from(class)] = Some(cost);
                    changed = true;
                }
            }
        }
        costs
    }

    fn compare_nodes(best: &ByClass<Choice>, a: &Math, b: &Math) -> Ordering {
        let rank = |&id: &Id| slot(best, id).map_or(usize::MAX, |c| c.rank);
        compare_ops(a, b).then_with(|| a.children().iter().map(rank).cmp(b.children().iter().map(rank)))
    }

    /// The canonical node of a class, if the class has a finite term.
    pub fn node(&self, egraph: &EGraph, class: Id) -> Option<&Math> {
        slot(&self.best, egraph.find(class)).map(|c| &c.node)
    }

    /// The cost of a class's canonical term.
    pub fn cost(&self, egraph: &EGraph, class: Id) -> Option<Cost> {
        slot(&self.best, egraph.find(class)).map(|c| c.cost)
    }

    /// The canonical term of a class, sharing repeated subterms.
    pub fn expr(&self, egraph: &EGraph, class: Id) -> Option<Expr> {
        self.expr_with(|id| egraph.find(id), class)
    }

    /// [`CanonicalExtractor::expr`] in an e-graph whose canonical ids `find` gives.
    pub fn expr_with(&self, find: impl Fn(Id) -> Id, class: Id) -> Option<Expr> {
        let mut expr = Expr::default();
        let mut added: HashMap<Id, Id> = HashMap::new();
        let mut stack = vec![find(class)];
        while let Some(&class) = stack.last() {
            if added.contains_key(&class) {
                stack.pop();
                continue;
            }
            let node = &slot(&self.best, class)?.node;
            let pending: Vec<Id> = node
                .children()
                .iter()
                .map(|&c| find(c))
                .filter(|c| !added.contains_key(c))
                .collect();
            if pending.is_empty() {
                let id = expr.add(node.clone().map_children(|c| added[&find(c)]));
                added.insert(class, id);
                stack.pop();
            } else {
                stack.extend(pending);
            }
        }
        Some(expr)
    }
}
