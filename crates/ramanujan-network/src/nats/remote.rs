//! The host's side of a network whose agents run elsewhere, on the broker.
//!
//! The host keeps no replica. It learns who is alive from heartbeats, asks
//! agents for their state on `agent.{i}.state`, and submits expressions into an
//! agent's JetStream inbox, answering only once the agent has saved it.

use super::agent::{answer_error, publish_envelopes};
use super::broker;
use crate::runtime::{TopologyKind, agent_id};
use async_nats::connection::State;
use async_nats::jetstream;
use futures_util::StreamExt;
use ramanujan_agent::agent::LogEntry;
use ramanujan_agent::network::{
    AgentState, AgentSummary, BoxFuture, HeldForm, Lifecycle, Network, NetworkError, NetworkStatus, Submission,
    SubmissionStatus, heartbeat_interval,
};
use ramanujan_agent::protocol::Envelope;
use ramanujan_agent::topology::Topology;
use ramanujan_core::lang::Expr;
use ramanujan_core::replica::ReplicaState;
use ramanujan_wire::wire::{self, Beat, Inbound, Query, SubmitAck};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How the host reaches the agents.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Broker URL.
    pub nats_url: String,
    /// The graph the agents form (must match theirs).
    pub topology: TopologyKind,
    /// Its seed.
    pub seed: u64,
    /// Anti-entropy period the agents use (reported).
    pub sync_interval: Duration,
    /// No heartbeat for this long: suspect; twice as long: dead.
    pub health_timeout: Duration,
    /// How long one entry agent has to save a submission before the next is tried.
    pub submit_timeout: Duration,
}

/// The last heartbeat of one agent.
struct BeatRecord {
    beat: Beat,
    at: Instant,
    restarts: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Agents on a broker, as the `/agents` routes see them.
pub struct NatsNetwork {
    config: RemoteConfig,
    topology: Topology,
    ids: Vec<String>,
    client: async_nats::Client,
    js: jetstream::Context,
    beats: Arc<Mutex<HashMap<String, BeatRecord>>>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<SubmitAck>>>>,
    submissions: Mutex<BTreeMap<String, Submission>>,
    next_entry: AtomicU64,
    next_request: AtomicU64,
    nonce: u64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for NatsNetwork {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

impl NatsNetwork {
    /// Publishes the rules every agent runs, durably: agents watch it, and
    /// one that starts later reads it first.
    pub async fn publish_rules(&self, set: &broker::AgentRuleSet) -> Result<(), String> {
        broker::publish_agent_rules(&self.js, set).await
    }

    /// Connects (retrying in the background if the broker is not up yet) and
    /// starts listening to heartbeats and acknowledgements. Must run inside tokio.
    pub async fn connect(config: RemoteConfig) -> Result<Arc<Self>, String> {
        let topology = config.topology.build(config.seed)?;
        let ids: Vec<String> = (0..topology.len()).map(agent_id).collect();
        let client = broker::connect(&config.nats_url, "ramanujan-host").await?;
        let js = jetstream::new(client.clone());
        let beats: Arc<Mutex<HashMap<String, BeatRecord>>> = Arc::default();
        let waiting: Arc<Mutex<HashMap<String, oneshot::Sender<SubmitAck>>>> = Arc::default();
        let mut heartbeats = client.subscribe("agent.*.heartbeat").await.map_err(|e| e.to_string())?;
        let mut acks = client.subscribe("agent.*.ack").await.map_err(|e| e.to_string())?;
        let mut status_requests = client
            .subscribe(wire::NETWORK_STATUS)
            .await
            .map_err(|e| e.to_string())?;
        let mut tasks = Vec::new();
        let table = beats.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(message) = heartbeats.next().await {
                let Ok(beat) = serde_json::from_slice::<Beat>(&message.payload) else {
                    continue;
                };
                let mut table = lock(&table);
                let restarts = match table.get(&beat.agent_id) {
                    Some(old) if old.beat.incarnation != beat.incarnation => old.restarts + 1,
                    Some(old) => old.restarts,
                    None => 0,
                };
                table.insert(
                    beat.agent_id.clone(),
                    BeatRecord {
                        beat,
                        at: Instant::now(),
                        restarts,
                    },
                );
            }
        }));
        let pending = waiting.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(message) = acks.next().await {
                let Ok(ack) = serde_json::from_slice::<SubmitAck>(&message.payload) else {
                    continue;
                };
                if let Some(tx) = lock(&pending).remove(&ack.request) {
                    let _ = tx.send(ack);
                }
            }
        }));
        let ping_every = heartbeat_interval(config.health_timeout);
        let pinger = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(ping_every);
            loop {
                tick.tick().await;
                let _ = pinger.publish(wire::BROADCAST_HEARTBEAT, "{}".into()).await;
            }
        }));
        let stream_js = js.clone();
        tasks.push(tokio::spawn(async move {
            broker::until_ok("the inbox stream", || broker::ensure_stream(&stream_js)).await;
        }));
        let nonce = crate::runtime::first_sequence_number();
        let network = Arc::new_cyclic(|me: &Weak<NatsNetwork>| {
            let me = me.clone();
            let replier = client.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(request) = status_requests.next().await {
                    let (Some(reply), Some(network)) = (request.reply, me.upgrade()) else {
                        continue;
                    };
                    let status = network.status().await;
                    let payload = serde_json::to_vec(&status).unwrap_or_default();
                    let _ = replier.publish(reply, payload.into()).await;
                }
            }));
            NatsNetwork {
                config,
                topology,
                ids,
                client,
                js,
                beats,
                waiting,
                submissions: Mutex::new(BTreeMap::new()),
                next_entry: AtomicU64::new(0),
                next_request: AtomicU64::new(0),
                nonce,
                tasks,
            }
        });
        Ok(network)
    }

    /// Agent ids, in topology order.
    pub fn agent_ids(&self) -> &[String] {
        &self.ids
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    fn broker_down(&self) -> Option<String> {
        match self.client.connection_state() {
            State::Connected => None,
            _ => Some(format!("the broker at {} is unreachable", self.config.nats_url)),
        }
    }

    fn lifecycle(&self, record: Option<&BeatRecord>) -> Lifecycle {
        Lifecycle::from_heartbeat_age(record.map(|r| r.at.elapsed()), self.config.health_timeout)
    }

    fn index(&self, id: &str) -> Result<usize, NetworkError> {
        wire::index_of(id)
            .filter(|&i| i < self.ids.len())
            .ok_or_else(|| NetworkError::NotFound(format!("no agent `{id}`")))
    }

    /// Asks one agent a question; its answer as `T`.
    async fn ask<T: DeserializeOwned>(&self, id: &str, query: Query) -> Result<T, NetworkError> {
        let index = self.index(id)?;
        if let Some(why) = self.broker_down() {
            return Err(NetworkError::Unavailable(why));
        }
        let payload = serde_json::to_vec(&query).unwrap_or_default();
        let request = self.client.request(wire::state_subject(index), payload.into());
        let answer = match tokio::time::timeout(Duration::from_secs(3), request).await {
            Ok(Ok(message)) => message,
            Ok(Err(e)) => return Err(NetworkError::Unavailable(format!("{id} did not answer: {e}"))),
            Err(_) => return Err(NetworkError::Unavailable(format!("{id} did not answer in 3 s"))),
        };
        let value: Value = serde_json::from_slice(&answer.payload)
            .map_err(|e| NetworkError::Unavailable(format!("{id} answered garbage: {e}")))?;
        if let Some(error) = answer_error(&value) {
            return Err(NetworkError::Invalid(error));
        }
        serde_json::from_value(value).map_err(|e| NetworkError::Unavailable(format!("{id} answered garbage: {e}")))
    }

    /// Entry agents to try, in round-robin order, the ones beating first.
    fn entry_candidates(&self) -> Vec<usize> {
        let start = self.next_entry.fetch_add(1, Ordering::Relaxed) as usize;
        let beats = lock(&self.beats);
        let mut order: Vec<usize> = (0..self.ids.len()).map(|k| (start + k) % self.ids.len()).collect();
        order.sort_by_key(|&i| self.lifecycle(beats.get(&self.ids[i])) != Lifecycle::Alive);
        order.truncate(3);
        order
    }

    /// Submits through one agent; the agent's acknowledgement, or why there is none.
    async fn submit_via(&self, index: usize, expression: &str) -> Result<SubmitAck, String> {
        let request = format!("{}-{}", self.nonce, self.next_request.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(request.clone(), tx);
        let inbound = Inbound::Submit {
            request: request.clone(),
            expression: expression.to_string(),
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", request.as_str());
        let payload = wire::encode_inbound(&inbound).unwrap_or_default();
        let result = async {
            let stored = self
                .js
                .publish_with_headers(wire::sync_subject(index), headers, payload.into())
                .await
                .map_err(|e| e.to_string())?;
            tokio::time::timeout(Duration::from_secs(3), stored)
                .await
                .map_err(|_| "the broker did not store it in 3 s".to_string())?
                .map_err(|e| e.to_string())?;
            tokio::time::timeout(self.config.submit_timeout, rx)
                .await
                .map_err(|_| format!("{} did not save it in time", self.ids[index]))?
                .map_err(|_| "the acknowledgement was lost".to_string())
        }
        .await;
        lock(&self.waiting).remove(&request);
        result
    }

    /// Status of every agent from their heartbeats.
    fn summaries(&self) -> Vec<(AgentSummary, bool)> {
        let beats = lock(&self.beats);
        self.ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let record = beats.get(id);
                let summary = AgentSummary {
                    agent_id: id.clone(),
                    color: self.topology.colors[i],
                    status: self.lifecycle(record),
                    facts: record.map_or(0, |r| r.beat.facts),
                    digest: record.map_or_else(String::new, |r| r.beat.digest.clone()),
                    neighbors: self.topology.neighbors[i]
                        .iter()
                        .map(|&j| self.ids[j].clone())
                        .collect(),
                };
                (summary, record.is_some_and(|r| r.beat.idle))
            })
            .collect()
    }
}

impl Network for NatsNetwork {
    fn status(&self) -> BoxFuture<'_, NetworkStatus> {
        Box::pin(async move {
            let summaries = self.summaries();
            let distinct: HashSet<&str> = summaries.iter().map(|(a, _)| a.digest.as_str()).collect();
            let everyone_well = summaries.iter().all(|(a, idle)| *idle && a.status == Lifecycle::Alive);
            let degraded = self.broker_down().or_else(|| {
                let missing: Vec<&str> = summaries
                    .iter()
                    .filter(|(a, _)| matches!(a.status, Lifecycle::Dead | Lifecycle::Suspect))
                    .map(|(a, _)| a.agent_id.as_str())
                    .collect();
                (!missing.is_empty()).then(|| format!("agents not beating: {}", missing.join(", ")))
            });
            NetworkStatus {
                transport: "nats".into(),
                topology: self.topology.kind.clone(),
                edges: self.topology.edge_ids(),
                spectrum: self.topology.spectrum,
                sync_interval_ms: self.config.sync_interval.as_millis() as u64,
                distinct_digests: distinct.len(),
                converged: distinct.len() == 1 && everyone_well && degraded.is_none(),
                agents: summaries.into_iter().map(|(a, _)| a).collect(),
                submissions: lock(&self.submissions).len(),
                degraded,
            }
        })
    }

    fn agent_state(&self, id: String) -> BoxFuture<'_, Result<AgentState, NetworkError>> {
        Box::pin(async move {
            let mut state: AgentState = self.ask(&id, Query::State).await?;
            let beats = lock(&self.beats);
            let record = beats.get(&id);
            state.status = self.lifecycle(record);
            state.restarts = record.map_or(0, |r| r.restarts);
            Ok(state)
        })
    }

    fn agent_replica(&self, id: String) -> BoxFuture<'_, Result<ReplicaState, NetworkError>> {
        Box::pin(async move { self.ask(&id, Query::Egraph).await })
    }

    fn agent_messages(&self, id: String) -> BoxFuture<'_, Result<Vec<LogEntry>, NetworkError>> {
        Box::pin(async move { self.ask(&id, Query::Messages).await })
    }

    fn sync(&self, id: String) -> BoxFuture<'_, Result<usize, NetworkError>> {
        Box::pin(async move {
            let answer: Value = self.ask(&id, Query::Sync).await?;
            Ok(answer.get("started").and_then(Value::as_u64).unwrap_or(0) as usize)
        })
    }

    fn deliver(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), NetworkError>> {
        Box::pin(async move {
            if wire::index_of(&envelope.from).is_none_or(|i| i >= self.ids.len()) {
                return Err(NetworkError::Invalid(format!("unknown sender `{}`", envelope.from)));
            }
            self.index(&envelope.to)?;
            if let Some(why) = self.broker_down() {
                return Err(NetworkError::Unavailable(why));
            }
            match publish_envelopes(&self.js, vec![envelope]).await {
                1 => Ok(()),
                _ => Err(NetworkError::Unavailable("the broker did not store the message".into())),
            }
        })
    }

    fn submit(&self, expr: Expr) -> BoxFuture<'_, Result<Submission, NetworkError>> {
        Box::pin(async move {
            if let Some(why) = self.broker_down() {
                return Err(NetworkError::Unavailable(why));
            }
            let expression = expr.to_string();
            let mut failures = Vec::new();
            for index in self.entry_candidates() {
                match self.submit_via(index, &expression).await {
                    Ok(SubmitAck { root: Some(root), .. }) => {
                        let submission = Submission {
                            id: root.clone(),
                            expression,
                            entry_agent: Some(self.ids[index].clone()),
                        };
                        // A resubmission is the same submission: the first entry agent stays.
                        let mut submissions = lock(&self.submissions);
                        return Ok(submissions.entry(root).or_insert(submission).clone());
                    }
                    Ok(SubmitAck {
                        error,
                        unavailable: true,
                        ..
                    }) => {
                        return Err(NetworkError::Unavailable(error.unwrap_or_else(|| "refused".into())));
                    }
                    Ok(SubmitAck { error, .. }) => {
                        return Err(NetworkError::Invalid(error.unwrap_or_else(|| "refused".into())));
                    }
                    Err(e) => failures.push(e),
                }
            }
            Err(NetworkError::Unavailable(format!(
                "no agent saved the submission ({}); retrying is safe",
                failures.join("; ")
            )))
        })
    }

    fn submission(&self, id: String) -> BoxFuture<'_, Result<SubmissionStatus, NetworkError>> {
        Box::pin(async move {
            let root = Submission::root_of(&id)?;
            let id = root.to_string();
            let recorded = lock(&self.submissions).get(&id).cloned();
            let asks = self.ids.iter().map(|agent| async {
                let answer: Result<HeldForm, _> = self.ask(agent, Query::Canonical { root: id.clone() }).await;
                (agent.clone(), answer)
            });
            let answers = futures_util::future::join_all(asks).await;
            let submission = Submission::found(root, recorded, &answers)?;
            Ok(SubmissionStatus::from_answers(submission, answers))
        })
    }

    fn degraded(&self) -> Option<String> {
        self.broker_down()
    }
}
