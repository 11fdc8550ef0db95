//! The network's load generator and measurements (see BENCHMARKS.md):
//!
//! 1. convergence latency after one submission, p50/p99, in process and over a
//!    real `nats-server`, for 9 agents (S(2,3)) and 48 (a 4-regular expander);
//! 2. messages per second across the network over NATS, against raw JetStream
//!    publishing on the same broker;
//! 3. memory of one agent holding 10,000 e-nodes, against raw egg holding the
//!    same terms, and the size of its redb store.
//!
//! `cargo bench -p ramanujan-network --bench network` (needs `nats-server` on PATH).
//! `-- quick` runs fewer samples; `-- throughput` only the messages/s part (`-- throughput emit
//! rounds=N`: with and without the agents' timeline events, alternating); `-- settled` only the time
//! to settled of a new submission after 0, 100 and 1,000 earlier ones (`goal_nodes=N` sets the budget
//! of each submission and colour, the default is the network's; `agents=48` runs the expander instead of
//! the 9-agent triangle; `history=0,100,5000` sets the earlier submissions to measure after;
//! `samples=N` times N new submissions, not 40;
//! `PROGRESS=1` prints progress every 5 submissions; `SAMPLES=1` each timed submission with its
//! time; `nats` measures over a real `nats-server`, fresh, instead; `POLL_MS=10` asks for the status every 10 ms
//! instead of every 1, which takes the poller's CPU off the two cores the agents share; `timeline` has the agents record
//! their interactions into the interaction timeline, DuckDB in memory); `-- rss agents=48 'expr=(* 0 (+ p q))'` the
//! process RSS for one submission on a fresh network.

use mimalloc::MiMalloc;
use ramanujan_agent::Network;
use ramanujan_agent::agent::{Agent, WorkLimits};
use ramanujan_agent::store::ReplicaStore;
use ramanujan_core::Color;
use ramanujan_core::lang::{Expr, Math};
use ramanujan_core::parse::parse_expr;
use ramanujan_network::nats::{AgentConfig, LocalBroker, NatsNetwork, RemoteConfig, run_nats_agent};
use ramanujan_network::{InProcessNetwork, NetworkConfig, RedbStore, TopologyKind, agent_id};
use ramanujan_wire::wire::{self, Inbound};
use rand::{Rng, SeedableRng};
use std::alloc::{GlobalAlloc, Layout};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

/// Counts live heap bytes, to measure what a structure holds.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// The one unsafe code in the workspace: an allocator must implement an unsafe
// trait; it only counts and forwards to mimalloc.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The process's resident set, in MB (Linux).
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn random_expr(rng: &mut impl Rng, depth: u32, vars: usize) -> String {
    if depth == 0 || rng.random_bool(0.25) {
        return if rng.random_bool(0.7) {
            format!("v{}", rng.random_range(0..vars))
        } else {
            rng.random_range(0..10).to_string()
        };
    }
    let op = ["+", "*", "-"][rng.random_range(0..3)];
    format!(
        "({op} {} {})",
        random_expr(rng, depth - 1, vars),
        random_expr(rng, depth - 1, vars)
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{label:<44} n={:<3} p50 {:>9.1} ms   p99 {:>9.1} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3
    );
}

fn topology(agents: usize) -> TopologyKind {
    if agents == 9 {
        TopologyKind::Sierpinski
    } else {
        TopologyKind::Ramanujan { agents, degree: 4 }
    }
}

/// Small rewriting budget: latency measures the network, not saturation.
fn work() -> WorkLimits {
    WorkLimits {
        step_nodes: 500,
        step_iterations: 2,
        goal_nodes: 500,
        ..WorkLimits::default()
    }
}

/// No rewriting at all: every submission's iteration budget is zero.
fn no_rewriting() -> WorkLimits {
    WorkLimits {
        goal_iterations: 0,
        ..WorkLimits::default()
    }
}

/// Submits one expression at a time; measures until every agent holds it with one canonical form.
async fn latencies(network: &dyn Network, samples: usize, seed: u64) -> Vec<Duration> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for _ in 0..samples {
        let expr: Expr = parse_expr(&random_expr(&mut rng, 2, 50)).unwrap();
        let started = Instant::now();
        let submission = network.submit(expr).await.expect("submitted");
        loop {
            let status = network.submission(submission.id.clone()).await.unwrap();
            if status.converged {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no convergence");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        out.push(started.elapsed());
    }
    out
}

/// Replication only (no rewriting), or with rewriting until the canonical forms agree.
fn mode(rewriting: bool) -> (WorkLimits, &'static str) {
    if rewriting {
        (work(), "+rewriting")
    } else {
        (no_rewriting(), "replication")
    }
}

async fn in_process_latency(agents: usize, samples: usize, rewriting: bool) {
    let (work, label) = mode(rewriting);
    let network = InProcessNetwork::start(NetworkConfig {
        topology: topology(agents),
        work,
        ..NetworkConfig::default()
    })
    .unwrap();
    let samples = latencies(network.as_ref(), samples, 1).await;
    report(&format!("{label}, in process, {agents} agents"), samples);
    network.shutdown();
}

/// Starts `agents` agent loops on the broker (tasks of this process, each with
/// its own connection) and the host's view of them.
async fn nats_network(
    broker: &LocalBroker,
    agents: usize,
    work: WorkLimits,
    data_dir: Option<std::path::PathBuf>,
    events: bool,
) -> (Arc<NatsNetwork>, tokio::sync::watch::Sender<bool>) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    for index in 0..agents {
        let mut stopped = stopped.clone();
        let config = AgentConfig {
            nats_url: broker.url(),
            index,
            topology: topology(agents),
            seed: 1069,
            sync_interval: Duration::from_secs(5),
            heartbeat_interval: Duration::from_millis(200),
            data_dir: data_dir.clone(),
            batch: 256,
            work,
            node_id: "bench".into(),
            events,
        };
        tokio::spawn(async move {
            let _ = run_nats_agent(config, async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await;
        });
    }
    let network = NatsNetwork::connect(RemoteConfig {
        nats_url: broker.url(),
        topology: topology(agents),
        seed: 1069,
        sync_interval: Duration::from_secs(5),
        health_timeout: Duration::from_millis(600),
        submit_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while network
        .status()
        .await
        .agents
        .iter()
        .any(|a| a.status != ramanujan_agent::network::Lifecycle::Alive)
    {
        assert!(Instant::now() < deadline, "agents never came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (network, stop)
}

async fn nats_latency(agents: usize, samples: usize, rewriting: bool) {
    let (work, label) = mode(rewriting);
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::start(dir.path()).unwrap();
    let (network, stop) = nats_network(&broker, agents, work, None, true).await;
    let samples = latencies(network.as_ref(), samples, 1).await;
    report(&format!("{label}, over NATS, {agents} agents"), samples);
    let _ = stop.send(true);
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Time to `settled` for new submissions (random, depth 3, five variables)
/// on `agents` agents over a real `nats-server` (agents as tasks of this
/// process, each with its own connection), each with a budget of
/// `goal_nodes` terms per colour.
async fn nats_settled(agents: usize, samples: usize, goal_nodes: usize) {
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::start(dir.path()).unwrap();
    let work = WorkLimits {
        goal_nodes,
        ..WorkLimits::default()
    };
    let (network, stop) = nats_network(&broker, agents, work, None, true).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let times = settle_times(network.as_ref(), &mut rng, samples).await;
    report(&format!("settled, over NATS, {agents} agents"), times);
    let _ = stop.send(true);
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Agent `i`'s state, asked again (at most 20 times) while the agent is too
/// busy to answer within the query's deadline: agents saving every batch to
/// redb under this load sometimes are.
async fn state_of(network: &NatsNetwork, i: usize) -> ramanujan_agent::network::AgentState {
    for _ in 0..20 {
        match network.agent_state(agent_id(i)).await {
            Ok(state) => return state,
            Err(e) => eprintln!("agent {i} did not answer ({e}); asking again"),
        }
    }
    panic!("agent {i} did not answer 20 state queries");
}

/// Floods `submissions` expressions (no rewriting) through 9 agents on the
/// broker, with their replicas in memory or saved to redb; messages handled per
/// second, and raw JetStream's rate on the same broker.
/// Envelopes per second across 9 agents over NATS for `submissions` sent
/// straight into their inboxes, the agents recording and publishing their
/// interaction events or not; then, with `peer`, raw JetStream's rate.
async fn nats_throughput(submissions: usize, persist: bool, events: bool, peer: bool) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::start(dir.path()).unwrap();
    let data_dir = persist.then(|| dir.path().join("data"));
    let (network, stop) = nats_network(&broker, 9, no_rewriting(), data_dir, events).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let exprs: Vec<Expr> = (0..submissions)
        .map(|_| parse_expr(&random_expr(&mut rng, 3, 1_000_000)).unwrap())
        .collect();
    // Submissions go straight into the agents' inboxes, as fast as the broker
    // takes them, so the agents (not the host's round trips) set the pace.
    let client = async_nats::connect(broker.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let started = Instant::now();
    let mut window = Vec::new();
    for (n, expr) in exprs.iter().enumerate() {
        let inbound = Inbound::Submit {
            request: format!("load-{n}"),
            expression: expr.to_string(),
        };
        let payload = wire::encode_inbound(&inbound).unwrap();
        window.push(js.publish(wire::sync_subject(n % 9), payload.into()).await.unwrap());
        if window.len() == 256 {
            for ack in window.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in window.drain(..) {
        ack.await.unwrap();
    }
    let submitted = started.elapsed();
    // Wait until every agent holds the same facts.
    loop {
        let mut digests = HashSet::new();
        for i in 0..9 {
            digests.insert(state_of(&network, i).await.digest);
        }
        if digests.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    let mut received = 0;
    for i in 0..9 {
        received += state_of(&network, i).await.messages_received;
    }
    // Broker messages: everything ever published on the agents' stream (its
    // last sequence number; acknowledged messages leave a work queue), the
    // submissions included. Several envelopes travel in one broker message.
    let published = js
        .get_stream(ramanujan_network::nats::broker::STREAM)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .last_sequence;
    let rate = received as f64 / took.as_secs_f64();
    let broker_rate = published as f64 / took.as_secs_f64();
    println!(
        "{:<44} {received} envelopes in {:.2} s = {:>8.0} envelopes/s; {published} broker messages = {:>8.0}/s ({submissions} submissions, accepted in {:.2} s){}",
        if persist {
            "messages over NATS, 9 agents, saved to redb"
        } else {
            "messages over NATS, 9 agents, in memory"
        },
        took.as_secs_f64(),
        rate,
        broker_rate,
        submitted.as_secs_f64(),
        if events { "" } else { ", no timeline events" }
    );
    let _ = stop.send(true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    if !peer {
        return rate;
    }

    // The peer: as many raw JetStream messages as the agents' broker messages,
    // published (acks awaited in windows of 256) into a work queue like the
    // agents' and consumed by one pull consumer that acknowledges each, as an
    // agent does; the clock stops when the last is consumed.
    let raw_stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "RAW".into(),
            subjects: vec!["raw.>".into()],
            retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await
        .unwrap();
    let payload = vec![b'x'; 900];
    let count = (published as usize).max(10_000);
    let consumer = raw_stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("raw".into()),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            max_ack_pending: 4096,
            ..Default::default()
        })
        .await
        .unwrap();
    let consuming = tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut messages = consumer.messages().await.unwrap();
        for _ in 0..count {
            let message = messages.next().await.unwrap().unwrap();
            message.ack().await.unwrap();
        }
    });
    let started = Instant::now();
    let mut window = Vec::new();
    for i in 0..count {
        window.push(
            js.publish(format!("raw.{}", i % 9), payload.clone().into())
                .await
                .unwrap(),
        );
        if window.len() == 256 {
            for ack in window.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in window.drain(..) {
        ack.await.unwrap();
    }
    consuming.await.unwrap();
    let raw = count as f64 / started.elapsed().as_secs_f64();
    println!(
        "{:<44} {count} messages = {:>8.0} msg/s; the network's broker messages reach {:.2}x of it",
        "raw JetStream publish + consume (peer)",
        raw,
        broker_rate / raw
    );
    rate
}

/// One agent holding ≥ 10,000 e-nodes: its heap, raw egg's heap for the same
/// terms, and its redb store's size.
fn memory() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let new_agent = || {
        Agent::new(
            "agent-0".into(),
            Color::Red,
            vec![],
            HashSet::from(["agent-0".to_string()]),
            WorkLimits::default(),
        )
    };
    // Expressions enough for 10,000 e-nodes, found with a scratch agent (which
    // also compiles the process-wide built-in rules before anything is measured).
    let mut exprs = Vec::new();
    let mut scratch = new_agent();
    while scratch.replica().term_count() < 10_000 {
        let expr: Expr = parse_expr(&random_expr(&mut rng, 4, 2_000)).unwrap();
        scratch.submit(&expr);
        exprs.push(expr);
    }
    drop(scratch);
    let before = live();
    let mut agent = new_agent();
    // A running agent saves after every batch, which empties its journal.
    agent.keep_no_journal();
    for expr in &exprs {
        agent.submit(expr);
    }
    let agent_bytes = live() - before;
    let nodes = agent.replica().term_count();

    let before = live();
    let mut egraph: egg::EGraph<Math, ()> = egg::EGraph::default();
    for expr in &exprs {
        egraph.add_expr(expr);
    }
    egraph.rebuild();
    let egg_bytes = live() - before;
    let before = live();
    let replica = agent.replica().clone();
    let replica_bytes = live() - before;
    println!(
        "{:<44} {nodes} e-nodes: {:.2} MiB ({:.0} B/node)",
        "memory of one replica",
        replica_bytes as f64 / 1048576.0,
        replica_bytes as f64 / nodes as f64,
    );
    drop(replica);
    println!(
        "{:<44} {nodes} e-nodes: {:.2} MiB ({:.0} B/node); raw egg {} e-nodes: {:.2} MiB; ratio {:.2}x",
        "memory of one agent",
        agent_bytes as f64 / 1048576.0,
        agent_bytes as f64 / nodes as f64,
        egraph.total_number_of_nodes(),
        egg_bytes as f64 / 1048576.0,
        agent_bytes as f64 / egg_bytes as f64
    );

    let dir = tempfile::tempdir().unwrap();
    let mut store = RedbStore::open(&dir.path().join("agent-0.redb")).unwrap();
    store.append(agent.replica()).unwrap();
    store.compact().unwrap();
    let json = serde_json::to_vec(agent.replica()).unwrap();
    println!(
        "{:<44} redb file {:.2} MiB, {} records (the replica as JSON: {:.2} MiB)",
        "stored size of that agent",
        store.stored_bytes() as f64 / 1048576.0,
        store.records().unwrap(),
        json.len() as f64 / 1048576.0
    );
}

/// Waits until the submission `id` is settled (bounded).
/// Time to `settled` of `samples` new submissions (random, depth 3, five
/// variables), one after another.
async fn settle_times(network: &dyn Network, rng: &mut rand_chacha::ChaCha8Rng, samples: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let expr = parse_expr(&random_expr(rng, 3, 5)).unwrap();
        let started = Instant::now();
        let id = network.submit(expr.clone()).await.expect("submitted").id;
        wait_settled(network, &id).await;
        times.push(started.elapsed());
        if std::env::var_os("SAMPLES").is_some() {
            println!("  {:>9.1} ms  {expr}", started.elapsed().as_secs_f64() * 1e3);
        }
    }
    times
}

/// How often [`wait_settled`] asks: `POLL_MS` milliseconds, 1 by default.
fn poll_interval() -> Duration {
    let ms = std::env::var("POLL_MS").ok().and_then(|v| v.parse().ok());
    Duration::from_millis(ms.unwrap_or(1))
}

async fn wait_settled(network: &dyn Network, id: &str) {
    let started = Instant::now();
    while !network.submission(id.to_string()).await.unwrap().settled {
        assert!(started.elapsed() < Duration::from_secs(300), "{id} did not settle");
        tokio::time::sleep(poll_interval()).await;
    }
}

/// Time to `settled` for one new submission (random, depth 3, five
/// variables) on 9 agents in process, after `history` earlier ones have all
/// settled; each submission with a budget of `goal_nodes` terms per colour,
/// replicas without a term limit. Also the heap per agent.
async fn settled_after(agents: usize, history: &[usize], samples: usize, goal_nodes: usize) {
    // `timeline`: the agents record their interactions into a timeline (DuckDB in memory).
    let timeline = std::env::args()
        .any(|a| a == "timeline")
        .then(|| interaction_timeline::Timeline::open(None).unwrap());
    // `discard`: the agents record their interactions and a thread throws them away (the cost of recording alone).
    let discard = std::env::args().any(|a| a == "discard").then(|| {
        let (emitter, queue) = ramanujan_events::Emitter::bounded(65_536);
        std::thread::spawn(move || while queue.recv_timeout(Duration::from_secs(3_600)).is_ok() {});
        emitter
    });
    let network = InProcessNetwork::start(NetworkConfig {
        events: timeline.as_ref().map(|t| t.emitter()).or(discard),
        topology: topology(agents),
        sync_interval: Duration::from_millis(100),
        work: WorkLimits {
            goal_nodes,
            max_terms: usize::MAX,
            ..WorkLimits::default()
        },
        ..NetworkConfig::default()
    })
    .unwrap();
    println!("time to settled, {goal_nodes} terms per submission and colour, {agents} agents");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut submitted = 0;
    for &n in history {
        while submitted < n {
            let expr = parse_expr(&random_expr(&mut rng, 3, 5)).unwrap();
            let id = network.submit(expr).await.expect("submitted").id;
            wait_settled(network.as_ref(), &id).await;
            submitted += 1;
            if std::env::var_os("PROGRESS").is_some() && submitted % 5 == 0 {
                let facts = network
                    .replica("agent-0")
                    .map_or(0, |r| r.term_count() + r.equality_count());
                println!(
                    "  after {submitted}: {facts} facts, heap {:.1} MB per agent, rss {:.0} MB, dropped {}",
                    live() as f64 / agents as f64 / 1e6,
                    rss_mb(),
                    network.dropped()
                );
            }
        }
        let times = settle_times(network.as_ref(), &mut rng, samples).await;
        submitted += samples;
        let facts = network
            .replica("agent-0")
            .map_or(0, |r| r.term_count() + r.equality_count());
        report(&format!("settled after {n}, in process, {agents} agents"), times);
        println!(
            "    {facts} facts per replica, heap {:.1} MB per agent, process RSS {:.0} MB",
            live() as f64 / agents as f64 / 1e6,
            rss_mb()
        );
    }
    network.shutdown();
    if let Some(timeline) = timeline {
        timeline.settle(Duration::from_secs(60));
        let health = timeline.health();
        println!(
            "  timeline: {} events written, {} dropped",
            health.written, health.dropped
        );
    }
}

/// Process RSS and live heap for one submission of `expr` on a fresh network
/// of `agents`: before the network starts, once it idles, and once the
/// submission settled (issue #13 measured 6.3 GB for `(* 0 (+ p q))` on 48 agents).
async fn one_submission_memory(agents: usize, expr: &str) {
    let before = (rss_mb(), live());
    let network = InProcessNetwork::start(NetworkConfig {
        topology: topology(agents),
        ..NetworkConfig::default()
    })
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = (rss_mb(), live());
    let id = network.submit(parse_expr(expr).unwrap()).await.expect("submitted").id;
    wait_settled(network.as_ref(), &id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let settled = (rss_mb(), live());
    let facts = network
        .replica("agent-0")
        .map_or(0, |r| r.term_count() + r.equality_count());
    for (label, (rss, heap)) in [
        ("before start", before),
        ("idle", idle),
        ("one submission settled", settled),
    ] {
        println!(
            "{agents} agents, {label:<24} process RSS {rss:.0} MB, live heap {:.1} MB",
            heap as f64 / 1e6
        );
    }
    println!("{agents} agents, {expr}: facts per replica {facts}");
    network.shutdown();
}

/// The value of the command-line argument `{name}=value`, if given.
fn arg(name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    std::env::args().find_map(|a| a.strip_prefix(&prefix).map(str::to_string))
}

/// The agents to run (`agents=N`), or `default`.
fn agents_arg(default: usize) -> usize {
    arg("agents").map_or(default, |n| n.parse().expect("agents=N"))
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if std::env::args().any(|a| a == "rss") {
        let expr = arg("expr").unwrap_or_else(|| "(* 0 (+ p q))".into());
        runtime.block_on(one_submission_memory(agents_arg(48), &expr));
        return;
    }
    if std::env::args().any(|a| a == "settled") {
        let history: Vec<usize> = arg("history").map_or_else(
            || if quick { vec![0, 100] } else { vec![0, 100, 1_000] },
            |list| list.split(',').map(|n| n.parse().expect("history=N,M,...")).collect(),
        );
        let goal_nodes =
            arg("goal_nodes").map_or(WorkLimits::default().goal_nodes, |n| n.parse().expect("goal_nodes=N"));
        let samples = arg("samples").map_or(if quick { 10 } else { 40 }, |n| n.parse().expect("samples=N"));
        if std::env::args().any(|a| a == "nats") {
            runtime.block_on(nats_settled(agents_arg(9), samples, goal_nodes));
        } else {
            runtime.block_on(settled_after(agents_arg(9), &history, samples, goal_nodes));
        }
        return;
    }
    let samples = if quick { 10 } else { 40 };
    if std::env::args().any(|a| a == "throughput") {
        if std::env::args().any(|a| a == "emit") {
            // The cost of the timeline's events: runs with and without them,
            // alternating, in memory (where the agents' own work is least).
            let rounds = arg("rounds").map_or(3, |n| n.parse().expect("rounds=N"));
            let (mut with, mut without) = (Vec::new(), Vec::new());
            runtime.block_on(async {
                for _ in 0..rounds {
                    without.push(nats_throughput(5_000, false, false, false).await);
                    with.push(nats_throughput(5_000, false, true, false).await);
                }
            });
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            println!(
                "envelopes/s with events {:.0} (mean of {rounds}), without {:.0}: {:.3}x",
                mean(&with),
                mean(&without),
                mean(&with) / mean(&without)
            );
            return;
        }
        runtime.block_on(async {
            nats_throughput(5_000, false, true, true).await;
            nats_throughput(5_000, true, true, true).await;
        });
        return;
    }
    memory();
    runtime.block_on(async {
        for rewriting in [false, true] {
            for agents in [9, 48] {
                in_process_latency(agents, samples, rewriting).await;
                nats_latency(agents, samples, rewriting).await;
            }
        }
        for persist in [false, true] {
            nats_throughput(if quick { 500 } else { 5_000 }, persist, true, true).await;
        }
    });
}
