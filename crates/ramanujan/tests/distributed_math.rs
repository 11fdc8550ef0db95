//! The network does the math over NATS too: nine agent processes and a host on a
//! real `nats-server` settle egg's arithmetic expressions and a sample of random
//! ones on the canonical form one `/egraph/saturate` reaches, wherever that
//! saturation reaches its fixpoint.

mod common;

use common::{Proc, spawn_agent_with, spawn_printing_url};
use ramanujan_network::nats::LocalBroker;
use rand::{Rng, SeedableRng};
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

fn random_expr(rng: &mut impl Rng, depth: u32) -> String {
    if depth == 0 || rng.random_bool(0.3) {
        return if rng.random_bool(0.6) {
            ["a", "b", "c"][rng.random_range(0..3)].to_string()
        } else {
            rng.random_range(0..4).to_string()
        };
    }
    let op = ["+", "*", "-"][rng.random_range(0..3)];
    format!("({op} {} {})", random_expr(rng, depth - 1), random_expr(rng, depth - 1))
}

struct Host {
    base: String,
    http: reqwest::blocking::Client,
}

impl Host {
    fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null)
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }
}

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
    let host = Host {
        base,
        http: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while host.get("/agents/status")["agents"]
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
    exprs.extend((0..6).map(|_| random_expr(&mut rng, 3)));
    let mut compared = 0;
    for expr in &exprs {
        let (code, ack) = host.post("/agents/submit", json!({ "expression": expr }));
        assert_eq!(code, 202, "{expr}: {ack}");
        let id = ack["id"].as_str().unwrap().to_string();
        let asked = Instant::now();
        let status = loop {
            let status = host.get(&format!("/agents/submissions/{id}"));
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
