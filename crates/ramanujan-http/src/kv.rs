//! Key-value storage a host may give components: Spin's key-value store on
//! Spin (shared by every instance of the app), nothing natively, where a
//! process keeps its state in memory or in its own files.

use std::collections::HashMap;
use std::sync::Mutex;

/// A boxed future (`futures-core`'s), so the trait can be used as `dyn KeyValue`.
pub use futures_core::future::BoxFuture;

/// A key-value store.
pub trait KeyValue: Send + Sync {
    /// The value of `key`, if any.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>>;
    /// Sets `key`; durable once this returns `Ok` (as durable as the store).
    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<(), String>>;
    /// Deletes `key` (nothing if it is not there).
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), String>>;
    /// The keys that start with `prefix`, sorted.
    fn keys<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, String>>;
}

/// A key-value store in memory, for tests and benchmarks of what runs over one.
#[derive(Debug, Default)]
pub struct MemoryKeyValue(Mutex<HashMap<String, Vec<u8>>>);

impl MemoryKeyValue {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl KeyValue for MemoryKeyValue {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>> {
        Box::pin(async move { Ok(self.map().get(key).cloned()) })
    }
    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.map().insert(key.to_string(), value);
            Ok(())
        })
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.map().remove(key);
            Ok(())
        })
    }
    fn keys<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, String>> {
        Box::pin(async move {
            let mut keys: Vec<String> = self.map().keys().filter(|k| k.starts_with(prefix)).cloned().collect();
            keys.sort();
            Ok(keys)
        })
    }
}
