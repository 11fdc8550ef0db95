//! The `/agents` routes over agents kept in a key-value store ([`Hosted`], the
//! Spin driver), so that a Spin app serves the same surface as a native host.
//!
//! Reads load an agent's saved state and change nothing. What changes an agent
//! (a submission, a message, a sync) goes in through its inbox on the broker:
//! the bridge delivers one message at a time per agent, so no request writes
//! an agent's key beside a delivery (the store has no compare-and-swap), and a
//! submission is acknowledged once the broker has stored it durably. An
//! agent's lifecycle is read from when it was last saved: the bridge's ticks
//! save every agent each sync interval.

use crate::hosted::{Hosted, Loaded, now_ms};
use ramanujan_agent::agent::LogEntry;
use ramanujan_agent::network::{
    AgentState, AgentSummary, BoxFuture, HeldForm, Lifecycle, Network, NetworkError, NetworkStatus, Submission,
    SubmissionStatus,
};
use ramanujan_agent::protocol::Envelope;
use ramanujan_agent::topology::{Topology, agent_id};
use ramanujan_core::lang::Expr;
use ramanujan_core::materialize::expr_terms;
use ramanujan_core::replica::{Facts, ReplicaState};
use ramanujan_core::term::TermKey;
use ramanujan_wire::wire::{self, Inbound, SubmitAck};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;

/// Where the app keeps a submission it took: beside the agents' keys (`agent-{i}`).
fn submission_key(root: TermKey) -> String {
    format!("submission-{root}")
}

/// A submission the app took, and whether its entry agent refused it then.
#[derive(Serialize, Deserialize)]
struct Record {
    #[serde(flatten)]
    submission: Submission,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
}

/// The request id of a submission entered here (see [`Network::submit`]).
fn submit_request(root: TermKey) -> String {
    format!("submit:{root}")
}

/// The root a [`submit_request`] id names; none for any other request id.
fn submitted_root(request: &str) -> Option<TermKey> {
    let root = request.strip_prefix("submit:")?.parse().ok()?;
    (submit_request(root) == request).then_some(root)
}

impl Hosted {
    fn topology(&self) -> Result<Topology, NetworkError> {
        let config = self.config();
        config.topology.build(config.seed).map_err(NetworkError::Unavailable)
    }

    /// The position of an agent id that is hosted here.
    fn hosted_index(&self, id: &str) -> Result<usize, NetworkError> {
        wire::index_of(id)
            .filter(|i| self.config().agents.contains(i))
            .ok_or_else(|| NetworkError::NotFound(format!("no agent `{id}` here")))
    }

    /// An agent as saved, for reading.
    async fn read(&self, index: usize) -> Result<Loaded, NetworkError> {
        self.load(index).await
    }

    fn lifecycle(&self, loaded: &Loaded) -> Lifecycle {
        let age = loaded
            .saved_ms
            .map(|saved| Duration::from_millis(now_ms().saturating_sub(saved)));
        Lifecycle::from_heartbeat_age(age, self.config().health_timeout)
    }

    /// Agents of the topology that are not hosted here: what this app cannot see.
    fn elsewhere(&self, size: usize) -> Vec<usize> {
        (0..size).filter(|i| !self.config().agents.contains(i)).collect()
    }

    /// Puts `inbound` in agent `index`'s inbox; done once the broker stored it.
    async fn enqueue(&self, index: usize, msg_id: Option<&str>, inbound: &Inbound) -> Result<(), NetworkError> {
        let payload = wire::encode_inbound(inbound).map_err(NetworkError::Invalid)?;
        self.publisher
            .publish(&wire::sync_subject(index), msg_id, payload)
            .await
            .map_err(|e| NetworkError::Unavailable(format!("the broker did not take it: {e}")))
    }

    /// Marks the records of submissions entered here that their entry agent
    /// refused (a full replica), so that following one says so instead of
    /// waiting for ever.
    pub(crate) async fn note_refusals(&self, acks: &[SubmitAck]) {
        for ack in acks {
            let (Some(why), None) = (&ack.error, &ack.root) else {
                continue;
            };
            let Some(root) = submitted_root(&ack.request) else {
                continue;
            };
            let key = submission_key(root);
            let Ok(Some(bytes)) = self.store.get(&key).await else {
                continue;
            };
            let Ok(mut record) = serde_json::from_slice::<Record>(&bytes) else {
                continue;
            };
            record.refused = Some(why.clone());
            if let Ok(bytes) = serde_json::to_vec(&record) {
                let _ = self.store.set(&key, bytes).await;
            }
        }
    }
}

impl Network for Hosted {
    fn status(&self) -> BoxFuture<'_, NetworkStatus> {
        Box::pin(async move {
            let (kind, edges, spectrum, size) = match self.topology() {
                Ok(t) => (t.kind.clone(), t.edge_ids(), t.spectrum, t.len()),
                Err(_) => (String::new(), Vec::new(), None, 0),
            };
            let mut agents = Vec::new();
            let mut problems = Vec::new();
            let mut everyone_well = true;
            let mut roots = BTreeSet::new();
            for &index in &self.config().agents {
                match self.read(index).await {
                    Ok(loaded) => {
                        let status = self.lifecycle(&loaded);
                        let replica = loaded.agent.replica();
                        everyone_well &= status == Lifecycle::Alive && !loaded.agent.is_dirty();
                        roots.extend(replica.roots());
                        agents.push(AgentSummary {
                            agent_id: agent_id(index),
                            color: loaded.agent.color(),
                            status,
                            facts: replica.term_count() + replica.equality_count(),
                            digest: replica.digest(),
                            neighbors: loaded.agent.neighbors().to_vec(),
                        });
                    }
                    Err(e) => problems.push(format!("{}: {e}", agent_id(index))),
                }
            }
            let not_alive: Vec<&str> = agents
                .iter()
                .filter(|a| matches!(a.status, Lifecycle::Suspect | Lifecycle::Dead))
                .map(|a| a.agent_id.as_str())
                .collect();
            if !not_alive.is_empty() {
                problems.push(format!(
                    "agents not saved lately (no ticks from the bridge?): {}",
                    not_alive.join(", ")
                ));
            }
            let elsewhere = self.elsewhere(size);
            if !elsewhere.is_empty() {
                let ids: Vec<String> = elsewhere.iter().map(|&i| agent_id(i)).collect();
                problems.push(format!("agents hosted elsewhere, unknown here: {}", ids.join(", ")));
            }
            let distinct: BTreeSet<&str> = agents.iter().map(|a| a.digest.as_str()).collect();
            let degraded = (!problems.is_empty()).then(|| problems.join("; "));
            NetworkStatus {
                transport: "spin".into(),
                topology: kind,
                edges,
                spectrum,
                sync_interval_ms: self.config().sync_interval.as_millis() as u64,
                distinct_digests: distinct.len(),
                converged: distinct.len() == 1 && everyone_well && degraded.is_none(),
                submissions: roots.len(),
                agents,
                degraded,
            }
        })
    }

    fn agent_state(&self, id: String) -> BoxFuture<'_, Result<AgentState, NetworkError>> {
        Box::pin(async move {
            let loaded = self.read(self.hosted_index(&id)?).await?;
            let uptime = now_ms().saturating_sub(loaded.created_ms) as f64 / 1000.0;
            Ok(AgentState::of(
                &loaded.agent,
                &self.config().node_id,
                self.lifecycle(&loaded),
                uptime,
                0,
            ))
        })
    }

    fn agent_replica(&self, id: String) -> BoxFuture<'_, Result<ReplicaState, NetworkError>> {
        Box::pin(async move {
            let loaded = self.read(self.hosted_index(&id)?).await?;
            Ok(loaded.agent.replica().clone())
        })
    }

    fn agent_messages(&self, id: String) -> BoxFuture<'_, Result<Vec<LogEntry>, NetworkError>> {
        Box::pin(async move {
            let loaded = self.read(self.hosted_index(&id)?).await?;
            Ok(loaded.agent.log().cloned().collect())
        })
    }

    /// Queued in the agent's inbox: it sends one sync request per neighbour
    /// when the bridge delivers it, and this answers how many that is.
    fn sync(&self, id: String) -> BoxFuture<'_, Result<usize, NetworkError>> {
        Box::pin(async move {
            let index = self.hosted_index(&id)?;
            let neighbors = self.topology()?.neighbors[index].len();
            self.enqueue(index, None, &Inbound::Sync).await?;
            Ok(neighbors)
        })
    }

    fn deliver(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), NetworkError>> {
        Box::pin(async move {
            let size = self.topology()?.len();
            if wire::index_of(&envelope.from).is_none_or(|i| i >= size) {
                return Err(NetworkError::Invalid(format!("unknown sender `{}`", envelope.from)));
            }
            let index = self.hosted_index(&envelope.to)?;
            let msg_id = format!("{}:{}-{}", envelope.from, envelope.seq, envelope.seq);
            self.enqueue(index, Some(&msg_id), &Inbound::Envelope(envelope)).await
        })
    }

    /// Enters through the hosted agent its root names (so a resubmission goes
    /// to the same agent, and the broker drops a copy within its duplicate
    /// window); acknowledged once the broker stored it in that agent's inbox.
    fn submit(&self, expr: Expr) -> BoxFuture<'_, Result<Submission, NetworkError>> {
        Box::pin(async move {
            let root = expr_terms(&expr, &mut Facts::default());
            let hosted: Vec<usize> = self.config().agents.iter().copied().collect();
            if hosted.is_empty() {
                return Err(NetworkError::Unavailable("no agent is hosted here".into()));
            }
            let index = hosted[(root.0 % hosted.len() as u128) as usize];
            let expression = expr.to_string();
            let request = submit_request(root);
            let inbound = Inbound::Submit {
                request: request.clone(),
                expression: expression.clone(),
            };
            self.enqueue(index, Some(&request), &inbound).await?;
            let submission = Submission {
                id: root.to_string(),
                expression,
                entry_agent: Some(agent_id(index)),
            };
            // Followed from here before the agent has taken it. Only this path
            // writes the record; if the write fails, the agents' answers find
            // the submission once its entry agent has taken it.
            let record = Record {
                submission: submission.clone(),
                refused: None,
            };
            if let Ok(record) = serde_json::to_vec(&record) {
                let _ = self.store.set(&submission_key(root), record).await;
            }
            Ok(submission)
        })
    }

    fn submission(&self, id: String) -> BoxFuture<'_, Result<SubmissionStatus, NetworkError>> {
        Box::pin(async move {
            let root = Submission::root_of(&id)?;
            let size = self.topology()?.len();
            let mut answers: Vec<(String, Result<HeldForm, NetworkError>)> = Vec::with_capacity(size);
            for index in 0..size {
                let answer = if self.config().agents.contains(&index) {
                    self.read(index).await.map(|mut loaded| loaded.agent.held_form(root))
                } else {
                    Err(NetworkError::Unavailable("hosted elsewhere".into()))
                };
                answers.push((agent_id(index), answer));
            }
            let recorded: Option<Record> = match self.store.get(&submission_key(root)).await {
                Ok(Some(bytes)) => serde_json::from_slice(&bytes).ok(),
                _ => None,
            };
            if let Some(Record {
                submission,
                refused: Some(why),
            }) = &recorded
            {
                return Err(NetworkError::Unavailable(format!(
                    "{} refused the submission after it was accepted: {why}; submit it again later",
                    submission.entry_agent.as_deref().unwrap_or("its entry agent")
                )));
            }
            let recorded = recorded.map(|r| r.submission);
            let submission = Submission::found(root, recorded, &answers)?;
            Ok(SubmissionStatus::from_answers(submission, answers))
        })
    }
}
