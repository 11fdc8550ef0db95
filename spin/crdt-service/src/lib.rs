//! `crdt-service` on Spin: `/crdt/...`. The merge memo lives as long as the
//! instance does.

use spin_sdk::http::{IntoResponse, Request};

/// Serves one request.
#[spin_sdk::http_service]
async fn handle(request: Request) -> impl IntoResponse {
    spin_entry::serve(
        crdt_service::router(crdt_service::DEFAULT_CACHE_CAPACITY, None),
        request,
    )
    .await
}
