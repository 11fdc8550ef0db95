//! The skill-verification service as this host runs it: its verifiers on a
//! pool of their own, its references kept in `skills.redb` in the data
//! directory (in memory with `--in-memory`) and pulled from the hosts
//! `SKILL_PEERS` names, images embedded by the model `MODEL_PATH` names.

use crate::config::ServeArgs;
use crate::pool::BlockingPool;
use futures_util::future::BoxFuture;
use ramanujan_events::Emitter;
use skill_verification::images::ImageModel;
use skill_verification::store::RedbReferences;
use skill_verification::sync::{FetchRequest, Fetched, Membership, Peer, Pulled, pull};
use skill_verification::{PanelConfig, SkillConfig, SkillService};
use std::sync::Arc;
use std::time::Duration;

/// Builds the service `args` describe, its events going to `events`. Refuses
/// (with what to change) an image model or a stored reference set that does
/// not fit the configured dimension, or a store that cannot be opened.
pub fn open(args: &ServeArgs, events: Emitter) -> Result<Arc<SkillService>, String> {
    let panel = PanelConfig {
        verifiers: args.skill_verifiers as usize,
        dim: args.skill_embedding_dim as usize,
        seed: args.skill_seed,
        ..Default::default()
    };
    let config = SkillConfig {
        panel,
        deadline: Duration::from_millis(args.skill_deadline_ms.max(1)),
        host: args.agent_id.clone(),
        ..Default::default()
    };
    // Its own pool, so a busy panel never queues saturations: room for 64
    // analyses' verifiers running or waiting.
    let pool = Arc::new(BlockingPool::new(args.compute_workers(), panel.verifiers * 64));
    let sleep: skill_verification::service::Sleep = Arc::new(|d| Box::pin(tokio::time::sleep(d)));
    let mut service = SkillService::new(config, pool, Some(sleep), Some(events));
    if let Some(model) = load_image_model(args)? {
        service = service.with_model(model)?;
    }
    if let Some(dir) = args.network.data_dir() {
        let store = RedbReferences::in_dir(&dir).map_err(|e| format!("opening the skill references: {e}"))?;
        service = service.with_store(Arc::new(store))?;
        tracing::info!(references = service.len(), dir = %dir.display(), "skill references loaded");
    }
    Ok(Arc::new(service))
}

/// The image model `MODEL_PATH` names (with `MODEL_OUTPUT`'s node as its
/// output), checked against `SKILL_EMBEDDING_DIM`; `None` when none is set.
pub fn load_image_model(args: &ServeArgs) -> Result<Option<Arc<ImageModel>>, String> {
    let Some(path) = &args.model_path else {
        return Ok(None);
    };
    let model = ImageModel::load(path, args.model_output.as_deref())?;
    if model.dim() != args.skill_embedding_dim as usize {
        return Err(format!(
            "the image model {} gives embeddings of {} values; set SKILL_EMBEDDING_DIM={} (now {}){}",
            path.display(),
            model.dim(),
            model.dim(),
            args.skill_embedding_dim,
            if args.model_output.is_none() {
                ", or name the embedding's node with MODEL_OUTPUT (a classifier's first output is its logits)"
            } else {
                ""
            }
        ));
    }
    tracing::info!(path = %path.display(), dim = model.dim(), digest = model.digest(), "image model loaded");
    Ok(Some(Arc::new(model)))
}

/// The service's counters as the dashboard's readings (`/metrics`,
/// `/api/metrics`): `agent_consensus_success_rate` as the original design
/// names it, and the rest under `skill_`.
pub fn readings(stats: &skill_verification::service::SkillStats) -> Vec<dashboard::Reading> {
    let reading = |name, help, counter, value: f64| dashboard::Reading {
        name,
        help,
        counter,
        value,
    };
    vec![
        reading(
            "agent_consensus_success_rate",
            "Share of skill analyses whose verifiers reached a quorum (0 before any)",
            false,
            stats.agent_consensus_success_rate,
        ),
        reading(
            "skill_consensus_score_variance_mean",
            "Mean over skill analyses of the variance of the verifiers' scores",
            false,
            stats.score_variance_mean,
        ),
        reading("skill_analyses", "Skill analyses answered", true, stats.analyses as f64),
        reading(
            "skill_analyses_no_quorum",
            "Skill analyses whose verifiers reached no quorum",
            true,
            stats.no_quorum as f64,
        ),
        reading(
            "skill_claims_verified",
            "Claimed skills the consensus confirmed",
            true,
            stats.verified as f64,
        ),
        reading(
            "skill_claims_not_verified",
            "Claimed skills the consensus did not confirm",
            true,
            stats.not_verified as f64,
        ),
        reading(
            "skill_verifiers_crashed",
            "Verifier runs that crashed",
            true,
            stats.verifiers_crashed as f64,
        ),
        reading(
            "skill_verifiers_timed_out",
            "Verifier runs that missed the deadline",
            true,
            stats.verifiers_timed_out as f64,
        ),
        reading(
            "skill_references",
            "Labelled reference examples held",
            false,
            stats.references as f64,
        ),
        reading("skill_skills", "Skills (labels) held", false, stats.skills as f64),
    ]
}

/// A peer host's `/skills/membership` and `/skills/fetch`, over HTTP.
struct HttpPeer {
    base: String,
    http: reqwest::Client,
}

impl HttpPeer {
    async fn json<T: serde::de::DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, String> {
        let response = request.send().await.map_err(|e| format!("{}: {e}", self.base))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(format!(
                "{} answered {status}: {}",
                self.base,
                body.chars().take(300).collect::<String>()
            ));
        }
        response.json().await.map_err(|e| format!("{}: {e}", self.base))
    }
}

impl Peer for HttpPeer {
    fn membership(&self) -> BoxFuture<'_, Result<Membership, String>> {
        Box::pin(self.json(self.http.get(format!("{}/skills/membership", self.base))))
    }

    fn fetch<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Fetched, String>> {
        let body = FetchRequest { keys: keys.to_vec() };
        Box::pin(self.json(self.http.post(format!("{}/skills/fetch", self.base)).json(&body)))
    }
}

/// Pulls every peer's references into `service` every `interval` (`SKILL_PEERS`,
/// `SKILL_SYNC_MS`), for as long as the task runs. A failing peer is logged
/// when it starts and stops failing, and counted (`/skills/stats`).
pub async fn sync_with_peers(service: Arc<SkillService>, peers: Vec<String>, interval: Duration) {
    let http = match reqwest::Client::builder().timeout(Duration::from_secs(30)).build() {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for the skill peers");
            return;
        }
    };
    let peers: Vec<HttpPeer> = peers
        .into_iter()
        .map(|base| HttpPeer {
            base,
            http: http.clone(),
        })
        .collect();
    let mut failing = vec![false; peers.len()];
    loop {
        for (peer, failing) in peers.iter().zip(&mut failing) {
            match pull(&service, peer).await {
                Ok(pulled) => {
                    if std::mem::take(failing) {
                        tracing::info!(peer = %peer.base, "skill peer reachable again");
                    }
                    if let Pulled::Merged {
                        fetched,
                        added,
                        removed,
                    } = pulled
                    {
                        tracing::debug!(peer = %peer.base, fetched, added, removed, "skill references pulled");
                    }
                }
                Err(e) => {
                    if !std::mem::replace(failing, true) {
                        tracing::warn!(peer = %peer.base, error = %e, "pulling skill references failed; retrying");
                    }
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}
