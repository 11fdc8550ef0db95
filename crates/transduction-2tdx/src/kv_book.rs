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
//! The form before (one key, `tdx/book`, overwritten by each write) is read
//! as one more key and deleted by the next write.

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
    /// How many keys the book was read from (more than one after writes
    /// that overlapped, until the next write).
    pub fn keys(&self) -> usize {
        self.keys.len()
    }
}

/// Reads and merges every book stored.
pub async fn read(kv: &dyn KeyValue) -> Result<StoredBook, String> {
    'attempt: for _ in 0..READ_ATTEMPTS {
        let mut keys = kv.keys(BOOK_PREFIX).await?;
        keys.push(LEGACY_KEY.to_string());
        let mut stored = StoredBook::default();
        for key in keys {
            let Some(bytes) = kv.get(&key).await? else {
                if key == LEGACY_KEY {
                    continue;
                }
                // Deleted since listed: merged into a key written before
                // that, which this listing may have missed.
                continue 'attempt;
            };
            let book: BookState =
                serde_json::from_slice(&bytes).map_err(|e| format!("the stored rule book {key} does not read: {e}"))?;
            match &mut stored.book {
                Some(merged) => {
                    merged.merge(book);
                }
                None => stored.book = Some(book),
            }
            stored.keys.push(key);
        }
        return Ok(stored);
    }
    Err(format!(
        "the stored rule book kept changing while it was read ({READ_ATTEMPTS} attempts)"
    ))
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
    }

    impl Racing {
        fn new() -> Racing {
            Racing {
                inner: MemoryKeyValue::default(),
                other: std::sync::Mutex::new(None),
                other_write: std::sync::Mutex::new(None),
            }
        }
    }

    impl KeyValue for Racing {
        fn get<'a>(&'a self, key: &'a str) -> ramanujan_http::kv::BoxFuture<'a, Result<Option<Vec<u8>>, String>> {
            Box::pin(async move {
                let other = self.other.lock().unwrap().take();
                if let Some(book) = other.filter(|_| key.starts_with(BOOK_PREFIX)) {
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
            self.inner.keys(prefix)
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
}
