//! The pipeline of `/egraph/saturate`: rounds of RED, BLUE and GREEN saturation
//! until a whole round changes nothing (the colours' common fixpoint) or a limit
//! stops it, then GREEN verification and extraction.

use crate::analysis::{ColoredAnalysis, EGraph};
use crate::color::Color;
use crate::extract::CanonicalExtractor;
use crate::lang::Expr;
use crate::rules::RuleBook;
use crate::stop::Stop;
use crate::verify::{ColorConflict, Verdict, check_semantically};
use egg::{Id, Language, Runner};
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Limits on one saturation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Most e-nodes the graph may grow to (checked after each rule).
    pub nodes: usize,
    /// Most iterations of each colour, over all rounds together.
    pub iterations: usize,
    /// Wall-clock budget for all phases together.
    pub time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            nodes: 10_000,
            iterations: 30,
            time: Duration::from_millis(5_000),
        }
    }
}

/// How rules are scheduled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    /// egg's exponential backoff: explosive rules are banned for a while.
    #[default]
    Backoff,
    /// Every rule every iteration (matches per rule capped at the node limit).
    Simple,
}

/// What to saturate, with what, within what.
#[derive(Debug, Clone)]
pub struct Saturation {
    /// The expression.
    pub expr: Expr,
    /// The rules.
    pub rules: RuleBook,
    /// Fold constant subexpressions.
    pub fold_constants: bool,
    /// Rule scheduling.
    pub scheduler: Scheduler,
    /// Limits.
    pub limits: Limits,
    /// A replicated e-graph to start from (e.g. a `/crdt/merge` answer): its
    /// terms and equalities are in the e-graph before the expression is added.
    pub start: Option<crate::ReplicaState>,
}

/// How one phase went.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PhaseReport {
    /// `red`, `blue`, `green` or `extract`.
    pub phase: &'static str,
    /// The round of the colour fixpoint this phase ran in (from 1; extraction
    /// counts as the last round).
    pub round: usize,
    /// Why it stopped (`saturated`, `iteration_limit`, `node_limit`, `time_limit`, `done`).
    pub stop_reason: Stop,
    /// Iterations run.
    pub iterations: usize,
    /// E-classes afterwards.
    pub classes: usize,
    /// E-nodes afterwards.
    pub nodes: usize,
    /// Wall-clock time.
    pub time_ms: f64,
    /// How often each rule changed the graph.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub rules_applied: BTreeMap<String, usize>,
}

/// GREEN's findings.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Verification {
    /// Input = canonical form, checked by [`check_semantically`].
    pub input_equals_canonical: Verdict,
    /// Pairs of different constants proven equal: an unsound rule was used.
    pub constant_conflicts: Vec<(String, String)>,
    /// Steps derived by both RED and BLUE rules.
    pub color_conflicts: Vec<ColorConflict>,
    /// The input = canonical form check verified (not merely unrefuted) and no
    /// constant conflict.
    pub passed: bool,
}

/// The result of a saturation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SaturationReport {
    /// The canonical form of the input.
    pub canonical: String,
    /// Its cost (tree size).
    pub cost: u64,
    /// E-classes in the final graph.
    pub classes: usize,
    /// E-nodes in the final graph.
    pub nodes: usize,
    /// Rounds of RED, BLUE and GREEN run.
    pub rounds: usize,
    /// Why the rounds stopped: `saturated` (a whole round changed nothing: the
    /// colours' fixpoint), or the limit that stopped them (`iteration_limit`: a
    /// colour used all its iterations; `node_limit`; `time_limit`).
    pub stop_reason: Stop,
    /// One report per phase run, round by round, then extraction.
    pub phases: Vec<PhaseReport>,
    /// GREEN's verification.
    pub verification: Verification,
}

/// How one phase's runner picks matches.
enum PhaseScheduler {
    /// egg's [`egg::BackoffScheduler`]: explosive rules are banned for a while.
    Backoff(egg::BackoffScheduler),
    /// [`egg::SimpleScheduler`] with each rule's matches capped at this many, so
    /// one iteration cannot outgrow the node limit by orders of magnitude.
    Capped(usize),
}

impl egg::RewriteScheduler<crate::lang::Math, ColoredAnalysis> for PhaseScheduler {
    fn can_stop(&mut self, iteration: usize) -> bool {
        match self {
            PhaseScheduler::Backoff(backoff) => {
                egg::RewriteScheduler::<crate::lang::Math, ColoredAnalysis>::can_stop(backoff, iteration)
            }
            PhaseScheduler::Capped(_) => true,
        }
    }

    fn search_rewrite<'a>(
        &mut self,
        iteration: usize,
        egraph: &EGraph,
        rewrite: &'a crate::rules::ColoredRewrite,
    ) -> Vec<egg::SearchMatches<'a, crate::lang::Math>> {
        match self {
            PhaseScheduler::Backoff(backoff) => backoff.search_rewrite(iteration, egraph, rewrite),
            PhaseScheduler::Capped(cap) => rewrite.search_with_limit(egraph, *cap),
        }
    }
}

/// Runs one colour's rules on `egraph` within `limits` and what is left of `deadline`.
pub fn run_phase(
    egraph: EGraph,
    rules: &RuleBook,
    color: Color,
    scheduler: Scheduler,
    limits: Limits,
    deadline: Instant,
) -> (EGraph, PhaseReport) {
    let scheduler = match scheduler {
        Scheduler::Backoff => PhaseScheduler::Backoff(egg::BackoffScheduler::default()),
        Scheduler::Simple => PhaseScheduler::Capped(limits.nodes),
    };
    run_phase_with(egraph, rules, color, scheduler, limits, deadline)
}

/// One bounded rewriting step of one colour on `egraph`, aimed at the class
/// `root`: at most `iterations` iterations, stopping once the e-graph has grown
/// by `growth` e-nodes. Each iteration applies the matches that would change
/// the e-graph nearest `root` first, as many as the growth left allows (so one
/// iteration may overshoot by the right-hand sides of those matches): a step
/// spends its budget on the submission before what lies deep below it, and
/// never starts with a rule banned, as egg's backoff would each time afresh.
pub fn run_step(
    egraph: EGraph,
    root: Id,
    rules: &RuleBook,
    color: Color,
    growth: usize,
    iterations: usize,
    deadline: Instant,
) -> (EGraph, PhaseReport) {
    let limits = Limits {
        // The scheduler stops the growth (`NearestFirst`), not the runner.
        nodes: usize::MAX,
        iterations,
        time: deadline.saturating_duration_since(Instant::now()),
    };
    let node_limit = egraph.total_size().saturating_add(growth.max(1));
    let truncated = Rc::new(Cell::new(false));
    let scheduler = crate::nearest::NearestFirst::new(root, node_limit, truncated.clone());
    let (egraph, mut report) = run_phase_with(egraph, rules, color, scheduler, limits, deadline);
    // egg counts any new e-node as a change. A step whose every match was
    // applied and united nothing only gave known classes new names (a node
    // whose class the analysis pruned to a constant the region never held):
    // its region is saturated.
    if report.stop_reason == Stop::IterationLimit && report.rules_applied.is_empty() && !truncated.get() {
        report.stop_reason = Stop::Saturated;
    }
    (egraph, report)
}

fn run_phase_with(
    egraph: EGraph,
    rules: &RuleBook,
    color: Color,
    scheduler: impl egg::RewriteScheduler<crate::lang::Math, ColoredAnalysis> + 'static,
    limits: Limits,
    deadline: Instant,
) -> (EGraph, PhaseReport) {
    let rewrites = rules.rewrites(color);
    let started = Instant::now();
    let runner = Runner::<_, _, ()>::new(ColoredAnalysis::default())
        .with_egraph(egraph)
        .with_iter_limit(limits.iterations)
        .with_node_limit(limits.nodes)
        .with_time_limit(deadline.saturating_duration_since(started))
        .with_scheduler(scheduler)
        .run(rewrites);
    let mut rules_applied = BTreeMap::new();
    for iteration in &runner.iterations {
        for (rule, n) in &iteration.applied {
            *rules_applied.entry(rule.to_string()).or_insert(0) += n;
        }
    }
    let report = PhaseReport {
        phase: color_name(color),
        round: 1,
        stop_reason: Stop::of_egg(runner.stop_reason.as_ref()),
        iterations: runner.iterations.len(),
        classes: runner.egraph.number_of_classes(),
        nodes: runner.egraph.total_number_of_nodes(),
        time_ms: started.elapsed().as_secs_f64() * 1e3,
        rules_applied,
    };
    (runner.egraph, report)
}

/// Steps (derived e-nodes) claimed by rules of both RED and BLUE, from the derivation log.
pub fn color_conflicts(egraph: &EGraph) -> Vec<ColorConflict> {
    let log = &egraph.analysis.derivations;
    if !(log.iter().any(|d| d.color == Color::Red) && log.iter().any(|d| d.color == Color::Blue)) {
        return Vec::new();
    }
    let mut claims: HashMap<crate::lang::Math, BTreeSet<(Color, egg::Symbol)>> = HashMap::new();
    for d in log.iter().filter(|d| d.color != Color::Green) {
        let node = egraph.id_to_node(d.id).clone().map_children(|c| egraph.find(c));
        claims.entry(node).or_default().insert((d.color, d.rule));
    }
    let mut out: Vec<ColorConflict> = claims
        .into_iter()
        .filter(|(_, c)| c.iter().any(|x| x.0 == Color::Red) && c.iter().any(|x| x.0 == Color::Blue))
        .map(|(node, claims)| {
            let mut claims: Vec<(String, Color)> = claims.into_iter().map(|(c, r)| (r.to_string(), c)).collect();
            claims.sort();
            ColorConflict {
                step: node.build_recexpr(|id| egraph.id_to_node(id).clone()).to_string(),
                claims,
            }
        })
        .collect();
    out.sort_by(|a, b| a.step.cmp(&b.step));
    out
}

/// How a colour fixpoint ended.
#[derive(Debug, Clone)]
pub struct Fixpoint {
    /// One report per phase run, with its round.
    pub phases: Vec<PhaseReport>,
    /// Rounds started.
    pub rounds: usize,
    /// `saturated` when a whole round changed nothing; otherwise the limit.
    pub stop_reason: Stop,
}

/// One colour's turn: search its rules on `egraph`, apply the matches, rebuild.
/// What each rule applied is added to `applied`; a limit reached after a rule
/// ends the turn there (the e-graph is still rebuilt), as egg's runner does.
fn take_turn(
    egraph: &mut EGraph,
    rewrites: &[&crate::rules::ColoredRewrite],
    scheduler: &mut Option<egg::BackoffScheduler>,
    round: usize,
    limits: Limits,
    deadline: Instant,
    applied: &mut BTreeMap<String, usize>,
) -> Option<Stop> {
    use egg::RewriteScheduler;
    // The clock is read after every `CLOCK_EVERY`th rule and after the last
    // (reading it after each rule was a tenth of a small saturation); the node
    // count after every rule, as egg's runner does.
    const CLOCK_EVERY: usize = 8;
    let last = rewrites.len().saturating_sub(1);
    let over = |egraph: &EGraph, i: usize| {
        if egraph.total_size() > limits.nodes {
            Some(Stop::NodeLimit)
        } else if (i % CLOCK_EVERY == CLOCK_EVERY - 1 || i == last) && Instant::now() > deadline {
            Some(Stop::TimeLimit)
        } else {
            None
        }
    };
    let mut stopped = None;
    let mut matches = Vec::with_capacity(rewrites.len());
    for (i, rw) in rewrites.iter().enumerate() {
        matches.push(match scheduler {
            Some(backoff) => backoff.search_rewrite(round, egraph, rw),
            None => rw.search_with_limit(egraph, limits.nodes),
        });
        stopped = over(egraph, i);
        if stopped.is_some() {
            break;
        }
    }
    if stopped.is_none() {
        for (i, (rw, ms)) in rewrites.iter().zip(matches).enumerate() {
            let n = match scheduler {
                Some(backoff) => backoff.apply_rewrite(round, egraph, rw, ms),
                None => rw.apply(egraph, &ms).len(),
            };
            if n > 0 {
                *applied.entry(rw.name.to_string()).or_insert(0) += n;
            }
            stopped = over(egraph, i);
            if stopped.is_some() {
                break;
            }
        }
    }
    egraph.rebuild();
    stopped
}

/// Runs rounds of RED, BLUE and GREEN, one iteration of each colour per round
/// (so the colours interleave as one runner with all the rules would), until
/// every colour is saturated on the same e-graph: then no rule of any colour
/// applies, the fixpoint one saturation with all the rules together reaches.
/// Each colour has `limits.iterations` iterations over all rounds; the node and
/// time limits stop everything. With the backoff scheduler each colour keeps its
/// bans from round to round. A colour's turn searches only its own rules, and a
/// colour already saturated on an unchanged e-graph (same e-nodes, same
/// classes) is not searched again.
///
/// This is egg's runner loop written out for turns: egg's `Runner` takes one
/// rule list for every iteration, so each turn checked the limits for every
/// colour's rules and kept per-iteration records nobody reads (a tenth of a
/// small saturation's time went to reading the clock).
pub fn color_fixpoint(
    mut egraph: EGraph,
    rules: &RuleBook,
    scheduler: Scheduler,
    limits: Limits,
    deadline: Instant,
) -> (EGraph, Fixpoint) {
    let colors: Vec<Color> = Color::ALL
        .into_iter()
        .filter(|&c| !rules.rewrites(c).is_empty())
        .collect();
    if colors.is_empty() {
        let fixpoint = Fixpoint {
            phases: Vec::new(),
            rounds: 0,
            stop_reason: Stop::Saturated,
        };
        return (egraph, fixpoint);
    }
    let rewrites: Vec<Vec<&crate::rules::ColoredRewrite>> = colors.iter().map(|&c| rules.rewrites(c)).collect();
    let mut schedulers: Vec<Option<egg::BackoffScheduler>> = colors
        .iter()
        .map(|_| (scheduler == Scheduler::Backoff).then(egg::BackoffScheduler::default))
        .collect();
    // Per colour: the e-graph's (e-nodes, classes) when the colour last saturated.
    let mut saturated_at: Vec<Option<(usize, usize)>> = vec![None; colors.len()];
    egraph.rebuild();
    let iteration_limit = limits.iterations.saturating_mul(colors.len());
    let mut phases = Vec::new();
    let mut stop_reason = Stop::IterationLimit;
    for iteration in 0..iteration_limit {
        let started = Instant::now();
        // As egg's runner checks before each iteration: the time, then the
        // e-nodes (a start over the limit, or a rebuild that grew past it).
        if started > deadline {
            stop_reason = Stop::TimeLimit;
            break;
        }
        if egraph.total_size() > limits.nodes {
            stop_reason = Stop::NodeLimit;
            break;
        }
        let turn = iteration % colors.len();
        let round = iteration / colors.len();
        let searched_at = (egraph.total_size(), egraph.number_of_classes());
        let mut applied = BTreeMap::new();
        let stopped = if saturated_at[turn] == Some(searched_at) {
            None
        } else {
            let scheduler = &mut schedulers[turn];
            take_turn(
                &mut egraph,
                &rewrites[turn],
                scheduler,
                round,
                limits,
                deadline,
                &mut applied,
            )
        };
        let after = (egraph.total_size(), egraph.number_of_classes());
        let mut phase_stop = Stop::IterationLimit;
        let mut all_saturated = false;
        if let Some(stopped) = stopped {
            phase_stop = stopped;
        } else if applied.is_empty() && after == searched_at {
            let unbanned = match &mut schedulers[turn] {
                Some(backoff) => egg::RewriteScheduler::<crate::lang::Math, ColoredAnalysis>::can_stop(backoff, round),
                None => true,
            };
            if unbanned {
                saturated_at[turn] = Some(searched_at);
                phase_stop = Stop::Saturated;
            }
            all_saturated = saturated_at.iter().all(|&at| at == Some(searched_at));
        }
        phases.push(PhaseReport {
            phase: color_name(colors[turn]),
            round: round + 1,
            stop_reason: phase_stop,
            iterations: 1,
            classes: after.1,
            nodes: after.0,
            time_ms: started.elapsed().as_secs_f64() * 1e3,
            rules_applied: applied,
        });
        if let Some(stopped) = stopped {
            stop_reason = stopped;
            break;
        }
        if all_saturated {
            stop_reason = Stop::Saturated;
            break;
        }
    }
    let rounds = phases.len().saturating_sub(1) / colors.len() + 1;
    let fixpoint = Fixpoint {
        phases,
        rounds,
        stop_reason,
    };
    (egraph, fixpoint)
}

fn color_name(color: Color) -> &'static str {
    match color {
        Color::Red => "red",
        Color::Blue => "blue",
        Color::Green => "green",
    }
}

impl Saturation {
    /// Runs the colour fixpoint, verifies, extracts, and reports.
    pub fn run(&self) -> SaturationReport {
        let deadline = Instant::now() + self.limits.time;
        let mut egraph = match &self.start {
            Some(state) => crate::materialize::Materialized::build(state, self.fold_constants).egraph,
            None => EGraph::new(ColoredAnalysis::new(self.fold_constants)),
        };
        let root: Id = egraph.add_expr(&self.expr);
        egraph.rebuild();
        let (egraph, fixpoint) = color_fixpoint(egraph, &self.rules, self.scheduler, self.limits, deadline);
        let Fixpoint {
            mut phases,
            rounds,
            stop_reason,
        } = fixpoint;
        let started = Instant::now();
        let extractor = CanonicalExtractor::new(&egraph);
        let canonical = extractor.expr(&egraph, root).unwrap_or_else(|| self.expr.clone());
        let cost = extractor.cost(&egraph, root).unwrap_or(0);
        let verification = Verification {
            input_equals_canonical: check_semantically(&self.expr, &canonical),
            constant_conflicts: egraph
                .analysis
                .constant_conflicts
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            color_conflicts: color_conflicts(&egraph),
            passed: false,
        };
        let passed = verification.input_equals_canonical.is_verified() && verification.constant_conflicts.is_empty();
        phases.push(PhaseReport {
            phase: "extract",
            round: rounds,
            stop_reason: Stop::Done,
            iterations: 0,
            classes: egraph.number_of_classes(),
            nodes: egraph.total_number_of_nodes(),
            time_ms: started.elapsed().as_secs_f64() * 1e3,
            rules_applied: BTreeMap::new(),
        });
        SaturationReport {
            canonical: canonical.to_string(),
            cost,
            classes: egraph.number_of_classes(),
            nodes: egraph.total_number_of_nodes(),
            rounds,
            stop_reason,
            phases,
            verification: Verification { passed, ..verification },
        }
    }
}
