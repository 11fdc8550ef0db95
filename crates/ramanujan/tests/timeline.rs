//! The interaction timeline of a real 9-agent network (`ramanujan up`, agent
//! threads in process), in a DuckDB file in a temp dir.

mod common;

use common::{Host, NETWORK_FLAGS, random_expr, spawn_printing_url};
use rand::SeedableRng;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "not within {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_agent_s_interactions_are_in_the_timeline_file_and_survive_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let mut args = vec!["up", "--port", "0", "--data-dir", &data, "--timeline-retention", "1h"];
    args.extend(NETWORK_FLAGS);
    let (process, base) = spawn_printing_url(&args);
    let host = Host::new(base, Duration::from_secs(30));

    // Thirty submissions at once, so their messages interleave.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    let mut submitted = Vec::new();
    for i in 0..30 {
        let expression = format!("(+ {} q{i})", random_expr(&mut rng, 3, &["a", "b", "c"], 4));
        let answer = host.submit_answer(&expression).expect("acknowledged");
        submitted.push((
            answer["id"].as_str().unwrap().to_string(),
            answer["entry_agent"].clone(),
        ));
    }
    for (id, _) in &submitted {
        wait_for(&format!("submission {id} settles"), Duration::from_secs(120), || {
            host.get(&format!("/agents/submissions/{id}")).1["settled"] == true
        });
    }
    wait_for("the timeline writes what was emitted", Duration::from_secs(30), || {
        host.get("/timeline/health").1["queued"] == 0
    });
    let (_, health) = host.get("/timeline/health");
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["dropped"], 0, "{health}");

    let agents: BTreeSet<String> = (0..9).map(|i| format!("agent-{i}")).collect();
    let (_, started) = host.get("/timeline/query?type=lifecycle");
    let sources: BTreeSet<String> = started["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sources, agents, "each agent's start: {started}");

    for (id, entry) in &submitted {
        let (status, story) = host.get(&format!("/timeline/submissions/{id}"));
        assert_eq!(status, 200, "{story}");
        assert_eq!(story["entered"]["agent"], *entry, "{story}");
        let reached: BTreeSet<String> = story["reached"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["agent"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(reached, agents, "submission {id} reached every agent: {story}");
        // Each agent but the entry first heard of it from a neighbour.
        for r in story["reached"].as_array().unwrap() {
            assert_eq!(r["from"].is_null(), r["agent"] == *entry, "{r}");
        }
        let colours: BTreeSet<&str> = story["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["color"].as_str().unwrap())
            .collect();
        assert!(!colours.is_empty(), "some colour rewrote {id}: {story}");
        // Fact-recording events carry their dot, and their agent had seen it.
        let (_, steps) = host.get(&format!("/timeline/query?submission={id}&type=rewrite_step"));
        for step in steps["events"].as_array().unwrap() {
            if let Some(dot) = step.get("dot") {
                let agent = dot["agent"].as_str().unwrap();
                let seen = step["seen"][agent].as_u64().unwrap_or(0);
                let counter = dot["counter"].as_u64().unwrap();
                // An agent's own events are contiguous: what it had seen reaches the dot it recorded.
                assert!(seen >= counter, "{step}");
            }
        }
    }

    // The causal order of the first 10,000 events: no event before one whose
    // dot its `seen` reaches, and each agent's events in their own order.
    let (_, causal) = host.get("/timeline/query?order=causal&limit=10000");
    assert_eq!(causal["order"], "causal");
    let events = causal["events"].as_array().unwrap();
    assert!(events.len() > 1_000, "{}", events.len());
    let mut dots: std::collections::HashMap<&str, Vec<(u64, usize)>> = Default::default();
    let mut last_seq: std::collections::HashMap<&str, u64> = Default::default();
    for (position, e) in events.iter().enumerate() {
        if let Some(dot) = e.get("dot") {
            dots.entry(dot["agent"].as_str().unwrap())
                .or_default()
                .push((dot["counter"].as_u64().unwrap(), position));
        }
        let seq = e["seq"].as_u64().unwrap();
        let before = last_seq.insert(e["source"].as_str().unwrap(), seq);
        assert!(before.is_none_or(|b| b < seq), "{} out of its own order", e["source"]);
    }
    let mut checked = 0;
    for (position, e) in events.iter().enumerate() {
        let Some(seen) = e.get("seen").and_then(Value::as_object) else {
            continue;
        };
        for (agent, counter) in seen {
            for &(c, at) in dots.get(agent.as_str()).map_or(&[][..], Vec::as_slice) {
                if c <= counter.as_u64().unwrap() && at != position {
                    assert!(at < position, "event {position} ({e}) comes before {agent}'s dot {c}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 1_000, "{checked} dependencies checked");

    let (_, stats) = host.get("/timeline/stats");
    let by_type: Vec<&str> = stats["by_type"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    for kind in [
        "submission",
        "message_sent",
        "message_received",
        "merge",
        "rewrite_step",
        "lifecycle",
    ] {
        assert!(by_type.contains(&kind), "{kind} in {by_type:?}");
    }
    let steps = stats["by_type"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "rewrite_step")
        .unwrap();
    assert!(
        steps["p99_us"].as_u64().unwrap() >= steps["p50_us"].as_u64().unwrap(),
        "{steps}"
    );
    assert!(
        stats["flows"].as_array().unwrap().len() >= 24,
        "every edge both ways: {stats}"
    );

    // Everything written is in the file, after a kill -9 of the host.
    let written = host.get("/timeline/health").1["written"].as_u64().unwrap();
    process.kill9();
    let db = ramanujan_duckdb::duckdb::Connection::open(dir.path().join("timeline.duckdb")).unwrap();
    let rows: u64 = db.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
    assert!(rows >= written, "{rows} rows, {written} written");
    let submissions: u64 = db
        .query_row(
            "SELECT count(DISTINCT submission) FROM events WHERE type = 'submission'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(submissions, 30);
}

/// The components record their work too: each saturation (cached or not)
/// and each CRDT merge (how it was answered), with how long it took.
#[test]
fn the_components_saturations_and_merges_are_in_the_timeline() {
    let mut args = vec!["up", "--port", "0", "--in-memory"];
    args.extend(NETWORK_FLAGS);
    let (_process, base) = spawn_printing_url(&args);
    let host = Host::new(base, Duration::from_secs(30));
    let saturate = serde_json::json!({"expression": "(* 0 (+ p q))"});
    for _ in 0..2 {
        assert_eq!(host.post("/egraph/saturate", saturate.clone()).0, 200);
    }
    let counter = |dots: Value| serde_json::json!({"inner": {"dots": dots}});
    let merge = serde_json::json!({"crdt_type": "GCounter",
        "states": [counter(serde_json::json!({"a": 2})), counter(serde_json::json!({"b": 3}))]});
    for _ in 0..2 {
        assert_eq!(host.post("/crdt/merge", merge.clone()).0, 200);
    }
    let events = |kind: &str| -> Vec<Value> {
        let (_, answer) = host.get(&format!("/timeline/query?type={kind}"));
        answer["events"].as_array().unwrap().clone()
    };
    wait_for("the components' events are written", Duration::from_secs(10), || {
        events("saturation").len() == 2 && events("crdt_merge").len() == 2
    });
    let saturations = events("saturation");
    let cached: Vec<&Value> = saturations.iter().map(|e| &e["event"]["cached"]).collect();
    assert_eq!(cached, [false, true], "{saturations:?}");
    assert!(saturations.iter().all(|e| e["source"] == "egraph-service"));
    assert!(
        saturations[0]["event"]["duration_us"].as_u64().unwrap()
            > saturations[1]["event"]["duration_us"].as_u64().unwrap(),
        "a saturation takes longer than a cache hit: {saturations:?}"
    );
    let merges = events("crdt_merge");
    let cases: Vec<&Value> = merges.iter().map(|e| &e["event"]["cache"]).collect();
    assert_eq!(cases, ["miss", "hit"], "{merges:?}");
    assert!(
        merges
            .iter()
            .all(|e| e["source"] == "crdt-service" && e["event"]["crdt_type"] == "GCounter")
    );

    // The colour streams: each rewriting they run, and each equality GREEN
    // checks, under the component's name (the agents' own are under theirs).
    let applied = host.post("/stream/red/apply", serde_json::json!({"expression": "(* (+ a b) c)"}));
    assert_eq!(applied.0, 200, "{}", applied.1);
    let equalities = serde_json::json!({"equalities": [
        {"lhs": "(* 2 x)", "rhs": "(+ x x)"},
        {"lhs": "(* 2 x)", "rhs": "(+ x 1)"}]});
    assert_eq!(host.post("/stream/green/verify", equalities).0, 200);
    let of = |kind: &str, source: &str| -> Vec<Value> {
        let (_, answer) = host.get(&format!("/timeline/query?type={kind}&agent={source}"));
        answer["events"].as_array().unwrap().clone()
    };
    wait_for("the streams' events are written", Duration::from_secs(10), || {
        of("rewrite_step", "stream-red").len() == 1 && of("verification", "stream-green").len() == 2
    });
    let step = &of("rewrite_step", "stream-red")[0]["event"];
    assert_eq!(step["color"], "RED", "{step}");
    assert!(
        step["facts"].as_u64().unwrap() > 0,
        "distributing derives facts: {step}"
    );
    let verdicts: Vec<Value> = of("verification", "stream-green")
        .iter()
        .map(|e| e["event"]["verdict"].clone())
        .collect();
    assert_eq!(verdicts, ["verified", "refuted"]);
}

/// Over NATS: the agents publish their events on the broker and the host's
/// timeline reads them with a durable consumer; a host killed with -9 and
/// started again on the same file takes up where it was, so events the agents
/// published while it was down reach it too.
#[test]
fn over_nats_the_timeline_survives_a_kill_9_of_its_host_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = ramanujan_network::nats::LocalBroker::start(dir.path()).expect("nats-server runs");
    let url = broker.url();
    let agents_data = dir.path().join("agents");
    let mut agents_running: Vec<common::Proc> = (0..9).map(|i| common::spawn_agent(i, &url, &agents_data)).collect();
    let host_data = dir.path().join("host").to_str().unwrap().to_string();
    let host_args = {
        let mut args = vec!["up", "--port", "0", "--nats", &url, "--data-dir", &host_data];
        args.extend(NETWORK_FLAGS);
        args
    };
    let agents: BTreeSet<String> = (0..9).map(|i| format!("agent-{i}")).collect();
    let reached = |host: &Host, id: &str| -> BTreeSet<String> {
        let (_, story) = host.get(&format!("/timeline/submissions/{id}"));
        story["reached"]
            .as_array()
            .map(|r| r.iter().map(|r| r["agent"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(29);
    let mut submit_and_settle = |host: &Host, n: usize| -> Vec<String> {
        let ids: Vec<String> = (0..n)
            .map(|i| {
                let expression = format!("(* {} r{i})", random_expr(&mut rng, 2, &["a", "b"], 3));
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    if let Some(id) = host.submit(&expression) {
                        break id;
                    }
                    assert!(Instant::now() < deadline, "not acknowledged: {expression}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
            .collect();
        for id in &ids {
            wait_for(&format!("{id} settles"), Duration::from_secs(120), || {
                host.get(&format!("/agents/submissions/{id}")).1["settled"] == true
            });
        }
        ids
    };

    let (first_process, base) = spawn_printing_url(&host_args);
    let first = Host::new(base, Duration::from_secs(15));
    let before = submit_and_settle(&first, 5);
    for id in &before {
        wait_for(
            &format!("{id} reaches the timeline from every agent"),
            Duration::from_secs(60),
            || reached(&first, id) == agents,
        );
    }
    first_process.kill9();

    // While no timeline reads: a second host with a consumer of its own
    // takes submissions (the agents publish their events on the broker).
    let spare_data = dir.path().join("spare").to_str().unwrap().to_string();
    let mut spare_args = vec![
        "up",
        "--port",
        "0",
        "--nats",
        &url,
        "--data-dir",
        &spare_data,
        "--timeline-consumer",
        "spare",
    ];
    spare_args.extend(NETWORK_FLAGS);
    let (spare_process, spare_base) = spawn_printing_url(&spare_args);
    let during = submit_and_settle(&Host::new(spare_base, Duration::from_secs(15)), 5);
    drop(spare_process);

    let (_again, base) = spawn_printing_url(&host_args);
    let again = Host::new(base, Duration::from_secs(15));
    for id in before.iter().chain(&during) {
        wait_for(
            &format!("{id} is in the restarted timeline from every agent"),
            Duration::from_secs(60),
            || reached(&again, id) == agents,
        );
    }
    let (_, started) = again.get("/timeline/query?type=lifecycle");
    let sources: BTreeSet<String> = started["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        sources, agents,
        "each agent's start, published before any host read: {started}"
    );

    // An agent killed with -9 stops beating: the host records it suspect,
    // then dead (health timeout 1 s).
    agents_running.remove(4).kill9();
    // Its states in time order end with suspect, then dead (a loaded machine
    // may have seen it late once before, suspect then alive again).
    let states = || -> Vec<String> {
        let (_, answer) = again.get("/timeline/query?type=lifecycle&agent=agent-4&order=time");
        answer["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"]["state"].as_str().unwrap().to_string())
            .collect()
    };
    wait_for(
        "agent-4 is recorded suspect, then dead",
        Duration::from_secs(20),
        || states().ends_with(&["suspect".to_string(), "dead".to_string()]),
    );
    let dead = states().iter().filter(|s| *s == "dead").count();
    assert_eq!(dead, 1, "dead once: {:?}", states());
    // The others kept beating: none is recorded dead. (With a 1 s health
    // timeout a loaded machine may see one late once: suspect, then alive.)
    let (_, others) = again.get("/timeline/query?type=lifecycle&limit=1000");
    for e in others["events"].as_array().unwrap() {
        if e["source"] != "agent-4" {
            assert!(e["event"]["state"] != "dead", "only agent-4 stopped beating: {e}");
        }
    }
}
