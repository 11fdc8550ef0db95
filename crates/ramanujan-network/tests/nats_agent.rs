//! One agent process's loop against a real `nats-server`: bad messages in its
//! JetStream inbox are rejected and counted, never crash it, never touch its
//! replica; it runs the rules the host publishes.

use futures_util::StreamExt;
use ramanujan_agent::protocol::{Body, Envelope};
use ramanujan_core::Color;
use ramanujan_core::materialize::expr_terms;
use ramanujan_core::parse::parse_expr;
use ramanujan_core::replica::{Facts, ReplicaState};
use ramanujan_network::TopologyKind;
use ramanujan_network::nats::{AgentConfig, LocalBroker, run_nats_agent};
use ramanujan_wire::wire::{self, Inbound};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn event_from(agent: &str, expr: &str) -> ReplicaState {
    let mut facts = Facts::default();
    expr_terms(&parse_expr(expr).unwrap(), &mut facts);
    ReplicaState::new().record(agent, facts).unwrap()
}

async fn publish(js: &async_nats::jetstream::Context, id: &str, payload: Vec<u8>) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id);
    js.publish_with_headers(wire::sync_subject(0), headers, payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

fn envelope(from: &str, to: &str, seq: u64, body: Body) -> Vec<u8> {
    wire::encode_inbound(&Inbound::Envelope(Envelope {
        from: from.into(),
        to: to.into(),
        seq,
        body,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_on_the_wire_are_counted_and_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::start(dir.path()).expect("nats-server runs (.ci/run installs it)");
    let (stop, agent) = start_agent(&broker, &dir.path().join("data"), true);
    let client = ramanujan_network::nats::broker::connect(&broker.url(), "test")
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client.clone());
    // The agent is up once it beats.
    let mut beats = client.subscribe(wire::heartbeat_subject(0)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), beats.next())
        .await
        .expect("the agent beats");

    let good = Body::Event {
        delta: event_from("agent-1", "(+ a b)").into(),
        about: Vec::new(),
    };
    publish(&js, "garbage", b"\x00not json{".to_vec()).await;
    let unknown_field = json!({"envelope": {"from": "agent-1", "to": "agent-0", "seq": 1,
        "body": {"type": "sync_request", "data": {"clock": {}, "digest": ""}}, "extra": 1}});
    publish(&js, "unknown-field", rmp_serde::to_vec_named(&unknown_field).unwrap()).await;
    publish(&js, "mallory", envelope("mallory", "agent-0", 1, good.clone())).await;
    publish(&js, "misaddressed", envelope("agent-1", "agent-2", 2, good.clone())).await;
    publish(&js, "first", envelope("agent-1", "agent-0", 3, good.clone())).await;
    // The same message again under another broker id: only the agent can tell.
    publish(&js, "replay", envelope("agent-1", "agent-0", 3, good.clone())).await;
    let two_events = {
        let mut delta = event_from("agent-1", "(* c d)");
        delta.merge(&event_from("agent-2", "(* e f)"));
        delta
    };
    publish(
        &js,
        "forged",
        envelope(
            "agent-1",
            "agent-0",
            4,
            Body::Event {
                delta: two_events.into(),
                about: Vec::new(),
            },
        ),
    )
    .await;

    let deadline = Instant::now() + Duration::from_secs(20);
    let state = loop {
        let answer = client
            .request(
                wire::state_subject(0),
                serde_json::to_vec(&json!({"want": "state"})).unwrap().into(),
            )
            .await
            .unwrap();
        let state: Value = serde_json::from_slice(&answer.payload).unwrap();
        let c = &state["counters"];
        if c["rejected_malformed"] == 3
            && c["rejected_unknown_sender"] == 1
            && c["rejected_misaddressed"] == 1
            && c["duplicates"] == 1
        {
            break state;
        }
        assert!(Instant::now() < deadline, "counters never reached: {c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        state["counters"]["messages_received"], 2,
        "the good event and the forged one: {state}"
    );
    // The good event was merged; nothing of the forged one was.
    let answer = client
        .request(
            wire::state_subject(0),
            serde_json::to_vec(&json!({"want": "egraph"})).unwrap().into(),
        )
        .await
        .unwrap();
    let replica: ReplicaState = serde_json::from_slice(&answer.payload).unwrap();
    let held = |expr: &str| {
        let root = expr_terms(&parse_expr(expr).unwrap(), &mut Facts::default());
        replica.term(root).is_some()
    };
    assert!(held("(+ a b)"));
    assert!(
        !held("(* c d)") && !held("(* e f)"),
        "a forged multi-event delta was not merged"
    );
    let _ = stop.send(());
    agent.await.unwrap().unwrap();
}

/// Starts agent 0 of the Sierpinski network on `broker`, keeping its replica
/// in `data`, publishing its events if `events`.
fn start_agent(
    broker: &LocalBroker,
    data: &std::path::Path,
    events: bool,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), String>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(run_nats_agent(
        AgentConfig {
            nats_url: broker.url(),
            index: 0,
            topology: TopologyKind::Sierpinski,
            seed: 1069,
            sync_interval: Duration::from_secs(60),
            heartbeat_interval: Duration::from_millis(200),
            data_dir: Some(data.to_path_buf()),
            batch: 64,
            work: Default::default(),
            node_id: "test".into(),
            events,
        },
        async {
            let _ = stopped.await;
        },
    ));
    (stop, agent)
}

/// Waits (bounded) until agent 0 says it runs `want` rules of its colour
/// (`None`: until it answers at all).
async fn wait_rules(client: &async_nats::Client, want: Option<usize>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(answer) = client
            .request(
                wire::state_subject(0),
                serde_json::to_vec(&json!({"want": "state"})).unwrap().into(),
            )
            .await
        {
            let state: Value = serde_json::from_slice(&answer.payload).unwrap();
            if want.is_none_or(|want| state["rules"] == want) {
                return state;
            }
            assert!(Instant::now() < deadline, "never {want:?} rules: {}", state["rules"]);
        }
        assert!(Instant::now() < deadline, "the agent never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Agents on the broker run the rules the host publishes in the bucket
/// `RAMANUJAN_RULES`: as they change, and first thing after a restart; a
/// set that does not compile changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_on_the_broker_run_the_published_rules_and_read_them_again_after_a_restart() {
    use ramanujan_core::rules::{RuleBook, RuleSpec};
    use ramanujan_network::nats::broker::{AgentRuleSet, publish_agent_rules};
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::start(dir.path()).expect("nats-server runs (.ci/run installs it)");
    let data = dir.path().join("data");
    let client = ramanujan_network::nats::broker::connect(&broker.url(), "test")
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let (stop, agent) = start_agent(&broker, &data, false);
    let builtin = |color: Color| RuleBook::new(true, &[]).unwrap().rewrites(color).len();
    // Nothing published yet: the built-in rules.
    let state = wait_rules(&client, None).await;
    let color: Color = serde_json::from_value(state["color"].clone()).unwrap();
    wait_rules(&client, Some(builtin(color))).await;
    let zero = RuleSpec {
        name: "zero".into(),
        lhs: "(+ ?a 0)".into(),
        rhs: "?a".into(),
        color,
        bidirectional: false,
        nonzero: Vec::new(),
        integer: Vec::new(),
    };
    let alone = AgentRuleSet {
        builtin: false,
        rules: vec![zero.clone()],
        book: None,
    };
    publish_agent_rules(&js, &alone).await.unwrap();
    wait_rules(&client, Some(1)).await;
    // A set that does not compile (a variable on the right that is not on
    // the left) changes nothing.
    let unbound = RuleSpec {
        name: "unbound".into(),
        rhs: "?b".into(),
        ..zero.clone()
    };
    let bad = AgentRuleSet {
        builtin: false,
        rules: vec![zero.clone(), unbound],
        book: None,
    };
    publish_agent_rules(&js, &bad).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_rules(&client, Some(1)).await;
    let beside = AgentRuleSet {
        builtin: true,
        rules: vec![zero],
        book: None,
    };
    publish_agent_rules(&js, &beside).await.unwrap();
    wait_rules(&client, Some(builtin(color) + 1)).await;

    // Restarted, it reads the latest set first.
    let _ = stop.send(());
    agent.await.unwrap().unwrap();
    publish_agent_rules(&js, &alone).await.unwrap();
    let (stop, agent) = start_agent(&broker, &data, false);
    wait_rules(&client, Some(1)).await;
    let _ = stop.send(());
    agent.await.unwrap().unwrap();
}
