//! `transduction-2tdx` on Spin: `/2tdx/...` and `/sync/...`.
//!
//! An instance lives for one request, so the rule book lives in the
//! key-value store `default` (key `tdx/book`): read before the request, and
//! written back before the answer when the request changed it (an answer
//! that says a change was made is given only once it is stored; a store that
//! fails answers 503 and keeps nothing). Another instance may have stored a
//! change meanwhile: the book is a CRDT, so what the store holds then is
//! merged in before writing, and neither change is lost unless two writes
//! interleave between that read and the write (Spin's key-value has no
//! compare-and-swap).
//!
//! Each change also writes the book's enabled rules where the app's agents
//! (`agent-orchestrator`, the same store) read them (`agents/rules`): they
//! run them, in their colours, from their next request on. That set names
//! the digest of the book it came from; any request that finds it stale (a
//! write that failed, two instances' writes landing out of order) writes it
//! again.
//!
//! Not here: syncing with a peer on an interval (no process lives between
//! requests; a peer can sync with this one through `POST /2tdx/sync`, and
//! `POST /2tdx/sync/peer` answers 404), mining from the network (the agents
//! are another component; 404 saying so).
//!
//! Settings (Spin variables, else the environment): `tdx_api_key` (the key
//! changes and syncs need; unset: open), `local_endpoint` (this site's name).

use axum::response::{IntoResponse, Response};
use ramanujan_http::kv::KeyValue;
use ramanujan_http::offload::Inline;
use ramanujan_wire::wire::{AGENT_RULES_KEY, AgentRuleSet};
use spin_entry::SpinKeyValue;
use spin_sdk::http::Request;
use std::sync::{Arc, Mutex};
use transduction_2tdx::agents::agent_rules;
use transduction_2tdx::book::{BookState, Changed};
use transduction_2tdx::store::{BookStore, StoreError};
use transduction_2tdx::{TdxConfig, TdxService};

/// Where the book is kept in the store.
const BOOK_KEY: &str = "tdx/book";

/// The book as this request found it, and the one it changed it to.
struct RequestBook {
    loaded: Option<BookState>,
    saved: Mutex<Option<BookState>>,
}

impl BookStore for RequestBook {
    fn load(&self) -> Result<Option<BookState>, StoreError> {
        Ok(self.loaded.clone())
    }

    fn save(&self, book: &BookState, _changed: &Changed) -> Result<(), StoreError> {
        *self.saved.lock().expect("one thread") = Some(book.clone());
        Ok(())
    }
}

async fn setting(name: &str) -> Option<String> {
    let value = match spin_sdk::variables::get(name).await {
        Ok(value) => Some(value),
        Err(_) => std::env::var(name.to_ascii_uppercase()).ok(),
    };
    value.filter(|v| !v.is_empty())
}

fn unavailable(message: String) -> Response {
    ramanujan_http::ApiError::unavailable(message).into_response()
}

/// The stored book and a digest of its bytes (`None` when nothing is stored).
async fn read_book(kv: &SpinKeyValue) -> Result<(Option<BookState>, Option<String>), String> {
    match kv.get(BOOK_KEY).await? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(|book| (Some(book), Some(digest(&bytes))))
            .map_err(|e| format!("the stored rule book does not read: {e}")),
        None => Ok((None, None)),
    }
}

fn digest(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..32].to_string()
}

/// Writes the rules the app's agents run from `book` (stored as `digest`).
async fn give_agents(kv: &SpinKeyValue, book: &BookState, digest: String) -> Result<(), String> {
    let given = AgentRuleSet {
        builtin: true,
        rules: agent_rules(&book.enabled_rules(), true).specs,
        book: Some(digest),
    };
    let bytes = serde_json::to_vec(&given).map_err(|e| e.to_string())?;
    kv.set(AGENT_RULES_KEY, bytes).await
}

/// The digest of the book the agents' rules were last written from.
async fn agents_book(kv: &SpinKeyValue) -> Option<String> {
    let bytes = kv.get(AGENT_RULES_KEY).await.ok()??;
    serde_json::from_slice::<AgentRuleSet>(&bytes).ok()?.book
}

/// Serves one request.
#[spin_sdk::http_service]
async fn handle(request: Request) -> Response {
    let kv = SpinKeyValue::new("default");
    let (loaded, loaded_digest) = match read_book(&kv).await {
        Ok(read) => read,
        Err(e) => return unavailable(format!("the rule book could not be read: {e}")),
    };
    let store = Arc::new(RequestBook {
        loaded: loaded.clone(),
        saved: Mutex::new(None),
    });
    let config = TdxConfig {
        site: setting("local_endpoint").await.unwrap_or_else(|| "spin".into()),
        api_key: setting("tdx_api_key").await,
        // A malformed API_KEYS is answered 500 by `serve_with`, naming it.
        host_keys: spin_entry::api_keys().await.ok().flatten(),
        ..TdxConfig::default()
    };
    // With a key of their own, the sync routes take it instead of an API key (as natively).
    let exempt: &[&str] = if config.api_key.is_some() {
        &["/2tdx/sync", "/sync"]
    } else {
        &[]
    };
    let service = match TdxService::new(config, Arc::new(Inline)).with_own_store(store.clone()) {
        Ok(service) => service,
        Err(e) => return unavailable(e),
    };
    let response = spin_entry::serve_with(transduction_2tdx::router(Arc::new(service), None), request, exempt).await;
    let Some(mut changed) = store.saved.lock().expect("one thread").take() else {
        // Nothing changed here; the agents' rules may be stale (a write that
        // failed, or two instances' writes landing out of order): repaired.
        if let (Some(book), Some(digest)) = (&loaded, loaded_digest)
            && agents_book(&kv).await.as_ref() != Some(&digest)
        {
            // A failure here is repaired by the next request.
            let _ = give_agents(&kv, book, digest).await;
        }
        return response;
    };
    // Another instance's change since this one read the book joins it.
    match read_book(&kv).await {
        Ok((current, _)) if current != loaded => {
            if let Some(current) = current {
                changed.merge(current);
            }
        }
        Ok(_) => {}
        Err(e) => return unavailable(format!("the rule book could not be read back: {e}; nothing changed")),
    }
    let bytes = match serde_json::to_vec(&changed) {
        Ok(bytes) => bytes,
        Err(e) => return unavailable(format!("the rule book could not be encoded: {e}; nothing changed")),
    };
    let stored_digest = digest(&bytes);
    if let Err(e) = kv.set(BOOK_KEY, bytes).await {
        return unavailable(format!("the rule book could not be stored: {e}; nothing changed"));
    }
    // The app's agents (agent-orchestrator, same store) run its enabled rules.
    if let Err(e) = give_agents(&kv, &changed, stored_digest).await {
        return unavailable(format!(
            "the rule book was stored, but not the agents' rules: {e} (the next request writes them)"
        ));
    }
    response
}
