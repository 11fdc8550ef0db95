//! # ramanujan (host)
//!
//! Serves every component's `axum::Router` on one port, natively: the embedded
//! default. [`app`] builds the whole HTTP surface; [`serve`] runs it until Ctrl-C
//! or SIGTERM.

pub mod config;
pub mod guard;
pub mod lifecycle;
pub mod openapi;
pub mod pool;
pub mod skills;
pub mod tdx;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Json, Router};
use config::{AgentArgs, BridgeArgs, ServeArgs};
use interaction_timeline::{Retention, Timeline};
use ramanujan_events::Emitter;
use ramanujan_http::Runtime;
use ramanujan_network::nats::{AgentConfig, NatsNetwork, RemoteConfig};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

/// The components, their routes, and whether this build serves them yet.
pub const COMPONENTS: [(&str, &str, &str); 11] = [
    ("stream-red", "/stream/red", "serving"),
    ("stream-blue", "/stream/blue", "serving"),
    ("stream-green", "/stream/green", "serving"),
    ("crdt-service", "/crdt", "serving"),
    ("egraph-service", "/egraph", "serving"),
    ("skill-verification", "/verify, /skills", "serving"),
    ("agent-orchestrator", "/agents, /agent/{id}", "serving"),
    ("duck-colors", "/colors", "serving"),
    ("transduction-2tdx", "/sync, /2tdx", "serving"),
    ("interaction-timeline", "/timeline", "serving"),
    ("dashboard", "/, /dashboard, /metrics, /api/metrics", "serving"),
];

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> http::Response<axum::body::Body> {
    let body = json!({"error": "internal error: the request could not be completed"}).to_string();
    http::Response::builder()
        .status(http::StatusCode::INTERNAL_SERVER_ERROR)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(body))
        .expect("static response")
}

/// Most events a timeline in memory (`--in-memory`) keeps unless
/// `--timeline-max-events` says otherwise.
pub const DEFAULT_IN_MEMORY_TIMELINE_EVENTS: u64 = 1_000_000;

/// Opens the interaction timeline: `timeline.duckdb` in the data directory,
/// or in memory with `--in-memory`. Over NATS it is fed from the broker (see
/// [`ramanujan_network::nats::feed_timeline`]).
pub fn open_timeline(args: &ServeArgs) -> Result<Arc<Timeline>, String> {
    let path = match args.network.data_dir() {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            Some(dir.join("timeline.duckdb"))
        }
        None => None,
    };
    // A timeline in memory is bounded by default: it has nowhere else to go.
    let max_events = args
        .timeline_max_events
        .or(path.is_none().then_some(DEFAULT_IN_MEMORY_TIMELINE_EVENTS));
    let retention = (args.timeline_retention.is_some() || max_events.is_some()).then(|| Retention {
        keep: args.timeline_retention,
        max_events,
        archive: path
            .as_ref()
            .and_then(|p| p.parent())
            .map(|dir| dir.join("timeline-archive")),
    });
    Timeline::open_with(path.as_deref(), retention).map_err(|e| e.to_string())
}

/// Starts the in-process agent network `args` describe; its agents' events
/// go to `events`, if given.
pub fn start_network(
    args: &ServeArgs,
    events: Option<Emitter>,
) -> Result<Arc<ramanujan_network::InProcessNetwork>, String> {
    let net = &args.network;
    ramanujan_network::InProcessNetwork::start(ramanujan_network::NetworkConfig {
        topology: net.topology_kind(),
        seed: net.seed,
        sync_interval: net.sync_interval(),
        health_timeout: net.health_timeout(),
        max_buffer: net.max_buffer_size,
        node_id: args.agent_id.clone(),
        data_dir: net.data_dir(),
        work: net.work_limits(),
        events,
        builtin_rules: args.builtin_rules,
        ..Default::default()
    })
}

/// Connects to agents running as `ramanujan agent` processes on the broker at `url`.
pub async fn connect_network(args: &ServeArgs, url: &str) -> Result<Arc<NatsNetwork>, String> {
    let net = &args.network;
    NatsNetwork::connect(RemoteConfig {
        nats_url: url.to_string(),
        topology: net.topology_kind(),
        seed: net.seed,
        sync_interval: net.sync_interval(),
        health_timeout: net.health_timeout(),
        submit_timeout: Duration::from_secs(5),
    })
    .await
}

/// Runs one agent process until `shutdown` resolves.
pub async fn run_agent(args: AgentArgs, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    let net = &args.network;
    let config = AgentConfig {
        nats_url: args.nats.clone(),
        index: args.id,
        topology: net.topology_kind(),
        seed: net.seed,
        sync_interval: net.sync_interval(),
        heartbeat_interval: ramanujan_agent::network::heartbeat_interval(net.health_timeout()),
        data_dir: net.data_dir(),
        batch: net.max_buffer_size.clamp(1, 1024),
        work: net.work_limits(),
        node_id: args.node_id.clone(),
        events: args.timeline_events,
    };
    ramanujan_network::nats::run_nats_agent(config, shutdown).await
}

/// Runs the NATS bridge (`ramanujan bridge`) until `shutdown` resolves.
pub async fn run_bridge(args: BridgeArgs, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    let config = ramanujan_bridge::BridgeConfig {
        nats_url: args.nats.clone(),
        app_url: args.app.clone(),
        secret: args.secret.as_bytes().to_vec(),
        agents: ramanujan_agent::topology::parse_positions(&args.agents)
            .map_err(|e| format!("--agents: {e}"))?
            .into_iter()
            .collect(),
        listen: args.listen,
        sync_interval: Duration::from_millis(args.sync_interval.max(10)),
        webhook_timeout: Duration::from_millis(args.webhook_timeout.max(100)),
    };
    ramanujan_bridge::run_bridge(config, shutdown).await
}

/// The whole HTTP surface of the embedded host, over a running agent network.
/// Must be called inside a tokio runtime.
/// Streams end once `closing` turns true (the host is stopping).
pub fn app(
    args: &ServeArgs,
    guards: guard::Guards,
    network: Arc<dyn agent_orchestrator::Network>,
    timeline: Arc<Timeline>,
    skills: Arc<skill_verification::SkillService>,
    rules: Arc<transduction_2tdx::TdxService>,
    closing: tokio::sync::watch::Receiver<bool>,
) -> Router {
    let workers = args.compute_workers();
    let runtime = Runtime {
        offload: Arc::new(pool::BlockingPool::new(workers, args.compute_queue)),
        saturation_timeout: Duration::from_millis(args.saturation_timeout_ms),
        time_ceiling: Duration::from_secs(args.timeout_seconds),
        agent_id: args.agent_id.clone(),
        shared: None,
        events: Some(timeline.emitter()),
    };
    let started = Instant::now();
    let mode = if args.nats.is_some() { "distributed" } else { "embedded" };
    let watched = network.clone();
    let health = move || {
        let network = watched.clone();
        async move {
            let reason = network.degraded();
            Json(openapi::HostHealth {
                status: if reason.is_some() { "degraded" } else { "ok" },
                reason,
            })
        }
    };
    let watched = network.clone();
    let guarding = guards.clone();
    let status = move || {
        let degraded = watched.degraded();
        let refused = guarding.refused_signatures();
        async move {
            Json(openapi::HostStatus {
                status: if degraded.is_some() { "degraded" } else { "ok" },
                degraded,
                refused_agent_signatures: refused,
                version: env!("CARGO_PKG_VERSION"),
                mode,
                uptime_seconds: started.elapsed().as_secs_f64(),
                components: COMPONENTS
                    .iter()
                    .map(|&(name, routes, state)| openapi::ComponentState { name, routes, state })
                    .collect(),
            })
        }
    };
    // Every submission through the host is followed until it settles (the
    // dashboard's time to settled).
    let replicas: Arc<dyn transduction_2tdx::ReplicaSource> = Arc::new(tdx::NetworkReplicas(network.clone()));
    let settling = dashboard::Settling::new(network);
    tokio::spawn(dashboard::settling::follow(Arc::downgrade(&settling), closing.clone()));
    let network: Arc<dyn agent_orchestrator::Network> = settling.clone();
    let requests = dashboard::RequestMetrics::new();
    let cache_bytes = usize::try_from(args.cache_size_mb << 20).unwrap_or(usize::MAX);
    let egraph = Arc::new(egraph_service::EgraphService::with_cache_bytes(
        runtime.clone(),
        args.egraph_cache_capacity,
        cache_bytes,
    ));
    let crdt = Arc::new(crdt_service::merge::Merger::with_cache_bytes(
        args.crdt_cache_capacity,
        cache_bytes,
    ));
    let probes = dashboard::Probes {
        caches: vec![
            ("egraph-service", {
                let egraph = egraph.clone();
                Arc::new(move || egraph.cache_stats())
            }),
            ("crdt-service", {
                let crdt = crdt.clone();
                Arc::new(move || crdt.cache_stats())
            }),
        ],
        readings: vec![("skill-verification", {
            let skills = skills.clone();
            Arc::new(move || skills::readings(&skills.stats()))
        })],
    };
    let routes = Router::new()
        .merge(dashboard::router(
            requests.clone(),
            settling,
            probes,
            Duration::from_millis(args.metrics_refresh_ms),
            closing,
        ))
        .merge(egraph_service::router_over(egraph))
        .merge(stream_red::router(runtime.clone()))
        .merge(stream_blue::router(runtime.clone()))
        .merge(stream_green::router(runtime))
        .merge(duck_colors::router())
        .merge(crdt_service::router_over(crdt, Some(timeline.emitter())))
        .merge(agent_orchestrator::router(network))
        .merge(interaction_timeline::router(timeline))
        .merge(skill_verification::router(skills))
        .merge(transduction_2tdx::router(rules, Some(replicas)))
        .route("/health", get(health))
        .route("/status", get(status))
        .merge(openapi::router(openapi::document_json()))
        .fallback(ramanujan_http::error::not_found)
        .layer(DefaultBodyLimit::max(args.max_body_bytes))
        .layer(CatchPanicLayer::custom(panic_response));
    guards
        .wrap(routes)
        // Outside the panic catcher and the guards: a request that panicked
        // counts as its 500, one refused as its 401, 403, 429 or 503.
        .layer(axum::middleware::from_fn_with_state(requests, dashboard::track))
        .layer(TraceLayer::new_for_http())
}

/// The timeline as the broker feed's sink: each batch written with the feed's
/// position in one transaction.
struct TimelineFeed(Arc<Timeline>);

impl ramanujan_network::nats::FeedSink for TimelineFeed {
    fn position(&self, consumer: &str) -> Result<Option<u64>, String> {
        self.0.feed_position(consumer).map_err(|e| e.to_string())
    }

    fn write(&self, consumer: &str, through: u64, events: &[ramanujan_events::Event]) -> Result<(), String> {
        self.0.append_fed(consumer, through, events).map_err(|e| e.to_string())
    }
}

/// Resolves when Ctrl-C or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Binds, prints where to reach the server, and serves until `shutdown` resolves.
pub async fn serve(args: ServeArgs, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind((args.host, args.port)).await?;
    serve_on(listener, args, shutdown).await
}

/// Serves on an already bound listener until `shutdown` resolves, then lets
/// in-flight requests finish.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    args: ServeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let guards = guard::Guards::from_args(&args).map_err(std::io::Error::other)?;
    let timeline = open_timeline(&args).map_err(std::io::Error::other)?;
    let skills = skills::open(&args, timeline.emitter()).map_err(std::io::Error::other)?;
    let rules = tdx::open(&args).map_err(std::io::Error::other)?;
    let rule_sync = rules.config().peer.is_some().then(|| {
        tokio::spawn(tdx::sync_with_peer(
            rules.clone(),
            Duration::from_millis(args.tdx_sync_ms),
        ))
    });
    let skill_sync = (!args.skill_peers.is_empty()).then(|| {
        tokio::spawn(skills::sync_with_peers(
            skills.clone(),
            args.skill_peers.clone(),
            Duration::from_millis(args.skill_sync_ms),
        ))
    });
    // Streams that never end by themselves (server-sent events) end when the
    // host stops: graceful shutdown waits for every open response.
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = closing_tx.send(true);
    };
    let served = if let Some(url) = args.nats.clone() {
        let network = match connect_network(&args, &url).await {
            Ok(network) => network,
            Err(e) => {
                stop_tasks([skill_sync, rule_sync].into_iter().flatten().collect()).await;
                return Err(std::io::Error::other(e));
            }
        };
        tracing::info!(%addr, nats = %url, agents = network.agent_ids().len(), "listening; agents on the broker");
        println!("Ramanujan is up at http://{addr} with its agents on {url}  (try: curl http://{addr}/agents/status)");
        // The agents' events reach the timeline through the broker.
        let sink = Arc::new(TimelineFeed(timeline.clone()));
        let feed_url = url.clone();
        let consumer = args.timeline_consumer.clone();
        let feed = tokio::spawn(async move {
            let never = std::future::pending::<()>();
            if let Err(e) = ramanujan_network::nats::feed_timeline(&feed_url, &consumer, sink, never).await {
                tracing::error!(error = %e, "the timeline's feed from the broker stopped");
            }
        });
        let watcher = tokio::spawn(lifecycle::watch(
            network.clone(),
            timeline.emitter(),
            ramanujan_agent::network::heartbeat_interval(args.network.health_timeout()),
        ));
        let rule_feed = tokio::spawn(tdx::feed_agents(
            rules.clone(),
            tdx::AgentsTarget::Broker(network.clone()),
        ));
        let served = axum::serve(
            listener,
            app(&args, guards, network, timeline, skills, rules, closing)
                .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        stop_tasks(vec![feed, rule_feed, watcher]).await;
        served
    } else {
        let network = match start_network(&args, Some(timeline.emitter())) {
            Ok(network) => network,
            Err(e) => {
                stop_tasks([skill_sync, rule_sync].into_iter().flatten().collect()).await;
                return Err(std::io::Error::other(e));
            }
        };
        tracing::info!(%addr, agents = network.agent_ids().len(), topology = %network.topology().kind, "listening");
        let kept = match args.network.data_dir() {
            Some(dir) => format!("replicas kept in {}", dir.display()),
            None => "replicas in memory only".to_string(),
        };
        println!("Ramanujan is up at http://{addr}  ({kept}; try: curl http://{addr}/status)");
        let watcher = tokio::spawn(lifecycle::watch(
            network.clone(),
            timeline.emitter(),
            ramanujan_agent::network::heartbeat_interval(args.network.health_timeout()),
        ));
        let rule_feed = tokio::spawn(tdx::feed_agents(
            rules.clone(),
            tdx::AgentsTarget::InProcess(network.clone()),
        ));
        let served = axum::serve(
            listener,
            app(&args, guards, network.clone(), timeline, skills, rules, closing)
                .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        stop_tasks(vec![watcher, rule_feed]).await;
        let stopping = network.clone();
        let _ = tokio::task::spawn_blocking(move || stopping.shutdown()).await;
        served
    };
    stop_tasks([skill_sync, rule_sync].into_iter().flatten().collect()).await;
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Aborts `tasks` and waits until each is gone, so what they hold (the rule
/// book's and the skills' stores among it) is released when the host stops:
/// a host started again at once opens the same files.
async fn stop_tasks(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
}
