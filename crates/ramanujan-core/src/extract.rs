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
use foldhash::{HashMap, HashMapExt};
use std::cmp::Ordering;

/// The cost of a term: its tree size.
pub type Cost = u64;

/// The canonical choice for every e-class of a graph.
#[derive(Debug, Clone)]
pub struct CanonicalExtractor {
    /// Where each class's choice is in `best`.
    index: ClassIndex,
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

/// Where the classes of a part of an e-graph sit in dense vectors: at their
/// id when the part is most of the graph's ids (the whole graph), at a
/// position of their own otherwise, so that a small part of a big graph costs
/// its own size, not the graph's.
#[derive(Debug, Clone)]
enum ClassIndex {
    ById(usize),
    Positions(HashMap<Id, usize>),
}

impl ClassIndex {
    fn of_part(classes: &[(Id, &[Math])]) -> Self {
        let ids = classes.iter().map(|&(c, _)| usize::from(c) + 1).max().unwrap_or(0);
        if ids <= 4 * classes.len() {
            ClassIndex::ById(ids)
        } else {
            ClassIndex::Positions(classes.iter().enumerate().map(|(i, &(c, _))| (c, i)).collect())
        }
    }

    /// How long a dense vector over the part is.
    fn len(&self) -> usize {
        match self {
            ClassIndex::ById(ids) => *ids,
            ClassIndex::Positions(positions) => positions.len(),
        }
    }

    fn position(&self, id: Id) -> Option<usize> {
        match self {
            ClassIndex::ById(ids) => Some(usize::from(id)).filter(|i| i < ids),
            ClassIndex::Positions(positions) => positions.get(&id).copied(),
        }
    }

    /// A dense vector over the part, every class without a value.
    fn empty<T: Clone>(&self) -> Vec<Option<T>> {
        vec![None; self.len()]
    }

    fn get<'a, T>(&self, values: &'a [Option<T>], id: Id) -> Option<&'a T> {
        values.get(self.position(id)?)?.as_ref()
    }

    fn set<T>(&self, values: &mut [Option<T>], id: Id, value: T) {
        if let Some(i) = self.position(id) {
            values[i] = Some(value);
        }
    }
}

impl CanonicalExtractor {
    /// Computes the canonical choice of every class of a clean (rebuilt) graph.
    ///
    /// The analysis keeps every class's smallest tree size, so the costs are
    /// read from it rather than computed again.
    pub fn new(egraph: &EGraph) -> Self {
        let classes: Vec<(Id, &[Math])> = egraph.classes().map(|c| (c.id, c.nodes.as_slice())).collect();
        let index = ClassIndex::of_part(&classes);
        let mut costs: Vec<Option<Cost>> = index.empty();
        for class in egraph.classes() {
            index.set(&mut costs, class.id, class.data.size);
        }
        debug_assert_eq!(
            costs,
            Self::min_costs(&index, &classes),
            "the analysis's sizes are the least costs"
        );
        Self::choose(index, costs, &classes)
    }

    /// Computes the canonical choice of every class of a part of an e-graph:
    /// classes by canonical id, each with e-nodes whose children are canonical;
    /// an e-node with a child outside the part is never chosen.
    pub fn over(classes: &[(Id, &[Math])]) -> Self {
        let index = ClassIndex::of_part(classes);
        let costs = Self::min_costs(&index, classes);
        Self::choose(index, costs, classes)
    }

    /// Settles the classes in increasing cost, given each class's least cost.
    fn choose(index: ClassIndex, costs: Vec<Option<Cost>>, classes: &[(Id, &[Math])]) -> Self {
        let mut by_cost: Vec<(Cost, Id)> = classes
            .iter()
            .filter_map(|&(class, _)| Some((*index.get(&costs, class)?, class)))
            .collect();
        by_cost.sort_unstable_by_key(|&(c, _)| c);
        let mut nodes: Vec<Option<&[Math]>> = index.empty();
        for &(class, class_nodes) in classes {
            index.set(&mut nodes, class, class_nodes);
        }

        let mut best: Vec<Option<Choice>> = index.empty();
        let mut rank = 0;
        for level in by_cost.chunk_by(|a, b| a.0 == b.0) {
            let cost = level[0].0;
            let mut chosen: Vec<(Id, Math)> = level
                .iter()
                .map(|&(_, class)| {
                    let node = index
                        .get(&nodes, class)
                        .expect("every costed class was given")
                        .iter()
                        .filter(|n| Self::node_cost(&index, &costs, n) == Some(cost))
                        .min_by(|a, b| Self::compare_nodes(&index, &best, a, b))
                        .expect("a class of finite cost has a node of that cost")
                        .clone();
                    (class, node)
                })
                .collect();
            chosen.sort_by(|a, b| Self::compare_nodes(&index, &best, &a.1, &b.1));
            for (class, node) in chosen {
                index.set(&mut best, class, Choice { cost, rank, node });
                rank += 1;
            }
        }
        CanonicalExtractor { index, best }
    }

    fn node_cost(index: &ClassIndex, costs: &[Option<Cost>], node: &Math) -> Option<Cost> {
        node.children()
            .iter()
            .try_fold(1 as Cost, |sum, &c| Some(sum.saturating_add(*index.get(costs, c)?)))
    }

    fn min_costs(index: &ClassIndex, classes: &[(Id, &[Math])]) -> Vec<Option<Cost>> {
        let mut costs: Vec<Option<Cost>> = index.empty();
        let mut changed = true;
        while changed {
            changed = false;
            for &(class, nodes) in classes {
                let found = nodes.iter().filter_map(|n| Self::node_cost(index, &costs, n)).min();
                if let Some(cost) = found
                    && index.get(&costs, class).is_none_or(|&old| cost < old)
                {
                    index.set(&mut costs, class, cost);
                    changed = true;
                }
            }
        }
        costs
    }

    fn compare_nodes(index: &ClassIndex, best: &[Option<Choice>], a: &Math, b: &Math) -> Ordering {
        let rank = |&id: &Id| index.get(best, id).map_or(usize::MAX, |c| c.rank);
        compare_ops(a, b).then_with(|| a.children().iter().map(rank).cmp(b.children().iter().map(rank)))
    }

    fn choice(&self, class: Id) -> Option<&Choice> {
        self.index.get(&self.best, class)
    }

    /// The canonical node of a class, if the class has a finite term.
    pub fn node(&self, egraph: &EGraph, class: Id) -> Option<&Math> {
        self.choice(egraph.find(class)).map(|c| &c.node)
    }

    /// The cost of a class's canonical term.
    pub fn cost(&self, egraph: &EGraph, class: Id) -> Option<Cost> {
        self.choice(egraph.find(class)).map(|c| c.cost)
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
            let node = &self.choice(class)?.node;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::ColoredAnalysis;

    /// A part of a big e-graph (its ids sparse among the graph's) is indexed
    /// by position, and extracts the same forms as the whole graph does.
    #[test]
    fn a_small_part_of_a_big_graph_extracts_as_the_whole_graph_does() {
        let mut egraph = EGraph::new(ColoredAnalysis::new(false));
        for i in 0..200 {
            egraph.add_expr(&format!("(+ w{i} (* w{i} 3))").parse().unwrap());
        }
        let root = egraph.add_expr(&"(* (+ x y) (+ y x))".parse().unwrap());
        let swapped = egraph.add_expr(&"(+ y x)".parse().unwrap());
        let straight = egraph.add_expr(&"(+ x y)".parse().unwrap());
        egraph.union(swapped, straight);
        egraph.rebuild();
        let whole = CanonicalExtractor::new(&egraph);

        let mut part: Vec<(Id, &[Math])> = Vec::new();
        let mut next = vec![egraph.find(root)];
        while let Some(class) = next.pop() {
            if part.iter().any(|&(c, _)| c == class) {
                continue;
            }
            let nodes = egraph[class].nodes.as_slice();
            next.extend(nodes.iter().flat_map(|n| n.children().iter().map(|&c| egraph.find(c))));
            part.push((class, nodes));
        }
        assert!(matches!(ClassIndex::of_part(&part), ClassIndex::Positions(_)));
        let of_part = CanonicalExtractor::over(&part);
        assert_eq!(
            of_part.expr(&egraph, root).map(|e| e.to_string()),
            whole.expr(&egraph, root).map(|e| e.to_string())
        );
        assert_eq!(of_part.expr(&egraph, root).unwrap().to_string(), "(* (+ x y) (+ x y))");
        assert!(
            of_part
                .expr(&egraph, egraph.lookup_expr(&"w3".parse().unwrap()).unwrap())
                .is_none()
        );
    }
}
