//! Agents that live in a key-value store between requests, for hosts that keep
//! no process (a Spin component is instantiated per request).
//!
//! Each request loads one agent's whole state (one key, `agent-{i}`, so a save
//! is atomic), lets the agent handle what arrived, runs one bounded rewriting
//! step if it has work, saves, and only then publishes what the agent sends.
//! The NATS bridge acknowledges the broker message after a 2xx, so a crash at
//! any point loses nothing: the message comes again and merging it twice
//! changes nothing (the agent's replay window drops the duplicate).
//!
//! The bridge delivers one request at a time per agent, which is what makes the
//! read-modify-write of the agent's key safe without a compare-and-swap.

use ramanujan_agent::agent::{Agent, AgentSnapshot, WorkLimits};
use ramanujan_agent::network::{BoxFuture, NetworkError};
use ramanujan_agent::protocol::Envelope;
use ramanujan_agent::topology::{TopologyKind, agent_id};
use ramanujan_core::rules::RuleBook;
use ramanujan_events::event::LifecycleState;
use ramanujan_events::{Event, Kind};
use ramanujan_wire::inbox::Handled;
use ramanujan_wire::wire::{self, AGENT_RULES_KEY, AgentRuleSet, Beat, Query, SubmitAck};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

pub use ramanujan_http::kv::{KeyValue, MemoryKeyValue};

/// Publishes on the broker (through the bridge's `POST /publish/{subject}` on Spin).
pub trait Publisher: Send + Sync {
    /// Publishes `payload` on `subject`. For an agent inbox this returns once the
    /// broker stored the message; `msg_id` lets the broker drop a retried copy.
    fn publish<'a>(
        &'a self,
        subject: &'a str,
        msg_id: Option<&'a str>,
        payload: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// What the agents hosted here are.
#[derive(Debug, Clone)]
pub struct HostedConfig {
    /// The graph (every host must agree).
    pub topology: TopologyKind,
    /// Seed of the graph (every host must agree).
    pub seed: u64,
    /// The topology positions hosted here.
    pub agents: BTreeSet<usize>,
    /// This host's name, reported as the agents' `node_id`.
    pub node_id: String,
    /// Rewriting limits per request.
    pub work: WorkLimits,
    /// How often the bridge ticks each agent (its `--sync-interval`), as `/agents/status` reports it.
    pub sync_interval: Duration,
    /// An agent not saved for this long is suspect, for twice as long dead: the
    /// bridge's ticks save every agent each sync interval.
    pub health_timeout: Duration,
}

/// What one request did to an agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The agent.
    pub agent_id: String,
    /// Envelopes handled and submissions taken.
    pub handled: usize,
    /// Broker messages published.
    pub published: usize,
    /// The agent still has rewriting to do: ask again (a tick with `sync: false`).
    pub dirty: bool,
    /// Facts held.
    pub facts: usize,
    /// Digest of its facts.
    pub digest: String,
    /// What the agent did in this request, as timeline events stamped with
    /// the host's clock: the bridge publishes them for the timeline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    /// Events the agent recorded and could not keep in this request.
    #[serde(default)]
    pub events_dropped: u64,
}

/// An agent's key: its whole state and this life's number.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    incarnation: u64,
    created_ms: u64,
    /// When it was saved: its heartbeat, for readers of the store.
    #[serde(default)]
    saved_ms: u64,
    agent: AgentSnapshot,
    /// The rule set it ran (see [`Hosted::give_rules`]); none: the built-in rules.
    #[serde(default)]
    rules: Option<AgentRuleSet>,
}

/// A loaded agent.
pub(crate) struct Loaded {
    pub(crate) index: usize,
    pub(crate) agent: Agent,
    incarnation: u64,
    pub(crate) created_ms: u64,
    /// When it was last saved; `None` for an agent never saved (new here).
    pub(crate) saved_ms: Option<u64>,
    /// The rule set it runs, from the store; `None`: the built-in rules.
    rules: Option<AgentRuleSet>,
}

/// The agents hosted here, over a store and a publisher.
#[derive(Clone)]
pub struct Hosted {
    config: Arc<HostedConfig>,
    pub(crate) store: Arc<dyn KeyValue>,
    pub(crate) publisher: Arc<dyn Publisher>,
}

/// Wall-clock milliseconds (WASI clocks on Spin).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Hosted {
    /// Agents hosted per `config`, kept in `store`, publishing through `publisher`.
    pub fn new(config: HostedConfig, store: Arc<dyn KeyValue>, publisher: Arc<dyn Publisher>) -> Self {
        Hosted {
            config: Arc::new(config),
            store,
            publisher,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HostedConfig {
        &self.config
    }

    /// The agent at `index` as saved (or new), its clock set to now.
    pub(crate) async fn load(&self, index: usize) -> Result<Loaded, NetworkError> {
        let mut loaded = self.load_saved(index).await?;
        self.give_rules(&mut loaded).await?;
        loaded.agent.set_time(now_ms().saturating_sub(loaded.created_ms));
        loaded.agent.record_events();
        Ok(loaded)
    }

    /// Gives the agent the rule set the app's rule book keeps for agents in
    /// the store (`agents/rules`, written by `transduction-2tdx`): the same
    /// set it ran before is only restored; a changed one is taken as new
    /// rules are (finished submissions taken again). A set that does not
    /// read or compile leaves the agent with the rules it ran.
    async fn give_rules(&self, loaded: &mut Loaded) -> Result<(), NetworkError> {
        let stored = self
            .store
            .get(AGENT_RULES_KEY)
            .await
            .map_err(|e| NetworkError::Unavailable(format!("reading {AGENT_RULES_KEY}: {e}")))?;
        let set = match stored {
            // Which book it was read from is not what the agent runs.
            Some(bytes) => match serde_json::from_slice::<AgentRuleSet>(&bytes) {
                Ok(set) => Some(AgentRuleSet { book: None, ..set }),
                Err(_) => return self.keep_rules(loaded),
            },
            None => None,
        };
        let (builtin, custom) = match &set {
            Some(set) => (set.builtin, set.rules.as_slice()),
            None => (true, &[][..]),
        };
        let Ok(book) = RuleBook::trusted(builtin, custom) else {
            return self.keep_rules(loaded);
        };
        if set == loaded.rules {
            loaded.agent.use_rules(book);
        } else {
            loaded.agent.set_rules(book);
            loaded.rules = set;
        }
        Ok(())
    }

    /// Restores the rules the agent ran (after a stored set it cannot use).
    fn keep_rules(&self, loaded: &mut Loaded) -> Result<(), NetworkError> {
        let (builtin, custom) = match &loaded.rules {
            Some(set) => (set.builtin, set.rules.as_slice()),
            None => (true, &[][..]),
        };
        if let Ok(book) = RuleBook::trusted(builtin, custom) {
            loaded.agent.use_rules(book);
        }
        Ok(())
    }

    async fn load_saved(&self, index: usize) -> Result<Loaded, NetworkError> {
        if !self.config.agents.contains(&index) {
            return Err(NetworkError::NotFound(format!("agent-{index} is not hosted here")));
        }
        let key = agent_id(index);
        let saved = self
            .store
            .get(&key)
            .await
            .map_err(|e| NetworkError::Unavailable(format!("reading {key}: {e}")))?;
        if let Some(bytes) = saved {
            let saved: Saved = rmp_serde::from_slice(&bytes)
                .map_err(|e| NetworkError::Unavailable(format!("the saved state of {key} is unreadable: {e}")))?;
            return Ok(Loaded {
                index,
                agent: Agent::from_snapshot(saved.agent, self.config.work),
                incarnation: saved.incarnation,
                created_ms: saved.created_ms,
                saved_ms: Some(saved.saved_ms),
                rules: saved.rules,
            });
        }
        let topology = self
            .config
            .topology
            .build(self.config.seed)
            .map_err(NetworkError::Unavailable)?;
        let mut agent = topology
            .agent(index, self.config.work)
            .map_err(NetworkError::NotFound)?;
        agent.keep_no_journal();
        let created_ms = now_ms();
        // A new life (see `Agent::begin_life`): were the stored state ever
        // lost, this agent's new facts get dots its peers have not seen.
        let incarnation = created_ms << 20;
        agent.begin_life(incarnation);
        Ok(Loaded {
            index,
            agent,
            incarnation,
            created_ms,
            saved_ms: None,
            rules: None,
        })
    }

    async fn save(&self, loaded: Loaded) -> Result<(usize, Beat), NetworkError> {
        let beat = Beat::of(&loaded.agent, &self.config.node_id, loaded.incarnation);
        let saved = Saved {
            incarnation: loaded.incarnation,
            created_ms: loaded.created_ms,
            saved_ms: now_ms(),
            agent: loaded.agent.into_snapshot(),
            rules: loaded.rules,
        };
        let bytes = rmp_serde::to_vec_named(&saved).map_err(|e| NetworkError::Unavailable(e.to_string()))?;
        let key = agent_id(loaded.index);
        self.store
            .set(&key, bytes)
            .await
            .map_err(|e| NetworkError::Unavailable(format!("saving {key}: {e}")))?;
        Ok((loaded.index, beat))
    }

    /// Handles an inbox message (`agent.{i}.sync`): MessagePack [`wire::Inbound`].
    pub async fn inbound(&self, index: usize, body: &[u8]) -> Result<Report, NetworkError> {
        let inbound =
            wire::decode_inbound(body).map_err(|e| NetworkError::Invalid(format!("not an inbox message: {e}")))?;
        let mut loaded = self.load(index).await?;
        let mut handled = Handled::default();
        handled.take(&mut loaded.agent, inbound);
        handled.out.extend(loaded.agent.work());
        self.note_refusals(&handled.acks).await;
        self.finish(loaded, handled.messages, handled.out, handled.acks, false)
            .await
    }

    /// The bridge's clock (`agent.{i}.tick`): a heartbeat, anti-entropy with the
    /// next neighbour if `sync`, and one rewriting step if there is work.
    pub async fn tick(&self, index: usize, sync: bool) -> Result<Report, NetworkError> {
        let mut loaded = self.load(index).await?;
        let mut out = loaded.agent.work();
        if sync {
            out.extend(loaded.agent.sync_tick());
        }
        self.finish(loaded, 0, out, Vec::new(), true).await
    }

    /// Answers a query (`agent.{i}.state`): JSON [`Query`] in, JSON out. A
    /// query that changes the agent ("sync now") saves it, and its answer
    /// carries what the agent did as `events` (as a [`Report`] does), which
    /// the bridge takes out and publishes for the timeline.
    pub async fn query(&self, index: usize, body: &[u8]) -> Result<Value, NetworkError> {
        let query: Query =
            serde_json::from_slice(body).map_err(|e| NetworkError::Invalid(format!("bad query: {e}")))?;
        let changes = matches!(query, Query::Sync);
        let mut loaded = self.load(index).await?;
        let uptime = now_ms().saturating_sub(loaded.created_ms) as f64 / 1000.0;
        let (mut answer, out) = wire::answer_query(&mut loaded.agent, query, &self.config.node_id, uptime);
        if changes {
            let report = self.finish(loaded, 0, out, Vec::new(), false).await?;
            if let Value::Object(fields) = &mut answer
                && !report.events.is_empty()
            {
                fields.insert("events".into(), serde_json::json!(report.events));
            }
        }
        Ok(answer)
    }

    /// Saves, then publishes acknowledgements, envelopes and (if asked) a heartbeat.
    async fn finish(
        &self,
        mut loaded: Loaded,
        handled: usize,
        out: Vec<Envelope>,
        acks: Vec<SubmitAck>,
        beat: bool,
    ) -> Result<Report, NetworkError> {
        let dirty = loaded.agent.is_dirty();
        let (mut events, events_dropped) = loaded.agent.take_events();
        if loaded.saved_ms.is_none() {
            // A new life begins with this request.
            let start = Kind::Lifecycle {
                state: LifecycleState::Start,
            };
            events.insert(0, Event::from_component(&agent_id(loaded.index), start));
        }
        let now = ramanujan_events::emit::now_us();
        for event in &mut events {
            event.at_us = now;
        }
        let (index, heartbeat) = self.save(loaded).await?;
        let mut published = 0;
        let mut failures = Vec::new();
        for message in wire::outbox(out) {
            match self
                .publisher
                .publish(&message.subject, Some(&message.msg_id), message.payload)
                .await
            {
                Ok(()) => published += 1,
                Err(e) => failures.push(format!("{}: {e}", message.subject)),
            }
        }
        for ack in acks {
            let payload = serde_json::to_vec(&ack).unwrap_or_default();
            match self.publisher.publish(&wire::ack_subject(index), None, payload).await {
                Ok(()) => published += 1,
                Err(e) => failures.push(format!("{}: {e}", wire::ack_subject(index))),
            }
        }
        if beat {
            let payload = serde_json::to_vec(&heartbeat).unwrap_or_default();
            if let Err(e) = self
                .publisher
                .publish(&wire::heartbeat_subject(index), None, payload)
                .await
            {
                failures.push(format!("{}: {e}", wire::heartbeat_subject(index)));
            }
        }
        if !failures.is_empty() {
            // Saved, but not all sent: a redelivery re-acknowledges submissions
            // (the facts are already held), and anti-entropy carries the rest.
            return Err(NetworkError::Unavailable(format!(
                "saved, but publishing failed: {}",
                failures.join("; ")
            )));
        }
        Ok(Report {
            agent_id: heartbeat.agent_id,
            handled,
            published,
            dirty,
            facts: heartbeat.facts,
            digest: heartbeat.digest,
            events,
            events_dropped,
        })
    }
}
