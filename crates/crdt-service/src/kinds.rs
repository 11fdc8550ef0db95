//! The CRDT types the service serves, each behind one trait: parse a state,
//! say what it contains canonically, merge, read, diff and apply operations.
//!
//! `GCounter`, `PNCounter`, `LWWRegister`, `MVRegister`, `ORSet` and
//! `VectorClock` are the `crdts` crate's types in their serde form, with string
//! actors; `EGraph` is the core's replica; `TextCRDT`, `Map` and `Array` are
//! Yjs documents ([`crate::yjs`]).

use crate::yjs::{Shape, YState, guarded};
use crdts::{CmRDT, CvRDT, Dot, GCounter, LWWReg, MVReg, Orswot, PNCounter, VClock};
use ramanujan_core::ReplicaState;
use ramanujan_core::clock::CausalContext;
use ramanujan_core::materialize::expr_terms;
use ramanujan_core::parse::parse_expr;
use ramanujan_core::replica::Facts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// One CRDT type as the service sees it.
pub trait Kind: Sized {
    /// Parses a state in its wire form.
    fn parse(state: Value) -> Result<Self, String>;
    /// The state with nothing in it.
    fn empty() -> Self;
    /// Whether [`Kind::identity`] is the state's JSON encoding.
    const IDENTITY_IS_STATE: bool = true;
    /// What the state contains, canonically: equal states give equal bytes.
    fn identity(&self) -> Vec<u8> {
        self.state_json()
    }
    /// The state's wire form, encoded as JSON.
    fn state_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.state()).unwrap_or_default()
    }
    /// Merges two or more states; a refusal names the state to blame.
    fn merge_all(states: &[Self]) -> Result<Self, (usize, String)>;
    /// The state in its wire form.
    fn state(&self) -> Value;
    /// The readable value (text, JSON, count, members, register value...);
    /// `root` names a Yjs document's shared type.
    fn value(&self, root: Option<&str>) -> Result<Value, String>;
    /// What a replica at `since` lacks, as a state to merge into it.
    fn diff(&self, since: Option<Value>) -> Result<Value, String>;
    /// The state after `ops` by `actor`, all of them or none.
    fn apply(self, ops: Vec<Value>, actor: Option<&str>, root: Option<&str>) -> Result<Self, String>;
    /// A Yjs state vector, for the types that have one.
    fn state_vector(&self) -> Option<String> {
        None
    }
}

fn from_value<T: DeserializeOwned>(state: Value) -> Result<T, String> {
    serde_json::from_value(state).map_err(|e| e.to_string())
}

fn to_value(v: &impl serde::Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Parses every operation first, so a bad one is refused before any is applied.
pub(crate) fn parse_ops<O: DeserializeOwned>(ops: Vec<Value>) -> Result<Vec<O>, String> {
    ops.into_iter()
        .enumerate()
        .map(|(i, op)| from_value(op).map_err(|e| format!("op {i}: {e}")))
        .collect()
}

fn actor_of(actor: Option<&str>) -> Result<String, String> {
    match actor {
        Some(a) if !a.is_empty() => Ok(a.to_string()),
        _ => Err("these operations need an `actor`: the replica's name".into()),
    }
}

/// Folds states pairwise with `merge`, after `check` says each step is safe.
fn merge_pairwise<K: Clone>(
    states: &[K],
    check: impl Fn(&K, &K) -> Result<(), String>,
    merge: impl Fn(&mut K, K),
) -> Result<K, (usize, String)> {
    let (first, rest) = states.split_first().ok_or((0, "no states".to_string()))?;
    let mut merged = first.clone();
    for (i, state) in rest.iter().enumerate() {
        check(&merged, state).map_err(|e| (i + 1, e))?;
        merge(&mut merged, state.clone());
    }
    Ok(merged)
}

/// `since`, parsed as a state of the same type (none: the empty state).
fn since_state<K: Kind>(since: Option<Value>) -> Result<K, String> {
    match since {
        None | Some(Value::Null) => Ok(K::empty()),
        Some(v) => K::parse(v).map_err(|e| format!("`since` is not a state of this type: {e}")),
    }
}

/// The counters of `clock` above those of `since`.
fn clock_above(clock: &VClock<String>, since: &VClock<String>) -> VClock<String> {
    clock.clone_without(since)
}

/// The `VClock` inside a `GCounter`, through its serde form (the field is private).
fn counter_clock(counter: &GCounter<String>) -> VClock<String> {
    from_value(to_value(counter)["inner"].clone()).unwrap_or_default()
}

/// A `GCounter` holding the counters of `counter` above `since`.
fn counter_above(counter: &GCounter<String>, since: &GCounter<String>) -> GCounter<String> {
    let mut delta = GCounter::new();
    for dot in clock_above(&counter_clock(counter), &counter_clock(since)).into_iter() {
        CmRDT::apply(&mut delta, dot);
    }
    delta
}

fn pn_parts(counter: &PNCounter<String>) -> (GCounter<String>, GCounter<String>) {
    let v = to_value(counter);
    (
        from_value(v["p"].clone()).unwrap_or_default(),
        from_value(v["n"].clone()).unwrap_or_default(),
    )
}

/// Implements the parts of [`Kind`] every `crdts` type shares: serde states
/// that are canonical as serialised, and merges through `CvRDT`.
macro_rules! crdts_common {
    () => {
        fn parse(state: Value) -> Result<Self, String> {
            from_value(state)
        }
        fn empty() -> Self {
            Self::default()
        }
    };
}

/// For the `crdts` types whose serde form has only ordered maps: it is
/// canonical as serialised, with no detour through a `Value`.
macro_rules! ordered_serde {
    () => {
        fn state_json(&self) -> Vec<u8> {
            serde_json::to_vec(self).unwrap_or_default()
        }
    };
}

/// `{"op": "increment", "by": n}` (by: 1 when left out).
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum CounterOp {
    Increment {
        #[serde(default = "one")]
        by: u64,
    },
    Decrement {
        #[serde(default = "one")]
        by: u64,
    },
}

fn one() -> u64 {
    1
}

/// A grow-only counter: `{"inner": {"dots": {"actor": n}}}`.
impl Kind for GCounter<String> {
    crdts_common!();
    ordered_serde!();
    fn merge_all(states: &[Self]) -> Result<Self, (usize, String)> {
        merge_pairwise(states, |_, _| Ok(()), CvRDT::merge)
    }
    fn state(&self) -> Value {
        to_value(self)
    }
    fn value(&self, _: Option<&str>) -> Result<Value, String> {
        Ok(json!(self.read().to_string()))
    }
    fn diff(&self, since: Option<Value>) -> Result<Value, String> {
        Ok(to_value(&counter_above(self, &since_state(since)?)))
    }
    fn apply(mut self, ops: Vec<Value>, actor: Option<&str>, _: Option<&str>) -> Result<Self, String> {
        let actor = actor_of(actor)?;
        for (i, op) in parse_ops::<CounterOp>(ops)?.into_iter().enumerate() {
            match op {
                CounterOp::Increment { by } => {
                    let op = self.inc_many(actor.clone(), by);
                    CmRDT::apply(&mut self, op);
                }
                CounterOp::Decrement { .. } => return Err(format!("op {i}: a GCounter only grows")),
            }
        }
        Ok(self)
    }
}

/// An increment/decrement counter: `{"p": <GCounter>, "n": <GCounter>}`.
impl Kind for PNCounter<String> {
    crdts_common!();
    ordered_serde!();
    fn merge_all(states: &[Self]) -> Result<Self, (usize, String)> {
        merge_pairwise(states, |_, _| Ok(()), CvRDT::merge)
    }
    fn state(&self) -> Value {
        to_value(self)
    }
    fn value(&self, _: Option<&str>) -> Result<Value, String> {
        Ok(json!(self.read().to_string()))
    }
    fn diff(&self, since: Option<Value>) -> Result<Value, String> {
        let (p, n) = pn_parts(self);
        let (since_p, since_n) = pn_parts(&since_state(since)?);
        Ok(json!({"p": counter_above(&p, &since_p), "n": counter_above(&n, &since_n)}))
    }
    fn apply(mut self, ops: Vec<Value>, actor: Option<&str>, _: Option<&str>) -> Result<Self, String> {
        let actor = actor_of(actor)?;
        for op in parse_ops::<CounterOp>(ops)? {
            let op = match op {
                CounterOp::Increment { by } => self.inc_many(actor.clone(), by),
                CounterOp::Decrement { by } => self.dec_many(actor.clone(), by),
            };
            CmRDT::apply(&mut self, op);
        }
        Ok(self)
    }
}

/// A vector clock: `{"dots": {"actor": n}}`.
impl Kind for VClock<String> {
    crdts_common!();
    ordered_serde!();
    fn merge_all(states: &[Self]) -> Result<Self, (usize, String)> {
        merge_pairwise(states, |_, _| Ok(()), CvRDT::merge)
    }
    fn state(&self) -> Value {
        to_value(self)
    }
    fn value(&self, _: Option<&str>) -> Result<Value, String> {
        Ok(to_value(&self.dots))
    }
    fn diff(&self, since: Option<Value>) -> Result<Value, String> {
        Ok(to_value(&clock_above(self, &since_state(since)?)))
    }
    fn apply(mut self, ops: Vec<Value>, actor: Option<&str>, _: Option<&str>) -> Result<Self, String> {
        let actor = actor_of(actor)?;
        for (i, op) in parse_ops::<CounterOp>(ops)?.into_iter().enumerate() {
            match op {
                CounterOp::Increment { by } => {
                    let counter = self.get(&actor).saturating_add(by);
                    CmRDT::apply(&mut self, Dot::new(actor.clone(), counter));
                }
                CounterOp::Decrement { .. } => return Err(format!("op {i}: a clock only grows")),
            }
        }
        Ok(self)
    }
}

/// `{"op": "add"|"remove", "member": ...}`.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum SetOp {
    Add { member: String },
    Remove { member: String },
}

/// An observed-remove set (`crdts::Orswot`): `{"clock": {"dots": ...},
/// "entries": {"member": {"dots": ...}}, "deferred": {}}`. Deferred removes
/// are keyed by clocks, which JSON object keys cannot carry, so states with
/// any do not parse.
impl Kind for Orswot<String, String> {
    crdts_common!();
    fn merge_all(states: &[Self]) -> Result<Self, (usize, String)> {
        merge_pairwise(states, |_, _| Ok(()), CvRDT::merge)
    }
    fn state(&self) -> Value {
        to_value(self)
    }
    fn value(&self, _: Option<&str>) -> Result<Value, String> {
        let mut members: Vec<String> = self.read().val.into_iter().collect();
        members.sort();
        Ok(json!(members))
    }
    /// The whole state, unless `since` already holds it (then the empty set):
    /// an observed-remove set has no smaller delta that merges safely.
    fn diff(&self, since: Option<Value>) -> Result<Value, String> {
        whole_unless_contained(self, since)
    }
    fn apply(mut self, ops: Vec<Value>, actor: Option<&str>, _: Option<&str>) -> Result<Self, String> {
        let ops = parse_ops::<SetOp>(ops)?;
        for op in ops {
            let op = match op {
                SetOp::Add { member } => self.add(member, self.read_ctx().derive_add_ctx(actor_of(actor)?)),
                SetOp::Remove { member } => {
                    let ctx = self.contains(&member).derive_rm_ctx();
                    self.rm(member, ctx)
                }
            };
            CmRDT::apply(&mut self, op);
        }
        Ok(self)
    }
}

/// `state` whole, or the empty state when merging it into `since` changes nothing.
fn whole_unless_contained<K: Kind + Clone>(state: &K, since: Option<Value>) -> Result<Value, String> {
    let since: K = since_state(since)?;
    let merged = K::merge_all(&[since.clone(), state.clone()]).map_err(|(_, e)| e)?;
    Ok(if merged.identity() == since.identity() {
        K::empty().state()
    } else {
        state.state()
    })
}

/// `{"op": "set", "value": <any JSON>, "marker": n}`.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum RegisterOp {
    Set { value: Value, marker: u64 },
}

/// A last-writer-wins register: `{"val": <any JSON>, "marker": n}`.
impl Kind for LWWReg<Value, u64> {
    crdts_common!();
    ordered_serde!();
    fn merge_all(states: &[Self]) -> Result<Self, (usize, String)> {
        merge_pairwise(
            states,
            |a, b| {
                a.validate_merge(b)
                    .map_err(|_| format!("two different values carry the same marker {}", b.marker))
            },
            CvRDT::merge,
        )
    }
    fn state(&self) -> Value {
        to_value(self)
    }
    fn value(&self, _: Option<&str>) -> Result<Value, String> {
        Ok(self.val.clone())
    }
    fn diff(&self, since: Option<Value>) -> Result<Value, String> {
        whole_unless_contained(self, since)
    }
    fn apply(mut self, ops: Vec<Value>, _: Option<&str>, _: Option<&str>) -> Result<Self, String> {
        for (i, op) in parse_ops::<RegisterOp>(ops)?.into_iter().enumerate() {
            let RegisterOp::Set { value, marker } = op;
            self.validate_update(&value, &marker)
                .map_err(|_| format!("op {i}: marker {marker} already carries another value"))?;
            self.update(value, marker);
        }
        Ok(self)
    }
}

/// `{"op": "write", "value": <any JSON>}`.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum WriteOp {
    Write { value: Value },
}

/// A multi-value register: `{"vals": [[{"dots": {...}}, <any JSON>], ...]}`.
impl Kind for MVReg<Value, String> {
    crdts_common!();
    fn merge_all(states: &[Self]) -> Result<Self, (usize, String)> {
        merge_pairwise(states, |_, _| Ok(()), CvRDT::merge)
    }
    fn state(&self) -> Value {
        // Concurrent values are a set: order them.
        let mut state = to_value(self);
        if let Some(vals) = state.get_mut("vals").and_then(Value::as_array_mut) {
            vals.sort_by_cached_key(|v| v.to_string());
        }
        state
    }
    fn value(&self, _: Option<&str>) -> Result<Value, String> {
        let mut vals: Vec<Value> = self.read().val;
        vals.sort_by_cached_key(|v| v.to_string());
        Ok(Value::Array(vals))
    }
    fn diff(&self, since: Option<Value>) -> Result<Value, String> {
        whole_unless_contained(self, since)
    }
    fn apply(mut self, ops: Vec<Value>, actor: Option<&str>, _: Option<&str>) -> Result<Self, String> {
        let actor = actor_of(actor)?;
        for op in parse_ops::<WriteOp>(ops)? {
            let WriteOp::Write { value } = op;
            let ctx = self.read_ctx().derive_add_ctx(actor.clone());
            let op = self.write(value, ctx);
            CmRDT::apply(&mut self, op);
        }
        Ok(self)
    }
}

/// `{"op": "add", "expr": "(+ a b)"}`: records the expression's terms.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum EGraphOp {
    Add { expr: String },
}

/// The core's replicated e-graph (its serde form, as `/agent/{id}/egraph` shows).
impl Kind for ReplicaState {
    fn parse(state: Value) -> Result<Self, String> {
        from_value(state)
    }
    fn empty() -> Self {
        ReplicaState::new()
    }
    fn state_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
    fn merge_all(states: &[Self]) -> Result<Self, (usize, String)> {
        let (first, rest) = states.split_first().ok_or((0, "no states".to_string()))?;
        let mut merged = first.clone();
        for state in rest {
            merged.merge(state);
        }
        Ok(merged)
    }
    fn state(&self) -> Value {
        to_value(self)
    }
    fn value(&self, _: Option<&str>) -> Result<Value, String> {
        Ok(json!({
            "terms": self.term_count(),
            "equalities": self.equality_count(),
            "digest": self.digest(),
        }))
    }
    /// `since` is a replica's version clock (its state's `clock`).
    fn diff(&self, since: Option<Value>) -> Result<Value, String> {
        let clock: CausalContext = match since {
            None | Some(Value::Null) => CausalContext::default(),
            Some(v) => from_value(v).map_err(|e| format!("`since` is not a version clock: {e}"))?,
        };
        Ok(to_value(&self.delta_since(&clock)))
    }
    fn apply(mut self, ops: Vec<Value>, actor: Option<&str>, _: Option<&str>) -> Result<Self, String> {
        let actor = actor_of(actor)?;
        let mut facts = Facts::default();
        for (i, op) in parse_ops::<EGraphOp>(ops)?.into_iter().enumerate() {
            let EGraphOp::Add { expr } = op;
            let expr = parse_expr(&expr).map_err(|e| format!("op {i}: {e}"))?;
            expr_terms(&expr, &mut facts);
        }
        self.record(&actor, facts).map_err(|e| e.to_string())?;
        Ok(self)
    }
}

/// Implements [`Kind`] for a Yjs document read as one shape.
macro_rules! yjs_kind {
    ($(#[$doc:meta])* $name:ident, $shape:expr) => {
        $(#[$doc])*
        pub struct $name(pub YState);

        impl Kind for $name {
            const IDENTITY_IS_STATE: bool = false;
            fn parse(state: Value) -> Result<Self, String> {
                guarded(|| YState::parse(state)).map($name)
            }
            fn empty() -> Self {
                $name(YState::empty())
            }
            fn identity(&self) -> Vec<u8> {
                self.0.identity().to_vec()
            }
            fn merge_all(states: &[Self]) -> Result<Self, (usize, String)> {
                YState::merge_all(states.iter().map(|s| &s.0)).map($name)
            }
            fn state(&self) -> Value {
                Value::String(self.0.encoded())
            }
            fn value(&self, root: Option<&str>) -> Result<Value, String> {
                guarded(|| self.0.value($shape, root))
            }
            fn diff(&self, since: Option<Value>) -> Result<Value, String> {
                guarded(|| self.0.diff(since))
            }
            fn apply(self, ops: Vec<Value>, actor: Option<&str>, root: Option<&str>) -> Result<Self, String> {
                guarded(|| self.0.apply($shape, ops, actor, root)).map($name)
            }
            fn state_vector(&self) -> Option<String> {
                Some(self.0.state_vector())
            }
        }
    };
}

yjs_kind!(
    /// A Yjs document read as `Y.Text`.
    YText,
    Shape::Text
);
yjs_kind!(
    /// A Yjs document read as `Y.Map`.
    YMap,
    Shape::Map
);
yjs_kind!(
    /// A Yjs document read as `Y.Array`.
    YArray,
    Shape::Array
);
