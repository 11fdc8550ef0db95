//! Goal-directed rule scheduling: when one rewriting step may not apply every
//! match, it applies those nearest the submission's root first.
//!
//! A step of the agent network rewrites one submission's region within what is
//! left of its budget. egg's schedulers pick matches in e-class order, so a
//! budget can be spent on classes deep below the root (shared with many other
//! submissions) while the rewrite the submission itself needs (say, factoring
//! at its root) never gets a turn. [`NearestFirst`] ranks every match that would
//! change the e-graph by how far its class is from the root, and keeps the
//! nearest ones that fit the budget. It searches the region layer by layer from
//! the root and stops once it has found enough, so a step in a big region
//! costs about what it may apply.

use crate::analysis::{ColoredAnalysis, EGraph, fold_absorbing};
use crate::lang::Math;
use crate::materialize::classes_below;
use crate::rules::ColoredRewrite;
use egg::{ENodeOrVar, Id, Language, RewriteScheduler, RunnerLimits, RunnerResult, SearchMatches, StopReason, Subst};
use std::cell::Cell;
use std::rc::Rc;

/// A scheduler that applies, each iteration, at most as many matches as the
/// step may still grow by, nearest the root first.
#[derive(Debug)]
pub(crate) struct NearestFirst {
    root: Id,
    /// Total e-nodes at which the step stops.
    node_limit: usize,
    /// Whether the last search left out matches that would change the e-graph
    /// (then the iteration cannot count as saturated); shared with the caller,
    /// as egg's runner keeps its scheduler.
    truncated: Rc<Cell<bool>>,
}

impl NearestFirst {
    /// Ranks matches by their distance from `root`; the step stops growing at
    /// `node_limit` total e-nodes. `truncated` says whether its last search
    /// left matches out.
    pub(crate) fn new(root: Id, node_limit: usize, truncated: Rc<Cell<bool>>) -> Self {
        NearestFirst {
            root,
            node_limit,
            truncated,
        }
    }
}

/// Whether applying `rewrite` at `class` with `subst` would change nothing: its
/// right-hand side is already an e-node of `class`. (A rewrite without a
/// pattern on the right is assumed to change something.) A node whose value
/// the analysis knows (`(* y 0)`, `(+ 1 1)`) counts as its constant: its class
/// keeps only the constant, and a region rebuilt from classes' nodes has never
/// seen the pruned node, so adding it again would change nothing but egg's
/// hash-cons, and keep the step from ever counting as saturated.
fn changes_nothing(egraph: &EGraph, rewrite: &ColoredRewrite, class: Id, subst: &Subst) -> bool {
    let Some(rhs) = rewrite.applier.get_pattern_ast() else {
        return false;
    };
    let mut ids: Vec<Id> = Vec::with_capacity(rhs.as_ref().len());
    for node in rhs.as_ref() {
        let id = match node {
            ENodeOrVar::Var(v) => subst[*v],
            ENodeOrVar::ENode(node) => {
                let node = node.clone().map_children(|i| ids[usize::from(i)]);
                let known = |node: &Math| {
                    if !egraph.analysis.fold_constants {
                        return None;
                    }
                    egraph.lookup(Math::Num(fold_absorbing(node, |c| egraph[c].data.constant.clone())?))
                };
                match egraph.lookup(node.clone()).or_else(|| known(&node)) {
                    Some(id) => id,
                    None => return false,
                }
            }
        };
        ids.push(id);
    }
    ids.last().is_some_and(|&id| egraph.find(id) == egraph.find(class))
}

impl RewriteScheduler<Math, ColoredAnalysis> for NearestFirst {
    fn can_stop(&mut self, _iteration: usize) -> bool {
        !self.truncated.get()
    }

    fn search_rewrites<'a>(
        &mut self,
        iteration: usize,
        egraph: &EGraph,
        rewrites: &[&'a ColoredRewrite],
        limits: &RunnerLimits,
    ) -> RunnerResult<Vec<Vec<SearchMatches<'a, Math>>>> {
        let room = self.node_limit.saturating_sub(egraph.total_size());
        if room == 0 {
            return Err(StopReason::NodeLimit(egraph.total_size()));
        }
        // Layer by layer from the root, until the matches found fill the room:
        // a step's search costs what it may apply, not the whole region.
        let order = classes_below(egraph, self.root, usize::MAX);
        let mut candidates: Vec<(usize, usize, Id, Subst)> = Vec::new();
        let (mut searched, mut capped) = (0, false);
        while searched < order.len() && candidates.len() <= room {
            let layer = order[searched].1;
            while let Some(&(class, distance)) = order.get(searched).filter(|c| c.1 == layer) {
                searched += 1;
                for (rule, rewrite) in rewrites.iter().enumerate() {
                    // A class of many members can match a nested pattern
                    // quadratically often: take a bounded share, allowing for
                    // matches that change nothing, and say the search was cut.
                    let limit = room.saturating_sub(candidates.len()).saturating_mul(8).max(256);
                    let Some(found) = rewrite.searcher.search_eclass_with_limit(egraph, class, limit) else {
                        continue;
                    };
                    capped |= found.substs.len() >= limit;
                    candidates.extend(
                        found
                            .substs
                            .into_iter()
                            .filter(|s| !changes_nothing(egraph, rewrite, class, s))
                            .map(|s| (distance, rule, class, s)),
                    );
                }
            }
            limits.check_limits(iteration, egraph)?;
        }
        // Stable: equal keys keep the search's order, so the choice is deterministic.
        candidates.sort_by_key(|&(away, rule, class, _)| (away, rule, class));
        self.truncated
            .set(capped || searched < order.len() || candidates.len() > room);
        candidates.truncate(room);
        let mut chosen: Vec<Vec<SearchMatches<'a, Math>>> = rewrites.iter().map(|_| Vec::new()).collect();
        for (_, rule, eclass, subst) in candidates {
            let matches = &mut chosen[rule];
            match matches.last_mut() {
                Some(last) if last.eclass == eclass => last.substs.push(subst),
                _ => matches.push(SearchMatches {
                    eclass,
                    substs: vec![subst],
                    ast: None,
                }),
            }
        }
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::{ColoredAnalysis, EGraph};
    use crate::color::Color;
    use crate::parse::parse_expr;
    use crate::rules::{RuleBook, RuleSpec};
    use crate::saturate::run_step;
    use crate::stop::Stop;
    use std::time::{Duration, Instant};

    fn graph(expr: &str) -> (EGraph, egg::Id) {
        let mut egraph = EGraph::new(ColoredAnalysis::new(true));
        let root = egraph.add_expr(&parse_expr(expr).unwrap());
        egraph.rebuild();
        (egraph, root)
    }

    fn step(egraph: EGraph, root: egg::Id, color: Color, growth: usize) -> (EGraph, Stop) {
        let rules = RuleBook::new(true, &[]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let (egraph, report) = run_step(egraph, root, &rules, color, growth, 1, deadline);
        (egraph, report.stop_reason)
    }

    /// With room for one new e-node, the factoring at the root wins over the
    /// factorings deeper down, which egg would find first (their classes are older).
    #[test]
    fn a_small_budget_goes_to_the_root_first() {
        let (egraph, root) = graph("(+ (* a (+ (* p q) (* p r))) (* a (+ (* s t) (* s u))))");
        let (egraph, stop) = step(egraph, root, Color::Blue, 1);
        let factored = parse_expr("(* a (+ (+ (* p q) (* p r)) (+ (* s t) (* s u))))").unwrap();
        assert_eq!(egraph.lookup_expr(&factored), Some(egraph.find(root)));
        for deep in ["(* p (+ q r))", "(* s (+ t u))"] {
            assert_eq!(egraph.lookup_expr(&parse_expr(deep).unwrap()), None, "{deep}");
        }
        // Matches were left out: the step did not saturate.
        assert_ne!(stop, Stop::Saturated);
    }

    /// A region a step rewrites is rebuilt from its classes' nodes, so it has
    /// never seen `(* a 0)`, which distributing made and pruning reduced to `0`
    /// where it was first derived; making it again changes nothing, and the step
    /// saturates (it used to report `iteration_limit` at every step, for ever).
    #[test]
    fn a_node_pruned_to_its_constant_does_not_hide_saturation() {
        let (mut egraph, root) = graph("(* a (+ b 0))");
        let distributed = egraph.add_expr(&parse_expr("(+ (* a b) 0)").unwrap());
        egraph.union(root, distributed);
        egraph.rebuild();
        let distribute = RuleSpec {
            name: "dist".into(),
            lhs: "(* ?a (+ ?b ?c))".into(),
            rhs: "(+ (* ?a ?b) (* ?a ?c))".into(),
            color: Color::Red,
            bidirectional: false,
            nonzero: Vec::new(),
            integer: Vec::new(),
        };
        let rules = RuleBook::new(false, &[distribute]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let (_, report) = run_step(egraph, root, &rules, Color::Red, 10, 1, deadline);
        assert_eq!(report.stop_reason, Stop::Saturated);
    }

    /// Matches that would change nothing take no room, so a region whose every
    /// match is already applied is saturated however small the budget left.
    #[test]
    fn matches_that_change_nothing_do_not_hide_saturation() {
        let (egraph, root) = graph("(+ a b)");
        let (egraph, stop) = step(egraph, root, Color::Red, 10);
        assert_eq!(stop, Stop::IterationLimit);
        let (_, stop) = step(egraph, root, Color::Red, 1);
        assert_eq!(stop, Stop::Saturated);
    }
}
