//! Property tests: over random operation histories (with false equalities
//! asserted and refuted among them), merge is commutative, associative and
//! idempotent, and replicas that merge the same facts in any order have
//! identical digests and canonical forms, which no refuted equality shapes.

use proptest::prelude::*;
use ramanujan_core::Color;
use ramanujan_core::extract::CanonicalExtractor;
use ramanujan_core::materialize::{Materialized, ReplicaGraph, expr_terms};
use ramanujan_core::parse::parse_expr;
use ramanujan_core::replica::{Equality, Facts, Provenance, Refutation, ReplicaState};
use ramanujan_core::rules::RuleBook;
use ramanujan_core::saturate::{Limits, Scheduler};
use ramanujan_core::stream::{StreamInput, apply_stream};
use ramanujan_core::term::TermKey;
use std::sync::Arc;
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
    /// Agent asserts that two submissions (by index, wrapping) are equal: as a
    /// rule would that nobody checked.
    Assert { agent: usize, a: usize, b: usize },
    /// Agent refutes one of the equalities it holds (by index, wrapping).
    Refute { agent: usize, equality: usize },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..3, expr_strategy()).prop_map(|(a, e)| Op::Submit(a, e)),
        (0usize..3, prop::sample::select(Color::ALL.to_vec())).prop_map(|(a, c)| Op::Rewrite(a, c)),
        (0usize..3, 0usize..3).prop_map(|(from, to)| Op::Sync { from, to }),
        (0usize..3, 0usize..3, 0usize..8).prop_map(|(from, to, event)| Op::Deliver { from, to, event }),
        (0usize..3, 0usize..6, 0usize..6).prop_map(|(agent, a, b)| Op::Assert { agent, a, b }),
        (0usize..3, 0usize..16).prop_map(|(agent, equality)| Op::Refute { agent, equality }),
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
            Op::Assert { agent, a, b } => {
                let (Some(&a), Some(&b)) = (roots.get(a % roots.len().max(1)), roots.get(b % roots.len().max(1)))
                else {
                    continue;
                };
                let provenance = Provenance {
                    agent: format!("agent-{agent}").into(),
                    rule: "unchecked".into(),
                    color: Color::Blue,
                };
                let Some(eq) = Equality::new(a, b, provenance) else {
                    continue;
                };
                let facts = Facts {
                    equalities: vec![eq],
                    ..Facts::default()
                };
                let event = replicas[*agent].record(&format!("agent-{agent}"), facts).unwrap();
                events[*agent].push(event);
            }
            Op::Refute { agent, equality } => {
                let held: Vec<Equality> = replicas[*agent].equalities().cloned().collect();
                if held.is_empty() {
                    continue;
                }
                let name = format!("agent-{agent}");
                let facts = Facts {
                    refutations: vec![Refutation::of(&held[equality % held.len()], &name)],
                    ..Facts::default()
                };
                let event = replicas[*agent].record(&name, facts).unwrap();
                events[*agent].push(event);
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

        // Into an empty state a merge is a copy: the same state, digest and
        // deltas as merging fact by fact.
        for x in [a, b, c] {
            let mut noted = ReplicaState::new();
            noted.merge_noting(x, None);
            let mut copied = ReplicaState::new();
            copied.merge(x);
            prop_assert_eq!(&copied, &noted);
            prop_assert_eq!(copied.digest(), noted.digest());
            for y in [a, b, c] {
                prop_assert_eq!(copied.delta_since(y.clock()), noted.delta_since(y.clock()));
            }
        }

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

    /// `merge_news` merges as `merge_noting` does and answers the facts it
    /// would note; the merged state itself (not a copy) when all are news.
    #[test]
    fn merge_news_answers_what_merge_noting_notes(ops in prop::collection::vec(op_strategy(), 1..14)) {
        let (r, _) = run_history(&ops);
        for (held, incoming) in [(0, 1), (1, 2), (2, 0), (0, 0)] {
            let incoming = Arc::new(r[incoming].clone());
            let mut noting = r[held].clone();
            let mut noted = ReplicaState::new();
            let stats = noting.merge_noting(&incoming, Some(&mut noted));
            let mut merging = r[held].clone();
            let (news_stats, news) = merging.merge_news(&incoming);
            prop_assert_eq!(&merging, &noting);
            prop_assert_eq!(news_stats, stats);
            prop_assert_eq!(news.digest(), noted.digest());
            prop_assert_eq!(news.term_count() + news.equality_count(), noted.term_count() + noted.equality_count());
            let mut fresh = ReplicaState::new();
            let (_, all_news) = fresh.merge_news(&incoming);
            prop_assert!(Arc::ptr_eq(&all_news, &incoming));
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
    /// whole state gives, and so does the root's region alone; one that took
    /// the deltas without egg's rebuild and was rebuilt once at the end holds
    /// the same regions (the same fingerprints); a [`ReplicaGraph`] (whose
    /// rebuild repairs only what changed) that took them in another order
    /// holds the regions and status views one built from the whole state does.
    #[test]
    fn incremental_materialisation_and_regions_match_a_rebuild(ops in prop::collection::vec(op_strategy(), 1..14)) {
        let (r, roots) = run_history(&ops);
        let union = merged(&[&r[0], &r[1], &r[2]]);
        let mut state = ReplicaState::new();
        let mut grown = Materialized::empty(true);
        let mut deferred = Materialized::empty(true);
        let mut replica_graph = ReplicaGraph::empty(true);
        let mut other_state = ReplicaState::new();
        for part in [&r[2], &r[0], &r[1]] {
            let mut news = ReplicaState::new();
            state.merge_noting(part, Some(&mut news));
            grown.absorb(&state, &news);
            deferred.absorb_deferred(&state, &news);
        }
        for part in [&r[1], &r[2], &r[0]] {
            let mut news = ReplicaState::new();
            other_state.merge_noting(part, Some(&mut news));
            replica_graph.absorb_deferred(&other_state, &news);
            replica_graph.rebuild();
        }
        deferred.rebuild();
        // A replica graph folds `(- b (* b 1))` to 0 once `(* b 1) = b`
        // arrives, which egg does only if it knew that when it added the
        // difference; so it is held to its own build from the whole state.
        let replica_whole = ReplicaGraph::new(&union);
        for root in &roots {
            let fingerprint = grown.region(*root).map(|region| region.fingerprint());
            prop_assert_eq!(deferred.region(*root).map(|region| region.fingerprint()), fingerprint);
            // (Class ids are each e-graph's own.)
            let view = |g: &ReplicaGraph| g.form_view(*root).map(|v| (v.canonical.map(|e| e.to_string()), v.fingerprint));
            prop_assert_eq!(view(&replica_graph), view(&replica_whole));
            prop_assert_eq!(
                replica_graph.region(*root).map(|region| region.fingerprint()),
                replica_whole.region(*root).map(|region| region.fingerprint())
            );
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

/// A refutation is a fact: it changes the digest, travels by `delta_since`,
/// and a replica that had unioned the equality before the refutation arrived
/// takes it apart again, whichever order the two came in.
#[test]
fn a_refuted_equality_is_taken_out_of_every_replica_whichever_arrives_first() {
    let mut facts = Facts::default();
    let a = expr_terms(&parse_expr("(* x 2)").unwrap(), &mut facts);
    let b = expr_terms(&parse_expr("(+ x 3)").unwrap(), &mut facts);
    facts.roots.extend([a, b]);
    let mut origin = ReplicaState::new();
    origin.record("agent-0", facts).unwrap();
    let provenance = Provenance {
        agent: "agent-0".into(),
        rule: "unsound".into(),
        color: Color::Blue,
    };
    let false_eq = Equality::new(a, b, provenance).unwrap();
    let before_assertion = origin.clone();
    let asserted = origin
        .record(
            "agent-0",
            Facts {
                equalities: vec![false_eq.clone()],
                ..Facts::default()
            },
        )
        .unwrap();
    let before_refutation = origin.clone();
    let refutation = Refutation::of(&false_eq, "agent-1");
    let refuted = origin
        .record(
            "agent-1",
            Facts {
                refutations: vec![refutation.clone()],
                ..Facts::default()
            },
        )
        .unwrap();
    // States that differ in one equality, or in one refutation, have different digests.
    assert_ne!(
        before_assertion.digest(),
        before_refutation.digest(),
        "the digest counts equalities"
    );
    assert_ne!(
        before_refutation.digest(),
        origin.digest(),
        "the digest counts refutations"
    );
    assert!(origin.is_refuted(false_eq.key()));
    assert_eq!(origin.refutations().collect::<Vec<_>>(), vec![&refutation]);
    assert_eq!(origin.live_equalities().count(), 0);
    assert_eq!(origin.equality_count(), 1, "the equality stays, as a fact, refuted");

    // A replica that unioned the equality first, then learnt its refutation.
    let mut late = ReplicaState::new();
    let mut graph = Materialized::empty(true);
    let mut replica_graph = ReplicaGraph::empty(true);
    let mut news = ReplicaState::new();
    late.merge_noting(&before_refutation, Some(&mut news));
    graph.absorb(&late, &news);
    replica_graph.absorb_deferred(&late, &news);
    assert!(graph.equivalent(a, b), "merged before the refutation arrived");
    assert!(replica_graph.equivalent(a, b));
    let mut news = ReplicaState::new();
    late.merge_noting(&refuted, Some(&mut news));
    assert_eq!(news.refutation_count(), 1);
    graph.absorb(&late, &news);
    replica_graph.absorb_deferred(&late, &news);
    assert!(!graph.equivalent(a, b), "un-merged once refuted");
    assert!(!replica_graph.equivalent(a, b));
    assert_eq!(late, origin);

    // A replica that learnt the refutation before the equality never unions it.
    let mut early = ReplicaState::new();
    let mut graph = Materialized::empty(true);
    for part in [&refuted, &asserted, &before_refutation] {
        let mut news = ReplicaState::new();
        early.merge_noting(part, Some(&mut news));
        graph.absorb(&early, &news);
        assert!(!graph.equivalent(a, b));
    }
    assert_eq!(early.digest(), origin.digest());
    assert_eq!(canonical_forms(&early, &[a, b]), vec!["(* x 2)", "(+ x 3)"]);

    // Refutations travel by anti-entropy and over the wire.
    let mut peer = before_refutation.clone();
    peer.merge(&origin.delta_since(peer.clock()));
    assert_eq!(peer, origin);
    let back: ReplicaState = serde_json::from_str(&serde_json::to_string(&origin).unwrap()).unwrap();
    assert_eq!(back, origin);
    assert_eq!(back.digest(), origin.digest());
}

/// A merge that dropped refutations would break this law: each law-style
/// test above sees them, since histories refute.
#[test]
fn histories_refute() {
    let ops = vec![
        Op::Submit(0, "(+ a 1)".into()),
        Op::Submit(1, "(* b 2)".into()),
        Op::Assert { agent: 0, a: 0, b: 1 },
        Op::Sync { from: 0, to: 1 },
        Op::Refute { agent: 1, equality: 0 },
        Op::Sync { from: 1, to: 2 },
    ];
    let (r, roots) = run_history(&ops);
    assert_eq!(r[2].refutation_count(), 1);
    assert_eq!(r[0].refutation_count(), 0);
    let union = merged(&[&r[0], &r[1], &r[2]]);
    assert_eq!(union.refutation_count(), 1);
    let forms = canonical_forms(&union, &roots);
    assert_ne!(forms[0], forms[1], "{forms:?}");
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
