//! The distributed mode on a NATS cluster of three servers, the JetStream
//! streams replicated three times (`NATS_REPLICAS=3`): the server leading the
//! agents' inbox stream is killed with SIGKILL mid-run and restarted later.
//! The host and nine agents, given all three URLs, fail over to the
//! survivors; every acknowledged submission reaches every replica, and the
//! restarted server catches up with the stream.

mod common;

use async_nats::jetstream;
use common::{Host, NETWORK_FLAGS, Proc, every_replica_holds, random_expr, spawn_agent_env, spawn_printing_url_env};
use ramanujan_network::nats::{LocalBroker, broker, cluster_url};
use rand::SeedableRng;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const AGENTS: usize = 9;
const REPLICAS: [(&str, &str); 1] = [("NATS_REPLICAS", "3")];

/// The inbox stream as the cluster describes it, asked through `url`
/// (retried for at most a minute).
fn inbox_stream_info(url: &str) -> jetstream::stream::Info {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = broker::connect(url, "cluster-test").await.unwrap();
        let js = jetstream::new(client);
        let asked = broker::until_ok("the inbox stream's description", || async {
            js.get_stream(broker::STREAM)
                .await
                .map_err(|e| e.to_string())?
                .info()
                .await
                .cloned()
                .map_err(|e| e.to_string())
        });
        tokio::time::timeout(Duration::from_secs(60), asked)
            .await
            .expect("the cluster describes its inbox stream within a minute")
    })
}

/// The position in `servers` of the one named `name` (`n{i}`).
fn server_index(name: &str) -> usize {
    name.strip_prefix('n')
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("server name {name}"))
}

fn all_alive(host: &Host) -> bool {
    host.status()["agents"]
        .as_array()
        .is_some_and(|a| a.len() == AGENTS && a.iter().all(|a| a["status"] == "alive"))
}

#[test]
fn kill_the_stream_leader_of_a_three_server_cluster_and_lose_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut servers = LocalBroker::cluster(dir.path(), 3).expect("nats-server runs (.ci/run installs it)");
    let url = cluster_url(&servers);
    let spawn = |i: usize| spawn_agent_env(i, &url, &data, &NETWORK_FLAGS, &REPLICAS);
    let mut agents: Vec<Proc> = (0..AGENTS).map(spawn).collect();
    let mut args = vec!["up", "--port", "0", "--in-memory", "--nats", &url];
    args.extend(NETWORK_FLAGS);
    let (_host, base) = spawn_printing_url_env(&args, &REPLICAS);
    let host = Host::new(base, Duration::from_secs(15));
    let deadline = Instant::now() + Duration::from_secs(90);
    while !all_alive(&host) {
        assert!(Instant::now() < deadline, "agents never all beat: {}", host.status());
        std::thread::sleep(Duration::from_millis(100));
    }
    let info = inbox_stream_info(&url);
    assert_eq!(info.config.num_replicas, 3, "{:?}", info.config);
    let cluster = info.cluster.expect("a clustered stream says where it lives");
    assert_eq!(cluster.replicas.len(), 2, "a leader and two followers: {cluster:?}");
    let leader = server_index(cluster.leader.as_deref().expect("the stream has a leader"));

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2027);
    let mut acknowledged = BTreeSet::new();
    let refused = std::cell::Cell::new(0);
    // One expression, submitted until acknowledged (a refusal is 503, and
    // retrying is safe); false if not within `patience`.
    let mut submit = |patience: Duration| {
        let expression = random_expr(&mut rng, 3, &["a", "b", "c", "d", "e"], 6);
        let asked = Instant::now();
        loop {
            let (code, answer) = host.post("/agents/submit", serde_json::json!({ "expression": expression }));
            if let (202, Some(id)) = (code, answer["id"].as_str()) {
                // A repeated expression is the same submission (content-addressed).
                acknowledged.insert(id.to_string());
                std::thread::sleep(Duration::from_millis(50));
                return true;
            }
            assert_eq!(code, 503, "a refusal says: not now, retry ({answer})");
            refused.set(refused.get() + 1);
            if asked.elapsed() > patience {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // Before: every submission is acknowledged at once.
    let before = (0..30).filter(|_| submit(Duration::ZERO)).count();
    assert_eq!(before, 30, "all three servers up");
    // kill -9 the leader; the survivors elect another within seconds, and
    // submissions are acknowledged again.
    servers[leader].kill();
    let killed = Instant::now();
    assert!(submit(Duration::from_secs(30)), "no new leader in 30 s");
    let recovered = killed.elapsed();
    let re_electing = refused.get();
    let without = (0..30).filter(|_| submit(Duration::from_secs(20))).count();
    assert_eq!(without, 30, "two servers of three keep the network going");
    // Every agent beats through the survivors (one busy catching up may be
    // late for a moment: the test's health timeout is 1 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !all_alive(&host) {
        assert!(
            Instant::now() < deadline,
            "agents beat through the survivors: {}",
            host.status()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The old leader comes back while submissions go on.
    servers[leader].restart().unwrap();
    let after = (0..30).filter(|_| submit(Duration::from_secs(20))).count();
    assert_eq!(after, 30, "a returning server loses nothing");
    eprintln!(
        "{} acknowledged; after the leader's kill, {re_electing} refused (503) and submissions acknowledged again in {recovered:?}; {} refused in all",
        acknowledged.len(),
        refused.get()
    );

    let deadline = Instant::now() + Duration::from_secs(180);
    while host.status()["converged"] != true {
        assert!(Instant::now() < deadline, "no convergence: {}", host.status());
        std::thread::sleep(Duration::from_millis(200));
    }
    every_replica_holds(&host, AGENTS, &acknowledged);

    // The restarted server is a current replica of the stream again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let cluster = inbox_stream_info(&url).cluster.unwrap();
        let members: Vec<(String, bool)> = cluster
            .replicas
            .iter()
            .map(|r| (r.name.clone(), r.current))
            .chain(cluster.leader.clone().map(|l| (l, true)))
            .collect();
        if members.len() == 3 && members.iter().all(|(_, current)| *current) {
            break;
        }
        assert!(Instant::now() < deadline, "n{leader} never caught up: {members:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(agents.drain(..));
}
