//! The e-class analysis: constant folding, sizes, names, and the derivation log.

use crate::color::Color;
use crate::congruence::ClassGraph;
use crate::constant::Constant;
use crate::lang::Math;
use egg::{Analysis, DidMerge, Id, Language, Symbol};

/// The e-graph type every Ramanujan component uses.
pub type EGraph = egg::EGraph<Math, ColoredAnalysis>;

/// What each e-class knows about itself.
#[derive(Debug, Clone, Default)]
pub struct ClassData {
    /// The class's value, when constant folding found one.
    pub constant: Option<Constant>,
    /// The tree size of the class's smallest term: its extraction cost (see
    /// [`crate::extract`]), kept as e-nodes come and classes merge.
    pub size: u64,
    /// The least replicated term that stands in this class, its name across
    /// replicas (set by [`crate::materialize::Materialized`]; none in graphs
    /// built otherwise).
    pub name: Option<crate::term::TermKey>,
}

/// One successful rule application: `rule` of `color` unioned the class holding `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Derivation {
    /// The id the rule's right-hand side was added as (not canonicalised).
    pub id: Id,
    /// The rule's name.
    pub rule: Symbol,
    /// The rule's colour.
    pub color: Color,
}

/// Constant folding (optional), colour tracking, and a log of derivations.
#[derive(Debug, Clone, Default)]
pub struct ColoredAnalysis {
    /// Fold operators over constants into constants.
    pub fold_constants: bool,
    /// Every rule application that changed the graph, in order.
    pub derivations: Vec<Derivation>,
    /// Two different constants found in one class: some rule is unsound.
    pub constant_conflicts: Vec<(Constant, Constant)>,
}

impl ColoredAnalysis {
    /// An analysis that folds constants when `fold_constants` is set.
    pub fn new(fold_constants: bool) -> Self {
        ColoredAnalysis {
            fold_constants,
            ..Self::default()
        }
    }
}

/// Evaluates one operator node whose children are constants.
pub fn fold(node: &Math, child: impl Fn(Id) -> Option<Constant>) -> Option<Constant> {
    match node {
        Math::Num(c) => Some(c.clone()),
        Math::Symbol(_) => None,
        Math::Add([a, b]) => child(*a)?.add(&child(*b)?),
        Math::Sub([a, b]) => child(*a)?.sub(&child(*b)?),
        Math::Mul([a, b]) => child(*a)?.mul(&child(*b)?),
        Math::Div([a, b]) => child(*a)?.div(&child(*b)?),
        Math::Pow([a, b]) => child(*a)?.pow(&child(*b)?),
        Math::Neg([a]) => Some(child(*a)?.neg()),
    }
}

/// [`fold`], and also a product with a zero factor, which is `0` whatever the
/// other factor (as the built-in rule `mul-zero` says), and a power with
/// exponent `0`, which is `1` (`pow-zero`), and a difference of two terms of
/// one class, which is `0` (`cancel-sub`).
///
/// The e-graph knows these values the moment such a node is added, so its class
/// is pruned to the constant before any rule can match the node. Were the value
/// learnt only from a `mul-zero` rewrite, what rules derive from the node before
/// that rewrite lands would depend on the order in which rules (or agents) run:
/// pruning is not monotone, so the fixpoint of one saturation and the one the
/// network reaches, with its colours in other agents, could differ.
pub fn fold_absorbing(node: &Math, child: impl Fn(Id) -> Option<Constant>) -> Option<Constant> {
    let zero = |id: &Id| child(*id).is_some_and(|c| c.is_zero());
    match node {
        Math::Mul([a, b]) if zero(a) || zero(b) => Some(Constant::int(0)),
        Math::Pow([_, b]) if zero(b) => Some(Constant::int(1)),
        Math::Sub([a, b]) if a == b => Some(Constant::int(0)),
        _ => fold(node, child),
    }
}

/// The data of a class made of `node` alone, in `graph` (which holds its
/// children): its value (when `graph` folds constants, or a number), its size.
pub fn make_class_data(graph: &impl ClassGraph, node: &Math) -> ClassData {
    let constant = match node {
        Math::Num(c) => Some(c.clone()),
        _ if graph.folds_constants() => fold_absorbing(node, |id| graph.data(id).constant.clone()),
        _ => None,
    };
    ClassData {
        constant,
        size: graph.node_size(node),
        name: None,
    }
}

/// The lesser of two names, either of which may be missing.
fn least_name(a: Option<crate::term::TermKey>, b: Option<crate::term::TermKey>) -> Option<crate::term::TermKey> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl ClassData {
    /// Notes that the held term `key` stands in this class.
    pub fn hold(&mut self, key: crate::term::TermKey) {
        self.name = least_name(self.name, Some(key));
    }
}

impl Analysis<Math> for ColoredAnalysis {
    type Data = ClassData;

    fn make(egraph: &mut EGraph, enode: &Math, _id: Id) -> ClassData {
        make_class_data(&*egraph, enode)
    }

    fn merge(&mut self, a: &mut ClassData, b: ClassData) -> DidMerge {
        let size_changed = DidMerge(b.size < a.size, a.size < b.size);
        a.size = a.size.min(b.size);
        // Which terms stand here says nothing the parents' analysis depends on.
        a.name = least_name(a.name, b.name);
        let constant_changed = match (&a.constant, b.constant) {
            (None, None) => DidMerge(false, false),
            (None, Some(c)) => {
                a.constant = Some(c);
                DidMerge(true, false)
            }
            (Some(_), None) => DidMerge(false, true),
            (Some(x), Some(y)) => {
                if *x != y {
                    self.constant_conflicts.push((x.clone(), y));
                }
                DidMerge(false, false)
            }
        };
        constant_changed | size_changed
    }

    /// A class with a known value gets that constant as a node and keeps only its
    /// leaves (as egg's `tests/math.rs` prunes): every other node there is the
    /// constant in disguise, and rules matching inside it (`(* y 0)` in the class
    /// of `0`) would grow the graph for ever without saying anything new.
    fn modify(egraph: &mut EGraph, id: Id) {
        if let Some(c) = egraph[id].data.constant.clone() {
            let added = egraph.add(Math::Num(c));
            if egraph.are_explanations_enabled() {
                egraph.union_trusted(id, added, "constant-fold");
            } else {
                egraph.union(id, added);
            }
            egraph[id].nodes.retain(|n| n.is_leaf());
        }
    }
}
