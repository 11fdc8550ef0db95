//! Spin's key-value store behind `ramanujan_http::kv::KeyValue`.

use ramanujan_http::kv::{BoxFuture, KeyValue};
use spin_sdk::key_value::Store;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A future marked `Send`. A wasm32-wasip2 component runs on one thread, so
/// its futures never move between threads and `Send` holds trivially; the
/// routes' trait objects ask for it, Spin's futures do not claim it.
pub struct OneThread<F>(F);

// SAFETY: wasm32-wasip2 has no threads; see the compile-time check below.
unsafe impl<F> Send for OneThread<F> {}

#[cfg(not(all(target_arch = "wasm32", not(target_feature = "atomics"))))]
compile_error!("OneThread is only sound on single-threaded wasm32");

impl<F: Future> Future for OneThread<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: structural pinning of the only field.
        unsafe { self.map_unchecked_mut(|s| &mut s.0) }.poll(cx)
    }
}

/// Boxes a future as `Send` (see [`OneThread`]).
pub fn one_thread<'a, T>(future: impl Future<Output = T> + 'a) -> BoxFuture<'a, T> {
    Box::pin(OneThread(future))
}

/// A Spin key-value store, opened by label.
pub struct SpinKeyValue {
    label: String,
}

impl SpinKeyValue {
    /// The store `label` (granted in `spin.toml`'s `key_value_stores`).
    pub fn new(label: &str) -> Self {
        SpinKeyValue {
            label: label.to_string(),
        }
    }
}

impl KeyValue for SpinKeyValue {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>> {
        one_thread(async move {
            let store = Store::open(&self.label).await.map_err(|e| e.to_string())?;
            store.get(key).await.map_err(|e| e.to_string())
        })
    }

    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<(), String>> {
        one_thread(async move {
            let store = Store::open(&self.label).await.map_err(|e| e.to_string())?;
            store.set(key, value).await.map_err(|e| e.to_string())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), String>> {
        one_thread(async move {
            let store = Store::open(&self.label).await.map_err(|e| e.to_string())?;
            store.delete(key).await.map_err(|e| e.to_string())
        })
    }

    fn keys<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, String>> {
        one_thread(async move {
            let store = Store::open(&self.label).await.map_err(|e| e.to_string())?;
            let keys = store.get_keys().await.collect().await.map_err(|e| e.to_string())?;
            let mut keys: Vec<String> = keys.into_iter().filter(|k| k.starts_with(prefix)).collect();
            keys.sort();
            Ok(keys)
        })
    }
}

/// The store `label` as a component's shared store ([`ramanujan_http::Runtime::shared`]).
pub fn shared_store(label: &str) -> Arc<dyn KeyValue> {
    Arc::new(SpinKeyValue::new(label))
}
