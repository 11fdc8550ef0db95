//! Requests per route, as the host's middleware ([`track`]) counts them: a
//! Prometheus counter (by route, method and status) and latency histogram (by
//! route), and an HDR histogram per route for the percentiles `/api/metrics`
//! reports. One [`RequestMetrics`] per host: two hosts in one process (as in
//! the tests) never mix their counts.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The route label of a request no route matched (a 404 from the fallback):
/// one label for all of them, so a scan of random paths cannot grow the
/// metrics without bound.
pub const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// Latency buckets, in seconds: 100 µs doubling up to about 26 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 19))
}

/// What one host has served, per route.
pub struct RequestMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    routes: Mutex<BTreeMap<String, RouteStats>>,
    started: Instant,
}

/// One route's counts and latencies, for `/api/metrics`.
struct RouteStats {
    requests: u64,
    client_errors: u64,
    server_errors: u64,
    /// Microseconds, 1 µs to 1 h, two significant figures.
    latency_us: hdrhistogram::Histogram<u64>,
}

/// One route's figures, as `/api/metrics` reports them under `performance`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoutePerformance {
    /// The route as it was declared (`/agent/{id}/state`), or `unmatched`.
    pub route: String,
    /// Requests answered.
    pub requests: u64,
    /// Of them, answered 4xx.
    pub client_errors: u64,
    /// Of them, answered 5xx.
    pub server_errors: u64,
    /// Requests per second since the host started.
    pub rate_per_second: f64,
    /// Latency percentiles, in milliseconds (to two significant figures).
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// The slowest.
    pub max_ms: f64,
}

impl RouteStats {
    fn new() -> Self {
        RouteStats {
            requests: 0,
            client_errors: 0,
            server_errors: 0,
            latency_us: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid bounds"),
        }
    }
}

/// The family of a route: its first path segment (`/agent/{id}/state` is in
/// `/agent`), the page and its assets in `/dashboard`, paths no route matched in
/// `unmatched`.
pub fn family(route: &str) -> &'static str {
    const FAMILIES: &[&str] = &[
        "/agents",
        "/agent",
        "/egraph",
        "/stream",
        "/crdt",
        "/colors",
        "/timeline",
        "/api",
        "/metrics",
        "/health",
        "/status",
        "/skills",
        "/verify",
        "/2tdx",
        "/sync",
    ];
    if route == "/" || route.starts_with("/dashboard") {
        return "/dashboard";
    }
    let first = route.split('/').nth(1).unwrap_or("");
    FAMILIES.iter().find(|f| &f[1..] == first).copied().unwrap_or(UNMATCHED)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RequestMetrics {
    /// Empty metrics, with their own registry.
    pub fn new() -> Arc<RequestMetrics> {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = LatencyFamily::new_with_constructor(latency_histogram);
        registry.register(
            "ramanujan_http_requests",
            "HTTP requests answered, by route, method and status",
            requests.clone(),
        );
        registry.register(
            "ramanujan_http_request_duration_seconds",
            "Time to answer an HTTP request (to its response head), by route",
            latency.clone(),
        );
        Arc::new(RequestMetrics {
            registry,
            requests,
            latency,
            routes: Mutex::default(),
            started: Instant::now(),
        })
    }

    /// Counts one request answered `status` after `elapsed`.
    pub fn record(&self, route: &str, method: &Method, status: StatusCode, elapsed: Duration) {
        // Methods outside the standard ones share one label (bounded labels).
        let method = match *method {
            Method::GET
            | Method::POST
            | Method::PUT
            | Method::DELETE
            | Method::HEAD
            | Method::OPTIONS
            | Method::PATCH => method.as_str(),
            _ => "other",
        };
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                method: method.to_string(),
                status: status.as_u16(),
            })
            .inc();
        let labels = RouteLabels {
            route: route.to_string(),
        };
        self.latency.get_or_create(&labels).observe(elapsed.as_secs_f64());
        let mut routes = lock(&self.routes);
        let stats = routes.entry(route.to_string()).or_insert_with(RouteStats::new);
        stats.requests += 1;
        stats.client_errors += u64::from(status.is_client_error());
        stats.server_errors += u64::from(status.is_server_error());
        stats.latency_us.saturating_record(elapsed.as_micros().max(1) as u64);
    }

    /// Appends the request metrics in the Prometheus text format (0.0.4).
    pub fn encode(&self, out: &mut String) -> std::fmt::Result {
        prometheus_client::encoding::prometheus_text::encode(out, &self.registry)
    }

    /// Each route's figures, in route order.
    pub fn performance(&self) -> Vec<RoutePerformance> {
        let routes = lock(&self.routes);
        self.figures(routes.iter().map(|(route, s)| (route.clone(), s)))
    }

    /// The same figures per route family (the path's first segment, such as
    /// `/agents` or `/agent`; the page's routes are `/dashboard`), each
    /// family's latency percentiles over all its requests.
    pub fn families(&self) -> Vec<RoutePerformance> {
        let routes = lock(&self.routes);
        let mut families: BTreeMap<&'static str, RouteStats> = BTreeMap::new();
        for (route, s) in routes.iter() {
            let merged = families.entry(family(route)).or_insert_with(RouteStats::new);
            merged.requests += s.requests;
            merged.client_errors += s.client_errors;
            merged.server_errors += s.server_errors;
            // Same bounds and precision: adding cannot fail.
            let _ = merged.latency_us.add(&s.latency_us);
        }
        self.figures(families.iter().map(|(name, s)| (name.to_string(), s)))
    }

    fn figures<'a>(&self, stats: impl Iterator<Item = (String, &'a RouteStats)>) -> Vec<RoutePerformance> {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        let ms = |us: u64| us as f64 / 1_000.0;
        stats
            .map(|(route, s)| RoutePerformance {
                route,
                requests: s.requests,
                client_errors: s.client_errors,
                server_errors: s.server_errors,
                rate_per_second: s.requests as f64 / seconds,
                p50_ms: ms(s.latency_us.value_at_quantile(0.50)),
                p95_ms: ms(s.latency_us.value_at_quantile(0.95)),
                p99_ms: ms(s.latency_us.value_at_quantile(0.99)),
                max_ms: ms(s.latency_us.max()),
            })
            .collect()
    }

    /// How long these metrics have been counting.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// The middleware that counts every request of a router it is layered on
/// (`Router::layer(axum::middleware::from_fn_with_state(metrics, track))`):
/// it runs after routing, so it sees the route a request matched.
pub async fn track(State(metrics): State<Arc<RequestMetrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, |p| p.as_str())
        .to_string();
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.record(&route, &method, response.status(), started.elapsed());
    response
}
