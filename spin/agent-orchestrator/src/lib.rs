//! `agent-orchestrator` on Spin: agents that receive broker messages from the
//! NATS bridge on `/nats/webhook/{topic}`, keep their state in Spin key-value,
//! and publish through the bridge's `POST /publish/{subject}`. The routes are
//! [`ramanujan_hosted::webhook::router`] and the native host's `/agents/...`
//! and `/agent/{id}/...` ([`agent_orchestrator::routes::router`] over the
//! hosted agents: reads from key-value, submissions, messages and syncs into
//! the agents' inboxes through the bridge).
//!
//! Configuration: each setting is the Spin variable of that name, else the
//! environment variable of the upper-cased name, else the default.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `webhook_secret` | HMAC secret shared with the bridge | none: webhooks are refused |
//! | `bridge_url` | where the bridge serves `/publish/{subject}` | none: publishing fails |
//! | `agents` | positions hosted here: `3`, `3,5`, `0-8` | every agent of the topology |
//! | `topology` | `sierpinski` or `ramanujan` | `sierpinski` |
//! | `num_agents`, `degree`, `topology_seed` | a `ramanujan` topology | 48, 4, 1069 |
//! | `component_id` | reported as the agents' `node_id` | `agent-orchestrator` |
//! | `step_time_ms` | time of one rewriting step | 500 |
//! | `max_terms` | no new submissions and no rewriting beyond this many terms | 200000 |
//! | `goal_nodes` | terms one submission's rewriting may add, per colour | 2000 |
//! | `sync_interval_ms` | the bridge's `--sync-interval`, as `/agents/status` reports it | 5000 |
//! | `health_timeout_ms` | an agent not saved (ticked) for this long is suspect; twice: dead | 15000 |
//! | `kv_store` | the key-value store label | `default` |

mod platform;

use ramanujan_agent::agent::WorkLimits;
use ramanujan_agent::defaults;
use ramanujan_agent::topology::{TopologyKind, parse_positions};
use ramanujan_hosted::hosted::{Hosted, HostedConfig};
use spin_sdk::http::{IntoResponse, Request};
use std::sync::Arc;
use std::time::Duration;

/// Serves one request.
#[spin_sdk::http_service]
async fn handle(request: Request) -> impl IntoResponse {
    let settings = platform::Settings::read().await;
    let router = match configure(&settings) {
        Ok((hosted, secret)) => ramanujan_hosted::webhook::router(hosted.clone(), secret)
            .merge(agent_orchestrator::routes::router(Arc::new(hosted))),
        Err(message) => return spin_entry::misconfigured(&message),
    };
    spin_entry::serve(router, request).await
}

fn configure(settings: &platform::Settings) -> Result<(Hosted, Option<Vec<u8>>), String> {
    let number = |name: &str, default: u64| -> Result<u64, String> {
        settings.get(name).map_or(Ok(default), |v| {
            v.parse().map_err(|_| format!("{name} must be a number, not `{v}`"))
        })
    };
    let topology = match settings.get("topology").unwrap_or("sierpinski") {
        "sierpinski" => TopologyKind::Sierpinski,
        "ramanujan" => TopologyKind::Ramanujan {
            agents: number("num_agents", defaults::EXPANDER_AGENTS as u64)? as usize,
            degree: number("degree", defaults::EXPANDER_DEGREE as u64)? as usize,
        },
        other => return Err(format!("topology must be sierpinski or ramanujan, not `{other}`")),
    };
    let seed = number("topology_seed", defaults::TOPOLOGY_SEED)?;
    let size = match topology {
        TopologyKind::Sierpinski => 9,
        TopologyKind::Ramanujan { agents, .. } => agents,
    };
    let agents = match settings.get("agents") {
        Some(list) => {
            let agents = parse_positions(list).map_err(|e| format!("agents: {e}"))?;
            if let Some(&outside) = agents.iter().find(|&&i| i >= size) {
                return Err(format!("agents: {outside} is outside 0-{} for this topology", size - 1));
            }
            agents
        }
        None => (0..size).collect(),
    };
    let work = WorkLimits {
        max_terms: number("max_terms", defaults::MAX_TERMS as u64)? as usize,
        goal_nodes: number("goal_nodes", defaults::GOAL_NODES as u64)? as usize,
        step_time: Duration::from_millis(number("step_time_ms", defaults::HOSTED_STEP_TIME_MS)?),
        ..WorkLimits::default()
    };
    let config = HostedConfig {
        topology,
        seed,
        agents,
        node_id: settings.get("component_id").unwrap_or("agent-orchestrator").to_string(),
        work,
        sync_interval: Duration::from_millis(number("sync_interval_ms", defaults::SYNC_INTERVAL_MS)?.max(1)),
        health_timeout: Duration::from_millis(number("health_timeout_ms", defaults::HEALTH_TIMEOUT_MS)?.max(1)),
    };
    let store = spin_entry::SpinKeyValue::new(settings.get("kv_store").unwrap_or("default"));
    let publisher = platform::BridgePublisher::new(
        settings.get("bridge_url").map(str::to_string),
        settings.get("webhook_secret").map(|s| s.as_bytes().to_vec()),
    );
    let secret = settings.get("webhook_secret").map(|s| s.as_bytes().to_vec());
    Ok((Hosted::new(config, Arc::new(store), Arc::new(publisher)), secret))
}
