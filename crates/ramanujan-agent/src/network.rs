//! What the `/agents` routes need from a running network, whatever carries its
//! messages. Implemented by the host's in-process runtime and its NATS runtime.

use crate::agent::{Agent, Counters, LogEntry, Rewriting};
use crate::protocol::Envelope;
use crate::topology::Spectrum;
use ramanujan_core::clock::CausalContext;
use ramanujan_core::lang::Expr;
use ramanujan_core::replica::ReplicaState;
use ramanujan_core::stop::Stop;
use ramanujan_core::term::TermKey;
use ramanujan_core::{Color, Polarity};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A boxed future, so the trait can be used as `dyn Network`.
pub use futures_core::future::BoxFuture;

/// Where an agent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Started, no heartbeat yet.
    Starting,
    /// Heartbeats arrive.
    Alive,
    /// No heartbeat for one health timeout.
    Suspect,
    /// No heartbeat for two health timeouts: to be restarted.
    Dead,
}

impl Lifecycle {
    /// The lifecycle of an agent whose last heartbeat is `age` old (`None`: no
    /// heartbeat yet): alive within one health timeout, suspect within two, dead after.
    pub fn from_heartbeat_age(age: Option<Duration>, health_timeout: Duration) -> Lifecycle {
        match age {
            None => Lifecycle::Starting,
            Some(age) if age <= health_timeout => Lifecycle::Alive,
            Some(age) if age <= 2 * health_timeout => Lifecycle::Suspect,
            Some(_) => Lifecycle::Dead,
        }
    }
}

/// How often an agent beats (and a host pings) for a given health timeout:
/// three beats per timeout, between 50 ms and 1 s.
pub fn heartbeat_interval(health_timeout: Duration) -> Duration {
    (health_timeout / 3).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// `GET /agent/{id}/state`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentState {
    /// The agent's id.
    pub agent_id: String,
    /// The process (host) it runs in.
    pub node_id: String,
    /// Its colour and polarity.
    pub color: Color,
    /// RED positive, BLUE negative, GREEN neutral.
    pub polarity: Polarity,
    /// Lifecycle.
    pub status: Lifecycle,
    /// Terms in its replica.
    pub egraph_nodes: usize,
    /// Asserted equalities in its replica (refuted ones included).
    pub equalities: usize,
    /// Equalities its replica holds as refuted: left out of its e-graph and
    /// canonical forms.
    pub refuted_equalities: usize,
    /// GREEN: equalities held and not checked yet (0 for other colours).
    pub verify_backlog: usize,
    /// About how many bytes of heap the agent holds (its replica, its
    /// e-graphs): an estimate from counts, see [`Agent::approx_heap_bytes`].
    #[serde(default)]
    pub memory_bytes_estimate: u64,
    /// Neighbour ids.
    pub neighbors: Vec<String>,
    /// Messages accepted.
    pub messages_received: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Anti-entropy rounds completed.
    pub syncs_completed: u64,
    /// Seconds since the agent (last) started.
    pub uptime_seconds: f64,
    /// Times it was restarted.
    pub restarts: u64,
    /// Its causal context.
    pub vector_clock: CausalContext,
    /// Digest of its facts.
    pub digest: String,
    /// How many rules of its colour it runs (built-in and the rule book's).
    #[serde(default)]
    pub rules: usize,
    /// Every counter.
    pub counters: Counters,
}

impl AgentState {
    /// The state of `agent` as a host sees it.
    pub fn of(agent: &Agent, node_id: &str, status: Lifecycle, uptime_seconds: f64, restarts: u64) -> AgentState {
        let replica = agent.replica();
        let counters = agent.counters().clone();
        AgentState {
            agent_id: agent.id().to_string(),
            node_id: node_id.to_string(),
            color: agent.color(),
            polarity: agent.color().polarity(),
            status,
            egraph_nodes: replica.term_count(),
            equalities: replica.equality_count(),
            refuted_equalities: replica.refutation_count(),
            verify_backlog: agent.verify_backlog(),
            memory_bytes_estimate: agent.approx_heap_bytes() as u64,
            neighbors: agent.neighbors().to_vec(),
            messages_received: counters.messages_received,
            messages_sent: counters.messages_sent,
            syncs_completed: counters.syncs_completed,
            uptime_seconds,
            restarts,
            vector_clock: replica.clock().clone(),
            digest: replica.digest(),
            rules: agent.rule_count(),
            counters,
        }
    }
}

/// One agent in `GET /agents/status`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgentSummary {
    /// Id.
    pub agent_id: String,
    /// Colour.
    pub color: Color,
    /// Lifecycle.
    pub status: Lifecycle,
    /// Facts held (terms + equalities).
    pub facts: usize,
    /// Digest of its facts.
    pub digest: String,
    /// Neighbour ids.
    pub neighbors: Vec<String>,
}

/// `GET /agents/status`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NetworkStatus {
    /// `in-process` or `nats`.
    pub transport: String,
    /// `sierpinski` or `ramanujan`.
    pub topology: String,
    /// Edges.
    pub edges: Vec<(String, String)>,
    /// Expander quality, for regular topologies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spectrum: Option<Spectrum>,
    /// Anti-entropy period.
    pub sync_interval_ms: u64,
    /// Every agent.
    pub agents: Vec<AgentSummary>,
    /// How many different digests the agents hold (1 when converged).
    pub distinct_digests: usize,
    /// All agents hold the same facts and none has rewriting left to do.
    pub converged: bool,
    /// Submissions accepted.
    pub submissions: usize,
    /// Why the network cannot work normally now (e.g. the broker is unreachable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
}

/// An accepted submission.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Submission {
    /// Id to follow: the expression's term key.
    pub id: String,
    /// The expression.
    pub expression: String,
    /// The agent it entered through; `null` where this host did not take it
    /// (it came through another host, or before this host restarted: the
    /// agents' replicas hold it, not the host).
    pub entry_agent: Option<String>,
}

impl Submission {
    /// The root a submission id names: every id is its root's term key (in
    /// upper-case hex too); anything else names no submission.
    pub fn root_of(id: &str) -> Result<TermKey, NetworkError> {
        id.parse()
            .map_err(|_| NetworkError::NotFound(format!("no submission `{id}`")))
    }

    /// The submission `root` names: the host's own record of it, or, for one
    /// this host did not take (another host's, or before a restart), what the
    /// agents' answers say: some agent holds it as a submitted root, or 404
    /// when every agent answered and none does; while some agent did not
    /// answer (it may be the one holding it), 503: whether it exists is unknown.
    pub fn found<E>(
        root: TermKey,
        recorded: Option<Submission>,
        answers: &[(String, Result<HeldForm, E>)],
    ) -> Result<Submission, NetworkError> {
        if let Some(submission) = recorded {
            return Ok(submission);
        }
        if answers.iter().all(|(_, answer)| answer.is_err()) {
            return Err(NetworkError::Unavailable(format!(
                "no agent answered about `{root}`; try again"
            )));
        }
        let silent = answers.iter().filter(|(_, answer)| answer.is_err()).count();
        let expression = answers
            .iter()
            .find_map(|(_, answer)| answer.as_ref().ok().and_then(|form| form.submitted.clone()))
            .ok_or_else(|| match silent {
                0 => NetworkError::NotFound(format!("no submission `{root}`")),
                _ => NetworkError::Unavailable(format!(
                    "no agent that answered holds `{root}` as a submission, and {silent} did not answer; try again"
                )),
            })?;
        Ok(Submission {
            id: root.to_string(),
            expression,
            entry_agent: None,
        })
    }
}

/// What one agent knows of a submission (its answer to a canonical-form query).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldForm {
    /// Its canonical form of the expression; none where it does not hold it yet.
    pub canonical: Option<String>,
    /// The agent's colour.
    pub color: Color,
    /// Whether its rewriting is finished.
    pub rewriting: Rewriting,
    /// Digest of its facts.
    pub digest: String,
    /// Fingerprint of the e-graph where the expression's smallest forms run
    /// (see `ReplicaGraph::form_view`); none where it does not hold it yet.
    #[serde(default)]
    pub region: Option<String>,
    /// The expression, where the agent holds the term as a submitted root
    /// (what lets a host that did not take a submission still follow it).
    #[serde(default)]
    pub submitted: Option<String>,
}

/// Where the agents of one colour are with their rewriting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ColorProgress {
    /// The colour.
    pub color: Color,
    /// `pending` while its rewriting agent has work to do (or some agent did
    /// not answer); `saturated` when it is saturated; else `stopped`.
    pub state: &'static str,
    /// The limits its agents stopped at, when `stopped`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_reasons: Vec<Stop>,
}

/// Where a submission has got to: `GET /agents/submissions/{id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubmissionStatus {
    /// The submission.
    #[serde(flatten)]
    pub submission: Submission,
    /// Agents whose replica holds the expression.
    pub present_in: usize,
    /// Agents in the network.
    pub agents: usize,
    /// Each agent's canonical form of the expression (absent where not yet
    /// held, or where the agent did not answer).
    pub canonical: Vec<(String, Option<String>)>,
    /// Agents that did not answer in time: whether they hold it is unknown
    /// (distributed networks only; in process every agent answers).
    pub unanswered: Vec<String>,
    /// Replicated: every agent holds it with the same canonical form. Rewriting
    /// may still change that form; wait for `settled`.
    pub converged: bool,
    /// Per colour: whether its agents' rewriting is finished (saturated, or
    /// stopped at a named limit).
    pub rewriting: Vec<ColorProgress>,
    /// Final: every agent answered, holds the same e-graph where the
    /// submission's smallest forms run (equal fingerprints: the classes they
    /// go through, with their e-nodes and sizes) and the same canonical form, and no colour
    /// has rewriting of it pending: each colour's rewriter last stepped on
    /// the submission's own e-graph, with everything the colours derived from
    /// it, and derived nothing, or its budget is spent. It is about this
    /// submission only, so it holds while other submissions are rewritten.
    /// Not yet final in one case: a fact another agent derived reached a
    /// rewriter by anti-entropy before the event naming the submission did;
    /// when the event comes, that rewriter steps once more (its own e-graph
    /// takes facts from events only), so `settled` reads false for that step
    /// and true again after it, usually with the same form.
    pub settled: bool,
}

impl SubmissionStatus {
    /// The status from each agent's answer: its canonical form, none where it
    /// does not hold the expression, or an error where it did not answer.
    pub fn from_answers<E>(submission: Submission, answers: Vec<(String, Result<HeldForm, E>)>) -> Self {
        let agents = answers.len();
        let mut canonical = Vec::with_capacity(agents);
        let mut unanswered = Vec::new();
        let mut held = Vec::with_capacity(agents);
        for (agent, answer) in answers {
            match answer {
                Ok(form) => {
                    canonical.push((agent, form.canonical.clone()));
                    held.push(form);
                }
                Err(_) => {
                    canonical.push((agent.clone(), None));
                    unanswered.push(agent);
                }
            }
        }
        let present_in = canonical.iter().filter(|(_, f)| f.is_some()).count();
        let first = canonical.first().and_then(|(_, f)| f.as_ref());
        let converged = present_in == agents && canonical.iter().all(|(_, f)| f.as_ref() == first);
        let rewriting: Vec<ColorProgress> = Color::ALL
            .into_iter()
            .filter(|c| held.iter().any(|h| h.color == *c))
            .map(|color| {
                let of_color = || held.iter().filter(move |h| h.color == color);
                let mut stop_reasons: Vec<Stop> = of_color()
                    .filter_map(|h| match &h.rewriting {
                        Rewriting::Stopped { reason } => Some(*reason),
                        _ => None,
                    })
                    .collect();
                stop_reasons.sort();
                stop_reasons.dedup();
                let rewriters = of_color().filter(|h| h.rewriting != Rewriting::Replicating).count();
                let pending = of_color().any(|h| h.rewriting == Rewriting::Pending);
                let state = if !unanswered.is_empty() || pending || rewriters == 0 {
                    "pending"
                } else if stop_reasons.is_empty() {
                    "saturated"
                } else {
                    "stopped"
                };
                ColorProgress {
                    color,
                    state,
                    stop_reasons,
                }
            })
            .collect();
        // Settled is about this submission: every agent holds the same e-graph
        // under it (not just the same answer), and no colour will rewrite it further.
        let same_region =
            held.iter().all(|h| h.region.is_some()) && held.windows(2).all(|w| w[0].region == w[1].region);
        let settled = converged && same_region && rewriting.iter().all(|c| c.state != "pending");
        SubmissionStatus {
            submission,
            present_in,
            agents,
            canonical,
            unanswered,
            converged,
            rewriting,
            settled,
        }
    }
}

/// Why a network request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// No such agent or submission.
    #[error("{0}")]
    NotFound(String),
    /// The request is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The network cannot take it now (queue full, broker down).
    #[error("{0}")]
    Unavailable(String),
}

/// A running network, as the routes see it.
pub trait Network: Send + Sync + 'static {
    /// Every agent and whether they agree.
    fn status(&self) -> BoxFuture<'_, NetworkStatus>;
    /// One agent's state.
    fn agent_state(&self, id: String) -> BoxFuture<'_, Result<AgentState, NetworkError>>;
    /// One agent's replica.
    fn agent_replica(&self, id: String) -> BoxFuture<'_, Result<ReplicaState, NetworkError>>;
    /// One agent's latest messages.
    fn agent_messages(&self, id: String) -> BoxFuture<'_, Result<Vec<LogEntry>, NetworkError>>;
    /// Starts anti-entropy between an agent and each of its neighbours now.
    fn sync(&self, id: String) -> BoxFuture<'_, Result<usize, NetworkError>>;
    /// Delivers a message to the agent it is addressed to.
    fn deliver(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), NetworkError>>;
    /// An expression enters the network.
    fn submit(&self, expr: Expr) -> BoxFuture<'_, Result<Submission, NetworkError>>;
    /// Where a submission has got to.
    fn submission(&self, id: String) -> BoxFuture<'_, Result<SubmissionStatus, NetworkError>>;
    /// Why the network cannot work normally now, if it cannot (answers at once).
    fn degraded(&self) -> Option<String> {
        None
    }
    /// Each agent's id and lifecycle, in the order of [`Network::status`]'s
    /// agents; drivers that can answer without reading the agents do.
    fn lifecycles(&self) -> BoxFuture<'_, Vec<(String, Lifecycle)>> {
        Box::pin(async move {
            let status = self.status().await;
            status.agents.into_iter().map(|a| (a.agent_id, a.status)).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submission() -> Submission {
        Submission {
            id: "k".into(),
            expression: "(+ a b)".into(),
            entry_agent: Some("agent-0".into()),
        }
    }

    #[test]
    fn a_submission_no_answering_agent_holds_is_unknown_while_some_agent_is_silent() {
        let root = TermKey(7);
        let none = || held(None, Color::Red, Rewriting::Replicating, "r");
        let everyone: Vec<(String, Result<HeldForm, ()>)> =
            vec![("agent-0".into(), Ok(none())), ("agent-1".into(), Ok(none()))];
        assert!(matches!(
            Submission::found(root, None, &everyone),
            Err(NetworkError::NotFound(_))
        ));
        let one_silent: Vec<(String, Result<HeldForm, ()>)> =
            vec![("agent-0".into(), Ok(none())), ("agent-1".into(), Err(()))];
        assert!(matches!(
            Submission::found(root, None, &one_silent),
            Err(NetworkError::Unavailable(_))
        ));
        let mut holder = none();
        holder.submitted = Some("(+ a b)".into());
        let found: Vec<(String, Result<HeldForm, ()>)> =
            vec![("agent-0".into(), Ok(holder)), ("agent-1".into(), Err(()))];
        assert_eq!(Submission::found(root, None, &found).unwrap().expression, "(+ a b)");
    }

    fn held(form: Option<&str>, color: Color, rewriting: Rewriting, region: &str) -> HeldForm {
        HeldForm {
            canonical: form.map(str::to_string),
            color,
            rewriting,
            digest: "whole replica".into(),
            region: form.map(|_| region.into()),
            submitted: None,
        }
    }

    fn status(answers: &[(&str, Result<Option<&str>, ()>)]) -> SubmissionStatus {
        let answers = answers
            .iter()
            .map(|(agent, a)| {
                let form = a.map(|f| held(f, Color::Red, Rewriting::Saturated, "d"));
                (agent.to_string(), form)
            })
            .collect();
        SubmissionStatus::from_answers(submission(), answers)
    }

    #[test]
    fn settled_needs_the_same_region_and_no_pending_colour() {
        let answer = |form, color, rewriting, region| Ok::<_, ()>(held(Some(form), color, rewriting, region));
        let stopped = || Rewriting::Stopped {
            reason: Stop::NodeLimit,
        };
        let settled = SubmissionStatus::from_answers(
            submission(),
            vec![
                ("a".into(), answer("x", Color::Red, Rewriting::Saturated, "d")),
                ("b".into(), answer("x", Color::Blue, stopped(), "d")),
            ],
        );
        assert!(settled.converged && settled.settled);
        assert_eq!(settled.rewriting[1].state, "stopped");
        assert_eq!(settled.rewriting[1].stop_reasons, [Stop::NodeLimit]);
        // Same form, but one colour still rewriting: replicated, not settled.
        let pending = SubmissionStatus::from_answers(
            submission(),
            vec![
                ("a".into(), answer("x", Color::Red, Rewriting::Pending, "d")),
                ("b".into(), answer("x", Color::Blue, Rewriting::Saturated, "d")),
            ],
        );
        assert!(pending.converged && !pending.settled);
        assert_eq!(pending.rewriting[0].state, "pending");
        // Same form, all idle, different e-graphs under it: something is in flight.
        let in_flight = SubmissionStatus::from_answers(
            submission(),
            vec![
                ("a".into(), answer("x", Color::Red, Rewriting::Saturated, "d1")),
                ("b".into(), answer("x", Color::Blue, Rewriting::Saturated, "d2")),
            ],
        );
        assert!(in_flight.converged && !in_flight.settled);
    }

    #[test]
    fn converged_only_when_every_agent_answers_with_one_form() {
        let all = status(&[("a", Ok(Some("x"))), ("b", Ok(Some("x")))]);
        assert!(all.converged && all.present_in == 2 && all.unanswered.is_empty());
        assert!(!status(&[("a", Ok(Some("x"))), ("b", Ok(Some("y")))]).converged);
        let missing = status(&[("a", Ok(Some("x"))), ("b", Ok(None))]);
        assert!(!missing.converged && missing.present_in == 1 && missing.unanswered.is_empty());
    }

    #[test]
    fn an_agent_that_does_not_answer_is_unanswered_not_missing() {
        let silent = status(&[("a", Ok(Some("x"))), ("b", Err(()))]);
        assert_eq!(silent.unanswered, vec!["b".to_string()]);
        assert_eq!(silent.present_in, 1);
        assert!(!silent.converged && !silent.settled);
        assert_eq!(silent.canonical[1], ("b".to_string(), None));
    }
}
