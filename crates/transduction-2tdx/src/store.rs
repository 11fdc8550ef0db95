//! Where a host keeps its rule book across restarts: a [`BookStore`] the
//! service writes every change to before it answers, and reads once at start.
//! [`RedbBook`] is the native one, a redb file in the data directory; a host
//! without one keeps its book in memory only.

use crate::book::BookState;
use redb::{Database, ReadableDatabase, TableDefinition};
use std::path::Path;

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

/// The book as one JSON record (rules are small: about 300 bytes each, so a
/// full book of 10,000 is 3 MB), written in one durable transaction per change.
const BOOK: TableDefinition<&str, &[u8]> = TableDefinition::new("tdx_book");
const STATE: &str = "state.v1";

/// The rule book in a redb file.
pub struct RedbBook {
    db: Database,
    path: String,
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
        txn.commit().map_err(|e| f(&e))?;
        Ok(RedbBook {
            db,
            path: path.display().to_string(),
        })
    }

    /// Opens `rules.redb` in `dir`.
    pub fn in_dir(dir: &Path) -> Result<Self, StoreError> {
        Self::open(&dir.join("rules.redb"))
    }

    fn fail(&self, e: &dyn std::fmt::Display) -> StoreError {
        StoreError(format!("{}: {e}", self.path))
    }
}

impl BookStore for RedbBook {
    fn load(&self) -> Result<Option<BookState>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(&e))?;
        let table = txn.open_table(BOOK).map_err(|e| self.fail(&e))?;
        let Some(bytes) = table.get(STATE).map_err(|e| self.fail(&e))? else {
            return Ok(None);
        };
        serde_json::from_slice(bytes.value())
            .map(Some)
            .map_err(|e| self.fail(&format!("the stored rule book does not read back: {e}")))
    }

    fn save(&self, book: &BookState) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(book).map_err(|e| self.fail(&e))?;
        let txn = self.db.begin_write().map_err(|e| self.fail(&e))?;
        {
            let mut table = txn.open_table(BOOK).map_err(|e| self.fail(&e))?;
            table.insert(STATE, bytes.as_slice()).map_err(|e| self.fail(&e))?;
        }
        txn.commit().map_err(|e| self.fail(&e))
    }
}
