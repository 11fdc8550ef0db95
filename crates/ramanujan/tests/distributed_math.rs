//! The network does the math over NATS too: nine agent processes and a host on a
//! real `nats-server` settle egg's arithmetic expressions and a sample of random
//! ones on the canonical form one `/egraph/saturate` reaches, wherever that
//! saturation reaches its fixpoint.

mod common;

use common::{Host, Proc, random_expr, spawn_agent_with, spawn_printing_url};
use ramanujan_network::nats::LocalBroker;
use rand::SeedableRng;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const AGENTS: usize = 9;

/// Quick anti-entropy and health checks, quiet logs, the default budgets.
const FLAGS: [&str; 6] = [
    "--sync-interval",
    "300",
    "--health-timeout",
    "1000",
    "--log-level",
    "warn",
];

#[test]
fn nine_agent_processes_settle_on_the_saturation_s_forms() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = LocalBroker::start(dir.path()).expect("nats-server runs (.ci/run installs it)");
    let url = broker.url();
    let _agents: Vec<Proc> = (0..AGENTS).map(|i| spawn_agent_with(i, &url, &data, &FLAGS)).collect();
    let mut args = vec!["up", "--port", "0", "--nats", &url];
    args.extend(FLAGS);
    let (_host, base) = spawn_printing_url(&args);
    let host = Host::new(base, Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(60);
    while host.status()["agents"]
        .as_array()
        .is_none_or(|a| a.len() != AGENTS || a.iter().any(|a| a["status"] != "alive"))
    {
        assert!(Instant::now() < deadline, "agents never all beat");
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(14);
    let mut exprs: Vec<String> = [
        "(+ x (+ x (+ x x)))",
        "(+ 1 (- a (* (- 2 1) a)))",
        "(* (pow 2 x) (pow 2 y))",
        "(* 0 (+ p q))",
        "(+ (* a b) (* a c))",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    exprs.extend((0..6).map(|_| random_expr(&mut rng, 3, &["a", "b", "c"], 4)));
    let mut compared = 0;
    for expr in &exprs {
        let (code, ack) = host.post("/agents/submit", json!({ "expression": expr }));
        assert_eq!(code, 202, "{expr}: {ack}");
        let id = ack["id"].as_str().unwrap().to_string();
        let asked = Instant::now();
        let status = loop {
            let (_, status) = host.get(&format!("/agents/submissions/{id}"));
            if status["settled"] == true {
                break status;
            }
            assert!(
                asked.elapsed() < Duration::from_secs(120),
                "{expr} did not settle: {status}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let forms: Vec<&Value> = status["canonical"].as_array().unwrap().iter().map(|f| &f[1]).collect();
        assert_eq!(forms.len(), AGENTS, "{status}");
        assert!(forms.iter().all(|f| *f == forms[0]), "settled means one form: {status}");
        let (code, one) = host.post("/egraph/saturate", json!({ "expression": expr }));
        assert_eq!(code, 200, "{one}");
        eprintln!(
            "{expr}: network {} in {:?}; one saturation {} ({})",
            forms[0],
            asked.elapsed(),
            one["canonical"],
            one["stop_reason"]
        );
        if one["stop_reason"] == "saturated" {
            assert_eq!(forms[0], &one["canonical"], "{expr}: network against one saturation");
            compared += 1;
        }
    }
    assert!(
        compared >= 8,
        "most of the sample saturates: {compared} of {}",
        exprs.len()
    );
}
