//! Where a host keeps its rule book across restarts: a [`BookStore`] the
//! service writes every change to before it answers, and reads once at start.
//! [`RedbBook`] is the native one, a redb file in the data directory; a host
//! without one keeps its book in memory only.

use crate::book::BookState;
use crate::rule::Rule;
use crdts::{MVReg, Orswot};
use ramanujan_core::color::Color;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Durable storage for a rule book.
pub trait BookStore: Send + Sync {
    /// The book last saved (`None` when nothing ever was).
    fn load(&self) -> Result<Option<BookState>, StoreError>;
    /// Stores `book`: durable once this returns `Ok`; on an error nothing of
    /// it is kept.
    fn save(&self, book: &BookState) -> Result<(), StoreError>;
}

/// The book in two tables: each rule body under its key (bodies are
/// content-addressed and grow-only, so a change writes only the bodies that
/// are new or whose name or provenance it changed), and the membership and
/// registers as one JSON record; written in one durable transaction per
/// change. A store written as one record (`state.v1`, before) is read as
/// such and rewritten in this form by the next change.
const BOOK: TableDefinition<&str, &[u8]> = TableDefinition::new("tdx_book");
const RULES: TableDefinition<&str, &[u8]> = TableDefinition::new("tdx_rules");
const STATE_V1: &str = "state.v1";
const REGISTERS: &str = "registers.v2";

/// The book but its bodies, as written.
#[derive(Serialize)]
struct RegistersOut<'a> {
    members: &'a Orswot<String, String>,
    enabled: &'a BTreeMap<String, MVReg<bool, String>>,
    colors: &'a BTreeMap<String, MVReg<Color, String>>,
}

/// The book but its bodies, as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistersIn {
    members: Orswot<String, String>,
    enabled: BTreeMap<String, MVReg<bool, String>>,
    colors: BTreeMap<String, MVReg<Color, String>>,
}

/// The rule book in a redb file.
pub struct RedbBook {
    db: Database,
    path: String,
    /// The bodies as stored, to write only what changed.
    stored: Mutex<BTreeMap<String, Arc<Rule>>>,
}

impl RedbBook {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let f = |e: &dyn std::fmt::Display| StoreError(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| f(&e))?;
        }
        let mut db = Database::create(path).map_err(|e| f(&e))?;
        while db.compact().map_err(|e| f(&e))? {}
        let txn = db.begin_write().map_err(|e| f(&e))?;
        txn.open_table(BOOK).map_err(|e| f(&e))?;
        txn.open_table(RULES).map_err(|e| f(&e))?;
        txn.commit().map_err(|e| f(&e))?;
        Ok(RedbBook {
            db,
            path: path.display().to_string(),
            stored: Mutex::new(BTreeMap::new()),
        })
    }

    /// Opens `rules.redb` in `dir`.
    pub fn in_dir(dir: &Path) -> Result<Self, StoreError> {
        Self::open(&dir.join("rules.redb"))
    }

    fn fail(&self, e: &dyn std::fmt::Display) -> StoreError {
        StoreError(format!("{}: {e}", self.path))
    }

    fn stored(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Rule>>> {
        self.stored.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl BookStore for RedbBook {
    fn load(&self) -> Result<Option<BookState>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(&e))?;
        let book = txn.open_table(BOOK).map_err(|e| self.fail(&e))?;
        let unreadable =
            |e: &dyn std::fmt::Display| self.fail(&format!("the stored rule book does not read back: {e}"));
        if let Some(bytes) = book.get(REGISTERS).map_err(|e| self.fail(&e))? {
            let registers: RegistersIn = serde_json::from_slice(bytes.value()).map_err(|e| unreadable(&e))?;
            let mut rules = BTreeMap::new();
            let table = txn.open_table(RULES).map_err(|e| self.fail(&e))?;
            for row in table.iter().map_err(|e| self.fail(&e))? {
                let (key, body) = row.map_err(|e| self.fail(&e))?;
                let rule: Rule = serde_json::from_slice(body.value()).map_err(|e| unreadable(&e))?;
                rules.insert(key.value().to_string(), Arc::new(rule));
            }
            *self.stored() = rules.clone();
            return Ok(Some(BookState {
                members: registers.members,
                rules,
                enabled: registers.enabled,
                colors: registers.colors,
            }));
        }
        let Some(bytes) = book.get(STATE_V1).map_err(|e| self.fail(&e))? else {
            return Ok(None);
        };
        // The one-record form: every body is written by the next change.
        serde_json::from_slice(bytes.value())
            .map(Some)
            .map_err(|e| unreadable(&e))
    }

    fn save(&self, book: &BookState) -> Result<(), StoreError> {
        let registers = serde_json::to_vec(&RegistersOut {
            members: &book.members,
            enabled: &book.enabled,
            colors: &book.colors,
        })
        .map_err(|e| self.fail(&e))?;
        let mut stored = self.stored();
        let changed: Vec<(&String, &Arc<Rule>)> =
            book.rules.iter().filter(|(k, r)| stored.get(*k) != Some(*r)).collect();
        let txn = self.db.begin_write().map_err(|e| self.fail(&e))?;
        {
            let mut table = txn.open_table(BOOK).map_err(|e| self.fail(&e))?;
            table
                .insert(REGISTERS, registers.as_slice())
                .map_err(|e| self.fail(&e))?;
            table.remove(STATE_V1).map_err(|e| self.fail(&e))?;
            let mut rules = txn.open_table(RULES).map_err(|e| self.fail(&e))?;
            for (key, rule) in &changed {
                let body = serde_json::to_vec(rule).map_err(|e| self.fail(&e))?;
                rules.insert(key.as_str(), body.as_slice()).map_err(|e| self.fail(&e))?;
            }
        }
        txn.commit().map_err(|e| self.fail(&e))?;
        for (key, rule) in changed {
            stored.insert(key.clone(), rule.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mine::check_rule;
    use ramanujan_core::rules::RuleSpec;

    fn rule(lhs: &str, rhs: &str) -> Rule {
        let spec = RuleSpec {
            name: String::new(),
            lhs: lhs.into(),
            rhs: rhs.into(),
            color: Color::Green,
            bidirectional: false,
            nonzero: vec![],
            integer: vec![],
        };
        check_rule(&spec, "test").unwrap()
    }

    /// What is saved reads back whole after a reopen, change after change,
    /// and a store written as one record (the form before) reads and is
    /// rewritten in the two-table form by the next change.
    #[test]
    fn each_change_reads_back_after_a_reopen_and_the_one_record_form_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.redb");
        let mut book = BookState::default();
        book.add(rule("(+ ?a 0)", "?a"), "a");
        book.add(rule("(* ?a 1)", "?a"), "a");
        {
            let store = RedbBook::open(&path).unwrap();
            assert_eq!(store.load().unwrap(), None);
            store.save(&book).unwrap();
            let key = book.entries()[0].rule.key.clone();
            book.set_enabled(&key, false, "a");
            book.add(rule("(- ?a 0)", "?a"), "b");
            store.save(&book).unwrap();
        }
        let store = RedbBook::open(&path).unwrap();
        assert_eq!(store.load().unwrap().as_ref(), Some(&book));

        let old = dir.path().join("old.redb");
        {
            let db = Database::create(&old).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(BOOK)
                .unwrap()
                .insert(STATE_V1, serde_json::to_vec(&book).unwrap().as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let store = RedbBook::open(&old).unwrap();
        let mut read = store.load().unwrap().unwrap();
        assert_eq!(read, book);
        read.add(rule("(* ?a 0)", "0"), "c");
        store.save(&read).unwrap();
        drop(store);
        assert_eq!(RedbBook::open(&old).unwrap().load().unwrap(), Some(read));
    }
}
