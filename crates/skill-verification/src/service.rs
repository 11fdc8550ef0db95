//! The service: the references, the panel over them, and the analysis of one
//! embedding by all verifiers at once, each as its own job, within a deadline.

use crate::consensus::{Decision, Judgement, Outcome, decide};
use crate::embedding::{Embedding, EmbeddingError};
use crate::images::{ImageError, ImageModel};
use crate::panel::{Panel, PanelConfig, Vote};
use crate::references::{Change, Example, Provenance, ReferenceSet, ReferenceState, check_label};
use crate::store::ReferenceStore;
use crate::sync::{MAX_FETCH, Membership};
use base64::Engine;
use crdts::Orswot;
use futures_util::StreamExt;
use ramanujan_events::{Emitter, Event, Kind};
use ramanujan_http::{ApiError, Offload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A timer the host provides: resolves after the duration (tokio's `sleep`
/// natively). Without one, the analysis waits for every verifier.
pub type Sleep = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Most examples one `POST /skills/examples` takes.
pub const MAX_EXAMPLES_PER_REQUEST: usize = 10_000;
/// Most neighbours a verifier may be asked to weigh.
pub const MAX_K: usize = 64;

/// How the service is set up.
#[derive(Debug, Clone)]
pub struct SkillConfig {
    /// The panel.
    pub panel: PanelConfig,
    /// Neighbours each verifier weighs unless the request says (`k`, 7).
    pub default_k: usize,
    /// How long the panel waits for its verifiers (`SKILL_DEADLINE_MS`, 1000).
    pub deadline: Duration,
    /// This host's name in provenance and as the set's actor (`AGENT_ID`).
    pub host: String,
}

impl Default for SkillConfig {
    fn default() -> Self {
        SkillConfig {
            panel: PanelConfig::default(),
            default_k: 7,
            deadline: Duration::from_millis(1_000),
            host: "local".into(),
        }
    }
}

/// A fault injected into one verifier, to show the consensus survives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// It votes for a random known label with a random score.
    RandomVote,
    /// It votes, always, for this index's label in label order (a colluding liar).
    Lie,
    /// It panics.
    Crash,
    /// It sleeps past the deadline.
    Hang,
}

/// One example in a `POST /skills/examples` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExample {
    /// The skill.
    pub label: String,
    /// Its embedding (or send `image`).
    #[serde(default, deserialize_with = "crate::embedding::narrowed")]
    pub embedding: Option<Vec<f32>>,
    /// The image itself, base64 (PNG or JPEG); needs an image model on this host.
    #[serde(default)]
    pub image: Option<String>,
    /// Where it comes from (an image id, a dataset row), kept as provenance.
    #[serde(default)]
    pub source: Option<String>,
}

/// A `POST /skills/analyze` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeRequest {
    /// The image's id, echoed and recorded.
    pub image_id: String,
    /// Its embedding.
    #[serde(default, deserialize_with = "crate::embedding::narrowed")]
    pub embedding: Option<Vec<f32>>,
    /// The image itself (base64); needs an image model on this host.
    #[serde(default)]
    pub image: Option<String>,
    /// The skill the image is claimed to show.
    #[serde(default)]
    pub claimed_skill: Option<String>,
    /// Neighbours each verifier weighs.
    #[serde(default)]
    pub k: Option<usize>,
}

/// The answer to `POST /skills/analyze`: the same bytes on every host with the
/// same seed, references and request (the time taken is in the
/// `Server-Timing` header, not here).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Analysis {
    /// The image's id.
    pub image_id: String,
    /// The claimed skill, if one was.
    pub claimed_skill: Option<String>,
    /// Whether the consensus is the claimed skill: `null` without a claim,
    /// `false` also when there is no consensus.
    pub verified: Option<bool>,
    /// The decision.
    #[serde(flatten)]
    pub decision: Decision,
    /// Neighbours each verifier weighed.
    pub k: usize,
    /// References held when it was judged.
    pub references: usize,
}

/// Counters for `/skills/stats` and the metrics.
#[derive(Debug, Default)]
struct Counters {
    analyses: AtomicU64,
    consensus: AtomicU64,
    no_quorum: AtomicU64,
    verified: AtomicU64,
    refuted: AtomicU64,
    crashed: AtomicU64,
    timed_out: AtomicU64,
    /// Sum of score variances, in millionths.
    variance_micros: AtomicU64,
    pulls: AtomicU64,
    pull_failures: AtomicU64,
}

/// The counters, read.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SkillStats {
    /// Analyses answered.
    pub analyses: u64,
    /// Of them, with a consensus.
    pub consensus: u64,
    /// Of them, without.
    pub no_quorum: u64,
    /// `consensus / analyses` (0 before any): `agent_consensus_success_rate`.
    pub agent_consensus_success_rate: f64,
    /// Claims the consensus confirmed.
    pub verified: u64,
    /// Claims it did not.
    pub not_verified: u64,
    /// Verifier runs that crashed.
    pub verifiers_crashed: u64,
    /// Verifier runs that missed the deadline.
    pub verifiers_timed_out: u64,
    /// Mean of the analyses' score variances.
    pub score_variance_mean: f64,
    /// Examples held.
    pub references: usize,
    /// Skills (labels) held.
    pub skills: usize,
    /// Pulls from peers that merged or found nothing new ([`crate::sync::pull`]).
    pub peer_pulls: u64,
    /// Pulls from peers that failed (unreachable, refused, or refused here).
    pub peer_pull_failures: u64,
}

#[derive(Clone)]
struct Snapshot {
    references: ReferenceSet,
    panel: Panel,
    /// The skills held, in label order (kept with each change, so an analysis
    /// does not count the references).
    labels: Arc<Vec<String>>,
    /// The membership's digest (kept with each change, so a peer's poll costs
    /// nothing).
    digest: Arc<str>,
}

/// What a change answered: the keys it added or removed and the count after.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChangeReport {
    /// Keys that became references.
    pub added: Vec<String>,
    /// Keys that stopped being references.
    pub removed: Vec<String>,
    /// References held now.
    pub references: usize,
}

/// The skill-verification service of one host.
pub struct SkillService {
    config: SkillConfig,
    /// This replica's actor in the observed-remove set: the host's name and a
    /// random suffix, so two hosts (or two runs) never share dots.
    actor: String,
    state: Mutex<Arc<Snapshot>>,
    /// Held by a change from reading the state to storing it and swapping it
    /// in, so changes apply one at a time and analyses never wait on storage.
    writer: Mutex<()>,
    /// Where changes are kept before they are answered (none: memory only).
    store: Option<Arc<dyn ReferenceStore>>,
    offload: Arc<dyn Offload>,
    sleep: Option<Sleep>,
    faults: BTreeMap<usize, Fault>,
    events: Option<Emitter>,
    counters: Counters,
    model: Option<Arc<ImageModel>>,
}

impl SkillService {
    /// A service with no references whose verifiers run on `offload`.
    pub fn new(config: SkillConfig, offload: Arc<dyn Offload>, sleep: Option<Sleep>, events: Option<Emitter>) -> Self {
        let panel = Panel::new(config.panel);
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        static MADE: AtomicU64 = AtomicU64::new(0);
        let made = MADE.fetch_add(1, Ordering::Relaxed);
        let nonce = blake3::hash(&[nonce.to_le_bytes(), made.to_le_bytes()].concat());
        SkillService {
            actor: format!("{}-{}", config.host, &nonce.to_hex()[..12]),
            config,
            state: Mutex::new(Arc::new(Snapshot {
                references: ReferenceSet::new(),
                panel,
                labels: Arc::default(),
                digest: ReferenceSet::new().digest().into(),
            })),
            writer: Mutex::new(()),
            store: None,
            offload,
            sleep,
            faults: BTreeMap::new(),
            events,
            counters: Counters::default(),
            model: None,
        }
    }

    /// The same service keeping its references in `store`, starting from what
    /// the store holds. Refuses a store whose references do not fit this
    /// host's configuration (another dimension).
    pub fn with_store(mut self, store: Arc<dyn ReferenceStore>) -> Result<Self, String> {
        let loaded = store.load().map_err(|e| format!("reading the skill references: {e}"))?;
        if let Some(state) = loaded {
            ReferenceSet::check_state(&state, self.config.panel.dim)
                .map_err(|e| format!("the stored skill references do not fit this host (SKILL_EMBEDDING_DIM?): {e}"))?;
            let references = ReferenceSet::from_state(state);
            let mut panel = Panel::new(self.config.panel);
            for (key, example) in references.examples() {
                panel.insert(key, example);
            }
            let labels = labels_of(&references);
            let digest = references.digest().into();
            *self.state.get_mut().unwrap_or_else(|e| e.into_inner()) = Arc::new(Snapshot {
                references,
                panel,
                labels,
                digest,
            });
        }
        self.store = Some(store);
        Ok(self)
    }

    /// The same service embedding images with `model`, whose output length
    /// must be the configured dimension.
    pub fn with_model(mut self, model: Arc<ImageModel>) -> Result<Self, String> {
        if model.dim() != self.config.panel.dim {
            return Err(format!(
                "the image model gives embeddings of {} values but this host is set to {} (SKILL_EMBEDDING_DIM)",
                model.dim(),
                self.config.panel.dim
            ));
        }
        self.model = Some(model);
        Ok(self)
    }

    /// The image model, if this host has one.
    pub fn model(&self) -> Option<&ImageModel> {
        self.model.as_deref()
    }

    /// The embedding of a base64 PNG or JPEG, computed on the offload pool.
    /// `what` names the field in errors.
    pub async fn embed_image(&self, what: &str, base64_image: &str) -> Result<Vec<f32>, ApiError> {
        let Some(model) = self.model.clone() else {
            return Err(ApiError::bad_request(format!(
                "{what}: this host has no image model (set MODEL_PATH); send a precomputed `embedding`"
            )));
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(base64_image.trim())
            .map_err(|e| ApiError::bad_request(format!("{what}: `image` is not standard base64: {e}")))?;
        let (tx, rx) = futures_channel::oneshot::channel();
        let job = move || {
            let _ = tx.send(std::panic::catch_unwind(AssertUnwindSafe(|| model.embed(&bytes))));
        };
        self.offload
            .spawn(Box::new(job))
            .map_err(|e| ApiError::unavailable(format!("the image model cannot start: {e}")))?;
        match rx.await {
            Ok(Ok(Ok(embedding))) => Ok(embedding),
            Ok(Ok(Err(e))) => Err(image_error(what, e)),
            Ok(Err(_)) | Err(_) => Err(ApiError {
                status: http::StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("{what}: the image model stopped without an answer"),
            }),
        }
    }

    /// The embedding a request or an example carries: its own, or its
    /// image's. `field` names it in errors (`image`, `examples[3]`).
    async fn embedding_or_image(
        &self,
        field: &str,
        embedding: Option<Vec<f32>>,
        image: Option<String>,
    ) -> Result<Vec<f32>, ApiError> {
        match (embedding, image) {
            (Some(_), Some(_)) => Err(ApiError::bad_request(format!(
                "{field}: send `embedding` or `image`, not both"
            ))),
            (Some(values), None) => Ok(values),
            (None, Some(image)) => self.embed_image(field, &image).await,
            (None, None) => Err(ApiError::bad_request(format!(
                "{field}: send an `embedding` or an `image`"
            ))),
        }
    }

    /// The same service with faults injected into these verifiers (for tests
    /// and drills: what the consensus survives).
    pub fn with_faults(mut self, faults: impl IntoIterator<Item = (usize, Fault)>) -> Self {
        self.faults = faults.into_iter().collect();
        self
    }

    /// How it is set up.
    pub fn config(&self) -> &SkillConfig {
        &self.config
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Applies `f` to a copy of the references, stores the result (when the
    /// service has a store), and only then swaps it in and brings the panel's
    /// views in line with what changed: a change that could not be stored is
    /// not made (503).
    fn change(&self, f: impl FnOnce(&mut ReferenceSet) -> Result<Change, ApiError>) -> Result<ChangeReport, ApiError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.snapshot();
        let mut next = current.references.clone();
        let change = f(&mut next)?;
        let members_changed = next.members() != current.references.members();
        if let Some(store) = &self.store
            && (!change.is_empty() || members_changed)
        {
            store.save(&next, &change).map_err(|e| ApiError {
                status: http::StatusCode::SERVICE_UNAVAILABLE,
                message: format!("the references could not be stored, so nothing was changed: {e}"),
            })?;
        }
        drop(current);
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Copied only when an analysis still holds the snapshot.
        let snapshot = Arc::make_mut(&mut guard);
        snapshot.references = next;
        for key in &change.removed {
            snapshot.panel.remove(key);
        }
        for key in &change.added {
            if let Some(example) = snapshot.references.examples().get(key) {
                snapshot.panel.insert(key, example);
            }
        }
        if !change.added.is_empty() || !change.removed.is_empty() {
            snapshot.labels = labels_of(&snapshot.references);
        }
        if members_changed {
            snapshot.digest = snapshot.references.digest().into();
        }
        Ok(ChangeReport {
            references: snapshot.references.len(),
            added: change.added,
            removed: change.removed,
        })
    }

    /// Adds examples: all of them, or (when any is bad) none. Images are
    /// embedded first, on the offload pool.
    pub async fn add_examples(&self, examples: Vec<NewExample>) -> Result<ChangeReport, ApiError> {
        if examples.is_empty() {
            return Err(ApiError::bad_request("`examples` is empty: send at least one"));
        }
        if examples.len() > MAX_EXAMPLES_PER_REQUEST {
            return Err(ApiError::bad_request(format!(
                "{} examples in one request; send at most {MAX_EXAMPLES_PER_REQUEST} at a time",
                examples.len()
            )));
        }
        for (i, e) in examples.iter().enumerate() {
            check_label(&e.label).map_err(|err| ApiError::bad_request(format!("examples[{i}]: {err}")))?;
        }
        let dim = self.config.panel.dim;
        let mut checked = Vec::with_capacity(examples.len());
        for (i, e) in examples.into_iter().enumerate() {
            let field = format!("examples[{i}]");
            let embedding = self.embedding_or_image(&field, e.embedding, e.image).await?;
            let embedding =
                Embedding::new(embedding, dim).map_err(|err| ApiError::bad_request(format!("{field}: {err}")))?;
            let provenance = Provenance {
                host: self.config.host.clone(),
                source: e.source,
            };
            checked.push((e.label, embedding, provenance));
        }
        let actor = self.actor.clone();
        self.change(move |refs| Ok(refs.add(&actor, checked)))
    }

    /// Removes every example of `label`; `Ok(None)` if it has none.
    pub fn remove_skill(&self, label: &str) -> Result<Option<ChangeReport>, ApiError> {
        let keys = self.snapshot().references.keys_of(label);
        if keys.is_empty() {
            return Ok(None);
        }
        self.change(|refs| Ok(refs.remove(&keys))).map(Some)
    }

    /// Removes one example by key; `Ok(None)` if it is not held.
    pub fn remove_example(&self, key: &str) -> Result<Option<ChangeReport>, ApiError> {
        if !self.snapshot().references.examples().contains_key(key) {
            return Ok(None);
        }
        let keys = [key.to_string()];
        self.change(|refs| Ok(refs.remove(&keys))).map(Some)
    }

    /// Merges a peer's reference state: checked whole first (400 naming the
    /// problem), then merged.
    pub fn merge(&self, state: ReferenceState) -> Result<ChangeReport, ApiError> {
        ReferenceSet::check_state(&state, self.config.panel.dim).map_err(|e| ApiError::bad_request(e.to_string()))?;
        self.change(|refs| Ok(refs.merge(state)))
    }

    /// Counts one pull from a peer, as it went.
    pub(crate) fn count_pull(&self, ok: bool) {
        let counter = if ok {
            &self.counters.pulls
        } else {
            &self.counters.pull_failures
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The membership and its digest, for a peer that pulls (`GET /skills/membership`).
    pub fn membership(&self) -> Membership {
        let snapshot = self.snapshot();
        Membership {
            digest: snapshot.digest.to_string(),
            members: snapshot.references.members().clone(),
        }
    }

    /// The membership's digest alone.
    pub fn digest(&self) -> String {
        self.snapshot().digest.to_string()
    }

    /// The examples of these keys that it holds (`POST /skills/fetch`), at
    /// most [`MAX_FETCH`] keys at a time.
    pub fn examples_for(&self, keys: &[String]) -> Result<BTreeMap<String, Example>, ApiError> {
        if keys.len() > MAX_FETCH {
            return Err(ApiError::bad_request(format!(
                "{} keys in one fetch; ask for at most {MAX_FETCH} at a time",
                keys.len()
            )));
        }
        let snapshot = self.snapshot();
        Ok(keys
            .iter()
            .filter_map(|k| {
                snapshot
                    .references
                    .examples()
                    .get(k)
                    .map(|e| (k.clone(), (**e).clone()))
            })
            .collect())
    }

    /// The keys of a peer's membership whose examples it lacks and would keep.
    pub fn missing_from(&self, members: &Orswot<String, String>) -> Vec<String> {
        self.snapshot().references.missing_from(members)
    }

    /// Merges a peer's membership with the examples it lacked: checked first
    /// (each example, and no member left without content: 400 naming it).
    pub fn merge_members(
        &self,
        members: Orswot<String, String>,
        examples: BTreeMap<String, Example>,
    ) -> Result<ChangeReport, ApiError> {
        let dim = self.config.panel.dim;
        self.change(|refs| {
            refs.check_covers(&members, &examples, dim)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            Ok(refs.merge_members(members, examples))
        })
    }

    /// The reference state, for a peer.
    pub fn state(&self) -> ReferenceState {
        self.snapshot().references.state()
    }

    /// Skills and their example counts, in label order.
    pub fn skills(&self) -> Vec<(String, usize)> {
        let snapshot = self.snapshot();
        snapshot
            .references
            .counts()
            .into_iter()
            .map(|(l, n)| (l.to_string(), n))
            .collect()
    }

    /// The examples of one skill: key and provenance, in key order.
    pub fn skill(&self, label: &str) -> Vec<(String, Vec<Provenance>)> {
        let snapshot = self.snapshot();
        snapshot
            .references
            .examples()
            .iter()
            .filter(|(_, e)| e.label == label)
            .map(|(k, e)| (k.clone(), e.provenance.iter().cloned().collect()))
            .collect()
    }

    /// Examples held.
    pub fn len(&self) -> usize {
        self.snapshot().references.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Has every verifier judge the request's embedding, each as its own job,
    /// and decides. Returns the analysis and the time it took.
    pub async fn analyze(&self, request: AnalyzeRequest) -> Result<(Analysis, Duration), ApiError> {
        let started = Instant::now();
        if request.image_id.is_empty() || request.image_id.len() > 256 {
            return Err(ApiError::bad_request("`image_id` must be 1 to 256 bytes"));
        }
        let values = self
            .embedding_or_image("image", request.embedding, request.image)
            .await?;
        let query = Embedding::new(values, self.config.panel.dim)
            .map_err(|e: EmbeddingError| ApiError::bad_request(e.to_string()))?;
        let k = request.k.unwrap_or(self.config.default_k);
        if k == 0 || k > MAX_K {
            return Err(ApiError::bad_request(format!("`k` must be 1 to {MAX_K}, not {k}")));
        }
        let snapshot = self.snapshot();
        if snapshot.references.is_empty() {
            return Err(ApiError {
                status: http::StatusCode::CONFLICT,
                message: "no references yet: add labelled examples with POST /skills/examples first".into(),
            });
        }
        let labels = snapshot.labels.clone();
        if let Some(claimed) = &request.claimed_skill
            && !labels.contains(claimed)
        {
            return Err(ApiError::not_found(format!(
                "claimed skill {claimed:?} is not a known skill; known: {}",
                labels.join(", ")
            )));
        }
        let judgements = self.judge_all(&snapshot, Arc::new(query), k, labels).await?;
        let decision = decide(judgements);
        let verified = request
            .claimed_skill
            .as_ref()
            .map(|claimed| decision.label.as_ref() == Some(claimed));
        let elapsed = started.elapsed();
        self.count(&decision, verified);
        if let Some(events) = &self.events {
            events.emit(Event::from_component(
                "skill-verification",
                Kind::Consensus {
                    image_id: request.image_id.clone(),
                    label: decision.label.clone(),
                    verified,
                    agreement: decision.agreement,
                    score_variance: decision.score_variance,
                    duration_us: elapsed.as_micros() as u64,
                },
            ));
        }
        let analysis = Analysis {
            image_id: request.image_id,
            claimed_skill: request.claimed_skill,
            verified,
            decision,
            k,
            references: snapshot.references.len(),
        };
        Ok((analysis, elapsed))
    }

    /// Every verifier's judgement, in verifier order: each runs as its own job;
    /// one that panics is `crashed`, one not back by the deadline `timed_out`.
    async fn judge_all(
        &self,
        snapshot: &Arc<Snapshot>,
        query: Arc<Embedding>,
        k: usize,
        labels: Arc<Vec<String>>,
    ) -> Result<Vec<Judgement>, ApiError> {
        let n = snapshot.panel.verifiers().len();
        let (tx, mut rx) = futures_channel::mpsc::unbounded::<(usize, Judgement)>();
        for i in 0..n {
            let (snapshot, query, labels, tx) = (snapshot.clone(), query.clone(), labels.clone(), tx.clone());
            let fault = self.faults.get(&i).copied();
            let hang = self.config.deadline * 2;
            let job = move || {
                let judged = std::panic::catch_unwind(AssertUnwindSafe(|| match fault {
                    None => snapshot.panel.judge(i, query.values(), k),
                    Some(fault) => faulty(fault, i, &labels, hang),
                }));
                let judgement = match judged {
                    Ok(Some(vote)) => Judgement::Voted { vote },
                    Ok(None) => Judgement::Abstained,
                    Err(_) => Judgement::Crashed,
                };
                let _ = tx.unbounded_send((i, judgement));
            };
            self.offload
                .spawn(Box::new(job))
                .map_err(|e| ApiError::unavailable(format!("the verifiers cannot start: {e}")))?;
        }
        drop(tx);
        let mut judged: Vec<Option<Judgement>> = vec![None; n];
        let mut deadline_passed = false;
        {
            let collect = async {
                while let Some((i, j)) = rx.next().await {
                    judged[i] = Some(j);
                }
            };
            match &self.sleep {
                Some(sleep) => {
                    let timer = sleep(self.config.deadline);
                    futures_util::pin_mut!(collect);
                    if let futures_util::future::Either::Right(_) = futures_util::future::select(collect, timer).await {
                        deadline_passed = true;
                    }
                }
                None => collect.await,
            }
        }
        Ok(judged
            .into_iter()
            .map(|j| {
                j.unwrap_or(if deadline_passed {
                    Judgement::TimedOut
                } else {
                    // The job was dropped without running to its end.
                    Judgement::Crashed
                })
            })
            .collect())
    }

    fn count(&self, decision: &Decision, verified: Option<bool>) {
        let c = &self.counters;
        c.analyses.fetch_add(1, Ordering::Relaxed);
        match decision.outcome {
            Outcome::Consensus => c.consensus.fetch_add(1, Ordering::Relaxed),
            Outcome::NoQuorum => c.no_quorum.fetch_add(1, Ordering::Relaxed),
        };
        match verified {
            Some(true) => c.verified.fetch_add(1, Ordering::Relaxed),
            Some(false) => c.refuted.fetch_add(1, Ordering::Relaxed),
            None => 0,
        };
        for j in &decision.judgements {
            match j {
                Judgement::Crashed => c.crashed.fetch_add(1, Ordering::Relaxed),
                Judgement::TimedOut => c.timed_out.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
        c.variance_micros
            .fetch_add((decision.score_variance * 1e6).round() as u64, Ordering::Relaxed);
    }

    /// The counters.
    pub fn stats(&self) -> SkillStats {
        let c = &self.counters;
        let analyses = c.analyses.load(Ordering::Relaxed);
        let consensus = c.consensus.load(Ordering::Relaxed);
        let snapshot = self.snapshot();
        SkillStats {
            analyses,
            consensus,
            no_quorum: c.no_quorum.load(Ordering::Relaxed),
            agent_consensus_success_rate: if analyses == 0 {
                0.0
            } else {
                consensus as f64 / analyses as f64
            },
            verified: c.verified.load(Ordering::Relaxed),
            not_verified: c.refuted.load(Ordering::Relaxed),
            verifiers_crashed: c.crashed.load(Ordering::Relaxed),
            verifiers_timed_out: c.timed_out.load(Ordering::Relaxed),
            score_variance_mean: if analyses == 0 {
                0.0
            } else {
                c.variance_micros.load(Ordering::Relaxed) as f64 / 1e6 / analyses as f64
            },
            references: snapshot.references.len(),
            skills: snapshot.references.counts().len(),
            peer_pulls: c.pulls.load(Ordering::Relaxed),
            peer_pull_failures: c.pull_failures.load(Ordering::Relaxed),
        }
    }
}

/// The skills `references` holds, in label order (a snapshot's `labels`).
fn labels_of(references: &ReferenceSet) -> Arc<Vec<String>> {
    Arc::new(references.counts().keys().map(|l| l.to_string()).collect())
}

/// The HTTP error for an image that could not be embedded.
fn image_error(what: &str, e: ImageError) -> ApiError {
    let status = match e {
        ImageError::Format(_) => http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ImageError::TooLarge(_) => http::StatusCode::PAYLOAD_TOO_LARGE,
        ImageError::Decode(_) => http::StatusCode::BAD_REQUEST,
        ImageError::Model(_) => http::StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError {
        status,
        message: format!("{what}: {e}"),
    }
}

/// What a faulty verifier does.
fn faulty(fault: Fault, i: usize, labels: &[String], hang: Duration) -> Option<Vote> {
    match fault {
        Fault::RandomVote => {
            use rand::{Rng, SeedableRng};
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(nanos ^ i as u64);
            Some(Vote {
                label: labels[rng.random_range(0..labels.len())].clone(),
                score: rng.random(),
            })
        }
        Fault::Lie => Some(Vote {
            label: labels[i % labels.len()].clone(),
            score: 1.0,
        }),
        // Unwinds as a panic does, without the panic hook: printing a
        // backtrace (RUST_BACKTRACE=1) of a debug build can take longer than
        // the panel's deadline, and the crash would be judged a timeout.
        Fault::Crash => std::panic::resume_unwind(Box::new(format!("verifier {i}: injected crash"))),
        Fault::Hang => {
            std::thread::sleep(hang);
            None
        }
    }
}
