//! `egraph-service` on Spin: `/egraph/...`. Saturations run inline; answers are
//! memoised per instance and in the key-value store `default` (`KV_STORE`),
//! which every instance shares.

use spin_sdk::http::{IntoResponse, Request};

/// Serves one request.
#[spin_sdk::http_service]
async fn handle(request: Request) -> impl IntoResponse {
    let mut runtime = spin_entry::runtime("egraph-service");
    let label = std::env::var("KV_STORE").unwrap_or_else(|_| "default".to_string());
    runtime.shared = Some(spin_entry::shared_store(&label));
    spin_entry::serve(
        egraph_service::router(runtime, egraph_service::DEFAULT_CACHE_CAPACITY),
        request,
    )
    .await
}
