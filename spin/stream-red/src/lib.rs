//! `stream-red` on Spin: `/stream/red/...`.

use spin_sdk::http::{IntoResponse, Request};

/// Serves one request.
#[spin_sdk::http_service]
async fn handle(request: Request) -> impl IntoResponse {
    spin_entry::serve(stream_red::router(spin_entry::runtime("stream-red")), request).await
}
