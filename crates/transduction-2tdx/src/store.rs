//! Where a host keeps its rule book across restarts: a [`BookStore`] the
//! service writes every change to before it answers, and reads once at start.
//! [`RedbBook`] is the native one, a redb file in the data directory; a host
//! without one keeps its book in memory only.

use crate::book::{BookState, Changed};
use crate::rule::Rule;
use crdts::{MVReg, Orswot};
use ramanujan_core::color::Color;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// what `changed` names changed since the book last saved.
    fn save(&self, book: &BookState, changed: &Changed) -> Result<(), StoreError>;
}

/// The book in three tables, written in one durable transaction per change,
/// each change writing only what it changed:
/// - `tdx_rules`: each rule body under its key;
/// - `tdx_entries`: each key's enabled and colour registers;
/// - `tdx_book`: the membership, one record (written when it changed).
///
/// Stores written in an earlier form read as such and are rewritten whole in
/// this one by the next change: one record of everything (`state.v1`), or the
/// bodies beside one record of the membership and registers (`registers.v2`).
const BOOK: TableDefinition<&str, &[u8]> = TableDefinition::new("tdx_book");
const RULES: TableDefinition<&str, &[u8]> = TableDefinition::new("tdx_rules");
const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("tdx_entries");
const STATE_V1: &str = "state.v1";
const REGISTERS_V2: &str = "registers.v2";
const MEMBERS_V3: &str = "members.v3";

/// The book but its bodies, in the `registers.v2` form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistersV2 {
    members: Orswot<String, String>,
    enabled: BTreeMap<String, MVReg<bool, String>>,
    colors: BTreeMap<String, MVReg<Color, String>>,
}

/// One key's registers, as written.
#[derive(Serialize)]
struct EntryOut<'a> {
    enabled: Option<&'a MVReg<bool, String>>,
    color: Option<&'a MVReg<Color, String>>,
}

/// One key's registers, as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryIn {
    enabled: Option<MVReg<bool, String>>,
    color: Option<MVReg<Color, String>>,
}

/// The rule book in a redb file.
pub struct RedbBook {
    db: Database,
    path: String,
    /// Whether the file holds the book in this form (once written or read so):
    /// until then a save writes the whole book.
    in_form: AtomicBool,
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
        txn.open_table(ENTRIES).map_err(|e| f(&e))?;
        txn.commit().map_err(|e| f(&e))?;
        Ok(RedbBook {
            db,
            path: path.display().to_string(),
            in_form: AtomicBool::new(false),
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
        let book = txn.open_table(BOOK).map_err(|e| self.fail(&e))?;
        let unreadable =
            |e: &dyn std::fmt::Display| self.fail(&format!("the stored rule book does not read back: {e}"));
        let read_bodies = || -> Result<BTreeMap<String, Arc<Rule>>, StoreError> {
            let mut rules = BTreeMap::new();
            let table = txn.open_table(RULES).map_err(|e| self.fail(&e))?;
            for row in table.iter().map_err(|e| self.fail(&e))? {
                let (key, body) = row.map_err(|e| self.fail(&e))?;
                let rule: Rule = serde_json::from_slice(body.value()).map_err(|e| unreadable(&e))?;
                rules.insert(key.value().to_string(), Arc::new(rule));
            }
            Ok(rules)
        };
        // Every form present is read and merged: a record of an earlier form
        // beside this form's rows was written by an older binary after them
        // (each form's first save removes the forms before it), and the book
        // is a CRDT, so their join loses neither. The next change then
        // rewrites the whole book in this form.
        let mut forms: Vec<BookState> = Vec::new();
        if let Some(bytes) = book.get(MEMBERS_V3).map_err(|e| self.fail(&e))? {
            let members = serde_json::from_slice(bytes.value()).map_err(|e| unreadable(&e))?;
            let (mut enabled, mut colors) = (BTreeMap::new(), BTreeMap::new());
            let table = txn.open_table(ENTRIES).map_err(|e| self.fail(&e))?;
            for row in table.iter().map_err(|e| self.fail(&e))? {
                let (key, entry) = row.map_err(|e| self.fail(&e))?;
                let entry: EntryIn = serde_json::from_slice(entry.value()).map_err(|e| unreadable(&e))?;
                let key = key.value().to_string();
                if let Some(register) = entry.enabled {
                    enabled.insert(key.clone(), register);
                }
                if let Some(register) = entry.color {
                    colors.insert(key, register);
                }
            }
            forms.push(BookState {
                members,
                rules: read_bodies()?,
                enabled,
                colors,
            });
        }
        let in_form = !forms.is_empty();
        if let Some(bytes) = book.get(REGISTERS_V2).map_err(|e| self.fail(&e))? {
            let registers: RegistersV2 = serde_json::from_slice(bytes.value()).map_err(|e| unreadable(&e))?;
            forms.push(BookState {
                members: registers.members,
                rules: read_bodies()?,
                enabled: registers.enabled,
                colors: registers.colors,
            });
        }
        if let Some(bytes) = book.get(STATE_V1).map_err(|e| self.fail(&e))? {
            forms.push(serde_json::from_slice(bytes.value()).map_err(|e| unreadable(&e))?);
        }
        self.in_form.store(in_form && forms.len() == 1, Ordering::Relaxed);
        let mut forms = forms.into_iter();
        let Some(mut merged) = forms.next() else {
            return Ok(None);
        };
        for form in forms {
            merged.merge(form);
        }
        Ok(Some(merged))
    }

    fn save(&self, book: &BookState, changed: &Changed) -> Result<(), StoreError> {
        let whole = !self.in_form.load(Ordering::Relaxed);
        let keys: Box<dyn Iterator<Item = &String>> = if whole {
            let all: BTreeSet<&String> = book
                .rules
                .keys()
                .chain(book.enabled.keys())
                .chain(book.colors.keys())
                .collect();
            Box::new(all.into_iter())
        } else {
            Box::new(changed.keys.iter())
        };
        let txn = self.db.begin_write().map_err(|e| self.fail(&e))?;
        {
            let mut table = txn.open_table(BOOK).map_err(|e| self.fail(&e))?;
            if whole || changed.members {
                let bytes = serde_json::to_vec(&book.members).map_err(|e| self.fail(&e))?;
                table.insert(MEMBERS_V3, bytes.as_slice()).map_err(|e| self.fail(&e))?;
            }
            if whole {
                table.remove(STATE_V1).map_err(|e| self.fail(&e))?;
                table.remove(REGISTERS_V2).map_err(|e| self.fail(&e))?;
            }
            let mut rules = txn.open_table(RULES).map_err(|e| self.fail(&e))?;
            let mut entries = txn.open_table(ENTRIES).map_err(|e| self.fail(&e))?;
            for key in keys {
                if let Some(rule) = book.rules.get(key) {
                    let body = serde_json::to_vec(&**rule).map_err(|e| self.fail(&e))?;
                    rules.insert(key.as_str(), body.as_slice()).map_err(|e| self.fail(&e))?;
                }
                let entry = EntryOut {
                    enabled: book.enabled.get(key),
                    color: book.colors.get(key),
                };
                let bytes = serde_json::to_vec(&entry).map_err(|e| self.fail(&e))?;
                entries
                    .insert(key.as_str(), bytes.as_slice())
                    .map_err(|e| self.fail(&e))?;
            }
        }
        txn.commit().map_err(|e| self.fail(&e))?;
        self.in_form.store(true, Ordering::Relaxed);
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

    /// What is saved reads back whole after a reopen, change after change
    /// (each writing only the rows it changed, on top of what a reopen read),
    /// and stores written in the two earlier forms read and are rewritten in
    /// this one by the next change.
    #[test]
    fn each_change_reads_back_after_a_reopen_and_the_earlier_forms_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.redb");
        let mut book = BookState::default();
        let add = |book: &mut BookState, rule: Rule, actor: &str| {
            let changed = Changed::of_key(&rule.key, true);
            book.add(rule, actor);
            changed
        };
        add(&mut book, rule("(+ ?a 0)", "?a"), "a");
        add(&mut book, rule("(* ?a 1)", "?a"), "a");
        {
            let store = RedbBook::open(&path).unwrap();
            assert_eq!(store.load().unwrap(), None);
            // A new store is written whole, whatever the change names.
            store.save(&book, &Changed::default()).unwrap();
            let key = book.entries()[0].rule.key.clone();
            book.set_enabled(&key, false, "a");
            let changed = Changed::of_key(&key, false).and(add(&mut book, rule("(- ?a 0)", "?a"), "b"));
            store.save(&book, &changed).unwrap();
        }
        let removed = book.entries()[1].rule.key.clone();
        {
            let store = RedbBook::open(&path).unwrap();
            assert_eq!(store.load().unwrap().as_ref(), Some(&book));
            // Changes after a reopen, each saved alone: a remove, a colour,
            // a concurrent add merged.
            assert!(book.remove(&removed));
            store.save(&book, &Changed::of_key(&removed, true)).unwrap();
            let key = book.entries()[0].rule.key.clone();
            book.set_color(&key, Color::Red, "a");
            store.save(&book, &Changed::of_key(&key, false)).unwrap();
            let mut other = book.clone();
            add(&mut other, rule("(* ?a 0)", "0"), "b");
            other.set_enabled(&key, false, "b");
            let changed = book.merge(other);
            assert!(changed.members && changed.keys.len() == 2, "{changed:?}");
            store.save(&book, &changed).unwrap();
        }
        let store = RedbBook::open(&path).unwrap();
        assert_eq!(store.load().unwrap().as_ref(), Some(&book));
        let read = store.load().unwrap().unwrap();
        assert!(!read.contains(&removed) && read.rules.contains_key(&removed));

        #[derive(Serialize)]
        struct RegistersV2Out<'a> {
            members: &'a Orswot<String, String>,
            enabled: &'a BTreeMap<String, MVReg<bool, String>>,
            colors: &'a BTreeMap<String, MVReg<Color, String>>,
        }
        let v2 = serde_json::to_vec(&RegistersV2Out {
            members: &book.members,
            enabled: &book.enabled,
            colors: &book.colors,
        })
        .unwrap();
        let earlier: [(&str, Vec<u8>); 2] = [(STATE_V1, serde_json::to_vec(&book).unwrap()), (REGISTERS_V2, v2)];
        for (form, bytes) in earlier {
            let old = dir.path().join(format!("{form}.redb"));
            {
                let db = Database::create(&old).unwrap();
                let txn = db.begin_write().unwrap();
                txn.open_table(BOOK).unwrap().insert(form, bytes.as_slice()).unwrap();
                let mut rules = txn.open_table(RULES).unwrap();
                if form == REGISTERS_V2 {
                    for (key, body) in &book.rules {
                        rules
                            .insert(key.as_str(), serde_json::to_vec(&**body).unwrap().as_slice())
                            .unwrap();
                    }
                }
                drop(rules);
                txn.commit().unwrap();
            }
            let store = RedbBook::open(&old).unwrap();
            let mut read = store.load().unwrap().unwrap();
            assert_eq!(read, book, "{form}");
            let changed = add(&mut read, rule("(- 0 ?a)", "(neg ?a)"), "c");
            store.save(&read, &changed).unwrap();
            drop(store);
            assert_eq!(RedbBook::open(&old).unwrap().load().unwrap(), Some(read), "{form}");
        }
    }
}

#[cfg(test)]
mod downgrade {
    use super::*;
    use crate::mine::check_rule;
    use ramanujan_core::rules::RuleSpec;

    fn rule(k: usize) -> Rule {
        let spec = RuleSpec {
            name: format!("r{k}"),
            lhs: format!("(+ ?a {k})"),
            rhs: format!("(+ {k} ?a)"),
            color: Color::Red,
            bidirectional: false,
            nonzero: vec![],
            integer: vec![],
        };
        check_rule(&spec, "test").unwrap()
    }

    /// A store in this form that older binaries then wrote to (a downgrade
    /// and an upgrade again): what each of them wrote is read, merged with
    /// this form's rows, and the next change rewrites it all in this form.
    #[test]
    fn records_an_older_binary_wrote_after_this_form_are_merged_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.redb");
        let mut book = BookState::default();
        book.add(rule(0), "new");
        {
            let store = RedbBook::open(&path).unwrap();
            store.save(&book, &Changed::default()).unwrap();
        }
        // The older binaries' books: one had read the store's rules, one had not.
        let mut v2 = book.clone();
        v2.add(rule(1), "v2");
        let mut v1 = BookState::default();
        v1.add(rule(2), "v1");
        {
            #[derive(Serialize)]
            struct RegistersV2Out<'a> {
                members: &'a Orswot<String, String>,
                enabled: &'a BTreeMap<String, MVReg<bool, String>>,
                colors: &'a BTreeMap<String, MVReg<Color, String>>,
            }
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            let registers = RegistersV2Out {
                members: &v2.members,
                enabled: &v2.enabled,
                colors: &v2.colors,
            };
            let mut table = txn.open_table(BOOK).unwrap();
            table
                .insert(REGISTERS_V2, serde_json::to_vec(&registers).unwrap().as_slice())
                .unwrap();
            table
                .insert(STATE_V1, serde_json::to_vec(&v1).unwrap().as_slice())
                .unwrap();
            drop(table);
            let mut rules = txn.open_table(RULES).unwrap();
            let body = &v2.rules[&rule(1).key];
            rules
                .insert(rule(1).key.as_str(), serde_json::to_vec(&**body).unwrap().as_slice())
                .unwrap();
            drop(rules);
            txn.commit().unwrap();
        }
        let mut all = book.clone();
        all.merge(v2);
        all.merge(v1);
        let store = RedbBook::open(&path).unwrap();
        let read = store.load().unwrap().unwrap();
        assert_eq!(read, all);
        for k in 0..3 {
            assert!(read.contains(&rule(k).key), "rule {k}");
        }
        // The next change, whatever it names, rewrites everything in this form.
        let mut next = read.clone();
        next.add(rule(3), "new");
        store.save(&next, &Changed::of_key(&rule(3).key, true)).unwrap();
        drop(store);
        let store = RedbBook::open(&path).unwrap();
        assert_eq!(store.load().unwrap(), Some(next));
        let txn = store.db.begin_read().unwrap();
        let table = txn.open_table(BOOK).unwrap();
        assert!(table.get(REGISTERS_V2).unwrap().is_none() && table.get(STATE_V1).unwrap().is_none());
    }
}

#[cfg(test)]
mod changes {
    use super::*;
    use crate::brief::Summary;
    use crate::mine::check_rule;
    use ramanujan_core::rules::RuleSpec;

    /// `n` distinct sound rules.
    fn rules(n: usize) -> Vec<Rule> {
        (0..n)
            .map(|k| {
                let spec = RuleSpec {
                    name: format!("r{k}"),
                    lhs: format!("(+ ?a {k})"),
                    rhs: format!("(+ {k} ?a)"),
                    color: Color::Red,
                    bidirectional: false,
                    nonzero: vec![],
                    integer: vec![],
                };
                check_rule(&spec, "test").unwrap()
            })
            .collect()
    }

    /// Three sites edit apart and merge each other's books at random for
    /// hundreds of steps; site 0 saves only what each change says it changed
    /// and updates its summary only with that. After every step its summary
    /// is the summary of its book, and after every few its store, reopened,
    /// reads back its book: a change that forgot a key or the membership
    /// would show in one or the other.
    #[test]
    fn saving_and_summarising_only_what_changed_keeps_store_and_summary_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.redb");
        let pool = rules(12);
        let mut sites = [BookState::default(), BookState::default(), BookState::default()];
        let mut store = RedbBook::open(&path).unwrap();
        store.save(&sites[0], &Changed::default()).unwrap();
        let mut summary = Summary::of(&sites[0]);
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: usize| {
            // SplitMix64.
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) % n as u64) as usize
        };
        let (mut merges, mut changed_merges) = (0, 0);
        for step in 0..400 {
            let (site, actor) = {
                let i = next(3);
                (i, format!("site-{i}"))
            };
            let rule = pool[next(pool.len())].clone();
            let key = rule.key.clone();
            let book = &mut sites[site];
            let changed = match next(6) {
                0 | 1 if !book.contains(&key) => {
                    book.add(rule, &actor);
                    Changed::of_key(&key, true)
                }
                2 if book.remove(&key) => Changed::of_key(&key, true),
                3 if book.contains(&key) => {
                    book.set_enabled(&key, next(2) == 0, &actor);
                    Changed::of_key(&key, false)
                }
                4 if book.contains(&key) => {
                    book.set_color(&key, [Color::Red, Color::Blue, Color::Green][next(3)], &actor);
                    Changed::of_key(&key, false)
                }
                _ => {
                    let from = sites[next(3)].clone();
                    let changed = sites[site].merge(from);
                    merges += 1;
                    changed_merges += usize::from(!changed.is_empty());
                    changed
                }
            };
            if site == 0 {
                store.save(&sites[0], &changed).unwrap();
                summary.update(&sites[0], &changed);
            }
            assert_eq!(summary, Summary::of(&sites[0]), "step {step}");
            if step % 25 == 24 {
                drop(store);
                store = RedbBook::open(&path).unwrap();
                assert_eq!(store.load().unwrap().as_ref(), Some(&sites[0]), "step {step}");
            }
        }
        assert!(
            merges > 50 && changed_merges > 20,
            "{merges} merges, {changed_merges} changed something"
        );
    }
}
