//! Where an agent keeps its replica across restarts.
//!
//! A store is an append-only log of deltas: appending is durable when it returns,
//! loading merges everything appended. Because merge is a set union, a store may
//! compact its log (or hold duplicates) at will without changing what loads. The
//! native host uses redb; Spin's key-value store or a server database can
//! implement the same trait.

use ramanujan_core::replica::ReplicaState;

/// Why a store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("replica store: {0}")]
pub struct StoreError(pub String);

/// Durable storage for one agent's replica.
pub trait ReplicaStore: Send + Sync {
    /// Everything appended so far, merged (empty for a new store).
    fn load(&mut self) -> Result<ReplicaState, StoreError>;
    /// Appends a delta; durable once this returns `Ok`.
    fn append(&mut self, delta: &ReplicaState) -> Result<(), StoreError>;
    /// Bytes the store occupies (for reports).
    fn stored_bytes(&self) -> u64;
}

/// A store that forgets everything when the process ends: `--in-memory` runs and tests.
/// It keeps the appended deltas encoded (MessagePack), as a log, not a second
/// merged replica: appending costs an encoding instead of a copy of every fact,
/// and the log takes a fraction of the memory of the replica it restores.
#[derive(Debug, Default)]
pub struct MemoryStore {
    log: Vec<Vec<u8>>,
}

impl ReplicaStore for MemoryStore {
    fn load(&mut self) -> Result<ReplicaState, StoreError> {
        let mut state = ReplicaState::new();
        for (i, bytes) in self.log.iter().enumerate() {
            let delta: ReplicaState =
                rmp_serde::from_slice(bytes).map_err(|e| StoreError(format!("record {i}: {e}")))?;
            state.merge(&delta);
        }
        Ok(state)
    }

    fn append(&mut self, delta: &ReplicaState) -> Result<(), StoreError> {
        let bytes = rmp_serde::to_vec_named(delta).map_err(|e| StoreError(e.to_string()))?;
        self.log.push(bytes);
        Ok(())
    }

    /// The encoded log's bytes, in memory.
    fn stored_bytes(&self) -> u64 {
        self.log.iter().map(|b| b.len() as u64).sum()
    }
}
