//! One interaction: a submission entering, a message sent or received, a
//! merge, a rewriting step, a verification, a CRDT merge, a saturation, a
//! webhook delivery, or an agent's lifecycle.
//!
//! As JSON (what `POST /timeline/events` takes and `/timeline/query` answers):
//!
//! ```json
//! {"at_us": 1764806400000000, "source": "agent-3", "submission": "7f0c…",
//!  "dot": {"agent": "agent-3", "counter": 12}, "seen": {"agent-0": 4, "agent-3": 12},
//!  "event": {"type": "rewrite_step", "color": "red", "iterations": 2, "facts": 31,
//!            "stop": "saturated", "duration_us": 840}}
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One interaction of the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = TimelineEvent)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// When, in microseconds since the Unix epoch; 0 until an [`Emitter`]
    /// stamps it (an agent has no wall clock of its own).
    ///
    /// [`Emitter`]: crate::Emitter
    #[serde(default)]
    pub at_us: i64,
    /// The agent (`agent-3`) or component (`egraph-service`) it happened in.
    pub source: String,
    /// The submission (its id, the root term key) it is about, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission: Option<String>,
    /// The dot of the facts it recorded, for an event that recorded facts
    /// (a submission, a rewriting step, a refutation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dot: Option<EventDot>,
    /// What its source had seen: the highest contiguous event counter per
    /// agent in its replica's causal context. An event `e` with a dot
    /// happened before an event `f` when `f.seen` reaches `e`'s dot.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub seen: BTreeMap<String, u64>,
    /// What happened.
    pub event: Kind,
}

impl Event {
    /// An event of a component (`crdt-service`), which keeps no causal
    /// history: no dot, nothing seen; stamped when emitted.
    pub fn from_component(source: &str, event: Kind) -> Event {
        Event {
            at_us: 0,
            source: source.to_string(),
            submission: None,
            dot: None,
            seen: BTreeMap::new(),
            event,
        }
    }
}

/// A fact-recording event's place in its agent's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventDot {
    /// The agent (actor) that recorded it.
    pub agent: String,
    /// Its counter in that agent's history.
    pub counter: u64,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = EventKind)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Kind {
    /// An expression entered the network at this agent.
    Submission {
        /// The expression, as submitted.
        expression: String,
    },
    /// An agent sent a message.
    MessageSent {
        /// The receiving agent.
        to: String,
        /// The message's kind (`event`, `sync_request`, ...) or route.
        route: String,
        /// Facts it carried.
        facts: u64,
        /// Its size on the wire, where there is one (none in process).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
    },
    /// An agent took a message in (one it refused is not one).
    MessageReceived {
        /// The sending agent.
        from: String,
        /// The message's kind or route.
        route: String,
        /// Facts it carried.
        facts: u64,
        /// Its size on the wire, where there is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
    },
    /// Facts merged into a replica that it did not hold.
    Merge {
        /// How many were new.
        facts_new: u64,
    },
    /// One rewriting step of a colour on a submission.
    RewriteStep {
        /// `RED`, `BLUE` or `GREEN` (as colours are written everywhere).
        color: String,
        /// egg iterations it ran.
        iterations: u64,
        /// Facts it derived (terms and equalities).
        facts: u64,
        /// Why it stopped (`saturated`, `node_limit`, ...).
        stop: String,
        /// How long it ran.
        duration_us: u64,
    },
    /// A GREEN agent checked an equality.
    Verification {
        /// `verified`, `refuted` or `inconclusive`.
        verdict: Verdict,
        /// The equality, `lhs = rhs`.
        equality: String,
    },
    /// The crdt-service merged states.
    CrdtMerge {
        /// The CRDT type (`gcounter`, `text`, ...).
        crdt_type: String,
        /// How it was answered: `identical` (all inputs the same state),
        /// `hit` (the memo cache), `contained` (computed, equal to an input)
        /// or `miss` (computed).
        cache: String,
        /// How long it took.
        duration_us: u64,
    },
    /// The egraph-service answered a saturation.
    Saturation {
        /// How long it took.
        duration_us: u64,
        /// Answered from the memo cache.
        cached: bool,
    },
    /// The bridge delivered a broker message to a hosted agent.
    Webhook {
        /// The broker subject.
        topic: String,
        /// The HTTP status the agent answered.
        status: u16,
        /// How long the delivery took.
        duration_us: u64,
    },
    /// The skill-verification panel decided on an embedding.
    Consensus {
        /// The image the embedding is of, as the client named it.
        image_id: String,
        /// The label that reached the quorum; none: no quorum.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
        /// Whether it matched the claimed skill, when one was claimed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verified: Option<bool>,
        /// Share of the panel behind the leading label.
        agreement: f64,
        /// Variance of the verifiers' scores.
        score_variance: f64,
        /// How long the panel took.
        duration_us: u64,
    },
    /// An agent's life changed.
    Lifecycle {
        /// What it became.
        state: LifecycleState,
    },
}

/// A verification's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = EventVerdict)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The equality holds (see the verifier's bound).
    Verified,
    /// A counterexample was found.
    Refuted,
    /// Neither could be shown.
    Inconclusive,
}

/// An agent's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleState {
    /// It started.
    Start,
    /// It missed its heartbeats.
    Suspect,
    /// It missed them for long.
    Dead,
    /// It beats again after being suspect or dead.
    Alive,
    /// It restarted from its store.
    Restart,
}

/// Every [`Kind`]'s `type`, as stored and as `/timeline/query?type=` takes it.
pub const TYPES: &[&str] = &[
    "submission",
    "message_sent",
    "message_received",
    "merge",
    "rewrite_step",
    "verification",
    "crdt_merge",
    "saturation",
    "webhook",
    "consensus",
    "lifecycle",
];

impl Kind {
    /// Its `type` (one of [`TYPES`]).
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Submission { .. } => "submission",
            Kind::MessageSent { .. } => "message_sent",
            Kind::MessageReceived { .. } => "message_received",
            Kind::Merge { .. } => "merge",
            Kind::RewriteStep { .. } => "rewrite_step",
            Kind::Verification { .. } => "verification",
            Kind::CrdtMerge { .. } => "crdt_merge",
            Kind::Saturation { .. } => "saturation",
            Kind::Webhook { .. } => "webhook",
            Kind::Consensus { .. } => "consensus",
            Kind::Lifecycle { .. } => "lifecycle",
        }
    }

    /// The other agent of a message.
    pub fn peer(&self) -> Option<&str> {
        match self {
            Kind::MessageSent { to, .. } => Some(to),
            Kind::MessageReceived { from, .. } => Some(from),
            _ => None,
        }
    }

    /// How long it took, for the kinds that say.
    pub fn duration_us(&self) -> Option<u64> {
        match self {
            Kind::RewriteStep { duration_us, .. }
            | Kind::CrdtMerge { duration_us, .. }
            | Kind::Saturation { duration_us, .. }
            | Kind::Webhook { duration_us, .. }
            | Kind::Consensus { duration_us, .. } => Some(*duration_us),
            _ => None,
        }
    }

    /// Its size on the wire, for a message that has one.
    pub fn bytes(&self) -> Option<u64> {
        match self {
            Kind::MessageSent { bytes, .. } | Kind::MessageReceived { bytes, .. } => *bytes,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_named_by_its_json_type() {
        let kinds = [
            Kind::Submission { expression: "x".into() },
            Kind::MessageSent {
                to: "b".into(),
                route: "event".into(),
                facts: 1,
                bytes: None,
            },
            Kind::MessageReceived {
                from: "a".into(),
                route: "event".into(),
                facts: 1,
                bytes: Some(9),
            },
            Kind::Merge { facts_new: 1 },
            Kind::RewriteStep {
                color: "red".into(),
                iterations: 1,
                facts: 2,
                stop: "saturated".into(),
                duration_us: 3,
            },
            Kind::Verification {
                verdict: Verdict::Refuted,
                equality: "x = 0".into(),
            },
            Kind::CrdtMerge {
                crdt_type: "text".into(),
                cache: "hit".into(),
                duration_us: 1,
            },
            Kind::Saturation {
                duration_us: 1,
                cached: false,
            },
            Kind::Webhook {
                topic: "agent.1.sync".into(),
                status: 200,
                duration_us: 1,
            },
            Kind::Consensus {
                image_id: "img-1".into(),
                label: Some("cat".into()),
                verified: None,
                agreement: 1.0,
                score_variance: 0.0,
                duration_us: 1,
            },
            Kind::Lifecycle {
                state: LifecycleState::Restart,
            },
        ];
        assert_eq!(kinds.len(), TYPES.len());
        for (kind, name) in kinds.iter().zip(TYPES) {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json["type"], *name);
            assert_eq!(kind.name(), *name);
            assert_eq!(&serde_json::from_value::<Kind>(json).unwrap(), kind);
        }
    }

    #[test]
    fn unknown_fields_and_types_are_refused_by_name() {
        let e = serde_json::from_str::<Event>(r#"{"source":"a","event":{"type":"merge","facts_new":1},"colour":1}"#);
        assert!(e.unwrap_err().to_string().contains("colour"));
        let e = serde_json::from_str::<Event>(r#"{"source":"a","event":{"type":"gossip"}}"#);
        assert!(e.unwrap_err().to_string().contains("gossip"));
        let e = serde_json::from_str::<Event>(r#"{"source":"a","event":{"type":"merge","facts":1}}"#);
        assert!(e.unwrap_err().to_string().contains("facts"));
    }
}
