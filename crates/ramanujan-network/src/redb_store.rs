//! The native replica store: a redb database file per agent.

use ramanujan_agent::store::{ReplicaStore, StoreError};
use ramanujan_core::replica::ReplicaState;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::{Path, PathBuf};

/// Appended deltas by append number: a format byte, then the delta.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("replica_log");

/// Format byte: the delta as JSON, deflated (its hex keys compress about 3:1).
const DEFLATE_JSON: u8 = 1;

fn encode(delta: &ReplicaState, level: flate2::Compression) -> Result<Vec<u8>, StoreError> {
    let mut out = flate2::write::DeflateEncoder::new(vec![DEFLATE_JSON], level);
    serde_json::to_writer(&mut out, delta).map_err(fail)?;
    out.finish().map_err(fail)
}

fn decode(bytes: &[u8]) -> Result<ReplicaState, String> {
    match bytes.split_first() {
        Some((&DEFLATE_JSON, rest)) => {
            let json = flate2::read::DeflateDecoder::new(rest);
            serde_json::from_reader(std::io::BufReader::new(json)).map_err(|e| e.to_string())
        }
        Some((format, _)) => Err(format!("unknown record format {format}")),
        None => Err("empty record".into()),
    }
}

/// Appends after which the log is folded.
const COMPACT_AFTER: u64 = 256;

/// Facts per record of a folded log.
const FACTS_PER_RECORD: usize = 512;

fn fail(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// A replica log in a redb file; every append is one durable transaction.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    next: u64,
    compact_after: u64,
}

impl RedbStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let db = Database::create(path).map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(fail)?;
        let next = {
            let table = txn.open_table(LOG).map_err(fail)?;
            table.last().map_err(fail)?.map_or(0, |(k, _)| k.value() + 1)
        };
        txn.commit().map_err(fail)?;
        Ok(RedbStore {
            db,
            path: path.to_path_buf(),
            next,
            compact_after: next + COMPACT_AFTER,
        })
    }

    /// The store of agent `id` in a data directory: `{dir}/{id}.redb`.
    pub fn for_agent(dir: &Path, id: &str) -> Result<Self, StoreError> {
        Self::open(&dir.join(format!("{id}.redb")))
    }

    /// Records in the log.
    pub fn records(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(fail)?;
        let table = txn.open_table(LOG).map_err(fail)?;
        table.len().map_err(fail)
    }

    /// Folds the log into records holding the merged state, a page of facts
    /// each (small records waste less of the file than one big one).
    pub fn compact(&mut self) -> Result<(), StoreError> {
        let state = self.load()?;
        let parts = state.split(FACTS_PER_RECORD);
        let txn = self.db.begin_write().map_err(fail)?;
        {
            let mut table = txn.open_table(LOG).map_err(fail)?;
            table.retain(|_, _| false).map_err(fail)?;
            for (i, part) in parts.iter().enumerate() {
                table
                    .insert(i as u64, encode(part, flate2::Compression::default())?.as_slice())
                    .map_err(fail)?;
            }
        }
        txn.commit().map_err(fail)?;
        self.next = parts.len() as u64;
        self.compact_after = self.next + COMPACT_AFTER;
        // Give the freed pages back to the file system.
        while self.db.compact().map_err(fail)? {}
        Ok(())
    }
}

impl ReplicaStore for RedbStore {
    fn load(&mut self) -> Result<ReplicaState, StoreError> {
        let txn = self.db.begin_read().map_err(fail)?;
        let table = txn.open_table(LOG).map_err(fail)?;
        let mut state = ReplicaState::new();
        for row in table.iter().map_err(fail)? {
            let (key, value) = row.map_err(fail)?;
            let delta = decode(value.value())
                .map_err(|e| StoreError(format!("record {} of {}: {e}", key.value(), self.path.display())))?;
            state.merge(&delta);
        }
        Ok(state)
    }

    fn append(&mut self, delta: &ReplicaState) -> Result<(), StoreError> {
        // Appends are on the hot path: compress fast; folding compresses harder.
        let bytes = encode(delta, flate2::Compression::fast())?;
        let txn = self.db.begin_write().map_err(fail)?;
        {
            let mut table = txn.open_table(LOG).map_err(fail)?;
            table.insert(self.next, bytes.as_slice()).map_err(fail)?;
        }
        txn.commit().map_err(fail)?;
        self.next += 1;
        if self.next > self.compact_after {
            self.compact()?;
        }
        Ok(())
    }

    fn stored_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ramanujan_core::materialize::expr_terms;
    use ramanujan_core::replica::Facts;

    fn delta_of(replica: &mut ReplicaState, agent: &str, expr: &str) -> ReplicaState {
        let mut facts = Facts::default();
        expr_terms(&expr.parse().unwrap(), &mut facts);
        replica.record(agent, facts).unwrap()
    }

    #[test]
    fn appends_survive_reopening_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.redb");
        let mut replica = ReplicaState::new();
        {
            let mut store = RedbStore::open(&path).unwrap();
            for i in 0..(COMPACT_AFTER + 10) {
                let delta = delta_of(&mut replica, "a", &format!("(+ x {i})"));
                store.append(&delta).unwrap();
            }
            assert!(store.records().unwrap() < 20, "the log was compacted");
        }
        let mut reopened = RedbStore::open(&path).unwrap();
        let loaded = reopened.load().unwrap();
        assert_eq!(loaded.digest(), replica.digest());
        assert_eq!(loaded.clock(), replica.clock());
    }
}
