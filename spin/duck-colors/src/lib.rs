//! `duck-colors` on Spin: `/colors/...`.

use spin_sdk::http::{IntoResponse, Request};

/// Serves one request.
#[spin_sdk::http_service]
async fn handle(request: Request) -> impl IntoResponse {
    spin_entry::serve(duck_colors::router(), request).await
}
