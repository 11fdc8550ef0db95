//! The pipeline of `/egraph/saturate`: rounds of RED, BLUE and GREEN saturation
//! until a whole round changes nothing (the colours' common fixpoint) or a limit
//! stops it, then GREEN verification and extraction.

use crate::analysis::{ColoredAnalysis, EGraph};
use crate::color::Color;
use crate::extract::CanonicalExtractor;
use crate::lang::Expr;
use crate::rules::RuleBook;
use crate::verify::{ColorConflict, Verdict, check_semantically};
use egg::{Id, Language, Runner, StopReason};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// `red`, `blue`, `green` or `extract`.
    pub phase: &'static str,
    /// The round of the colour fixpoint this phase ran in (from 1; extraction
    /// counts as the last round).
    pub round: usize,
    /// Why it stopped (`saturated`, `iteration_limit`, `node_limit`, `time_limit`, `done`).
    pub stop_reason: String,
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
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Input = canonical form, checked on random exact assignments.
    pub input_equals_canonical: Verdict,
    /// Pairs of different constants proven equal: an unsound rule was used.
    pub constant_conflicts: Vec<(String, String)>,
    /// Steps derived by both RED and BLUE rules.
    pub color_conflicts: Vec<ColorConflict>,
    /// No refutation and no constant conflict.
    pub passed: bool,
}

/// The result of a saturation.
#[derive(Debug, Clone, Serialize)]
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
    pub stop_reason: String,
    /// One report per phase run, round by round, then extraction.
    pub phases: Vec<PhaseReport>,
    /// GREEN's verification.
    pub verification: Verification,
}

/// The snake-case name of a stop reason.
pub fn stop_reason_name(reason: Option<&StopReason>) -> String {
    match reason {
        None => "not_stopped",
        Some(StopReason::Saturated) => "saturated",
        Some(StopReason::IterationLimit(_)) => "iteration_limit",
        Some(StopReason::NodeLimit(_)) => "node_limit",
        Some(StopReason::TimeLimit(_)) => "time_limit",
        Some(StopReason::Other(s)) => s.as_str(),
    }
    .to_string()
}

/// How one phase's runner picks matches.
enum PhaseScheduler {
    /// egg's [`egg::BackoffScheduler`], possibly shared by the phases of one
    /// colour in a fixpoint: each phase is a new runner counting iterations from
    /// 0, so they are shifted by what the colour already ran, and rules banned
    /// for exploding stay banned into the next rounds.
    Backoff {
        shared: Rc<RefCell<egg::BackoffScheduler>>,
        offset: usize,
    },
    /// [`egg::SimpleScheduler`] with each rule's matches capped at this many, so
    /// one iteration cannot outgrow the node limit by orders of magnitude.
    Capped(usize),
}

impl PhaseScheduler {
    /// `scheduler` for one phase; backoff state comes from `shared`, offset by
    /// the iterations its colour already ran.
    fn new(scheduler: Scheduler, limits: Limits, shared: &Rc<RefCell<egg::BackoffScheduler>>, offset: usize) -> Self {
        match scheduler {
            Scheduler::Backoff => PhaseScheduler::Backoff {
                shared: shared.clone(),
                offset,
            },
            Scheduler::Simple => PhaseScheduler::Capped(limits.nodes),
        }
    }
}

impl egg::RewriteScheduler<crate::lang::Math, ColoredAnalysis> for PhaseScheduler {
    fn can_stop(&mut self, iteration: usize) -> bool {
        match self {
            PhaseScheduler::Backoff { shared, offset } => {
                egg::RewriteScheduler::<crate::lang::Math, ColoredAnalysis>::can_stop(
                    &mut *shared.borrow_mut(),
                    iteration + *offset,
                )
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
            PhaseScheduler::Backoff { shared, offset } => {
                shared.borrow_mut().search_rewrite(iteration + *offset, egraph, rewrite)
            }
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
    let scheduler = PhaseScheduler::new(scheduler, limits, &Rc::default(), 0);
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
    let scheduler = crate::nearest::NearestFirst::new(root, node_limit);
    run_phase_with(egraph, rules, color, scheduler, limits, deadline)
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
        phase: match color {
            Color::Red => "red",
            Color::Blue => "blue",
            Color::Green => "green",
        },
        round: 1,
        stop_reason: stop_reason_name(runner.stop_reason.as_ref()),
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
    pub stop_reason: String,
}

/// Runs rounds of RED, BLUE and GREEN, one iteration of each colour per round
/// (so the colours interleave as one runner with all the rules would), until a
/// round in which every colour ran and each saturated: then no rule of any colour
/// applies, the fixpoint one saturation with all the rules together reaches.
/// Each colour has `limits.iterations` iterations over all rounds; the node and
/// time limits stop everything. With the backoff scheduler each colour keeps its
/// bans from round to round.
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
    let backoff: HashMap<Color, Rc<RefCell<egg::BackoffScheduler>>> =
        colors.iter().map(|&c| (c, Rc::default())).collect();
    let mut used: HashMap<Color, usize> = colors.iter().map(|&c| (c, 0)).collect();
    let mut phases = Vec::new();
    let mut round = 0;
    let stop_reason = loop {
        if colors.is_empty() {
            break "saturated".to_string();
        }
        round += 1;
        let (mut all_saturated, mut skipped) = (true, false);
        let mut stopped = None;
        for &color in &colors {
            if used[&color] >= limits.iterations {
                skipped = true;
                continue;
            }
            let chosen = PhaseScheduler::new(scheduler, limits, &backoff[&color], used[&color]);
            let slice = Limits {
                iterations: 1,
                ..limits
            };
            let (next, mut report) = run_phase_with(egraph, rules, color, chosen, slice, deadline);
            egraph = next;
            report.round = round;
            *used.get_mut(&color).expect("a colour with rules") += report.iterations.max(1);
            all_saturated &= report.stop_reason == "saturated";
            let reason = report.stop_reason.clone();
            phases.push(report);
            if reason == "node_limit" || reason == "time_limit" {
                stopped = Some(reason);
                break;
            }
        }
        if let Some(reason) = stopped {
            break reason;
        }
        if all_saturated && !skipped {
            break "saturated".to_string();
        }
        // A colour out of iterations while the others have nothing left, or all out.
        if all_saturated || colors.iter().all(|c| used[c] >= limits.iterations) {
            break "iteration_limit".to_string();
        }
    };
    let fixpoint = Fixpoint {
        phases,
        rounds: round,
        stop_reason,
    };
    (egraph, fixpoint)
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
        let passed = !verification.input_equals_canonical.is_refuted() && verification.constant_conflicts.is_empty();
        phases.push(PhaseReport {
            phase: "extract",
            round: rounds,
            stop_reason: "done".into(),
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
