//! Pattern → rule: rules mined from enumerated terms, as Ruler does.
//!
//! 1. Terms of the grammar are built layer by layer (size 1, 2, ...), each
//!    evaluated at random points, into one e-graph (with the core's constant
//!    folding, as agents run).
//! 2. A new term that agrees at every point with a smaller one gives a
//!    candidate: both generalised to patterns, oriented, normalised.
//! 3. Candidates are taken best first (smallest, fewest constants, most
//!    variables). One the rules known so far derive in an e-graph of its own
//!    two sides is dropped; otherwise the core's soundness check decides, and
//!    a refuted candidate (a coincidence at the points) is reported.
//! 4. The next layer is built from one term per e-class, as the rules kept so
//!    far merge them; at the end each kept rule that the others derive is
//!    dropped, last found first.

use crate::enumerate::{Grammar, GrammarError, MAX_TERMS, Points, check};
use crate::rule::{
    InvalidRule, NormalForm, Provenance, Rule, VERIFIER, generalise, instantiate, mined_name, pattern_size,
};
use egg::{Id, Runner, SimpleScheduler, Symbol};
use ramanujan_core::analysis::{ColoredAnalysis, EGraph};
use ramanujan_core::lang::{Expr, Math};
use ramanujan_core::rules::{ColoredRewrite, RuleSpec, compile};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

/// How a mining run is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MineOptions {
    /// Largest term size enumerated.
    pub max_size: usize,
    /// Iterations of the rules when checking whether they derive a candidate,
    /// and on the terms' e-graph to find which terms to build upon.
    pub iterations: usize,
    /// Most e-nodes those runs may grow the e-graph to.
    pub nodes: usize,
    /// Wall-clock budget for the whole run, in milliseconds.
    pub time_ms: u64,
    /// Most rules kept.
    pub max_rules: usize,
}

impl Default for MineOptions {
    fn default() -> Self {
        MineOptions {
            max_size: 7,
            iterations: 6,
            nodes: 50_000,
            time_ms: 60_000,
            max_rules: 256,
        }
    }
}

/// Ceilings on what a request may ask for.
pub const MAX_TIME_MS: u64 = 120_000;
/// Most e-nodes a request's runs may grow to.
pub const MAX_NODES: usize = 500_000;

impl MineOptions {
    /// Checks the options against the ceilings.
    pub fn check(&self) -> Result<(), MineError> {
        let err = |m: &str| Err(MineError::Options(m.into()));
        if self.iterations == 0 || self.iterations > 10 {
            return err("iterations must be 1 to 10");
        }
        if self.nodes == 0 || self.nodes > MAX_NODES {
            return err("nodes must be 1 to 500000");
        }
        if self.time_ms == 0 || self.time_ms > MAX_TIME_MS {
            return err("time_ms must be 1 to 120000");
        }
        if self.max_rules == 0 || self.max_rules > 1024 {
            return err("max_rules must be 1 to 1024");
        }
        Ok(())
    }
}

/// Why mining could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MineError {
    /// The grammar or size.
    #[error("{0}")]
    Grammar(#[from] GrammarError),
    /// The options.
    #[error("{0}")]
    Options(String),
    /// A given rule.
    #[error("{0}")]
    Rule(String),
}

/// A candidate the soundness check refuted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = RefutedCandidate)]
pub struct Refuted {
    /// Left side.
    pub lhs: String,
    /// Right side.
    pub rhs: String,
    /// The check's answer (a counterexample, or why it could not decide).
    pub reason: String,
}

/// What a mining run found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Mined {
    /// The rules kept, in the order found.
    pub rules: Vec<Rule>,
    /// Terms enumerated (after pruning: one term per e-class is built upon).
    pub terms: usize,
    /// Groups of terms that agree at every point (two terms or more).
    pub groups: usize,
    /// Distinct candidates looked at.
    pub candidates: usize,
    /// Candidates the soundness check refuted.
    pub refuted: Vec<Refuted>,
    /// Rules kept at first and then dropped as derivable from the others.
    pub dropped: usize,
    /// Layers (term sizes) enumerated.
    pub rounds: usize,
    /// `done` (every layer enumerated, no candidate left), `time_limit`,
    /// `rule_limit` or `term_limit`.
    pub stop_reason: &'static str,
    /// Wall-clock time.
    pub elapsed_ms: f64,
}

/// One compiled rule with its normal form.
struct Kept {
    rule: Rule,
    normal: NormalForm,
    rewrite: ColoredRewrite,
}

/// A candidate equation, oriented and normalised, with its score.
struct Candidate {
    normal: NormalForm,
    score: (usize, usize, std::cmp::Reverse<usize>),
    example: (String, String),
}

/// Compiles one spec (checking its soundness) under a name of its own.
pub fn compile_checked(spec: &RuleSpec) -> Result<ColoredRewrite, String> {
    compile(std::slice::from_ref(spec), &HashSet::new())
        .map(|mut rewrites| rewrites.remove(0))
        .map_err(|e| e.to_string())
}

/// Runs `rewrites` on `egraph` for `iterations`, within `nodes` e-nodes and
/// until `deadline`.
fn run(egraph: EGraph, rewrites: &[&ColoredRewrite], iterations: usize, nodes: usize, deadline: Instant) -> EGraph {
    let mut runner = Runner::<Math, ColoredAnalysis, ()>::new(ColoredAnalysis::new(true))
        .with_egraph(egraph)
        .with_scheduler(SimpleScheduler)
        .with_iter_limit(iterations)
        .with_node_limit(nodes)
        .with_time_limit(time_until(deadline, Duration::from_secs(3600)))
        .run(rewrites.iter().copied());
    runner.egraph.rebuild();
    runner.egraph
}

/// The time left until `deadline`, at most `most` (at least a millisecond:
/// egg reads a zero limit as none).
fn time_until(deadline: Instant, most: Duration) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .clamp(Duration::from_millis(1), most)
}

/// Whether `rewrites` derive the rule `normal`: both sides, as terms over fresh
/// symbols, end in one e-class within `iterations` (egg's default scheduler, as
/// agents run). Conditional rules are instantiated symbolically, so their
/// conditions never hold: they count as not derived. A search stopped at
/// `deadline` (or after 10 s) counts as not derived either.
pub fn derives(
    rewrites: &[&ColoredRewrite],
    normal: &NormalForm,
    iterations: usize,
    nodes: usize,
    deadline: Instant,
) -> bool {
    let mut egraph = EGraph::new(ColoredAnalysis::new(true));
    let lhs = egraph.add_expr(&instantiate(&normal.lhs));
    let rhs = egraph.add_expr(&instantiate(&normal.rhs));
    egraph.rebuild();
    if egraph.find(lhs) == egraph.find(rhs) {
        return true;
    }
    let runner = Runner::<Math, ColoredAnalysis, ()>::new(ColoredAnalysis::new(true))
        .with_egraph(egraph)
        .with_iter_limit(iterations)
        .with_node_limit(nodes)
        .with_time_limit(time_until(deadline, Duration::from_secs(10)))
        .with_hook(move |r| {
            if r.egraph.find(lhs) == r.egraph.find(rhs) {
                Err("derived".into())
            } else {
                Ok(())
            }
        })
        .run(rewrites.iter().copied());
    runner.egraph.find(lhs) == runner.egraph.find(rhs)
}

fn constants(expr: &Expr) -> usize {
    expr.as_ref().iter().filter(|n| matches!(n, Math::Num(_))).count()
}

/// The candidate rule saying `a = b`: oriented from the larger side to the
/// smaller (so shrinking rules are BLUE and identities GREEN), or the other
/// way when only that binds every variable; `None` when neither way does.
fn candidate(a: &Expr, b: &Expr, variables: &BTreeSet<Symbol>) -> Option<Candidate> {
    let rank = |e: &Expr| (e.as_ref().len(), e.to_string());
    let (big, small) = if rank(a) >= rank(b) { (a, b) } else { (b, a) };
    let (big_p, small_p) = (generalise(big, variables), generalise(small, variables));
    let normal = NormalForm::new(&big_p, &small_p, &[], &[])
        .or_else(|_| NormalForm::new(&small_p, &big_p, &[], &[]))
        .ok()?;
    let vars = crate::rule::variables(&normal.lhs).len();
    Some(Candidate {
        score: (
            pattern_size(&normal.lhs) + pattern_size(&normal.rhs),
            constants(big) + constants(small),
            std::cmp::Reverse(vars),
        ),
        example: (big.to_string(), small.to_string()),
        normal,
    })
}

/// A term of the enumeration: the expression, its size, its values at the
/// points and its e-class in the enumeration's e-graph.
struct Enumerated {
    expr: Expr,
    size: usize,
    values: Option<Vec<u64>>,
    id: Id,
}

/// Mines rules from the terms of `grammar` up to `options.max_size`, keeping
/// only rules that `known` (already in the rule book) and the rules kept
/// before them do not derive.
///
/// Terms are built layer by layer (size 1, 2, ...) from one term of each
/// e-class of the smaller layers, the e-classes as the rules kept so far
/// merge them (Ruler's pruning: `(+ b a)` is not built upon once it is known
/// equal to `(+ a b)`). A candidate is dropped only when the rules derive it
/// in an e-graph of its own two sides, so every kept rule is needed by that
/// test, not merely by the terms that happened to be enumerated.
pub fn mine_enumeration(grammar: &Grammar, options: &MineOptions, known: &[RuleSpec]) -> Result<Mined, MineError> {
    options.check()?;
    let started = Instant::now();
    let deadline = started + Duration::from_millis(options.time_ms);
    let known: Vec<ColoredRewrite> = known
        .iter()
        .map(|spec| compile_checked(spec).map_err(MineError::Rule))
        .collect::<Result<_, _>>()?;
    let leaves = check(grammar, options.max_size)?;
    let variables: BTreeSet<Symbol> = leaves.variables.iter().copied().collect();
    let points = Points::new(&leaves.variables);

    let mut egraph = EGraph::new(ColoredAnalysis::new(true));
    let mut terms: Vec<Enumerated> = Vec::new();
    // Per size, the terms built upon: the first enumerated term of each e-class.
    let mut reps: Vec<Vec<usize>> = vec![Vec::new()];
    let mut kept: Vec<Kept> = Vec::new();
    let mut refuted = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut groups = 0;
    let mut stop_reason = "done";
    for size in 1..=options.max_size {
        if Instant::now() >= deadline {
            stop_reason = "time_limit";
            break;
        }
        let by_size: Vec<Vec<&Expr>> = reps
            .iter()
            .map(|layer| layer.iter().map(|&t| &terms[t].expr).collect())
            .collect();
        let layer = crate::enumerate::layer(&leaves, &by_size, size);
        if terms.len() + layer.len() > MAX_TERMS {
            stop_reason = "term_limit";
            break;
        }
        let first_new = terms.len();
        for (i, expr) in layer.into_iter().enumerate() {
            // A large layer takes a while to evaluate: the clock is read
            // every 256 terms.
            if i % 256 == 255 && Instant::now() >= deadline {
                stop_reason = "time_limit";
                break;
            }
            let id = egraph.add_expr(&expr);
            terms.push(Enumerated {
                values: points.values(&expr),
                expr,
                size,
                id,
            });
        }
        egraph.rebuild();

        // Candidates: each new term against the least term that agrees with it.
        let mut by_values: HashMap<&[u64], Vec<usize>> = HashMap::new();
        for (i, term) in terms.iter().enumerate() {
            if let Some(values) = &term.values {
                by_values.entry(values.as_slice()).or_default().push(i);
            }
        }
        groups = by_values.values().filter(|g| g.len() > 1).count();
        let mut candidates: BTreeMap<String, Candidate> = BTreeMap::new();
        'groups: for group in by_values.values().filter(|g| g.len() > 1) {
            let least = *group
                .iter()
                .min_by_key(|&&t| (terms[t].size, terms[t].expr.to_string()))
                .expect("a group has terms");
            for &t in group.iter().filter(|&&t| t >= first_new && t != least) {
                if Instant::now() >= deadline {
                    stop_reason = "time_limit";
                    break 'groups;
                }
                if let Some(c) = candidate(&terms[t].expr, &terms[least].expr, &variables) {
                    let key = c.normal.key();
                    if !seen.contains(&key) {
                        candidates.entry(key).or_insert(c);
                    }
                }
            }
        }
        let mut ordered: Vec<(String, Candidate)> = candidates.into_iter().collect();
        ordered.sort_by(|(ka, a), (kb, b)| a.score.cmp(&b.score).then_with(|| ka.cmp(kb)));
        for (key, c) in ordered {
            if Instant::now() >= deadline {
                stop_reason = "time_limit";
                break;
            }
            if kept.len() >= options.max_rules {
                stop_reason = "rule_limit";
                break;
            }
            seen.insert(key.clone());
            let rewrites: Vec<&ColoredRewrite> = known.iter().chain(kept.iter().map(|k| &k.rewrite)).collect();
            if derives(&rewrites, &c.normal, options.iterations, options.nodes, deadline) {
                continue;
            }
            let color = c.normal.color();
            let provenance = Provenance {
                source: "enumeration".into(),
                verified_by: VERIFIER.into(),
                detail: format!("{} = {}", c.example.0, c.example.1),
            };
            let rule = c.normal.clone().into_rule(mined_name(color, &key), color, provenance);
            match compile_checked(&rule.spec) {
                Ok(rewrite) => kept.push(Kept {
                    rule,
                    normal: c.normal,
                    rewrite,
                }),
                Err(reason) => refuted.push(Refuted {
                    lhs: rule.spec.lhs,
                    rhs: rule.spec.rhs,
                    reason,
                }),
            }
        }
        if stop_reason != "done" {
            break;
        }

        // The terms the next layers build upon: one per e-class, as the rules
        // merge them.
        let rewrites: Vec<&ColoredRewrite> = known.iter().chain(kept.iter().map(|k| &k.rewrite)).collect();
        let merged = run(egraph.clone(), &rewrites, options.iterations, options.nodes, deadline);
        let mut first: HashMap<Id, usize> = HashMap::new();
        for (i, term) in terms.iter().enumerate() {
            first.entry(merged.find(term.id)).or_insert(i);
        }
        reps.push(
            (first_new..terms.len())
                .filter(|&i| first[&merged.find(terms[i].id)] == i)
                .collect(),
        );
    }
    let before = kept.len();
    if !shrink(&known, &mut kept, options, deadline) {
        stop_reason = "time_limit";
    }
    Ok(Mined {
        dropped: before - kept.len(),
        rules: kept.into_iter().map(|k| k.rule).collect(),
        terms: terms.len(),
        groups,
        candidates: seen.len(),
        refuted,
        rounds: reps.len() - 1,
        stop_reason,
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// Drops each kept rule (last found first) that the known rules and the other
/// kept ones derive; `false` if the deadline stopped it first (the rules not
/// yet tried are kept: sound, perhaps not minimal).
fn shrink(known: &[ColoredRewrite], kept: &mut Vec<Kept>, options: &MineOptions, deadline: Instant) -> bool {
    let mut i = kept.len();
    while i > 0 {
        if Instant::now() >= deadline {
            return false;
        }
        i -= 1;
        let others: Vec<&ColoredRewrite> = known
            .iter()
            .chain(
                kept.iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, k)| &k.rewrite),
            )
            .collect();
        if derives(
            &others,
            &kept[i].normal,
            options.iterations + 2,
            options.nodes,
            deadline,
        ) {
            kept.remove(i);
        }
    }
    true
}

/// Checks a rule given as text (normal form, then soundness), as the rule it
/// becomes: normalised, named `name` (or by colour and key), coloured `color`
/// (or by its direction).
pub fn check_rule(spec: &RuleSpec, source: &str) -> Result<Rule, InvalidRule> {
    let normal = NormalForm::of_spec(spec)?;
    let key = normal.key();
    let name = if spec.name.trim().is_empty() {
        mined_name(normal.color(), &key)
    } else {
        spec.name.trim().to_string()
    };
    let rule = normal.into_rule(
        name,
        spec.color,
        Provenance {
            source: source.into(),
            verified_by: VERIFIER.into(),
            detail: String::new(),
        },
    );
    compile_checked(&rule.spec).map_err(InvalidRule)?;
    Ok(rule)
}
