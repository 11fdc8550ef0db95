//! One behaviour suite, three drivers. The same checks run through the same
//! `/agents` HTTP surface against nine agents carried by:
//!
//! - the thread driver: `ramanujan up --in-memory`, every agent a thread;
//! - NATS: `ramanujan up --nats` and nine `ramanujan agent` processes on a real
//!   `nats-server`;
//! - Spin: the `agent-orchestrator` component (the `.wasm` `spin.toml` deploys)
//!   in the wasmtime test host, every agent in its key-value store, behind the
//!   bridge on a real `nats-server`.
//!
//! What each must do: every agent beats; each submission settles on one
//! canonical form in every replica, the form one saturation with all the rules
//! reaches; a resubmission is the same submission; the agents' state, replica
//! and messages can be read and a sync asked for; bad input gets the same 4xx;
//! and the network ends converged (one digest).

mod common;

use common::{Host, Proc, random_expr, spawn_agent_with, spawn_printing_url};
use ramanujan_bridge::{Bridge, BridgeConfig};
use ramanujan_core::parse::parse_expr;
use ramanujan_core::rules::RuleBook;
use ramanujan_core::saturate::{Limits, Saturation, Scheduler};
use ramanujan_core::stop::Stop;
use ramanujan_network::nats::LocalBroker;
use rand::SeedableRng;
use serde_json::{Value, json};
use std::any::Any;
use std::time::{Duration, Instant};

const AGENTS: usize = 9;
const SECRET: &str = "a shared secret";

/// Quick anti-entropy and health checks, quiet logs; the default budgets.
const FLAGS: [&str; 6] = [
    "--sync-interval",
    "300",
    "--health-timeout",
    "1000",
    "--log-level",
    "warn",
];

/// A running network and what keeps it running (processes, the broker, the
/// test host's runtime), all stopped when dropped.
struct Deployment {
    host: Host,
    _running: Vec<Box<dyn Any>>,
}

fn thread_driver() -> Deployment {
    let mut args = vec!["up", "--port", "0", "--in-memory"];
    args.extend(FLAGS);
    let (process, base) = spawn_printing_url(&args);
    Deployment {
        host: Host::new(base, Duration::from_secs(30)),
        _running: vec![Box::new(process)],
    }
}

fn nats_driver() -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::start(dir.path()).expect("nats-server runs");
    let url = broker.url();
    let data = dir.path().join("data");
    let agents: Vec<Proc> = (0..AGENTS).map(|i| spawn_agent_with(i, &url, &data, &FLAGS)).collect();
    let mut args = vec!["up", "--port", "0", "--in-memory", "--nats", &url];
    args.extend(FLAGS);
    let (host, base) = spawn_printing_url(&args);
    Deployment {
        host: Host::new(base, Duration::from_secs(30)),
        // Dropped in order: the host and agents, then the broker, then its files.
        _running: vec![Box::new(host), Box::new(agents), Box::new(broker), Box::new(dir)],
    }
}

fn spin_driver() -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::start(dir.path()).expect("nats-server runs");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let wasm = common::spin_components().join("spin_agent_orchestrator.wasm");
    let spin = std::sync::Arc::new(
        spin_test_host::SpinHost::new(&wasm, &["default"], &[("COMPONENT_ID", "spin-test")])
            .expect("the component loads"),
    );
    for (name, value) in [
        ("webhook_secret", SECRET),
        ("step_time_ms", "300"),
        ("sync_interval_ms", "300"),
        ("health_timeout_ms", "3000"),
    ] {
        spin.set_variable(name, value);
    }
    let (app, serving, bridge) = runtime.block_on(async {
        let (app, serving) = spin.clone().serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let bridge = Bridge::start(BridgeConfig {
            nats_url: broker.url(),
            app_url: format!("http://{app}"),
            secret: SECRET.as_bytes().to_vec(),
            agents: (0..AGENTS).collect(),
            listen: "127.0.0.1:0".parse().unwrap(),
            sync_interval: Duration::from_millis(300),
            webhook_timeout: Duration::from_secs(10),
        })
        .await
        .unwrap();
        (app, serving, bridge)
    });
    spin.set_variable("bridge_url", &format!("http://{}", bridge.addr));
    Deployment {
        host: Host::new(format!("http://{app}"), Duration::from_secs(30)),
        _running: vec![
            Box::new(bridge),
            Box::new(serving),
            Box::new(runtime),
            Box::new(broker),
            Box::new(dir),
        ],
    }
}

/// Polls `check` every 100 ms until it holds, for at most `limit`.
fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The canonical form one saturation with all the built-in rules reaches, if
/// it reaches its fixpoint.
fn saturated_form(expr: &str) -> Option<String> {
    let report = Saturation {
        expr: parse_expr(expr).unwrap(),
        rules: RuleBook::new(true, &[]).unwrap(),
        fold_constants: true,
        scheduler: Scheduler::Backoff,
        limits: Limits {
            time: Duration::from_secs(30),
            ..Limits::default()
        },
        start: None,
    }
    .run();
    (report.stop_reason == Stop::Saturated).then_some(report.canonical)
}

/// Everything the suite asks of a network, whatever carries its messages.
fn behaves_as_the_network(network: Deployment) {
    let host = &network.host;
    eventually(Duration::from_secs(120), "all nine agents alive", || {
        host.status()["agents"]
            .as_array()
            .is_some_and(|a| a.len() == AGENTS && a.iter().all(|a| a["status"] == "alive"))
    });

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);
    let mut exprs: Vec<String> = [
        "(+ x (+ x (+ x x)))",
        "(+ 1 (- a (* (- 2 1) a)))",
        "(* 0 (+ p q))",
        "(+ (* a b) (* a c))",
        "(* (+ a b) (+ a b))",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    exprs.extend((0..3).map(|_| random_expr(&mut rng, 3, &["a", "b", "c"], 4)));
    let mut compared = 0;
    for expr in &exprs {
        let ack = host
            .submit_answer(expr)
            .unwrap_or_else(|| panic!("{expr} was not acknowledged"));
        let id = ack["id"].as_str().unwrap().to_string();
        // Followed at once.
        let (code, first) = host.get(&format!("/agents/submissions/{id}"));
        assert_eq!((code, &first["expression"]), (200, &json!(expr)), "{first}");
        let mut status = Value::Null;
        eventually(Duration::from_secs(120), &format!("{expr} settles"), || {
            status = host.get(&format!("/agents/submissions/{id}")).1;
            status["settled"] == true
        });
        let forms: Vec<&Value> = status["canonical"].as_array().unwrap().iter().map(|f| &f[1]).collect();
        assert_eq!(forms.len(), AGENTS, "{status}");
        assert!(
            forms.iter().all(|f| *f == forms[0] && f.is_string()),
            "one form: {status}"
        );
        if let Some(one) = saturated_form(expr) {
            assert_eq!(forms[0], &json!(one), "{expr}: the network against one saturation");
            compared += 1;
        }
        let again = host.submit_answer(expr).unwrap();
        assert_eq!((&again["id"], &again["entry_agent"]), (&ack["id"], &ack["entry_agent"]));
    }
    assert!(
        compared >= 6,
        "most of the sample saturates: {compared} of {}",
        exprs.len()
    );

    let (code, state) = host.get("/agent/agent-0/state");
    assert_eq!(
        (code, &state["agent_id"], &state["status"]),
        (200, &json!("agent-0"), &json!("alive"))
    );
    assert!(state["egraph_nodes"].as_u64().unwrap() > 0, "{state}");
    let (code, egraph) = host.get("/agent/agent-0/egraph");
    assert_eq!(code, 200);
    assert!(
        egraph["terms"].as_u64().unwrap() > 0 && egraph["state"].is_object(),
        "{egraph}"
    );
    let (code, messages) = host.get("/agent/agent-0/messages");
    assert_eq!(code, 200);
    assert!(
        messages["messages"].as_array().is_some_and(|m| !m.is_empty()),
        "{messages}"
    );
    let syncs_before = state["syncs_completed"].as_u64().unwrap();
    let (code, sync) = host.post("/agent/agent-0/sync", json!({}));
    let neighbors = state["neighbors"].as_array().unwrap().len();
    assert_eq!((code, &sync["sync_requests_sent"]), (202, &json!(neighbors)), "{sync}");
    eventually(Duration::from_secs(30), "the asked sync completes", || {
        host.get("/agent/agent-0/state").1["syncs_completed"]
            .as_u64()
            .is_some_and(|n| n > syncs_before)
    });

    let sync_request = |from: &str, to: &str| {
        json!({"from": from, "to": to, "seq": 1,
            "body": {"type": "sync_request", "data": {"clock": {}, "digest": ""}}})
    };
    for (path, body, want) in [
        ("/agent/agent-0/message", sync_request("agent-1", "agent-0"), 202),
        ("/agent/agent-0/message", sync_request("mallory", "agent-0"), 400),
        ("/agent/agent-0/message", sync_request("agent-1", "agent-2"), 400),
        ("/agent/agent-0/message", json!({"from": "agent-1"}), 422),
        ("/agent/nobody/state", Value::Null, 404),
        ("/agent/agent-9/state", Value::Null, 404),
        ("/agents/submit", json!({"expression": "(+ a"}), 400),
        ("/agents/submissions/ffff", Value::Null, 404),
    ] {
        let (code, answer) = if body.is_null() {
            host.get(path)
        } else {
            host.post(path, body)
        };
        assert_eq!(code, want, "{path}: {answer}");
        if want >= 400 {
            assert!(answer["error"].is_string(), "{path}: {answer}");
        }
    }

    // A forged sequence number near u64::MAX is taken by the transport but
    // refused by the agent, not remembered: agent-1's honest messages still
    // reach agent-0 (they would all look like replays otherwise).
    let mut forged = sync_request("agent-1", "agent-0");
    forged["seq"] = json!(u64::MAX);
    assert_eq!(host.post("/agent/agent-0/message", forged).0, 202);
    eventually(Duration::from_secs(30), "agent-0 refuses the forged number", || {
        host.get("/agent/agent-0/state").1["counters"]["rejected_implausible_seq"]
            .as_u64()
            .is_some_and(|n| n >= 1)
    });
    eventually(Duration::from_secs(120), "the network converges", || {
        let status = host.status();
        status["converged"] == true && status["distinct_digests"] == 1
    });
}

#[test]
fn the_thread_driver_behaves_as_the_network() {
    behaves_as_the_network(thread_driver());
}

#[test]
fn the_nats_driver_behaves_as_the_network() {
    behaves_as_the_network(nats_driver());
}

#[test]
fn the_spin_driver_behaves_as_the_network() {
    behaves_as_the_network(spin_driver());
}
