//! One saturation is a fixpoint over the colours: rounds of RED, BLUE and GREEN
//! until a whole round changes nothing. With the built-in rules it reaches the
//! goals of egg's own arithmetic tests (`tests/math.rs`), which a single pass of
//! RED, then BLUE, then GREEN does not.

use ramanujan_core::Color;
use ramanujan_core::analysis::{ColoredAnalysis, EGraph};
use ramanujan_core::extract::CanonicalExtractor;
use ramanujan_core::parse::parse_expr;
use ramanujan_core::rules::{RuleBook, RuleSpec};
use ramanujan_core::saturate::{Limits, Saturation, SaturationReport, Scheduler, color_fixpoint, run_step};
use ramanujan_core::stop::Stop;
use std::time::{Duration, Instant};

fn limits() -> Limits {
    Limits {
        nodes: 10_000,
        iterations: 30,
        time: Duration::from_secs(20),
    }
}

/// Whether saturating `start` puts `goal` in its e-class (egg's `test_fn` check:
/// the goal is looked up, never added).
fn reaches(start: &str, goal: &str, rules: &RuleBook, scheduler: Scheduler, limits: Limits) -> (bool, Stop) {
    let mut egraph = EGraph::new(ColoredAnalysis::new(true));
    let root = egraph.add_expr(&parse_expr(start).unwrap());
    egraph.rebuild();
    let deadline = Instant::now() + limits.time;
    let (egraph, fixpoint) = color_fixpoint(egraph, rules, scheduler, limits, deadline);
    let found = egraph
        .lookup_expr(&parse_expr(goal).unwrap())
        .is_some_and(|g| egraph.find(g) == egraph.find(root));
    (found, fixpoint.stop_reason)
}

/// One saturation of `expr` with every built-in rule.
fn saturation(expr: &str) -> SaturationReport {
    saturation_within(expr, Scheduler::Backoff, limits())
}

/// One saturation of `expr` with every built-in rule, this scheduler and these limits.
fn saturation_within(expr: &str, scheduler: Scheduler, limits: Limits) -> SaturationReport {
    Saturation {
        expr: parse_expr(expr).unwrap(),
        rules: RuleBook::new(true, &[]).unwrap(),
        fold_constants: true,
        scheduler,
        limits,
        start: None,
    }
    .run()
}

fn canonical(expr: &str) -> (String, Stop, usize) {
    let report = saturation(expr);
    (report.canonical, report.stop_reason, report.rounds)
}

#[test]
fn math_simplify_add_needs_more_than_one_round() {
    // The rules reach their fixpoint here (19 e-nodes on 2026-12-02), and only
    // after more than one round of the colours.
    let (form, _, rounds) = canonical("(+ x (+ x (+ x x)))");
    assert_eq!(form, "(* 4 x)");
    assert!(rounds > 1, "{rounds}");
}

#[test]
fn small_expressions_reach_the_fixpoint() {
    for (expr, form) in [
        ("(+ (* x 1) (- y y))", "x"),
        ("(* 0 (+ p q))", "0"),
        ("(- (+ a 0) a)", "0"),
    ] {
        let (found, reason, _) = canonical(expr);
        assert_eq!((found.as_str(), reason), (form, Stop::Saturated), "{expr}");
    }
}

#[test]
fn math_simplify_const() {
    let (form, _, _) = canonical("(+ 1 (- a (* (- 2 1) a)))");
    assert_eq!(form, "1");
}

#[test]
fn math_powers() {
    let (form, _, _) = canonical("(* (pow 2 x) (pow 2 y))");
    assert_eq!(form, "(pow 2 (+ x y))");
}

#[test]
fn math_simplify_factor_as_an_equivalence() {
    let rules = RuleBook::new(true, &[]).unwrap();
    let (found, reason) = reaches(
        "(* (+ x 3) (+ x 1))",
        "(+ (+ (* x x) (* 4 x)) 3)",
        &rules,
        Scheduler::Backoff,
        limits(),
    );
    assert!(found, "stopped by {reason} without reaching the goal");
}

#[test]
fn math_associate_adds_with_egg_s_own_rules_and_runner() {
    let rule = |name: &str, lhs: &str, rhs: &str| RuleSpec {
        name: name.into(),
        lhs: lhs.into(),
        rhs: rhs.into(),
        color: Color::Red,
        bidirectional: false,
        nonzero: vec![],
        integer: vec![],
    };
    let rules = RuleBook::new(
        false,
        &[
            rule("comm-add", "(+ ?a ?b)", "(+ ?b ?a)"),
            rule("assoc-add", "(+ ?a (+ ?b ?c))", "(+ (+ ?a ?b) ?c)"),
        ],
    )
    .unwrap();
    let seven = Limits {
        iterations: 7,
        ..limits()
    };
    let start = "(+ 1 (+ 2 (+ 3 (+ 4 (+ 5 (+ 6 7))))))";
    let mut egraph = EGraph::new(ColoredAnalysis::new(false));
    let root = egraph.add_expr(&parse_expr(start).unwrap());
    egraph.rebuild();
    let deadline = Instant::now() + seven.time;
    let (egraph, fixpoint) = color_fixpoint(egraph, &rules, Scheduler::Simple, seven, deadline);
    // Seven iterations of RED in all, as egg's runner: the same 127 classes.
    assert_eq!(egraph.number_of_classes(), 127);
    assert_eq!(fixpoint.stop_reason, Stop::IterationLimit);
    assert_eq!(fixpoint.rounds, 7);
    let goal = parse_expr("(+ 7 (+ 6 (+ 5 (+ 4 (+ 3 (+ 2 1))))))").unwrap();
    let goal = egraph.lookup_expr(&goal).expect("the goal is in the e-graph");
    assert_eq!(egraph.find(goal), egraph.find(root));
}

#[test]
fn subtraction_and_negation_meet_in_one_class() {
    let rules = RuleBook::new(true, &[]).unwrap();
    for (start, goal) in [
        ("(- a b)", "(+ a (* -1 b))"),
        ("(neg a)", "(* -1 a)"),
        ("(+ a (neg b))", "(- a b)"),
        ("(pow (pow x 2) 3)", "(pow x 6)"),
        ("(- (* 3 y) y)", "(* 2 y)"),
    ] {
        let (found, reason) = reaches(start, goal, &rules, Scheduler::Backoff, limits());
        assert!(found, "{start} did not reach {goal} ({reason})");
    }
}

#[test]
fn conditions_keep_rules_sound() {
    let rules = RuleBook::new(true, &[]).unwrap();
    // (x^(1/2))^2 is not x for negative x: pow-of-pow needs an integer outer exponent.
    let (found, _) = reaches("(pow (pow x 2) 1/2)", "x", &rules, Scheduler::Backoff, limits());
    assert!(!found);
    // x/x is not 1 at x = 0: cancel-div needs a known non-zero constant.
    let (found, _) = reaches("(/ x x)", "1", &rules, Scheduler::Backoff, limits());
    assert!(!found);
    let (found, _) = reaches("(/ 3 3)", "1", &rules, Scheduler::Backoff, limits());
    assert!(found);
}

#[test]
fn a_blow_up_stops_at_its_limit_and_says_so() {
    let sum = (1..=12).fold("y".to_string(), |a, i| format!("(+ z{i} {a})"));
    let report = saturation_within(
        &sum,
        Scheduler::Simple,
        Limits {
            nodes: 2_000,
            ..limits()
        },
    );
    assert_eq!(report.stop_reason, Stop::NodeLimit);
    assert_eq!(report.phases.last().unwrap().phase, "extract");
}

#[test]
fn a_start_over_the_node_limit_stops_before_any_rule_runs() {
    let report = saturation_within(
        "(* (+ a b) (+ c d))",
        Scheduler::Backoff,
        Limits { nodes: 3, ..limits() },
    );
    assert_eq!(report.stop_reason, Stop::NodeLimit);
    assert!(
        report.phases.iter().all(|p| p.rules_applied.is_empty()),
        "{:?}",
        report.phases
    );
    assert_eq!(report.canonical, "(* (+ a b) (+ c d))");
}

#[test]
fn a_blow_up_without_a_node_limit_stops_at_its_time_limit_and_says_so() {
    let sum = (1..=16).fold("y".to_string(), |a, i| format!("(+ z{i} {a})"));
    let started = Instant::now();
    let report = saturation_within(
        &sum,
        Scheduler::Simple,
        Limits {
            nodes: usize::MAX,
            iterations: 1_000,
            time: Duration::from_millis(200),
        },
    );
    // The deadline passes during a turn or between two: either way the run
    // says the time limit stopped it.
    assert_eq!(report.stop_reason, Stop::TimeLimit);
    // The clock is read every few rules, not only between turns: the run ends
    // well before a 16-term sum under AC would saturate (never, in memory).
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}

/// Rewrites `expr` in one e-graph as the network does, one colour's step at a
/// time in the order `turns` (repeated), until every colour has had a step that
/// changed nothing; returns the canonical form.
fn interleaved(expr: &str, turns: &[Color]) -> String {
    let rules = RuleBook::new(true, &[]).unwrap();
    let mut egraph = EGraph::new(ColoredAnalysis::new(true));
    let root = egraph.add_expr(&parse_expr(expr).unwrap());
    egraph.rebuild();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut quiet = std::collections::HashSet::new();
    for &color in turns.iter().cycle().take(600) {
        let (next, step) = run_step(egraph, root, &rules, color, 100_000, 1, deadline);
        egraph = next;
        if step.stop_reason == Stop::Saturated {
            quiet.insert(color);
        } else {
            quiet.clear();
        }
        if quiet.len() == 3 {
            let form = CanonicalExtractor::new(&egraph)
                .expr(&egraph, egraph.find(root))
                .unwrap();
            return form.to_string();
        }
    }
    panic!("{expr}: no fixpoint in 600 steps of {turns:?}");
}

/// Whatever order the colours take turns in (the network's agents step when
/// their messages arrive), a fixpoint is the same one: the e-graph one
/// saturation reaches, so its canonical form. Pruning a class with a known
/// value to its constant is not monotone, so this holds only because the
/// analysis knows a value the moment a node is added wherever a built-in rule
/// would otherwise learn it a step later (`(* y 0)`): with plain constant
/// folding, RED rewrites `(* (+ a 2) 0)` before GREEN's `mul-zero` prunes it,
/// and `(+ (+ (* (+ a 2) (* a a)) a) 0)` ends on another fixpoint (found by the
/// network on `(* a (pow (+ 1 a) 2))`).
#[test]
fn colours_in_any_order_reach_the_saturation_s_fixpoint() {
    use Color::{Blue, Green, Red};
    let orders: [&[Color]; 5] = [
        &[Red, Blue, Green],
        &[Green, Blue, Red],
        &[Red, Red, Red, Blue, Green],
        &[Blue, Blue, Red, Red, Green],
        &[Red, Blue, Red, Blue, Red, Blue, Green],
    ];
    for expr in [
        "(+ (+ (* (+ a 2) (* a a)) a) 0)",
        "(* (- (* b 0) (+ a 3)) (- c (* a 2)))",
        "(+ (* (- a a) (+ b c)) (* (pow b 0) c))",
        "(- (* (+ a 1) (+ a 1)) (* 0 (- b 2)))",
        "(+ 1 (- a (* (- 2 1) a)))",
        "(* 0 (+ p q))",
        "(- (* 3 y) y)",
    ] {
        let one = saturation(expr);
        assert_eq!(one.stop_reason, Stop::Saturated, "{expr}");
        for turns in orders {
            // (The e-graphs can differ below classes no longer under the root:
            // a step rewrites only what its root reaches.)
            assert_eq!(interleaved(expr, turns), one.canonical, "{expr} in turns {turns:?}");
        }
    }
}
