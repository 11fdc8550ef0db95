//! Property tests: over random operation histories, merge is commutative,
//! associative and idempotent, and replicas that merge the same facts in any
//! order have identical digests and canonical forms.

use proptest::prelude::*;
use ramanujan_core::Color;
use ramanujan_core::extract::CanonicalExtractor;
use ramanujan_core::materialize::{Materialized, expr_terms};
use ramanujan_core::parse::parse_expr;
use ramanujan_core::replica::{Facts, ReplicaState};
use ramanujan_core::rules::RuleBook;
use ramanujan_core::saturate::{Limits, Scheduler};
use ramanujan_core::stream::{StreamInput, apply_stream};
use ramanujan_core::term::TermKey;
use std::time::Duration;

fn expr_strategy() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(vec!["a", "b", "c"]).prop_map(String::from),
        (0i32..4).prop_map(|n| n.to_string()),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        (prop::sample::select(vec!["+", "*", "-"]), inner.clone(), inner)
            .prop_map(|(op, a, b)| format!("({op} {a} {b})"))
    })
}

#[derive(Debug, Clone)]
enum Op {
    /// Agent submits an expression.
    Submit(usize, String),
    /// Agent applies a colour's stream to its replica.
    Rewrite(usize, Color),
    /// Agent merges another agent's delta since its own clock.
    Sync { from: usize, to: usize },
    /// One of `from`'s recorded events (by index, wrapping) reaches `to`, out of
    /// order; events never delivered are lost.
    Deliver { from: usize, to: usize, event: usize },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..3, expr_strategy()).prop_map(|(a, e)| Op::Submit(a, e)),
        (0usize..3, prop::sample::select(Color::ALL.to_vec())).prop_map(|(a, c)| Op::Rewrite(a, c)),
        (0usize..3, 0usize..3).prop_map(|(from, to)| Op::Sync { from, to }),
        (0usize..3, 0usize..3, 0usize..8).prop_map(|(from, to, event)| Op::Deliver { from, to, event }),
    ]
}

fn run_history(ops: &[Op]) -> (Vec<ReplicaState>, Vec<TermKey>) {
    let rules = RuleBook::new(true, &[]).unwrap();
    let limits = Limits {
        nodes: 400,
        iterations: 3,
        time: Duration::from_secs(5),
    };
    let mut replicas = vec![ReplicaState::new(); 3];
    let mut events: Vec<Vec<ReplicaState>> = vec![Vec::new(); 3];
    let mut roots = Vec::new();
    for op in ops {
        match op {
            Op::Submit(agent, text) => {
                let mut facts = Facts::default();
                let root = expr_terms(&parse_expr(text).unwrap(), &mut facts);
                facts.roots.push(root);
                roots.push(root);
                let event = replicas[*agent].record(&format!("agent-{agent}"), facts).unwrap();
                events[*agent].push(event);
            }
            Op::Rewrite(agent, color) => {
                let input = StreamInput::State(replicas[*agent].clone());
                let out = apply_stream(
                    *color,
                    &format!("agent-{agent}"),
                    input,
                    &rules,
                    Scheduler::Simple,
                    limits,
                )
                .unwrap();
                replicas[*agent].merge(&out.delta);
                events[*agent].push(out.delta);
            }
            Op::Deliver { from, to, event } => {
                if !events[*from].is_empty() {
                    let event = &events[*from][event % events[*from].len()];
                    replicas[*to].merge(event);
                }
            }
            Op::Sync { from, to } => {
                let delta = replicas[*from].delta_since(replicas[*to].clock());
                replicas[*to].merge(&delta);
            }
        }
    }
    (replicas, roots)
}

fn merged(parts: &[&ReplicaState]) -> ReplicaState {
    let mut out = ReplicaState::new();
    for p in parts {
        out.merge(p);
    }
    out
}

fn canonical_forms(state: &ReplicaState, roots: &[TermKey]) -> Vec<String> {
    let m = Materialized::new(state);
    let extractor = CanonicalExtractor::new(&m.egraph);
    roots
        .iter()
        .map(|r| {
            m.class_of(*r)
                .and_then(|c| extractor.expr(&m.egraph, c))
                .map_or("-".into(), |e| e.to_string())
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn merge_is_a_semilattice(ops in prop::collection::vec(op_strategy(), 1..14)) {
        let (r, roots) = run_history(&ops);
        let (a, b, c) = (&r[0], &r[1], &r[2]);
        prop_assert_eq!(merged(&[a, b]), merged(&[b, a]));
        prop_assert_eq!(merged(&[&merged(&[a, b]), c]), merged(&[a, &merged(&[b, c])]));
        prop_assert_eq!(merged(&[a, a]), a.clone());

        // Every order of merging the three replicas gives the same digest and canonical forms.
        let orders = [[a, b, c], [a, c, b], [b, a, c], [b, c, a], [c, a, b], [c, b, a]];
        let first = merged(&orders[0]);
        let forms = canonical_forms(&first, &roots);
        for order in &orders[1..] {
            let m = merged(order);
            prop_assert_eq!(m.digest(), first.digest());
            prop_assert_eq!(canonical_forms(&m, &roots), forms.clone());
        }
    }

    #[test]
    fn delta_since_brings_a_peer_up_to_date(ops in prop::collection::vec(op_strategy(), 1..14)) {
        let (r, _) = run_history(&ops);
        let mut peer = r[1].clone();
        peer.merge(&r[0].delta_since(r[1].clock()));
        prop_assert_eq!(peer, merged(&[&r[0], &r[1]]));
    }

    /// Events delivered out of order, some lost: one round of anti-entropy by
    /// `delta_since` between every pair still brings every replica to the union,
    /// because a clock never claims an event whose facts did not arrive.
    #[test]
    fn anti_entropy_repairs_lost_and_reordered_deltas(ops in prop::collection::vec(op_strategy(), 1..20)) {
        let (mut r, _) = run_history(&ops);
        let union = merged(&[&r[0], &r[1], &r[2]]);
        for (from, to) in [(0, 1), (1, 2), (2, 0), (0, 1), (1, 2)] {
            let delta = r[from].delta_since(r[to].clock());
            r[to].merge(&delta);
        }
        for replica in &r {
            prop_assert_eq!(replica, &union);
        }
    }

    /// An agent's e-graph grown delta by delta (in the order its events and
    /// syncs arrived) gives each root the canonical form a rebuild from the
    /// whole state gives, and so does the root's region alone.
    #[test]
    fn incremental_materialisation_and_regions_match_a_rebuild(ops in prop::collection::vec(op_strategy(), 1..14)) {
        let (r, roots) = run_history(&ops);
        let union = merged(&[&r[0], &r[1], &r[2]]);
        let mut state = ReplicaState::new();
        let mut grown = Materialized::empty(true);
        for part in [&r[2], &r[0], &r[1]] {
            let mut news = ReplicaState::new();
            state.merge_noting(part, Some(&mut news));
            grown.absorb(&state, &news);
        }
        let rebuilt = canonical_forms(&union, &roots);
        let extractor = CanonicalExtractor::new(&grown.egraph);
        for (root, want) in roots.iter().zip(&rebuilt) {
            let whole = grown.class_of(*root).and_then(|c| extractor.expr(&grown.egraph, c)).map_or("-".into(), |e| e.to_string());
            prop_assert_eq!(&whole, want);
            let region = grown.region(*root).unwrap();
            let alone = CanonicalExtractor::new(&region.egraph)
                .expr(&region.egraph, region.class_of(*root).unwrap())
                .map_or("-".into(), |e| e.to_string());
            prop_assert_eq!(&alone, want);
        }
        // The digest kept as facts arrived is the one a fresh count gives.
        let recounted: ReplicaState = serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        prop_assert_eq!(state.digest(), recounted.digest());
        prop_assert_eq!(state.digest(), union.digest());
    }

    #[test]
    fn wire_round_trip_is_lossless(ops in prop::collection::vec(op_strategy(), 1..10)) {
        let (r, _) = run_history(&ops);
        let json = serde_json::to_string(&r[0]).unwrap();
        let back: ReplicaState = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, r[0].clone());
    }
}

#[test]
fn a_submitted_root_is_a_fact_of_its_own() {
    let mut facts = Facts::default();
    let root = expr_terms(&parse_expr("(+ a b)").unwrap(), &mut facts);
    let mut with_root = facts.clone();
    with_root.roots.push(root);
    let mut plain = ReplicaState::new();
    plain.record("agent-0", facts).unwrap();
    // Submitting terms already held records the root alone, and that is news.
    let mut submitted = plain.clone();
    let delta = submitted.record("agent-1", with_root).unwrap();
    assert_eq!((delta.term_count(), delta.roots().count()), (0, 1));
    assert!(submitted.is_root(root) && !plain.is_root(root));
    assert_ne!(plain.digest(), submitted.digest(), "the digest counts roots");
    assert_eq!(plain.merge(&delta).new_roots, 1);
    assert_eq!(plain, submitted);
}

#[test]
fn histories_do_rewrite_and_sync() {
    let ops = vec![
        Op::Submit(0, "(* a (+ b c))".into()),
        Op::Rewrite(0, Color::Red),
        Op::Submit(1, "(+ (* a b) (* a c))".into()),
        Op::Rewrite(1, Color::Blue),
        Op::Sync { from: 0, to: 2 },
        Op::Sync { from: 1, to: 2 },
    ];
    let (r, roots) = run_history(&ops);
    assert!(r[0].equality_count() > 0 && r[1].equality_count() > 0);
    assert_eq!(r[2], merged(&[&r[0], &r[1]]));
    let forms = canonical_forms(&r[2], &roots);
    assert_eq!(forms[0], forms[1], "expanded and factored forms meet: {forms:?}");
}
