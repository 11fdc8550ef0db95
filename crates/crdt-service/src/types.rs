//! The type names on the wire and what `GET /crdt/types` says of each.

use serde::Serialize;
use serde_json::{Value, json};

/// A CRDT type the service knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrdtType {
    /// Grow-only counter (`crdts::GCounter`).
    GCounter,
    /// Increment/decrement counter (`crdts::PNCounter`).
    PNCounter,
    /// Last-writer-wins register (`crdts::LWWReg`).
    LWWRegister,
    /// Multi-value register (`crdts::MVReg`).
    MVRegister,
    /// Observed-remove set (`crdts::Orswot`).
    ORSet,
    /// Vector clock (`crdts::VClock`).
    VectorClock,
    /// The core's replicated e-graph.
    EGraph,
}

impl CrdtType {
    /// Every type, in the order `/crdt/types` lists them.
    pub const ALL: [CrdtType; 7] = [
        CrdtType::GCounter,
        CrdtType::PNCounter,
        CrdtType::LWWRegister,
        CrdtType::MVRegister,
        CrdtType::ORSet,
        CrdtType::VectorClock,
        CrdtType::EGraph,
    ];

    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            CrdtType::GCounter => "GCounter",
            CrdtType::PNCounter => "PNCounter",
            CrdtType::LWWRegister => "LWWRegister",
            CrdtType::MVRegister => "MVRegister",
            CrdtType::ORSet => "ORSet",
            CrdtType::VectorClock => "VectorClock",
            CrdtType::EGraph => "EGraph",
        }
    }

    /// The type of a wire name.
    pub fn from_name(name: &str) -> Option<CrdtType> {
        CrdtType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// What `/crdt/types` says of it.
    pub fn describe(self) -> TypeInfo {
        let (value, example) = match self {
            CrdtType::GCounter => (
                "the count, as a decimal string",
                json!({"inner": {"dots": {"a": 2, "b": 1}}}),
            ),
            CrdtType::PNCounter => (
                "the count, as a decimal string",
                json!({"p": {"inner": {"dots": {"a": 3}}}, "n": {"inner": {"dots": {"b": 1}}}}),
            ),
            CrdtType::LWWRegister => (
                "the value with the highest marker",
                json!({"val": "hello", "marker": 7}),
            ),
            CrdtType::MVRegister => (
                "the concurrent values, sorted",
                json!({"vals": [[{"dots": {"a": 1}}, "x"], [{"dots": {"b": 1}}, "y"]]}),
            ),
            CrdtType::ORSet => (
                "the members, sorted",
                json!({"clock": {"dots": {"a": 2}}, "entries": {"x": {"dots": {"a": 1}}, "y": {"dots": {"a": 2}}}, "deferred": {}}),
            ),
            CrdtType::VectorClock => ("the clock's counters", json!({"dots": {"a": 4, "b": 2}})),
            CrdtType::EGraph => (
                "term and equality counts and the digest",
                json!({"clock": {"counters": {}, "cloud": []}, "terms": {}, "equalities": []}),
            ),
        };
        TypeInfo {
            crdt_type: self.name(),
            merge: "POST /crdt/merge {\"crdt_type\": ..., \"states\": [s1, s2, ...]}",
            value,
            example,
        }
    }
}

/// One entry of `GET /crdt/types`.
#[derive(Debug, Clone, Serialize)]
pub struct TypeInfo {
    /// The wire name.
    pub crdt_type: &'static str,
    /// How to merge states of it.
    pub merge: &'static str,
    /// What the readable value of a merge is.
    pub value: &'static str,
    /// A valid state.
    pub example: Value,
}
