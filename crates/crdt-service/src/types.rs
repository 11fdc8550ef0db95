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
    CausalContext,
    /// The core's replicated e-graph.
    EGraph,
    /// A Yjs document read as `Y.Text` (yrs).
    TextCRDT,
    /// A Yjs document read as `Y.Map`: a JSON document (yrs).
    Map,
    /// A Yjs document read as `Y.Array` (yrs).
    Array,
}

impl CrdtType {
    /// Every type, in the order `/crdt/types` lists them.
    pub const ALL: [CrdtType; 10] = [
        CrdtType::TextCRDT,
        CrdtType::Map,
        CrdtType::Array,
        CrdtType::GCounter,
        CrdtType::PNCounter,
        CrdtType::LWWRegister,
        CrdtType::MVRegister,
        CrdtType::ORSet,
        CrdtType::CausalContext,
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
            CrdtType::CausalContext => "CausalContext",
            CrdtType::EGraph => "EGraph",
            CrdtType::TextCRDT => "TextCRDT",
            CrdtType::Map => "Map",
            CrdtType::Array => "Array",
        }
    }

    /// Whether states are Yjs documents (base64 v1 updates, with a `root`).
    pub fn is_yjs(self) -> bool {
        matches!(self, CrdtType::TextCRDT | CrdtType::Map | CrdtType::Array)
    }

    /// The type of a wire name.
    pub fn from_name(name: &str) -> Option<CrdtType> {
        CrdtType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// What `/crdt/types` says of it.
    pub fn describe(self) -> TypeInfo {
        const COUNTER_OPS: &str = r#"{"op": "increment", "by": n} (by defaults to 1), as `actor`"#;
        const WHOLE: &str =
            "`since`: a state of the type; the whole state unless `since` holds it (then the empty state)";
        const ABOVE: &str = "`since`: a state of the type; the counters above it";
        const YJS_DIFF: &str = "`since`: a base64 Yjs v1 state vector (a merge answers one); a base64 v1 update";
        let (value, operations, diff, example) = match self {
            CrdtType::GCounter => (
                "the count, as a decimal string",
                COUNTER_OPS,
                ABOVE,
                json!({"inner": {"dots": {"a": 2, "b": 1}}}),
            ),
            CrdtType::PNCounter => (
                "the count, as a decimal string",
                r#"{"op": "increment"|"decrement", "by": n}, as `actor`"#,
                ABOVE,
                json!({"p": {"inner": {"dots": {"a": 3}}}, "n": {"inner": {"dots": {"b": 1}}}}),
            ),
            CrdtType::LWWRegister => (
                "the value with the highest marker",
                r#"{"op": "set", "value": <JSON>, "marker": n} (an older marker is ignored; a used marker with another value is refused)"#,
                WHOLE,
                json!({"val": "hello", "marker": 7}),
            ),
            CrdtType::MVRegister => (
                "the concurrent values, sorted",
                r#"{"op": "write", "value": <JSON>}, as `actor`"#,
                WHOLE,
                json!({"vals": [[{"dots": {"a": 1}}, "x"], [{"dots": {"b": 1}}, "y"]]}),
            ),
            CrdtType::ORSet => (
                "the members, sorted",
                r#"{"op": "add", "member": m} as `actor`; {"op": "remove", "member": m}"#,
                WHOLE,
                json!({"clock": {"dots": {"a": 2}}, "entries": {"x": {"dots": {"a": 1}}, "y": {"dots": {"a": 2}}}, "deferred": {}}),
            ),
            CrdtType::CausalContext => (
                "the clock's counters",
                COUNTER_OPS,
                ABOVE,
                json!({"dots": {"a": 4, "b": 2}}),
            ),
            CrdtType::EGraph => (
                "term and equality counts and the digest",
                r#"{"op": "add", "expr": "(+ a b)"}, as `actor` (one event for all ops)"#,
                "`since`: a version clock (a state's `clock`); the facts it lacks",
                json!({"clock": {"counters": {}, "cloud": []}, "terms": {}, "equalities": []}),
            ),
            CrdtType::TextCRDT => (
                "the text of `root`",
                r#"{"op": "insert", "index": i, "text": s}; {"op": "delete", "index": i, "len": n} (UTF-16 units, as Yjs); `actor`: a client id (default: random)"#,
                YJS_DIFF,
                json!(YJS_TEXT_EXAMPLE),
            ),
            CrdtType::Map => (
                "the JSON object of `root`",
                r#"{"op": "set", "key": k, "value": <JSON>}; {"op": "remove", "key": k}; `actor`: a client id"#,
                YJS_DIFF,
                json!(YJS_MAP_EXAMPLE),
            ),
            CrdtType::Array => (
                "the JSON array of `root`",
                r#"{"op": "insert", "index": i, "values": [...]}; {"op": "push", "values": [...]}; {"op": "delete", "index": i, "len": n}; `actor`: a client id"#,
                YJS_DIFF,
                json!(YJS_ARRAY_EXAMPLE),
            ),
        };
        TypeInfo {
            crdt_type: self.name(),
            merge: if self.is_yjs() {
                r#"POST /crdt/merge {"crdt_type": ..., "states": [s1, s2, ...], "root": optional name}"#
            } else {
                r#"POST /crdt/merge {"crdt_type": ..., "states": [s1, s2, ...]}"#
            },
            apply: r#"POST /crdt/apply {"crdt_type": ..., "state": optional, "ops": [...], "actor": ..., "root": optional}"#,
            operations,
            diff,
            value,
            example,
        }
    }
}

/// `Y.Doc` with `getText("text")` holding "héllo 😀" (client 1), as `Y.encodeStateAsUpdate` gives it.
const YJS_TEXT_EXAMPLE: &str = "AQEBAAQBBHRleHQLaMOpbGxvIPCfmIAA";
/// `Y.Doc` with `getMap("map")` holding `{"k": 1}` (client 1).
const YJS_MAP_EXAMPLE: &str = "AQEBACgBA21hcAFrAX0BAA==";
/// `Y.Doc` with `getArray("array")` holding `[1, "two"]` (client 1).
const YJS_ARRAY_EXAMPLE: &str = "AQEBAAgBBWFycmF5An0BdwN0d28A";

/// One entry of `GET /crdt/types`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TypeInfo {
    /// The wire name.
    pub crdt_type: &'static str,
    /// How to merge states of it.
    pub merge: &'static str,
    /// How to apply operations to a state of it.
    pub apply: &'static str,
    /// The operations `/crdt/apply` takes.
    pub operations: &'static str,
    /// What `/crdt/diff` takes as `since` and answers.
    pub diff: &'static str,
    /// What the readable value of a merge is.
    pub value: &'static str,
    /// A valid state.
    pub example: Value,
}
