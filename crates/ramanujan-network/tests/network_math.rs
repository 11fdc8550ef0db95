//! The network does the math: agents that split the rewriting by colour settle
//! every submission on the canonical form one saturation with all the rules
//! reaches (`/egraph/saturate`), and their replicas hold that e-graph, not a
//! history of its names; and nothing false gets in (a refuted equality shapes
//! no answer).

use ramanujan_agent::agent::WorkLimits;
use ramanujan_agent::network::{Network, SubmissionStatus};
use ramanujan_agent::protocol::{Body, Envelope};
use ramanujan_core::Color;
use ramanujan_core::parse::parse_expr;
use ramanujan_core::replica::{Equality, Facts, Provenance, ReplicaState};
use ramanujan_core::rules::RuleBook;
use ramanujan_core::saturate::{Limits, Saturation, SaturationReport, Scheduler};
use ramanujan_core::stop::Stop;
use ramanujan_core::term::TermKey;
use ramanujan_network::{InProcessNetwork, NetworkConfig, TopologyKind};
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

fn saturate(expr: &str) -> SaturationReport {
    saturate_within(expr, Limits::default().nodes)
}

/// One saturation with all the built-in rules, at most `nodes` e-nodes.
fn saturate_within(expr: &str, nodes: usize) -> SaturationReport {
    Saturation {
        expr: parse_expr(expr).unwrap(),
        rules: RuleBook::new(true, &[]).unwrap(),
        fold_constants: true,
        scheduler: Scheduler::Backoff,
        limits: Limits {
            time: Duration::from_secs(30),
            nodes,
            ..Limits::default()
        },
        start: None,
    }
    .run()
}

fn network(topology: TopologyKind) -> std::sync::Arc<InProcessNetwork> {
    network_with(topology, 2_000)
}

/// Submissions that do not saturate stop at their budget of `goal_nodes` (so
/// the tests stay short in debug builds).
fn network_with(topology: TopologyKind, goal_nodes: usize) -> std::sync::Arc<InProcessNetwork> {
    InProcessNetwork::start(NetworkConfig {
        topology,
        sync_interval: Duration::from_millis(100),
        work: WorkLimits {
            goal_nodes,
            max_terms: 1_000_000,
            ..WorkLimits::default()
        },
        ..NetworkConfig::default()
    })
    .unwrap()
}

/// Submits `expr` and waits (bounded) until the network says it is settled.
fn settle(network: &InProcessNetwork, expr: &str) -> SubmissionStatus {
    let id = network.submit_expr(&parse_expr(expr).unwrap()).unwrap().id;
    wait_settled(network, &id, expr, Duration::from_secs(60))
}

/// Waits (bounded) until the network says the submission `id` is settled.
fn wait_settled(network: &InProcessNetwork, id: &str, expr: &str, within: Duration) -> SubmissionStatus {
    let started = Instant::now();
    loop {
        let status = network.submission_status(id).unwrap();
        if status.settled {
            return status;
        }
        assert!(
            started.elapsed() < within,
            "{expr} did not settle in {within:?}: {status:?}"
        );
        // Each agent answers from its cached view of the submission.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until no agent has rewriting left and every message sent
/// has been taken by its addressee (accepted, a duplicate or refused).
fn wait_quiet(network: &InProcessNetwork, within: Duration) {
    let started = Instant::now();
    loop {
        let (sent, taken) = network
            .agent_ids()
            .iter()
            .map(|id| now(network.agent_state(id.clone())).unwrap().counters)
            .fold((0, 0), |(sent, taken), c| {
                let refused = c.rejected_unknown_sender + c.rejected_misaddressed;
                (
                    sent + c.messages_sent,
                    taken + c.messages_received + c.duplicates + refused,
                )
            });
        if network.is_converged() && sent == taken + network.dropped() {
            return;
        }
        assert!(
            started.elapsed() < within,
            "the network is not quiet after {within:?}: {sent} messages sent, {taken} taken"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Terms plus equalities in the largest replica.
fn facts_per_replica(network: &InProcessNetwork) -> usize {
    network
        .agent_ids()
        .iter()
        .map(|id| {
            let r = network.replica(id).unwrap();
            r.term_count() + r.equality_count()
        })
        .max()
        .unwrap()
}

fn random_expr(rng: &mut impl Rng, depth: u32) -> String {
    random_expr_over(rng, depth, &["a", "b", "c"], 0.3)
}

/// A random expression of `+`, `*` and `-` at most `depth` deep over `vars` and
/// the constants 0 to 3; each inner position is a leaf with probability `leaf`.
fn random_expr_over(rng: &mut impl Rng, depth: u32, vars: &[&str], leaf: f64) -> String {
    if depth == 0 || rng.random_bool(leaf) {
        return if rng.random_bool(0.6) {
            vars[rng.random_range(0..vars.len())].to_string()
        } else {
            rng.random_range(0..4).to_string()
        };
    }
    let op = ["+", "*", "-"][rng.random_range(0..3)];
    let (l, r) = (
        random_expr_over(rng, depth - 1, vars, leaf),
        random_expr_over(rng, depth - 1, vars, leaf),
    );
    format!("({op} {l} {r})")
}

/// egg's arithmetic test expressions that fit the language, and a few products.
const EGG_MATH: &[&str] = &[
    "(+ x (+ x (+ x x)))",
    "(+ 1 (- a (* (- 2 1) a)))",
    "(* (pow 2 x) (pow 2 y))",
    "(* 0 (+ p q))",
    "(+ (* a b) (* a c))",
    "(- (* 3 y) y)",
];

/// Each expression on a fresh network: the settled form is the saturation's
/// wherever that saturation reaches its fixpoint.
/// With `bound_size`, a submission whose saturation reaches the fixpoint leaves
/// replicas within 3× its e-graph.
fn check(topology: TopologyKind, exprs: &[String], bound_size: bool) {
    for expr in exprs {
        let network = network(topology);
        let status = settle(&network, expr);
        let one = saturate(expr);
        let form = status.canonical[0].1.clone().unwrap();
        // Where one saturation stops at a limit, its form is where that limit
        // cut it, and the network's is where the budgets cut: only a fixpoint
        // is the same for both.
        if one.stop_reason == Stop::Saturated {
            assert_eq!(form, one.canonical, "{expr}: network against one saturation");
        }
        let facts = facts_per_replica(&network);
        // The replica holds the input's own terms even where the saturation pruned
        // them (a class with a constant value keeps only the constant), so the
        // bound counts them beside the saturation's e-nodes.
        let input = parse_expr(expr).unwrap().len();
        eprintln!(
            "{expr}: {form}, {facts} facts per replica; one saturation: {} e-nodes ({}), input {input}",
            one.nodes, one.stop_reason
        );
        assert!(
            !bound_size || one.stop_reason != Stop::Saturated || facts <= 3 * (one.nodes + input),
            "{expr}: {facts} facts per replica; one saturation has {} e-nodes, the input {input}",
            one.nodes
        );
        network.shutdown();
    }
}

#[test]
fn nine_agents_settle_egg_s_expressions_on_the_saturation_s_forms_in_small_replicas() {
    let exprs: Vec<String> = EGG_MATH.iter().map(|s| s.to_string()).collect();
    check(TopologyKind::Sierpinski, &exprs, true);
}

#[test]
fn nine_agents_settle_random_expressions_on_the_saturation_s_forms() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
    let exprs: Vec<String> = (0..16).map(|_| random_expr(&mut rng, 3)).collect();
    check(TopologyKind::Sierpinski, &exprs, false);
}

/// The equivalence goal over a few hundred random expressions (depth ≤ 4
/// over four variables and small constants, each on a fresh network): wherever
/// one saturation reaches its fixpoint (within 400 e-nodes, which keeps the
/// debug-build test short), the nine agents settle on its form, every colour
/// saturated but in at most three cases (see the end). Expressions that one saturation cannot finish are counted and
/// left out: there the two forms are where two different limits cut, not a
/// fixpoint.
///
/// Until 2026-12-02 about one run in three had a case or two where RED and BLUE
/// spent their whole budget and settled elsewhere (for
/// `(+ (+ (* (+ a 2) (* a a)) a) 0)`, on `(* a (pow (+ 1 a) 2))`): RED rewrote
/// `(* (+ a 2) 0)` before GREEN's `mul-zero` pruned it, which one saturation
/// never does, and each step re-made pruned nodes, so it never counted as
/// saturated. `ramanujan_core`'s `colours_in_any_order_reach_the_saturation_s_fixpoint`
/// pins both causes down.
#[test]
fn nine_agents_settle_hundreds_of_random_expressions_on_the_saturation_s_forms() {
    const CASES: usize = 250;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let mut seen = std::collections::HashSet::new();
    let (mut checked, mut unfinished) = (0, 0);
    let mut budget_stops: Vec<String> = Vec::new();
    let started = Instant::now();
    while checked < CASES {
        let expr = random_expr_over(&mut rng, 4, &["a", "b", "c", "d"], 0.25);
        if !seen.insert(expr.clone()) {
            continue;
        }
        let one = saturate_within(&expr, 400);
        if one.stop_reason != Stop::Saturated {
            unfinished += 1;
            continue;
        }
        let network = network(TopologyKind::Sierpinski);
        let status = settle(&network, &expr);
        network.shutdown();
        let forms: std::collections::BTreeSet<_> = status.canonical.iter().map(|(_, f)| f.clone()).collect();
        checked += 1;
        assert_eq!(
            forms.into_iter().collect::<Vec<_>>(),
            vec![Some(one.canonical.clone())],
            "{expr}: the network against one saturation ({} e-nodes); network: {:?}",
            one.nodes,
            status.rewriting
        );
        if !status.rewriting.iter().all(|c| c.state == "saturated") {
            budget_stops.push(format!("{expr}: {:?}", status.rewriting));
        }
    }
    eprintln!(
        "{checked} random expressions settled on the saturation's form in {:?}; {unfinished} left out (no fixpoint within 400 e-nodes); colours stopped at a budget instead of saturating: {budget_stops:?}",
        started.elapsed()
    );
    // Whether a fixpoint is reached at all can depend on the order the
    // colours step in: the built-in rules do not terminate in general (AC with
    // distribution), and pruning a class to its constant is not monotone. In
    // about one run in four, `(- (- a (* a 1)) (- a c))` has RED step three
    // times before GREEN's `mul-one` lands, and then RED and BLUE grow sums
    // without end (RED, RED, RED, BLUE, GREEN on one e-graph passes a million
    // e-nodes; one saturation saturates at 400). Each stops at its budget and
    // says so, and the form is still the saturation's (asserted above); more
    // than a few such cases would be a regression.
    assert!(budget_stops.len() <= 3, "{budget_stops:#?}");
}

#[test]
fn forty_eight_agents_settle_egg_s_expressions_on_the_saturation_s_forms_in_small_replicas() {
    let exprs: Vec<String> = EGG_MATH.iter().map(|s| s.to_string()).collect();
    let expander = TopologyKind::Ramanujan { agents: 48, degree: 4 };
    check(expander, &exprs, true);
}

/// A network that has taken `history` submissions (random, depth ≤ 3, with
/// 50-term budgets) and gone quiet; answers it.
fn long_running(history: usize) -> std::sync::Arc<InProcessNetwork> {
    let network = network_with(TopologyKind::Sierpinski, 50);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(500);
    let started = Instant::now();
    for _ in 0..history {
        let expr = random_expr(&mut rng, 3);
        network.submit_expr(&parse_expr(&expr).unwrap()).unwrap();
    }
    // Until every agent holds the same facts and none has rewriting left.
    while !network.is_converged() {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the history did not quiesce in 900 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let facts = facts_per_replica(&network);
    eprintln!(
        "{history} submissions done in {:?}; {facts} facts per replica",
        started.elapsed()
    );
    network
}

/// Settles `expr` on `network` and checks its form.
fn settles_to(network: &InProcessNetwork, expr: &str, want: &str) {
    let asked = Instant::now();
    let status = settle(network, expr);
    eprintln!("{expr} settled in {:?}", asked.elapsed());
    assert_eq!(status.canonical[0].1.as_deref(), Some(want), "{:?}", status.rewriting);
}

/// The long-running goal: a network that has taken 500 submissions
/// still rewrites a new one on its own budget. Each submission is rewritten in
/// its own region, nearest its root first, so neither the size of the replica
/// nor what other submissions put in shared classes stops it.
///
/// New submissions whose one saturation reaches its fixpoint reach it there too,
/// every colour saturated, and add facts within 3× that saturation's e-nodes:
/// each is rewritten in its own e-graph, not in the classes it shares with the
/// history (until 2026-12-03 RED and BLUE spent their whole budget on what
/// factoring and the AC rules made of other submissions' terms there).
#[test]
fn a_network_that_took_500_submissions_still_simplifies_and_factors_new_ones() {
    let network = long_running(500);
    settles_to(&network, "(* 0 (+ p q))", "0");
    settles_to(&network, "(+ (* a b) (* a c))", "(* a (+ b c))");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(501);
    let (mut checked, mut seen) = (0, HashSet::new());
    while checked < 10 {
        let expr = random_expr_over(&mut rng, 3, &["a", "b", "c"], 0.15);
        let one = saturate_within(&expr, 40);
        if one.stop_reason != Stop::Saturated || parse_expr(&expr).unwrap().len() < 5 || !seen.insert(expr.clone()) {
            continue;
        }
        let before = facts_per_replica(&network);
        let status = settle(&network, &expr);
        let added = facts_per_replica(&network) - before;
        let input = parse_expr(&expr).unwrap().len();
        eprintln!("{expr}: {added} facts added; one saturation: {} e-nodes", one.nodes);
        assert!(
            status.rewriting.iter().all(|c| c.state == "saturated"),
            "{expr}: one saturation reaches its fixpoint ({} e-nodes), every colour must too: {:?}",
            one.nodes,
            status.rewriting
        );
        assert!(
            added <= 3 * (one.nodes + input),
            "{expr}: {added} facts added; one saturation has {} e-nodes, the input {input}",
            one.nodes
        );
        checked += 1;
    }
    network.shutdown();
}

/// A submission that blows up (a 30-term sum under associativity and
/// commutativity) stops at its budget and says so; the others settle meanwhile.
#[test]
fn a_blow_up_stops_at_its_budget_while_other_submissions_settle() {
    let network = network_with(TopologyKind::Sierpinski, 1_000);
    let sum = (1..30).fold("x0".to_string(), |acc, i| format!("(+ x{i} {acc})"));
    let blow_up = network.submit_expr(&parse_expr(&sum).unwrap()).unwrap().id;
    let small = settle(&network, "(+ (* a b) (* a c))");
    assert_eq!(small.canonical[0].1.as_deref(), Some("(* a (+ b c))"));
    let blown = wait_settled(&network, &blow_up, "the 30-term sum", Duration::from_secs(300));
    let reasons: Vec<Stop> = blown
        .rewriting
        .iter()
        .flat_map(|c| c.stop_reasons.iter().copied())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| matches!(r, Stop::IterationBudget | Stop::NodeBudget)),
        "the blow-up names its spent budget: {:?}",
        blown.rewriting
    );
    network.shutdown();
}

/// An agent given work starts on it at once, not when it next wakes by
/// itself: the entry agent of a submission may be one of its rewriters, and a
/// status read may be what queues a step. Idle agents here wake by themselves
/// only every 6 s (no anti-entropy for a minute), so each of these small
/// submissions settling within 3 s shows the work woke them. (Fails with the
/// entry agent left asleep after a submission, or a restarted one after the
/// read that queued its step.)
#[test]
fn agents_given_work_start_on_it_at_once() {
    let network = InProcessNetwork::start(NetworkConfig {
        sync_interval: Duration::from_secs(60),
        health_timeout: Duration::from_secs(60),
        ..NetworkConfig::default()
    })
    .unwrap();
    // 18 submissions: each agent is the entry twice; which colour owns each
    // is a hash, so entry agents are owners of several.
    for expr in [
        "0",
        "x",
        "(+ x 0)",
        "(* y 1)",
        "(- 2 4)",
        "(+ a b)",
        "(* a b)",
        "(- c c)",
        "(+ 1 2)",
        "(* 3 z)",
        "(+ u (* 0 v))",
        "(* 2 (+ p q))",
        "(- m 1)",
        "(+ n n)",
        "(pow w 1)",
        "(* k (- k k))",
        "(+ 7 r)",
        "s",
    ] {
        let id = network.submit_expr(&parse_expr(expr).unwrap()).unwrap().id;
        wait_settled(&network, &id, expr, Duration::from_secs(3));
    }
    // Restarted agents know no submission until a status read asks for one:
    // the read queues the step, and wakes them for it.
    let id = network.submit_expr(&parse_expr("(+ 2 (* a 3))").unwrap()).unwrap().id;
    wait_settled(&network, &id, "(+ 2 (* a 3))", Duration::from_secs(3));
    // Settled says nothing of messages still in flight: one about the
    // submission reaching a restarted agent would queue its step too.
    wait_quiet(&network, Duration::from_secs(10));
    for agent in network.agent_ids() {
        network.restart_agent(agent).unwrap();
    }
    let again = network.submission_status(&id).unwrap();
    assert!(!again.settled, "restarted rewriters have not stepped: {again:?}");
    wait_settled(&network, &id, "(+ 2 (* a 3)) after a restart", Duration::from_secs(3));
    network.shutdown();
}

/// The answer of an in-process network's future, which is ready at once.
fn now<T>(future: impl Future<Output = T>) -> T {
    let Poll::Ready(answer) = std::pin::pin!(future).poll(&mut Context::from_waker(Waker::noop())) else {
        panic!("the in-process network answers at once");
    };
    answer
}

/// The one form every agent holds of a settled submission.
fn form(status: &SubmissionStatus) -> String {
    let forms: HashSet<_> = status.canonical.iter().map(|(_, f)| f.clone()).collect();
    assert_eq!(forms.len(), 1, "{status:?}");
    forms.into_iter().next().flatten().unwrap()
}

/// Refuted facts never shape an answer: a false equality that enters the
/// network through a BLUE agent is refuted by GREEN, the refutation reaches
/// every replica, and no canonical form uses the equality. (That a replica
/// which had unioned it takes it apart again is `crdt_laws.rs`'s test: here
/// GREEN refutes within milliseconds, so most agents never union it.)
#[test]
fn a_false_equality_sent_through_a_blue_agent_is_refuted_everywhere_and_shapes_no_answer() {
    let network = network(TopologyKind::Sierpinski);
    let (left, right) = ("(* (+ x 1) 2)", "(+ x 3)");
    let mut roots: Vec<(TermKey, String)> = Vec::new();
    for expr in [left, right] {
        let id = network.submit_expr(&parse_expr(expr).unwrap()).unwrap().id;
        let settled = wait_settled(&network, &id, expr, Duration::from_secs(60));
        assert_eq!(form(&settled), saturate(expr).canonical);
        roots.push((id.parse().unwrap(), id));
    }

    // A BLUE agent "asserts" (* (+ x 1) 2) = (+ x 3), as an unchecked rule
    // would, in an event sent to one of its neighbours.
    let topology = network.topology();
    let blue = (0..topology.len())
        .find(|&i| topology.agent(i, WorkLimits::default()).unwrap().color() == Color::Blue)
        .unwrap();
    let blue_agent = topology.agent(blue, WorkLimits::default()).unwrap();
    let neighbor = blue_agent.neighbors()[0].clone();
    let provenance = Provenance {
        agent: blue_agent.id().into(),
        rule: "unchecked".into(),
        color: Color::Blue,
    };
    let false_eq = Equality::new(roots[0].0, roots[1].0, provenance).unwrap();
    let mut forger = ReplicaState::new();
    let delta = forger
        .record(
            "forger",
            Facts {
                equalities: vec![false_eq.clone()],
                ..Facts::default()
            },
        )
        .unwrap();
    // Numbered just after the BLUE agent's latest message, as its own would be.
    let latest = now(network.agent_messages(blue_agent.id().to_string()))
        .unwrap()
        .iter()
        .filter(|m| m.direction == "out")
        .map(|m| m.seq)
        .max()
        .unwrap();
    let envelope = Envelope {
        from: blue_agent.id().to_string(),
        to: neighbor,
        seq: latest + 1_000,
        body: Body::Event {
            delta: delta.into(),
            about: vec![roots[0].0],
        },
    };
    now(network.deliver(envelope)).unwrap();

    // Every replica ends holding the equality and its refutation, with one digest.
    let started = Instant::now();
    loop {
        let all_refuted = network.agent_ids().iter().all(|id| {
            let replica = network.replica(id).unwrap();
            replica.asserts(false_eq.key()) && replica.is_refuted(false_eq.key())
        });
        if all_refuted && network.is_converged() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not refuted everywhere in 60 s: {:?}",
            network
                .agent_ids()
                .iter()
                .map(|id| network.replica(id).unwrap().refutation_count())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let digests: HashSet<String> = network.digests().into_iter().collect();
    assert_eq!(digests.len(), 1);
    for id in network.agent_ids() {
        let state = now(network.agent_state(id.clone())).unwrap();
        assert_eq!(state.refuted_equalities, 1, "{id} reports the refutation");
    }

    // Both submissions settle again on their own saturation's forms: the
    // false equality shapes neither.
    for ((_, id), expr) in roots.iter().zip([left, right]) {
        let settled = wait_settled(&network, id, expr, Duration::from_secs(60));
        assert_eq!(form(&settled), saturate(expr).canonical, "{expr}");
    }
    network.shutdown();
}

/// Rules given to a running network reach every agent, in its colour, and
/// re-open what the agents had finished: `(+ a 0)` settles as it is with no
/// rules, then on `a` once GREEN's `zero` arrives; a restarted agent runs
/// them too; rules that do not compile change nothing.
#[test]
fn rules_given_to_a_running_network_rewrite_what_had_settled() {
    let network = InProcessNetwork::start(NetworkConfig {
        sync_interval: Duration::from_millis(100),
        builtin_rules: false,
        ..NetworkConfig::default()
    })
    .unwrap();
    let expr = "(+ a 0)";
    let id = network.submit_expr(&parse_expr(expr).unwrap()).unwrap().id;
    let before = wait_settled(&network, &id, expr, Duration::from_secs(60));
    assert_eq!(form(&before), "(+ a 0)", "{before:?}");

    let bad = ramanujan_core::rules::RuleSpec {
        name: "bad".into(),
        lhs: "(+ ?a 0)".into(),
        rhs: "?b".into(),
        color: Color::Green,
        bidirectional: false,
        nonzero: Vec::new(),
        integer: Vec::new(),
    };
    assert!(network.set_rules(vec![bad.clone()]).is_err());
    let zero = ramanujan_core::rules::RuleSpec {
        name: "zero".into(),
        rhs: "?a".into(),
        ..bad
    };
    assert!(network.set_rules(vec![zero.clone()]).unwrap());
    assert!(
        !network.set_rules(vec![zero]).unwrap(),
        "the same rules again change nothing"
    );
    let started = Instant::now();
    loop {
        let status = network.submission_status(&id).unwrap();
        if status.settled && form(&status) == "a" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "not rewritten: {status:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Restarted agents run the rules too.
    for id in network.agent_ids().to_vec() {
        network.restart_agent(&id).unwrap();
    }
    let after = settle(&network, "(+ b 0)");
    assert_eq!(form(&after), "b", "{after:?}");
    network.shutdown();
}
