//! The broker: the JetStream stream, connecting, and an agent's inbox
//! consumer. Subjects and payloads are [`ramanujan_wire::wire`], shared
//! with agents that run as Spin components behind the bridge.

use async_nats::jetstream::{self, consumer::pull, kv};
use backon::{ExponentialBuilder, Retryable};
use ramanujan_wire::wire::{MAX_MESSAGE_BYTES, TIMELINE_SUBJECT, sync_subject};
use std::time::Duration;

/// The JetStream stream holding every agent's inbox.
pub const STREAM: &str = "RAMANUJAN";

/// How long an agent's inbox message may stay unacknowledged before JetStream redelivers it.
pub const ACK_WAIT: Duration = Duration::from_secs(5);

/// How many servers of a NATS cluster keep a copy of each stream and bucket
/// this process creates: `NATS_REPLICAS` (1 to 5, default 1). With 3 on a
/// three-server cluster, what JetStream acknowledged survives losing any one
/// server. Set it the same for every process: the first to create a stream
/// decides (an existing stream keeps its replica count).
pub fn stream_replicas() -> Result<usize, String> {
    replicas_from(std::env::var("NATS_REPLICAS").ok().as_deref())
}

fn replicas_from(value: Option<&str>) -> Result<usize, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(1),
        Some(v) => match v.parse::<usize>() {
            Ok(n @ 1..=5) => Ok(n),
            _ => Err(format!("NATS_REPLICAS is a count from 1 to 5, not `{v}`")),
        },
    }
}

/// Creates the inbox stream if it is missing (idempotent; every process calls
/// it). A stream kept on fewer servers than `NATS_REPLICAS` asks is said in
/// the log (JetStream does not change it: `nats stream edit --replicas`).
pub async fn ensure_stream(js: &jetstream::Context) -> Result<jetstream::stream::Stream, String> {
    let wanted = stream_replicas()?;
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: STREAM.into(),
            num_replicas: wanted,
            subjects: vec!["agent.*.sync".into()],
            storage: jetstream::stream::StorageType::File,
            // Acknowledged messages leave the stream; a full stream refuses new ones
            // (the publisher sees it, anti-entropy repairs later) instead of dropping old ones.
            retention: jetstream::stream::RetentionPolicy::WorkQueue,
            discard: jetstream::stream::DiscardPolicy::New,
            max_bytes: 1 << 30,
            max_messages: 1_000_000,
            max_message_size: MAX_MESSAGE_BYTES as i32,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("creating the JetStream stream {STREAM}: {e}"))?;
    let held = stream.cached_info().config.num_replicas;
    if held != wanted {
        tracing::warn!(
            stream = STREAM,
            held,
            wanted,
            "the stream is kept on another number of servers than NATS_REPLICAS asks"
        );
    }
    Ok(stream)
}

/// The JetStream key-value bucket holding the rules agents run beside (or
/// instead of) the built-in ones, under [`AGENT_RULES_KEY`]: the host writes
/// it as its rule book changes, every agent watches it.
pub const RULES_BUCKET: &str = "RAMANUJAN_RULES";

pub use ramanujan_wire::wire::{AGENT_RULES_KEY, AgentRuleSet};

/// The rules bucket, created if it is missing (only the latest value is kept).
pub async fn rules_bucket(js: &jetstream::Context) -> Result<kv::Store, String> {
    if let Ok(store) = js.get_key_value(RULES_BUCKET).await {
        return Ok(store);
    }
    let created = js
        .create_key_value(kv::Config {
            bucket: RULES_BUCKET.into(),
            history: 1,
            num_replicas: stream_replicas()?,
            storage: jetstream::stream::StorageType::File,
            max_value_size: MAX_MESSAGE_BYTES as i32,
            ..Default::default()
        })
        .await;
    match created {
        Ok(store) => Ok(store),
        // Another process may have created it meanwhile.
        Err(e) => js
            .get_key_value(RULES_BUCKET)
            .await
            .map_err(|_| format!("creating the JetStream key-value bucket {RULES_BUCKET}: {e}")),
    }
}

/// The agents' rule set as it stands, if the host published one.
pub async fn current_agent_rules(js: &jetstream::Context) -> Result<Option<kv::Entry>, String> {
    rules_bucket(js)
        .await?
        .entry(AGENT_RULES_KEY)
        .await
        .map_err(|e| format!("reading the agents' rules: {e}"))
}

/// Watches the agents' rule set: its current value first, then each change.
pub async fn watch_agent_rules(js: &jetstream::Context) -> Result<kv::Watch, String> {
    rules_bucket(js)
        .await?
        .watch_with_history(AGENT_RULES_KEY)
        .await
        .map_err(|e| format!("watching the agents' rules: {e}"))
}

/// Publishes the rules agents run (durably: agents that start later read it).
pub async fn publish_agent_rules(js: &jetstream::Context, rules: &AgentRuleSet) -> Result<(), String> {
    let bucket = rules_bucket(js).await?;
    let bytes = serde_json::to_vec(rules).map_err(|e| e.to_string())?;
    bucket
        .put(AGENT_RULES_KEY, bytes.into())
        .await
        .map(|_| ())
        .map_err(|e| format!("publishing the agents' rules: {e}"))
}

/// The JetStream stream holding the agents' interaction events until the
/// timeline has written them.
pub const TIMELINE_STREAM: &str = "RAMANUJAN_TIMELINE";

/// Creates the timeline's stream if it is missing. Bounded: past 256 MiB or a
/// day the oldest events go (a timeline that stays away that long loses them).
pub async fn ensure_timeline_stream(js: &jetstream::Context) -> Result<jetstream::stream::Stream, String> {
    js.get_or_create_stream(jetstream::stream::Config {
        name: TIMELINE_STREAM.into(),
        subjects: vec![TIMELINE_SUBJECT.into()],
        num_replicas: stream_replicas()?,
        storage: jetstream::stream::StorageType::File,
        // Each timeline (durable consumer) reads every event at its own pace.
        retention: jetstream::stream::RetentionPolicy::Limits,
        discard: jetstream::stream::DiscardPolicy::Old,
        max_age: Duration::from_secs(24 * 3600),
        max_bytes: 256 << 20,
        max_message_size: MAX_MESSAGE_BYTES as i32,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("creating the JetStream stream {TIMELINE_STREAM}: {e}"))
}

/// The header that says a timeline batch is LZ4-compressed (LZ4 block with
/// its size first): events are repetitive JSON, about a tenth of their size
/// compressed, and the broker stores every byte.
pub const EVENTS_ENCODING_HEADER: &str = "Ramanujan-Encoding";

/// Largest batch of events a timeline message may unpack to.
pub const MAX_EVENTS_BATCH_BYTES: usize = 64 << 20;

/// Publishes interaction events for the timeline (stamped now if they have
/// no time), in batches of at most 1,000, compressed; the broker's
/// acknowledgements are not waited for. Events the broker does not take are
/// lost to the timeline, never to the agent.
pub async fn publish_events(js: &jetstream::Context, mut events: Vec<ramanujan_events::Event>) {
    if events.is_empty() {
        return;
    }
    let now = ramanujan_events::emit::now_us();
    for event in &mut events {
        if event.at_us == 0 {
            event.at_us = now;
        }
    }
    for chunk in events.chunks(1_000) {
        let json = ramanujan_wire::wire::encode_events(chunk);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(EVENTS_ENCODING_HEADER, "lz4");
        let packed = lz4_flex::block::compress_prepend_size(&json);
        match js.publish_with_headers(TIMELINE_SUBJECT, headers, packed.into()).await {
            Ok(stored) => {
                tokio::spawn(stored.into_future());
            }
            Err(e) => tracing::debug!(error = %e, "timeline events not published"),
        }
    }
}

/// The events of one `timeline.events` message: JSON, LZ4-compressed if its
/// headers say so (at most [`MAX_EVENTS_BATCH_BYTES`] unpacked).
pub fn decode_events_message(
    headers: Option<&async_nats::HeaderMap>,
    payload: &[u8],
) -> Result<Vec<ramanujan_events::Event>, String> {
    let encoding = headers.and_then(|h| h.get(EVENTS_ENCODING_HEADER)).map(|v| v.as_str());
    match encoding {
        None => ramanujan_wire::wire::decode_events(payload),
        Some("lz4") => {
            let (size, packed) = lz4_flex::block::uncompressed_size(payload).map_err(|e| e.to_string())?;
            if size > MAX_EVENTS_BATCH_BYTES {
                return Err(format!(
                    "a batch of {size} bytes unpacked; at most {MAX_EVENTS_BATCH_BYTES}"
                ));
            }
            let json = lz4_flex::block::decompress(packed, size).map_err(|e| e.to_string())?;
            ramanujan_wire::wire::decode_events(&json)
        }
        Some(other) => Err(format!("unknown encoding `{other}`")),
    }
}

/// The timeline's durable consumer `name` of the agents' events, retried
/// until the broker answers. A message is acknowledged once written.
pub async fn timeline_events(js: &jetstream::Context, name: &str) -> pull::Stream {
    until_ok("the timeline's consumer", || try_timeline_events(js, name)).await
}

async fn try_timeline_events(js: &jetstream::Context, name: &str) -> Result<pull::Stream, String> {
    let stream = ensure_timeline_stream(js).await?;
    let consumer = stream
        .get_or_create_consumer(
            name,
            pull::Config {
                durable_name: Some(name.to_string()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: 10_000,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    consumer
        .stream()
        .max_messages_per_batch(256)
        .heartbeat(Duration::from_secs(2))
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .map_err(|e| e.to_string())
}

/// How a process proves itself to the broker and secures the connection,
/// from the environment (every process that connects reads the same):
/// `NATS_CREDS` (a `.creds` file: JWT and NKey seed), `NATS_TOKEN`, or
/// `NATS_USER` with `NATS_PASSWORD`; `NATS_TLS=true` to require TLS,
/// `NATS_TLS_CA` (a PEM of roots to trust), `NATS_TLS_CERT` with
/// `NATS_TLS_KEY` (a client certificate). Secrets stay out of the broker's
/// URL, which is printed and logged.
#[derive(Clone, Default)]
pub struct BrokerAuth {
    /// A `.creds` file.
    pub creds: Option<std::path::PathBuf>,
    /// A token.
    pub token: Option<String>,
    /// A user and password.
    pub user: Option<(String, String)>,
    /// Whether TLS is required.
    pub tls: bool,
    /// Roots to trust (PEM).
    pub tls_ca: Option<std::path::PathBuf>,
    /// A client certificate and its key (PEM).
    pub tls_client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl std::fmt::Debug for BrokerAuth {
    /// Says which kinds are set, never a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerAuth")
            .field("creds", &self.creds)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("user", &self.user.as_ref().map(|(user, _)| user))
            .field("tls", &self.tls)
            .field("tls_ca", &self.tls_ca)
            .field("tls_client", &self.tls_client)
            .finish()
    }
}

impl BrokerAuth {
    /// Reads the environment variables above; an error names the one that
    /// is incomplete or contradictory (never its value).
    pub fn from_env() -> Result<BrokerAuth, String> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`BrokerAuth::from_env`] over `lookup` instead of the environment.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<BrokerAuth, String> {
        let var = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let auth = BrokerAuth {
            creds: var("NATS_CREDS").map(Into::into),
            token: var("NATS_TOKEN"),
            user: match (var("NATS_USER"), var("NATS_PASSWORD")) {
                (Some(user), Some(password)) => Some((user, password)),
                (None, None) => None,
                _ => return Err("NATS_USER and NATS_PASSWORD go together".into()),
            },
            tls: match var("NATS_TLS").as_deref() {
                None | Some("false") | Some("0") => false,
                Some("true") | Some("1") => true,
                Some(_) => return Err("NATS_TLS is true or false".into()),
            },
            tls_ca: var("NATS_TLS_CA").map(Into::into),
            tls_client: match (var("NATS_TLS_CERT"), var("NATS_TLS_KEY")) {
                (Some(cert), Some(key)) => Some((cert.into(), key.into())),
                (None, None) => None,
                _ => return Err("NATS_TLS_CERT and NATS_TLS_KEY go together".into()),
            },
        };
        let kinds = [auth.creds.is_some(), auth.token.is_some(), auth.user.is_some()];
        if kinds.iter().filter(|&&k| k).count() > 1 {
            return Err("give one of NATS_CREDS, NATS_TOKEN, or NATS_USER with NATS_PASSWORD".into());
        }
        Ok(auth)
    }

    async fn apply(&self, mut options: async_nats::ConnectOptions) -> Result<async_nats::ConnectOptions, String> {
        if let Some(path) = &self.creds {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| format!("NATS_CREDS {}: {e}", path.display()))?;
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        if let Some((user, password)) = &self.user {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(ca) = &self.tls_ca {
            pem_file("NATS_TLS_CA", ca)?;
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.tls_client {
            pem_file("NATS_TLS_CERT", cert)?;
            pem_file("NATS_TLS_KEY", key)?;
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(options.require_tls(self.tls))
    }
}

/// Checks at start-up that `path` (named by `variable`) is a readable PEM
/// file, so a wrong path is one clear error rather than a connection that
/// retries for ever. Says nothing of the file's contents (a key is a secret).
fn pem_file(variable: &str, path: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read(path).map_err(|e| format!("{variable} {}: {e}", path.display()))?;
    if !text.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(format!("{variable} {}: not a PEM file", path.display()));
    }
    Ok(())
}

/// Connects to the broker as the environment says ([`BrokerAuth::from_env`],
/// [`stream_replicas`]); keeps reconnecting for ever after a disconnect.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, String> {
    stream_replicas()?;
    connect_with(url, name, &BrokerAuth::from_env()?).await
}

/// Connects to the broker with `auth`; keeps reconnecting for ever after a
/// disconnect. `url` may list several servers of a cluster, comma-separated
/// (`nats://a:4222,nats://b:4222`): the client picks one and, when it goes,
/// fails over to another (and to those the cluster announces).
pub async fn connect_with(url: &str, name: &str, auth: &BrokerAuth) -> Result<async_nats::Client, String> {
    let servers: Vec<async_nats::ServerAddr> = url
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|e| format!("the broker address `{s}`: {e}")))
        .collect::<Result<_, _>>()?;
    if servers.is_empty() {
        return Err("no broker address given".into());
    }
    auth.apply(async_nats::ConnectOptions::new())
        .await?
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(Duration::from_secs(3)))
        .max_reconnects(None)
        .reconnect_delay_callback(|attempt| Duration::from_millis((50 * attempt as u64).min(1_000)))
        .connect(servers)
        .await
        .map_err(|e| format!("connecting to {url}: {e}"))
}

/// Agent `index`'s inbox: its durable pull consumer `agent-{index}` (created if
/// missing, the same for a native agent and for the bridge), delivering up to
/// `batch` messages per pull. Retried until the broker answers.
pub async fn inbox(js: &jetstream::Context, index: usize, batch: usize) -> pull::Stream {
    until_ok(&format!("agent {index}'s inbox"), || try_inbox(js, index, batch)).await
}

/// The one retry policy for what waits on the broker (its stream, a consumer, a
/// subscription): exponential from 100 ms to 2 s, with jitter so that many
/// agents that lost the broker together do not come back in step; never gives
/// up, and says what it waits for.
pub async fn until_ok<T, E, F, Fut>(what: &str, mut attempt: F) -> T
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let policy = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .with_jitter()
        .without_max_times();
    loop {
        let retried = (&mut attempt)
            .retry(policy)
            .notify(|error, delay| tracing::warn!(%error, ?delay, "{what} not ready; retrying"))
            .await;
        if let Ok(value) = retried {
            return value;
        }
    }
}

async fn try_inbox(js: &jetstream::Context, index: usize, batch: usize) -> Result<pull::Stream, String> {
    let stream = ensure_stream(js).await?;
    let name = format!("agent-{index}");
    let consumer = stream
        .get_or_create_consumer(
            &name,
            pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: sync_subject(index),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: 4096,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    consumer
        .stream()
        .max_messages_per_batch(batch.max(1))
        .heartbeat(Duration::from_secs(2))
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::{EVENTS_ENCODING_HEADER, MAX_EVENTS_BATCH_BYTES, decode_events_message, replicas_from, until_ok};
    use ramanujan_events::{Event, Kind};
    use std::time::{Duration, Instant};

    #[test]
    fn timeline_batches_come_back_compressed_or_plain_and_bombs_are_refused() {
        let events: Vec<Event> = (0..500)
            .map(|i| Event::from_component(&format!("agent-{}", i % 9), Kind::Merge { facts_new: i }))
            .collect();
        let json = ramanujan_wire::wire::encode_events(&events);
        assert_eq!(decode_events_message(None, &json).unwrap(), events);
        let mut lz4 = async_nats::HeaderMap::new();
        lz4.insert(EVENTS_ENCODING_HEADER, "lz4");
        let packed = lz4_flex::block::compress_prepend_size(&json);
        assert!(packed.len() * 5 < json.len(), "{} of {}", packed.len(), json.len());
        assert_eq!(decode_events_message(Some(&lz4), &packed).unwrap(), events);
        // A header claiming more than the bound is refused before any allocation.
        let mut bomb = ((MAX_EVENTS_BATCH_BYTES + 1) as u32).to_le_bytes().to_vec();
        bomb.extend_from_slice(&packed[4..]);
        let refused = decode_events_message(Some(&lz4), &bomb).unwrap_err();
        assert!(refused.contains("at most"), "{refused}");
        // Truncated or lying sizes, and unknown encodings, are errors, not panics.
        assert!(decode_events_message(Some(&lz4), &packed[..packed.len() / 2]).is_err());
        let mut short = packed.clone();
        short[..4].copy_from_slice(&10u32.to_le_bytes());
        assert!(decode_events_message(Some(&lz4), &short).is_err());
        let mut zstd = async_nats::HeaderMap::new();
        zstd.insert(EVENTS_ENCODING_HEADER, "zstd");
        assert!(
            decode_events_message(Some(&zstd), &packed)
                .unwrap_err()
                .contains("zstd")
        );
    }

    #[test]
    fn replicas_are_one_to_five_and_anything_else_is_refused_by_name() {
        assert_eq!(replicas_from(None), Ok(1));
        assert_eq!(replicas_from(Some(" ")), Ok(1));
        assert_eq!(replicas_from(Some("3")), Ok(3));
        for bad in ["0", "6", "-1", "three", "18446744073709551617"] {
            let refused = replicas_from(Some(bad)).unwrap_err();
            assert!(refused.starts_with("NATS_REPLICAS"), "{refused}");
        }
    }

    #[tokio::test]
    async fn until_ok_backs_off_between_failures_and_returns_the_first_success() {
        let started = Instant::now();
        let mut attempts = 0;
        let value = until_ok("a test resource", || {
            attempts += 1;
            let outcome = if attempts < 3 {
                Err("not yet")
            } else {
                Ok(attempts * 10)
            };
            std::future::ready(outcome)
        })
        .await;
        assert_eq!((value, attempts), (30, 3));
        // Two waits: at least 100 ms and then 200 ms, jitter only adds.
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
    }
}
