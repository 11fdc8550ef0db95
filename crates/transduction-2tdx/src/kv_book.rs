//! The rule book in a key-value store that short-lived instances share
//! (Spin's), which has no compare-and-swap, without losing a write.
//!
//! A write stores a whole book under a key of its own, `tdx/book/` and a
//! hash of its bytes: everything the writer read, merged with its change and
//! with whatever another instance stored meanwhile. Only then does it delete
//! the keys it read, whose content the book it wrote includes. A read merges
//! every key under the prefix. So two instances writing at once each write
//! their own key and delete only what they read: both changes stay, side by
//! side, until a later write merges them into one key. A key's name is the
//! hash of its bytes, so no key is ever overwritten with other content; a
//! writer that stops between writing and deleting leaves keys that readers
//! merge and the next write deletes.
//!
//! Instances editing at once must also be distinct CRDT actors
//! ([`instance_actor`]): two edits by one actor from the same clock carry
//! the same dot, and merging their books drops both.
//!
//! The form before (one key, `tdx/book`, overwritten by each write) is read
//! first, as one more key, and deleted by the next write.

use crate::book::BookState;
use ramanujan_http::kv::KeyValue;

/// Where books are written: this, then the hash of the bytes.
pub const BOOK_PREFIX: &str = "tdx/book/";
/// The one key of the form before.
const LEGACY_KEY: &str = "tdx/book";
/// Reads retried when a key listed was deleted before it was read (a
/// writer merged it into a key the listing missed).
const READ_ATTEMPTS: usize = 8;

/// What a read found: the books of every key, merged, and those keys.
#[derive(Debug, Clone, Default)]
pub struct StoredBook {
    /// The merged book; `None` when nothing is stored.
    pub book: Option<BookState>,
    /// The keys it was read from.
    keys: Vec<String>,
}

impl StoredBook {
    /// Merges in the book stored under `key`.
    fn add(&mut self, key: String, bytes: &[u8]) -> Result<(), String> {
        let book: BookState =
            serde_json::from_slice(bytes).map_err(|e| format!("the stored rule book {key} does not read: {e}"))?;
        match &mut self.book {
            Some(merged) => {
                merged.merge(book);
            }
            None => self.book = Some(book),
        }
        self.keys.push(key);
        Ok(())
    }

    /// How many keys the book was read from (more than one after writes
    /// that overlapped, until the next write).
    pub fn keys(&self) -> usize {
        self.keys.len()
    }
}

/// Reads and merges every book stored.
pub async fn read(kv: &dyn KeyValue) -> Result<StoredBook, String> {
    'attempt: for _ in 0..READ_ATTEMPTS {
        let mut stored = StoredBook::default();
        // The key of the form before first: a write deletes it only after
        // setting the key that includes it, which the listing below then sees.
        if let Some(bytes) = kv.get(LEGACY_KEY).await? {
            stored.add(LEGACY_KEY.to_string(), &bytes)?;
        }
        for key in kv.keys(BOOK_PREFIX).await? {
            let Some(bytes) = kv.get(&key).await? else {
                // Deleted since listed: merged into a key written before
                // that, which this listing may have missed.
                continue 'attempt;
            };
            stored.add(key, &bytes)?;
        }
        return Ok(stored);
    }
    Err(format!(
        "the stored rule book kept changing while it was read ({READ_ATTEMPTS} attempts)"
    ))
}

/// An actor name for one short-lived instance of `site` that edits the
/// book: `site`, a dot, and 64 random bits (std's OS-seeded hash keys)
/// mixed with the time. Instances editing at once must be distinct actors:
/// two edits by one actor from the same clock carry the same dot, and an
/// observed-remove set's merge takes each as seen and dropped by the other.
/// Every instance that edits adds its name to the book's clocks, so they
/// grow by one entry per edit request: fine for a rule book's rate of edits.
pub fn instance_actor(site: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(now);
    format!("{site}.{:016x}", hasher.finish())
}

/// Writes `book` (which holds what `read` found, and more) merged with
/// whatever was stored since, then deletes the keys it now includes.
/// Answers the book written. Durable once this returns `Ok`; a failed
/// deletion only leaves a key the next read merges.
pub async fn write(kv: &dyn KeyValue, book: &BookState, read_before: &StoredBook) -> Result<BookState, String> {
    let now = read(kv).await?;
    let mut merged = book.clone();
    if let Some(current) = now.book {
        merged.merge(current);
    }
    let bytes = serde_json::to_vec(&merged).map_err(|e| format!("the rule book could not be encoded: {e}"))?;
    let key = format!("{BOOK_PREFIX}{}", &blake3::hash(&bytes).to_hex()[..32]);
    kv.set(&key, bytes).await?;
    let mut included: Vec<&String> = read_before.keys.iter().chain(&now.keys).collect();
    included.sort();
    included.dedup();
    for old in included.into_iter().filter(|k| **k != key) {
        // Included in what was written: a failure leaves a duplicate, not a loss.
        let _ = kv.delete(old).await;
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mine::check_rule;
    use ramanujan_core::color::Color;
    use ramanujan_core::rules::RuleSpec;
    use ramanujan_http::kv::MemoryKeyValue;

    fn rule(k: usize) -> crate::rule::Rule {
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

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Instances that read, change and write with every interleaving of two
    /// and three at once (each reading before any of them writes) lose no
    /// change, and a later write folds the keys they left into one.
    #[test]
    fn overlapping_instances_lose_no_change() {
        block_on(async {
            let kv = MemoryKeyValue::default();
            let mut next_rule = 0;
            for overlapping in [1, 2, 3, 2, 3] {
                let mut instances = Vec::new();
                for _ in 0..overlapping {
                    let found = read(&kv).await.unwrap();
                    let mut book = found.book.clone().unwrap_or_default();
                    book.add(rule(next_rule), &format!("instance-{next_rule}"));
                    next_rule += 1;
                    instances.push((found, book));
                }
                for (found, book) in instances.iter().rev() {
                    write(&kv, book, found).await.unwrap();
                }
                let now = read(&kv).await.unwrap();
                let book = now.book.unwrap();
                for k in 0..next_rule {
                    assert!(book.contains(&rule(k).key), "rule {k} of {next_rule} lost");
                }
            }
            // One more write folds everything into one key.
            let found = read(&kv).await.unwrap();
            let book = found.book.clone().unwrap();
            write(&kv, &book, &found).await.unwrap();
            assert_eq!(kv.keys(BOOK_PREFIX).await.unwrap().len(), 1);
        });
    }

    /// A store where another instance's write lands while a read is under
    /// way: the first time a book's key is read, the other instance writes
    /// its own key and deletes the one being read.
    /// Or, the first time a book is written, another instance's whole write
    /// lands between this one's read of what is stored and its own write.
    struct Racing {
        inner: MemoryKeyValue,
        other: std::sync::Mutex<Option<BookState>>,
        other_write: std::sync::Mutex<Option<(BookState, StoredBook)>>,
        /// Or, just after this one lists the keys, another's whole write.
        other_after_listing: std::sync::Mutex<Option<(BookState, StoredBook)>>,
    }

    impl Racing {
        fn new() -> Racing {
            Racing {
                inner: MemoryKeyValue::default(),
                other: std::sync::Mutex::new(None),
                other_write: std::sync::Mutex::new(None),
                other_after_listing: std::sync::Mutex::new(None),
            }
        }
    }

    impl KeyValue for Racing {
        fn get<'a>(&'a self, key: &'a str) -> ramanujan_http::kv::BoxFuture<'a, Result<Option<Vec<u8>>, String>> {
            Box::pin(async move {
                let other = if key.starts_with(BOOK_PREFIX) {
                    self.other.lock().unwrap().take()
                } else {
                    None
                };
                if let Some(book) = other {
                    let bytes = serde_json::to_vec(&book).unwrap();
                    let replacement = format!("{BOOK_PREFIX}{}", &blake3::hash(&bytes).to_hex()[..32]);
                    self.inner.set(&replacement, bytes).await?;
                    self.inner.delete(key).await?;
                }
                self.inner.get(key).await
            })
        }
        fn set<'a>(&'a self, key: &'a str, value: Vec<u8>) -> ramanujan_http::kv::BoxFuture<'a, Result<(), String>> {
            Box::pin(async move {
                let other = self.other_write.lock().unwrap().take();
                if let Some((book, found)) = other {
                    write(&self.inner, &book, &found).await?;
                }
                self.inner.set(key, value).await
            })
        }
        fn delete<'a>(&'a self, key: &'a str) -> ramanujan_http::kv::BoxFuture<'a, Result<(), String>> {
            self.inner.delete(key)
        }
        fn keys<'a>(&'a self, prefix: &'a str) -> ramanujan_http::kv::BoxFuture<'a, Result<Vec<String>, String>> {
            Box::pin(async move {
                let listed = self.inner.keys(prefix).await?;
                let other = self.other_after_listing.lock().unwrap().take();
                if let Some((book, found)) = other {
                    write(&self.inner, &book, &found).await?;
                }
                Ok(listed)
            })
        }
    }

    /// A key deleted between listing and reading makes the read list again
    /// (not answer a book without it), and the book of the form before is
    /// read and then deleted by a write.
    #[test]
    fn a_read_racing_a_write_and_the_form_before() {
        block_on(async {
            let kv = Racing::new();
            let mut old = BookState::default();
            old.add(rule(0), "old");
            kv.set(LEGACY_KEY, serde_json::to_vec(&old).unwrap()).await.unwrap();
            let found = read(&kv).await.unwrap();
            assert_eq!(found.book.as_ref(), Some(&old));
            let mut book = found.book.clone().unwrap();
            book.add(rule(1), "new");
            write(&kv, &book, &found).await.unwrap();
            assert_eq!(kv.get(LEGACY_KEY).await.unwrap(), None, "the form before is folded in");
            assert_eq!(kv.keys(BOOK_PREFIX).await.unwrap().len(), 1);
            // Another instance writes while this one reads.
            let mut theirs = book.clone();
            theirs.add(rule(2), "other");
            *kv.other.lock().unwrap() = Some(theirs);
            let again = read(&kv).await.unwrap();
            assert!(kv.other.lock().unwrap().is_none(), "the race happened");
            let again = again.book.unwrap();
            for k in 0..3 {
                assert!(again.contains(&rule(k).key), "rule {k}");
            }
        });
    }

    /// Two instances that read the same book and write at once, the other's
    /// write landing after this one read what is stored and before it wrote
    /// (the interleaving a compare-and-swap would catch): both changes stay.
    #[test]
    fn a_write_racing_a_write_loses_neither() {
        block_on(async {
            let kv = Racing::new();
            let mut first = BookState::default();
            first.add(rule(0), "first");
            write(&kv.inner, &first, &StoredBook::default()).await.unwrap();
            let ours_found = read(&kv).await.unwrap();
            let theirs_found = read(&kv).await.unwrap();
            let mut ours = ours_found.book.clone().unwrap();
            ours.add(rule(1), "ours");
            let mut theirs = theirs_found.book.clone().unwrap();
            theirs.add(rule(2), "theirs");
            *kv.other_write.lock().unwrap() = Some((theirs, theirs_found));
            write(&kv, &ours, &ours_found).await.unwrap();
            assert!(kv.other_write.lock().unwrap().is_none(), "the race happened");
            let book = read(&kv).await.unwrap().book.unwrap();
            for k in 0..3 {
                assert!(book.contains(&rule(k).key), "rule {k} lost");
            }
        });
    }

    /// Instances of one site editing at once as one actor lose each other's
    /// adds when their books merge (the reason each instance is an actor of
    /// its own); as [`instance_actor`]s they keep both, and no two of a
    /// thousand instance names are alike.
    #[test]
    fn concurrent_instances_need_actors_of_their_own() {
        block_on(async {
            for (actors, both_kept) in [
                (["spin".to_string(), "spin".to_string()], false),
                ([instance_actor("spin"), instance_actor("spin")], true),
            ] {
                let kv = MemoryKeyValue::default();
                let mut first = BookState::default();
                first.add(rule(0), "spin");
                write(&kv, &first, &StoredBook::default()).await.unwrap();
                let (a, b) = (read(&kv).await.unwrap(), read(&kv).await.unwrap());
                let (mut ours, mut theirs) = (a.book.clone().unwrap(), b.book.clone().unwrap());
                ours.add(rule(1), &actors[0]);
                theirs.add(rule(2), &actors[1]);
                write(&kv, &theirs, &b).await.unwrap();
                write(&kv, &ours, &a).await.unwrap();
                let book = read(&kv).await.unwrap().book.unwrap();
                let kept = book.contains(&rule(1).key) && book.contains(&rule(2).key);
                assert_eq!(kept, both_kept, "actors {actors:?}");
            }
        });
        let names: std::collections::HashSet<String> = (0..1000).map(|_| instance_actor("spin")).collect();
        assert_eq!(names.len(), 1000);
    }

    /// The first write in this form lands between a reader's listing of the
    /// keys (none yet) and its read of the key of the form before (deleted
    /// by then): the reader still reads the book, as it reads that key first.
    #[test]
    fn a_first_write_in_this_form_racing_a_read_of_the_form_before() {
        block_on(async {
            let kv = Racing::new();
            let mut old = BookState::default();
            old.add(rule(0), "old");
            kv.set(LEGACY_KEY, serde_json::to_vec(&old).unwrap()).await.unwrap();
            let found = read(&kv.inner).await.unwrap();
            let mut theirs = found.book.clone().unwrap();
            theirs.add(rule(1), "theirs");
            *kv.other_after_listing.lock().unwrap() = Some((theirs, found));
            let book = read(&kv).await.unwrap().book.expect("a book was stored all along");
            assert!(kv.other_after_listing.lock().unwrap().is_none(), "the race happened");
            assert!(book.contains(&rule(0).key));
            assert_eq!(
                kv.get(LEGACY_KEY).await.unwrap(),
                None,
                "the writer folded the form before in"
            );
        });
    }
}
