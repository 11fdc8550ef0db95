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
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: ReplicaState,
}

impl ReplicaStore for MemoryStore {
    fn load(&mut self) -> Result<ReplicaState, StoreError> {
        Ok(self.state.clone())
    }

    fn append(&mut self, delta: &ReplicaState) -> Result<(), StoreError> {
        self.state.merge(delta);
        Ok(())
    }

    /// Nothing is stored anywhere: 0.
    fn stored_bytes(&self) -> u64 {
        0
    }
}
