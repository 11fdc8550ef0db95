//! The memo of rendered answers that components keep (saturations, merges): a
//! least-recently-used map from a content hash to an answer body, bounded by
//! the number of answers and by their bytes, with hit and miss counts.

use bytes::Bytes;
use lru::LruCache;
use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A content hash: what an answer is keyed by.
pub type Key = [u8; 32];

/// Bytes of answers a memo holds by default: the original design's `CACHE_SIZE_MB=50`.
pub const DEFAULT_MAX_BYTES: usize = 50 << 20;

/// A bounded memo of answers. An answer larger than the byte bound is not kept.
pub struct MemoCache {
    held: Mutex<Held>,
    capacity: usize,
    max_bytes: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct Held {
    entries: LruCache<Key, Bytes>,
    bytes: usize,
}

/// A memo's counters.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CacheStats {
    /// Most answers held.
    pub capacity: usize,
    /// Most bytes of answers held.
    pub max_bytes: usize,
    /// Answers held now.
    pub entries: usize,
    /// Bytes of answers held now.
    pub bytes: usize,
    /// Lookups answered from the memo.
    pub hits: u64,
    /// Lookups that had to compute.
    pub misses: u64,
    /// `hits / (hits + misses)`, 0 before any lookup.
    pub hit_ratio: f64,
}

impl MemoCache {
    /// A memo of at most `capacity` answers (at least one) and [`DEFAULT_MAX_BYTES`].
    pub fn new(capacity: usize) -> Self {
        Self::with_max_bytes(capacity, DEFAULT_MAX_BYTES)
    }

    /// A memo of at most `capacity` answers (at least one) and `max_bytes` bytes of them.
    pub fn with_max_bytes(capacity: usize, max_bytes: usize) -> Self {
        let capacity = capacity.max(1);
        MemoCache {
            held: Mutex::new(Held {
                entries: LruCache::unbounded(),
                bytes: 0,
            }),
            capacity,
            max_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // Every update below leaves `bytes` matching `entries` before it can panic.
        self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The answer for `key`, counting a hit or a miss.
    pub fn get(&self, key: &Key) -> Option<Bytes> {
        let found = self.lock().entries.get(key).cloned();
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps an answer, dropping the least recently used ones beyond either bound.
    pub fn put(&self, key: Key, answer: Bytes) {
        if answer.len() > self.max_bytes {
            return;
        }
        let mut held = self.lock();
        held.bytes += answer.len();
        if let Some(old) = held.entries.put(key, answer) {
            held.bytes -= old.len();
        }
        while held.entries.len() > self.capacity || held.bytes > self.max_bytes {
            match held.entries.pop_lru() {
                Some((_, dropped)) => held.bytes -= dropped.len(),
                None => break,
            }
        }
    }

    /// Answers held now.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether it holds no answer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        let hits = self.hits.load(Ordering::Relaxed);
        let misses = self.misses.load(Ordering::Relaxed);
        let total = hits + misses;
        let (entries, bytes) = {
            let held = self.lock();
            (held.entries.len(), held.bytes)
        };
        CacheStats {
            capacity: self.capacity,
            max_bytes: self.max_bytes,
            entries,
            bytes,
            hits,
            misses,
            hit_ratio: if total == 0 { 0.0 } else { hits as f64 / total as f64 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> Key {
        [i; 32]
    }

    fn answer(len: usize) -> Bytes {
        Bytes::from(vec![b'x'; len])
    }

    #[test]
    fn the_byte_bound_drops_the_least_recently_used_answers() {
        let memo = MemoCache::with_max_bytes(100, 1_000);
        for i in 0..4 {
            memo.put(key(i), answer(300));
        }
        // 1,200 bytes asked for: the oldest (0) went.
        assert_eq!((memo.len(), memo.stats().bytes), (3, 900));
        assert!(memo.get(&key(0)).is_none());
        // 1 is used, so 2 is the one that goes next.
        assert!(memo.get(&key(1)).is_some());
        memo.put(key(4), answer(300));
        assert!(memo.get(&key(2)).is_none());
        assert!(memo.get(&key(1)).is_some());
        assert_eq!(memo.stats().bytes, 900);
    }

    #[test]
    fn a_replaced_answer_counts_its_new_size_only() {
        let memo = MemoCache::with_max_bytes(100, 1_000);
        memo.put(key(1), answer(600));
        memo.put(key(1), answer(100));
        memo.put(key(2), answer(800));
        let stats = memo.stats();
        assert_eq!((stats.entries, stats.bytes), (2, 900), "{stats:?}");
    }

    #[test]
    fn an_answer_over_the_byte_bound_is_not_kept_and_evicts_nothing() {
        let memo = MemoCache::with_max_bytes(100, 1_000);
        memo.put(key(1), answer(500));
        memo.put(key(2), answer(1_001));
        assert!(memo.get(&key(2)).is_none());
        assert!(memo.get(&key(1)).is_some());
    }

    #[test]
    fn the_entry_bound_holds_and_lookups_are_counted() {
        let memo = MemoCache::new(2);
        for i in 0..3 {
            memo.put(key(i), answer(1));
        }
        assert_eq!(memo.len(), 2);
        assert!(memo.get(&key(0)).is_none());
        assert!(memo.get(&key(2)).is_some());
        let stats = memo.stats();
        assert_eq!((stats.hits, stats.misses, stats.bytes), (1, 1, 2));
        assert_eq!(stats.hit_ratio, 0.5);
    }
}
