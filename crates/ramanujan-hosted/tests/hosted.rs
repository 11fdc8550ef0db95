//! Agents kept in a key-value store between requests (the Spin driver), with
//! an in-memory store and a publisher that keeps what it is given.

use ramanujan_agent::agent::WorkLimits;
use ramanujan_agent::network::BoxFuture;
use ramanujan_agent::protocol::Body;
use ramanujan_agent::topology::TopologyKind;
use ramanujan_hosted::hosted::{Hosted, HostedConfig, MemoryKeyValue, Publisher};
use ramanujan_wire::wire::{self, Inbound};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct Kept(Mutex<Vec<(String, Vec<u8>)>>);

impl Publisher for Kept {
    fn publish<'a>(
        &'a self,
        subject: &'a str,
        _: Option<&'a str>,
        payload: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.0.lock().unwrap().push((subject.to_string(), payload));
            Ok(())
        })
    }
}

/// The answer of a future that never waits (in-memory store and publisher).
fn now<T>(future: impl Future<Output = T>) -> T {
    let Poll::Ready(answer) = std::pin::pin!(future).poll(&mut Context::from_waker(Waker::noop())) else {
        panic!("nothing here waits");
    };
    answer
}

/// Submits `expression` to agent 0, as the bridge delivers a submission.
fn submit(hosted: &Hosted, expression: &str) {
    let submit = wire::encode_inbound(&Inbound::Submit {
        request: "r".into(),
        expression: expression.into(),
    })
    .unwrap();
    now(hosted.inbound(0, &submit)).unwrap();
}

/// The nine agents of S(2,3), hosted in one in-memory store, publishing into a list.
fn nine_hosted_agents(work: WorkLimits) -> (Hosted, Arc<Kept>) {
    nine_hosted_agents_in(work, Arc::new(MemoryKeyValue::default()))
}

/// [`nine_hosted_agents`] over `store`.
fn nine_hosted_agents_in(work: WorkLimits, store: Arc<MemoryKeyValue>) -> (Hosted, Arc<Kept>) {
    let published = Arc::new(Kept::default());
    let config = HostedConfig {
        topology: TopologyKind::Sierpinski,
        seed: 1069,
        agents: (0..9).collect(),
        node_id: "test".into(),
        work,
        sync_interval: std::time::Duration::from_millis(ramanujan_agent::defaults::SYNC_INTERVAL_MS),
        health_timeout: std::time::Duration::from_millis(ramanujan_agent::defaults::HEALTH_TIMEOUT_MS),
    };
    let hosted = Hosted::new(config, store, published.clone());
    (hosted, published)
}

/// A hosted agent made for the first time begins a life, as native agents do:
/// its events' dots are named `agent-{i}#{incarnation}`, so an agent whose
/// stored state was lost never reuses dots its peers have seen.
#[test]
fn a_hosted_agent_made_for_the_first_time_begins_a_life() {
    let (hosted, published) = nine_hosted_agents(WorkLimits::default());
    submit(&hosted, "(+ x 1)");

    let mut actors = Vec::new();
    for (subject, payload) in published.0.lock().unwrap().iter() {
        if !subject.ends_with(".sync") {
            continue;
        }
        let envelopes = match wire::decode_inbound(payload).unwrap() {
            Inbound::Envelope(envelope) => vec![envelope],
            Inbound::Envelopes(envelopes) => envelopes,
            Inbound::Submit { .. } | Inbound::Sync => panic!("agents send only envelopes"),
        };
        for envelope in envelopes {
            if let Body::Event { delta, .. } = envelope.body {
                actors.extend(delta.clock().counters().keys().cloned());
            }
        }
    }
    assert!(!actors.is_empty(), "the submission was flooded");
    assert!(
        actors.iter().all(|a| a.starts_with("agent-0#")),
        "dots of this life: {actors:?}"
    );
}

/// Runs nine hosted agents to quiescence, as the bridge would: every inbox
/// message delivered in order, ticks for agents with work, anti-entropy rounds
/// until nothing moves; then each agent's canonical form of `expression`.
fn hosted_forms(expression: &str) -> Vec<Option<String>> {
    let (hosted, published) = nine_hosted_agents(WorkLimits::default());
    submit(&hosted, expression);
    settle(&hosted, &published, expression)
}

/// Delivers, ticks and syncs the nine agents until nothing moves; then each
/// agent's canonical form of `expression`.
fn settle(hosted: &Hosted, published: &Kept, expression: &str) -> Vec<Option<String>> {
    // Rounds of: every inbox message delivered until none is left, then a
    // tick for every agent (anti-entropy every other round); until no agent
    // has work and every agent holds the same facts.
    for round in 0..200 {
        loop {
            let pending: Vec<(String, Vec<u8>)> = std::mem::take(&mut *published.0.lock().unwrap());
            if pending.is_empty() {
                break;
            }
            for (subject, payload) in pending {
                let inbox = subject
                    .strip_prefix("agent.")
                    .and_then(|rest| rest.strip_suffix(".sync"));
                if let Some(index) = inbox.and_then(|i| i.parse::<usize>().ok()) {
                    now(hosted.inbound(index, &payload)).unwrap();
                }
            }
        }
        let reports: Vec<_> = (0..9).map(|i| now(hosted.tick(i, round % 2 == 0)).unwrap()).collect();
        let quiet = published.0.lock().unwrap().iter().all(|(s, _)| !s.ends_with(".sync"));
        if quiet && reports.iter().all(|r| !r.dirty && r.digest == reports[0].digest) {
            break;
        }
    }
    let root = {
        let mut facts = ramanujan_core::replica::Facts::default();
        ramanujan_core::materialize::expr_terms(&ramanujan_core::parse::parse_expr(expression).unwrap(), &mut facts)
    };
    (0..9)
        .map(|i| {
            let query = serde_json::to_vec(&wire::Query::Canonical { root: root.to_string() }).unwrap();
            let answer = now(hosted.query(i, &query)).unwrap();
            answer["canonical"].as_str().map(str::to_string)
        })
        .collect()
}

#[test]
fn hosted_agents_settle_on_the_saturation_s_forms() {
    for (expression, want) in [
        ("(+ 1 (- a (* (- 2 1) a)))", "1"),
        ("(- (- 2 (+ a a)) a)", "(+ 2 (* -3 a))"),
    ] {
        let forms = hosted_forms(expression);
        assert!(
            forms.iter().all(|f| f.as_deref() == Some(want)),
            "{expression}: {forms:?}"
        );
    }
}

/// A submission its entry agent refuses once it is in the agent's inbox (the
/// replica is full) is acknowledged (the broker stored it) but not left
/// pending for ever: following it says it was refused.
#[test]
fn a_submission_refused_in_the_inbox_is_reported_refused() {
    use ramanujan_agent::network::{Network, NetworkError};
    let (hosted, published) = nine_hosted_agents(WorkLimits {
        max_terms: 1,
        ..WorkLimits::default()
    });
    let deliver = || {
        let pending: Vec<(String, Vec<u8>)> = std::mem::take(&mut *published.0.lock().unwrap());
        for (subject, payload) in pending {
            let inbox = subject
                .strip_prefix("agent.")
                .and_then(|rest| rest.strip_suffix(".sync"));
            if let Some(index) = inbox.and_then(|i| i.parse::<usize>().ok()) {
                let _ = now(hosted.inbound(index, &payload));
            }
        }
    };
    let parse = |e: &str| ramanujan_core::parse::parse_expr(e).unwrap();
    // Each agent's first submission fills it; a second one through the same agent is refused.
    let mut refused = None;
    for k in 0..40 {
        let taken = now(hosted.submit(parse(&format!("(+ x{k} 1)")))).unwrap();
        deliver();
        match now(hosted.submission(taken.id.clone())) {
            Err(NetworkError::Unavailable(why)) => {
                refused = Some(why);
                break;
            }
            Ok(status) => assert!(status.present_in > 0, "taken, so held: {status:?}"),
            Err(e) => panic!("{e}"),
        }
    }
    let why = refused.expect("some submission met a full agent");
    assert!(why.contains("refused"), "{why}");
}

/// "Sync now" (`agent.{i}.state` with `sync`) changes the agent: its answer
/// carries what the agent did as `events`, for the bridge to publish to the
/// timeline, as a request's report does; a read-only query carries none.
#[test]
fn a_sync_query_s_answer_carries_its_events_for_the_timeline() {
    let (hosted, published) = nine_hosted_agents(WorkLimits::default());
    submit(&hosted, "(+ x 1)");
    let before = published.0.lock().unwrap().len();
    let answer = now(hosted.query(0, br#"{"want": "sync"}"#)).unwrap();
    assert!(answer["started"].as_u64().unwrap() > 0, "{answer}");
    let events: Vec<ramanujan_events::Event> = serde_json::from_value(answer["events"].clone()).unwrap();
    let sent = events
        .iter()
        .filter(|e| matches!(e.event, ramanujan_events::Kind::MessageSent { .. }))
        .count();
    assert_eq!(sent as u64, answer["started"].as_u64().unwrap(), "{answer}");
    assert!(events.iter().all(|e| e.source == "agent-0" && e.at_us > 0));
    assert!(
        published.0.lock().unwrap().len() > before,
        "the sync requests were published"
    );
    let status = now(hosted.query(0, br#"{"want": "state"}"#)).unwrap();
    assert!(status.get("events").is_none(), "{status}");
}

/// Hosted agents run the rule set the app keeps for agents in the store
/// (`agents/rules`, which `transduction-2tdx` writes): with no rules at all,
/// `(+ a 0)` settles as it is; once GREEN's `zero` is stored, the agents take
/// the finished submission again and settle it on `a`.
#[test]
fn hosted_agents_run_the_rule_set_in_the_store_and_reopen_what_they_finished() {
    use ramanujan_http::kv::KeyValue;
    use ramanujan_wire::wire::{AGENT_RULES_KEY, AgentRuleSet};
    let store = Arc::new(MemoryKeyValue::default());
    let put = |set: &AgentRuleSet| now(store.set(AGENT_RULES_KEY, serde_json::to_vec(set).unwrap())).unwrap();
    put(&AgentRuleSet {
        builtin: false,
        rules: Vec::new(),
        book: None,
    });
    let (hosted, published) = nine_hosted_agents_in(WorkLimits::default(), store.clone());
    submit(&hosted, "(+ a 0)");
    let forms = settle(&hosted, &published, "(+ a 0)");
    assert!(forms.iter().all(|f| f.as_deref() == Some("(+ a 0)")), "{forms:?}");

    let zero = ramanujan_core::rules::RuleSpec {
        name: "zero".into(),
        lhs: "(+ ?a 0)".into(),
        rhs: "?a".into(),
        color: ramanujan_core::Color::Green,
        bidirectional: false,
        nonzero: Vec::new(),
        integer: Vec::new(),
    };
    put(&AgentRuleSet {
        builtin: false,
        rules: vec![zero],
        book: None,
    });
    let forms = settle(&hosted, &published, "(+ a 0)");
    assert!(forms.iter().all(|f| f.as_deref() == Some("a")), "{forms:?}");
    let rules: Vec<(String, u64)> = (0..9)
        .map(|i| {
            let state = now(hosted.query(i, br#"{"want": "state"}"#)).unwrap();
            (
                state["color"].as_str().unwrap().to_string(),
                state["rules"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        rules.iter().all(|(color, n)| *n == u64::from(color == "GREEN")),
        "{rules:?}"
    );
}
