//! Time to settled of the submissions a host takes, whoever made them: the
//! page's form, `curl`, a test. [`Settling`] wraps the host's network; every
//! submission that passes through it is followed by [`follow`], which asks the
//! network where it has got to (`Network::submission`), often at first and
//! less often as it ages, until it is settled.
//!
//! A time is known between two polls: the last that saw the submission not
//! settled and the first that saw it settled. Polls come 5 ms apart at first,
//! then a tenth of the submission's age apart (at most 500 ms), so a time is
//! known to within about 10%; both bounds are reported, and percentiles use
//! the upper one. At most [`FOLLOWED_AT_ONCE`] submissions are followed at a
//! time (the others are counted as not followed), each for at most
//! [`GIVE_UP_AFTER`]: the cost of following is bounded however much is
//! submitted.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use ramanujan_agent::Network;
use ramanujan_agent::agent::LogEntry;
use ramanujan_agent::network::{
    AgentState, BoxFuture, Lifecycle, NetworkError, NetworkStatus, Submission, SubmissionStatus,
};
use ramanujan_agent::protocol::Envelope;
use ramanujan_core::lang::Expr;
use ramanujan_core::replica::ReplicaState;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, watch};

/// Submissions followed at once; one more while they are all unsettled is
/// counted as not followed.
pub const FOLLOWED_AT_ONCE: usize = 32;
/// Settled submissions kept for the percentiles (the newest).
pub const KEPT: usize = 512;
/// Settled submissions each update carries, for the page's chart (the newest).
pub const RECENT: usize = 60;
/// A submission not settled this long after it was taken is no longer followed.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(600);
/// Polls of the network in flight at once.
const POLLS_AT_ONCE: usize = 16;
/// The first poll's delay, and the least between two.
const FIRST_POLL: Duration = Duration::from_millis(5);
/// The most between two polls of one submission.
const MOST_BETWEEN_POLLS: Duration = Duration::from_millis(500);
/// How long one poll may take (an agent on the broker that does not answer).
const POLL_TIMEOUT: Duration = Duration::from_secs(5);

/// One submission that settled, and how long it took.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Settled {
    /// The submission's id.
    pub id: String,
    /// The expression.
    pub expression: String,
    /// When the host took it, µs since the Unix epoch.
    pub submitted_us: u64,
    /// Milliseconds from taking it to the first poll that saw it settled: it
    /// was settled by then.
    pub settled_ms: f64,
    /// Milliseconds from taking it to the last poll that saw it not settled
    /// (0 when the first poll saw it settled): it was not settled before then.
    pub unsettled_ms: f64,
}

/// What `/api/metrics` says under `convergence`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Convergence {
    /// Submissions taken and not settled yet, followed now.
    pub following: usize,
    /// Submissions seen settled since the host started.
    pub settled: u64,
    /// Submissions not followed: taken while [`FOLLOWED_AT_ONCE`] others were.
    pub unfollowed: u64,
    /// Submissions given up on: not settled [`GIVE_UP_AFTER`] after they were taken.
    pub gave_up: u64,
    /// Percentiles of time to settled (its upper bound, ms) over the newest
    /// [`KEPT`] settled submissions; `null` before any settled.
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// How many settled submissions the percentiles are over.
    pub over: usize,
    /// The newest [`RECENT`] settled submissions, oldest first.
    pub recent: Vec<Settled>,
}

/// A submission being followed.
struct Following {
    id: String,
    expression: String,
    taken: Instant,
    taken_us: u64,
    /// Age at the last poll that saw it not settled.
    unsettled: Duration,
    next_poll: Instant,
    polling: bool,
}

#[derive(Default)]
struct Log {
    following: Vec<Following>,
    settled: VecDeque<Settled>,
    settled_total: u64,
    unfollowed: u64,
    gave_up: u64,
}

/// The host's network, with every submission through it followed until it
/// settles. Everything else passes through unchanged.
pub struct Settling {
    network: Arc<dyn Network>,
    log: Mutex<Log>,
    arrived: Notify,
    seconds: Histogram,
    unfollowed: Counter,
    gave_up: Counter,
}

impl Settling {
    /// Wraps `network`. Nothing is followed until [`follow`] runs.
    pub fn new(network: Arc<dyn Network>) -> Arc<Settling> {
        Arc::new(Settling {
            network,
            log: Mutex::default(),
            arrived: Notify::new(),
            // 5 ms doubling up to about 41 s.
            seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            unfollowed: Counter::default(),
            gave_up: Counter::default(),
        })
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts following a submission just taken.
    fn taken(&self, submission: &Submission) {
        let mut log = self.log();
        if log.following.iter().any(|f| f.id == submission.id) {
            // Submitted again while followed: the first time stands.
            return;
        }
        if log.following.len() >= FOLLOWED_AT_ONCE {
            log.unfollowed += 1;
            self.unfollowed.inc();
            return;
        }
        let now = Instant::now();
        log.following.push(Following {
            id: submission.id.clone(),
            expression: submission.expression.clone(),
            taken: now,
            taken_us: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
            unsettled: Duration::ZERO,
            next_poll: now + FIRST_POLL,
            polling: false,
        });
        drop(log);
        self.arrived.notify_one();
    }

    /// The submissions due for a poll now (marked as being polled), and when
    /// the next one not due is.
    fn due(&self, now: Instant) -> (Vec<String>, Option<Instant>) {
        let mut log = self.log();
        let Log { following, gave_up, .. } = &mut *log;
        let before = following.len();
        following.retain(|f| f.polling || now.duration_since(f.taken) < GIVE_UP_AFTER);
        let given_up = (before - following.len()) as u64;
        *gave_up += given_up;
        self.gave_up.inc_by(given_up);
        let mut due = Vec::new();
        let mut next = None::<Instant>;
        for f in following.iter_mut().filter(|f| !f.polling) {
            if f.next_poll <= now && due.len() < POLLS_AT_ONCE {
                f.polling = true;
                due.push(f.id.clone());
            } else {
                next = Some(next.map_or(f.next_poll, |n| n.min(f.next_poll)));
            }
        }
        (due, next)
    }

    /// Records what a poll of `id` found at `now`.
    fn polled(&self, id: &str, now: Instant, answer: Option<Result<SubmissionStatus, NetworkError>>) {
        let mut log = self.log();
        let Some(at) = log.following.iter().position(|f| f.id == id) else {
            return;
        };
        let age = now.duration_since(log.following[at].taken);
        match answer {
            Some(Ok(status)) if status.settled => {
                let f = log.following.swap_remove(at);
                self.seconds.observe(age.as_secs_f64());
                if log.settled.len() == KEPT {
                    log.settled.pop_front();
                }
                log.settled.push_back(Settled {
                    id: f.id,
                    expression: f.expression,
                    submitted_us: f.taken_us,
                    settled_ms: age.as_secs_f64() * 1e3,
                    unsettled_ms: f.unsettled.as_secs_f64() * 1e3,
                });
                log.settled_total += 1;
            }
            // No agent holds it and every one said so: nothing to wait for.
            Some(Err(NetworkError::NotFound(_))) => {
                log.following.swap_remove(at);
            }
            answer => {
                let f = &mut log.following[at];
                if matches!(answer, Some(Ok(_))) {
                    f.unsettled = age;
                }
                f.polling = false;
                f.next_poll = now + (age / 10).clamp(FIRST_POLL, MOST_BETWEEN_POLLS);
            }
        }
    }

    /// Where the submissions the host took have got to.
    pub fn convergence(&self) -> Convergence {
        let log = self.log();
        let mut times: Vec<f64> = log.settled.iter().map(|s| s.settled_ms).collect();
        times.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            let i = ((q * times.len() as f64).ceil() as usize).max(1) - 1;
            times.get(i).copied()
        };
        Convergence {
            following: log.following.len(),
            settled: log.settled_total,
            unfollowed: log.unfollowed,
            gave_up: log.gave_up,
            p50_ms: rank(0.50),
            p95_ms: rank(0.95),
            p99_ms: rank(0.99),
            over: times.len(),
            recent: log
                .settled
                .iter()
                .skip(log.settled.len().saturating_sub(RECENT))
                .cloned()
                .collect(),
        }
    }

    /// Registers the time-to-settled histogram and the following counts.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "ramanujan_submission_settle_seconds",
            "Time from taking a submission to seeing it settled (the first poll that saw it)",
            self.seconds.clone(),
        );
        let following = Gauge::<i64>::default();
        following.set(self.log().following.len() as i64);
        registry.register(
            "ramanujan_submissions_following",
            "Submissions taken and not settled yet, followed now",
            following,
        );
        registry.register(
            "ramanujan_submissions_unfollowed",
            "Submissions not followed: taken while the most the host follows at once were",
            self.unfollowed.clone(),
        );
        registry.register(
            "ramanujan_submissions_gave_up",
            "Submissions no longer followed: not settled ten minutes after they were taken",
            self.gave_up.clone(),
        );
    }
}

/// Follows the submissions `settling` takes until the host closes or drops
/// it. The host spawns it once.
pub async fn follow(settling: Weak<Settling>, closing: watch::Receiver<bool>) {
    loop {
        if *closing.borrow() {
            return;
        }
        let Some(this) = settling.upgrade() else { return };
        let (due, next) = this.due(Instant::now());
        if due.is_empty() {
            // Until the next poll, a new submission, the host closing, or a
            // second (to notice that the host dropped the network).
            let wait = next.map_or(Duration::from_secs(1), |n| {
                n.saturating_duration_since(Instant::now()).min(Duration::from_secs(1))
            });
            let mut closing = closing.clone();
            let woken = std::pin::pin!(async {
                let closed = std::pin::pin!(closing.wait_for(|&c| c));
                let arrived = std::pin::pin!(this.arrived.notified());
                futures_util::future::select(closed, arrived).await;
            });
            let _ = tokio::time::timeout(wait, woken).await;
            continue;
        }
        let polls = due.into_iter().map(|id| {
            let this = &this;
            async move {
                let answer = tokio::time::timeout(POLL_TIMEOUT, this.network.submission(id.clone()))
                    .await
                    .ok();
                this.polled(&id, Instant::now(), answer);
            }
        });
        futures_util::future::join_all(polls).await;
    }
}

impl Network for Settling {
    fn status(&self) -> BoxFuture<'_, NetworkStatus> {
        self.network.status()
    }
    fn agent_state(&self, id: String) -> BoxFuture<'_, Result<AgentState, NetworkError>> {
        self.network.agent_state(id)
    }
    fn agent_replica(&self, id: String) -> BoxFuture<'_, Result<ReplicaState, NetworkError>> {
        self.network.agent_replica(id)
    }
    fn agent_messages(&self, id: String) -> BoxFuture<'_, Result<Vec<LogEntry>, NetworkError>> {
        self.network.agent_messages(id)
    }
    fn sync(&self, id: String) -> BoxFuture<'_, Result<usize, NetworkError>> {
        self.network.sync(id)
    }
    fn deliver(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), NetworkError>> {
        self.network.deliver(envelope)
    }
    fn submit(&self, expr: Expr) -> BoxFuture<'_, Result<Submission, NetworkError>> {
        Box::pin(async move {
            let submission = self.network.submit(expr).await?;
            self.taken(&submission);
            Ok(submission)
        })
    }
    fn submission(&self, id: String) -> BoxFuture<'_, Result<SubmissionStatus, NetworkError>> {
        self.network.submission(id)
    }
    fn degraded(&self) -> Option<String> {
        self.network.degraded()
    }
    fn lifecycles(&self) -> BoxFuture<'_, Vec<(String, Lifecycle)>> {
        self.network.lifecycles()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ramanujan_core::parse::parse_expr;
    use ramanujan_network::{InProcessNetwork, NetworkConfig};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    /// With nothing settling them (no follower runs), the host follows at most
    /// [`FOLLOWED_AT_ONCE`] submissions and counts the rest; a submission made
    /// again while followed is followed once.
    #[test]
    fn following_is_bounded_and_each_submission_followed_once() {
        let network = InProcessNetwork::start(NetworkConfig::default()).unwrap();
        let settling = Settling::new(network.clone());
        runtime().block_on(async {
            for i in 0..FOLLOWED_AT_ONCE + 8 {
                let expr = parse_expr(&format!("(+ x{i} 1)")).unwrap();
                settling.submit(expr.clone()).await.unwrap();
                if i == 0 {
                    settling.submit(expr).await.unwrap();
                }
            }
        });
        let convergence = settling.convergence();
        assert_eq!(convergence.following, FOLLOWED_AT_ONCE);
        assert_eq!(convergence.unfollowed, 8);
        assert_eq!((convergence.settled, convergence.over), (0, 0));
        assert_eq!(convergence.p50_ms, None);
        network.shutdown();
    }

    /// Every submission is recorded settled only once the network says it is
    /// settled, within the bounds recorded, and the follower ends when the
    /// host drops the network.
    #[test]
    fn a_submission_is_recorded_when_the_network_says_settled() {
        let network = InProcessNetwork::start(NetworkConfig::default()).unwrap();
        let settling = Settling::new(network.clone());
        let (_closing_tx, closing) = watch::channel(false);
        let follower = runtime().block_on(async {
            let follower = tokio::spawn(follow(Arc::downgrade(&settling), closing));
            let mut taken = Vec::new();
            for expr in ["(* 0 (+ p q))", "(+ (* a b) (* a c))", "(* (+ a b) (+ a b))", "(+ x 0)"] {
                let started = Instant::now();
                let submission = settling.submit(parse_expr(expr).unwrap()).await.unwrap();
                taken.push((submission.id, started));
            }
            let started = Instant::now();
            while settling.convergence().settled < 4 {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "{:?}",
                    settling.convergence()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let convergence = settling.convergence();
            assert_eq!((convergence.following, convergence.over), (0, 4));
            for settled in &convergence.recent {
                // Settled again soon if not now: a fact another agent derived
                // can reach a rewriter by anti-entropy before the event naming
                // the submission does, and the event then re-opens its
                // rewriting for one step (see `SubmissionStatus::settled`).
                let asked = Instant::now();
                loop {
                    let status = network.submission(settled.id.clone()).await.unwrap();
                    if status.settled {
                        break;
                    }
                    assert!(asked.elapsed() < Duration::from_secs(30), "{status:?}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                assert!(0.0 <= settled.unsettled_ms && settled.unsettled_ms < settled.settled_ms);
                let (_, started) = taken.iter().find(|(id, _)| *id == settled.id).unwrap();
                assert!(settled.settled_ms <= started.elapsed().as_secs_f64() * 1e3);
            }
            let (p50, p95, p99) = (
                convergence.p50_ms.unwrap(),
                convergence.p95_ms.unwrap(),
                convergence.p99_ms.unwrap(),
            );
            assert!(0.0 < p50 && p50 <= p95 && p95 <= p99, "{convergence:?}");
            drop(settling);
            tokio::time::timeout(Duration::from_secs(5), follower).await
        });
        assert!(follower.is_ok(), "the follower ends once the network is dropped");
        network.shutdown();
    }
}
