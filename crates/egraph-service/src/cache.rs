//! The memo cache: a bounded LRU of rendered answers, keyed by content hash.

use bytes::Bytes;
use lru::LruCache;
use serde::Serialize;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A content hash.
pub type Key = [u8; 32];

/// Bounded LRU of answers, with hit and miss counts.
pub struct MemoCache {
    entries: Mutex<LruCache<Key, Bytes>>,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The cache's counters, as `/egraph/stats` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct CacheStats {
    /// Most entries held.
    pub capacity: usize,
    /// Entries held now.
    pub entries: usize,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to compute.
    pub misses: u64,
    /// `hits / (hits + misses)`, 0 before any lookup.
    pub hit_ratio: f64,
}

impl MemoCache {
    /// A cache holding at most `capacity` answers (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        MemoCache {
            entries: Mutex::new(LruCache::new(NonZeroUsize::new(capacity).expect("at least one"))),
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<Key, Bytes>> {
        // A panic while holding the lock cannot leave the LRU inconsistent for our use.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The answer for `key`, counting a hit or a miss.
    pub fn get(&self, key: &Key) -> Option<Bytes> {
        let found = self.lock().get(key).cloned();
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores an answer.
    pub fn put(&self, key: Key, value: Bytes) {
        self.lock().put(key, value);
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        let hits = self.hits.load(Ordering::Relaxed);
        let misses = self.misses.load(Ordering::Relaxed);
        let total = hits + misses;
        CacheStats {
            capacity: self.capacity,
            entries: self.lock().len(),
            hits,
            misses,
            hit_ratio: if total == 0 { 0.0 } else { hits as f64 / total as f64 },
        }
    }
}
