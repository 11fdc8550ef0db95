//! Merging states, memoised by a canonical form of the inputs.
//!
//! Raw inputs are not canonical (the same state can be written many ways), so
//! every input is parsed and re-encoded canonically first. Then four cases are
//! told apart and counted: all inputs identical (no merge needed), a memo hit,
//! a merge whose result equals one input (it contained the others), and a plain
//! miss.

use crate::kinds::{Kind, YArray, YMap, YText};
use crate::types::CrdtType;
use bytes::Bytes;
use crdts::{GCounter, LWWReg, MVReg, Orswot, PNCounter, VClock};
use ramanujan_core::ReplicaState;
use ramanujan_http::MemoCache;
use serde::Serialize;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most states one merge takes.
pub const MAX_STATES: usize = 1024;

/// Most operations one apply takes.
pub const MAX_OPS: usize = 10_000;

/// How a merge was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every input was the same state.
    Identical,
    /// From the memo cache.
    Hit,
    /// Computed; the result was one of the inputs.
    Contained,
    /// Computed.
    Miss,
}

impl Outcome {
    /// The name, as in the `x-crdt-merge` header.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Identical => "identical",
            Outcome::Hit => "hit",
            Outcome::Contained => "contained",
            Outcome::Miss => "miss",
        }
    }
}

/// Why a merge was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeError(pub String);

/// Counters for `GET /crdt/stats`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = CrdtMergeStats)]
pub struct MergeStats {
    /// Merges answered without merging: all inputs identical.
    pub identical: u64,
    /// Merges answered from the memo cache.
    pub hits: u64,
    /// Merges computed whose result was one of the inputs.
    pub contained: u64,
    /// Other merges computed.
    pub misses: u64,
    /// `hits / (hits + contained + misses)`: of the merges that needed the cache, how many it answered.
    pub hit_ratio: f64,
    /// Answers the cache holds.
    pub entries: usize,
    /// Most answers it holds.
    pub capacity: usize,
    /// Bytes of answers it holds.
    pub bytes: usize,
    /// Most bytes of answers it holds.
    pub max_bytes: usize,
}

/// The merge service: a bounded memo of answers and its counters.
pub struct Merger {
    cache: MemoCache,
    counts: [AtomicU64; 4],
}

/// Runs `$body` with `$K` bound to the Rust type behind `$kind`.
macro_rules! with_kind {
    ($kind:expr, $K:ident => $body:expr) => {
        match $kind {
            CrdtType::GCounter => {
                type $K = GCounter<String>;
                $body
            }
            CrdtType::PNCounter => {
                type $K = PNCounter<String>;
                $body
            }
            CrdtType::LWWRegister => {
                type $K = LWWReg<Value, u64>;
                $body
            }
            CrdtType::MVRegister => {
                type $K = MVReg<Value, String>;
                $body
            }
            CrdtType::ORSet => {
                type $K = Orswot<String, String>;
                $body
            }
            CrdtType::CausalContext => {
                type $K = VClock<String>;
                $body
            }
            CrdtType::EGraph => {
                type $K = ReplicaState;
                $body
            }
            CrdtType::TextCRDT => {
                type $K = YText;
                $body
            }
            CrdtType::Map => {
                type $K = YMap;
                $body
            }
            CrdtType::Array => {
                type $K = YArray;
                $body
            }
        }
    };
}

/// A state's canonical content ([`Kind::identity`]): equal states, however
/// encoded, give equal bytes.
pub fn identity(crdt_type: &str, state: Value) -> Result<Vec<u8>, MergeError> {
    let kind = self::crdt_type(crdt_type)?;
    with_kind!(kind, K => Ok(parse_state::<K>(kind, state, "state")?.identity()))
}

/// The merge itself, [`Kind::merge_all`], with no shortcut and no cache: the
/// merged state in its wire form. [`Merger::merge`] answers this (or a cached
/// copy of it, or the input when all inputs are one state); the merge laws
/// are checked against it.
pub fn merge_uncached(crdt_type: &str, states: Vec<Value>) -> Result<Value, MergeError> {
    let kind = self::crdt_type(crdt_type)?;
    with_kind!(kind, K => Ok(merge_parsed(&parse_states::<K>(kind, states)?)?.state()))
}

/// Every input parsed, `state {i}` named in a refusal.
fn parse_states<K: Kind>(kind: CrdtType, states: Vec<Value>) -> Result<Vec<K>, MergeError> {
    states
        .into_iter()
        .enumerate()
        .map(|(i, state)| parse_state(kind, state, &format!("state {i}")))
        .collect()
}

/// [`Kind::merge_all`], a refusal naming the state to blame.
fn merge_parsed<K: Kind>(parsed: &[K]) -> Result<K, MergeError> {
    K::merge_all(parsed).map_err(|(i, e)| MergeError(format!("state {i} cannot be merged: {e}")))
}

/// The type of a wire name, or a refusal listing the known ones.
fn crdt_type(name: &str) -> Result<CrdtType, MergeError> {
    CrdtType::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = CrdtType::ALL.iter().map(|t| t.name()).collect();
        MergeError(format!("unknown crdt_type `{name}`; known: {}", known.join(", ")))
    })
}

/// `root` is only for the Yjs types.
fn check_root(kind: CrdtType, root: Option<&str>) -> Result<(), MergeError> {
    match root {
        Some(_) if !kind.is_yjs() => Err(MergeError(format!(
            "`root` names a Yjs document's shared type; a {} has none",
            kind.name()
        ))),
        Some("") => Err(MergeError("`root` is empty".into())),
        _ => Ok(()),
    }
}

fn parse_state<K: Kind>(kind: CrdtType, state: Value, which: &str) -> Result<K, MergeError> {
    K::parse(state).map_err(|e| MergeError(format!("{which} is not a valid {}: {e}", kind.name())))
}

/// The answer body for `state`: the state, its readable value and (Yjs) its state vector.
fn answer<K: Kind>(kind: CrdtType, state: &K, root: Option<&str>) -> Result<Bytes, MergeError> {
    answer_with(kind, state, &state.state_json(), root)
}

/// [`answer`] with the state's JSON already at hand, spliced in as it is.
///
/// Written out rather than serialised through a struct holding a
/// `serde_json::value::RawValue`: that was tried (2026-12-04) and made a
/// two-GCounter merge 20% slower (2.01 → 2.43 µs, `cargo bench -p crdt-service
/// --bench merge -- gcounter_merge`), from boxing each state's JSON and serde's
/// raw-value detour; the state is encoded once here and its bytes are its identity.
/// The answer of a merge or an apply, as [`answer_with`] writes it (by hand,
/// for speed; a test reads answers back into this).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrdtAnswer {
    /// The type.
    pub crdt_type: String,
    /// The state, in the type's wire form (`GET /crdt/types`).
    pub state: Value,
    /// For Yjs types: the state's base64 v1 state vector (what `/crdt/diff` takes as `since`).
    #[serde(default)]
    pub state_vector: Option<String>,
    /// The readable value (`GET /crdt/types` says what it is for each type).
    pub value: Value,
}

/// The answer of a diff: what a replica at `since` lacks.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrdtDelta {
    /// The type.
    pub crdt_type: String,
    /// The delta: a state of the type to merge (a base64 v1 update for Yjs types).
    pub update: Value,
}

fn answer_with<K: Kind>(kind: CrdtType, state: &K, state_json: &[u8], root: Option<&str>) -> Result<Bytes, MergeError> {
    let value = state.value(root).map_err(MergeError)?;
    let mut body = Vec::with_capacity(state_json.len() + 96);
    body.extend_from_slice(b"{\"crdt_type\":\"");
    body.extend_from_slice(kind.name().as_bytes());
    body.extend_from_slice(b"\",\"state\":");
    body.extend_from_slice(state_json);
    if let Some(sv) = state.state_vector() {
        body.extend_from_slice(b",\"state_vector\":");
        serde_json::to_writer(&mut body, &sv).map_err(|e| MergeError(e.to_string()))?;
    }
    body.extend_from_slice(b",\"value\":");
    serde_json::to_writer(&mut body, &value).map_err(|e| MergeError(e.to_string()))?;
    body.push(b'}');
    Ok(Bytes::from(body))
}

impl Merger {
    /// A service whose memo holds at most `capacity` answers (and at most
    /// [`ramanujan_http::memo::DEFAULT_MAX_BYTES`] of them).
    pub fn new(capacity: usize) -> Self {
        Self::with_cache_bytes(capacity, ramanujan_http::memo::DEFAULT_MAX_BYTES)
    }

    /// A service whose memo holds at most `capacity` answers and `max_bytes`
    /// bytes of them (`CACHE_SIZE_MB`).
    pub fn with_cache_bytes(capacity: usize, max_bytes: usize) -> Self {
        Merger {
            cache: MemoCache::with_max_bytes(capacity, max_bytes),
            counts: Default::default(),
        }
    }

    fn count(&self, outcome: Outcome) {
        let i = match outcome {
            Outcome::Identical => 0,
            Outcome::Hit => 1,
            Outcome::Contained => 2,
            Outcome::Miss => 3,
        };
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Merges two or more states of one type; the answer body and how it was found.
    /// `root` names the shared type a Yjs document is read as.
    pub fn merge(
        &self,
        crdt_type: &str,
        states: Vec<Value>,
        root: Option<&str>,
    ) -> Result<(Bytes, Outcome), MergeError> {
        let kind = self::crdt_type(crdt_type)?;
        check_root(kind, root)?;
        if states.len() < 2 {
            return Err(MergeError(format!(
                "a merge takes two or more states, not {}",
                states.len()
            )));
        }
        if states.len() > MAX_STATES {
            return Err(MergeError(format!(
                "a merge takes at most {MAX_STATES} states, not {}",
                states.len()
            )));
        }
        with_kind!(kind, K => self.merge_kind::<K>(kind, states, root))
    }

    fn merge_kind<K: Kind>(
        &self,
        kind: CrdtType,
        states: Vec<Value>,
        root: Option<&str>,
    ) -> Result<(Bytes, Outcome), MergeError> {
        let parsed: Vec<K> = parse_states(kind, states)?;
        let identities: Vec<Vec<u8>> = parsed.iter().map(K::identity).collect();
        if identities.iter().all(|e| e == &identities[0]) {
            // One state, perhaps encoded differently (when the identity is
            // not the encoding, as for Yjs): answer the same encoding
            // whatever the order of the inputs.
            let (chosen, state_json) = if K::IDENTITY_IS_STATE {
                (&parsed[0], parsed[0].state_json())
            } else {
                parsed
                    .iter()
                    .map(|s| (s, s.state_json()))
                    .min_by(|a, b| a.1.cmp(&b.1))
                    .expect("two or more states")
            };
            let body = self.readable(kind, &parsed, chosen, &state_json, root)?;
            self.count(Outcome::Identical);
            return Ok((body, Outcome::Identical));
        }
        // Merging is commutative: the key is the sorted multiset of inputs.
        let mut sorted: Vec<&Vec<u8>> = identities.iter().collect();
        sorted.sort();
        let mut hasher = blake3::Hasher::new();
        hasher.update(kind.name().as_bytes());
        if let Some(root) = root {
            hasher.update(&(root.len() as u64).to_le_bytes());
            hasher.update(root.as_bytes());
        }
        for e in &sorted {
            hasher.update(&(e.len() as u64).to_le_bytes());
            hasher.update(e);
        }
        let key: [u8; 32] = hasher.finalize().into();
        if let Some(body) = self.cache.get(&key) {
            self.count(Outcome::Hit);
            return Ok((body, Outcome::Hit));
        }
        let merged = merge_parsed(&parsed)?;
        let state_json = merged.state_json();
        let body = self.readable(kind, &parsed, &merged, &state_json, root)?;
        let identity = if K::IDENTITY_IS_STATE {
            state_json
        } else {
            merged.identity()
        };
        let outcome = if identities.contains(&identity) {
            Outcome::Contained
        } else {
            Outcome::Miss
        };
        self.cache.put(key, body.clone());
        self.count(outcome);
        Ok((body, outcome))
    }

    /// The answer for `merged`; when its value cannot be read (a Yjs root of
    /// the wrong type), the error names the first input that is to blame.
    fn readable<K: Kind>(
        &self,
        kind: CrdtType,
        inputs: &[K],
        merged: &K,
        state_json: &[u8],
        root: Option<&str>,
    ) -> Result<Bytes, MergeError> {
        answer_with(kind, merged, state_json, root).map_err(|MergeError(e)| {
            let blamed = inputs
                .iter()
                .enumerate()
                .find_map(|(i, s)| s.value(root).err().map(|e| (i, e)));
            match blamed {
                Some((i, own)) => MergeError(format!("state {i}: {own}")),
                None => MergeError(format!("the states disagree: {e}")),
            }
        })
    }

    /// What a replica at `since` lacks of `state`: `{"crdt_type", "update"}`.
    pub fn diff(&self, crdt_type: &str, state: Value, since: Option<Value>) -> Result<Bytes, MergeError> {
        let kind = self::crdt_type(crdt_type)?;
        with_kind!(kind, K => {
            let state: K = parse_state(kind, state, "`state`")?;
            let update = state.diff(since).map_err(MergeError)?;
            let body = CrdtDelta { crdt_type: kind.name().to_string(), update };
            Ok(Bytes::from(serde_json::to_vec(&body).unwrap_or_default()))
        })
    }

    /// `state` (none: the empty state) after `ops` by `actor`, all or none; answered as a merge is.
    pub fn apply(
        &self,
        crdt_type: &str,
        state: Option<Value>,
        ops: Vec<Value>,
        actor: Option<&str>,
        root: Option<&str>,
    ) -> Result<Bytes, MergeError> {
        let kind = self::crdt_type(crdt_type)?;
        check_root(kind, root)?;
        if ops.len() > MAX_OPS {
            return Err(MergeError(format!("at most {MAX_OPS} ops at once, not {}", ops.len())));
        }
        with_kind!(kind, K => {
            let state: K = match state {
                None | Some(Value::Null) => K::empty(),
                Some(state) => parse_state(kind, state, "`state`")?,
            };
            let state = state.apply(ops, actor, root).map_err(MergeError)?;
            answer(kind, &state, root)
        })
    }

    /// The memo's counters as every memo reports them: a hit is a merge
    /// answered from it, a miss one computed (its result one of the inputs
    /// or not); merges of identical inputs are neither.
    pub fn cache_stats(&self) -> ramanujan_http::memo::CacheStats {
        let stats = self.stats();
        ramanujan_http::memo::CacheStats {
            capacity: stats.capacity,
            max_bytes: stats.max_bytes,
            entries: stats.entries,
            bytes: stats.bytes,
            hits: stats.hits,
            misses: stats.contained + stats.misses,
            hit_ratio: stats.hit_ratio,
        }
    }

    /// The counters.
    pub fn stats(&self) -> MergeStats {
        let [identical, hits, contained, misses] = self.counts.each_ref().map(|c| c.load(Ordering::Relaxed));
        let looked_up = hits + contained + misses;
        let cache = self.cache.stats();
        MergeStats {
            identical,
            hits,
            contained,
            misses,
            hit_ratio: if looked_up == 0 {
                0.0
            } else {
                hits as f64 / looked_up as f64
            },
            entries: cache.entries,
            capacity: cache.capacity,
            bytes: cache.bytes,
            max_bytes: cache.max_bytes,
        }
    }
}
