//! `stream-green` on Spin: `/stream/green/...`.

use spin_sdk::http::{IntoResponse, Request};

/// Serves one request.
#[spin_sdk::http_service]
async fn handle(request: Request) -> impl IntoResponse {
    spin_entry::serve(stream_green::router(spin_entry::runtime("stream-green")), request).await
}
