//! A per-client rate limit (`RATE_LIMIT` requests a second, bursts of
//! `RATE_LIMIT_BURST`), by `governor`'s GCRA: a client is the API key it
//! authenticated with, else its address. Past it: 429 with `Retry-After`.
//! Clients not seen for a while are forgotten, so the table stays bounded by
//! the clients of the last few seconds.

use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{HeaderValue, StatusCode, header};
use ramanujan_http::ApiError;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Who a request counts against: the API key it authenticated with (by its
/// position in `API_KEYS`), else its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    /// The `n`th API key.
    Key(usize),
    /// A caller without a key, by address.
    Addr(IpAddr),
    /// A caller whose address the server was not told (in-process tests).
    Unknown,
}

/// Requests between two sweeps of clients no longer limited.
const SWEEP_EVERY: u64 = 4_096;

/// The limiter.
pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<Client>,
    clock: DefaultClock,
    seen: AtomicU64,
}

impl RateLimit {
    /// `per_second` requests a second per client, bursts of `burst` (at least 1).
    pub fn new(per_second: u32, burst: u32) -> Result<RateLimit, String> {
        let per_second = NonZeroU32::new(per_second).ok_or("RATE_LIMIT must be at least 1")?;
        let burst = NonZeroU32::new(burst).ok_or("RATE_LIMIT_BURST must be at least 1")?;
        Ok(RateLimit {
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            clock: DefaultClock::default(),
            seen: AtomicU64::new(0),
        })
    }

    /// Clients the limiter holds now.
    pub fn clients(&self) -> usize {
        self.limiter.len()
    }
}

impl Client {
    /// Who `request` counts against: the `key`th API key when it came with
    /// one, else its address.
    pub fn of(request: &Request, key: Option<usize>) -> Client {
        match key {
            Some(key) => Client::Key(key),
            None => match request.extensions().get::<ConnectInfo<SocketAddr>>() {
                Some(ConnectInfo(addr)) => Client::Addr(addr.ip()),
                None => Client::Unknown,
            },
        }
    }
}

impl RateLimit {
    /// Counts a request of `client`: `Ok` within its budget, else how long
    /// until it has one again ([`too_many`] is the answer to give).
    pub fn check(&self, client: Client) -> Result<(), Duration> {
        if self.seen.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// The 429 for a client that must `wait`, with `Retry-After` in whole
/// seconds (rounded up, at least 1).
pub fn too_many(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        message: format!(
            "more than this host allows one client (RATE_LIMIT); try again in {} ms",
            wait.as_millis()
        ),
    }
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}
