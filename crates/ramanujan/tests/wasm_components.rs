//! The Spin components (`spin/`) that import no Spin interface, built for
//! `wasm32-wasip2` in release and served by the real `wasmtime serve -Scli` (the
//! pinned one, on `PATH` or fetched: `ramanujan_network::tools`), answering their routes over
//! loopback HTTP. Those that import Spin's key-value or variables
//! (egraph-service, agent-orchestrator) run in the wasmtime-crates test host:
//! `spin_components.rs`, `spin_agents.rs`.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
mod common;

use common::spin_components;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `wasmtime serve` of one component on a free loopback port; killed on drop.
struct Served {
    child: Child,
    base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(wasm: &Path) -> Served {
    let wasmtime = ramanujan_network::tools::program(&ramanujan_network::tools::WASMTIME).unwrap();
    let mut child = Command::new(wasmtime)
        .args(["serve", "-Scli", "--addr", "127.0.0.1:0"])
        .arg(wasm)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wasmtime starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("Serving HTTP on ") {
                let _ = tx.send(url.trim_end_matches('/').to_string());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("wasmtime says where it serves within 30 s");
    Served { child, base }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn get(base: &str, path: &str) -> (u16, Value) {
    let resp = client().get(format!("{base}{path}")).send().unwrap();
    (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
}

fn post(base: &str, path: &str, body: &str) -> (u16, Value) {
    let resp = client()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
}

#[test]
fn crdt_service_answers_inside_wasmtime() {
    let served = serve(&spin_components().join("spin_crdt_service.wasm"));
    let base = &served.base;
    let types: Value = client()
        .get(format!("{base}/crdt/types"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(types["types"].as_array().unwrap().len(), 10);
    let (status, merged) = post(
        base,
        "/crdt/merge",
        r#"{"crdt_type": "GCounter", "states": [{"inner": {"dots": {"a": 2}}}, {"inner": {"dots": {"b": 3}}}]}"#,
    );
    assert_eq!((status, merged["value"].clone()), (200, json!("5")));
    // yrs inside WebAssembly: the Yjs example reads as its text.
    let text = "AQEBAAQBBHRleHQLaMOpbGxvIPCfmIAA";
    let (status, merged) = post(
        base,
        "/crdt/merge",
        &json!({"crdt_type": "TextCRDT", "states": [text, text]}).to_string(),
    );
    assert_eq!((status, merged["value"].clone()), (200, json!("héllo 😀")));
    // Bad input: the same JSON errors as natively.
    let (status, answer) = post(base, "/crdt/merge", "{not json");
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].is_string());
    let (status, answer) = post(
        base,
        "/crdt/merge",
        &json!({"crdt_type": "TextCRDT", "states": [text, "@@@"]}).to_string(),
    );
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap().contains("state 1"), "{answer}");
    let missing = client().get(format!("{base}/crdt/nope")).send().unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let answer: Value = missing.json().unwrap();
    assert!(answer["error"].is_string(), "{answer}");
}

#[test]
fn colour_streams_answer_inside_wasmtime() {
    for color in ["red", "blue", "green"] {
        let served = serve(&spin_components().join(format!("spin_stream_{color}.wasm")));
        let base = &served.base;
        let (status, answer) = get(base, &format!("/stream/{color}"));
        assert_eq!(status, 200, "{color}: {answer}");
        let (status, answer) = post(
            base,
            &format!("/stream/{color}/apply"),
            r#"{"expression": "(* a (+ b c))"}"#,
        );
        assert_eq!(status, 200, "{color}: {answer}");
        let (status, answer) = post(base, &format!("/stream/{color}/apply"), r#"{"expression": 7}"#);
        assert!((400..500).contains(&status), "{color}: {status} {answer}");
        // A component serves its own routes only.
        let (status, answer) = get(base, "/crdt/types");
        assert_eq!(status, 404, "{answer}");
    }
}

#[test]
fn duck_colors_assigns_inside_wasmtime() {
    let served = serve(&spin_components().join("spin_duck_colors.wasm"));
    let base = &served.base;
    let (status, palette) = get(base, "/colors/palette");
    assert_eq!(status, 200, "{palette}");
    let (status, polarity) = get(base, "/colors/polarity/red");
    assert_eq!(status, 200, "{polarity}");
}
