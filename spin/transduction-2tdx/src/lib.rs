//! `transduction-2tdx` on Spin: `/2tdx/...` and `/sync/...`.
//!
//! An instance lives for one request, so the rule book lives in the
//! key-value store `default` (keys `tdx/book/...`, see
//! [`transduction_2tdx::kv_book`]): read before the request, and written
//! back before the answer when the request changed it (an answer that says a
//! change was made is given only once it is stored; a store that fails
//! answers 503 and keeps nothing). Each write stores the book under a key of
//! its own, merged with what other instances stored meanwhile, and deletes
//! only the keys it merged, and each instance edits as an actor of its own,
//! so instances writing at once lose no change although Spin's key-value
//! store has no compare-and-swap.
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
use transduction_2tdx::kv_book;
use transduction_2tdx::store::{BookStore, StoreError};
use transduction_2tdx::{TdxConfig, TdxService};

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

/// Writes the rules the app's agents run from `book` (whose digest is `digest`).
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
    let found = match kv_book::read(&kv).await {
        Ok(found) => found,
        Err(e) => return unavailable(format!("the rule book could not be read: {e}")),
    };
    let loaded = found.book.clone();
    let store = Arc::new(RequestBook {
        loaded: loaded.clone(),
        saved: Mutex::new(None),
    });
    let site = setting("local_endpoint").await.unwrap_or_else(|| "spin".into());
    let config = TdxConfig {
        // Instances of this site edit its book at once: each is an actor of its own.
        actor: Some(kv_book::instance_actor(&site)),
        site,
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
    let Some(changed) = store.saved.lock().expect("one thread").take() else {
        // Nothing changed here; the agents' rules may be stale (a write that
        // failed, or two instances' writes landing out of order): repaired.
        if let Some(book) = &loaded {
            let digest = book.digest();
            if agents_book(&kv).await.as_ref() != Some(&digest) {
                // A failure here is repaired by the next request.
                let _ = give_agents(&kv, book, digest).await;
            }
        }
        return response;
    };
    // Written with any other instance's change since this one read the book.
    let written = match kv_book::write(&kv, &changed, &found).await {
        Ok(written) => written,
        Err(e) => return unavailable(format!("the rule book could not be stored: {e}; nothing changed")),
    };
    // The app's agents (agent-orchestrator, same store) run its enabled rules.
    if let Err(e) = give_agents(&kv, &written, written.digest()).await {
        return unavailable(format!(
            "the rule book was stored, but not the agents' rules: {e} (the next request writes them)"
        ));
    }
    response
}
