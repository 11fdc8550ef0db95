//! The host's use of the API keys ([`ramanujan_http::access`]): which
//! routes need none (health probes, the API's description, routes that
//! check a key of their own, agent-to-agent routes when they are signed),
//! and the check of the rest ([`crate::guard::admit`] runs it).

use axum::extract::Request;
use http::{Method, header};
pub use ramanujan_http::access::{ApiKeys, HEALTH_ROUTES, MIN_KEY_BYTES, Refusal, Scope};

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
        let reading = *method == Method::GET || *method == Method::HEAD;
        // Health probes carry no keys; the API's description and the
        // dashboard's static shell are no secret; the sync routes' own peer
        // route (`/sync/peer`) triggers work, so it is not theirs to open.
        ramanujan_http::access::is_health(method, path)
            || (reading && (crate::openapi::is_public(path) || dashboard::page::is_shell(path)))
            || (self.agents_signed && crate::guard::signed::agent_to_agent(path))
            || ramanujan_http::access::is_exempt(path, &self.exempt)
    }
}

impl Access {
    /// Whether `request` may go on: which key let it through (`None`: the
    /// route is open, or no key was needed), or the 401 or 403 to answer.
    pub fn admit(&self, request: &Request) -> Result<Option<usize>, Refusal> {
        if self.open(request.method(), request.uri().path()) {
            return Ok(None);
        }
        ramanujan_http::access::check(
            &self.keys,
            request.method(),
            request.uri().path(),
            request.headers().get(header::AUTHORIZATION),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "/api/metrics",
            "/api/metrics/stream",
            "/dashboard/health2",
            "/dashboard/assets",
            "/2tdx/rules/health",
            "/skills/examples/health",
        ] {
            assert!(!access.open(&Method::GET, closed), "{closed}");
        }
        assert!(
            !access.open(&Method::DELETE, "/health"),
            "a health route opens reads only"
        );
        for shell in ["/", "/dashboard", "/dashboard/assets/dashboard.js"] {
            assert!(access.open(&Method::GET, shell), "{shell}");
            assert!(!access.open(&Method::POST, shell), "{shell}: reads only");
        }
    }
}
