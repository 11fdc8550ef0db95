//! skill-verification in the real host: `ramanujan up` with `MODEL_PATH` set
//! to the small committed model takes images over HTTP, and refuses to start
//! with a model whose output does not fit the configured dimension.

mod common;

use base64::Engine;
use common::{Host, spawn_printing_url};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
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
