//! An agent's memory estimate ([`Agent::approx_heap_bytes`], what the
//! dashboard shows per agent) against what the allocator says the agent
//! holds: the bytes dropping it frees. One test in this binary, so no other
//! test allocates while it counts.

use ramanujan_agent::agent::{Agent, WorkLimits};
use ramanujan_core::Color;
use ramanujan_core::parse::parse_expr;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::collections::HashSet;

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Agent `a` of `color`, after it and a neighbour of another colour took
/// `exprs` and rewrote them, passing their news to each other, until neither
/// had anything left to do; with each submission's form read (which builds
/// the replica's e-graph), the neighbour and every message dropped.
fn worked(color: Color, exprs: &[&str]) -> Agent {
    let known: HashSet<String> = ["a".to_string(), "b".to_string()].into();
    let other = if color == Color::Red { Color::Blue } else { Color::Red };
    let mut a = Agent::new(
        "a".into(),
        color,
        vec!["b".into()],
        known.clone(),
        WorkLimits::default(),
    );
    let mut b = Agent::new("b".into(), other, vec!["a".into()], known, WorkLimits::default());
    let mut roots = Vec::new();
    for expr in exprs {
        let (root, mut mail) = a.submit(&parse_expr(expr).unwrap());
        roots.push(root);
        for _ in 0..500 {
            mail.extend(a.work());
            mail.extend(b.work());
            if mail.is_empty() {
                break;
            }
            for envelope in std::mem::take(&mut mail) {
                let to = if envelope.to == "a" { &mut a } else { &mut b };
                mail.extend(to.handle(envelope));
            }
        }
    }
    for root in roots {
        a.held_form(root);
    }
    drop(b);
    a
}

#[test]
fn the_estimate_is_within_a_factor_of_what_the_agent_holds() {
    let many: Vec<String> = (0..40).map(|i| format!("(* (+ a{i} b) (+ c (* d {i})))")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let squares: Vec<String> = (0..12)
        .map(|i| format!("(- (* (+ x{i} y) (+ x{i} y)) (* (- x{i} y) (- x{i} y)))"))
        .collect();
    let squares: Vec<&str> = squares.iter().map(String::as_str).collect();
    // The constants were fitted on the first five; the last is held out.
    let workloads: [(&str, Color, &[&str]); 6] = [
        ("one small submission", Color::Red, &["(* 0 (+ p q))"]),
        (
            "factoring",
            Color::Blue,
            &["(+ (* a b) (* a c))", "(+ (* x y) (* x z))"],
        ),
        (
            "products",
            Color::Red,
            &["(* (+ a b) (+ a b))", "(* (+ a b) (+ c d))", "(* (+ x 1) (+ x 1))"],
        ),
        (
            "egg's arithmetic",
            Color::Red,
            &[
                "(+ (* x (+ y z)) (* (+ y z) w))",
                "(* (+ a (* 2 b)) (- a b))",
                "(/ (* x y) (* y z))",
                "(pow (+ a b) 2)",
            ],
        ),
        ("40 products", Color::Red, &many),
        ("12 differences of squares, GREEN", Color::Green, &squares),
    ];
    let idle = worked(Color::Green, &[]);
    assert!(
        idle.approx_heap_bytes() < 1024,
        "an agent that holds nothing is estimated at (about) nothing"
    );
    drop(idle);
    let mut report = Vec::new();
    for (name, color, exprs) in workloads {
        let agent = worked(color, exprs);
        let estimate = agent.approx_heap_bytes();
        let facts = agent.replica().term_count() + agent.replica().equality_count();
        let region = Region::new(ALLOCATOR);
        drop(agent);
        let change = region.change();
        let held = change.bytes_deallocated.saturating_sub(change.bytes_allocated);
        let ratio = estimate as f64 / held as f64;
        report.push(format!(
            "{name}: {facts} facts, held {held} B, estimate {estimate} B, ratio {ratio:.2}"
        ));
        eprintln!("{}", report.last().unwrap());
    }
    for line in &report {
        let ratio: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(
            (0.75..=1.33).contains(&ratio),
            "the estimate is off by more than 4/3:\n{}",
            report.join("\n")
        );
    }
}
