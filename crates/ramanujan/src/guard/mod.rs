//! What stands between the network and the routes, natively: who may call
//! ([`access`]: bearer keys with a read or a write scope; [`signed`]: agent
//! to agent, the network's key), how often
//! ([`rate`]: a per-client limit), for how long ([`deadline`]: a request
//! timeout) and from which web origins (CORS). Each is off until configured,
//! but the timeout (30 s).
//!
//! Order, outermost first: CORS (a preflight is answered before anything asks
//! for a key, and refusals still carry the CORS headers a browser needs to
//! read them), the timeout, the keys and then the rate limit (which counts
//! per authenticated key, else per address), the network key's signatures
//! (checked after the rate limit: checking one reads the whole body).
//!
//! The keys and the rate limit are one middleware ([`admit`]), not two: each
//! layer costs every request a boxed future and a clone of the routes below
//! it, and on the cheapest routes that was measurable (BENCHMARKS.md).

pub mod access;
pub mod deadline;
pub mod rate;
pub mod signed;

use crate::config::ServeArgs;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, header};
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The API keys `args` give (`API_KEYS` or `API_KEYS_FILE`), if any; an
/// error names the setting that does not read, never a key.
pub fn api_keys(args: &ServeArgs) -> Result<Option<access::ApiKeys>, String> {
    Ok(match (&args.api_keys, &args.api_keys_file) {
        (Some(_), Some(_)) => return Err("give API_KEYS or API_KEYS_FILE, not both".into()),
        (Some(text), None) => Some(access::ApiKeys::parse(text).map_err(|e| format!("API_KEYS: {e}"))?),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("API_KEYS_FILE {}: {e}", path.display()))?;
            Some(access::ApiKeys::parse(&text).map_err(|e| format!("API_KEYS_FILE {}: {e}", path.display()))?)
        }
        (None, None) => None,
    })
}

/// The keys and the rate limit, each when configured.
pub struct Admission {
    access: Option<Arc<access::Access>>,
    rate: Option<Arc<rate::RateLimit>>,
}

/// The middleware of [`Admission`]: the key first (401/403), then the
/// client's budget (429), counted against the key when there was one.
pub async fn admit(State(admission): State<Arc<Admission>>, request: Request, next: Next) -> Response {
    let key = match &admission.access {
        Some(access) => match access.admit(&request) {
            Ok(key) => key,
            Err(refused) => return refused.into_response(),
        },
        None => None,
    };
    if let Some(rate) = &admission.rate
        && let Err(wait) = rate.check(rate::Client::of(&request, key))
    {
        return rate::too_many(wait);
    }
    next.run(request).await
}

/// The guards a host runs with, read from its options.
#[derive(Clone)]
pub struct Guards {
    access: Option<Arc<access::Access>>,
    signed: Option<Arc<signed::NetworkKey>>,
    rate: Option<Arc<rate::RateLimit>>,
    timeout: Duration,
    cors: Option<CorsLayer>,
}

impl Guards {
    /// The guards `args` configure; an error names the option that does not read.
    pub fn from_args(args: &ServeArgs) -> Result<Guards, String> {
        let keys = api_keys(args)?;
        let network_key = secret(&args.network_key, &args.network_key_file, "NETWORK_KEY")?;
        let signed = network_key.map(|key| Arc::new(signed::NetworkKey::new(key.into_bytes(), args.max_body_bytes)));
        // The rule-book sync routes check a key of their own (TDX_API_KEY),
        // and signed agent-to-agent routes the network's: a peer sends that,
        // not an API key.
        let own_key = args.tdx_api_key.is_some() || args.tdx_api_key_file.is_some();
        let exempt = if own_key {
            vec!["/2tdx/sync", "/sync"]
        } else {
            Vec::new()
        };
        let access = keys.map(|keys| Arc::new(access::Access::new(keys, exempt, signed.is_some())));
        let rate = match args.rate_limit {
            0 => None,
            per_second => Some(Arc::new(rate::RateLimit::new(per_second, args.rate_limit_burst)?)),
        };
        if args.timeout_seconds == 0 {
            return Err("TIMEOUT_SECONDS must be at least 1".into());
        }
        Ok(Guards {
            access,
            signed,
            rate,
            timeout: Duration::from_secs(args.timeout_seconds),
            cors: args.cors_origins.as_deref().map(cors).transpose()?,
        })
    }

    /// Agent-to-agent requests refused for their signature since start
    /// (`None`: no network key, the routes are open).
    pub fn refused_signatures(&self) -> Option<u64> {
        self.signed.as_ref().map(|key| key.refused())
    }

    /// `router` behind the guards.
    pub fn wrap(self, mut router: Router) -> Router {
        if let Some(key) = self.signed {
            router = router.layer(axum::middleware::from_fn_with_state(key, signed::verify));
        }
        if self.access.is_some() || self.rate.is_some() {
            let admission = Arc::new(Admission {
                access: self.access,
                rate: self.rate,
            });
            router = router.layer(axum::middleware::from_fn_with_state(admission, admit));
        }
        router = router.layer(axum::middleware::from_fn_with_state(self.timeout, deadline::cut_off));
        if let Some(cors) = self.cors {
            router = router.layer(cors);
        }
        router
    }
}

/// A secret given inline or as a file (its first line); both is an error.
fn secret(inline: &Option<String>, file: &Option<std::path::PathBuf>, name: &str) -> Result<Option<String>, String> {
    let key = match (inline, file) {
        (Some(_), Some(_)) => return Err(format!("give {name} or {name}_FILE, not both")),
        (Some(key), None) => key.trim().to_string(),
        (None, Some(path)) => crate::config::secret_from_file(path, name)?,
        (None, None) => return Ok(None),
    };
    if key.len() < access::MIN_KEY_BYTES {
        return Err(format!("{name} must be at least {} characters", access::MIN_KEY_BYTES));
    }
    Ok(Some(key))
}

/// The CORS policy `CORS_ORIGINS` names: `*` (any origin, no credentials) or
/// origins separated by commas (`https://app.example,http://localhost:5173`).
fn cors(origins: &str) -> Result<CorsLayer, String> {
    let allow = if origins.trim() == "*" {
        AllowOrigin::any()
    } else {
        let list: Vec<HeaderValue> = origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| {
                let scheme_host = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://"));
                match scheme_host {
                    Some(rest) if !rest.is_empty() && !rest.contains(['/', '?', '#', ' ', '*']) => {
                        HeaderValue::from_str(o).map_err(|e| format!("CORS_ORIGINS: {o:?}: {e}"))
                    }
                    _ => Err(format!(
                        "CORS_ORIGINS: {o:?} is not an origin such as https://app.example or http://localhost:5173"
                    )),
                }
            })
            .collect::<Result<_, _>>()?;
        if list.is_empty() {
            return Err("CORS_ORIGINS names no origin".into());
        }
        AllowOrigin::list(list)
    };
    Ok(CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([header::RETRY_AFTER, header::WWW_AUTHENTICATE])
        .max_age(Duration::from_secs(600)))
}
