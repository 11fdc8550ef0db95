//! `stream-blue` on Spin: `/stream/blue/...`.

use spin_sdk::http::{IntoResponse, Request};

/// Serves one request.
#[spin_sdk::http_service]
async fn handle(request: Request) -> impl IntoResponse {
    spin_entry::serve(stream_blue::router(spin_entry::runtime("stream-blue")), request).await
}
