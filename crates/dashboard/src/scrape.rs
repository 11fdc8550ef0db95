//! What a scrape reads from the running network and the process: each
//! agent's lifecycle, facts and counters, the submissions, the resident
//! memory. Read when asked (a scrape, an `/api/metrics` request), never kept.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use ramanujan_agent::Network;
use ramanujan_agent::agent::Counters;
use ramanujan_agent::network::Lifecycle;
use ramanujan_http::memo::CacheStats;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One agent, as a scrape saw it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgentSample {
    /// Its id.
    pub agent_id: String,
    /// Its colour (`red`, `blue`, `green`).
    pub color: String,
    /// `starting`, `alive`, `suspect` or `dead`.
    pub lifecycle: Lifecycle,
    /// Terms and equalities in its replica.
    pub facts: usize,
    /// The digest of its facts (agents holding the same facts hold the same digest).
    pub digest: String,
    /// Its neighbours' ids.
    pub neighbors: Vec<String>,
    /// Its counters; `None` when it is dead or did not answer (the network
    /// bounds how long it waits: 3 s for an agent on the broker).
    pub counters: Option<Counters>,
    /// About how many bytes of heap it holds (an estimate from its replica's
    /// and e-graphs' counts); `None` as for `counters`.
    pub memory_bytes_estimate: Option<u64>,
}

/// The network and the process at one moment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = NetworkSnapshot)]
pub struct Snapshot {
    /// `in-process`, `nats` or `spin`.
    pub transport: String,
    /// `sierpinski` or `ramanujan`: how the agents are connected.
    pub topology: String,
    /// The topology's edges.
    pub edges: Vec<(String, String)>,
    /// Submissions the host took.
    pub submissions: usize,
    /// Every agent holds the same facts and none has rewriting left.
    pub converged: bool,
    /// Why the network is degraded, if it is.
    pub degraded: Option<String>,
    /// Each agent, in topology order.
    pub agents: Vec<AgentSample>,
    /// The process's resident memory, where the system tells it (Linux).
    pub resident_memory_bytes: Option<u64>,
    /// Each component's memo cache, by component.
    pub caches: BTreeMap<String, CacheStats>,
    /// What each component reports of its own work, by component.
    pub components: BTreeMap<String, Vec<Reading>>,
}

/// Reads one component's memo cache (its hits, misses, entries and bytes).
pub type CacheProbe = Arc<dyn Fn() -> CacheStats + Send + Sync>;

/// One number a component reports of its own work (skill-verification's
/// `agent_consensus_success_rate`, say): a Prometheus metric of its own name,
/// and a value under the component in `/api/metrics`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Reading {
    /// Its metric name (the Prometheus text adds `_total` to a counter's).
    pub name: &'static str,
    /// What it means.
    #[serde(skip)]
    pub help: &'static str,
    /// A count that only grows (else a gauge).
    #[serde(skip)]
    pub counter: bool,
    /// Its value now.
    pub value: f64,
}

/// Reads one component's [`Reading`]s.
pub type ReadingsProbe = Arc<dyn Fn() -> Vec<Reading> + Send + Sync>;

/// What a host's components report beside the network, each by its
/// component's name.
#[derive(Clone, Default)]
pub struct Probes {
    /// Memo caches.
    pub caches: Vec<(&'static str, CacheProbe)>,
    /// Components' own numbers.
    pub readings: Vec<(&'static str, ReadingsProbe)>,
}

/// Reads the network's status, then the state of every agent not dead, all
/// at once, and each probe.
pub async fn gather(network: &dyn Network, probes: &Probes) -> Snapshot {
    let status = network.status().await;
    let states = futures_util::future::join_all(status.agents.iter().map(|a| {
        let (id, dead) = (a.agent_id.clone(), a.status == Lifecycle::Dead);
        async move {
            if dead {
                return None;
            }
            network
                .agent_state(id)
                .await
                .ok()
                .map(|state| (state.counters, state.memory_bytes_estimate))
        }
    }))
    .await;
    let agents = status
        .agents
        .into_iter()
        .zip(states)
        .map(|(a, state)| AgentSample {
            agent_id: a.agent_id,
            color: a.color.to_string(),
            lifecycle: a.status,
            facts: a.facts,
            digest: a.digest,
            neighbors: a.neighbors,
            memory_bytes_estimate: state.as_ref().map(|(_, bytes)| *bytes),
            counters: state.map(|(counters, _)| counters),
        })
        .collect();
    Snapshot {
        transport: status.transport,
        topology: status.topology,
        edges: status.edges,
        submissions: status.submissions,
        converged: status.converged,
        degraded: status.degraded,
        agents,
        resident_memory_bytes: resident_memory_bytes(),
        caches: probes
            .caches
            .iter()
            .map(|(name, probe)| (name.to_string(), probe()))
            .collect(),
        components: probes
            .readings
            .iter()
            .map(|(name, probe)| (name.to_string(), probe()))
            .collect(),
    }
}

/// The process's resident set size, from `/proc/self/status` (`None` where
/// there is no such file).
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabels {
    agent: String,
    color: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    agent: String,
    color: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabels {
    component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    agent: String,
    verdict: String,
}

fn lifecycle_name(lifecycle: Lifecycle) -> &'static str {
    match lifecycle {
        Lifecycle::Starting => "starting",
        Lifecycle::Alive => "alive",
        Lifecycle::Suspect => "suspect",
        Lifecycle::Dead => "dead",
    }
}

impl Snapshot {
    /// Appends the snapshot in the Prometheus text format (0.0.4): agents by
    /// lifecycle, each agent's facts, messages, rewriting steps and
    /// verifications by verdict, the submissions, the resident memory, each
    /// component's cache hits, misses, entries and bytes, and each component's
    /// readings.
    pub fn encode(&self, out: &mut String) -> std::fmt::Result {
        let mut registry = Registry::default();
        let by_state = Family::<StateLabels, Gauge>::default();
        registry.register("ramanujan_agents", "Agents by lifecycle state", by_state.clone());
        for state in [
            Lifecycle::Starting,
            Lifecycle::Alive,
            Lifecycle::Suspect,
            Lifecycle::Dead,
        ] {
            let count = self.agents.iter().filter(|a| a.lifecycle == state).count();
            by_state
                .get_or_create(&StateLabels {
                    state: lifecycle_name(state).into(),
                })
                .set(count as i64);
        }
        let gauge = |registry: &mut Registry, name: &str, help: &str, value: i64| {
            let g = Gauge::<i64>::default();
            g.set(value);
            registry.register(name, help, g);
        };
        gauge(
            &mut registry,
            "ramanujan_submissions",
            "Submissions the host took",
            self.submissions as i64,
        );
        gauge(
            &mut registry,
            "ramanujan_network_converged",
            "1 when every agent holds the same facts and none has rewriting left",
            i64::from(self.converged),
        );
        if let Some(bytes) = self.resident_memory_bytes {
            gauge(
                &mut registry,
                "process_resident_memory_bytes",
                "Resident memory of the host process",
                bytes as i64,
            );
        }
        let facts = Family::<AgentLabels, Gauge>::default();
        registry.register(
            "ramanujan_agent_facts",
            "Terms and equalities in an agent's replica",
            facts.clone(),
        );
        let memory = Family::<AgentLabels, Gauge>::default();
        registry.register(
            "ramanujan_agent_memory_bytes_estimate",
            "About how many bytes of heap an agent holds (its replica and e-graphs), estimated from their counts",
            memory.clone(),
        );
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<AgentLabels, Counter>::default();
            registry.register(name, help, family.clone());
            family
        };
        let sent = Family::<MessageLabels, Counter>::default();
        registry.register(
            "ramanujan_agent_messages_sent",
            "Messages an agent sent, by kind (event, sync_request, sync_reply, sync_push)",
            sent.clone(),
        );
        let received = Family::<MessageLabels, Counter>::default();
        registry.register(
            "ramanujan_agent_messages_received",
            "Messages an agent accepted, by kind",
            received.clone(),
        );
        let steps = counter(
            &mut registry,
            "ramanujan_agent_rewrite_steps",
            "Rewriting steps an agent ran",
        );
        let verifications = Family::<VerdictLabels, Counter>::default();
        registry.register(
            "ramanujan_agent_verifications",
            "Equalities a GREEN agent checked, by verdict",
            verifications.clone(),
        );
        for agent in &self.agents {
            let labels = AgentLabels {
                agent: agent.agent_id.clone(),
                color: agent.color.clone(),
            };
            facts.get_or_create(&labels).set(agent.facts as i64);
            if let Some(bytes) = agent.memory_bytes_estimate {
                memory.get_or_create(&labels).set(bytes as i64);
            }
            let Some(c) = &agent.counters else { continue };
            for (family, kinds) in [(&sent, &c.sent_by_kind), (&received, &c.received_by_kind)] {
                for (kind, n) in kinds.by_name() {
                    let labels = MessageLabels {
                        agent: agent.agent_id.clone(),
                        color: agent.color.clone(),
                        kind: kind.into(),
                    };
                    family.get_or_create(&labels).inc_by(n);
                }
            }
            steps.get_or_create(&labels).inc_by(c.rewrite_steps);
            for (verdict, n) in [
                ("verified", c.verified),
                ("refuted", c.refuted),
                ("inconclusive", c.inconclusive),
            ] {
                verifications
                    .get_or_create(&VerdictLabels {
                        agent: agent.agent_id.clone(),
                        verdict: verdict.into(),
                    })
                    .inc_by(n);
            }
        }
        let cache_hits = Family::<ComponentLabels, Counter>::default();
        let cache_misses = Family::<ComponentLabels, Counter>::default();
        let cache_entries = Family::<ComponentLabels, Gauge>::default();
        let cache_bytes = Family::<ComponentLabels, Gauge>::default();
        registry.register(
            "ramanujan_cache_hits",
            "Requests a component answered from its memo cache",
            cache_hits.clone(),
        );
        registry.register(
            "ramanujan_cache_misses",
            "Requests a component computed (its memo cache did not hold the answer)",
            cache_misses.clone(),
        );
        registry.register(
            "ramanujan_cache_entries",
            "Answers a memo cache holds",
            cache_entries.clone(),
        );
        registry.register(
            "ramanujan_cache_bytes",
            "Bytes of answers a memo cache holds",
            cache_bytes.clone(),
        );
        for (component, stats) in &self.caches {
            let labels = ComponentLabels {
                component: component.clone(),
            };
            cache_hits.get_or_create(&labels).inc_by(stats.hits);
            cache_misses.get_or_create(&labels).inc_by(stats.misses);
            cache_entries.get_or_create(&labels).set(stats.entries as i64);
            cache_bytes.get_or_create(&labels).set(stats.bytes as i64);
        }
        for reading in self.components.values().flatten() {
            if reading.counter {
                let c = Counter::<u64>::default();
                c.inc_by(reading.value.max(0.0) as u64);
                registry.register(reading.name, reading.help, c);
            } else {
                let g = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
                g.set(reading.value);
                registry.register(reading.name, reading.help, g);
            }
        }
        prometheus_client::encoding::prometheus_text::encode(out, &registry)
    }
}
