//! The distributed mode against a real `nats-server`: a host process and nine
//! agent processes. Two agents are killed with SIGKILL mid-run and restarted, and
//! the broker itself is killed and restarted; at the end every acknowledged
//! submission is in every replica and all replicas are identical.

mod common;

use common::{Host, NETWORK_FLAGS, Proc, every_replica_holds, random_expr, spawn_agent, spawn_printing_url};
use ramanujan_network::nats::LocalBroker;
use rand::SeedableRng;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const AGENTS: usize = 9;

/// Starts the host on a free port; answers it and its base URL.
fn spawn_host(url: &str) -> (Proc, String) {
    let mut args = vec!["up", "--port", "0", "--in-memory", "--nats", url];
    args.extend(NETWORK_FLAGS);
    spawn_printing_url(&args)
}

#[test]
fn kill_agents_and_the_broker_mid_run_and_lose_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut broker = LocalBroker::start(dir.path()).expect("nats-server runs (.ci/run installs it)");
    let url = broker.url();
    let mut agents: Vec<Option<Proc>> = (0..AGENTS).map(|i| Some(spawn_agent(i, &url, &data))).collect();
    let (_host, base) = spawn_host(&url);
    let host = Host::new(base, Duration::from_secs(15));
    let deadline = Instant::now() + Duration::from_secs(60);
    while host.status()["agents"]
        .as_array()
        .is_none_or(|a| a.iter().any(|a| a["status"] != "alive"))
    {
        assert!(Instant::now() < deadline, "agents never all beat: {}", host.status());
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let mut acknowledged = BTreeSet::new();
    let mut refused = 0;
    let started = Instant::now();
    for round in 0..120 {
        match round {
            30 => {
                // kill -9 two agents mid-run.
                agents[2].take().unwrap().kill9();
                agents[6].take().unwrap().kill9();
            }
            50 => {
                agents[2] = Some(spawn_agent(2, &url, &data));
                agents[6] = Some(spawn_agent(6, &url, &data));
            }
            70 => {
                broker.kill();
                // The host says it is degraded, promptly, instead of hanging.
                let asked = Instant::now();
                loop {
                    let (code, health) = host.get("/health");
                    assert_eq!(code, 200, "health answers while the broker is down");
                    if health["status"] == "degraded" {
                        break;
                    }
                    assert!(
                        asked.elapsed() < Duration::from_secs(3),
                        "not degraded after 3 s: {health}"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
                let (code, body) = (
                    host.http
                        .post(format!("{}/agents/submit", host.base))
                        .json(&json!({"expression": "(+ 1 2)"}))
                        .send()
                        .unwrap()
                        .status()
                        .as_u16(),
                    (),
                );
                assert_eq!(
                    (code, body),
                    (503, ()),
                    "a submission while the broker is down is refused"
                );
            }
            80 => broker.restart().unwrap(),
            _ => {}
        }
        let expression = random_expr(&mut rng, 3, &["a", "b", "c", "d", "e"], 6);
        match host.submit(&expression) {
            Some(id) => {
                acknowledged.insert(id);
            }
            None => refused += 1,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        acknowledged.len() >= 80,
        "most submissions were acknowledged: {}",
        acknowledged.len()
    );

    // Submitting again (the host tries the next entry agent) is the same submission.
    let submit = |expression| host.submit_answer(expression).expect("acknowledged");
    let (first, again) = (submit("(+ resubmitted 1)"), submit("(+ resubmitted 1)"));
    assert_eq!(
        (&again["id"], &again["entry_agent"]),
        (&first["id"], &first["entry_agent"]),
        "{first} {again}"
    );
    acknowledged.insert(first["id"].as_str().unwrap().to_string());

    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let status = host.status();
        if status["converged"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "no convergence: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "converged {:?} after the first submission; {} acknowledged, {refused} refused while the broker was down",
        started.elapsed(),
        acknowledged.len()
    );

    let digest = every_replica_holds(&host, AGENTS, &acknowledged);
    let (_, state) = host.get("/agent/agent-2/state");
    assert!(
        state["restarts"].as_u64() >= Some(1),
        "the host saw agent-2 restart: {state}"
    );

    // Every agent dies at once and comes back: only what they saved can bring
    // the replicas back.
    for agent in agents.iter_mut() {
        agent.take().unwrap().kill9();
    }
    let agents: Vec<Proc> = (0..AGENTS).map(|i| spawn_agent(i, &url, &data)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = host.status();
        let restarted = (0..AGENTS).all(|i| {
            host.get(&format!("/agent/agent-{i}/state")).1["uptime_seconds"]
                .as_f64()
                .is_some_and(|up| up < 30.0)
        });
        if restarted && status["converged"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery after a full restart: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        every_replica_holds(&host, AGENTS, &acknowledged),
        digest,
        "restored, not rebuilt"
    );

    // A second host took none of the submissions: it follows them as the
    // agents' replicas hold them (the entry agent is the first host's record).
    let (_second, second_base) = spawn_host(&url);
    let second = Host::new(second_base, Duration::from_secs(15));
    for id in acknowledged.iter().take(10) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let (code, body) = loop {
            // 503 until the new host reaches the agents.
            let (code, body) = second.get(&format!("/agents/submissions/{id}"));
            if code != 503 || Instant::now() > deadline {
                break (code, body);
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(code, 200, "{id}: {body}");
        assert!(body["entry_agent"].is_null(), "{body}");
        assert_eq!(body["present_in"], AGENTS, "{body}");
        let (_, first) = host.get(&format!("/agents/submissions/{id}"));
        assert_eq!(body["expression"], first["expression"]);
    }
    assert_eq!(second.get("/agents/submissions/not-a-term-key").0, 404);
    drop(agents);
}
