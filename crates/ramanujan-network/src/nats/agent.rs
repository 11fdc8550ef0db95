//! One agent as a process on the broker: `ramanujan agent --id N --nats URL`.
//!
//! The agent pulls its inbox from JetStream in batches, handles the batch, saves
//! what it learned to its store, and only then acknowledges the batch to
//! JetStream: a kill at any point loses nothing, because unacknowledged
//! messages are delivered again and merging them twice changes nothing.

use super::broker::{self, AgentRuleSet};
use crate::redb_store::RedbStore;
use crate::runtime::{TopologyKind, agent_id, first_sequence_number};
use async_nats::jetstream::{self, consumer::pull, kv};
use futures_util::{FutureExt, StreamExt};
use ramanujan_agent::agent::{Agent, WorkDone, WorkLimits};
use ramanujan_agent::protocol::Envelope;
use ramanujan_agent::release::Release;
use ramanujan_agent::store::ReplicaStore;
use ramanujan_agent::topology::first_sync_delay;
use ramanujan_core::rules::RuleBook;
use ramanujan_events::event::LifecycleState;
use ramanujan_events::{Event, Kind};
use ramanujan_wire::inbox::Handled;
use ramanujan_wire::wire::{self, Beat, Query};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How to run one agent process.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Broker URL.
    pub nats_url: String,
    /// Position in the topology (`agent-{index}`).
    pub index: usize,
    /// The graph (every process must agree).
    pub topology: TopologyKind,
    /// Seed of the graph (every process must agree).
    pub seed: u64,
    /// Anti-entropy period.
    pub sync_interval: Duration,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// Where the replica is kept (`agent-{index}.redb`); `None`: memory only.
    pub data_dir: Option<PathBuf>,
    /// Messages handled per batch (and per save).
    pub batch: usize,
    /// Rewriting limits.
    pub work: WorkLimits,
    /// This host's name.
    pub node_id: String,
    /// Record its interactions and publish them for the timeline.
    pub events: bool,
}

/// Most interaction events an agent publishes in one batch.
pub const EVENT_BATCH: usize = 1_000;

/// Longest an interaction event waits in an agent for its batch.
pub const EVENT_LINGER: Duration = Duration::from_millis(100);

/// The running agent and its I/O.
struct Process {
    config: AgentConfig,
    agent: Agent,
    /// `None` with `--in-memory`: nothing outlives the process anyway.
    store: Option<RedbStore>,
    client: async_nats::Client,
    js: jetstream::Context,
    incarnation: u64,
    started: Instant,
    /// Messages waiting for a save that failed to succeed (see [`Process::release`]).
    release: Release,
    /// Interaction events taken from the agent, stamped, not yet published
    /// (see [`Process::emit_events`]).
    events: Vec<Event>,
    /// When the oldest of them was taken.
    events_since: Instant,
    /// The rule set from the broker it runs, once one arrived (see
    /// [`Process::take_rules`]).
    rules: Option<AgentRuleSet>,
}

/// Runs one agent until `shutdown` resolves.
pub async fn run_nats_agent(config: AgentConfig, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    let topology = config.topology.build(config.seed)?;
    let index = config.index;
    let mut agent = topology.agent(index, config.work)?;
    let id = agent_id(index);
    let incarnation = first_sequence_number();
    agent.begin_life(incarnation);
    let store = match &config.data_dir {
        Some(dir) => {
            let mut store = RedbStore::for_agent(dir, &id).map_err(|e| e.to_string())?;
            let saved = store.load().map_err(|e| e.to_string())?;
            tracing::info!(agent = %id, facts = saved.term_count() + saved.equality_count(), "restored");
            agent.restore(saved);
            Some(store)
        }
        None => {
            agent.keep_no_journal();
            None
        }
    };

    let client = broker::connect(&config.nats_url, &id).await?;
    let js = jetstream::new(client.clone());
    // Its interactions go to the timeline (see `Process::emit_events`).
    if config.events {
        agent.record_events();
        if let Err(e) = broker::ensure_timeline_stream(&js).await {
            tracing::warn!(agent = %id, error = %e, "no timeline stream; events will not be kept");
        }
        let start = Kind::Lifecycle {
            state: LifecycleState::Start,
        };
        broker::publish_events(&js, vec![Event::from_component(&id, start)]).await;
    }
    let mut process = Process {
        config,
        agent,
        store,
        client,
        js,
        incarnation,
        started: Instant::now(),
        release: Release::default(),
        events: Vec::new(),
        events_since: Instant::now(),
        rules: None,
    };
    process.run(shutdown).await
}

impl Process {
    fn index(&self) -> usize {
        self.config.index
    }

    /// The durable consumer of this agent's inbox, retried until the broker answers.
    async fn inbox(&self) -> pull::Stream {
        broker::inbox(&self.js, self.index(), self.config.batch).await
    }

    async fn run(&mut self, shutdown: impl Future<Output = ()>) -> Result<(), String> {
        let index = self.index();
        let mut queries = self
            .client
            .subscribe(wire::state_subject(index))
            .await
            .map_err(|e| e.to_string())?;
        let mut pings = self
            .client
            .subscribe(wire::BROADCAST_HEARTBEAT)
            .await
            .map_err(|e| e.to_string())?;
        let mut inbox = self.inbox().await;
        let mut rules = self.watch_rules().await;
        // The set the host published, before any work (a restarted agent
        // must not rewrite with the default rules meanwhile); the watch
        // delivers it again, which changes nothing.
        if let Ok(Ok(Some(entry))) =
            tokio::time::timeout(Duration::from_secs(5), broker::current_agent_rules(&self.js)).await
        {
            self.take_rules(entry);
        }
        let mut beat = tokio::time::interval(self.config.heartbeat_interval);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stagger = first_sync_delay(index, self.config.sync_interval);
        let mut sync = tokio::time::interval_at(tokio::time::Instant::now() + stagger, self.config.sync_interval);
        sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(agent = %self.agent.id(), color = ?self.agent.color(), "running");
        let mut shutdown = std::pin::pin!(shutdown);
        // A rewriting step runs on a blocking thread while the agent goes on
        // taking mail and answering queries (as the thread driver releases
        // the agent during a step); at most one at a time.
        let mut step: Option<tokio::task::JoinHandle<WorkDone>> = None;
        loop {
            if step.is_none()
                && let Some(job) = self.agent.start_work()
            {
                step = Some(tokio::task::spawn_blocking(move || job.run()));
            }
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                done = async { step.as_mut().expect("guarded").await }, if step.is_some() => {
                    step = None;
                    match done {
                        Ok(done) => {
                            let out = self.agent.finish_work(done);
                            let _ = self.release(out).await;
                        }
                        Err(e) => tracing::error!(agent = %self.agent.id(), error = %e, "a rewriting step failed"),
                    }
                }
                next = inbox.next() => match next {
                    Some(Ok(first)) => {
                        let mut batch = vec![first];
                        while batch.len() < self.config.batch.max(1) {
                            match inbox.next().now_or_never() {
                                Some(Some(Ok(m))) => batch.push(m),
                                _ => break,
                            }
                        }
                        self.handle_batch(batch).await;
                    }
                    Some(Err(e)) => {
                        tracing::debug!(agent = %self.agent.id(), error = %e, "inbox hiccup");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    None => inbox = self.inbox().await,
                },
                Some(query) = queries.next() => self.answer(query).await,
                Some(_) = pings.next() => self.beat().await,
                entry = async { rules.as_mut().expect("guarded").next().await }, if rules.is_some() => match entry {
                    Some(Ok(entry)) => self.take_rules(entry),
                    // The broker went away: watched again at the next beat.
                    _ => rules = None,
                },
                _ = beat.tick() => {
                    if rules.is_none() {
                        rules = self.watch_rules().await;
                    }
                    self.beat().await
                }
                _ = sync.tick() => {
                    // A GREEN agent's tick may record refutations: saved first.
                    let out = self.agent.sync_tick();
                    let _ = self.release(out).await;
                }
            }
            self.emit_events(false).await;
        }
        self.emit_events(true).await;
        if let Some(step) = step {
            // What the step derived is dropped: nothing of it was saved or sent.
            step.abort();
        }
        tracing::info!(agent = %self.agent.id(), "stopping");
        Ok(())
    }

    /// The agents' rule set on the broker, watched (`None`, logged, while
    /// the broker does not answer: the agent keeps the rules it runs).
    async fn watch_rules(&self) -> Option<kv::Watch> {
        let watched = tokio::time::timeout(Duration::from_secs(5), broker::watch_agent_rules(&self.js)).await;
        match watched {
            Ok(Ok(watch)) => Some(watch),
            Ok(Err(e)) => {
                tracing::warn!(agent = %self.agent.id(), error = %e, "the rule book's rules are not watched; will retry");
                None
            }
            Err(_) => None,
        }
    }

    /// Runs the rule set the host published (built-in rules only when it
    /// was deleted); a set that does not compile changes nothing.
    fn take_rules(&mut self, entry: kv::Entry) {
        let set = match entry.operation {
            kv::Operation::Put => match serde_json::from_slice::<AgentRuleSet>(&entry.value) {
                Ok(set) => set,
                Err(e) => {
                    tracing::warn!(agent = %self.agent.id(), error = %e, "the published rules do not read");
                    return;
                }
            },
            kv::Operation::Delete | kv::Operation::Purge => AgentRuleSet {
                builtin: true,
                rules: Vec::new(),
                book: None,
            },
        };
        if self.rules.as_ref() == Some(&set) {
            return;
        }
        // The host checked each rule's soundness before it published them.
        match RuleBook::trusted(set.builtin, &set.rules) {
            Ok(book) => {
                self.agent.set_rules(book);
                tracing::info!(agent = %self.agent.id(), builtin = set.builtin, book_rules = set.rules.len(), "runs the published rules");
                self.rules = Some(set);
            }
            Err(e) => {
                tracing::warn!(agent = %self.agent.id(), error = %e, "the published rules do not compile; keeps its rules")
            }
        }
    }

    /// Takes the agent's interaction events, stamped now, and publishes
    /// what it holds for the timeline in batches: at [`EVENT_BATCH`] events,
    /// [`EVENT_LINGER`] after the oldest was taken (the heartbeat wakes the
    /// loop often enough), or if `flush`. One broker message per batch, not
    /// per handled message, is what keeps the events' cost small.
    async fn emit_events(&mut self, flush: bool) {
        let (mut taken, _) = self.agent.take_events();
        if !taken.is_empty() {
            let now = ramanujan_events::emit::now_us();
            for event in &mut taken {
                event.at_us = now;
            }
            if self.events.is_empty() {
                self.events_since = Instant::now();
            }
            self.events.append(&mut taken);
        }
        if !self.events.is_empty()
            && (flush || self.events.len() >= EVENT_BATCH || self.events_since.elapsed() >= EVENT_LINGER)
        {
            broker::publish_events(&self.js, std::mem::take(&mut self.events)).await;
        }
    }

    /// Saves what the agent learned, then sends what it said; if the store
    /// failed, sends nothing now (the journal is kept and saved with the next
    /// save, and the messages go out then). Answers whether it saved.
    async fn release(&mut self, out: Vec<Envelope>) -> bool {
        let (agent, store) = (&mut self.agent, self.store.as_mut());
        let Some(out) = self.release.after_save(out, || save(agent, store)) else {
            return false;
        };
        self.publish(out).await;
        true
    }

    /// Handles a batch, saves, announces saved submissions, passes messages on,
    /// and finally acknowledges the batch.
    async fn handle_batch(&mut self, batch: Vec<jetstream::Message>) {
        let now_ms = self.started.elapsed().as_millis() as u64;
        self.agent.set_time(now_ms);
        let mut handled = Handled::default();
        for message in &batch {
            match wire::decode_inbound(&message.payload) {
                Ok(inbound) => handled.take(&mut self.agent, inbound),
                Err(e) => {
                    tracing::debug!(agent = %self.agent.id(), error = %e, "malformed inbox message");
                    self.agent.reject_malformed();
                }
            }
        }
        if !self.release(handled.out).await {
            // Not durable: acknowledge nothing, JetStream delivers the batch again.
            return;
        }
        let subject = wire::ack_subject(self.index());
        for ack in handled.acks {
            let payload = serde_json::to_vec(&ack).unwrap_or_default();
            let _ = self.client.publish(subject.clone(), payload.into()).await;
        }
        for message in batch {
            if let Err(e) = message.ack().await {
                tracing::debug!(agent = %self.agent.id(), error = %e, "ack failed; the message will come again");
            }
        }
    }

    /// Publishes envelopes to their recipients' inboxes, in order; the
    /// broker's acknowledgements are awaited on the side (the agent's own
    /// state is saved already, so it need not wait for them). A message that
    /// cannot be published is lost to that neighbour until anti-entropy
    /// repairs it.
    async fn publish(&self, out: Vec<Envelope>) {
        let stored = send_envelopes(&self.js, out).await;
        tokio::spawn(stored);
    }

    async fn beat(&self) {
        let beat = Beat::of(&self.agent, &self.config.node_id, self.incarnation);
        let payload = serde_json::to_vec(&beat).unwrap_or_default();
        let _ = self
            .client
            .publish(wire::heartbeat_subject(self.index()), payload.into())
            .await;
    }

    async fn answer(&mut self, query: async_nats::Message) {
        let Some(reply) = query.reply.clone() else { return };
        let answer = match serde_json::from_slice::<Query>(&query.payload) {
            Ok(query) => {
                let uptime = self.started.elapsed().as_secs_f64();
                let (answer, out) = wire::answer_query(&mut self.agent, query, &self.config.node_id, uptime);
                self.publish(out).await;
                answer
            }
            Err(e) => serde_json::json!({ "error": format!("bad query: {e}") }),
        };
        let payload: Vec<u8> = serde_json::to_vec(&answer).unwrap_or_default();
        let _ = self.client.publish(reply, payload.into()).await;
    }
}

/// Runs CPU-bound work (a rewriting step takes up to its time limit) without
/// stalling the other tasks of a multi-threaded runtime; inline elsewhere.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Publishes envelopes to their recipients' JetStream inboxes (see
/// [`wire::outbox`]) and waits (bounded) for the broker to store them. Answers
/// how many envelopes were stored.
pub async fn publish_envelopes(js: &jetstream::Context, out: Vec<Envelope>) -> usize {
    send_envelopes(js, out).await.await
}

/// Publishes envelopes to their recipients' JetStream inboxes, in order, and
/// answers a future of how many the broker stored (waiting at most 5 s).
async fn send_envelopes(js: &jetstream::Context, out: Vec<Envelope>) -> impl Future<Output = usize> + Send + 'static {
    let mut pending = Vec::new();
    for message in wire::outbox(out) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", message.msg_id.as_str());
        let count = message.envelopes;
        match js
            .publish_with_headers(message.subject, headers, message.payload.into())
            .await
        {
            Ok(ack) => pending.push(async move { ack.await.map(|_| count) }),
            Err(e) => tracing::debug!(error = %e, "publish failed"),
        }
    }
    async move {
        match tokio::time::timeout(Duration::from_secs(5), futures_util::future::join_all(pending)).await {
            Ok(results) => results.into_iter().filter_map(Result::ok).sum(),
            Err(_) => 0,
        }
    }
}

/// What a query answered, or its error.
pub(crate) fn answer_error(value: &Value) -> Option<String> {
    value.get("error").and_then(Value::as_str).map(str::to_string)
}

/// Writes what `agent` learned since its last save to `store` (none with
/// `--in-memory`); answers whether it is durable.
fn save(agent: &mut Agent, store: Option<&mut RedbStore>) -> bool {
    let Some(store) = store else { return true };
    // Encoding and fsync: let the runtime's other tasks go on meanwhile.
    match blocking(|| agent.save_to(store)) {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(agent = %agent.id(), error = %e, "saving the replica failed");
            false
        }
    }
}
