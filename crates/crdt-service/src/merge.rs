//! Merging states, memoised by a canonical form of the inputs.
//!
//! Raw inputs are not canonical (the same state can be written many ways), so
//! every input is parsed and re-encoded canonically first. Then four cases are
//! told apart and counted: all inputs identical (no merge needed), a memo hit,
//! a merge whose result equals one input (it contained the others), and a plain
//! miss.

use crate::kinds::Kind;
use crate::types::CrdtType;
use bytes::Bytes;

use crdts::{GCounter, LWWReg, MVReg, Orswot, PNCounter, VClock};
use lru::LruCache;
use ramanujan_core::ReplicaState;
use serde::Serialize;
use serde_json::{Value, json};
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most states one merge takes.
pub const MAX_STATES: usize = 1024;

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
#[derive(Debug, Clone, Serialize)]
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
}

/// The merge service: a bounded memo of answers and its counters.
pub struct Merger {
    cache: Mutex<LruCache<[u8; 32], Bytes>>,
    capacity: usize,
    counts: [AtomicU64; 4],
}

/// Parsed inputs of one type, with their canonical encodings.
struct Inputs<K> {
    states: Vec<K>,
    encodings: Vec<Vec<u8>>,
}

fn parse_all<K: Kind>(crdt_type: CrdtType, states: Vec<Value>) -> Result<Inputs<K>, MergeError> {
    let mut parsed = Vec::with_capacity(states.len());
    let mut encodings = Vec::with_capacity(states.len());
    for (i, state) in states.into_iter().enumerate() {
        let state =
            K::parse(state).map_err(|e| MergeError(format!("state {i} is not a valid {}: {e}", crdt_type.name())))?;
        encodings.push(serde_json::to_vec(&state.canonical()).unwrap_or_default());
        parsed.push(state);
    }
    Ok(Inputs {
        states: parsed,
        encodings,
    })
}

/// The answer body of a merge.
fn answer<K: Kind>(crdt_type: CrdtType, state: &K) -> Bytes {
    let body = json!({
        "crdt_type": crdt_type.name(),
        "state": state.canonical(),
        "value": state.value(),
    });
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

impl Merger {
    /// A service whose memo holds at most `capacity` answers.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Merger {
            cache: Mutex::new(LruCache::new(NonZeroUsize::new(capacity).expect("at least one"))),
            capacity,
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

    fn cache(&self) -> std::sync::MutexGuard<'_, LruCache<[u8; 32], Bytes>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Merges two or more states of one type; the answer body and how it was found.
    pub fn merge(&self, crdt_type: &str, states: Vec<Value>) -> Result<(Bytes, Outcome), MergeError> {
        let Some(kind) = CrdtType::from_name(crdt_type) else {
            let known: Vec<&str> = CrdtType::ALL.iter().map(|t| t.name()).collect();
            return Err(MergeError(format!(
                "unknown crdt_type `{crdt_type}`; known: {}",
                known.join(", ")
            )));
        };
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
        match kind {
            CrdtType::GCounter => self.merge_kind::<GCounter<String>>(kind, states),
            CrdtType::PNCounter => self.merge_kind::<PNCounter<String>>(kind, states),
            CrdtType::LWWRegister => self.merge_kind::<LWWReg<Value, u64>>(kind, states),
            CrdtType::MVRegister => self.merge_kind::<MVReg<Value, String>>(kind, states),
            CrdtType::ORSet => self.merge_kind::<Orswot<String, String>>(kind, states),
            CrdtType::VectorClock => self.merge_kind::<VClock<String>>(kind, states),
            CrdtType::EGraph => self.merge_kind::<ReplicaState>(kind, states),
        }
    }

    fn merge_kind<K: Kind>(&self, kind: CrdtType, states: Vec<Value>) -> Result<(Bytes, Outcome), MergeError> {
        let Inputs { states, encodings } = parse_all::<K>(kind, states)?;
        if encodings.iter().all(|e| e == &encodings[0]) {
            self.count(Outcome::Identical);
            return Ok((answer(kind, &states[0]), Outcome::Identical));
        }
        // Merging is commutative: the key is the sorted multiset of inputs.
        let mut sorted: Vec<&Vec<u8>> = encodings.iter().collect();
        sorted.sort();
        let mut hasher = blake3::Hasher::new();
        hasher.update(kind.name().as_bytes());
        for e in &sorted {
            hasher.update(&(e.len() as u64).to_le_bytes());
            hasher.update(e);
        }
        let key: [u8; 32] = hasher.finalize().into();
        if let Some(body) = self.cache().get(&key).cloned() {
            self.count(Outcome::Hit);
            return Ok((body, Outcome::Hit));
        }
        let mut states = states.into_iter();
        let mut merged = states.next().expect("two or more states");
        for (i, state) in states.enumerate() {
            merged
                .check(&state)
                .map_err(|e| MergeError(format!("state {} cannot be merged: {e}", i + 1)))?;
            merged.merge(state);
        }
        let result = serde_json::to_vec(&merged.canonical()).unwrap_or_default();
        let outcome = if encodings.contains(&result) {
            Outcome::Contained
        } else {
            Outcome::Miss
        };
        let body = answer(kind, &merged);
        self.cache().put(key, body.clone());
        self.count(outcome);
        Ok((body, outcome))
    }

    /// The counters.
    pub fn stats(&self) -> MergeStats {
        let [identical, hits, contained, misses] = self.counts.each_ref().map(|c| c.load(Ordering::Relaxed));
        let looked_up = hits + contained + misses;
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
            entries: self.cache().len(),
            capacity: self.capacity,
        }
    }
}
