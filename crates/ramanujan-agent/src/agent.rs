//! One agent as a state machine with no I/O: messages and ticks in, messages
//! out. The transports (in-process channels, NATS) and the clock live in the
//! host; the same agent runs on every one of them.

use crate::events::{EventLog, dot_of, seen_of};
use crate::network::HeldForm;
use crate::protocol::{Body, Envelope};
use crate::store::{ReplicaStore, StoreError};
use foldhash::{HashMap as FastMap, HashMapExt, HashSet as FastSet, HashSetExt};
use ramanujan_core::ClassId;
use ramanujan_core::Color;
use ramanujan_core::clock::CausalContext;
use ramanujan_core::lang::Expr;
use ramanujan_core::materialize::{FormView, Materialized, ReplicaGraph, export, expr_terms, term_expr};
use ramanujan_core::replica::{Facts, Refutation, ReplicaState};
use ramanujan_core::rules::RuleBook;
use ramanujan_core::saturate::{Limits, run_step};
use ramanujan_core::stop::Stop;
use ramanujan_core::term::TermKey;
use ramanujan_core::verify::{Verdict, check_semantically};
use ramanujan_events::{Event, EventDot, Kind, event::Verdict as EventVerdict};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much an agent may grow its replica by rewriting.
#[derive(Debug, Clone, Copy)]
pub struct WorkLimits {
    /// No rewriting once the replica holds this many terms (replication goes on).
    pub max_terms: usize,
    /// E-nodes one rewriting step may add to the replica's e-graph.
    pub step_nodes: usize,
    /// Iterations of one rewriting step. One, as in one saturation's colour
    /// fixpoint: a colour's rules alone (say RED's associativity and
    /// distribution before BLUE and GREEN have simplified) can blow up where the
    /// colours in turn reach a small fixpoint, so each step hands the others
    /// its result before taking the next.
    pub step_iterations: usize,
    /// Time of one rewriting step.
    pub step_time: Duration,
    /// Equalities GREEN checks per arriving message, and per sync tick when it
    /// has no rewriting to do; the rest wait in its backlog.
    pub verify_per_message: usize,
    /// Iterations one submission may take in all, per colour (its budget).
    pub goal_iterations: usize,
    /// Terms one submission's rewriting may add in all, per colour.
    pub goal_nodes: usize,
}

impl Default for WorkLimits {
    fn default() -> Self {
        WorkLimits {
            max_terms: crate::defaults::MAX_TERMS,
            step_nodes: 2_000,
            step_iterations: 1,
            step_time: Duration::from_secs(2),
            verify_per_message: 64,
            goal_iterations: crate::defaults::GOAL_ITERATIONS,
            goal_nodes: crate::defaults::GOAL_NODES,
        }
    }
}

/// Counters anyone may read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Messages whose sequence number no peer can have reached yet (see
    /// [`MAX_PEER_CLOCK_AHEAD_MS`]): forged, or from a clock far ahead.
    #[serde(default)]
    pub rejected_implausible_seq: u64,
    /// Events whose facts the replica already held (its clock covered their
    /// dot): forwarded if they had not been, not merged again.
    #[serde(default)]
    pub events_already_held: u64,
    /// Messages whose content was invalid (reported by the transport's decoder or here).
    pub rejected_malformed: u64,
    /// Rewriting steps run.
    pub rewrite_steps: u64,
    /// Equalities GREEN verified.
    pub verified: u64,
    /// Equalities GREEN refuted.
    pub refuted: u64,
    /// Equalities GREEN could neither verify nor refute.
    #[serde(default)]
    pub inconclusive: u64,
    /// Rewriting steps not run because the replica holds `max_terms` terms
    /// (rewriting has stopped; replication goes on).
    #[serde(default)]
    pub rewrite_skipped_at_max_terms: u64,
    /// Messages sent, by kind.
    #[serde(default)]
    pub sent_by_kind: KindCounts,
    /// Messages accepted, by kind.
    #[serde(default)]
    pub received_by_kind: KindCounts,
}

/// Messages by kind ([`Body::kind`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KindCounts {
    /// Events: the facts of a submission or of a rewriting step.
    pub event: u64,
    /// Anti-entropy's first step.
    pub sync_request: u64,
    /// Anti-entropy's second step.
    pub sync_reply: u64,
    /// Anti-entropy's third step.
    pub sync_push: u64,
}

impl KindCounts {
    /// Counts one message of `body`'s kind.
    pub fn count(&mut self, body: &Body) {
        match body {
            Body::Event { .. } => self.event += 1,
            Body::SyncRequest { .. } => self.sync_request += 1,
            Body::SyncReply { .. } => self.sync_reply += 1,
            Body::SyncPush { .. } => self.sync_push += 1,
        }
    }

    /// Each kind's name ([`Body::kind`]) and count.
    pub fn by_name(&self) -> [(&'static str, u64); 4] {
        [
            ("event", self.event),
            ("sync_request", self.sync_request),
            ("sync_reply", self.sync_reply),
            ("sync_push", self.sync_push),
        ]
    }
}

/// Whether an agent's rewriting of a submission is finished, as a reader means it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Rewriting {
    /// Facts arrived (or a step is running) that its colour has not rewritten yet.
    Pending,
    /// Its colour's rules add nothing to the submission's own e-graph (what
    /// every colour derived from the submission; see `OwnGraphs`).
    Saturated,
    /// Another agent of its colour rewrites this submission; this one replicates.
    Replicating,
    /// Its last step stopped at its node limit and derived nothing new, or
    /// the submission's budget ran out: it will not rewrite it again until
    /// news about the submission arrives (never, for a spent budget). Reasons:
    /// `node_limit`, `iteration_budget`, `node_budget`, or `max_terms` when
    /// the replica is full. (A step that ran out of time is taken again, each
    /// such step counted as one iteration of the budget; one that ran its
    /// iterations and derived nothing new found the colour's fixpoint:
    /// saturated.)
    Stopped {
        /// The limit.
        reason: Stop,
    },
}

/// Which submissions an agent rewrites: those whose root hashes to its rank
/// among the `of` agents of its colour. Agents of one colour so share the work,
/// and no two derive the same facts at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// This agent's place among its colour's agents.
    pub rank: usize,
    /// How many agents its colour has.
    pub of: usize,
}

impl Default for Share {
    fn default() -> Self {
        Share { rank: 0, of: 1 }
    }
}

impl Share {
    /// Whether the agent with this share rewrites the submission at `root`.
    pub fn owns(&self, root: TermKey) -> bool {
        self.takes(root.0)
    }

    /// Whether a GREEN agent with this share checks the equality with this
    /// key: each equality is checked by one GREEN agent, not by all of them.
    pub fn checks(&self, equality: u128) -> bool {
        self.takes(equality)
    }

    fn takes(&self, key: u128) -> bool {
        self.of > 0 && (key % self.of as u128) as usize == self.rank
    }
}

/// What an agent has spent on one submission it rewrites, and how its last step ended.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Goal {
    iterations: usize,
    nodes: usize,
    stop: Option<Stop>,
    /// Its own e-graph, once lost, is rebuilt from its focus: events about it
    /// may have gone into an own e-graph that is gone (a restart, a snapshot,
    /// an event that came before its terms).
    #[serde(default)]
    from_focus: bool,
}

impl Goal {
    /// Whether its own e-graph starts from its terms alone: nothing about it
    /// can have been taken in and lost.
    fn fresh(&self) -> bool {
        self.iterations == 0 && !self.from_focus
    }

    /// A spent budget (or a full replica) ends rewriting for good.
    fn spent(&self) -> bool {
        self.stop.is_some_and(Stop::ends_for_good)
    }
}

/// One line of an agent's message log.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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

/// A refuted equality with its counterexample, kept for the record (the
/// replicated fact is a [`Refutation`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefutationNote {
    /// The equality, as text.
    pub equality: String,
    /// Who asserted it, with which rule.
    pub asserted_by: String,
    /// The counterexample.
    pub verdict: Verdict,
}

const LOG_CAPACITY: usize = 128;
/// Classes below a submission's own depth that its rewriting steps look at.
const FOCUS_DEPTH: usize = 1;

/// The depth of a held term (a leaf has depth 0; a term not all held, 0).
fn term_depth(replica: &ReplicaState, root: TermKey) -> usize {
    let mut depth: FastMap<TermKey, usize> = FastMap::new();
    let mut stack = vec![root];
    while let Some(&key) = stack.last() {
        let Some(term) = replica.term(key) else { return 0 };
        let pending: Vec<TermKey> = term.args.iter().filter(|a| !depth.contains_key(a)).copied().collect();
        if pending.is_empty() {
            let d = term.args.iter().map(|a| depth[a] + 1).max().unwrap_or(0);
            depth.insert(key, d);
            stack.pop();
        } else {
            stack.extend(pending);
        }
    }
    depth[&root]
}
/// How deep a submission's focus reaches: its own depth plus [`FOCUS_DEPTH`].
fn focus_depth(replica: &ReplicaState, root: TermKey) -> usize {
    term_depth(replica, root) + FOCUS_DEPTH
}

/// Submissions one event may be about (a submission, or one rewriting step, names one).
const MAX_ABOUT: usize = 16;
const REPLAY_WINDOW: u64 = 4096;

/// How far a peer's clock may run ahead of this agent's before its sequence
/// numbers (its life's start in ms, shifted left 20 bits, then counted up) are
/// taken for forgeries: one hour.
pub const MAX_PEER_CLOCK_AHEAD_MS: u64 = 3_600_000;

/// An agent's whole state, see [`Agent::into_snapshot`].
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    next_sync: usize,
    log: VecDeque<LogEntry>,
    refutations: VecDeque<RefutationNote>,
    now_ms: u64,
    /// GREEN's backlog of equalities not checked yet.
    #[serde(default)]
    unchecked: VecDeque<u128>,
    #[serde(default)]
    share: Share,
    #[serde(default)]
    goals: BTreeMap<TermKey, Goal>,
    #[serde(default)]
    queue: VecDeque<TermKey>,
    #[serde(default)]
    forwarded: VecDeque<CausalContext>,
    /// The submissions' own e-graphs (see [`OwnGraphs`]), oldest first, each as
    /// its terms grouped by class: a hosted agent goes on rewriting a
    /// submission where its last request left it, as an agent kept in memory
    /// does, instead of starting again from the focus each time.
    #[serde(default)]
    own_graphs: Vec<(TermKey, Vec<Vec<TermKey>>)>,
    /// When this life began, in ms since the Unix epoch (see [`Agent::begin_life`]).
    #[serde(default)]
    life_start_ms: Option<u64>,
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
    /// Names the dots of this agent's events: its id, or `{id}#{incarnation}`
    /// once a life began (see [`Agent::begin_life`]). Provenance names the id.
    actor: String,
    color: Color,
    neighbors: Vec<String>,
    known: HashSet<String>,
    replica: ReplicaState,
    /// Facts new since the last save (see [`Agent::save_to`]); `None` for an
    /// agent that saves nothing.
    journal: Option<ReplicaState>,
    rules: RuleBook,
    limits: WorkLimits,
    counters: Counters,
    seq: u64,
    /// Per sender: the highest sequence number seen and which of the last ones.
    seen: HashMap<String, (u64, BTreeSet<u64>)>,
    /// The replica as an e-graph, built on first use (a host that loads the
    /// agent for each request, as Spin does, builds none to answer a state
    /// query), then kept up to date with each delta. Read it with [`Agent::graph`].
    graph: Option<ReplicaGraph>,
    /// News merged into the replica but not yet into `graph` (see [`Agent::absorb_news`]).
    unabsorbed: Option<Unabsorbed>,
    /// Status views of roots (canonical form and fingerprint, see
    /// [`Agent::view`]), each kept until a class it was read from changes.
    views: Views,
    /// Which submissions this agent rewrites.
    share: Share,
    /// The submissions it rewrites, with what each has spent.
    goals: BTreeMap<TermKey, Goal>,
    /// Each submission's own e-graph, for the submissions it rewrites (see
    /// [`OwnGraphs`]).
    own: OwnGraphs,
    /// The last events about a submission it forwarded (see [`Forwarded`]).
    forwarded: Forwarded,
    /// Submissions with news about them, oldest first (each once).
    queue: VecDeque<TermKey>,
    /// The same submissions, to ask about one in constant time.
    queued: FastSet<TermKey>,
    /// The submission a rewriting step is out for (between
    /// [`Agent::start_work`] and [`Agent::finish_work`]).
    working: Option<TermKey>,
    next_sync: usize,
    log: VecDeque<LogEntry>,
    refutations: VecDeque<RefutationNote>,
    /// GREEN: equalities held but not checked yet, by key, oldest first.
    unchecked: VecDeque<u128>,
    now_ms: u64,
    /// When this life began, in ms since the Unix epoch: with `now_ms`, how
    /// late a peer's sequence number can plausibly be.
    life_start_ms: Option<u64>,
    /// Interaction events for the timeline, when its driver records them
    /// (see [`Agent::record_events`]); not part of a snapshot.
    events: Option<EventLog>,
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
            graph: None,
            unabsorbed: None,
            views: Views::default(),
            share: Share::default(),
            goals: BTreeMap::new(),
            own: OwnGraphs::default(),
            forwarded: Forwarded::default(),
            queue: VecDeque::new(),
            queued: FastSet::new(),
            working: None,
            next_sync: 0,
            log: VecDeque::new(),
            refutations: VecDeque::new(),
            unchecked: VecDeque::new(),
            now_ms: 0,
            life_start_ms: None,
            events: None,
        }
    }

    /// Everything the agent is between two messages, for a host that keeps no
    /// process between them (a Spin component saves it in key-value after each
    /// request). The rules and limits are configuration, not state.
    pub fn into_snapshot(mut self) -> AgentSnapshot {
        // What the news queued is part of the snapshot.
        self.absorb_news();
        let own_graphs = self.own.into_saved();
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
            next_sync: self.next_sync,
            log: self.log,
            refutations: self.refutations,
            now_ms: self.now_ms,
            life_start_ms: self.life_start_ms,
            unchecked: self.unchecked,
            share: self.share,
            goals: self.goals,
            queue: self.queue,
            forwarded: self.forwarded.order,
            own_graphs,
        }
    }

    /// The agent a snapshot describes, with these limits. It keeps no journal:
    /// its host saves whole snapshots.
    pub fn from_snapshot(snapshot: AgentSnapshot, limits: WorkLimits) -> Agent {
        let kept: HashSet<TermKey> = snapshot.own_graphs.iter().map(|(root, _)| *root).collect();
        let mut agent = Agent {
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
            graph: None,
            unabsorbed: None,
            views: Views::default(),
            share: snapshot.share,
            // A goal whose own e-graph the snapshot lacks makes it again from its focus.
            goals: snapshot
                .goals
                .into_iter()
                .map(|(root, goal)| {
                    let from_focus = goal.from_focus || !kept.contains(&root);
                    (root, Goal { from_focus, ..goal })
                })
                .collect(),
            own: OwnGraphs::default(),
            forwarded: Forwarded::from(snapshot.forwarded),
            queued: snapshot.queue.iter().copied().collect(),
            queue: snapshot.queue,
            working: None,
            next_sync: snapshot.next_sync,
            log: snapshot.log,
            refutations: snapshot.refutations,
            unchecked: snapshot.unchecked,
            now_ms: snapshot.now_ms,
            life_start_ms: snapshot.life_start_ms,
            events: None,
        };
        // Each is built on first use: a request that does not step on a
        // submission costs nothing for its own e-graph.
        for (root, classes) in snapshot.own_graphs {
            agent.own.insert(root, OwnGraph::Saved(classes));
        }
        agent
    }

    /// A GREEN agent restored from a store checks everything of its share it
    /// holds again, a few at a time: what it had checked before is not stored.
    fn check_everything_again(&mut self) {
        if self.color == Color::Green {
            self.unchecked = self
                .replica
                .equalities()
                .map(|e| e.key())
                .filter(|&k| self.share.checks(k) && !self.replica.is_refuted(k))
                .collect();
        }
    }

    /// Restores a replica (after a restart). What each submission's rewriting
    /// had spent is not saved with the replica: a restored agent does not know
    /// whether it had finished, so it says `pending` for a submission until it
    /// has stepped it again, which it does when the submission is asked about
    /// or when news about it arrives (not all at once at start, which would
    /// keep a restarted agent busy for as long as its history).
    pub fn restore(&mut self, replica: ReplicaState) {
        self.replica.merge(&replica);
        self.graph = None;
        self.views.clear();
        self.check_everything_again();
        // What the events about them brought went into own e-graphs now lost.
        let roots: Vec<TermKey> = self.replica.roots().filter(|&r| self.share.owns(r)).collect();
        for root in roots {
            self.goals.entry(root).or_default().from_focus = true;
        }
    }

    /// Runs `rules` from now on: configuration, as its host's rule book
    /// changes. Each submission it finished under the old rules (its colour's
    /// fixpoint), or is rewriting with them now, is taken again, since new
    /// rules may derive more; one whose budget is spent stays stopped.
    pub fn set_rules(&mut self, rules: RuleBook) {
        self.rules = rules;
        let finished: Vec<TermKey> = self
            .goals
            .iter()
            .filter(|(_, goal)| goal.stop == Some(Stop::Saturated))
            .map(|(root, _)| *root)
            .collect();
        for root in finished {
            self.enqueue(root);
        }
        // A step out with the old rules would mark its submission finished
        // under them: it is taken again once that step is back.
        if let Some(root) = self.working {
            self.enqueue(root);
        }
    }

    /// Sets which submissions this agent rewrites and, for a GREEN agent,
    /// which equalities it checks (see [`Share`]); by default all of them.
    pub fn set_share(&mut self, share: Share) {
        self.share = share;
        self.queue.retain(|&root| share.owns(root));
        self.queued.retain(|&root| share.owns(root));
        self.goals.retain(|&root, _| share.owns(root));
        self.own.graphs.retain(|&root, _| share.owns(root));
        self.unchecked.retain(|&key| share.checks(key));
    }

    /// Why this agent refuses new submissions, if it does: its replica holds
    /// `max_terms` terms. Replication goes on; a host answers 503 with this.
    pub fn refuses_submissions(&self) -> Option<String> {
        let terms = self.replica.term_count();
        (terms >= self.limits.max_terms).then(|| {
            format!(
                "{} holds {terms} terms, its limit (max_terms {}): no new submissions",
                self.id, self.limits.max_terms
            )
        })
    }

    /// Queues a submission this agent rewrites, unless its budget is spent.
    fn enqueue(&mut self, root: TermKey) {
        if !self.share.owns(root) || self.queued.contains(&root) {
            return;
        }
        if self.goals.entry(root).or_default().spent() {
            return;
        }
        self.queue.push_back(root);
        self.queued.insert(root);
    }

    /// Notes news (already merged into the replica) for the e-graph and the
    /// submissions it is about: new roots and the submissions named by
    /// `about`. It goes into the e-graph at the next [`Agent::absorb_news`].
    fn take_news(&mut self, news: Arc<ReplicaState>, about: Option<&[TermKey]>) {
        if news.refutation_count() > 0 {
            // egg never splits a class: an own e-graph that may have unioned a
            // refuted equality is dropped, and rebuilt from the focus.
            self.own.graphs.retain(|_, own| !own.unions_any_of(&news));
        }
        let pending = self.unabsorbed.get_or_insert_with(Unabsorbed::default);
        pending.facts.push(news);
        if let Some(about) = about {
            pending.about.extend(about);
        }
    }

    /// Takes an event about the submissions it names into the own e-graphs of
    /// those this agent rewrites (all of its facts: some may be held already,
    /// from other submissions, and still be new to this one), and queues each
    /// whose own e-graph grew.
    fn take_about(&mut self, delta: &ReplicaState, about: &[TermKey]) {
        for &root in about {
            if !self.share.owns(root) {
                continue;
            }
            let goal = self.goals.entry(root).or_default();
            if goal.spent() {
                continue;
            }
            let fresh = goal.fresh();
            let held = self.own.graphs.contains_key(&root) || (fresh && self.make_own_graph(root, true));
            if !held {
                // Its own e-graph is gone: it is made again from the focus,
                // which holds the event, at its next step.
                self.goals.entry(root).or_default().from_focus = true;
                self.enqueue(root);
                continue;
            }
            if let Some(own) = self.own.graphs.get_mut(&root)
                && own.built(&self.replica).absorb_delta(&self.replica, delta)
            {
                self.enqueue(root);
            }
        }
    }

    /// A copy of the own e-graph of the submission at `root` (made first if
    /// need be: from its own terms for a `fresh` goal, else from its focus,
    /// when the own e-graph was dropped or lost in a restart); `None` while its
    /// terms have not all arrived.
    fn own_graph(&mut self, root: TermKey, fresh: bool) -> Option<Materialized> {
        if !self.own.graphs.contains_key(&root) && !self.make_own_graph(root, fresh) {
            return None;
        }
        let own = self.own.graphs.get_mut(&root)?.built(&self.replica);
        if own.class_of(root).is_none() {
            // Made before its terms had all arrived (they may have come since
            // by anti-entropy, which names no submission).
            own.add_held(&self.replica, root)?;
        }
        // A fresh e-graph of its e-nodes, cut as the focus is: a class of
        // several thousand e-nodes (AC and factoring can breed them for ever,
        // whichever order the colours' facts arrived in) stays out of a step.
        let depth = focus_depth(&self.replica, root);
        own.region_within(root, depth)
    }

    /// Makes the own e-graph of the submission at `root` (see
    /// [`Agent::own_graph`]); answers whether it could (a focus needs the
    /// root held; a fresh own e-graph waits for its terms).
    fn make_own_graph(&mut self, root: TermKey, fresh: bool) -> bool {
        let own = if fresh {
            let mut own = Materialized::empty(true);
            own.add_held(&self.replica, root);
            own
        } else {
            self.absorb_news();
            match self.focus(root) {
                Some(focus) => focus,
                None => return false,
            }
        };
        self.own.insert(root, OwnGraph::Built(Box::new(own)));
        true
    }

    /// The replica as an e-graph, built from it on first use, with the news
    /// taken in so far, rebuilt when read (a rebuild costs the classes the
    /// news changed: see [`ramanujan_core::congruence`]).
    fn graph(&mut self) -> &ReplicaGraph {
        self.absorb_news();
        let graph = self.graph.get_or_insert_with(|| ReplicaGraph::new(&self.replica));
        graph.rebuild();
        self.views.forget_reads_of(graph.take_changed());
        graph
    }

    /// Adds the news noted since the last call to the e-graph, if one is
    /// built (not rebuilt: see [`Agent::graph`]), drops the views of the
    /// classes it changed (congruences found by the rebuild drop theirs
    /// then), and queues the submissions it is about.
    fn absorb_news(&mut self) {
        let Some(news) = self.unabsorbed.take() else {
            return;
        };
        let refuted = news.facts.iter().any(|facts| facts.refutation_count() > 0);
        if let Some(graph) = self.graph.as_mut() {
            for facts in &news.facts {
                graph.absorb_deferred(&self.replica, facts);
            }
            if refuted {
                // The e-graph was built again: its class ids are new.
                self.views.clear();
            }
            self.views.forget_reads_of(graph.take_changed());
        }
        let mut roots: BTreeSet<TermKey> = news.facts.iter().flat_map(|facts| facts.roots()).collect();
        roots.extend(news.about);
        for root in roots {
            self.enqueue(root);
        }
    }

    /// The submissions waiting for a rewriting step, oldest first, once the
    /// news merged so far has been taken in.
    pub fn queued(&mut self) -> Vec<TermKey> {
        self.absorb_news();
        self.queue.iter().copied().collect()
    }

    /// Appends to `store` what it lacks: every fact new since the last save,
    /// with the replica's clock (the store then holds everything that clock
    /// covers), and starts a new journal once the append is durable. Costs the
    /// size of the news, not of the replica, and copies nothing. `Ok(false)`
    /// when nothing was new (or the agent keeps no journal); on an error the
    /// journal is kept for the next try.
    pub fn save_to(&mut self, store: &mut (impl ReplicaStore + ?Sized)) -> Result<bool, StoreError> {
        let Some(journal) = self.journal.as_mut().filter(|j| !j.is_empty()) else {
            return Ok(false);
        };
        let news = std::mem::take(journal).with_clock(self.replica.clock().clone());
        match store.append(&news) {
            Ok(()) => Ok(true),
            Err(e) => {
                *journal = news;
                Err(e)
            }
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

    /// Starts a life of this agent: numbers its messages from `incarnation` on
    /// (see [`Agent::number_messages_from`]) and names the dots of this life's
    /// events `{id}#{incarnation}`. Every restart must begin a new life, even
    /// from a saved replica: what was saved may lag what the earlier life sent
    /// (a save that failed, or a crash between a save and a send), and a life
    /// that went on counting from the saved clock would give new facts dots
    /// that peers have seen on other facts, so they would never ask for them.
    /// `incarnation` must differ between lives (a clock reading, made unique).
    pub fn begin_life(&mut self, incarnation: u64) {
        self.number_messages_from(incarnation);
        self.life_start_ms = Some(incarnation >> 20);
        self.actor = format!("{}#{incarnation}", self.id);
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
    pub fn refutations(&self) -> impl Iterator<Item = &RefutationNote> {
        self.refutations.iter()
    }

    /// Runs `rules`, restored with the agent: they ran before it was saved
    /// (a host that loads the agent for each request, as Spin does, gives
    /// them again each time), so nothing is taken again. Rules that changed
    /// since go through [`Agent::set_rules`].
    pub fn use_rules(&mut self, rules: RuleBook) {
        self.rules = rules;
    }

    /// How many rules of its colour it runs (built-in and given, see
    /// [`Agent::set_rules`]).
    pub fn rule_count(&self) -> usize {
        self.rules.rewrites(self.color).len()
    }

    /// Whether the agent has rewriting to do, or a step is running.
    pub fn is_dirty(&self) -> bool {
        !self.queue.is_empty() || self.working.is_some() || self.unabsorbed.is_some()
    }

    /// Whether its rewriting of the submission at `root` is finished, and how:
    /// finished once its last step on the submission's own e-graph (see
    /// [`OwnGraphs`]) derived nothing, and no news about the submission
    /// arrived since. Other submissions' facts in shared classes are not its
    /// work: they change the canonical form only as extraction picks among
    /// what is held.
    fn rewriting(&mut self, root: TermKey) -> Rewriting {
        if !self.share.owns(root) {
            return Rewriting::Replicating;
        }
        if self.working == Some(root) || self.queued.contains(&root) {
            return Rewriting::Pending;
        }
        let Some(stop) = self.goals.get(&root).and_then(|g| g.stop) else {
            // Not seen yet as a submission, or never stepped: not finished.
            if self.replica.is_root(root) {
                self.enqueue(root);
            }
            return Rewriting::Pending;
        };
        match stop {
            Stop::Saturated => Rewriting::Saturated,
            reason => Rewriting::Stopped { reason },
        }
    }

    /// What this agent knows of a submitted term: its canonical form and the
    /// fingerprint of the classes its smallest forms go through (none if the
    /// term is not held; see [`ReplicaGraph::form_view`]), with the agent's
    /// colour, rewriting and digest. Costs those classes' e-nodes once per
    /// change to them, a lookup otherwise.
    pub fn held_form(&mut self, root: TermKey) -> HeldForm {
        self.absorb_news();
        let (canonical, region) = match self.view(root) {
            Some(view) => (view.canonical.clone(), Some(view.fingerprint.clone())),
            None => (None, None),
        };
        let submitted = self
            .replica
            .is_root(root)
            .then(|| self.views.submitted(&self.replica, root))
            .flatten();
        HeldForm {
            canonical,
            color: self.color,
            rewriting: self.rewriting(root),
            digest: self.replica.digest(),
            region,
            submitted,
        }
    }

    /// A submission's focus: its region cut at the submission's own depth plus
    /// [`FOCUS_DEPTH`] classes, as an e-graph of its own: where the own
    /// e-graph of a submission (see [`OwnGraphs`]) starts again after a
    /// restart or a refutation.
    fn focus(&mut self, root: TermKey) -> Option<Materialized> {
        let depth = focus_depth(&self.replica, root);
        self.graph().region_within(root, depth)
    }

    /// The status view of a submission: kept from the last time it was
    /// read while none of the classes it was read from changed (so a status
    /// query about a settled submission costs a lookup however busy the
    /// network is with others), read again otherwise.
    fn view(&mut self, root: TermKey) -> Option<&ShownView> {
        // Takes the news in first, which drops the views it changed.
        self.graph();
        if !self.views.holds(root) {
            let view = self.graph.as_ref()?.form_view(root)?;
            self.views.insert(root, view);
        }
        self.views.get(root)
    }

    /// Sets the agent's clock (milliseconds since it started).
    pub fn set_time(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// Records interaction events from now on, for its driver to take (see
    /// [`crate::events`]).
    pub fn record_events(&mut self) {
        self.events.get_or_insert_with(EventLog::default);
    }

    /// The events recorded since the last take (unstamped: the driver's
    /// emitter stamps them), and how many did not fit in between.
    pub fn take_events(&mut self) -> (Vec<Event>, u64) {
        self.events.as_mut().map(EventLog::take).unwrap_or_default()
    }

    /// Records an event if events are recorded: about `submission`, with the
    /// dot of the facts it recorded, and (if `seen`) what the replica has seen.
    fn record_event(
        &mut self,
        submission: Option<TermKey>,
        dot: Option<EventDot>,
        seen: bool,
        kind: impl FnOnce() -> Kind,
    ) {
        let Some(log) = self.events.as_mut() else {
            return;
        };
        log.push(Event {
            at_us: 0,
            source: self.id.clone(),
            submission: submission.map(|root| root.to_string()),
            dot,
            seen: if seen {
                seen_of(self.replica.clock())
            } else {
                BTreeMap::new()
            },
            event: kind(),
        });
    }

    fn note(&mut self, direction: &'static str, peer: &str, body: &Body, seq: u64) {
        if self.events.is_some() {
            let about = match body {
                Body::Event { about, .. } => about.first().copied(),
                _ => None,
            };
            let (route, facts) = (body.kind().to_string(), body.facts() as u64);
            let peer = peer.to_string();
            self.record_event(about, None, false, || match direction {
                "in" => Kind::MessageReceived {
                    from: peer,
                    route,
                    facts,
                    bytes: None,
                },
                _ => Kind::MessageSent {
                    to: peer,
                    route,
                    facts,
                    bytes: None,
                },
            });
        }
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
        self.counters.sent_by_kind.count(&body);
        self.note("out", to, &body, self.seq);
        Envelope {
            from: self.id.clone(),
            to: to.to_string(),
            seq: self.seq,
            body,
        }
    }

    fn flood(&mut self, delta: &Arc<ReplicaState>, about: &[TermKey], except: Option<&str>) -> Vec<Envelope> {
        if !about.is_empty() {
            // Its echoes are not forwarded again (see `Forwarded`).
            self.forwarded.insert(delta.clock());
        }
        let targets: Vec<String> = self
            .neighbors
            .iter()
            .filter(|n| Some(n.as_str()) != except)
            .cloned()
            .collect();
        targets
            .iter()
            .map(|to| {
                let body = Body::Event {
                    delta: Arc::clone(delta),
                    about: about.to_vec(),
                };
                self.send(to, body)
            })
            .collect()
    }

    /// What this agent recorded itself (already in its replica) goes out:
    /// into the journal, flooded to every neighbour as an event `about` those
    /// submissions, and into the e-graph as news (`news_about`, see
    /// [`Agent::take_news`]).
    fn spread_own(&mut self, delta: ReplicaState, about: &[TermKey], news_about: Option<&[TermKey]>) -> Vec<Envelope> {
        let delta = Arc::new(delta);
        if let Some(journal) = self.journal.as_mut() {
            journal.merge(&delta);
        }
        let out = self.flood(&delta, about, None);
        self.take_news(delta, news_about);
        out
    }

    /// Records a submitted expression (its terms, and its root as a
    /// submission) and floods it. Answers its root term.
    pub fn submit(&mut self, expr: &Expr) -> (TermKey, Vec<Envelope>) {
        let mut facts = Facts::default();
        let root = expr_terms(expr, &mut facts);
        facts.roots.push(root);
        let delta = self
            .replica
            .record(&self.actor, facts)
            .expect("expression terms are never reflexive");
        if delta.is_empty() {
            return (root, Vec::new());
        }
        self.record_event(Some(root), dot_of(&delta), true, || Kind::Submission {
            expression: expr.to_string(),
        });
        (root, self.spread_own(delta, &[root], Some(&[root])))
    }

    /// Counts a message the transport could not decode.
    pub fn reject_malformed(&mut self) {
        self.counters.rejected_malformed += 1;
    }

    /// The first sequence number no peer can have reached yet: peers number
    /// their messages from their life's start in ms, shifted left 20 bits, so
    /// one from later than this agent's clock plus
    /// [`MAX_PEER_CLOCK_AHEAD_MS`] is forged (or from a clock far off).
    /// `None` before this agent's life began: it has no clock to judge by.
    fn first_implausible_seq(&self) -> Option<u64> {
        let latest_ms = self
            .life_start_ms?
            .checked_add(self.now_ms)?
            .checked_add(MAX_PEER_CLOCK_AHEAD_MS)?;
        latest_ms.checked_add(1)?.checked_mul(1 << 20)
    }

    /// Whether (from, seq) is new; remembers it.
    fn first_time(&mut self, from: &str, seq: u64) -> bool {
        let (high, recent) = self.seen.entry(from.to_string()).or_default();
        if seq.saturating_add(REPLAY_WINDOW) <= *high || !recent.insert(seq) {
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
        if self.first_implausible_seq().is_some_and(|limit| env.seq >= limit) {
            // Remembering it would make every later honest message look old.
            self.counters.rejected_implausible_seq += 1;
            return Vec::new();
        }
        if !self.first_time(&env.from, env.seq) {
            self.counters.duplicates += 1;
            return Vec::new();
        }
        self.counters.messages_received += 1;
        self.counters.received_by_kind.count(&env.body);
        self.note("in", &env.from, &env.body, env.seq);
        match env.body {
            Body::Event { delta, about } => {
                if !event_is_single(&delta) || about.len() > MAX_ABOUT {
                    self.counters.rejected_malformed += 1;
                    return Vec::new();
                }
                let news = !self.replica.clock().dominates(delta.clock());
                // A GREEN agent's refutations of what the event asserts go out
                // first, so a neighbour learns an equality is false before it
                // could use it. An event the clock covers is not merged again:
                // a replica holds every fact its clock covers (at that dot or a
                // lower one), so merging it changes nothing. Flooding brings
                // each event from several neighbours.
                let mut out = if news {
                    self.absorb(&delta, Some(&about))
                } else {
                    self.counters.events_already_held += 1;
                    Vec::new()
                };
                self.take_about(&delta, &about);
                // An event about a submission goes on even where its facts
                // came first by anti-entropy (which names no submission): the
                // submission's rewriters take facts into its own e-graph only
                // from events. Each agent forwards each event once.
                let first = !about.is_empty() && self.forwarded.insert(delta.clock());
                if news || first {
                    out.extend(self.flood(&delta, &about, Some(&env.from)));
                }
                out
            }
            Body::SyncRequest { clock, digest } => {
                let body = if digest == self.replica.digest() {
                    Body::SyncReply {
                        delta: ReplicaState::new(),
                        clock: CausalContext::default(),
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
                let mut out = self.absorb(&Arc::new(delta), None);
                let back = self.replica.delta_since(&clock);
                if !back.is_empty() {
                    out.push(self.send(&env.from, Body::SyncPush { delta: back }));
                }
                out
            }
            Body::SyncPush { delta } => self.absorb(&Arc::new(delta), None),
        }
    }

    /// Merges facts (about these submissions, if the sender said); GREEN checks
    /// the new equalities and answers the flood of its refutations, if any.
    fn absorb(&mut self, delta: &Arc<ReplicaState>, about: Option<&[TermKey]>) -> Vec<Envelope> {
        // Facts that are all news (an event's, most of the time) come back
        // shared, not copied once more.
        let (stats, news) = self.replica.merge_news(delta);
        if news.is_empty() {
            return Vec::new();
        }
        if let Some(journal) = self.journal.as_mut() {
            journal.merge(&news);
        }
        let facts_new = (news.term_count() + news.equality_count() + news.refutation_count()) as u64;
        let about_first = about.and_then(|a| a.first().copied());
        self.record_event(about_first, None, true, || Kind::Merge { facts_new });
        let verify = self.color == Color::Green && stats.new_equalities > 0;
        if verify {
            // Queues the new equalities its share checks.
            let share = self.share;
            self.unchecked
                .extend(news.equalities().map(|e| e.key()).filter(|&k| share.checks(k)));
        }
        // The submissions an event names are queued by [`Agent::take_about`],
        // only where their own e-graph grew: facts new to the replica and not
        // to that e-graph (the same equality under another agent's
        // provenance) leave a finished rewriting finished.
        self.take_news(news, None);
        if verify {
            // The oldest queued ones, [`WorkLimits::verify_per_message`] at a
            // time (the rest wait for the next message or sync tick: every
            // equality of its share is checked, none is dropped).
            return self.check_unchecked();
        }
        Vec::new()
    }

    /// About how many bytes of heap the agent holds: its replica and the
    /// facts not saved yet, the replica's e-graph, and each submission's own
    /// e-graph. An estimate from counts, read in constant time per
    /// submission rewritten; `tests/memory.rs` checks it against what
    /// dropping the agent frees.
    pub fn approx_heap_bytes(&self) -> usize {
        let own: usize = self
            .own
            .graphs
            .values()
            .map(|graph| match graph {
                OwnGraph::Built(m) => m.approx_heap_bytes(),
                OwnGraph::Saved(classes) => classes.iter().map(|c| 24 + 16 * c.len()).sum(),
            })
            .sum();
        // What each submission rewritten costs besides its e-graph's terms
        // (the empty e-graph's tables, its goal, views and forwarding notes).
        const PER_SUBMISSION: usize = 5 * 1024;
        self.goals.len() * PER_SUBMISSION
            + self.replica.approx_heap_bytes()
            + self.journal.as_ref().map_or(0, ReplicaState::approx_heap_bytes)
            + self.graph.as_ref().map_or(0, ReplicaGraph::approx_heap_bytes)
            + own
    }

    /// Equalities this GREEN agent holds and has not checked yet.
    pub fn verify_backlog(&self) -> usize {
        self.unchecked.len()
    }

    /// Checks up to [`WorkLimits::verify_per_message`] queued equalities;
    /// records a [`Refutation`] of each refuted one, as one event, and floods
    /// it. Every replica that merges it leaves the equality out of its e-graph.
    fn check_unchecked(&mut self) -> Vec<Envelope> {
        let mut refutations = Vec::new();
        let mut checked = 0;
        while checked < self.limits.verify_per_message {
            let Some(key) = self.unchecked.pop_front() else { break };
            if self.replica.is_refuted(key) {
                continue;
            }
            let Some(eq) = self.replica.equality(key).cloned() else {
                continue;
            };
            checked += 1;
            let (Some(l), Some(r)) = (term_expr(&self.replica, eq.lhs), term_expr(&self.replica, eq.rhs)) else {
                // A side not received yet: check it once it has arrived.
                self.unchecked.push_back(key);
                continue;
            };
            let verdict = check_semantically(&l, &r);
            self.record_event(None, None, false, || Kind::Verification {
                verdict: match verdict {
                    Verdict::Verified { .. } => EventVerdict::Verified,
                    Verdict::Refuted { .. } => EventVerdict::Refuted,
                    Verdict::Inconclusive { .. } => EventVerdict::Inconclusive,
                },
                equality: format!("{l} = {r}"),
            });
            match verdict {
                verdict @ Verdict::Refuted { .. } => {
                    self.counters.refuted += 1;
                    if self.refutations.len() == 32 {
                        self.refutations.pop_front();
                    }
                    self.refutations.push_back(RefutationNote {
                        equality: format!("{l} = {r}"),
                        asserted_by: format!("{} ({})", eq.provenance.agent, eq.provenance.rule),
                        verdict,
                    });
                    refutations.push(Refutation::of(&eq, &self.id));
                }
                Verdict::Verified { .. } => self.counters.verified += 1,
                Verdict::Inconclusive { .. } => self.counters.inconclusive += 1,
            }
        }
        if refutations.is_empty() {
            return Vec::new();
        }
        let facts = Facts {
            refutations,
            ..Facts::default()
        };
        let delta = self
            .replica
            .record(&self.actor, facts)
            .expect("an asserted equality's sides differ");
        if delta.is_empty() {
            return Vec::new();
        }
        self.spread_own(delta, &[], None)
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
    /// step can run without holding the agent (see [`WorkJob::run`]). The step
    /// rewrites the oldest queued submission's region, within what is left of
    /// its budget.
    pub fn start_work(&mut self) -> Option<WorkJob> {
        if self.working.is_some() {
            return None;
        }
        self.absorb_news();
        while let Some(root) = self.queue.pop_front() {
            self.queued.remove(&root);
            let terms = self.replica.term_count();
            let limits = self.limits;
            let goal = self.goals.entry(root).or_default();
            let stop = if terms >= limits.max_terms {
                self.counters.rewrite_skipped_at_max_terms += 1;
                Some(Stop::MaxTerms)
            } else if goal.iterations >= limits.goal_iterations {
                Some(Stop::IterationBudget)
            } else if goal.nodes >= limits.goal_nodes {
                Some(Stop::NodeBudget)
            } else {
                None
            };
            if let Some(stop) = stop {
                tracing::debug!(agent = %self.id, root = %root, %stop, "rewriting of a submission stopped");
                goal.stop = Some(stop);
                // It never steps again.
                self.own.graphs.remove(&root);
                continue;
            }
            let step = Limits {
                nodes: limits
                    .step_nodes
                    .min(limits.goal_nodes - goal.nodes)
                    .min(limits.max_terms - terms),
                iterations: limits.step_iterations.min(limits.goal_iterations - goal.iterations),
                time: limits.step_time,
            };
            let fresh = goal.fresh();
            let Some(region) = self.own_graph(root, fresh) else {
                // Its terms have not all arrived: they will queue it again.
                self.goals.entry(root).or_default().stop = None;
                continue;
            };
            self.counters.rewrite_steps += 1;
            self.working = Some(root);
            return Some(WorkJob {
                root,
                color: self.color,
                agent: self.id.clone(),
                region,
                rules: self.rules.clone(),
                limits: step,
            });
        }
        None
    }

    /// Records what a rewriting step derived as one event of this agent (the
    /// replica may have moved on meanwhile; only facts still new are kept) and
    /// floods it.
    pub fn finish_work(&mut self, done: WorkDone) -> Vec<Envelope> {
        self.working = None;
        let (delta, valid) = match self.replica.record(&self.actor, done.facts.clone()) {
            Ok(delta) => (delta, true),
            Err(e) => {
                tracing::warn!(agent = %self.id, error = %e, "a rewriting step exported an invalid fact");
                (ReplicaState::new(), false)
            }
        };
        // The submission's own e-graph takes every fact the step exported,
        // held before or not: it is what one saturation of it would hold.
        let grew = valid
            && match self.own.graphs.get_mut(&done.root) {
                Some(own) => own.built(&self.replica).absorb_facts(&self.replica, &done.facts),
                None => !delta.is_empty(),
            };
        // A step the clock cut short decided nothing: it is taken again, and
        // counts as an iteration of the budget, so a step that never fits its
        // time ends at the budget, not in a loop.
        let cut_short = done.stop_reason == Stop::TimeLimit;
        let stop = match done.stop_reason {
            // Its rules added nothing to the own e-graph: the colour's fixpoint.
            Stop::IterationLimit if !grew => Stop::Saturated,
            reason => reason,
        };
        let goal = self.goals.entry(done.root).or_default();
        goal.iterations += done.iterations.max(usize::from(cut_short));
        goal.nodes += done.facts.terms.len();
        goal.stop = Some(stop);
        let dot = (!delta.is_empty()).then(|| dot_of(&delta)).flatten();
        let color = self.color;
        self.record_event(Some(done.root), dot, true, || Kind::RewriteStep {
            color: color.to_string(),
            iterations: done.iterations as u64,
            facts: (done.facts.terms.len() + done.facts.equalities.len()) as u64,
            stop: done.stop_reason.to_string(),
            duration_us: done.elapsed.as_micros() as u64,
        });
        if (grew && stop != Stop::Saturated) || cut_short {
            // More may follow from what was just derived.
            self.enqueue(done.root);
        }
        if delta.is_empty() {
            return Vec::new();
        }
        self.spread_own(delta, &[done.root], Some(&[]))
    }

    /// Starts anti-entropy with the next neighbour in turn.
    pub fn sync_tick(&mut self) -> Vec<Envelope> {
        // GREEN works through its backlog on ticks too, when it has no
        // rewriting to do: checking never slows the colours' turns down.
        let idle = self.queue.is_empty() && self.working.is_none() && self.unabsorbed.is_none();
        let mut out = if self.color == Color::Green && idle {
            self.check_unchecked()
        } else {
            Vec::new()
        };
        if self.neighbors.is_empty() {
            return out;
        }
        let to = self.neighbors[self.next_sync % self.neighbors.len()].clone();
        self.next_sync += 1;
        out.extend(self.sync_with(&to));
        out
    }

    /// Starts anti-entropy with every neighbour now (`POST /agent/{id}/sync`).
    pub fn sync_with_neighbors(&mut self) -> Vec<Envelope> {
        let neighbors = self.neighbors.clone();
        neighbors.iter().flat_map(|n| self.sync_with(n)).collect()
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

/// The own e-graphs of the submissions an agent rewrites: each holds what one
/// saturation of that submission alone would, its terms and what every
/// colour's steps on it derived (events name the submission they are about),
/// and nothing that other submissions put in shared classes. Steps rewrite it,
/// so a new submission is rewritten as on a fresh network however long the
/// network has run; extraction still reads the whole focus, and so picks among
/// everything held. At most [`OWN_GRAPHS`] are kept, the oldest dropped first
/// (a dropped one, or one lost in a restart, is rebuilt from the submission's
/// focus, which holds more than its own facts but every one of them). An
/// event carries only the facts new to its sender's replica, so a fact that
/// another submission had put in the replica first reaches the other
/// colours' own e-graphs only through their own rewriting. A step rewrites a
/// fresh e-graph of the own e-graph's e-nodes cut as the focus is (see
/// [`Agent::own_graph`]).
#[derive(Default)]
struct OwnGraphs {
    graphs: FastMap<TermKey, OwnGraph>,
    order: VecDeque<TermKey>,
}

/// One own e-graph: built, or as a snapshot saved it, built on first use (a
/// hosted agent is restored for every request, and most requests step on one
/// submission at most).
enum OwnGraph {
    Built(Box<Materialized>),
    /// Its terms grouped by class ([`Materialized::classes`]).
    Saved(Vec<Vec<TermKey>>),
}

impl OwnGraph {
    /// The e-graph, built now from its saved classes (held in `replica`) if
    /// it was not yet.
    fn built(&mut self, replica: &ReplicaState) -> &mut Materialized {
        if let OwnGraph::Saved(classes) = self {
            *self = OwnGraph::Built(Box::new(Materialized::from_classes(replica, classes, true)));
        }
        match self {
            OwnGraph::Built(own) => own,
            OwnGraph::Saved(_) => unreachable!("built just above"),
        }
    }

    /// [`Materialized::unions_any_of`], without building a saved graph: it
    /// holds both sides of one of `delta`'s refutations.
    fn unions_any_of(&self, delta: &ReplicaState) -> bool {
        match self {
            OwnGraph::Built(own) => own.unions_any_of(delta),
            OwnGraph::Saved(classes) => {
                let holds = |key: &TermKey| classes.iter().any(|class| class.binary_search(key).is_ok());
                delta.refutations().any(|r| holds(&r.lhs) && holds(&r.rhs))
            }
        }
    }

    /// Its terms grouped by class, for a snapshot.
    fn into_classes(self) -> Vec<Vec<TermKey>> {
        match self {
            OwnGraph::Built(own) => own.classes(),
            OwnGraph::Saved(classes) => classes,
        }
    }
}

/// How many own e-graphs an agent keeps (see [`OwnGraphs`]).
const OWN_GRAPHS: usize = 64;

impl OwnGraphs {
    fn insert(&mut self, root: TermKey, own: OwnGraph) {
        // Entries of graphs dropped since (a refutation, a spent budget) go
        // first, so an entry never names a graph inserted later.
        self.order.retain(|r| *r != root && self.graphs.contains_key(r));
        self.graphs.insert(root, own);
        self.order.push_back(root);
        while self.graphs.len() > OWN_GRAPHS {
            let Some(oldest) = self.order.pop_front() else { break };
            self.graphs.remove(&oldest);
        }
    }

    /// Each graph as a snapshot keeps it, oldest first (unbuilt ones as they came).
    fn into_saved(mut self) -> Vec<(TermKey, Vec<Vec<TermKey>>)> {
        let order = std::mem::take(&mut self.order);
        order
            .into_iter()
            .filter_map(|root| Some((root, self.graphs.remove(&root)?.into_classes())))
            .collect()
    }
}

/// How many events about a submission an agent remembers having forwarded.
const FORWARDED: usize = 4096;

/// The last [`FORWARDED`] events about a submission an agent forwarded,
/// oldest first: each is forwarded once, even where its facts came first by
/// anti-entropy. Kept in snapshots too, so a hosted agent forwards each once
/// as well; a copy that arrives later than that goes round once more.
#[derive(Default)]
struct Forwarded {
    order: VecDeque<CausalContext>,
    set: HashSet<CausalContext>,
}

impl From<VecDeque<CausalContext>> for Forwarded {
    fn from(order: VecDeque<CausalContext>) -> Self {
        let set = order.iter().cloned().collect();
        Forwarded { order, set }
    }
}

impl Forwarded {
    /// Remembers `event`; answers whether it was new.
    fn insert(&mut self, event: &CausalContext) -> bool {
        if self.set.contains(event) {
            return false;
        }
        self.set.insert(event.clone());
        self.order.push_back(event.clone());
        while self.order.len() > FORWARDED {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
        true
    }
}

/// News merged into an agent's replica, waiting to go into its e-graph.
#[derive(Debug, Default)]
struct Unabsorbed {
    /// The facts, as they came (each new to the replica then: not merged
    /// together, which would copy them once more).
    facts: Vec<Arc<ReplicaState>>,
    /// Submissions the news named.
    about: BTreeSet<TermKey>,
}

/// Status views of submissions (see [`Agent::view`]), each kept until a class
/// it was read from changes.
#[derive(Default)]
struct Views {
    by_root: FastMap<TermKey, ShownView>,
    /// For each class, the roots whose view read it (some may have been
    /// dropped since, through another class).
    readers: FastMap<ClassId, FastSet<TermKey>>,
    /// Submitted expressions as text, by root: a term never changes, so these
    /// are kept whatever changes (up to the same capacity).
    submitted: FastMap<TermKey, String>,
}

/// A status view as a status answer shows it (see [`FormView`]).
struct ShownView {
    /// The canonical form, written out.
    canonical: Option<String>,
    /// The fingerprint of the classes its smallest forms go through.
    fingerprint: String,
}

impl Views {
    /// Views kept at most; all are dropped when there are more.
    const CAPACITY: usize = 4096;

    fn holds(&self, root: TermKey) -> bool {
        self.by_root.contains_key(&root)
    }

    fn get(&self, root: TermKey) -> Option<&ShownView> {
        self.by_root.get(&root)
    }

    fn insert(&mut self, root: TermKey, view: FormView) {
        if self.by_root.len() >= Self::CAPACITY || self.readers.len() >= 64 * Self::CAPACITY {
            self.clear();
        }
        for &class in &view.reads {
            self.readers.entry(class).or_default().insert(root);
        }
        let shown = ShownView {
            canonical: view.canonical.map(|e| e.to_string()),
            fingerprint: view.fingerprint,
        };
        self.by_root.insert(root, shown);
    }

    /// The submitted expression at `root` as text, written out once.
    fn submitted(&mut self, replica: &ReplicaState, root: TermKey) -> Option<String> {
        if let Some(text) = self.submitted.get(&root) {
            return Some(text.clone());
        }
        let text = term_expr(replica, root)?.to_string();
        if self.submitted.len() >= Self::CAPACITY {
            self.submitted.clear();
        }
        self.submitted.insert(root, text.clone());
        Some(text)
    }

    /// Drops the views that read any of `changed`.
    fn forget_reads_of(&mut self, changed: Vec<ClassId>) {
        for class in changed {
            for root in self.readers.remove(&class).into_iter().flatten() {
                self.by_root.remove(&root);
            }
        }
    }

    fn clear(&mut self) {
        self.by_root.clear();
        self.readers.clear();
    }
}

/// One rewriting step, taken out of its agent: one submission's own e-graph,
/// copied through its focus cut (see `Agent::own_graph`).
pub struct WorkJob {
    root: TermKey,
    color: Color,
    /// Names the agent in the provenance of what the step derives.
    agent: String,
    region: Materialized,
    rules: RuleBook,
    limits: Limits,
}

/// What a rewriting step derived, and why it stopped.
pub struct WorkDone {
    root: TermKey,
    facts: Facts,
    iterations: usize,
    stop_reason: Stop,
    /// How long the step ran.
    elapsed: Duration,
}

impl WorkJob {
    /// Rewrites the region with the colour's rules, within the limits
    /// (`limits.nodes` is what it may add), and exports what it added.
    pub fn run(self) -> WorkDone {
        let started = Instant::now();
        let deadline = started + self.limits.time;
        let root = self.region.class_of(self.root).expect("a region holds its root");
        let (egraph, phase) = run_step(
            self.region.egraph.clone(),
            root,
            &self.rules,
            self.color,
            self.limits.nodes,
            self.limits.iterations,
            deadline,
        );
        WorkDone {
            root: self.root,
            facts: export(&egraph, &self.agent, self.color, &self.region),
            iterations: phase.iterations,
            stop_reason: phase.stop_reason,
            elapsed: started.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A graph dropped (by a refutation) and made again later is the newest,
    /// not evicted at once by the entry its first insertion left behind.
    #[test]
    fn an_own_graph_made_again_after_a_drop_is_kept() {
        let mut own = OwnGraphs::default();
        let root = |i: u128| TermKey(i);
        for i in 0..OWN_GRAPHS as u128 {
            own.insert(root(i), OwnGraph::Saved(Vec::new()));
        }
        own.graphs.remove(&root(0));
        own.insert(root(1_000), OwnGraph::Saved(Vec::new()));
        own.insert(root(0), OwnGraph::Saved(Vec::new()));
        assert!(own.graphs.contains_key(&root(0)), "the newest graph stays");
        assert!(own.graphs.contains_key(&root(1_000)));
        assert_eq!(own.graphs.len(), OWN_GRAPHS);
        assert_eq!(own.order.len(), OWN_GRAPHS);
    }

    /// A restored agent builds an own e-graph only when it uses it, and saves
    /// an unbuilt one as it came; a saved graph answers `unions_any_of` as the
    /// built one does (mutant: `Saved` answering `false` fails here).
    #[test]
    fn own_graphs_are_built_on_first_use_and_saved_unbuilt_as_they_came() {
        use ramanujan_core::parse::parse_expr;
        use ramanujan_core::replica::{Facts, Refutation};
        let known: HashSet<String> = ["a".to_string()].into();
        let mut agent = Agent::new("a".into(), Color::Red, Vec::new(), known, WorkLimits::default());
        let (root, _) = agent.submit(&parse_expr("(* (+ x y) (+ x 2))").unwrap());
        let (other, _) = agent.submit(&parse_expr("(+ (* a b) (* a c))").unwrap());
        for _ in 0..50 {
            agent.work();
        }
        let first = agent.into_snapshot();
        assert_eq!(first.own_graphs.len(), 2, "both submissions have their own e-graph");
        let mut back = Agent::from_snapshot(first.clone(), WorkLimits::default());
        assert!(back.own.graphs.values().all(|g| matches!(g, OwnGraph::Saved(_))));
        // A refutation of two terms the first graph holds, and of one it does not.
        let classes = &first.own_graphs.iter().find(|(r, _)| *r == root).unwrap().1;
        let held: Vec<TermKey> = classes.iter().flatten().copied().collect();
        let (lhs, rhs) = (held[0].min(held[1]), held[0].max(held[1]));
        let refute = |lhs, rhs| {
            let mut state = ReplicaState::new();
            let refutations = vec![Refutation {
                lhs,
                rhs,
                agent: "g".into(),
            }];
            state
                .record(
                    "g",
                    Facts {
                        refutations,
                        ..Facts::default()
                    },
                )
                .unwrap();
            state
        };
        let (both, one) = (refute(lhs, rhs), refute(lhs.min(other), lhs.max(other)));
        for own in back.own.graphs.values_mut() {
            let (saved_both, saved_one) = (own.unions_any_of(&both), own.unions_any_of(&one));
            let built = own.built(&back.replica);
            assert_eq!(saved_both, built.unions_any_of(&both));
            assert_eq!(saved_one, built.unions_any_of(&one));
        }
        assert!(OwnGraph::Saved(classes.clone()).unions_any_of(&both));
        // Built now, and saved again: the same classes.
        let again = Agent::from_snapshot(first.clone(), WorkLimits::default()).into_snapshot();
        assert_eq!(again.own_graphs, first.own_graphs);
        let built = back.into_snapshot();
        assert_eq!(built.own_graphs, first.own_graphs);
    }
}
