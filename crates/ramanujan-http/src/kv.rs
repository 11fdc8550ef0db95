//! Key-value storage a host may give components: Spin's key-value store on
//! Spin (shared by every instance of the app), nothing natively, where a
//! process keeps its state in memory or in its own files.

use std::future::Future;
use std::pin::Pin;

/// A boxed future, so the trait can be used as `dyn KeyValue`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A key-value store.
pub trait KeyValue: Send + Sync {
    /// The value of `key`, if any.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>>;
    /// Sets `key`; durable once this returns `Ok` (as durable as the store).
    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<(), String>>;
}
