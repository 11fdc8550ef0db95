//! The CRDT types the service merges, each behind one small trait: parse a
//! state, check and merge, give a canonical form and a readable value.

use crdts::{CvRDT, GCounter, LWWReg, MVReg, Orswot, PNCounter, VClock};
use ramanujan_core::ReplicaState;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// One CRDT type as the service sees it.
pub trait Kind: Sized {
    /// Parses a state (serde form of the underlying type).
    fn parse(state: Value) -> Result<Self, String>;
    /// Why merging `other` into `self` would be unsafe, if it would.
    fn check(&self, other: &Self) -> Result<(), String>;
    /// Merges `other` into `self`.
    fn merge(&mut self, other: Self);
    /// The state in a canonical form: equal states give equal values.
    fn canonical(&self) -> Value;
    /// The readable value (count, register value, clock, ...).
    fn value(&self) -> Value;
}

fn from_value<T: DeserializeOwned>(state: Value) -> Result<T, String> {
    serde_json::from_value(state).map_err(|e| e.to_string())
}

fn to_value(v: &impl serde::Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Implements [`Kind`] for a `crdts` type whose serde form is already
/// canonical (ordered maps) and whose merge is always safe.
macro_rules! plain_cvrdt {
    ($(#[$doc:meta])* $ty:ty, |$s:ident| $value:expr) => {
        $(#[$doc])*
        impl Kind for $ty {
            fn parse(state: Value) -> Result<Self, String> {
                from_value(state)
            }
            fn check(&self, _: &Self) -> Result<(), String> {
                Ok(())
            }
            fn merge(&mut self, other: Self) {
                CvRDT::merge(self, other)
            }
            fn canonical(&self) -> Value {
                to_value(self)
            }
            fn value(&self) -> Value {
                let $s = self;
                $value
            }
        }
    };
}

plain_cvrdt!(
    /// A grow-only counter: `{"inner": {"dots": {"actor": n}}}`.
    GCounter<String>,
    |s| json!(s.read().to_string())
);

plain_cvrdt!(
    /// An increment/decrement counter: `{"p": <GCounter>, "n": <GCounter>}`.
    PNCounter<String>,
    |s| json!(s.read().to_string())
);

plain_cvrdt!(
    /// A vector clock: `{"dots": {"actor": n}}`.
    VClock<String>,
    |s| to_value(&s.dots)
);

plain_cvrdt!(
    /// An observed-remove set (`crdts::Orswot`): `{"clock": {"dots": ...},
    /// "entries": {"member": {"dots": ...}}, "deferred": {}}`. Deferred removes
    /// are keyed by clocks, which JSON object keys cannot carry, so states with
    /// any do not parse.
    Orswot<String, String>,
    |s| {
        let mut members: Vec<String> = s.read().val.into_iter().collect();
        members.sort();
        json!(members)
    }
);

/// A last-writer-wins register: `{"val": <any JSON>, "marker": n}`.
impl Kind for LWWReg<Value, u64> {
    fn parse(state: Value) -> Result<Self, String> {
        from_value(state)
    }
    fn check(&self, other: &Self) -> Result<(), String> {
        self.validate_merge(other)
            .map_err(|_| format!("two different values carry the same marker {}", other.marker))
    }
    fn merge(&mut self, other: Self) {
        CvRDT::merge(self, other)
    }
    fn canonical(&self) -> Value {
        to_value(self)
    }
    fn value(&self) -> Value {
        self.val.clone()
    }
}

/// A multi-value register: `{"vals": [[{"dots": {...}}, <any JSON>], ...]}`.
impl Kind for MVReg<Value, String> {
    fn parse(state: Value) -> Result<Self, String> {
        from_value(state)
    }
    fn check(&self, _: &Self) -> Result<(), String> {
        Ok(())
    }
    fn merge(&mut self, other: Self) {
        CvRDT::merge(self, other)
    }
    fn canonical(&self) -> Value {
        // Concurrent values are a set: order them.
        let mut state = to_value(self);
        if let Some(vals) = state.get_mut("vals").and_then(Value::as_array_mut) {
            vals.sort_by_cached_key(|v| v.to_string());
        }
        state
    }
    fn value(&self) -> Value {
        let mut vals: Vec<Value> = self.read().val;
        vals.sort_by_cached_key(|v| v.to_string());
        Value::Array(vals)
    }
}

/// The core's replicated e-graph (its serde form, as `/agent/{id}/egraph` shows).
impl Kind for ReplicaState {
    fn parse(state: Value) -> Result<Self, String> {
        from_value(state)
    }
    fn check(&self, _: &Self) -> Result<(), String> {
        Ok(())
    }
    fn merge(&mut self, other: Self) {
        ReplicaState::merge(self, &other);
    }
    fn canonical(&self) -> Value {
        to_value(self)
    }
    fn value(&self) -> Value {
        json!({
            "terms": self.term_count(),
            "equalities": self.equality_count(),
            "digest": self.digest(),
        })
    }
}
