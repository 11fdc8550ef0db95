//! The command line and its environment variables.

use clap::{Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Ramanujan: agents that share a coloured e-graph as a CRDT.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// What to run (default: `up`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
// Parsed once at start; boxing would only make every use longer.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Serve HTTP with every component. The agents run in this process, or,
    /// with `--nats`, as `ramanujan agent` processes on that broker.
    Up(ServeArgs),
    /// Run one agent of a network on a NATS JetStream broker.
    Agent(AgentArgs),
    /// Bridge NATS and agents running as Spin components: broker messages
    /// become signed webhooks to `{app}/nats/webhook/{topic}`, and the app
    /// publishes through `POST /publish/{subject}`.
    Bridge(BridgeArgs),
}

/// The log filter when none is given, or the given one does not parse: egg
/// logs every e-graph rebuild at `info`, so it is kept to warnings.
pub const DEFAULT_LOG_FILTER: &str = "info,egg=warn";

/// Logging options (every subcommand).
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log filter, e.g. `info` or `ramanujan=debug,tower_http=debug` (egg logs
    /// every e-graph rebuild at `info`: the default keeps it to warnings).
    #[arg(long, env = "LOG_LEVEL", default_value = DEFAULT_LOG_FILTER)]
    pub log_level: String,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "LOG_JSON")]
    pub log_json: bool,
}

/// The agent network's shape and timing: every process of one network must agree.
#[derive(Debug, Clone, clap::Args)]
pub struct NetworkArgs {
    /// Agent topology: `sierpinski` (S(2,3), 9 agents) or `ramanujan` (a random regular expander).
    #[arg(long, env = "TOPOLOGY", default_value = "sierpinski", value_parser = ["sierpinski", "ramanujan"])]
    pub topology: String,
    /// Agents in a `ramanujan` topology.
    #[arg(long, env = "NUM_AGENTS", default_value_t = ramanujan_agent::defaults::EXPANDER_AGENTS)]
    pub num_agents: usize,
    /// Degree of a `ramanujan` topology.
    #[arg(long, env = "DEGREE", default_value_t = ramanujan_agent::defaults::EXPANDER_DEGREE)]
    pub degree: usize,
    /// Seed of a `ramanujan` topology.
    #[arg(long, env = "TOPOLOGY_SEED", default_value_t = ramanujan_agent::defaults::TOPOLOGY_SEED)]
    pub seed: u64,
    /// Milliseconds between an agent's anti-entropy rounds.
    #[arg(long, env = "SYNC_INTERVAL", default_value_t = ramanujan_agent::defaults::SYNC_INTERVAL_MS)]
    pub sync_interval: u64,
    /// Milliseconds without a heartbeat before an agent is suspect (twice that: dead).
    #[arg(long, env = "HEALTH_TIMEOUT", default_value_t = ramanujan_agent::defaults::HEALTH_TIMEOUT_MS)]
    pub health_timeout: u64,
    /// Messages an agent takes in at once: its in-process mailbox (more are dropped
    /// and repaired by anti-entropy), or its batch from the broker.
    #[arg(long, env = "MAX_BUFFER_SIZE", default_value_t = 1024)]
    pub max_buffer_size: usize,
    /// An agent whose replica holds this many terms refuses new submissions
    /// (503) and stops rewriting; replication goes on.
    #[arg(long, env = "MAX_TERMS", default_value_t = ramanujan_agent::defaults::MAX_TERMS)]
    pub max_terms: usize,
    /// Terms one submission's rewriting may add, per colour (its node budget).
    #[arg(long, env = "GOAL_NODES", default_value_t = ramanujan_agent::defaults::GOAL_NODES)]
    pub goal_nodes: usize,
    /// Iterations one submission's rewriting may take, per colour.
    #[arg(long, env = "GOAL_ITERATIONS", default_value_t = ramanujan_agent::defaults::GOAL_ITERATIONS)]
    pub goal_iterations: usize,
    /// Where agents keep their replicas (one redb file each).
    #[arg(long, env = "DATA_DIR", default_value = "ramanujan-data")]
    pub data_dir: PathBuf,
    /// Keep replicas in memory only: nothing survives a restart.
    #[arg(long, env = "IN_MEMORY")]
    pub in_memory: bool,
}

/// Options of `ramanujan up`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, short, env = "PORT", default_value_t = 3000)]
    pub port: u16,
    /// Default time limit of a saturation, in milliseconds.
    #[arg(long, env = "SATURATION_TIMEOUT_MS", default_value_t = 5000)]
    pub saturation_timeout_ms: u64,
    /// This process's agent id, used in provenance.
    #[arg(long, env = "AGENT_ID", default_value = "local")]
    pub agent_id: String,
    /// Largest request body, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Bearer keys with their scope, `read:<key>` or `write:<key>`, separated
    /// by commas: every route but the health probes then needs a key (`GET`
    /// a read key, anything else a write key). Unset: open, as the embedded
    /// quick start is.
    #[arg(long, env = "API_KEYS", hide_env_values = true)]
    pub api_keys: Option<String>,
    /// A file of keys as `API_KEYS` takes them, one per line.
    #[arg(long, env = "API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// The network's key: agent-to-agent requests (`POST /agent/{id}/message`,
    /// `POST /agent/{id}/sync`) must be signed with it (the
    /// `x-ramanujan-signature` HMAC the bridge's webhooks carry). Unset: open.
    #[arg(long, env = "NETWORK_KEY", hide_env_values = true)]
    pub network_key: Option<String>,
    /// A file holding `NETWORK_KEY` (its first line).
    #[arg(long, env = "NETWORK_KEY_FILE")]
    pub network_key_file: Option<PathBuf>,
    /// Requests a second one client may make (an API key, else an address);
    /// 0: no limit.
    #[arg(long, env = "RATE_LIMIT", default_value_t = 0)]
    pub rate_limit: u32,
    /// Requests one client may make at once before `RATE_LIMIT` paces it.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 50)]
    pub rate_limit_burst: u32,
    /// Web origins allowed to call from a browser (CORS), separated by
    /// commas, or `*`. Unset: no cross-origin calls.
    #[arg(long, env = "CORS_ORIGINS")]
    pub cors_origins: Option<String>,
    /// Seconds a request may take before it is cut off with 503.
    #[arg(long, env = "TIMEOUT_SECONDS", default_value_t = 30)]
    pub timeout_seconds: u64,
    /// Saturations that run at once (default: the number of cores).
    #[arg(long, env = "COMPUTE_THREADS")]
    pub compute_threads: Option<usize>,
    /// Saturations running or waiting before new ones get 503.
    #[arg(long, env = "COMPUTE_QUEUE", default_value_t = 64)]
    pub compute_queue: usize,
    /// Answers the e-graph memo cache keeps.
    #[arg(long, env = "EGRAPH_CACHE_CAPACITY", default_value_t = egraph_service::DEFAULT_CACHE_CAPACITY)]
    pub egraph_cache_capacity: usize,
    /// Merge answers the CRDT memo cache keeps.
    #[arg(long, env = "CRDT_CACHE_CAPACITY", default_value_t = crdt_service::DEFAULT_CACHE_CAPACITY)]
    pub crdt_cache_capacity: usize,
    /// Megabytes of answers each memo cache (the e-graph's, the CRDT merge's)
    /// holds at most; the least recently used leave first.
    #[arg(long, env = "CACHE_SIZE_MB", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub cache_size_mb: u64,
    /// Milliseconds between two updates of `/api/metrics/stream` (server-sent events).
    #[arg(long, env = "METRICS_REFRESH_MS", default_value_t = dashboard::DEFAULT_REFRESH_MS,
          value_parser = clap::value_parser!(u64).range(50..=3_600_000))]
    pub metrics_refresh_ms: u64,
    /// Verifiers on the skill-verification panel (the original design's
    /// `NUM_AGENTS` for this component; that name sets the expander's size here).
    #[arg(long, env = "SKILL_VERIFIERS", default_value_t = 17, value_parser = clap::value_parser!(u64).range(1..=101))]
    pub skill_verifiers: u64,
    /// Dimension of the embeddings skill-verification takes (2048: ResNet50's).
    #[arg(long, env = "SKILL_EMBEDDING_DIM", default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub skill_embedding_dim: u64,
    /// Seed of the verifiers' projections and samples: hosts that share it
    /// (and their references) answer alike.
    #[arg(long, env = "SKILL_SEED", default_value_t = skill_verification::PanelConfig::default().seed)]
    pub skill_seed: u64,
    /// How long the panel waits for its verifiers, in milliseconds.
    #[arg(long, env = "SKILL_DEADLINE_MS", default_value_t = 1_000)]
    pub skill_deadline_ms: u64,
    /// Other hosts whose skill references this one pulls and merges, as
    /// base URLs, comma-separated (`http://10.0.0.2:8080,http://10.0.0.3:8080`).
    #[arg(long, env = "SKILL_PEERS", value_delimiter = ',', value_parser = parse_peer_url)]
    pub skill_peers: Vec<String>,
    /// Milliseconds between two pulls from each skill peer.
    #[arg(long, env = "SKILL_SYNC_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub skill_sync_ms: u64,
    /// This site's name in the rule book (the actor of its edits); the
    /// original design's `LOCAL_ENDPOINT`. Unset: a random name, kept in the
    /// data directory (`site-id`) so a restarted host stays the same site.
    #[arg(long, env = "LOCAL_ENDPOINT")]
    pub local_endpoint: Option<String>,
    /// The peer site whose rule book this one syncs with (`/2tdx/sync`), as a
    /// base URL.
    #[arg(long, env = "PEER_ENDPOINT", value_parser = parse_peer_url)]
    pub peer_endpoint: Option<String>,
    /// The original design's name for `PEER_ENDPOINT` (used when that is unset).
    #[arg(long, env = "VERS_ENDPOINT", value_parser = parse_peer_url, hide = true)]
    pub vers_endpoint: Option<String>,
    /// The bearer key `/2tdx/sync` asks of callers and this host sends its
    /// peer. Unset: the sync routes are open.
    #[arg(long, env = "TDX_API_KEY", hide_env_values = true)]
    pub tdx_api_key: Option<String>,
    /// A file holding `TDX_API_KEY` (a mounted secret; its first line).
    #[arg(long, env = "TDX_API_KEY_FILE")]
    pub tdx_api_key_file: Option<std::path::PathBuf>,
    /// Milliseconds between two syncs with the peer (backing off, up to a
    /// minute, while it fails).
    #[arg(long, env = "TDX_SYNC_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub tdx_sync_ms: u64,
    /// Whether the agents run the core's built-in rules beside the rule
    /// book's enabled ones (`false`: the book's rules only).
    #[arg(long, env = "BUILTIN_RULES", default_value_t = true, action = clap::ArgAction::Set)]
    pub builtin_rules: bool,
    /// Bound on each sync attempt with the peer, in milliseconds.
    #[arg(long, env = "MAX_LATENCY_MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub max_latency_ms: u64,
    /// An ONNX image model (ResNet50, say) that turns images sent to
    /// `/skills/...` into embeddings; without one, only embeddings are taken.
    #[arg(long, env = "MODEL_PATH")]
    pub model_path: Option<std::path::PathBuf>,
    /// The model's node whose value is the embedding (for a classifier such as
    /// ResNet50, its global pooling); the model's first output when unset.
    #[arg(long, env = "MODEL_OUTPUT")]
    pub model_output: Option<String>,
    /// Run no agents here: they are `ramanujan agent` processes on this NATS JetStream broker.
    #[arg(long, env = "NATS_URL")]
    pub nats: Option<String>,
    /// How long the interaction timeline keeps events (`24h`, `7d`, `30m`):
    /// older ones are written to Parquet in `<data-dir>/timeline-archive/`,
    /// then leave `timeline.duckdb`. Unset: kept for good.
    #[arg(long, env = "TIMELINE_RETENTION", value_parser = humantime::parse_duration)]
    pub timeline_retention: Option<std::time::Duration>,
    /// Most events the interaction timeline keeps: past it, the oldest
    /// written are archived likewise (checked every minute). Unset: no bound
    /// for a timeline file, 1,000,000 events for one in memory.
    #[arg(long, env = "TIMELINE_MAX_EVENTS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeline_max_events: Option<u64>,
    /// Over NATS: the durable consumer the timeline reads the agents' events
    /// with. Hosts that share a name share the events (each gets some); a
    /// host that wants all of them takes a name of its own.
    #[arg(long, env = "TIMELINE_CONSUMER", default_value = "timeline")]
    pub timeline_consumer: String,
    /// The agent network.
    #[command(flatten)]
    pub network: NetworkArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

impl Default for ServeArgs {
    fn default() -> Self {
        match Cli::parse_from(["ramanujan", "up"]).command {
            Some(Command::Up(args)) => args,
            _ => unreachable!("`up` was given"),
        }
    }
}

/// A peer's base URL: `http://` or `https://`, host and port, no trailing slash.
fn parse_peer_url(s: &str) -> Result<String, String> {
    let url = s.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{s:?} is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
        return Err(format!(
            "{s:?}: give the host's base URL only, such as http://10.0.0.2:8080"
        ));
    }
    Ok(url.to_string())
}

impl ServeArgs {
    /// Saturations (and verifiers) run at once: `COMPUTE_THREADS`, else the
    /// number of cores.
    pub fn compute_workers(&self) -> usize {
        self.compute_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
    }
}

impl NetworkArgs {
    /// The topology these options describe.
    pub fn topology_kind(&self) -> ramanujan_network::TopologyKind {
        match self.topology.as_str() {
            "ramanujan" => ramanujan_network::TopologyKind::Ramanujan {
                agents: self.num_agents,
                degree: self.degree,
            },
            _ => ramanujan_network::TopologyKind::Sierpinski,
        }
    }

    /// The anti-entropy period.
    pub fn sync_interval(&self) -> Duration {
        Duration::from_millis(self.sync_interval.max(1))
    }

    /// The health timeout.
    pub fn health_timeout(&self) -> Duration {
        Duration::from_millis(self.health_timeout.max(1))
    }

    /// Rewriting limits of each agent.
    pub fn work_limits(&self) -> ramanujan_agent::agent::WorkLimits {
        ramanujan_agent::agent::WorkLimits {
            max_terms: self.max_terms,
            goal_nodes: self.goal_nodes,
            goal_iterations: self.goal_iterations,
            ..Default::default()
        }
    }

    /// The data directory, unless replicas stay in memory.
    pub fn data_dir(&self) -> Option<PathBuf> {
        (!self.in_memory).then(|| self.data_dir.clone())
    }
}

/// Options of `ramanujan agent`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// This agent's position in the topology: it runs as `agent-{id}`
    /// (`AGENT_INDEX`; `AGENT_ID` is `up`'s provenance name, a string).
    #[arg(long, env = "AGENT_INDEX")]
    pub id: usize,
    /// The NATS JetStream broker (its `max_payload` should allow 8 MiB messages).
    #[arg(long, env = "NATS_URL")]
    pub nats: String,
    /// This host's name, reported as the agent's `node_id`.
    #[arg(long, env = "NODE_ID", default_value = "local")]
    pub node_id: String,
    /// Record this agent's interactions and publish them on `timeline.events`
    /// for the hosts' timelines (`false` saves their cost).
    #[arg(long, env = "TIMELINE_EVENTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub timeline_events: bool,
    /// The network.
    #[command(flatten)]
    pub network: NetworkArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// Options of `ramanujan bridge`.
#[derive(Debug, Clone, clap::Args)]
pub struct BridgeArgs {
    /// The NATS JetStream broker.
    #[arg(long, env = "NATS_URL")]
    pub nats: String,
    /// The app's base URL: where `/nats/webhook/{topic}` is served (e.g. `spin up`'s address).
    #[arg(long, env = "APP_URL")]
    pub app: String,
    /// The HMAC secret shared with the app (its `webhook_secret` variable).
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: String,
    /// The agent positions the app hosts: `4`, `4,7`, `0-8`.
    #[arg(long, env = "BRIDGE_AGENTS")]
    pub agents: String,
    /// Where to serve `POST /publish/{subject}` (port 0: any free port; the address is printed).
    #[arg(long, env = "BRIDGE_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: std::net::SocketAddr,
    /// Milliseconds between each hosted agent's anti-entropy rounds.
    #[arg(long, env = "SYNC_INTERVAL", default_value_t = ramanujan_agent::defaults::SYNC_INTERVAL_MS)]
    pub sync_interval: u64,
    /// Milliseconds one webhook may take.
    #[arg(long, env = "WEBHOOK_TIMEOUT", default_value_t = 30_000)]
    pub webhook_timeout: u64,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// A secret kept in a file (a mounted secret): its first line, trimmed; an
/// error, naming the variable (`{name}_FILE`) but never the secret, when the
/// file does not read or that line is empty.
pub fn secret_from_file(path: &std::path::Path, name: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}_FILE {}: {e}", path.display()))?;
    let secret = text.lines().next().unwrap_or("").trim().to_string();
    if secret.is_empty() {
        return Err(format!("{name}_FILE {} is empty", path.display()));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn up(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let argv = ["ramanujan", "up"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Some(Command::Up(args)) => Ok(args),
            _ => unreachable!("`up` was given"),
        }
    }

    #[test]
    fn skill_peers_are_base_urls() {
        let args = up(&["--skill-peers", "http://10.0.0.2:8080/,https://b.example:443"]).unwrap();
        assert_eq!(args.skill_peers, ["http://10.0.0.2:8080", "https://b.example:443"]);
        for bad in ["10.0.0.2:8080", "http://a:1/skills", "ftp://a", "http://"] {
            let e = up(&["--skill-peers", bad]).unwrap_err().to_string();
            assert!(e.contains("URL"), "{bad}: {e}");
        }
        assert!(up(&["--skill-sync-ms", "0"]).is_err());
    }
}
