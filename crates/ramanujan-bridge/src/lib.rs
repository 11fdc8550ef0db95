//! # ramanujan-bridge
//!
//! The NATS↔HTTP bridge (`ramanujan bridge --nats URL --app URL`): Spin has no
//! NATS trigger, so agents running as Spin components get their broker
//! messages from here, as signed webhooks, and publish through here.
//!
//! For each agent the app hosts, one task, so the agent sees one request at a
//! time (its state is read, changed and written per request):
//!
//! - its inbox `agent.{i}.sync` is consumed through the JetStream durable
//!   consumer `agent-{i}` (the same consumer a native agent would use, so an
//!   agent can move between hosts without losing its backlog); each message is
//!   POSTed to `{app}/nats/webhook/agent.{i}.sync` and acknowledged only on a
//!   2xx. A 400, 413 or 422 (the message is malformed and never will be
//!   otherwise) moves it to `deadletter.agent.{i}.sync` (stream
//!   `RAMANUJAN_DEADLETTER`) and terminates it; anything else leaves it
//!   unacknowledged, to come again after a pause: 1 s after a 5xx or no
//!   answer, 5 s after a 401 (the secrets disagree), 30 s after a 404 (the app
//!   does not host the agent);
//! - queries on `agent.{i}.state` become `agent.{i}.state` webhooks, and their
//!   answer the reply;
//! - the bridge's clock: `agent.{i}.tick` with `sync: true` every sync
//!   interval, `sync: false` on the host's `broadcast.heartbeat` and while the
//!   agent reports rewriting left to do.
//!
//! Each webhook is recorded for the interaction timeline as a `webhook`
//! event (topic, the app's status, duration), published on `timeline.events`
//! with the events the agent's report carries (what it did in that request).
//!
//! `POST /publish/{subject}` (signed the same way, the subject as scope) puts a
//! message on the broker: through JetStream, with its `Nats-Msg-Id`, for an
//! agent inbox (answering once the broker stored it), as a core message for
//! `agent.{i}.ack` and `agent.{i}.heartbeat`. `GET /health` and `GET /status`
//! report the broker connection and counters; `GET /ready` answers 503 while
//! the broker is unreachable (for readiness probes).

use async_nats::jetstream::{self, AckKind, consumer::pull};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use futures_util::StreamExt;
use ramanujan_events::{Event, Kind};
use ramanujan_network::nats::broker;
use ramanujan_wire::signature::{self, SIGNATURE_HEADER};
use ramanujan_wire::wire;
use serde::Serialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where malformed inbox messages go.
pub const DEADLETTER_STREAM: &str = "RAMANUJAN_DEADLETTER";

/// The dead-letter subject of an inbox subject.
pub fn deadletter_subject(subject: &str) -> String {
    format!("deadletter.{subject}")
}

/// How to run the bridge.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Broker URL.
    pub nats_url: String,
    /// The app's base URL (the Spin app serving `/nats/webhook/{topic}`).
    pub app_url: String,
    /// The HMAC secret shared with the app.
    pub secret: Vec<u8>,
    /// The agent positions the app hosts.
    pub agents: Vec<usize>,
    /// Where to serve `POST /publish/{subject}`.
    pub listen: SocketAddr,
    /// How often each agent runs anti-entropy.
    pub sync_interval: Duration,
    /// How long one webhook may take.
    pub webhook_timeout: Duration,
}

/// What the bridge has done (`GET /status`).
#[derive(Debug, Default, Serialize)]
pub struct BridgeCounters {
    /// Inbox messages the app took (2xx) and that were acknowledged.
    pub delivered: AtomicU64,
    /// Malformed inbox messages moved to the dead-letter subject.
    pub dead_lettered: AtomicU64,
    /// Webhooks the app refused as unsigned or wrongly signed (401).
    pub unauthorized: AtomicU64,
    /// Webhooks that failed otherwise (no answer, 404, 5xx): left for redelivery.
    pub failed: AtomicU64,
    /// Ticks sent.
    pub ticks: AtomicU64,
    /// Queries forwarded.
    pub queries: AtomicU64,
    /// Messages published for the app.
    pub published: AtomicU64,
    /// Publish requests refused (bad signature, bad subject, too large).
    pub publish_refused: AtomicU64,
}

struct Shared {
    config: BridgeConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    http: reqwest::Client,
    counters: BridgeCounters,
}

/// A running bridge.
pub struct Bridge {
    /// Where `POST /publish/{subject}` is served.
    pub addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

impl Bridge {
    /// Connects, binds the publish endpoint and starts one task per agent.
    pub async fn start(config: BridgeConfig) -> Result<Bridge, String> {
        if config.secret.is_empty() {
            return Err("the bridge needs a secret (--secret or WEBHOOK_SECRET)".into());
        }
        let client = broker::connect(&config.nats_url, "ramanujan-bridge").await?;
        let js = jetstream::new(client.clone());
        // The hosted agents' events and the webhook deliveries go to the timeline.
        if let Err(e) = broker::ensure_timeline_stream(&js).await {
            tracing::warn!(error = %e, "no timeline stream; events will not be kept");
        }
        let http = reqwest::Client::builder()
            .timeout(config.webhook_timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("binding {}: {e}", config.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared {
            config,
            client,
            js,
            http,
            counters: BridgeCounters::default(),
        });
        let mut tasks = Vec::new();
        let app = axum::Router::new()
            .route("/publish/{subject}", post(publish))
            .route("/health", get(health))
            .route("/ready", get(ready))
            .route("/status", get(status))
            .fallback(ramanujan_http::error::not_found)
            .with_state(shared.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the bridge's publish endpoint stopped");
            }
        }));
        for &index in &shared.config.agents {
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                AgentLink {
                    shared,
                    index,
                    dirty: false,
                }
                .run()
                .await
            }));
        }
        tracing::info!(%addr, app = %shared.config.app_url, agents = ?shared.config.agents, "bridge running");
        Ok(Bridge { addr, tasks })
    }
}

/// Runs the bridge until `shutdown` resolves.
pub async fn run_bridge(config: BridgeConfig, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    let bridge = Bridge::start(config).await?;
    println!("bridge: publishing on http://{}/publish/{{subject}}", bridge.addr);
    shutdown.await;
    Ok(())
}

/// One hosted agent's link to the broker.
struct AgentLink {
    shared: Arc<Shared>,
    index: usize,
    /// The agent said it has rewriting left.
    dirty: bool,
}

/// What a webhook came to.
enum Outcome {
    /// 2xx, with the answer.
    Taken(Value),
    /// 400, 413 or 422: the message is wrong, for good.
    Malformed(String),
    /// Anything else: try again after the pause.
    Failed(String, Duration),
}

impl AgentLink {
    async fn run(mut self) {
        let subject = wire::sync_subject(self.index);
        let mut inbox = self.inbox().await;
        let mut queries = self.subscribe(wire::state_subject(self.index)).await;
        let mut pings = self.subscribe(wire::BROADCAST_HEARTBEAT.to_string()).await;
        let interval = self.shared.config.sync_interval;
        let stagger = ramanujan_agent::topology::first_sync_delay(self.index, interval);
        let mut sync = tokio::time::interval_at(tokio::time::Instant::now() + stagger, interval);
        sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let dirty = self.dirty;
            tokio::select! {
                biased;
                next = inbox.next() => match next {
                    Some(Ok(message)) => self.deliver(&subject, message).await,
                    Some(Err(e)) => {
                        tracing::debug!(agent = self.index, error = %e, "inbox hiccup");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    None => inbox = self.inbox().await,
                },
                Some(query) = queries.next() => self.query(query).await,
                _ = sync.tick() => self.tick(true).await,
                Some(_) = pings.next() => self.tick(false).await,
                _ = std::future::ready(()), if dirty => self.tick(false).await,
            }
        }
    }

    /// A core subscription, retried until the broker takes it.
    async fn subscribe(&self, subject: String) -> async_nats::Subscriber {
        broker::until_ok(&format!("a subscription to {subject}"), || {
            self.shared.client.subscribe(subject.clone())
        })
        .await
    }

    /// The agent's inbox, one message at a time: a message waiting here would
    /// outlive its ack wait. The dead-letter stream is made first.
    async fn inbox(&self) -> pull::Stream {
        broker::until_ok("the dead-letter stream", || ensure_deadletter_stream(&self.shared.js)).await;
        broker::inbox(&self.shared.js, self.index, 1).await
    }

    /// POSTs one webhook and sorts its answer. The delivery is recorded for
    /// the timeline, with the events the agent's report carries.
    async fn post(&self, topic: &str, body: Vec<u8>, content_type: &str) -> Outcome {
        let started = std::time::Instant::now();
        let (status, mut outcome) = self.exchange(topic, body, content_type).await;
        let mut events: Vec<Event> = match &mut outcome {
            Outcome::Taken(report) => serde_json::from_value(report["events"].take()).unwrap_or_default(),
            _ => Vec::new(),
        };
        events.push(Event::from_component(
            "bridge",
            Kind::Webhook {
                topic: topic.to_string(),
                status,
                duration_us: started.elapsed().as_micros() as u64,
            },
        ));
        broker::publish_events(&self.shared.js, events).await;
        outcome
    }

    /// One webhook: the status the app answered (0: none) and what it came to.
    async fn exchange(&self, topic: &str, body: Vec<u8>, content_type: &str) -> (u16, Outcome) {
        let config = &self.shared.config;
        let url = format!("{}/nats/webhook/{topic}", config.app_url.trim_end_matches('/'));
        let signature = signature::sign(&config.secret, topic, &body);
        let sent = self
            .shared
            .http
            .post(&url)
            .header("content-type", content_type)
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return (0, Outcome::Failed(format!("POST {url}: {e}"), Duration::from_secs(1))),
        };
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return (
                status.as_u16(),
                Outcome::Taken(serde_json::from_str(&text).unwrap_or(Value::Null)),
            );
        }
        let why = format!("{status}: {}", &text[..text.len().min(300)]);
        let outcome = match status.as_u16() {
            400 | 413 | 422 => Outcome::Malformed(why),
            // The secrets disagree: a configuration error, not worth hammering the app.
            401 | 403 => {
                self.shared.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
                Outcome::Failed(why, Duration::from_secs(5))
            }
            // The app does not host this agent (yet): likewise.
            404 => Outcome::Failed(why, Duration::from_secs(30)),
            _ => Outcome::Failed(why, Duration::from_secs(1)),
        };
        (status.as_u16(), outcome)
    }

    async fn deliver(&mut self, subject: &str, message: jetstream::Message) {
        let counters = &self.shared.counters;
        match self
            .post(subject, message.payload.to_vec(), "application/msgpack")
            .await
        {
            Outcome::Taken(report) => {
                self.dirty = report["dirty"].as_bool().unwrap_or(false);
                if let Err(e) = message.ack().await {
                    tracing::debug!(agent = self.index, error = %e, "ack failed; the message will come again");
                }
                counters.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Malformed(why) => {
                tracing::warn!(agent = self.index, %why, "malformed inbox message; dead-lettered");
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Ramanujan-Refused", why.as_str());
                let stored = match self
                    .shared
                    .js
                    .publish_with_headers(deadletter_subject(subject), headers, message.payload.clone())
                    .await
                {
                    Ok(ack) => tokio::time::timeout(Duration::from_secs(5), ack)
                        .await
                        .is_ok_and(|r| r.is_ok()),
                    Err(_) => false,
                };
                if stored {
                    let _ = message.ack_with(AckKind::Term).await;
                    counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                } else {
                    // Not stored anywhere yet: keep it in the inbox.
                    let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                }
            }
            Outcome::Failed(why, pause) => {
                tracing::warn!(agent = self.index, %why, ?pause, "webhook failed; the message will come again");
                counters.failed.fetch_add(1, Ordering::Relaxed);
                let _ = message.ack_with(AckKind::Nak(Some(pause))).await;
            }
        }
    }

    async fn tick(&mut self, sync: bool) {
        self.shared.counters.ticks.fetch_add(1, Ordering::Relaxed);
        let topic = format!("agent.{}.tick", self.index);
        let body = serde_json::to_vec(&json!({ "sync": sync })).expect("json");
        match self.post(&topic, body, "application/json").await {
            Outcome::Taken(report) => self.dirty = report["dirty"].as_bool().unwrap_or(false),
            Outcome::Malformed(why) | Outcome::Failed(why, _) => {
                self.dirty = false;
                tracing::warn!(agent = self.index, %why, "tick failed");
                self.shared.counters.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn query(&mut self, query: async_nats::Message) {
        let Some(reply) = query.reply.clone() else { return };
        self.shared.counters.queries.fetch_add(1, Ordering::Relaxed);
        let topic = wire::state_subject(self.index);
        let mut answer = match self.post(&topic, query.payload.to_vec(), "application/json").await {
            Outcome::Taken(answer) => answer,
            Outcome::Malformed(why) | Outcome::Failed(why, _) => json!({ "error": why }),
        };
        // What a "sync now" made the agent do goes to the timeline, not to the asker.
        let events: Vec<Event> = answer
            .as_object_mut()
            .and_then(|fields| fields.remove("events"))
            .and_then(|events| serde_json::from_value(events).ok())
            .unwrap_or_default();
        let payload = serde_json::to_vec(&answer).unwrap_or_default();
        let _ = self.shared.client.publish(reply, payload.into()).await;
        broker::publish_events(&self.shared.js, events).await;
    }
}

/// Creates the dead-letter stream if it is missing.
pub async fn ensure_deadletter_stream(js: &jetstream::Context) -> Result<(), String> {
    js.get_or_create_stream(jetstream::stream::Config {
        name: DEADLETTER_STREAM.into(),
        subjects: vec!["deadletter.>".into()],
        num_replicas: broker::stream_replicas()?,
        storage: jetstream::stream::StorageType::File,
        max_bytes: 256 << 20,
        max_message_size: wire::MAX_MESSAGE_BYTES as i32,
        ..Default::default()
    })
    .await
    .map(|_| ())
    .map_err(|e| format!("creating the JetStream stream {DEADLETTER_STREAM}: {e}"))
}

fn refuse(shared: &Shared, status: StatusCode, message: String) -> (StatusCode, Json<Value>) {
    shared.counters.publish_refused.fetch_add(1, Ordering::Relaxed);
    (status, Json(json!({ "error": message })))
}

/// What the app may publish on: `agent.{i}.sync`, `agent.{i}.ack`, `agent.{i}.heartbeat`.
fn publishable(subject: &str) -> Option<(usize, &str)> {
    let rest = subject.strip_prefix("agent.")?;
    let (index, kind) = rest.split_once('.')?;
    if index.is_empty() || index.len() > 6 || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !matches!(kind, "sync" | "ack" | "heartbeat") {
        return None;
    }
    Some((index.parse().ok()?, kind))
}

async fn publish(
    State(shared): State<Arc<Shared>>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> (StatusCode, Json<Value>) {
    let Ok(body): Result<Bytes, _> = axum::body::to_bytes(body, wire::MAX_MESSAGE_BYTES).await else {
        return refuse(
            &shared,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("messages are at most {} bytes", wire::MAX_MESSAGE_BYTES),
        );
    };
    if let Err(e) = signature::verify_headers(&shared.config.secret, &subject, &body, &headers) {
        return refuse(&shared, StatusCode::UNAUTHORIZED, e.to_string());
    }
    let Some((_, kind)) = publishable(&subject) else {
        return refuse(
            &shared,
            StatusCode::BAD_REQUEST,
            format!("cannot publish on `{subject}`: only agent.{{i}}.sync, agent.{{i}}.ack and agent.{{i}}.heartbeat"),
        );
    };
    if shared.client.connection_state() != async_nats::connection::State::Connected {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "the broker is unreachable" })),
        );
    }
    let stored = if kind == "sync" {
        let mut nats_headers = async_nats::HeaderMap::new();
        if let Some(id) = headers.get("nats-msg-id").and_then(|v| v.to_str().ok()) {
            nats_headers.insert("Nats-Msg-Id", id);
        }
        match shared
            .js
            .publish_with_headers(subject.clone(), nats_headers, body)
            .await
        {
            Ok(ack) => match tokio::time::timeout(Duration::from_secs(5), ack).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the broker did not confirm within 5 s".to_string()),
            },
            Err(e) => Err(e.to_string()),
        }
    } else {
        shared
            .client
            .publish(subject.clone(), body)
            .await
            .map_err(|e| e.to_string())
    };
    match stored {
        Ok(()) => {
            shared.counters.published.fetch_add(1, Ordering::Relaxed);
            (StatusCode::OK, Json(json!({ "published": subject })))
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": format!("publishing on {subject}: {e}") })),
        ),
    }
}

fn broker_state(shared: &Shared) -> &'static str {
    match shared.client.connection_state() {
        async_nats::connection::State::Connected => "ok",
        _ => "degraded",
    }
}

async fn health(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({ "status": broker_state(&shared), "component": "nats-bridge" }))
}

/// For readiness probes: 200 while the broker is reachable, 503 otherwise.
async fn ready(State(shared): State<Arc<Shared>>) -> (StatusCode, Json<Value>) {
    match broker_state(&shared) {
        "ok" => (StatusCode::OK, Json(json!({ "ready": true }))),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "error": "the broker is unreachable" })),
        ),
    }
}

async fn status(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({
        "status": broker_state(&shared),
        "app": shared.config.app_url,
        "agents": shared.config.agents,
        "counters": shared.counters,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_publishes_on_agent_subjects_only() {
        assert_eq!(publishable("agent.3.sync"), Some((3, "sync")));
        assert_eq!(publishable("agent.0.ack"), Some((0, "ack")));
        assert_eq!(publishable("agent.12.heartbeat"), Some((12, "heartbeat")));
        for bad in [
            "agent.*.sync",
            "agent.>.sync",
            "agent.3.state",
            "network.status",
            "agent..sync",
            "deadletter.agent.3.sync",
        ] {
            assert_eq!(publishable(bad), None, "{bad}");
        }
    }
}
