//! Bearer API keys with a scope: `read` may call what only reads (`GET`,
//! `HEAD`), `write` may call everything. A request without a key, or with one
//! the host does not hold, gets 401 with `WWW-Authenticate`; a read key on a
//! route that changes something gets 403. Health routes stay open (probes
//! carry no keys), and so do routes that check a key of their own.
//!
//! Keys are held only as hashes and never logged or echoed: an error says
//! which scope is missing, never which key was sent.

use crate::guard::rate::Client;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use ramanujan_http::ApiError;
use std::sync::Arc;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Calls that only read.
    Read,
    /// Every call.
    Write,
}

impl Scope {
    fn name(self) -> &'static str {
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
    fn find(&self, token: &str) -> Option<(Scope, usize)> {
        let hash = *blake3::hash(token.as_bytes()).as_bytes();
        // Hashes compared: how long a comparison takes says nothing of a key.
        self.keys
            .iter()
            .enumerate()
            .find(|(_, (held, _))| *held == hash)
            .map(|(i, (_, scope))| (*scope, i))
    }
}

/// The keys and the paths that need none.
#[derive(Debug)]
pub struct Access {
    keys: ApiKeys,
    exempt: Vec<&'static str>,
    agents_signed: bool,
}

impl Access {
    /// `keys`, with `exempt` paths (and everything under them) open: routes
    /// that check a key of their own; so do the agent-to-agent routes when
    /// `agents_signed` (they take the network key's signature instead).
    pub fn new(keys: ApiKeys, exempt: Vec<&'static str>, agents_signed: bool) -> Access {
        Access {
            keys,
            exempt,
            agents_signed,
        }
    }

    fn open(&self, method: &Method, path: &str) -> bool {
        let under = |prefix: &str| path == prefix || path.strip_prefix(prefix).is_some_and(|r| r.starts_with('/'));
        let reading = *method == Method::GET || *method == Method::HEAD;
        // Health probes carry no keys, and the API's description is no
        // secret; the sync routes' own peer route (`/sync/peer`) triggers
        // work, so it is not theirs to open.
        (reading && (HEALTH_ROUTES.contains(&path) || crate::openapi::is_public(path)))
            || (self.agents_signed && crate::guard::signed::agent_to_agent(path))
            || self.exempt.iter().any(|p| under(p) && !path.ends_with("/peer"))
    }
}

fn refuse(status: StatusCode, challenge: String, message: String) -> Response {
    let mut response = ApiError { status, message }.into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The middleware: lets through what the request's key may do, and tags the
/// request with its [`Client`] for the rate limit.
pub async fn authenticate(State(access): State<Arc<Access>>, mut request: Request, next: Next) -> Response {
    let Some(needed) = Scope::needed_for(request.method()) else {
        return next.run(request).await;
    };
    if access.open(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Bearer realm=\"ramanujan\"".into(),
            format!(
                "this route needs `Authorization: Bearer <key>` with a key of scope `{}` (API_KEYS)",
                needed.name()
            ),
        );
    };
    let Some((scope, which)) = access.keys.find(token) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Bearer realm=\"ramanujan\", error=\"invalid_token\"".into(),
            "the bearer key is not one this host accepts".into(),
        );
    };
    if scope < needed {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "Bearer realm=\"ramanujan\", error=\"insufficient_scope\", scope=\"{}\"",
                needed.name()
            ),
            format!(
                "this key has scope `{}`; {} {} needs `{}`",
                scope.name(),
                request.method(),
                request.uri().path(),
                needed.name()
            ),
        );
    }
    request.extensions_mut().insert(Client::Key(which));
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn health_and_exempt_routes_are_open_and_nothing_else() {
        let access = Access::new(
            ApiKeys::parse("write:0123456789abcdef").unwrap(),
            vec!["/2tdx/sync", "/sync"],
            false,
        );
        for open in ["/health", "/crdt/health", "/2tdx/sync", "/sync", "/2tdx/sync/brief"] {
            assert!(access.open(&Method::GET, open), "{open}");
        }
        assert!(access.open(&Method::POST, "/2tdx/sync"));
        for closed in [
            "/2tdx/sync/peer",
            "/sync/peer",
            "/2tdx/syncx",
            "/agents/submit",
            "/healthz",
            "/",
            "/2tdx/rules/health",
            "/skills/examples/health",
        ] {
            assert!(!access.open(&Method::GET, closed), "{closed}");
        }
        assert!(
            !access.open(&Method::DELETE, "/health"),
            "a health route opens reads only"
        );
    }
}
