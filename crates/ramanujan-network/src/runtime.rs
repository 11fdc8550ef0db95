//! Agent threads, timers and lifecycle for a network in one process.

use crate::redb_store::RedbStore;
use crate::transport::{InProcessTransport, Mail};
use ramanujan_agent::agent::{Agent, LogEntry, Share, WorkLimits};
use ramanujan_agent::network::{
    AgentState, AgentSummary, BoxFuture, HeldForm, Lifecycle, Network, NetworkError, NetworkStatus, Submission,
    SubmissionStatus,
};
use ramanujan_agent::protocol::Envelope;
use ramanujan_agent::release::Release;
use ramanujan_agent::store::{MemoryStore, ReplicaStore};
use ramanujan_agent::topology::Topology;
use ramanujan_agent::topology::first_sync_delay;
pub use ramanujan_agent::topology::{TopologyKind, agent_id};
use ramanujan_core::Color;
use ramanujan_core::lang::Expr;
use ramanujan_core::replica::ReplicaState;
use ramanujan_core::rules::{RuleBook, RuleError, RuleSpec};
use ramanujan_core::term::TermKey;
use ramanujan_events::event::LifecycleState;
use ramanujan_events::{Emitter, Event, Kind};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How to run the network.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// The graph.
    pub topology: TopologyKind,
    /// Seed for the expander and for injected loss.
    pub seed: u64,
    /// Anti-entropy period (`SYNC_INTERVAL`).
    pub sync_interval: Duration,
    /// An agent with no heartbeat for this long is suspect, for twice as long dead (`HEALTH_TIMEOUT`).
    pub health_timeout: Duration,
    /// Mailbox capacity per agent (`MAX_BUFFER_SIZE`); a full mailbox drops, anti-entropy repairs.
    pub max_buffer: usize,
    /// Fraction of messages to drop (fault tests; 0 in production).
    pub loss: f64,
    /// Rewriting limits per agent.
    pub work: WorkLimits,
    /// This process's name, reported as each agent's `node_id`.
    pub node_id: String,
    /// Where each agent keeps its replica (`agent-{i}.redb`); `None` keeps them in memory only.
    pub data_dir: Option<PathBuf>,
    /// Where the agents' interaction events go (the timeline); `None` records none.
    pub events: Option<Emitter>,
    /// Whether the agents run the core's built-in rules (`BUILTIN_RULES`),
    /// besides those [`InProcessNetwork::set_rules`] gives them.
    pub builtin_rules: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            topology: TopologyKind::Sierpinski,
            seed: 1069,
            sync_interval: Duration::from_millis(5_000),
            health_timeout: Duration::from_millis(15_000),
            max_buffer: 1024,
            loss: 0.0,
            work: WorkLimits::default(),
            node_id: "local".into(),
            data_dir: None,
            events: None,
            builtin_rules: true,
        }
    }
}

/// One agent and what its thread shares with readers.
struct Slot {
    agent: Mutex<Agent>,
    /// The agent's durable store.
    store: Mutex<Box<dyn ReplicaStore>>,
    /// What a restart needs to build the agent again.
    blueprint: Blueprint,
    started: Mutex<Instant>,
    last_beat_ms: AtomicU64,
    restarts: AtomicU64,
    /// Set by [`InProcessNetwork::halt_agent`]: the thread stops for good.
    halted: AtomicBool,
    /// Messages waiting for a save that succeeds (see [`Slot::release`]).
    release: Mutex<Release>,
}

#[derive(Clone)]
struct Blueprint {
    id: String,
    color: Color,
    neighbors: Vec<String>,
    known: HashSet<String>,
    work: WorkLimits,
    share: Share,
    /// Where its interaction events go, if anywhere.
    events: Option<Emitter>,
    /// The rules every agent runs (shared: see [`InProcessNetwork::set_rules`]).
    rules: Arc<Mutex<AgentRules>>,
}

/// The rules the agents run, and what they were built from.
struct AgentRules {
    builtin: bool,
    custom: Vec<RuleSpec>,
    book: RuleBook,
}

impl Blueprint {
    /// A fresh agent holding what `store` holds, numbering its messages above
    /// anything an earlier life sent and naming its events' dots for this life.
    fn build(&self, store: &mut dyn ReplicaStore) -> Result<Agent, String> {
        let saved = store.load().map_err(|e| e.to_string())?;
        let mut agent = Agent::new(
            self.id.clone(),
            self.color,
            self.neighbors.clone(),
            self.known.clone(),
            self.work,
        );
        agent.set_share(self.share);
        agent.set_rules(lock(&self.rules).book.clone());
        agent.begin_life(first_sequence_number());
        agent.restore(saved);
        if self.events.is_some() {
            agent.record_events();
        }
        Ok(agent)
    }

    /// Emits what the agent recorded since the last call, and a lifecycle
    /// change if one is given (a driver's own event).
    fn emit(&self, agent: &mut Agent, lifecycle: Option<LifecycleState>) {
        let Some(emitter) = &self.events else {
            return;
        };
        let (events, dropped) = agent.take_events();
        emitter.count_dropped(dropped);
        emitter.emit_all(events);
        if let Some(state) = lifecycle {
            emitter.emit(Event {
                at_us: 0,
                source: self.id.clone(),
                submission: None,
                dot: None,
                seen: Default::default(),
                event: Kind::Lifecycle { state },
            });
        }
    }
}

/// The first message number of an agent starting now, which also names its
/// life: wall-clock milliseconds shifted left 20 bits, so a restarted agent
/// numbers above its previous life, and above any number this process gave
/// before, so two lives started in one millisecond are told apart.
pub fn first_sequence_number() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut candidate = ms << 20;
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        candidate = candidate.max(last.saturating_add(1 << 20));
        match LAST.compare_exchange_weak(last, candidate, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return candidate,
            Err(seen) => last = seen,
        }
    }
}

impl Slot {
    /// Writes what the agent holds beyond its last save; answers whether it
    /// is durable.
    fn save(&self) -> bool {
        let mut agent = lock(&self.agent);
        match agent.save_to(lock(&self.store).as_mut()) {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(agent = %agent.id(), error = %e, "saving the replica failed; will retry");
                false
            }
        }
    }

    /// Saves what the agent learned, then answers what it said (and what
    /// waited for an earlier save), in order; `None` while the store fails
    /// (see [`Release`]). Lock order: release, agent, store.
    fn release(&self, out: Vec<Envelope>) -> Option<Vec<Envelope>> {
        lock(&self.release).after_save(out, || self.save())
    }

    /// Replaces the agent by a fresh one restored from its store: what a crash
    /// and a restart do.
    fn restart(&self) -> Result<(), String> {
        // Lock order everywhere: release, agent, then store. What waited for
        // a save is lost with the life that said it, as in a crash.
        let mut release = lock(&self.release);
        *release = Release::default();
        let mut agent = lock(&self.agent);
        let mut store = lock(&self.store);
        *agent = self.blueprint.build(store.as_mut())?;
        self.blueprint.emit(&mut agent, Some(LifecycleState::Restart));
        *lock(&self.started) = Instant::now();
        self.restarts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Opens an agent's store, by agent id.
type OpenStore<'a> = dyn Fn(&str) -> Result<Box<dyn ReplicaStore>, String> + 'a;

/// The whole network, running.
pub struct InProcessNetwork {
    config: NetworkConfig,
    topology: Topology,
    ids: Vec<String>,
    slots: HashMap<String, Arc<Slot>>,
    transport: Arc<InProcessTransport>,
    submissions: Mutex<BTreeMap<String, Submission>>,
    next_entry: AtomicU64,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A submission its entry agent has taken but not yet saved.
struct Entered {
    slot: Arc<Slot>,
    /// The agent's life (its restart count) when it took the submission.
    life: u64,
    out: Vec<Envelope>,
    transport: Arc<InProcessTransport>,
}

impl Entered {
    /// Saves the submission, then sends what the agent said and wakes it; a
    /// 503 when the store failed or the agent restarted (losing what it had
    /// not saved) since it took the submission: not acknowledged then.
    fn save_and_send(self) -> Result<(), NetworkError> {
        let id = &self.slot.blueprint.id;
        let released = self.slot.release(self.out);
        if self.slot.restarts.load(Ordering::SeqCst) != self.life {
            return Err(NetworkError::Unavailable(format!(
                "{id} restarted before it saved the submission; it is not acknowledged (try again)"
            )));
        }
        let Some(out) = released else {
            return Err(NetworkError::Unavailable(format!(
                "{id} could not save the submission; it is not acknowledged (try again)"
            )));
        };
        self.transport.send_all(out);
        // Its rewriting starts now, not at the agent's next tick.
        self.transport.wake(id);
        Ok(())
    }
}

impl InProcessNetwork {
    /// Builds the topology, starts one thread per agent, and answers the network.
    pub fn start(config: NetworkConfig) -> Result<Arc<Self>, String> {
        let data_dir = config.data_dir.clone();
        Self::start_with_stores(config, &|id| match &data_dir {
            Some(dir) => Ok(Box::new(RedbStore::for_agent(dir, id).map_err(|e| e.to_string())?)),
            None => Ok(Box::new(MemoryStore::default())),
        })
    }

    /// [`InProcessNetwork::start`] with each agent's store opened by `open_store`.
    fn start_with_stores(config: NetworkConfig, open_store: &OpenStore<'_>) -> Result<Arc<Self>, String> {
        let topology = config.topology.build(config.seed)?;
        let ids: Vec<String> = (0..topology.len()).map(agent_id).collect();
        let known: HashSet<String> = ids.iter().cloned().collect();
        let mut mailboxes = HashMap::new();
        let mut inboxes = Vec::new();
        for id in &ids {
            let (tx, rx) = sync_channel(config.max_buffer.max(1));
            mailboxes.insert(id.clone(), tx);
            inboxes.push(rx);
        }
        let transport = Arc::new(InProcessTransport::new(mailboxes, config.loss, config.seed));
        let epoch = Instant::now();
        let book = RuleBook::new(config.builtin_rules, &[]).map_err(|e| e.to_string())?;
        let rules = Arc::new(Mutex::new(AgentRules {
            builtin: config.builtin_rules,
            custom: Vec::new(),
            book,
        }));
        let mut slots: HashMap<String, Arc<Slot>> = HashMap::new();
        for (i, id) in ids.iter().enumerate() {
            let blueprint = Blueprint {
                id: id.clone(),
                color: topology.colors[i],
                neighbors: topology.neighbors[i].iter().map(|&j| ids[j].clone()).collect(),
                known: known.clone(),
                work: config.work,
                share: topology.share(i),
                events: config.events.clone(),
                rules: rules.clone(),
            };
            let mut store = open_store(id)?;
            let mut agent = blueprint.build(store.as_mut())?;
            blueprint.emit(&mut agent, Some(LifecycleState::Start));
            let slot = Slot {
                agent: Mutex::new(agent),
                store: Mutex::new(store),
                blueprint,
                started: Mutex::new(Instant::now()),
                last_beat_ms: AtomicU64::new(0),
                restarts: AtomicU64::new(0),
                halted: AtomicBool::new(false),
                release: Mutex::new(Release::default()),
            };
            slots.insert(id.clone(), Arc::new(slot));
        }
        let network = Arc::new(InProcessNetwork {
            config,
            topology,
            ids,
            slots,
            transport,
            submissions: Mutex::new(BTreeMap::new()),
            next_entry: AtomicU64::new(0),
            epoch,
            stop: Arc::new(AtomicBool::new(false)),
            threads: Mutex::new(Vec::new()),
        });
        for (i, inbox) in inboxes.into_iter().enumerate() {
            let handle = network.spawn_agent(i, inbox);
            lock(&network.threads).push(handle);
        }
        Ok(network)
    }

    fn spawn_agent(self: &Arc<Self>, index: usize, inbox: Receiver<Mail>) -> JoinHandle<()> {
        let slot = self.slots[&self.ids[index]].clone();
        let transport = self.transport.clone();
        let stop = self.stop.clone();
        let (interval, epoch) = (self.config.sync_interval, self.epoch);
        // How long an idle agent waits for mail before it beats again: often
        // enough that it is never suspect. Work it is given (a submission, a
        // status read that queues a step) wakes it at once.
        let idle = interval
            .min(self.config.health_timeout / 10)
            .max(Duration::from_millis(1));
        // Stagger the agents' first sync so they do not all start at once.
        let offset = first_sync_delay(index, interval);
        std::thread::Builder::new()
            .name(format!("agent-{index}"))
            .spawn(move || {
                agent_thread(
                    slot,
                    inbox,
                    transport,
                    stop,
                    Timing {
                        interval,
                        idle,
                        offset,
                        epoch,
                    },
                )
            })
            .expect("spawn an agent thread")
    }

    /// Runs the built-in rules (as the network was started with them or not)
    /// and `custom`, each in its colour, in every agent from now on, and in
    /// every agent a restart builds. Agents take again the submissions they
    /// had finished (see [`Agent::set_rules`]). Answers whether the rules
    /// changed; refuses (changing nothing) rules that do not compile.
    pub fn set_rules(&self, custom: Vec<RuleSpec>) -> Result<bool, RuleError> {
        let Some(first) = self.slots.values().next() else {
            return Ok(false);
        };
        let book = {
            let mut rules = lock(&first.blueprint.rules);
            if rules.custom == custom {
                return Ok(false);
            }
            let book = RuleBook::new(rules.builtin, &custom)?;
            rules.custom = custom;
            rules.book = book.clone();
            book
        };
        for id in &self.ids {
            lock(&self.slots[id].agent).set_rules(book.clone());
            // What it takes again starts now, not at its next tick.
            self.transport.wake(id);
        }
        Ok(true)
    }

    /// Stops every agent thread and waits for them.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for id in &self.ids {
            self.transport.wake(id);
        }
        for handle in lock(&self.threads).drain(..) {
            let _ = handle.join();
        }
    }

    /// Throws an agent's memory away and restarts it from its store, as a crash
    /// and a restart would. Anti-entropy then brings it up to date.
    pub fn restart_agent(&self, id: &str) -> Result<(), NetworkError> {
        self.slot(id)?.restart().map_err(NetworkError::Unavailable)
    }

    /// Stops an agent as a crash without a restart would: its thread stops
    /// taking mail, rewriting and beating (mail to it is dropped once its
    /// mailbox is full), so the host sees it go suspect, then dead. What it
    /// held stays readable. For tests and demonstrations of failure.
    pub fn halt_agent(&self, id: &str) -> Result<(), NetworkError> {
        let slot = self.slot(id)?;
        slot.halted.store(true, Ordering::SeqCst);
        self.transport.wake(id);
        Ok(())
    }

    /// Bytes each agent's store occupies, in topology order.
    pub fn stored_bytes(&self) -> Vec<u64> {
        self.ids
            .iter()
            .map(|id| lock(&self.slots[id].store).stored_bytes())
            .collect()
    }

    /// Agent ids, in topology order.
    pub fn agent_ids(&self) -> &[String] {
        &self.ids
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Messages the transport dropped.
    pub fn dropped(&self) -> u64 {
        self.transport.dropped()
    }

    /// A copy of one agent's replica.
    pub fn replica(&self, id: &str) -> Option<ReplicaState> {
        Some(lock(&self.slots.get(id)?.agent).replica().clone())
    }

    /// Each agent's digest, in topology order.
    pub fn digests(&self) -> Vec<String> {
        self.ids
            .iter()
            .map(|id| lock(&self.slots[id].agent).replica().digest())
            .collect()
    }

    /// Whether no agent has rewriting left to do.
    fn idle(&self) -> bool {
        self.ids.iter().all(|id| !lock(&self.slots[id].agent).is_dirty())
    }

    /// Whether every agent holds the same facts and has no rewriting left.
    pub fn is_converged(&self) -> bool {
        let digests: HashSet<String> = self.digests().into_iter().collect();
        digests.len() == 1 && self.idle()
    }

    fn slot(&self, id: &str) -> Result<&Arc<Slot>, NetworkError> {
        self.slots
            .get(id)
            .ok_or_else(|| NetworkError::NotFound(format!("no agent `{id}`")))
    }

    fn lifecycle(&self, slot: &Slot) -> Lifecycle {
        let beat = slot.last_beat_ms.load(Ordering::Relaxed);
        let now = self.epoch.elapsed().as_millis() as u64;
        let age = (beat != 0).then(|| Duration::from_millis(now.saturating_sub(beat)));
        Lifecycle::from_heartbeat_age(age, self.config.health_timeout)
    }

    /// Submits an expression through the next entry agent (round robin),
    /// acknowledged once the entry agent has saved it.
    pub fn submit_expr(&self, expr: &Expr) -> Result<Submission, NetworkError> {
        let (entry, root, entered) = self.enter(expr)?;
        entered.save_and_send()?;
        Ok(self.record(entry, root, expr))
    }

    /// What [`InProcessNetwork::submit_expr`] does, with the entry agent's
    /// save (a storage commit with fsync) and the sending on a blocking
    /// thread, off the async workers that serve requests (a client that
    /// goes away meanwhile does not stop them).
    async fn submit_off_the_executor(&self, expr: &Expr) -> Result<Submission, NetworkError> {
        let (entry, root, entered) = self.enter(expr)?;
        tokio::task::spawn_blocking(move || entered.save_and_send())
            .await
            .map_err(|e| NetworkError::Unavailable(format!("saving the submission failed: {e}")))??;
        Ok(self.record(entry, root, expr))
    }

    /// The next entry agent takes the submission: its index, the
    /// submission's root, and what is left to do before acknowledging it.
    fn enter(&self, expr: &Expr) -> Result<(usize, TermKey, Entered), NetworkError> {
        let entry = self.next_entry.fetch_add(1, Ordering::Relaxed) as usize % self.ids.len();
        let slot = self.slots[&self.ids[entry]].clone();
        let (life, root, out) = {
            let mut agent = lock(&slot.agent);
            if let Some(full) = agent.refuses_submissions() {
                return Err(NetworkError::Unavailable(full));
            }
            // Read under the agent's lock: a restart takes it too.
            let life = slot.restarts.load(Ordering::SeqCst);
            let (root, out) = agent.submit(expr);
            (life, root, out)
        };
        let entered = Entered {
            slot,
            life,
            out,
            transport: self.transport.clone(),
        };
        Ok((entry, root, entered))
    }

    /// Records an acknowledged submission (for its entry agent; the agents'
    /// replicas hold it either way).
    fn record(&self, entry: usize, root: TermKey, expr: &Expr) -> Submission {
        let id = &self.ids[entry];
        let submission = Submission {
            id: root.to_string(),
            expression: expr.to_string(),
            entry_agent: Some(id.clone()),
        };
        // A resubmission is the same submission: the first entry agent stays.
        let mut submissions = lock(&self.submissions);
        submissions.entry(root.to_string()).or_insert(submission).clone()
    }

    /// Where a submission has got to (what `GET /agents/submissions/{id}`
    /// answers). One this host did not take (before a restart) is followed
    /// as the agents' replicas hold it.
    pub fn submission_status(&self, id: &str) -> Result<SubmissionStatus, NetworkError> {
        let root = Submission::root_of(id)?;
        let recorded = lock(&self.submissions).get(&root.to_string()).cloned();
        let answers: Vec<(String, Result<HeldForm, Infallible>)> = self
            .ids
            .iter()
            .map(|agent| {
                let (form, queued) = {
                    let mut held = lock(&self.slots[agent].agent);
                    let idle = !held.is_dirty();
                    (held.held_form(root), idle && held.is_dirty())
                };
                if queued {
                    // The read queued a step (a submission it had not seen
                    // as one): the agent takes it now, not at its tick.
                    self.transport.wake(agent);
                }
                (agent.clone(), Ok(form))
            })
            .collect();
        let submission = Submission::found(root, recorded, &answers)?;
        Ok(SubmissionStatus::from_answers(submission, answers))
    }

    fn state_of(&self, id: &str) -> Result<AgentState, NetworkError> {
        let slot = self.slot(id)?;
        let status = self.lifecycle(slot);
        let uptime = lock(&slot.started).elapsed().as_secs_f64();
        let restarts = slot.restarts.load(Ordering::Relaxed);
        let agent = lock(&slot.agent);
        Ok(AgentState::of(&agent, &self.config.node_id, status, uptime, restarts))
    }
}

impl Drop for InProcessNetwork {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for id in &self.ids {
            self.transport.wake(id);
        }
    }
}

/// When an agent's thread syncs and beats.
struct Timing {
    /// Anti-entropy period.
    interval: Duration,
    /// Longest wait for mail while idle (it beats after each wait).
    idle: Duration,
    /// First sync after this (agents are staggered).
    offset: Duration,
    /// The network's start, the origin of its clock.
    epoch: Instant,
}

/// An agent's thread: handle mail, rewrite when there is work, start anti-entropy
/// every `interval`, beat. What the agent learns is saved before it is passed on.
/// A panic inside the agent is a crash: the agent restarts from its store.
fn agent_thread(
    slot: Arc<Slot>,
    inbox: Receiver<Mail>,
    transport: Arc<InProcessTransport>,
    stop: Arc<AtomicBool>,
    Timing {
        interval,
        idle,
        offset,
        epoch,
    }: Timing,
) {
    // What the agent said goes out once what it learned is saved.
    let release = |out: Vec<Envelope>| {
        if let Some(out) = slot.release(out) {
            transport.send_all(out);
        }
    };
    let mut next_sync = Instant::now() + offset;
    while !stop.load(Ordering::Relaxed) && !slot.halted.load(Ordering::Relaxed) {
        let now_ms = epoch.elapsed().as_millis() as u64;
        slot.last_beat_ms.store(now_ms.max(1), Ordering::Relaxed);
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // With rewriting still to do, only look at the mail: the next step
            // must not wait a tick for mail that may not come.
            let wait = if lock(&slot.agent).is_dirty() {
                Duration::ZERO
            } else {
                idle.min(next_sync.saturating_duration_since(Instant::now()))
            };
            match inbox.recv_timeout(wait) {
                Ok(first) => {
                    let mut agent = lock(&slot.agent);
                    agent.set_time(now_ms);
                    let mut out = Vec::new();
                    // Drain what else is waiting, up to a batch, before rewriting.
                    for mail in std::iter::once(first).chain(inbox.try_iter().take(256)) {
                        if let Mail::Envelope(envelope) = mail {
                            out.extend(agent.handle(envelope));
                        }
                    }
                    drop(agent);
                    release(out);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return false,
            }
            if Instant::now() >= next_sync {
                // After a late tick, the next comes an interval later (no burst).
                next_sync = Instant::now() + interval;
                // A GREEN agent's tick may record refutations: saved first.
                let out = lock(&slot.agent).sync_tick();
                release(out);
            }
            // Rewrite without holding the agent: readers and mail are not kept waiting.
            let job = lock(&slot.agent).start_work();
            if let Some(job) = job {
                let done = job.run();
                let out = lock(&slot.agent).finish_work(done);
                release(out);
            }
            slot.blueprint.emit(&mut lock(&slot.agent), None);
            true
        }));
        match step {
            Ok(true) => {}
            Ok(false) => break,
            Err(_) => {
                tracing::error!(agent = %slot.blueprint.id, "agent crashed; restarting it from its store");
                if let Err(e) = slot.restart() {
                    tracing::error!(agent = %slot.blueprint.id, error = %e, "restart failed; the agent stops");
                    break;
                }
            }
        }
    }
}

fn ready<T: Send + 'static>(value: T) -> BoxFuture<'static, T> {
    Box::pin(std::future::ready(value))
}

impl Network for InProcessNetwork {
    fn status(&self) -> BoxFuture<'_, NetworkStatus> {
        let agents: Vec<AgentSummary> = self
            .ids
            .iter()
            .map(|id| {
                let slot = &self.slots[id];
                let status = self.lifecycle(slot);
                let agent = lock(&slot.agent);
                AgentSummary {
                    agent_id: id.clone(),
                    color: agent.color(),
                    status,
                    facts: agent.replica().term_count() + agent.replica().equality_count(),
                    digest: agent.replica().digest(),
                    neighbors: agent.neighbors().to_vec(),
                }
            })
            .collect();
        let distinct: HashSet<&str> = agents.iter().map(|a| a.digest.as_str()).collect();
        let idle = self.idle();
        ready(NetworkStatus {
            transport: "in-process".into(),
            topology: self.topology.kind.clone(),
            edges: self.topology.edge_ids(),
            spectrum: self.topology.spectrum,
            sync_interval_ms: self.config.sync_interval.as_millis() as u64,
            distinct_digests: distinct.len(),
            converged: distinct.len() == 1 && idle,
            agents,
            submissions: lock(&self.submissions).len(),
            degraded: None,
        })
    }

    fn agent_state(&self, id: String) -> BoxFuture<'_, Result<AgentState, NetworkError>> {
        ready(self.state_of(&id))
    }

    fn lifecycles(&self) -> BoxFuture<'_, Vec<(String, Lifecycle)>> {
        let lives = self
            .ids
            .iter()
            .map(|id| (id.clone(), self.lifecycle(&self.slots[id])))
            .collect();
        ready(lives)
    }

    fn agent_replica(&self, id: String) -> BoxFuture<'_, Result<ReplicaState, NetworkError>> {
        ready(self.slot(&id).map(|s| lock(&s.agent).replica().clone()))
    }

    fn agent_messages(&self, id: String) -> BoxFuture<'_, Result<Vec<LogEntry>, NetworkError>> {
        ready(self.slot(&id).map(|s| lock(&s.agent).log().cloned().collect()))
    }

    fn sync(&self, id: String) -> BoxFuture<'_, Result<usize, NetworkError>> {
        let result = self.slot(&id).map(|slot| {
            let out: Vec<Envelope> = {
                let mut agent = lock(&slot.agent);
                let neighbors = agent.neighbors().to_vec();
                neighbors.iter().flat_map(|n| agent.sync_with(n)).collect()
            };
            let n = out.len();
            for envelope in out {
                self.transport.send(envelope);
            }
            n
        });
        ready(result)
    }

    fn deliver(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), NetworkError>> {
        let result = if !self.slots.contains_key(&envelope.from) {
            Err(NetworkError::Invalid(format!("unknown sender `{}`", envelope.from)))
        } else if !self.slots.contains_key(&envelope.to) {
            Err(NetworkError::NotFound(format!("no agent `{}`", envelope.to)))
        } else if self.transport.send(envelope) {
            Ok(())
        } else {
            Err(NetworkError::Unavailable("the agent's mailbox is full".into()))
        };
        ready(result)
    }

    fn submit(&self, expr: Expr) -> BoxFuture<'_, Result<Submission, NetworkError>> {
        Box::pin(async move { self.submit_off_the_executor(&expr).await })
    }

    fn submission(&self, id: String) -> BoxFuture<'_, Result<SubmissionStatus, NetworkError>> {
        ready(self.submission_status(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ramanujan_core::parse::parse_expr;

    fn blueprint(id: &str, peer: &str) -> Blueprint {
        Blueprint {
            id: id.into(),
            color: Color::Red,
            neighbors: vec![peer.into()],
            known: [id.to_string(), peer.to_string()].into(),
            work: WorkLimits::default(),
            share: Share::default(),
            events: None,
            rules: Arc::new(Mutex::new(AgentRules {
                builtin: true,
                custom: Vec::new(),
                book: RuleBook::new(true, &[]).unwrap(),
            })),
        }
    }

    /// Delivers every message, and what answers it, until none is left.
    fn deliver(mut mail: Vec<Envelope>, a: &mut Agent, b: &mut Agent) {
        while let Some(envelope) = mail.pop() {
            let to = if envelope.to == a.id() { &mut *a } else { &mut *b };
            mail.extend(to.handle(envelope));
        }
    }

    fn submit(agent: &mut Agent, expr: &str) -> Vec<Envelope> {
        agent.submit(&parse_expr(expr).unwrap()).1
    }

    /// An agent sends an event it had not saved yet, then restarts from its
    /// store and takes a submission before it hears from anyone. Its new event
    /// must not take the lost event's dot, or the peer, which saw that dot,
    /// would never send the lost event back (the CI failure of 2026-12-02:
    /// the in-process network restarted an agent between its send and save).
    #[test]
    fn a_restarted_agent_whose_store_lags_what_it_sent_converges_with_its_peer() {
        let (blue_a, blue_b) = (blueprint("agent-0", "agent-1"), blueprint("agent-1", "agent-0"));
        let (mut store_a, mut store_b) = (MemoryStore::default(), MemoryStore::default());
        let mut a = blue_a.build(&mut store_a).unwrap();
        let mut b = blue_b.build(&mut store_b).unwrap();

        let sent = submit(&mut a, "(+ x 1)");
        assert!(a.save_to(&mut store_a).unwrap());
        deliver(sent, &mut a, &mut b);
        let lost = submit(&mut a, "(* y 2)");
        deliver(lost, &mut a, &mut b);

        let mut a = blue_a.build(&mut store_a).unwrap();
        let sent = submit(&mut a, "(- z 3)");
        deliver(sent, &mut a, &mut b);
        for _ in 0..3 {
            let ticks = a.sync_tick().into_iter().chain(b.sync_tick()).collect();
            deliver(ticks, &mut a, &mut b);
        }
        assert_eq!(
            a.replica().roots().count(),
            3,
            "the restarted agent got its lost event back"
        );
        assert_eq!(a.replica().digest(), b.replica().digest());
    }

    #[test]
    fn lives_started_in_one_millisecond_are_numbered_apart() {
        let numbers: HashSet<u64> = (0..1000).map(|_| first_sequence_number()).collect();
        assert_eq!(numbers.len(), 1000);
    }

    /// The entry agent restarts (a crash on its thread) after taking a
    /// submission and before saving it: the save that follows saves the new
    /// life, which never had it, so the submission is not acknowledged.
    #[test]
    fn a_submission_its_entry_agent_lost_in_a_restart_is_not_acknowledged() {
        let network = InProcessNetwork::start(NetworkConfig::default()).unwrap();
        let expr = parse_expr("(+ lost 1)").unwrap();
        let (entry, _, entered) = network.enter(&expr).unwrap();
        network.restart_agent(&network.ids[entry]).unwrap();
        assert!(matches!(entered.save_and_send(), Err(NetworkError::Unavailable(_))));
        // Without a restart in between it is saved, sent and acknowledged.
        let (_, root, entered) = network.enter(&expr).unwrap();
        entered.save_and_send().unwrap();
        assert_eq!(network.submit_expr(&expr).unwrap().id, root.to_string());
        network.shutdown();
    }

    /// A store that fails while `failing` is set, as a full disk does.
    struct FailingStore {
        inner: MemoryStore,
        failing: Arc<AtomicBool>,
    }

    impl ReplicaStore for FailingStore {
        fn load(&mut self) -> Result<ramanujan_core::ReplicaState, ramanujan_agent::store::StoreError> {
            self.inner.load()
        }

        fn append(&mut self, delta: &ramanujan_core::ReplicaState) -> Result<(), ramanujan_agent::store::StoreError> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(ramanujan_agent::store::StoreError("no space left on device".into()));
            }
            self.inner.append(delta)
        }

        fn stored_bytes(&self) -> u64 {
            self.inner.stored_bytes()
        }
    }

    /// Save before send, shown on the whole in-process network: while every
    /// store fails, a submission is refused (503) and nothing it added leaves
    /// its entry agent; once the stores work again submissions are taken,
    /// settle, and survive every agent's restart.
    #[test]
    fn while_the_stores_fail_nothing_is_acknowledged_and_nothing_unsaved_is_sent() {
        let failing = Arc::new(AtomicBool::new(true));
        let config = NetworkConfig {
            sync_interval: Duration::from_millis(20),
            ..NetworkConfig::default()
        };
        let network = InProcessNetwork::start_with_stores(config, &|_| {
            Ok(Box::new(FailingStore {
                inner: MemoryStore::default(),
                failing: failing.clone(),
            }))
        })
        .unwrap();
        let refused = network.submit_expr(&parse_expr("(* 7 (+ u v))").unwrap());
        assert!(matches!(refused, Err(NetworkError::Unavailable(_))), "{refused:?}");
        // Long enough for many sync rounds and rewriting steps.
        std::thread::sleep(Duration::from_millis(500));
        let holding: Vec<&String> = network
            .ids
            .iter()
            .filter(|id| network.replica(id).is_some_and(|r| r.term_count() > 0))
            .collect();
        assert_eq!(
            holding,
            [&network.ids[0]],
            "only the entry agent holds the unsaved submission"
        );

        failing.store(false, Ordering::SeqCst);
        let taken = network
            .submit_expr(&parse_expr("(+ (* a b) (* a c))").unwrap())
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !network.submission_status(&taken.id).unwrap().settled {
            assert!(Instant::now() < deadline, "the submission never settled");
            std::thread::sleep(Duration::from_millis(20));
        }
        let root = ramanujan_agent::network::Submission::root_of(&taken.id).unwrap();
        // Every agent crashes at once: what the entry agent saved before the
        // acknowledgement comes back to all of them.
        for id in network.ids.clone() {
            network.restart_agent(&id).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !network
            .ids
            .iter()
            .all(|id| network.replica(id).unwrap().term(root).is_some())
        {
            assert!(
                Instant::now() < deadline,
                "an acknowledged submission was lost in the restarts"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        network.shutdown();
    }
}
