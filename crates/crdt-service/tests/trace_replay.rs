//! Replays real editing traces (`../shared/traces`) through `TextCRDT`: the
//! edits go through `apply` in batches, each batch by the next of four
//! replicas; each batch's update (a diff since the state before it) is then
//! dealt out among the replicas, each replica merges its share — states with
//! gaps, waiting on other replicas' updates — and merging those ends with
//! exactly the trace's `endContent`.

use crdt_service::merge::Merger;
use serde_json::{Value, json};
use std::io::Read;
use std::path::PathBuf;

const REPLICAS: usize = 4;
const TXNS_PER_BATCH: usize = 2_000;

fn trace(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/traces")
        .join(name);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn body(answer: bytes::Bytes) -> Value {
    serde_json::from_slice(&answer).unwrap()
}

fn replay(name: &str) {
    let trace = trace(name);
    let end = trace["endContent"].as_str().unwrap();
    // The traces count Unicode scalars, Yjs UTF-16 units: the same while every
    // character is in the BMP, which these traces are.
    assert!(end.chars().all(|c| (c as u32) < 0x10000), "{name} leaves the BMP");
    let merger = Merger::new(64);
    let mut state = Value::Null;
    let mut since = Value::Null;
    let mut updates = Vec::new();
    let mut ops = Vec::new();
    let start = trace["startContent"].as_str().unwrap_or("");
    if !start.is_empty() {
        ops.push(json!({"op": "insert", "index": 0, "text": start}));
    }
    let txns = trace["txns"].as_array().unwrap();
    for (batch, txns) in txns.chunks(TXNS_PER_BATCH).enumerate() {
        for txn in txns {
            for patch in txn["patches"].as_array().unwrap() {
                let (index, deleted, inserted) = (&patch[0], patch[1].as_u64().unwrap(), patch[2].as_str().unwrap());
                if deleted > 0 {
                    ops.push(json!({"op": "delete", "index": index, "len": deleted}));
                }
                if !inserted.is_empty() {
                    ops.push(json!({"op": "insert", "index": index, "text": inserted}));
                }
            }
        }
        let actor = (batch % REPLICAS + 1).to_string();
        let edited = body(
            merger
                .apply("TextCRDT", Some(state), std::mem::take(&mut ops), Some(&actor), None)
                .unwrap_or_else(|e| panic!("batch {batch}: {}", e.0)),
        );
        let diff = body(merger.diff("TextCRDT", edited["state"].clone(), Some(since)).unwrap());
        updates.push(diff["update"].clone());
        state = edited["state"].clone();
        since = edited["state_vector"].clone();
    }
    let edited = body(merger.merge("TextCRDT", vec![state.clone(), state], None).unwrap().0);
    assert!(edited["value"] == end, "{name}: the edits did not give endContent");
    // Deal the updates out; each replica merges its share, then all merge.
    let shares: Vec<Value> = (0..REPLICAS)
        .map(|r| {
            let mine: Vec<Value> = updates.iter().skip(r).step_by(REPLICAS).cloned().collect();
            let mine = if mine.len() == 1 {
                vec![mine[0].clone(), mine[0].clone()]
            } else {
                mine
            };
            body(merger.merge("TextCRDT", mine, None).unwrap().0)["state"].clone()
        })
        .collect();
    let merged = body(merger.merge("TextCRDT", shares, None).unwrap().0);
    assert!(
        merged["value"] == end,
        "{name}: merging the replicas' shares did not give endContent"
    );
    assert_eq!(merged["value"].as_str().unwrap().chars().count(), end.chars().count());
}

#[test]
fn sveltecomponent_replays_to_its_end_content() {
    replay("sveltecomponent.json.gz");
}

#[test]
fn automerge_paper_replays_to_its_end_content() {
    replay("automerge-paper.json.gz");
}
