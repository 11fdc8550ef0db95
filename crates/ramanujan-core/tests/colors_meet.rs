//! A goal that needs both colours: RED expands, BLUE collects, and only a replica
//! that merged both streams proves it.

use ramanujan_core::Color;
use ramanujan_core::materialize::{Materialized, expr_terms};
use ramanujan_core::parse::parse_expr;
use ramanujan_core::replica::{Facts, ReplicaState};
use ramanujan_core::rules::RuleBook;
use ramanujan_core::saturate::{Limits, Scheduler};
use ramanujan_core::stream::{StreamInput, apply_stream};

const FACTORED: &str = "(pow (+ a b) 2)";
const EXPANDED: &str = "(+ (* a a) (+ (* 2 (* a b)) (* b b)))";

fn goal_state() -> (
    ReplicaState,
    ramanujan_core::term::TermKey,
    ramanujan_core::term::TermKey,
) {
    let mut facts = Facts::default();
    let l = expr_terms(&parse_expr(FACTORED).unwrap(), &mut facts);
    let r = expr_terms(&parse_expr(EXPANDED).unwrap(), &mut facts);
    let mut state = ReplicaState::new();
    state.record("user", facts).unwrap();
    (state, l, r)
}

fn stream(color: Color, agent: &str, state: &ReplicaState) -> ReplicaState {
    let rules = RuleBook::new(true, &[]).unwrap();
    apply_stream(
        color,
        agent,
        StreamInput::State(state.clone()),
        &rules,
        Scheduler::Backoff,
        Limits::default(),
    )
    .unwrap()
    .delta
}

fn proves(state: &ReplicaState, l: ramanujan_core::term::TermKey, r: ramanujan_core::term::TermKey) -> bool {
    Materialized::new(state).equivalent(l, r)
}

#[test]
fn red_alone_and_blue_alone_fail_but_merged_replicas_prove_it() {
    let (start, l, r) = goal_state();
    assert!(!proves(&start, l, r));

    let red = stream(Color::Red, "red-1", &start);
    let mut red_only = start.clone();
    red_only.merge(&red);
    assert!(!proves(&red_only, l, r), "RED alone must not prove it");

    let blue = stream(Color::Blue, "blue-1", &start);
    let mut blue_only = start.clone();
    blue_only.merge(&blue);
    assert!(!proves(&blue_only, l, r), "BLUE alone must not prove it");

    // The BLUE agent works on a replica that has merged RED's delta.
    let blue_after_red = stream(Color::Blue, "blue-1", &red_only);
    let mut merged = start.clone();
    merged.merge(&blue_after_red);
    merged.merge(&red);
    assert!(proves(&merged, l, r), "RED then BLUE, merged, must prove it");

    // Any merge order gives the same replica.
    let mut other = blue_after_red.clone();
    other.merge(&red);
    other.merge(&start);
    assert_eq!(other.digest(), merged.digest());
    assert!(proves(&other, l, r));
}
