//! One agent against bad, unknown, replayed and duplicated messages.

use ramanujan_agent::agent::{Agent, Rewriting, Share, WorkLimits};
use ramanujan_agent::protocol::{Body, Envelope};
use ramanujan_core::Color;
use ramanujan_core::parse::parse_expr;
use ramanujan_core::stop::Stop;
use std::collections::HashSet;

fn pair() -> (Agent, Agent) {
    let known: HashSet<String> = ["a".to_string(), "b".to_string()].into();
    let a = Agent::new(
        "a".into(),
        Color::Red,
        vec!["b".into()],
        known.clone(),
        WorkLimits::default(),
    );
    let b = Agent::new("b".into(), Color::Blue, vec!["a".into()], known, WorkLimits::default());
    (a, b)
}

#[test]
fn events_flow_and_replays_are_absorbed_and_counted() {
    let (mut a, mut b) = pair();
    let (_, out) = a.submit(&parse_expr("(* x (+ y z))").unwrap());
    assert_eq!(out.len(), 1);
    let event = out[0].clone();
    b.handle(event.clone());
    let digest = b.replica().digest();
    assert_eq!(digest, a.replica().digest());
    // The same message again (a replay or an at-least-once redelivery).
    assert!(b.handle(event.clone()).is_empty());
    assert_eq!(b.counters().duplicates, 1);
    assert_eq!(b.replica().digest(), digest);
    // The same facts under a new sequence number: merged idempotently.
    let again = Envelope { seq: 99, ..event };
    b.handle(again);
    assert_eq!(b.replica().digest(), digest);
    assert_eq!(b.counters().messages_received, 2);
}

#[test]
fn unknown_misaddressed_and_malformed_messages_are_rejected_and_counted() {
    let (mut a, mut b) = pair();
    let (_, out) = a.submit(&parse_expr("(+ x 1)").unwrap());
    let event = out[0].clone();
    let before = b.replica().clone();
    b.handle(Envelope {
        from: "mallory".into(),
        ..event.clone()
    });
    b.handle(Envelope {
        to: "c".into(),
        seq: 2,
        ..event.clone()
    });
    // An "event" whose clock claims more than one event would let a merge claim
    // facts it does not carry.
    let mut whole = a.replica().clone();
    a.submit(&parse_expr("(* x 2)").unwrap());
    whole.merge(a.replica());
    b.handle(Envelope {
        seq: 3,
        body: Body::Event {
            delta: whole.into(),
            about: Vec::new(),
        },
        ..event.clone()
    });
    assert_eq!(b.counters().rejected_unknown_sender, 1);
    assert_eq!(b.counters().rejected_misaddressed, 1);
    assert_eq!(b.counters().rejected_malformed, 1);
    assert_eq!(b.replica(), &before, "nothing merged");
    // Malformed JSON never reaches an agent: the envelope does not decode.
    assert!(serde_json::from_str::<Envelope>(r#"{"from":"a","to":"b","seq":1,"body":{"type":"event"}}"#).is_err());
    assert!(serde_json::from_str::<Envelope>(r#"{"from":"a","to":"b","seq":1,"body":{"type":"gossip"}}"#).is_err());
}

#[test]
fn anti_entropy_repairs_a_lost_event() {
    let (mut a, mut b) = pair();
    let _lost = a.submit(&parse_expr("(- x y)").unwrap());
    let (_, out) = a.submit(&parse_expr("(* x y)").unwrap());
    b.handle(out[0].clone());
    assert_ne!(a.replica().digest(), b.replica().digest());
    // b asks a; a answers with what b lacks and its clock; b pushes back nothing.
    let request = b.sync_tick();
    let reply = a.handle(request[0].clone());
    let push = b.handle(reply[0].clone());
    assert!(push.is_empty());
    assert_eq!(a.replica().digest(), b.replica().digest());
    assert_eq!(b.counters().syncs_completed, 1);
}

#[test]
fn rewriting_floods_a_delta_with_provenance() {
    let (mut a, _) = pair();
    a.submit(&parse_expr("(* x (+ y z))").unwrap());
    let out = a.work();
    assert_eq!(out.len(), 1);
    let Body::Event { delta, .. } = &out[0].body else {
        panic!("an event")
    };
    assert!(
        delta
            .equalities()
            .all(|e| e.provenance.color == Color::Red && &*e.provenance.agent == "a")
    );
    assert!(delta.equality_count() > 0);
}

#[test]
fn saving_the_journal_keeps_a_store_equal_to_the_replica() {
    use ramanujan_agent::store::{MemoryStore, ReplicaStore};
    let (mut b, mut a) = pair();
    let mut store = MemoryStore::default();
    let save = |agent: &mut Agent, store: &mut MemoryStore| {
        agent.save_to(store).unwrap();
        assert!(!agent.save_to(store).unwrap(), "nothing left to save");
        let loaded = store.load().unwrap();
        assert_eq!(loaded.digest(), agent.replica().digest());
        assert_eq!(loaded.clock(), agent.replica().clock());
    };
    for (i, expr) in ["(* x (+ y z))", "(+ x 1)", "(- (* 2 y) y)"].into_iter().enumerate() {
        // Facts arrive by events, by rewriting, and by anti-entropy.
        let (_, out) = a.submit(&parse_expr(expr).unwrap());
        for envelope in out {
            b.handle(envelope);
        }
        save(&mut b, &mut store);
        b.work();
        save(&mut b, &mut store);
        if i == 1 {
            let request = a.sync_with("a");
            let replies: Vec<Envelope> = request.into_iter().flat_map(|m| b.handle(m)).collect();
            for reply in replies {
                for push in a.handle(reply) {
                    b.handle(push);
                }
            }
            save(&mut b, &mut store);
        }
    }
    assert!(b.replica().term_count() > 10, "rewriting added facts");
}

#[test]
fn an_agent_at_max_terms_stops_rewriting_and_says_so() {
    let known: HashSet<String> = ["a".to_string()].into();
    let limits = WorkLimits {
        max_terms: 3,
        ..WorkLimits::default()
    };
    let mut a = Agent::new("a".into(), Color::Red, vec![], known, limits);
    a.submit(&parse_expr("(* x (+ y z))").unwrap());
    assert!(a.replica().term_count() >= 3);
    assert!(a.start_work().is_none(), "no rewriting past max_terms");
    assert_eq!(a.counters().rewrite_skipped_at_max_terms, 1);
    assert_eq!(a.counters().rewrite_steps, 0);
}

/// A step the clock cuts short is taken again, and ends at the submission's
/// iteration budget if none ever fits: never "stopped at the time limit" for
/// good because a machine was busy once (fails with a cut-short step left as
/// the last word, or one that counts no iteration: then it never ends).
#[test]
fn a_step_cut_short_by_the_clock_is_taken_again_within_the_budget() {
    let known: HashSet<String> = ["a".to_string()].into();
    let limits = WorkLimits {
        step_time: std::time::Duration::ZERO,
        goal_iterations: 7,
        ..WorkLimits::default()
    };
    let mut a = Agent::new("a".into(), Color::Red, vec![], known, limits);
    let (root, _) = a.submit(&parse_expr("(* x (+ y z))").unwrap());
    let mut steps = 0;
    while let Some(job) = a.start_work() {
        a.finish_work(job.run());
        steps += 1;
        assert!(steps <= 7, "at most the budget's iterations");
    }
    assert_eq!(steps, 7);
    assert_eq!(
        a.held_form(root).rewriting,
        Rewriting::Stopped {
            reason: Stop::IterationBudget
        }
    );
}

/// Cached views (canonical form and fingerprint of each submission) are
/// dropped exactly when news can have changed them: after every exchange,
/// asked between each, two agents answer what agents built from their
/// replicas from scratch answer.
#[test]
fn cached_forms_match_forms_built_from_scratch() {
    let (mut a, mut b) = pair();
    let mut roots = Vec::new();
    let mut to_b = Vec::new();
    for expr in [
        "(* x (+ y z))",
        "(+ (* x y) (* x z))",
        "(- (* 2 y) y)",
        "(+ y (+ z 0))",
        "(* (+ x 1) 0)",
    ] {
        let (root, out) = a.submit(&parse_expr(expr).unwrap());
        roots.push(root);
        to_b.extend(out);
    }
    let known: HashSet<String> = ["a".to_string(), "b".to_string()].into();
    for round in 0..12 {
        for env in std::mem::take(&mut to_b) {
            for back in b.handle(env) {
                a.handle(back);
            }
        }
        let mut to_a = b.work();
        to_a.extend(b.sync_tick());
        for env in to_a {
            to_b.extend(a.handle(env));
        }
        to_b.extend(a.work());
        to_b.extend(a.sync_tick());
        for agent in [&mut a, &mut b] {
            let mut fresh = Agent::new(
                "c".into(),
                Color::Green,
                Vec::new(),
                known.clone(),
                WorkLimits::default(),
            );
            fresh.restore(agent.replica().clone());
            for &root in &roots {
                let (cached, built) = (agent.held_form(root), fresh.held_form(root));
                assert_eq!(
                    (&cached.canonical, &cached.region),
                    (&built.canonical, &built.region),
                    "round {round}, {root}"
                );
            }
        }
    }
}

/// GREEN checks every equality it receives, not only the first
/// `verify_per_message` of a message: a false one placed after a hundred true
/// ones waits in the backlog, is refuted by a later tick, and the refutation
/// is flooded; a restarted GREEN agent checks everything again.
/// 100 true equalities `(+ x_i 0) = x_i` and a false one `(* y 2) = (+ y 2)`,
/// forged by agent `a`: the delta of the true ones, the delta of the false
/// one, and the false equality.
fn forged_equalities() -> (
    ramanujan_core::replica::ReplicaState,
    ramanujan_core::replica::ReplicaState,
    ramanujan_core::replica::Equality,
) {
    use ramanujan_core::materialize::expr_terms;
    use ramanujan_core::replica::{Equality, Facts, Provenance, ReplicaState};
    let provenance = Provenance {
        agent: "a".into(),
        rule: "forged".into(),
        color: Color::Blue,
    };
    let mut facts = Facts::default();
    for i in 0..100 {
        // (+ x_i 0) = x_i: true.
        let lhs = expr_terms(&parse_expr(&format!("(+ x{i} 0)")).unwrap(), &mut facts);
        let rhs = expr_terms(&parse_expr(&format!("x{i}")).unwrap(), &mut facts);
        facts
            .equalities
            .push(Equality::new(lhs, rhs, provenance.clone()).unwrap());
    }
    let lhs = expr_terms(&parse_expr("(* y 2)").unwrap(), &mut facts);
    let rhs = expr_terms(&parse_expr("(+ y 2)").unwrap(), &mut facts);
    let false_eq = Equality::new(lhs, rhs, provenance).unwrap();
    let mut sender = ReplicaState::new();
    let delta = sender.record("a", facts).unwrap();
    let last = sender
        .record(
            "a",
            Facts {
                equalities: vec![false_eq.clone()],
                ..Facts::default()
            },
        )
        .unwrap();
    (delta, last, false_eq)
}

/// A GREEN agent's `SyncPush` of `delta` from agent `a`.
fn push(seq: u64, delta: ramanujan_core::replica::ReplicaState) -> Envelope {
    Envelope {
        from: "a".into(),
        to: "g".into(),
        seq,
        body: Body::SyncPush { delta },
    }
}

/// Ticks a GREEN agent (rewriting if it has work, as a driver does) until its
/// backlog is checked; what it sent.
fn drain(green: &mut Agent) -> Vec<Envelope> {
    let mut out = Vec::new();
    let mut ticks = 0;
    while green.verify_backlog() > 0 {
        out.extend(green.work());
        out.extend(green.sync_tick());
        ticks += 1;
        assert!(ticks <= 20, "the backlog does not shrink");
    }
    out
}

#[test]
fn green_refutes_a_false_equality_hidden_past_its_per_message_cap() {
    let known: HashSet<String> = ["a".to_string(), "g".to_string()].into();
    let limits = WorkLimits {
        verify_per_message: 8,
        ..WorkLimits::default()
    };
    let mut green = Agent::new("g".into(), Color::Green, vec!["a".into()], known.clone(), limits);
    let (delta, last, false_eq) = forged_equalities();
    let mut merged = delta.clone();
    merged.merge(&last);
    let merged_copy = merged.clone();
    let mut out = green.handle(push(1, merged));
    assert!(
        !green.replica().is_refuted(false_eq.key()),
        "not within the first message's cap"
    );
    assert_eq!(green.verify_backlog(), 101 - 8);
    // GREEN checks its backlog on ticks when it has no rewriting to do.
    out.extend(drain(&mut green));
    assert!(green.replica().is_refuted(false_eq.key()));
    // A host that keeps agents between requests (Spin) keeps the backlog too.
    let mut half = Agent::new("g".into(), Color::Green, vec!["a".into()], known, limits);
    half.handle(push(1, merged_copy));
    let saved = rmp_serde::to_vec_named(&half.into_snapshot()).unwrap();
    let back = Agent::from_snapshot(rmp_serde::from_slice(&saved).unwrap(), limits);
    assert_eq!(back.verify_backlog(), 101 - 8);
    assert_eq!(green.counters().refuted, 1, "{:?}", green.counters());
    assert_eq!(green.counters().verified, 100, "{:?}", green.counters());
    let flooded = out.iter().any(|env| match &env.body {
        Body::Event { delta, .. } => delta.is_refuted(false_eq.key()),
        _ => false,
    });
    assert!(flooded, "the refutation was flooded");
    // A GREEN agent restored from the replica (without the refutation) checks it all again.
    let mut restarted = Agent::new("g".into(), Color::Green, vec!["a".into()], HashSet::new(), limits);
    let mut without = delta;
    without.merge(&last);
    restarted.restore(without);
    assert_eq!(restarted.verify_backlog(), 101);
}

/// GREEN agents share the checks as they share rewriting: with two of them,
/// each equality is checked by exactly one, every equality by one of them, and
/// the false one refuted by the agent whose share it is in (mutant: `checks`
/// answering true for every key makes each agent check all 101).
#[test]
fn green_agents_split_the_checks_and_miss_none() {
    let known: HashSet<String> = ["a".to_string(), "g".to_string()].into();
    let (delta, last, false_eq) = forged_equalities();
    let mut merged = delta;
    merged.merge(&last);
    let mut counts = Vec::new();
    let mut refuted_by = Vec::new();
    for rank in 0..2 {
        let mut green = Agent::new(
            "g".into(),
            Color::Green,
            vec!["a".into()],
            known.clone(),
            WorkLimits::default(),
        );
        let share = Share { rank, of: 2 };
        green.set_share(share);
        green.handle(push(1, merged.clone()));
        drain(&mut green);
        let c = green.counters();
        counts.push(c.verified + c.refuted + c.inconclusive);
        if green.replica().is_refuted(false_eq.key()) {
            refuted_by.push(rank);
            assert!(share.checks(false_eq.key()));
        }
        // Restored from its replica, it queues its share again, not everything.
        let mut restarted = Agent::new(
            "g".into(),
            Color::Green,
            vec!["a".into()],
            HashSet::new(),
            WorkLimits::default(),
        );
        restarted.set_share(share);
        restarted.restore(merged.clone());
        assert_eq!(restarted.verify_backlog() as u64, counts[rank]);
    }
    assert_eq!(counts.iter().sum::<u64>(), 101, "{counts:?}");
    assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
    assert_eq!(refuted_by.len(), 1, "refuted by one agent, the owner");
}

/// An agent loaded from a snapshot builds its e-graph only when it first needs
/// it (a Spin request that only reads state never does), from a replica that
/// may already hold news: it then acts exactly as the same agent loaded and
/// made to build it at once. Both take the same anti-entropy news (which names
/// no submission, so the agent queues only the submission it brings: the
/// others' rewriting is about their own e-graphs, which take facts from
/// events) and answer alike.
#[test]
fn an_agent_that_builds_its_e_graph_late_acts_as_one_that_built_it_at_once() {
    let (mut a, mut b) = pair();
    let mut roots = Vec::new();
    for expr in ["(* x (+ y z))", "(+ (* x y) (* x z))", "(* (+ x 1) 0)"] {
        let (root, out) = a.submit(&parse_expr(expr).unwrap());
        roots.push(root);
        for env in out {
            b.handle(env);
        }
    }
    // b steps every submission until none waits.
    for _ in 0..100 {
        if b.queued().is_empty() {
            break;
        }
        for env in b.work() {
            a.handle(env);
        }
    }
    assert!(b.queued().is_empty());
    let snapshot = b.into_snapshot();
    let mut late = Agent::from_snapshot(snapshot.clone(), WorkLimits::default());
    let mut early = Agent::from_snapshot(snapshot, WorkLimits::default());
    early.held_form(roots[0]);

    // The first news after loading comes by anti-entropy, which names no
    // submission: what a derived in messages that were lost, and a new
    // submission whose event was lost too.
    let (root, _lost) = a.submit(&parse_expr("(+ (* y x) (* z x))").unwrap());
    roots.push(root);
    let lost: usize = (0..6).map(|_| a.work().len()).sum();
    assert!(lost > 0, "a derives something the copies of b lack");
    let request = late.sync_with("a");
    assert_eq!(request, early.sync_with("a"));
    let reply: Vec<Envelope> = request.into_iter().flat_map(|env| a.handle(env)).collect();
    assert!(!reply.is_empty());
    for env in reply {
        assert_eq!(late.handle(env.clone()), early.handle(env));
    }
    let queued = early.queued();
    assert_eq!(
        queued,
        vec![root],
        "anti-entropy news queues the submission it brings, and only that"
    );
    assert_eq!(late.queued(), queued);
    for _ in 0..6 {
        assert_eq!(late.work(), early.work());
    }
    for &root in &roots {
        let (l, e) = (late.held_form(root), early.held_form(root));
        assert_eq!(
            (&l.canonical, &l.region, &l.rewriting),
            (&e.canonical, &e.region, &e.rewriting)
        );
    }
    assert_eq!(late.replica().digest(), early.replica().digest());
}

/// A replica that merged a false equality before its refutation arrived takes
/// it apart again: a RED agent unions `(* (+ x 1) 2) = (+ x 3)` from a forged
/// BLUE event and answers one form for both, then GREEN's refutation arrives
/// and it answers the forms it gave before, with the equality kept as a
/// refuted fact.
#[test]
fn an_agent_that_merged_a_false_equality_answers_without_it_once_refuted() {
    use ramanujan_core::replica::{Equality, Facts, Provenance, ReplicaState};
    let known: HashSet<String> = ["a", "b", "g"].map(String::from).into();
    let agent = |id: &str, color, neighbors: &[&str]| {
        let neighbors = neighbors.iter().map(|n| n.to_string()).collect();
        Agent::new(id.into(), color, neighbors, known.clone(), WorkLimits::default())
    };
    let (mut a, mut g) = (agent("a", Color::Red, &["b", "g"]), agent("g", Color::Green, &["a"]));
    let mut roots = Vec::new();
    for expr in ["(* (+ x 1) 2)", "(+ x 3)"] {
        let (root, out) = a.submit(&parse_expr(expr).unwrap());
        roots.push(root);
        for env in out.into_iter().filter(|e| e.to == "g") {
            assert!(g.handle(env).iter().all(|back| back.to != "a"), "nothing to refute yet");
        }
    }
    let forms = |a: &mut Agent| roots.iter().map(|&r| a.held_form(r).canonical).collect::<Vec<_>>();
    let before = forms(&mut a);
    assert_ne!(before[0], before[1]);

    let false_eq = Equality::new(
        roots[0],
        roots[1],
        Provenance {
            agent: "b".into(),
            rule: "unchecked".into(),
            color: Color::Blue,
        },
    )
    .unwrap();
    let delta = ReplicaState::new()
        .record(
            "b",
            Facts {
                equalities: vec![false_eq.clone()],
                ..Facts::default()
            },
        )
        .unwrap();
    let forged = Envelope {
        from: "b".into(),
        to: "a".into(),
        seq: 1,
        body: Body::Event {
            delta: delta.into(),
            about: vec![roots[0]],
        },
    };
    let flood = a.handle(forged);
    let merged = forms(&mut a);
    assert_eq!(merged[0], merged[1], "RED merged what it cannot check");

    // a's flood reaches GREEN, whose refutation comes back.
    let mut refutations = 0;
    for env in flood.into_iter().filter(|e| e.to == "g") {
        for back in g.handle(env).into_iter().filter(|e| e.to == "a") {
            refutations += 1;
            a.handle(back);
        }
    }
    assert!(refutations > 0, "GREEN answered with its refutation");
    assert!(a.replica().asserts(false_eq.key()) && a.replica().is_refuted(false_eq.key()));
    assert_eq!(forms(&mut a), before, "the refuted equality shapes no form");
}

/// An event about a submission is forwarded even by an agent that got its
/// facts first by anti-entropy (which names no submission), so the agents
/// that rewrite the submission still learn which facts are its own; and each
/// agent forwards it once, however many copies arrive.
#[test]
fn an_event_whose_facts_came_first_by_anti_entropy_is_still_forwarded_once() {
    let known: HashSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let agent = |id: &str, color, neighbors: &[&str]| {
        let neighbors = neighbors.iter().map(|s| s.to_string()).collect();
        Agent::new(id.into(), color, neighbors, known.clone(), WorkLimits::default())
    };
    let mut a = agent("a", Color::Red, &["b"]);
    let mut b = agent("b", Color::Blue, &["a", "c"]);
    let (root, out) = a.submit(&parse_expr("(* x (+ y z))").unwrap());
    let event = out.into_iter().find(|env| env.to == "b").unwrap();
    // b syncs with a before the event reaches it.
    for request in b.sync_with("a") {
        for reply in a.handle(request) {
            b.handle(reply);
        }
    }
    assert_eq!(b.replica().digest(), a.replica().digest());
    let forwards = |out: Vec<Envelope>| -> Vec<Envelope> {
        out.into_iter()
            .filter(|env| env.to == "c" && matches!(&env.body, Body::Event { about, .. } if about == &vec![root]))
            .collect()
    };
    assert_eq!(
        forwards(b.handle(event.clone())).len(),
        1,
        "forwarded, though no fact was new"
    );
    let copy = Envelope { seq: 99, ..event };
    assert!(forwards(b.handle(copy)).is_empty(), "and only once");
    // Neither copy was merged again: b's clock covered the event's dot.
    assert_eq!(b.counters().events_already_held, 2);
    assert_eq!(b.replica().digest(), a.replica().digest());
}

/// A forged sequence number near `u64::MAX` (or any from a clock far ahead)
/// is refused and not remembered, so the sender's honest messages still get
/// through; before an agent's life began (no clock) such a number does not
/// overflow either.
#[test]
fn a_sequence_number_no_peer_can_have_reached_is_refused_and_does_not_deafen() {
    const NOW_MS: u64 = 1_764_990_000_000; // December 2025
    let (mut a, mut b) = pair();
    a.begin_life((NOW_MS - 60_000) << 20);
    b.begin_life(NOW_MS << 20);
    b.set_time(5_000);
    let (_, out) = a.submit(&parse_expr("(* x (+ y z))").unwrap());
    let honest = out[0].clone();
    let two_hours_ahead = (NOW_MS + 7_200_000) << 20;
    for forged in [u64::MAX, u64::MAX - 4096, two_hours_ahead] {
        assert!(
            b.handle(Envelope {
                seq: forged,
                ..honest.clone()
            })
            .is_empty()
        );
    }
    assert_eq!(b.counters().rejected_implausible_seq, 3);
    assert_eq!((b.counters().duplicates, b.counters().messages_received), (0, 0));
    b.handle(honest.clone());
    assert_eq!(b.counters().messages_received, 1, "the honest message gets through");
    assert_eq!(b.replica().digest(), a.replica().digest());
    // Half an hour ahead is a clock off, not a forgery.
    b.handle(Envelope {
        seq: (NOW_MS + 1_800_000) << 20,
        ..honest.clone()
    });
    assert_eq!(b.counters().messages_received, 2);

    // No life begun: no clock to judge by, and no overflow either.
    let (_, mut c) = pair();
    c.handle(Envelope {
        seq: u64::MAX,
        ..honest.clone()
    });
    assert!(
        c.handle(Envelope {
            seq: u64::MAX,
            ..honest
        })
        .is_empty()
    );
    assert_eq!(c.counters().duplicates, 1);
}

/// Rules that change while a rewriting step is out with the old ones do not
/// let that step's "nothing more to derive" end the submission: it is taken
/// again with the new rules (mutant: `set_rules` ignoring the step out fails).
#[test]
fn rules_that_change_during_a_step_are_applied_after_it() {
    use ramanujan_core::rules::{RuleBook, RuleSpec};
    let known: std::collections::HashSet<String> = ["g".to_string()].into();
    let mut agent = Agent::new("g".into(), Color::Green, Vec::new(), known, WorkLimits::default());
    agent.set_rules(RuleBook::new(false, &[]).unwrap());
    let (root, _) = agent.submit(&parse_expr("(+ a 0)").unwrap());
    let job = agent.start_work().expect("the submission is queued");
    let zero = RuleSpec::new("zero", "(+ ?a 0)", "?a", Color::Green);
    agent.set_rules(RuleBook::new(false, &[zero]).unwrap());
    // The step ran with no rules: it derived nothing.
    agent.finish_work(job.run());
    for _ in 0..20 {
        agent.work();
    }
    assert_eq!(agent.held_form(root).canonical.as_deref(), Some("a"));
}
