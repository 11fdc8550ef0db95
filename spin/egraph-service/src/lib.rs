//! `egraph-service` on Spin: `/egraph/...`; saturations run inline, the memo lives as long as the instance does.

use spin_sdk::http::{IntoResponse, Request};

/// Serves one request.
#[spin_sdk::http_service]
async fn handle(request: Request) -> impl IntoResponse {
    spin_entry::serve(
        egraph_service::router(
            spin_entry::runtime("egraph-service"),
            egraph_service::DEFAULT_CACHE_CAPACITY,
        ),
        request,
    )
    .await
}
