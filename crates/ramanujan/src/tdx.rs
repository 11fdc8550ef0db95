//! The transduction component as this host runs it: its rule book kept in
//! `rules.redb` in the data directory (in memory with `--in-memory`), synced
//! with the peer `PEER_ENDPOINT` names every `TDX_SYNC_MS` (each attempt
//! bounded by `MAX_LATENCY_MS`, backing off while the peer fails), mining from
//! a GREEN agent's replica.

use crate::config::ServeArgs;
use crate::pool::BlockingPool;
use futures_util::future::BoxFuture;
use ramanujan_core::color::Color;
use ramanujan_core::replica::ReplicaState;
use ramanujan_core::rules::{RuleBook, RuleSpec};
use ramanujan_network::InProcessNetwork;
use ramanujan_network::nats::NatsNetwork;
use ramanujan_network::nats::broker::AgentRuleSet;
use std::sync::Arc;
use std::time::Duration;
use transduction_2tdx::agents::agent_rules;
use transduction_2tdx::book::BookState;
use transduction_2tdx::brief::{BriefAnswer, BriefSync};
use transduction_2tdx::store::RedbBook;
use transduction_2tdx::{AgentsStatus, Peer, ReplicaSource, TdxConfig, TdxService};

/// The sync key: `TDX_API_KEY`, else the first line of `TDX_API_KEY_FILE`.
fn api_key(args: &ServeArgs) -> Result<Option<String>, String> {
    if let Some(key) = &args.tdx_api_key {
        return Ok(Some(key.clone()));
    }
    let Some(path) = &args.tdx_api_key_file else {
        return Ok(None);
    };
    crate::config::secret_from_file(path, "TDX_API_KEY").map(Some)
}

/// This site's name: `LOCAL_ENDPOINT`, else one drawn once and kept in the
/// data directory (a fresh one per process in memory).
fn site(args: &ServeArgs) -> Result<String, String> {
    if let Some(site) = &args.local_endpoint {
        return Ok(site.clone());
    }
    let fresh = || format!("site-{:016x}", rand_id());
    let Some(dir) = args.network.data_dir() else {
        return Ok(fresh());
    };
    let path = dir.join("site-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        _ => {
            let id = fresh();
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            std::fs::write(&path, &id).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(id)
        }
    }
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// Builds the service `args` describe. Refuses (saying why) a key file that
/// cannot be read, or a stored book that cannot be opened or does not check.
pub fn open(args: &ServeArgs) -> Result<Arc<TdxService>, String> {
    let config = TdxConfig {
        site: site(args)?,
        // One process per site: the site is the actor of its edits.
        actor: None,
        api_key: api_key(args)?,
        host_keys: crate::guard::api_keys(args)?,
        peer: args.peer_endpoint.clone().or_else(|| args.vers_endpoint.clone()),
        max_latency: Duration::from_millis(args.max_latency_ms),
        builtin_rules: args.builtin_rules,
        time_ceiling: Duration::from_secs(args.timeout_seconds),
    };
    // Mining takes seconds of CPU: a pool of its own, so it never queues saturations.
    let pool = Arc::new(BlockingPool::new(args.compute_workers(), 16));
    let mut service = TdxService::new(config.clone(), pool);
    if let Some(dir) = args.network.data_dir() {
        let store = RedbBook::in_dir(&dir).map_err(|e| format!("opening the rule book: {e}"))?;
        service = service.with_store(Arc::new(store))?;
    }
    if let Some(base) = &config.peer {
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| format!("no HTTP client for the rule-book peer: {e}"))?;
        service = service.with_peer(Arc::new(HttpPeer {
            base: base.clone(),
            key: config.api_key.clone(),
            http,
        }));
    }
    Ok(Arc::new(service))
}

/// The peer's `POST /2tdx/sync`, over HTTP.
struct HttpPeer {
    base: String,
    key: Option<String>,
    http: reqwest::Client,
}

impl HttpPeer {
    /// Posts `body` to the peer's `path` within `bound`; the answer's bytes,
    /// or `None` for a 404 (a peer that does not serve `path`).
    async fn post(&self, path: &str, body: &impl serde::Serialize, bound: Duration) -> Result<Option<Vec<u8>>, String> {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        let attempt = async {
            let response = request.send().await.map_err(|e| format!("{}: {e}", self.base))?;
            let status = response.status();
            let body = response.bytes().await.map_err(|e| format!("{}: {e}", self.base))?;
            if status == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !status.is_success() {
                return Err(format!(
                    "{} answered {status}: {}",
                    self.base,
                    String::from_utf8_lossy(&body).chars().take(300).collect::<String>()
                ));
            }
            Ok(Some(body.to_vec()))
        };
        // One bound for the whole attempt: connecting, sending, the answer.
        tokio::time::timeout(bound, attempt)
            .await
            .map_err(|_| format!("{} did not answer within {} ms", self.base, bound.as_millis()))?
    }
}

impl Peer for HttpPeer {
    fn sync<'a>(&'a self, book: &'a BookState, bound: Duration) -> BoxFuture<'a, Result<BookState, String>> {
        Box::pin(async move {
            let body = self
                .post("/2tdx/sync", book, bound)
                .await?
                .ok_or_else(|| format!("{} answered 404: it serves no /2tdx/sync", self.base))?;
            serde_json::from_slice::<BookState>(&body)
                .map_err(|e| format!("{} answered what is not a rule book: {e}", self.base))
        })
    }

    fn sync_brief<'a>(
        &'a self,
        brief: &'a BriefSync,
        bound: Duration,
    ) -> BoxFuture<'a, Result<Option<BriefAnswer>, String>> {
        Box::pin(async move {
            let Some(body) = self.post("/2tdx/sync/brief", brief, bound).await? else {
                return Ok(None);
            };
            serde_json::from_slice::<BriefAnswer>(&body)
                .map(Some)
                .map_err(|e| format!("{} answered what is not a brief answer: {e}", self.base))
        })
    }
}

/// Syncs with the peer every `interval` for as long as the task runs; after
/// a failure the wait doubles (up to a minute) and a success resets it. A
/// peer that starts or stops failing is logged once.
pub async fn sync_with_peer(service: Arc<TdxService>, interval: Duration) {
    let mut wait = interval;
    let mut failing = false;
    loop {
        tokio::time::sleep(wait).await;
        match service.sync_with_peer().await {
            Ok(_) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("rule-book peer reachable again");
                }
                wait = interval;
            }
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %e, "rule-book sync with the peer failed; retrying with backoff");
                }
                wait = (wait * 2).min(Duration::from_secs(60)).max(interval);
            }
        }
    }
}

/// Where the book's rules go to reach the agents.
pub enum AgentsTarget {
    /// The in-process network's agents, directly.
    InProcess(Arc<InProcessNetwork>),
    /// Agents on the broker, through its key-value bucket `RAMANUJAN_RULES`.
    Broker(Arc<NatsNetwork>),
}

impl AgentsTarget {
    /// Gives the agents `rules` (beside the built-in ones when `builtin`);
    /// answers whether anything changed for them.
    async fn give(&self, builtin: bool, rules: Vec<RuleSpec>) -> Result<bool, String> {
        match self {
            AgentsTarget::InProcess(network) => {
                let network = network.clone();
                // Compiling checks each rule's soundness, and each agent is
                // locked in turn: off the async workers.
                tokio::task::spawn_blocking(move || network.set_rules(rules))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            }
            AgentsTarget::Broker(network) => {
                // Refused here, not by each agent: the same compile they do.
                let set = AgentRuleSet {
                    builtin,
                    rules,
                    book: None,
                };
                let check = set.clone();
                tokio::task::spawn_blocking(move || RuleBook::new(check.builtin, &check.rules))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                network.publish_rules(&set).await.map(|()| true)
            }
        }
    }

    /// What `/2tdx/health` says the agents do with what they were given.
    fn state(&self) -> &'static str {
        match self {
            AgentsTarget::InProcess(_) => "running",
            // Each agent takes them as it reads the bucket.
            AgentsTarget::Broker(_) => "published",
        }
    }
}

/// Gives the agents the book's enabled rules, each in its colour, now and
/// after each change to the book, for as long as the task runs; notes what
/// they were given for `/2tdx/health`. A failure is retried at the next
/// change, or after a few seconds.
pub async fn feed_agents(service: Arc<TdxService>, target: AgentsTarget) {
    let changed = Arc::new(tokio::sync::Notify::new());
    let notify = changed.clone();
    service.on_change(move || notify.notify_one());
    let builtin = service.config().builtin_rules;
    loop {
        let set = agent_rules(&service.enabled_rules(), builtin);
        let (specs, left_out) = (set.specs, set.left_out);
        let count = specs.len();
        let status = match target.give(builtin, specs).await {
            Ok(changed) => {
                if changed {
                    tracing::info!(
                        book_rules = count,
                        left_out = left_out.len(),
                        "agents given the rule book's rules"
                    );
                }
                for (key, why) in &left_out {
                    tracing::warn!(rule = %key, %why, "an enabled rule is not given to the agents");
                }
                AgentsStatus {
                    state: target.state(),
                    builtin,
                    book_rules: count,
                    left_out,
                    note: None,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "the agents were not given the rule book's rules; they keep the ones they run");
                let status = AgentsStatus {
                    state: "failing",
                    builtin,
                    book_rules: 0,
                    left_out: Vec::new(),
                    note: Some(format!("the book's rules did not reach the agents: {e}")),
                };
                service.note_agents(status);
                tokio::select! {
                    _ = changed.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                continue;
            }
        };
        service.note_agents(status);
        changed.notified().await;
    }
}

/// A GREEN agent's replica of the host's network, for mining.
pub struct NetworkReplicas(pub Arc<dyn agent_orchestrator::Network>);

impl ReplicaSource for NetworkReplicas {
    fn replica(&self) -> BoxFuture<'_, Result<(String, ReplicaState), String>> {
        Box::pin(async move {
            let status = self.0.status().await;
            let id = status
                .agents
                .iter()
                .find(|a| a.color == Color::Green)
                .or(status.agents.first())
                .map(|a| a.agent_id.clone())
                .ok_or("the network has no agents")?;
            let replica = self.0.agent_replica(id.clone()).await.map_err(|e| e.to_string())?;
            Ok((id, replica))
        })
    }
}
