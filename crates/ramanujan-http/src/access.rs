//! Bearer API keys with a scope, as every host checks them (natively in the
//! host's guard, on Spin in each component's entry): `read` may call what
//! only reads (`GET`, `HEAD`), `write` may call everything. A request without
//! a key, or with one not held, gets 401 with `WWW-Authenticate`; a read key
//! on a route that changes something gets 403. Health probes stay open.
//!
//! Keys are held only as hashes and never logged or echoed: an error says
//! which scope is missing, never which key was sent.

use crate::ApiError;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Calls that only read.
    Read,
    /// Every call.
    Write,
}

impl Scope {
    /// `read` or `write`.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }

    /// The scope a call with `method` needs; `None`: none (a CORS preflight).
    pub fn needed_for(method: &Method) -> Option<Scope> {
        if *method == Method::OPTIONS {
            None
        } else if *method == Method::GET || *method == Method::HEAD {
            Some(Scope::Read)
        } else {
            Some(Scope::Write)
        }
    }
}

/// The keys a host accepts, as hashes.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    keys: Vec<([u8; 32], Scope)>,
}

/// The health probes, open to `GET` and `HEAD` without a key: the host's and
/// each component's. Listed, not matched by suffix, so that no other route
/// (a rule or an example that happens to be keyed `health`) is opened by its name.
pub const HEALTH_ROUTES: [&str; 14] = [
    "/health",
    "/agents/health",
    "/egraph/health",
    "/crdt/health",
    "/colors/health",
    "/stream/red/health",
    "/stream/blue/health",
    "/stream/green/health",
    "/timeline/health",
    "/skills/health",
    "/verify/health",
    "/2tdx/health",
    "/sync/health",
    "/dashboard/health",
];

/// Shortest key accepted: a guessable key protects nothing.
pub const MIN_KEY_BYTES: usize = 16;

impl ApiKeys {
    /// Reads `scope:key` entries separated by commas or lines (`#` starts a
    /// comment line), scope `read` or `write`: `write:k3y...,read:an0ther...`.
    pub fn parse(text: &str) -> Result<ApiKeys, String> {
        let mut keys = Vec::new();
        for (i, entry) in text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.starts_with('#'))
            .enumerate()
        {
            // The entry itself is a secret: errors name its position only.
            let (scope, key) = entry
                .split_once(':')
                .ok_or_else(|| format!("entry {} is not `read:<key>` or `write:<key>`", i + 1))?;
            let scope = match scope.trim() {
                "read" => Scope::Read,
                "write" => Scope::Write,
                _ => return Err(format!("entry {}: the scope is `read` or `write`", i + 1)),
            };
            let key = key.trim();
            if key.len() < MIN_KEY_BYTES || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "entry {}: a key is at least {MIN_KEY_BYTES} characters, without spaces",
                    i + 1
                ));
            }
            keys.push((*blake3::hash(key.as_bytes()).as_bytes(), scope));
        }
        if keys.is_empty() {
            return Err("no key given".into());
        }
        Ok(ApiKeys { keys })
    }

    /// The scope of `token` and which key it is; `None` if it is not one.
    pub fn find(&self, token: &str) -> Option<(Scope, usize)> {
        let hash = *blake3::hash(token.as_bytes()).as_bytes();
        // Hashes compared: how long a comparison takes says nothing of a key.
        self.keys
            .iter()
            .enumerate()
            .find(|(_, (held, _))| *held == hash)
            .map(|(i, (_, scope))| (*scope, i))
    }
}

/// Whether `path` is `prefix` or lies under it: `/2tdx/sync` covers
/// `/2tdx/sync/brief`, not `/2tdx/syncx`.
pub fn is_under(path: &str, prefix: &str) -> bool {
    path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

/// Whether `path` lies under one of `exempt`, the prefixes of routes that
/// check a key of their own, but for their `/peer` routes: those start work
/// on this host's own authority, so they need an API key as any route does.
pub fn is_exempt(path: &str, exempt: &[&str]) -> bool {
    !path.ends_with("/peer") && exempt.iter().any(|prefix| is_under(path, prefix))
}

/// Whether `path` is a health probe, open to reads without a key.
pub fn is_health(method: &Method, path: &str) -> bool {
    (*method == Method::GET || *method == Method::HEAD) && HEALTH_ROUTES.contains(&path)
}

/// Checks a request's `Authorization` header against `keys` for `method`
/// on `path`: which key let it through (`None`: no key was needed, a CORS
/// preflight), or the 401 or 403 to answer.
pub fn check(
    keys: &ApiKeys,
    method: &Method,
    path: &str,
    authorization: Option<&HeaderValue>,
) -> Result<Option<usize>, Refusal> {
    let Some(needed) = Scope::needed_for(method) else {
        return Ok(None);
    };
    let token = authorization
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "Bearer realm=\"ramanujan\"".into(),
            format!(
                "this route needs `Authorization: Bearer <key>` with a key of scope `{}` (API_KEYS)",
                needed.name()
            ),
        ));
    };
    let Some((scope, which)) = keys.find(token) else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "Bearer realm=\"ramanujan\", error=\"invalid_token\"".into(),
            "the bearer key is not one this host accepts".into(),
        ));
    };
    if scope < needed {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!(
                "Bearer realm=\"ramanujan\", error=\"insufficient_scope\", scope=\"{}\"",
                needed.name()
            ),
            format!(
                "this key has scope `{}`; {method} {path} needs `{}`",
                scope.name(),
                needed.name()
            ),
        ));
    }
    Ok(Some(which))
}

/// A 401 or 403: the status, the `WWW-Authenticate` challenge, and what is
/// missing (never the key sent).
#[derive(Debug)]
pub struct Refusal {
    /// 401 or 403.
    pub status: StatusCode,
    challenge: String,
    message: String,
}

fn refuse(status: StatusCode, challenge: String, message: String) -> Refusal {
    Refusal {
        status,
        challenge,
        message,
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = ApiError {
            status: self.status,
            message: self.message,
        }
        .into_response();
        if let Ok(value) = HeaderValue::from_str(&self.challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exempt_prefixes_cover_their_routes_but_not_their_peer_routes_or_lookalikes() {
        let exempt = ["/2tdx/sync", "/sync"];
        for open in ["/2tdx/sync", "/2tdx/sync/brief", "/sync", "/sync/brief"] {
            assert!(is_exempt(open, &exempt), "{open}");
        }
        for closed in [
            "/2tdx/sync/peer",
            "/sync/peer",
            "/2tdx/syncx",
            "/synced",
            "/2tdx/rules",
            "/",
        ] {
            assert!(!is_exempt(closed, &exempt), "{closed}");
        }
        assert!(!is_exempt("/sync", &[]));
    }

    #[test]
    fn keys_parse_with_their_scopes_and_errors_never_show_a_key() {
        let keys = ApiKeys::parse("write:0123456789abcdef-w, read:0123456789abcdef-r\n# a comment\n").unwrap();
        assert_eq!(keys.find("0123456789abcdef-w"), Some((Scope::Write, 0)));
        assert_eq!(keys.find("0123456789abcdef-r"), Some((Scope::Read, 1)));
        assert_eq!(keys.find("0123456789abcdef"), None);
        for bad in [
            "admin:0123456789abcdef-x",
            "0123456789abcdef-x",
            "write:short",
            "",
            "write:has a space in it!",
        ] {
            let e = ApiKeys::parse(bad).unwrap_err();
            assert!(!e.contains("0123456789") && !e.contains("short"), "{bad:?} -> {e}");
        }
    }
}
