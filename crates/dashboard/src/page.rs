//! The live page: `GET /` and `GET /dashboard`, and its assets under
//! `/dashboard/assets/`, every byte embedded in the binary (no CDN, no
//! external font). The page draws from the host's own routes: the metrics
//! stream, `/agents/...`, `/agent/{id}/...` and `/timeline/...`.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::OnceLock;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../assets/index.html"),
};

/// The page's scripts and styles; uPlot is vendored from the npm registry
/// (`uplot` 1.6.32, MIT, its licence beside it).
const ASSETS: &[Asset] = &[
    Asset {
        name: "dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/dashboard.js"),
    },
    Asset {
        name: "dashboard.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/dashboard.css"),
    },
    Asset {
        name: "uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/vendor/uPlot.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/vendor/uPlot.min.css"),
    },
    Asset {
        name: "uPlot.LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../assets/vendor/uPlot.LICENSE"),
    },
];

/// What the page weighs: the HTML and every asset it loads.
pub fn page_bytes() -> usize {
    INDEX.body.len() + ASSETS.iter().map(|a| a.body.len()).sum::<usize>()
}

/// Whether `path` is the page's shell (`/`, `/dashboard`, an asset): static
/// bytes with no data of the network in them, so a host that asks for API
/// keys serves them without one (a browser cannot send a key when it
/// navigates); the page then asks its user for a key and sends it with each
/// of its data requests.
pub fn is_shell(path: &str) -> bool {
    path == "/"
        || path == "/dashboard"
        || path
            .strip_prefix("/dashboard/assets/")
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// `/`, `/dashboard` and `/dashboard/assets/{name}`.
pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/dashboard", get(index))
        .route("/dashboard/assets/{name}", get(asset))
}

/// The live dashboard page.
#[utoipa::path(get, path = "/", tag = "dashboard", responses((status = 200, description = "the page", content_type = "text/html; charset=utf-8", body = String),
    (status = 304, description = "not modified (`If-None-Match`)")))]
pub(crate) async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

/// The page again, at `/dashboard`.
#[utoipa::path(get, path = "/dashboard", tag = "dashboard", responses((status = 200, description = "the page", content_type = "text/html; charset=utf-8", body = String),
    (status = 304, description = "not modified (`If-None-Match`)")))]
#[allow(dead_code)] // describes the route `index` also serves
pub(crate) fn dashboard() {}

/// One of the page's scripts or styles (served from the binary).
#[utoipa::path(get, path = "/dashboard/assets/{name}", tag = "dashboard", params(("name" = String, Path, description = "the asset's file name")),
    responses((status = 200, description = "the asset",
            content((String = "text/javascript; charset=utf-8"), (String = "text/css; charset=utf-8"), (String = "text/plain; charset=utf-8"))),
        (status = 304, description = "not modified (`If-None-Match`)"),
        (status = 404, description = "no such asset", body = ramanujan_http::ErrorBody)))]
pub(crate) async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => serve(asset, &headers),
        None => ramanujan_http::ApiError::not_found(format!("no dashboard asset `{name}`")).into_response(),
    }
}

/// The entity tag of an asset: a hash of its bytes, computed once.
fn etag(asset: &Asset) -> &'static str {
    static TAGS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        std::iter::once(&INDEX)
            .chain(ASSETS)
            .map(|a| {
                let hash = blake3::hash(a.body);
                (a.name, format!("\"{}\"", &hash.to_hex()[..16]))
            })
            .collect()
    });
    tags.iter()
        .find(|(name, _)| *name == asset.name)
        .map_or("\"\"", |(_, tag)| tag.as_str())
}

/// The asset, or 304 when the browser holds this version. Browsers check
/// again each time (`no-cache`), so a new binary's page is never stale.
fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let tag = etag(asset);
    let headers = [
        (header::ETAG, HeaderValue::from_static(tag)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                 img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
            ),
        ),
    ];
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (
        headers,
        [(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type))],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_weighs_at_most_300_kb() {
        assert!(page_bytes() <= 300 * 1024, "{} bytes", page_bytes());
    }

    #[test]
    fn every_asset_the_page_names_is_served() {
        let html = std::str::from_utf8(INDEX.body).unwrap();
        for link in html.split("/dashboard/assets/").skip(1) {
            let name: String = link.chars().take_while(|c| *c != '"').collect();
            assert!(ASSETS.iter().any(|a| a.name == name), "{name} is not embedded");
        }
        // Nothing from elsewhere: no absolute URL in the page or its script.
        for asset in [&INDEX, &ASSETS[0], &ASSETS[1]] {
            // The SVG namespace is a name, not a place the page loads from.
            let text = std::str::from_utf8(asset.body)
                .unwrap()
                .replace("http://www.w3.org/2000/svg", "");
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "{} loads from elsewhere",
                asset.name
            );
        }
    }
}
