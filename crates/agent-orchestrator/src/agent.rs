//! One agent as a state machine with no I/O: messages and ticks in, messages
//! out. The transports (in-process channels, NATS) and the clock live in the
//! host; the same agent runs on every one of them.

use crate::network::HeldForm;
use crate::protocol::{Body, Envelope};
use ramanujan_core::Color;
use ramanujan_core::clock::VectorClock;
use ramanujan_core::lang::Expr;
use ramanujan_core::materialize::{expr_terms, term_expr};
use ramanujan_core::replica::{Facts, ReplicaState};
use ramanujan_core::rules::RuleBook;
use ramanujan_core::saturate::{Limits, Scheduler};
use ramanujan_core::stream::{StreamInput, apply_stream};
use ramanujan_core::term::TermKey;
use ramanujan_core::verify::{Verdict, check_semantically};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

/// How much an agent may grow its replica by rewriting.
#[derive(Debug, Clone, Copy)]
pub struct WorkLimits {
    /// No rewriting once the replica holds this many terms (replication goes on).
    pub max_terms: usize,
    /// E-nodes one rewriting step may add to the replica's e-graph.
    pub step_nodes: usize,
    /// Iterations of one rewriting step.
    pub step_iterations: usize,
    /// Time of one rewriting step.
    pub step_time: Duration,
    /// Equalities GREEN checks per arriving message.
    pub verify_per_message: usize,
}

impl Default for WorkLimits {
    fn default() -> Self {
        WorkLimits {
            max_terms: 20_000,
            step_nodes: 2_000,
            step_iterations: 3,
            step_time: Duration::from_secs(2),
            verify_per_message: 64,
        }
    }
}

/// Counters anyone may read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Messages accepted.
    pub messages_received: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Anti-entropy rounds this agent started that completed.
    pub syncs_completed: u64,
    /// Messages from agents not in the network.
    pub rejected_unknown_sender: u64,
    /// Messages addressed to another agent.
    pub rejected_misaddressed: u64,
    /// Messages seen before (same sender and sequence number).
    pub duplicates: u64,
    /// Messages whose content was invalid (reported by the transport's decoder or here).
    pub rejected_malformed: u64,
    /// Rewriting steps run.
    pub rewrite_steps: u64,
    /// Equalities GREEN verified.
    pub verified: u64,
    /// Equalities GREEN refuted.
    pub refuted: u64,
    /// Rewriting steps not run because the replica holds `max_terms` terms
    /// (rewriting has stopped; replication goes on).
    #[serde(default)]
    pub rewrite_skipped_at_max_terms: u64,
}

/// Whether an agent's rewriting is finished, as a reader means it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Rewriting {
    /// Facts arrived (or a step is running) that its colour has not rewritten yet.
    Pending,
    /// Its colour's rules add nothing to what it holds.
    Saturated,
    /// Another agent of its colour does the rewriting; this one replicates.
    Replicating,
    /// Its last step stopped at a limit and derived nothing new: it will not
    /// rewrite again until new facts arrive (`node_limit`, `time_limit`,
    /// `iteration_limit`, or `max_terms` when the replica is full).
    Stopped {
        /// The limit.
        reason: String,
    },
}

/// One line of an agent's message log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogEntry {
    /// `in` or `out`.
    pub direction: String,
    /// The other agent.
    pub peer: String,
    /// Message kind.
    pub kind: String,
    /// Sequence number.
    pub seq: u64,
    /// Facts carried.
    pub facts: usize,
    /// Agent time, milliseconds since it started.
    pub at_ms: u64,
}

/// A refuted equality, kept for the record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refutation {
    /// The equality, as text.
    pub equality: String,
    /// Who asserted it, with which rule.
    pub asserted_by: String,
    /// The counterexample.
    pub verdict: Verdict,
}

const LOG_CAPACITY: usize = 128;
const REPLAY_WINDOW: u64 = 4096;

/// An agent's whole state, see [`Agent::into_snapshot`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSnapshot {
    id: String,
    actor: String,
    color: Color,
    neighbors: Vec<String>,
    known: HashSet<String>,
    replica: ReplicaState,
    counters: Counters,
    seq: u64,
    seen: HashMap<String, (u64, BTreeSet<u64>)>,
    dirty: bool,
    next_sync: usize,
    log: VecDeque<LogEntry>,
    refutations: VecDeque<Refutation>,
    now_ms: u64,
    #[serde(default)]
    last_stop: Option<String>,
    #[serde(default = "yes")]
    rewrites: bool,
}

fn yes() -> bool {
    true
}

impl AgentSnapshot {
    /// The agent's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// An agent.
pub struct Agent {
    id: String,
    /// Names the dots of this agent's events (its id unless told otherwise).
    actor: String,
    color: Color,
    neighbors: Vec<String>,
    known: HashSet<String>,
    replica: ReplicaState,
    /// Facts new since the last save (see [`Agent::unsaved`]); `None` for an
    /// agent that saves nothing.
    journal: Option<ReplicaState>,
    rules: RuleBook,
    limits: WorkLimits,
    counters: Counters,
    seq: u64,
    /// Per sender: the highest sequence number seen and which of the last ones.
    seen: HashMap<String, (u64, BTreeSet<u64>)>,
    dirty: bool,
    /// A rewriting step is out (between [`Agent::start_work`] and [`Agent::finish_work`]).
    working: bool,
    /// Why the last rewriting step stopped (`saturated` or a limit).
    last_stop: Option<String>,
    /// This agent rewrites with its colour's rules (one agent per colour does,
    /// see [`crate::topology::Topology::rewrites`]); the others only replicate.
    rewrites: bool,
    next_sync: usize,
    log: VecDeque<LogEntry>,
    refutations: VecDeque<Refutation>,
    now_ms: u64,
}

impl Agent {
    /// A new agent with an empty replica. `known` is every agent id in the network.
    pub fn new(id: String, color: Color, neighbors: Vec<String>, known: HashSet<String>, limits: WorkLimits) -> Self {
        Agent {
            actor: id.clone(),
            id,
            color,
            neighbors,
            known,
            replica: ReplicaState::new(),
            journal: Some(ReplicaState::new()),
            rules: RuleBook::new(true, &[]).expect("built-in rules compile"),
            limits,
            counters: Counters::default(),
            seq: 0,
            seen: HashMap::new(),
            dirty: false,
            working: false,
            last_stop: None,
            rewrites: true,
            next_sync: 0,
            log: VecDeque::new(),
            refutations: VecDeque::new(),
            now_ms: 0,
        }
    }

    /// Everything the agent is between two messages, for a host that keeps no
    /// process between them (a Spin component saves it in key-value after each
    /// request). The rules and limits are configuration, not state.
    pub fn into_snapshot(self) -> AgentSnapshot {
        AgentSnapshot {
            id: self.id,
            actor: self.actor,
            color: self.color,
            neighbors: self.neighbors,
            known: self.known,
            replica: self.replica,
            counters: self.counters,
            seq: self.seq,
            seen: self.seen,
            dirty: self.dirty,
            next_sync: self.next_sync,
            log: self.log,
            refutations: self.refutations,
            now_ms: self.now_ms,
            last_stop: self.last_stop,
            rewrites: self.rewrites,
        }
    }

    /// The agent a snapshot describes, with these limits. It keeps no journal:
    /// its host saves whole snapshots.
    pub fn from_snapshot(snapshot: AgentSnapshot, limits: WorkLimits) -> Agent {
        Agent {
            id: snapshot.id,
            actor: snapshot.actor,
            color: snapshot.color,
            neighbors: snapshot.neighbors,
            known: snapshot.known,
            replica: snapshot.replica,
            journal: None,
            rules: RuleBook::new(true, &[]).expect("built-in rules compile"),
            limits,
            counters: snapshot.counters,
            seq: snapshot.seq,
            seen: snapshot.seen,
            dirty: snapshot.dirty,
            working: false,
            last_stop: snapshot.last_stop,
            rewrites: snapshot.rewrites,
            next_sync: snapshot.next_sync,
            log: snapshot.log,
            refutations: snapshot.refutations,
            now_ms: snapshot.now_ms,
        }
    }

    /// Restores a replica (after a restart); the agent then rewrites it again if needed.
    pub fn restore(&mut self, replica: ReplicaState) {
        self.replica.merge(&replica);
        self.dirty = self.rewrites && !self.replica.is_empty();
    }

    /// Leaves rewriting to another agent of its colour: this one only
    /// replicates. Agents of one colour would otherwise all derive the same
    /// facts at once, each under its own names.
    pub fn delegate_rewriting(&mut self) {
        self.rewrites = false;
        self.dirty = false;
    }

    /// What a store lacks: every fact new since the last [`Agent::mark_saved`],
    /// with the replica's clock (the store then holds everything that clock
    /// covers). `None` when nothing is new. Costs the size of the news, not of
    /// the replica.
    pub fn unsaved(&self) -> Option<ReplicaState> {
        let journal = self.journal.as_ref().filter(|j| !j.is_empty())?;
        Some(journal.clone().with_clock(self.replica.clock().clone()))
    }

    /// The journal was saved durably: start a new one.
    pub fn mark_saved(&mut self) {
        if self.journal.is_some() {
            self.journal = Some(ReplicaState::new());
        }
    }

    /// Stops keeping a journal: for an agent with no store, which never saves.
    pub fn keep_no_journal(&mut self) {
        self.journal = None;
    }

    /// Numbers this agent's messages from `first` on. A restarted agent starts
    /// above anything its previous life sent (e.g. its start time in ms, shifted
    /// left 20 bits), or receivers would take its new messages for replays.
    pub fn number_messages_from(&mut self, first: u64) {
        self.seq = self.seq.max(first);
    }

    /// Names the dots of this agent's own events. An agent that restarts
    /// without its saved replica must take a new actor (e.g. `agent-3#<start>`):
    /// otherwise its new events would reuse dots that its earlier life gave to
    /// other facts, and peers that saw those would never ask for the new ones.
    pub fn set_actor(&mut self, actor: String) {
        self.actor = actor;
    }

    /// The agent's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The agent's colour.
    pub fn color(&self) -> Color {
        self.color
    }

    /// Neighbour ids.
    pub fn neighbors(&self) -> &[String] {
        &self.neighbors
    }

    /// The replica.
    pub fn replica(&self) -> &ReplicaState {
        &self.replica
    }

    /// Counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The latest messages, oldest first.
    pub fn log(&self) -> impl Iterator<Item = &LogEntry> {
        self.log.iter()
    }

    /// Equalities GREEN refuted (latest 32).
    pub fn refutations(&self) -> impl Iterator<Item = &Refutation> {
        self.refutations.iter()
    }

    /// Whether the agent has rewriting to do, or a step is running.
    pub fn is_dirty(&self) -> bool {
        self.dirty || self.working
    }

    /// Whether its rewriting is finished, and how.
    pub fn rewriting(&self) -> Rewriting {
        if !self.rewrites {
            return Rewriting::Replicating;
        }
        if self.is_dirty() {
            return Rewriting::Pending;
        }
        match self.last_stop.as_deref() {
            None | Some("saturated") => Rewriting::Saturated,
            Some(reason) => Rewriting::Stopped {
                reason: reason.to_string(),
            },
        }
    }

    /// What this agent knows of a submitted term: its canonical form (none if
    /// the term is not held), with the agent's colour, rewriting and digest.
    pub fn held_form(&self, root: TermKey) -> HeldForm {
        HeldForm {
            canonical: self
                .replica
                .term(root)
                .and_then(|_| crate::network::canonical_of(&self.replica, root)),
            color: self.color,
            rewriting: self.rewriting(),
            digest: self.replica.digest(),
        }
    }

    /// Sets the agent's clock (milliseconds since it started).
    pub fn set_time(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    fn note(&mut self, direction: &'static str, peer: &str, body: &Body, seq: u64) {
        if self.log.len() == LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(LogEntry {
            direction: direction.to_string(),
            peer: peer.to_string(),
            kind: body.kind().to_string(),
            seq,
            facts: body.facts(),
            at_ms: self.now_ms,
        });
    }

    fn send(&mut self, to: &str, body: Body) -> Envelope {
        self.seq += 1;
        self.counters.messages_sent += 1;
        self.note("out", to, &body, self.seq);
        Envelope {
            from: self.id.clone(),
            to: to.to_string(),
            seq: self.seq,
            body,
        }
    }

    fn flood(&mut self, delta: &ReplicaState, except: Option<&str>) -> Vec<Envelope> {
        let targets: Vec<String> = self
            .neighbors
            .iter()
            .filter(|n| Some(n.as_str()) != except)
            .cloned()
            .collect();
        targets
            .iter()
            .map(|to| self.send(to, Body::Event { delta: delta.clone() }))
            .collect()
    }

    /// Records a submitted expression and floods it. Answers its root term.
    pub fn submit(&mut self, expr: &Expr) -> (TermKey, Vec<Envelope>) {
        let mut facts = Facts::default();
        let root = expr_terms(expr, &mut facts);
        let delta = self
            .replica
            .record(&self.actor, facts)
            .expect("expression terms are never reflexive");
        if delta.is_empty() {
            return (root, Vec::new());
        }
        if let Some(journal) = self.journal.as_mut() {
            journal.merge(&delta);
        }
        self.dirty = self.rewrites;
        let out = self.flood(&delta, None);
        (root, out)
    }

    /// Counts a message the transport could not decode.
    pub fn reject_malformed(&mut self) {
        self.counters.rejected_malformed += 1;
    }

    /// Whether (from, seq) is new; remembers it.
    fn first_time(&mut self, from: &str, seq: u64) -> bool {
        let (high, recent) = self.seen.entry(from.to_string()).or_default();
        if seq + REPLAY_WINDOW <= *high || !recent.insert(seq) {
            return false;
        }
        *high = (*high).max(seq);
        let floor = high.saturating_sub(REPLAY_WINDOW);
        while recent.first().is_some_and(|&s| s < floor) {
            recent.pop_first();
        }
        true
    }

    /// Handles one message; answers the messages to send.
    pub fn handle(&mut self, env: Envelope) -> Vec<Envelope> {
        if !self.known.contains(&env.from) || env.from == self.id {
            self.counters.rejected_unknown_sender += 1;
            return Vec::new();
        }
        if env.to != self.id {
            self.counters.rejected_misaddressed += 1;
            return Vec::new();
        }
        if !self.first_time(&env.from, env.seq) {
            self.counters.duplicates += 1;
            return Vec::new();
        }
        self.counters.messages_received += 1;
        self.note("in", &env.from, &env.body, env.seq);
        match env.body {
            Body::Event { delta } => {
                if !event_is_single(&delta) {
                    self.counters.rejected_malformed += 1;
                    return Vec::new();
                }
                let news = !self.replica.clock().dominates(delta.clock());
                self.absorb(&delta);
                if news {
                    self.flood(&delta, Some(&env.from))
                } else {
                    Vec::new()
                }
            }
            Body::SyncRequest { clock, digest } => {
                let body = if digest == self.replica.digest() {
                    Body::SyncReply {
                        delta: ReplicaState::new(),
                        clock: VectorClock::default(),
                        in_sync: true,
                    }
                } else {
                    Body::SyncReply {
                        delta: self.replica.delta_since(&clock),
                        clock: self.replica.clock().clone(),
                        in_sync: false,
                    }
                };
                vec![self.send(&env.from, body)]
            }
            Body::SyncReply { delta, clock, in_sync } => {
                self.counters.syncs_completed += 1;
                if in_sync {
                    return Vec::new();
                }
                self.absorb(&delta);
                let back = self.replica.delta_since(&clock);
                if back.term_count() + back.equality_count() == 0 {
                    return Vec::new();
                }
                vec![self.send(&env.from, Body::SyncPush { delta: back })]
            }
            Body::SyncPush { delta } => {
                self.absorb(&delta);
                Vec::new()
            }
            Body::Heartbeat { .. } => Vec::new(),
        }
    }

    /// Merges facts; GREEN checks the new equalities.
    fn absorb(&mut self, delta: &ReplicaState) {
        let stats = self.replica.merge_noting(delta, self.journal.as_mut());
        if self.rewrites && stats.new_terms + stats.new_equalities > 0 {
            self.dirty = true;
        }
        if self.color == Color::Green && stats.new_equalities > 0 {
            self.verify(delta);
        }
    }

    fn verify(&mut self, delta: &ReplicaState) {
        for eq in delta.equalities().take(self.limits.verify_per_message) {
            let (Some(l), Some(r)) = (term_expr(&self.replica, eq.lhs), term_expr(&self.replica, eq.rhs)) else {
                continue;
            };
            match check_semantically(&l, &r) {
                verdict @ Verdict::Refuted { .. } => {
                    self.counters.refuted += 1;
                    if self.refutations.len() == 32 {
                        self.refutations.pop_front();
                    }
                    self.refutations.push_back(Refutation {
                        equality: format!("{l} = {r}"),
                        asserted_by: format!("{} ({})", eq.provenance.agent, eq.provenance.rule),
                        verdict,
                    });
                }
                Verdict::Verified { .. } => self.counters.verified += 1,
                Verdict::Inconclusive { .. } => {}
            }
        }
    }

    /// One rewriting step with the agent's colour, if there is work; floods the result.
    pub fn work(&mut self) -> Vec<Envelope> {
        match self.start_work() {
            Some(job) => {
                let done = job.run();
                self.finish_work(done)
            }
            None => Vec::new(),
        }
    }

    /// Takes out what one rewriting step needs, if there is work, so that the
    /// step can run without holding the agent (see [`WorkJob::run`]).
    pub fn start_work(&mut self) -> Option<WorkJob> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        let terms = self.replica.term_count();
        if terms >= self.limits.max_terms {
            self.last_stop = Some("max_terms".into());
            self.counters.rewrite_skipped_at_max_terms += 1;
            if self.counters.rewrite_skipped_at_max_terms == 1 {
                tracing::warn!(
                    agent = %self.id,
                    terms,
                    max_terms = self.limits.max_terms,
                    "rewriting stopped: the replica holds max_terms terms (replication goes on)"
                );
            }
            return None;
        }
        self.counters.rewrite_steps += 1;
        self.working = true;
        Some(WorkJob {
            color: self.color,
            actor: self.actor.clone(),
            replica: self.replica.clone(),
            rules: self.rules.clone(),
            limits: Limits {
                nodes: self.limits.step_nodes.min(self.limits.max_terms - terms),
                iterations: self.limits.step_iterations,
                time: self.limits.step_time,
            },
        })
    }

    /// Records what a rewriting step derived as one event of this agent (the
    /// replica may have moved on meanwhile; only facts still new are kept) and
    /// floods it.
    pub fn finish_work(&mut self, done: WorkDone) -> Vec<Envelope> {
        self.working = false;
        let saturated = done.stop_reason == "saturated";
        self.last_stop = Some(done.stop_reason);
        let Some(derived) = done.derived else {
            return Vec::new();
        };
        let facts = Facts {
            terms: derived.terms().map(|(_, t)| t.clone()).collect(),
            equalities: derived.equalities().cloned().collect(),
        };
        let Ok(delta) = self.replica.record(&self.actor, facts) else {
            return Vec::new();
        };
        if delta.is_empty() {
            // Nothing new: a step that stopped at a limit would stop there again.
            return Vec::new();
        }
        // More may follow from what was just derived, unless rewriting saturated.
        self.dirty = self.dirty || !saturated;
        if let Some(journal) = self.journal.as_mut() {
            journal.merge(&delta);
        }
        self.flood(&delta, None)
    }

    /// Starts anti-entropy with the next neighbour in turn.
    pub fn sync_tick(&mut self) -> Vec<Envelope> {
        if self.neighbors.is_empty() {
            return Vec::new();
        }
        let to = self.neighbors[self.next_sync % self.neighbors.len()].clone();
        self.next_sync += 1;
        self.sync_with(&to)
    }

    /// Starts anti-entropy with one neighbour.
    pub fn sync_with(&mut self, to: &str) -> Vec<Envelope> {
        let body = Body::SyncRequest {
            clock: self.replica.clock().clone(),
            digest: self.replica.digest(),
        };
        vec![self.send(to, body)]
    }
}

/// An event's clock names exactly one event (anything else would let a merge
/// claim events whose facts it does not carry).
fn event_is_single(delta: &ReplicaState) -> bool {
    let clock = delta.clock();
    clock.counters().values().sum::<u64>() + clock.cloud().len() as u64 <= 1
}

/// One rewriting step, taken out of its agent.
pub struct WorkJob {
    color: Color,
    actor: String,
    replica: ReplicaState,
    rules: RuleBook,
    limits: Limits,
}

/// What a rewriting step derived, and why it stopped.
pub struct WorkDone {
    derived: Option<ReplicaState>,
    stop_reason: String,
}

impl WorkJob {
    /// Rewrites a copy of the replica with the colour's rules, within the limits.
    pub fn run(self) -> WorkDone {
        let input = StreamInput::State(self.replica);
        match apply_stream(
            self.color,
            &self.actor,
            input,
            &self.rules,
            Scheduler::Backoff,
            self.limits,
        ) {
            Ok(outcome) => WorkDone {
                stop_reason: outcome.phase.stop_reason,
                derived: (!outcome.delta.is_empty()).then_some(outcome.delta),
            },
            Err(e) => WorkDone {
                derived: None,
                stop_reason: format!("refused: {e}"),
            },
        }
    }
}
