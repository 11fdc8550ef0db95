//! skill-verification in the real host: `ramanujan up` with `MODEL_PATH` set
//! to the small committed model takes images over HTTP, and refuses to start
//! with a model whose output does not fit the configured dimension; the
//! references it acknowledged survive `kill -9`.

mod common;

use base64::Engine;
use common::{Host, spawn_printing_url};
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

fn fixtures() -> PathBuf {
    common::root().join("crates/skill-verification/fixtures")
}

fn image(name: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(fixtures().join("images").join(name)).unwrap())
}

#[test]
fn the_host_embeds_images_with_the_model_at_model_path() {
    let model = fixtures().join("tiny_embedder.onnx");
    let model = model.to_str().unwrap();
    let args = [
        "up",
        "--port",
        "0",
        "--in-memory",
        "--log-level",
        "warn",
        "--model-path",
        model,
        "--skill-embedding-dim",
        "80",
    ];
    let (_process, base) = spawn_printing_url(&args);
    let host = Host::new(base, Duration::from_secs(30));
    let (_, skills) = host.get("/skills");
    assert_eq!(skills["image_model"]["dim"], 80, "{skills}");
    let photos = [("cat", "chelsea.png"), ("cup", "coffee.jpg"), ("rocket", "rocket.jpg")];
    let examples: Vec<_> = photos
        .iter()
        .map(|(label, file)| json!({"label": label, "image": image(file), "source": file}))
        .collect();
    let (status, added) = host.post("/skills/examples", json!({ "examples": examples }));
    assert_eq!(status, 201, "{added}");
    for (label, file) in photos {
        let (status, answer) = host.post(
            "/skills/analyze",
            json!({"image_id": file, "image": image(file), "claimed_skill": label, "k": 1}),
        );
        assert_eq!(status, 200, "{answer}");
        // Each verifier holds its own sample of the three references, so not
        // all of them see the photo itself; those that do vote for it. (How
        // well the panel tells photographs apart is skill-verification's
        // tests/images.rs.)
        assert_eq!(answer["leading"], label, "{file}: {answer}");
    }
    let (status, answer) = host.post("/skills/analyze", json!({"image_id": "x", "image": "bm90IGFuIGltYWdl"}));
    assert_eq!(status, 415, "{answer}");
}

#[test]
fn a_model_that_does_not_fit_the_dimension_stops_the_host_at_start_naming_the_setting() {
    let model = fixtures().join("tiny_embedder.onnx");
    for (extra, says) in [
        (vec!["--model-path", model.to_str().unwrap()], "SKILL_EMBEDDING_DIM=80"),
        (
            vec!["--model-path", "/nonexistent/resnet50.onnx"],
            "cannot read the image model",
        ),
    ] {
        let mut args = vec!["up", "--port", "0", "--in-memory", "--log-level", "warn"];
        args.extend(extra);
        let output = Command::new(env!("CARGO_BIN_EXE_ramanujan"))
            .args(&args)
            .output()
            .expect("ramanujan runs");
        assert!(!output.status.success(), "it started anyway");
        let said = String::from_utf8_lossy(&output.stderr).to_string() + &String::from_utf8_lossy(&output.stdout);
        assert!(said.contains(says), "{said}");
    }
}

/// The keys the host holds for each of `labels` (none for a label it does not know).
fn held_keys(host: &Host, labels: &[&str]) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for label in labels {
        let (status, skill) = host.get(&format!("/skills/{label}"));
        if status == 404 {
            continue;
        }
        assert_eq!(status, 200, "{skill}");
        for example in skill["examples"].as_array().unwrap() {
            keys.insert(example["key"].as_str().unwrap().to_string());
        }
    }
    keys
}

#[test]
fn acknowledged_reference_changes_survive_kill_9_in_the_middle_of_writes() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let args = [
        "up",
        "--port",
        "0",
        "--data-dir",
        data_dir,
        "--log-level",
        "warn",
        "--skill-embedding-dim",
        "8",
    ];
    let labels = ["gone", "skill-0", "skill-1", "skill-2", "skill-3"];
    let (process, base) = spawn_printing_url(&args);
    let host = Host::new(base, Duration::from_secs(30));
    let random_example = |rng: &mut rand_chacha::ChaCha8Rng, label: &str| {
        let embedding: Vec<f32> = (0..8).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        json!({"label": label, "embedding": embedding, "source": "kill-9 test"})
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    // A skill added and then removed, both acknowledged.
    let gone: Vec<_> = (0..5).map(|_| random_example(&mut rng, "gone")).collect();
    let (status, added) = host.post("/skills/examples", json!({ "examples": gone }));
    assert_eq!(status, 201, "{added}");
    let removed = host.http.delete(format!("{}/skills/gone", host.base)).send().unwrap();
    assert_eq!(removed.status().as_u16(), 200);

    // One writer adds examples one request at a time and keeps every key the
    // host acknowledged; the host is killed while it is still writing.
    let (acked_tx, acked_rx) = mpsc::channel::<()>();
    let writer = {
        let host = Host::new(host.base.clone(), Duration::from_secs(30));
        std::thread::spawn(move || {
            let mut acknowledged = BTreeSet::new();
            for i in 0.. {
                let example = random_example(&mut rng, &format!("skill-{}", i % 4));
                let (status, answer) = host.post("/skills/examples", json!({ "examples": [example] }));
                if status != 201 {
                    assert_eq!(status, 0, "only a dead host may fail a write: {answer}");
                    break;
                }
                acknowledged.insert(answer["added"][0].as_str().unwrap().to_string());
                let _ = acked_tx.send(());
            }
            acknowledged
        })
    };
    for _ in 0..60 {
        acked_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the writer is acknowledged");
    }
    process.kill9();
    let acknowledged = writer.join().unwrap();
    assert!(acknowledged.len() >= 60);

    let (_process, base) = spawn_printing_url(&args);
    let host = Host::new(base, Duration::from_secs(30));
    let held = held_keys(&host, &labels);
    let lost: Vec<_> = acknowledged.difference(&held).collect();
    assert!(lost.is_empty(), "acknowledged but lost after kill -9: {lost:?}");
    // At most the one request in flight was stored without its answer.
    assert!(
        held.len() <= acknowledged.len() + 1,
        "{} held, {} acknowledged",
        held.len(),
        acknowledged.len()
    );
    assert_eq!(host.get("/skills/gone").0, 404, "an acknowledged removal came back");
    let (_, skills) = host.get("/skills/stats");
    assert_eq!(skills["references"], held.len(), "{skills}");
    let (status, answer) = host.post(
        "/skills/analyze",
        json!({"image_id": "after restart", "embedding": [1, 0, 0, 0, 0, 0, 0, 0]}),
    );
    assert_eq!(status, 200, "the panel answers from the reloaded references: {answer}");
}

#[test]
fn stored_references_of_another_dimension_stop_the_host_at_start() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let up = |dim: &str| {
        vec![
            "up".to_string(),
            "--port".into(),
            "0".into(),
            "--data-dir".into(),
            data_dir.into(),
            "--log-level".into(),
            "warn".into(),
            "--skill-embedding-dim".into(),
            dim.into(),
        ]
    };
    {
        let args = up("8");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (_process, base) = spawn_printing_url(&args);
        let host = Host::new(base, Duration::from_secs(30));
        let example = json!({"label": "cat", "embedding": [1, 0, 0, 0, 0, 0, 0, 0]});
        assert_eq!(host.post("/skills/examples", json!({ "examples": [example] })).0, 201);
    }
    let output = Command::new(env!("CARGO_BIN_EXE_ramanujan"))
        .args(up("16"))
        .output()
        .expect("ramanujan runs");
    assert!(!output.status.success(), "it started anyway");
    let said = String::from_utf8_lossy(&output.stderr).to_string() + &String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("SKILL_EMBEDDING_DIM") && said.contains("dimension 8"),
        "{said}"
    );
}

/// Two hosts in this process, each naming the other in `SKILL_PEERS` (and
/// the first also a dead address), learn different skills: they converge by
/// themselves, a removal on one reaches the other, they answer an analysis
/// byte for byte alike, and the dead peer is counted, not fatal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_that_name_each_other_as_skill_peers_converge_by_themselves() {
    use ramanujan::config::ServeArgs;
    let bind = || async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() };
    let (la, lb) = (bind().await, bind().await);
    let dead = format!("http://{}", bind().await.local_addr().unwrap());
    let (a, b) = (
        format!("http://{}", la.local_addr().unwrap()),
        format!("http://{}", lb.local_addr().unwrap()),
    );
    let mut stops = Vec::new();
    for (listener, name, peers) in [(la, "host-a", vec![b.clone(), dead]), (lb, "host-b", vec![a.clone()])] {
        let mut args = ServeArgs {
            agent_id: name.into(),
            skill_embedding_dim: 8,
            skill_peers: peers,
            skill_sync_ms: 100,
            ..ServeArgs::default()
        };
        args.network.in_memory = true;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(ramanujan::serve_on(listener, args, async {
            let _ = stopped.await;
        }));
        stops.push(stop);
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let call = |method: reqwest::Method, url: String, body: Option<serde_json::Value>| {
        let mut request = http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    let learn = |base: &str, labels: [(&str, usize); 2], seed: u64| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let examples: Vec<_> = labels
            .iter()
            .flat_map(|&(label, axis)| {
                (0..10)
                    .map(|_| {
                        let mut v: Vec<f32> = (0..8).map(|_| 0.1 * rng.random_range(-1.0f32..1.0)).collect();
                        v[axis] += 1.0;
                        json!({"label": label, "embedding": v})
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        call(
            reqwest::Method::POST,
            format!("{base}/skills/examples"),
            Some(json!({ "examples": examples })),
        )
    };
    assert_eq!(learn(&a, [("cat", 0), ("dog", 1)], 1).await.0, 201);
    assert_eq!(learn(&b, [("owl", 2), ("eel", 3)], 2).await.0, 201);
    let membership = |base: String| {
        let get = call(reqwest::Method::GET, format!("{base}/skills/membership"), None);
        async move { serde_json::from_str::<serde_json::Value>(&get.await.1).unwrap() }
    };
    let converged = |want: usize| {
        let (a, b) = (a.clone(), b.clone());
        let membership = &membership;
        async move {
            let started = std::time::Instant::now();
            loop {
                let (x, y) = (membership(a.clone()).await, membership(b.clone()).await);
                let held = x["members"]["entries"].as_object().map_or(0, |m| m.len());
                if x["digest"] == y["digest"] && held == want {
                    return;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "not converged: {held} held, want {want}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    converged(40).await;
    let (status, _) = call(reqwest::Method::DELETE, format!("{a}/skills/owl"), None).await;
    assert_eq!(status, 200);
    converged(30).await;
    assert_eq!(call(reqwest::Method::GET, format!("{b}/skills/owl"), None).await.0, 404);
    let probe = json!({"image_id": "probe", "embedding": [0, 0, 0, 1, 0, 0, 0, 0], "claimed_skill": "eel"});
    let x = call(
        reqwest::Method::POST,
        format!("{a}/skills/analyze"),
        Some(probe.clone()),
    )
    .await;
    let y = call(reqwest::Method::POST, format!("{b}/skills/analyze"), Some(probe)).await;
    assert_eq!(x.0, 200, "{}", x.1);
    assert_eq!(x.1, y.1, "the same answer, byte for byte");
    let (_, stats) = call(reqwest::Method::GET, format!("{a}/skills/stats"), None).await;
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert!(stats["peer_pulls"].as_u64().unwrap() > 0, "{stats}");
    assert!(
        stats["peer_pull_failures"].as_u64().unwrap() > 0,
        "the dead peer: {stats}"
    );
    for stop in stops {
        let _ = stop.send(());
    }
}
