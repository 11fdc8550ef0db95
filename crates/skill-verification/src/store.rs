//! Where a host keeps its references across restarts: a [`ReferenceStore`]
//! the service writes every change to before it answers, and reads once at
//! start. [`RedbReferences`] is the native one, a redb file in the data
//! directory; a host without one keeps its references in memory only.

use crate::references::{Change, Example, ReferenceSet, ReferenceState};
use crdts::Orswot;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Durable storage for a host's reference set.
pub trait ReferenceStore: Send + Sync {
    /// The state last saved (`None` when nothing ever was).
    fn load(&self) -> Result<Option<ReferenceState>, StoreError>;
    /// Stores `set`, which `change` made from the set last saved: durable once
    /// this returns `Ok`. On an error nothing of it is kept.
    fn save(&self, set: &ReferenceSet, change: &Change) -> Result<(), StoreError>;
}

/// Examples by key, each as MessagePack.
const EXAMPLES: TableDefinition<&str, &[u8]> = TableDefinition::new("skill_examples");
/// The membership (one MessagePack record under [`MEMBERS`]) and the format.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("skill_meta");
const MEMBERS: &str = "members";
const FORMAT: &str = "format";
const FORMAT_VERSION: &[u8] = b"1";

/// The references in a redb file: each change one durable transaction that
/// writes the examples it added or touched, deletes those it removed, and
/// rewrites the membership (its size grows with the number of examples: about
/// 60 bytes each). A 2,048-value example takes 16 KiB on disk (redb gives a
/// 10 KB value a page of the next power of two); the file is compacted when
/// opened.
pub struct RedbReferences {
    db: Database,
    path: PathBuf,
}

fn fail(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> StoreError + '_ {
    move |e| StoreError(format!("{}: {e}", path.display()))
}

impl RedbReferences {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let f = fail(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| f(&e))?;
        }
        let mut db = Database::create(path).map_err(|e| f(&e))?;
        // Space freed by earlier runs' rewrites of the membership goes back
        // (about 40 % of the file after a large load; 0.07 s for 10,000 examples).
        while db.compact().map_err(|e| f(&e))? {}
        let txn = db.begin_write().map_err(|e| f(&e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| f(&e))?;
            let format = meta.get(FORMAT).map_err(|e| f(&e))?.map(|v| v.value().to_vec());
            match format.as_deref() {
                None => {
                    meta.insert(FORMAT, FORMAT_VERSION).map_err(|e| f(&e))?;
                }
                Some(FORMAT_VERSION) => {}
                Some(other) => {
                    return Err(f(&format!(
                        "reference store format {:?}, this build reads {:?}",
                        String::from_utf8_lossy(other),
                        String::from_utf8_lossy(FORMAT_VERSION)
                    )));
                }
            }
            txn.open_table(EXAMPLES).map_err(|e| f(&e))?;
        }
        txn.commit().map_err(|e| f(&e))?;
        Ok(RedbReferences {
            db,
            path: path.to_path_buf(),
        })
    }

    /// The store in a data directory: `{dir}/skills.redb`.
    pub fn in_dir(dir: &Path) -> Result<Self, StoreError> {
        Self::open(&dir.join("skills.redb"))
    }
}

impl ReferenceStore for RedbReferences {
    fn load(&self) -> Result<Option<ReferenceState>, StoreError> {
        let f = fail(&self.path);
        let txn = self.db.begin_read().map_err(|e| f(&e))?;
        let meta = txn.open_table(META).map_err(|e| f(&e))?;
        let Some(members) = meta.get(MEMBERS).map_err(|e| f(&e))? else {
            return Ok(None);
        };
        let members: Orswot<String, String> =
            rmp_serde::from_slice(members.value()).map_err(|e| f(&format!("the membership record: {e}")))?;
        let table = txn.open_table(EXAMPLES).map_err(|e| f(&e))?;
        let mut examples = BTreeMap::new();
        for row in table.iter().map_err(|e| f(&e))? {
            let (key, value) = row.map_err(|e| f(&e))?;
            let example: Example =
                rmp_serde::from_slice(value.value()).map_err(|e| f(&format!("example {}: {e}", key.value())))?;
            examples.insert(key.value().to_string(), example);
        }
        Ok(Some(ReferenceState { members, examples }))
    }

    fn save(&self, set: &ReferenceSet, change: &Change) -> Result<(), StoreError> {
        let f = fail(&self.path);
        let encode = |value: &dyn ErasedEncode| value.encode().map_err(|e| f(&e));
        let txn = self.db.begin_write().map_err(|e| f(&e))?;
        {
            let mut table = txn.open_table(EXAMPLES).map_err(|e| f(&e))?;
            for key in change.added.iter().chain(&change.touched) {
                if let Some(example) = set.examples().get(key) {
                    let bytes = encode(&**example)?;
                    table.insert(key.as_str(), bytes.as_slice()).map_err(|e| f(&e))?;
                }
            }
            for key in &change.removed {
                table.remove(key.as_str()).map_err(|e| f(&e))?;
            }
            let mut meta = txn.open_table(META).map_err(|e| f(&e))?;
            let members = encode(set.members())?;
            meta.insert(MEMBERS, members.as_slice()).map_err(|e| f(&e))?;
        }
        // Dropping an uncommitted transaction aborts it: nothing is kept.
        txn.commit().map_err(|e| f(&e))
    }
}

/// MessagePack with field names, for both record types through one closure.
trait ErasedEncode {
    fn encode(&self) -> Result<Vec<u8>, rmp_serde::encode::Error>;
}

impl<T: serde::Serialize> ErasedEncode for T {
    fn encode(&self) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        rmp_serde::to_vec_named(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedding::Embedding;
    use crate::references::Provenance;

    fn example(label: &str, v: &[f32]) -> (String, Embedding, Provenance) {
        from("a", label, v)
    }

    fn from(host: &str, label: &str, v: &[f32]) -> (String, Embedding, Provenance) {
        let provenance = Provenance {
            host: host.into(),
            source: Some(label.into()),
        };
        (label.into(), Embedding::new(v.to_vec(), v.len()).unwrap(), provenance)
    }

    /// One change to a reference set.
    type Step = Box<dyn Fn(&mut ReferenceSet) -> Change>;

    #[test]
    fn what_was_saved_is_what_loads_through_adds_removes_and_merges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skills.redb");
        let store = RedbReferences::open(&path).unwrap();
        assert_eq!(store.load().unwrap().map(|s| s.examples.len()), None);
        let mut set = ReferenceSet::new();
        let mut steps: Vec<Step> = vec![
            Box::new(|s| s.add("a", vec![example("cat", &[1.0, 0.0]), example("dog", &[0.0, 1.0])])),
            Box::new(|s| s.add("a", vec![example("cat", &[0.6, 0.8])])),
            Box::new(|s| {
                let key = s.keys_of("dog");
                s.remove(&key)
            }),
        ];
        let mut peer = ReferenceSet::new();
        peer.add("b", vec![from("b", "owl", &[0.8, 0.6]), from("b", "cat", &[1.0, 0.0])]);
        let peer_state = peer.state();
        steps.push(Box::new(move |s| s.merge(peer_state.clone())));
        let holds = |store: &RedbReferences, set: &ReferenceSet| {
            let state = store.load().unwrap().unwrap();
            ReferenceSet::check_state(&state, 2).unwrap();
            assert_eq!(state.examples.len(), set.len(), "rows kept for removed examples");
            assert_eq!(&ReferenceSet::from_state(state), set);
        };
        for step in steps {
            let change = step(&mut set);
            store.save(&set, &change).unwrap();
            holds(&store, &set);
        }
        assert_eq!(set.len(), 3, "cat twice (one shared with the peer), owl");
        let cat = &set.examples()[&crate::references::key_of("cat", &[1.0, 0.0])];
        assert_eq!(cat.provenance.len(), 2, "the cat came from both hosts");
        drop(store);
        holds(&RedbReferences::open(&path).unwrap(), &set);
    }

    #[test]
    fn a_store_of_another_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skills.redb");
        drop(RedbReferences::open(&path).unwrap());
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META).unwrap().insert(FORMAT, b"9".as_slice()).unwrap();
            txn.commit().unwrap();
        }
        let err = RedbReferences::open(&path).err().unwrap();
        assert!(err.0.contains("format"), "{err}");
    }
}
