//! Agents as a Spin component (`spin/agent-orchestrator`), run by a test host
//! built on the wasmtime crates that implements Spin's key-value and variables
//! interfaces in memory (`spin-test-host`), with the same `.wasm` `spin.toml`
//! deploys:
//!
//! - the component reads its configuration from Spin variables and keeps each
//!   agent in key-value; signatures, topics and bodies are checked;
//! - with the NATS bridge and a real `nats-server`: a wrongly signed webhook
//!   gets 401 and the message stays in the broker until a correctly configured
//!   bridge delivers it; a malformed message goes to the dead-letter subject
//!   once, not round a redelivery loop; the publish endpoint checks signatures
//!   and subjects;
//! - end to end: Spin agents behind the bridge and native agent processes on
//!   one broker converge on the same digests.

mod common;

use common::{NETWORK_FLAGS, Proc, spawn_agent, spawn_printing_url};

use bytes::Bytes;
use http_body_util::Full;
use ramanujan_bridge::{Bridge, BridgeConfig};
use ramanujan_network::nats::LocalBroker;
use ramanujan_wire::signature::{SIGNATURE_HEADER, sign, sign_at};
use ramanujan_wire::wire::{self, Inbound};
use serde_json::{Value, json};
use spin_test_host::SpinHost;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "a shared secret";

fn wasm() -> std::path::PathBuf {
    common::spin_components().join("spin_agent_orchestrator.wasm")
}

/// The component with these Spin variables.
fn spin_host(variables: &[(&str, &str)]) -> Arc<SpinHost> {
    let host = SpinHost::new(&wasm(), &["default"], &[("COMPONENT_ID", "spin-test")]).expect("the component loads");
    for (name, value) in variables {
        host.set_variable(name, value);
    }
    Arc::new(host)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One request straight into the component: status and JSON body.
async fn call(host: &SpinHost, method: &str, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> (u16, Value) {
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://localhost{path}"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = host
        .handle(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .expect("the component answers");
    let status = response.status().as_u16();
    let json = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    (status, json)
}

async fn webhook(host: &SpinHost, topic: &str, body: Vec<u8>, secret: &str) -> (u16, Value) {
    let signature = sign(secret.as_bytes(), topic, &body);
    call(
        host,
        "POST",
        &format!("/nats/webhook/{topic}"),
        &[(SIGNATURE_HEADER, signature)],
        body,
    )
    .await
}

fn submit(expression: &str) -> Vec<u8> {
    wire::encode_inbound(&Inbound::Submit {
        request: "r1".into(),
        expression: expression.into(),
    })
    .unwrap()
}

#[test]
fn the_spin_agent_reads_variables_keeps_state_in_key_value_and_checks_every_webhook() {
    let rt = runtime();
    rt.block_on(async {
        let host = spin_host(&[("webhook_secret", SECRET), ("agents", "4"), ("max_terms", "500")]);

        // Signatures: none, wrong secret, signed for another topic.
        let body = submit("(+ a b)");
        let (status, answer) = call(&host, "POST", "/nats/webhook/agent.4.sync", &[], body.clone()).await;
        assert_eq!((status, answer["error"].as_str().is_some()), (401, true), "{answer}");
        assert_eq!(webhook(&host, "agent.4.sync", body.clone(), "wrong").await.0, 401);
        let other_topic = sign(SECRET.as_bytes(), "agent.5.sync", &body);
        let headers = [(SIGNATURE_HEADER, other_topic)];
        assert_eq!(
            call(&host, "POST", "/nats/webhook/agent.4.sync", &headers, body.clone())
                .await
                .0,
            401
        );
        // A replay: signed correctly, ten minutes ago.
        let ten_minutes_ago = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 600;
        let stale = sign_at(SECRET.as_bytes(), "agent.4.sync", &body, ten_minutes_ago);
        let headers = [(SIGNATURE_HEADER, stale)];
        let (status, answer) = call(&host, "POST", "/nats/webhook/agent.4.sync", &headers, body.clone()).await;
        assert_eq!(status, 401, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("signature time"), "{answer}");
        assert!(host.kv_get("default", "agent-4").is_none(), "nothing refused was saved");

        // Signed but malformed, or for an agent or topic not here.
        let (status, answer) = webhook(&host, "agent.4.sync", b"\xc1garbage".to_vec(), SECRET).await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("not an inbox message"),
            "{answer}"
        );
        assert_eq!(
            webhook(&host, "agent.4.tick", b"{\"sync\":1}".to_vec(), SECRET).await.0,
            400
        );
        assert_eq!(
            webhook(&host, "agent.4.state", b"{\"want\":\"everything\"}".to_vec(), SECRET)
                .await
                .0,
            400
        );
        assert_eq!(webhook(&host, "agent.5.sync", body.clone(), SECRET).await.0, 404);
        assert_eq!(webhook(&host, "agent.4.ack", body.clone(), SECRET).await.0, 404);

        // A submission is handled and saved; with no bridge_url configured the
        // acknowledgement cannot be published, so the answer is 503 (the
        // bridge would deliver the message again) but the state is kept.
        let (status, answer) = webhook(&host, "agent.4.sync", body.clone(), SECRET).await;
        assert_eq!(status, 503, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("no bridge_url"), "{answer}");
        let saved = host.kv_get("default", "agent-4").expect("agent-4 saved in key-value");
        assert!(!saved.is_empty());

        // A fresh instance per request: everything below is read back from key-value.
        let (status, state) = call(&host, "GET", "/agent/agent-4/state", &[], Vec::new()).await;
        assert_eq!(status, 200, "{state}");
        assert_eq!(state["agent_id"], "agent-4");
        assert_eq!(state["node_id"], "spin-test");
        assert!(state["egraph_nodes"].as_u64().unwrap() >= 3, "{state}");
        let (_, egraph) = call(&host, "GET", "/agent/agent-4/egraph", &[], Vec::new()).await;
        assert!(egraph["state"].is_object(), "{egraph}");
        let (_, status) = call(&host, "GET", "/agents/status", &[], Vec::new()).await;
        assert_eq!(status["agents"].as_array().unwrap().len(), 1, "{status}");
        assert_eq!(status["agents"][0]["digest"], state["digest"]);
        // The same message again is harmless: nothing new.
        let before = host.kv_get("default", "agent-4");
        let _ = webhook(&host, "agent.4.sync", body, SECRET).await;
        let (_, again) = call(&host, "GET", "/agent/agent-4/state", &[], Vec::new()).await;
        assert_eq!(again["digest"], state["digest"]);
        assert!(before.is_some());

        // Configuration comes from the variables: none for the secret refuses
        // every webhook; a bad one says what is wrong.
        let unsigned = spin_host(&[("agents", "4")]);
        let (status, answer) = webhook(&unsigned, "agent.4.sync", submit("a"), SECRET).await;
        assert_eq!(status, 503, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("WEBHOOK_SECRET"), "{answer}");
        let misconfigured = spin_host(&[("webhook_secret", SECRET), ("agents", "4-99")]);
        let (status, answer) = webhook(&misconfigured, "agent.4.sync", submit("a"), SECRET).await;
        assert_eq!(status, 500, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("agents"), "{answer}");
    });
}

fn bridge_config(broker: &LocalBroker, app: &str, secret: &str) -> BridgeConfig {
    BridgeConfig {
        nats_url: broker.url(),
        app_url: app.to_string(),
        secret: secret.as_bytes().to_vec(),
        agents: vec![4],
        listen: "127.0.0.1:0".parse().unwrap(),
        sync_interval: Duration::from_millis(300),
        webhook_timeout: Duration::from_secs(10),
    }
}

async fn bridge_status(http: &reqwest::Client, bridge: &Bridge) -> Value {
    let url = format!("http://{}/status", bridge.addr);
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// Polls `check` every 50 ms until it holds, for at most `limit`.
async fn eventually<F: AsyncFnMut() -> bool>(limit: Duration, what: &str, mut check: F) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Inbox messages of `agent-{index}` not yet acknowledged (pending or in flight).
async fn unacknowledged(js: &async_nats::jetstream::Context, index: usize) -> u64 {
    let stream = js.get_stream(ramanujan_network::nats::broker::STREAM).await.unwrap();
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer(&format!("agent-{index}")).await.unwrap();
    let info = consumer.info().await.unwrap();
    info.num_pending + info.num_ack_pending as u64
}

#[test]
fn the_bridge_acknowledges_only_what_the_app_took_and_dead_letters_what_it_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = LocalBroker::start(dir.path()).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let host = spin_host(&[("webhook_secret", SECRET), ("agents", "4"), ("max_terms", "500")]);
        let (app, _serving) = host.clone().serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let app = format!("http://{app}");
        let http = reqwest::Client::new();
        let client = async_nats::connect(broker.url()).await.unwrap();
        let js = async_nats::jetstream::new(client.clone());
        let mut acks = client.subscribe(wire::ack_subject(4)).await.unwrap();

        // A bridge with the wrong secret: every webhook gets 401, nothing is acknowledged.
        let wrong = Bridge::start(bridge_config(&broker, &app, "not the secret"))
            .await
            .unwrap();
        host.set_variable("bridge_url", &format!("http://{}", wrong.addr));
        ramanujan_network::nats::broker::ensure_stream(&js).await.unwrap();
        js.publish(wire::sync_subject(4), submit("(* x (+ y 1))").into())
            .await
            .unwrap()
            .await
            .unwrap();
        eventually(
            Duration::from_secs(60),
            "webhooks refused as unauthorized",
            async || {
                bridge_status(&http, &wrong).await["counters"]["unauthorized"]
                    .as_u64()
                    .unwrap()
                    >= 2
            },
        )
        .await;
        assert_eq!(bridge_status(&http, &wrong).await["counters"]["delivered"], 0);
        assert_eq!(
            unacknowledged(&js, 4).await,
            1,
            "the refused message stays in the broker"
        );
        assert!(host.kv_get("default", "agent-4").is_none());
        drop(wrong);

        // The right secret: the same message is delivered, saved and acknowledged,
        // and the agent's acknowledgement comes back through the publish endpoint.
        let bridge = Bridge::start(bridge_config(&broker, &app, SECRET)).await.unwrap();
        host.set_variable("bridge_url", &format!("http://{}", bridge.addr));
        let ack = tokio::time::timeout(Duration::from_secs(60), futures_util::StreamExt::next(&mut acks))
            .await
            .expect("the submission is acknowledged")
            .unwrap();
        let ack: Value = serde_json::from_slice(&ack.payload).unwrap();
        assert!(ack["root"].is_string(), "{ack}");
        assert!(host.kv_get("default", "agent-4").is_some());
        eventually(Duration::from_secs(30), "the inbox is acknowledged", async || {
            unacknowledged(&js, 4).await == 0
        })
        .await;

        // A malformed message: 400, moved to the dead-letter subject once, terminated.
        let garbage: &[u8] = b"\x93not msgpack of an inbox message";
        js.publish(wire::sync_subject(4), garbage.into())
            .await
            .unwrap()
            .await
            .unwrap();
        eventually(
            Duration::from_secs(60),
            "the malformed message is dead-lettered",
            async || bridge_status(&http, &bridge).await["counters"]["dead_lettered"] == 1,
        )
        .await;
        let mut dead = js.get_stream(ramanujan_bridge::DEADLETTER_STREAM).await.unwrap();
        let dead_info = dead.info().await.unwrap();
        assert_eq!(dead_info.state.messages, 1);
        let stored = dead
            .get_last_raw_message_by_subject("deadletter.agent.4.sync")
            .await
            .unwrap();
        assert_eq!(&stored.payload[..], garbage);
        // No redelivery loop: a while later it is still one, and the inbox is empty.
        tokio::time::sleep(ramanujan_network::nats::broker::ACK_WAIT + Duration::from_secs(1)).await;
        let counters = bridge_status(&http, &bridge).await["counters"].clone();
        assert_eq!(counters["dead_lettered"], 1, "{counters}");
        assert_eq!(unacknowledged(&js, 4).await, 0);
        assert_eq!(dead.info().await.unwrap().state.messages, 1);

        // The publish endpoint: unsigned, wrongly signed, and off-limits subjects are refused.
        // `x` published on `subject`, signed with `secret` (unsigned if `None`).
        let publish = async |subject: &str, secret: Option<&[u8]>| {
            let mut request = http.post(format!("http://{}/publish/{subject}", bridge.addr)).body("x");
            if let Some(secret) = secret {
                request = request.header(SIGNATURE_HEADER, sign(secret, subject, b"x"));
            }
            request.send().await.unwrap()
        };
        assert_eq!(publish("agent.5.sync", None).await.status().as_u16(), 401);
        assert_eq!(publish("agent.5.sync", Some(b"wrong")).await.status().as_u16(), 401);
        let r = publish("network.status", Some(SECRET.as_bytes())).await;
        assert_eq!(r.status().as_u16(), 400);
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("cannot publish"), "{body}");

        // Readiness follows the broker: ready now, 503 soon after it dies.
        let ready = format!("http://{}/ready", bridge.addr);
        assert_eq!(http.get(&ready).send().await.unwrap().status().as_u16(), 200);
        broker.kill();
        eventually(
            Duration::from_secs(10),
            "the bridge is not ready without its broker",
            async || http.get(&ready).send().await.unwrap().status().as_u16() == 503,
        )
        .await;
        let r = publish("agent.4.sync", Some(SECRET.as_bytes())).await;
        assert_eq!(r.status().as_u16(), 503, "publishing without a broker");
    });
    drop(broker);
}

#[test]
fn spin_agents_behind_the_bridge_and_native_agents_converge_on_one_broker() {
    const ON_SPIN: [usize; 2] = [4, 7];
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::start(dir.path()).expect("nats-server runs (.ci/run installs it)");
    let url = broker.url();
    let rt = runtime();
    rt.block_on(async {
        let host = spin_host(&[
            ("webhook_secret", SECRET),
            ("agents", "4,7"),
            ("goal_nodes", "200"),
            ("step_time_ms", "300"),
        ]);
        let (app, _serving) = host.clone().serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let app = format!("http://{app}");
        let (_bridge, publish) = spawn_printing_url(&[
            "bridge",
            "--nats",
            &url,
            "--app",
            &app,
            "--secret",
            SECRET,
            "--agents",
            "4,7",
            "--listen",
            "127.0.0.1:0",
            "--sync-interval",
            "300",
            "--log-level",
            "warn",
        ]);
        let bridge_url = publish.split("/publish/").next().unwrap().to_string();
        host.set_variable("bridge_url", &bridge_url);

        let data = dir.path().join("data");
        let _native: Vec<Proc> = (0..9)
            .filter(|i| !ON_SPIN.contains(i))
            .map(|i| spawn_agent(i, &url, &data))
            .collect();
        let mut up = vec!["up", "--port", "0", "--in-memory", "--nats", &url];
        up.extend(NETWORK_FLAGS);
        let (_host_process, base) = spawn_printing_url(&up);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap();
        let get = async |path: &str| -> Value {
            match http.get(format!("{base}{path}")).send().await {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            }
        };

        // Every agent beats, the Spin ones through the bridge.
        eventually(Duration::from_secs(120), "all nine agents alive", async || {
            get("/agents/status").await["agents"]
                .as_array()
                .is_some_and(|a| a.len() == 9 && a.iter().all(|a| a["status"] == "alive"))
        })
        .await;

        // Nine submissions: the host enters them round the agents, so the Spin
        // agents take some (their acknowledgements come back through the bridge).
        let mut ids = Vec::new();
        for k in 0..9 {
            let expression = format!("(* (+ a{k} {k}) (+ b 1))");
            let r = http
                .post(format!("{base}/agents/submit"))
                .json(&json!({ "expression": expression }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 202, "{expression}");
            let body: Value = r.json().await.unwrap();
            ids.push((body["id"].as_str().unwrap().to_string(), body["entry_agent"].clone()));
        }
        let entries: Vec<&Value> = ids.iter().map(|(_, e)| e).collect();
        assert!(
            entries.iter().any(|e| *e == "agent-4" || *e == "agent-7"),
            "{entries:?}"
        );

        eventually(Duration::from_secs(240), "the network converges", async || {
            let status = get("/agents/status").await;
            status["converged"] == true && status["distinct_digests"] == 1
        })
        .await;
        // Every agent holds every submission with one canonical form. The host
        // asks each agent over the broker with a 3 s timeout and lists an agent
        // that did not answer in time as `unanswered`: a Spin agent materialises
        // its whole replica per query, which a loaded machine may not do in 3 s
        // under a debug-built wasmtime, so the host is asked again.
        for (id, _) in &ids {
            let path = format!("/agents/submissions/{id}");
            eventually(
                Duration::from_secs(60),
                &format!("{path} converged everywhere"),
                async || {
                    let submission = get(&path).await;
                    submission["present_in"] == 9 && submission["converged"] == true
                },
            )
            .await;
        }
        // The Spin agents' own view, read from their key-value state, and the
        // host's view of them, asked over the broker through the bridge, agree
        // with the network's one digest. (Heartbeats are a few hundred ms apart,
        // so "converged" can be reported a moment before the last fact lands:
        // the digests are compared once they have settled.)
        eventually(
            Duration::from_secs(60),
            "Spin agents hold the network's digest",
            async || {
                let status = get("/agents/status").await;
                let digest = status["agents"][0]["digest"].clone();
                if status["converged"] != true || status["distinct_digests"] != 1 {
                    return false;
                }
                for i in ON_SPIN {
                    let (_, own) = call(&host, "GET", &format!("/agent/agent-{i}/state"), &[], Vec::new()).await;
                    let asked = get(&format!("/agent/agent-{i}/state")).await;
                    if own["digest"] != digest || asked["digest"] != digest {
                        return false;
                    }
                }
                true
            },
        )
        .await;
        for i in ON_SPIN {
            let (_, own) = call(&host, "GET", &format!("/agent/agent-{i}/state"), &[], Vec::new()).await;
            assert!(own["counters"]["messages_received"].as_u64().unwrap() > 0);
        }

        // The Spin agents' interactions reach the host's timeline through the
        // bridge, with the bridge's webhook deliveries.
        for i in ON_SPIN {
            eventually(
                Duration::from_secs(30),
                &format!("agent-{i}'s events in the timeline"),
                async || {
                    let answer = get(&format!("/timeline/query?agent=agent-{i}&limit=10000")).await;
                    let types: std::collections::BTreeSet<&str> = answer["events"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|e| e["event"]["type"].as_str())
                        .collect();
                    ["lifecycle", "message_received", "message_sent", "merge"]
                        .iter()
                        .all(|t| types.contains(t))
                },
            )
            .await;
        }
        let webhooks = get("/timeline/query?type=webhook&agent=bridge&limit=10000").await;
        let topics: std::collections::BTreeSet<&str> = webhooks["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"]["status"] == 200)
            .filter_map(|e| e["event"]["topic"].as_str())
            .collect();
        for topic in ["agent.4.sync", "agent.4.tick", "agent.7.sync", "agent.7.tick"] {
            assert!(topics.contains(topic), "{topic} delivered: {topics:?}");
        }
        // A submission a Spin agent took is in its story.
        if let Some((id, entry)) = ids.iter().find(|(_, e)| *e == "agent-4" || *e == "agent-7") {
            let story = get(&format!("/timeline/submissions/{id}")).await;
            assert_eq!(story["entered"]["agent"], *entry, "{story}");
        }
    });
    drop(broker);
}
