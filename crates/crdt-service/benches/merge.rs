//! The merge service against its peers, raw `crdts` and raw yrs, in the same run.
//!
//! `ramanujan` is a merge's whole work but the HTTP framing: parse the JSON
//! request, parse every state, compute identities and the memo key, merge
//! (a miss: the memo holds one answer and inputs alternate), read the value and
//! encode the JSON answer. The peers do the least a service on the raw crate
//! could: parse the JSON request and states, merge, encode state and value.
//!
//! Also: many small updates merged by applying them to one document (what the
//! service does) against yrs's `merge_updates_v1`; replaying the automerge-paper
//! trace through the service against typing it into one yrs document; and, as
//! printed lines, the memo's hit ratio on a gossip workload.
//!
//! Run: `cargo bench -p crdt-service --bench merge`

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use crdt_service::merge::Merger;
use crdts::{CmRDT, CvRDT, GCounter};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde::Deserialize;
use serde_json::{Value, json};
use std::hint::black_box;
use std::io::Read;
use std::time::Duration;
use yrs::updates::decoder::Decode;
use yrs::{ClientID, Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, Text, Transact, Update};

fn doc(client: u64) -> Doc {
    Doc::with_options(Options {
        client_id: ClientID::new(client),
        offset_kind: OffsetKind::Utf16,
        ..Options::default()
    })
}

fn encode(doc: &Doc) -> String {
    BASE64.encode(doc.transact().encode_state_as_update_v1(&StateVector::default()))
}

/// The service's merge of a JSON request body.
fn service_merge(merger: &Merger, body: &[u8]) -> Vec<u8> {
    let mut req: Value = serde_json::from_slice(body).unwrap();
    let states = match req["states"].take() {
        Value::Array(states) => states,
        _ => unreachable!(),
    };
    merger
        .merge(req["crdt_type"].as_str().unwrap(), states, None)
        .unwrap()
        .0
        .to_vec()
}

#[derive(Deserialize)]
struct CounterRequest {
    states: Vec<GCounter<String>>,
}

fn raw_crdts_merge(body: &[u8]) -> Vec<u8> {
    let req: CounterRequest = serde_json::from_slice(body).unwrap();
    let mut states = req.states.into_iter();
    let mut merged = states.next().unwrap();
    for s in states {
        merged.merge(s);
    }
    serde_json::to_vec(&json!({"state": merged, "value": merged.read().to_string()})).unwrap()
}

#[derive(Deserialize)]
struct TextRequest {
    states: Vec<String>,
}

fn raw_yrs_merge(body: &[u8]) -> Vec<u8> {
    let req: TextRequest = serde_json::from_slice(body).unwrap();
    let doc = Doc::new();
    let text = doc.get_or_insert_text("text");
    {
        let mut txn = doc.transact_mut();
        for s in req.states {
            txn.apply_update(Update::decode_v1(&BASE64.decode(s).unwrap()).unwrap())
                .unwrap();
        }
    }
    let txn = doc.transact();
    let state = BASE64.encode(txn.encode_state_as_update_v1(&StateVector::default()));
    serde_json::to_vec(&json!({"state": state, "value": text.get_string(&txn)})).unwrap()
}

/// Two bodies with different inputs, so that a one-answer memo always misses.
fn alternating(bodies: [Vec<u8>; 2]) -> impl FnMut() -> Vec<u8> {
    let merger = Merger::new(1);
    let mut i = 0;
    move || {
        i += 1;
        service_merge(&merger, &bodies[i % 2])
    }
}

fn counter(dots: &[(&str, u64)]) -> GCounter<String> {
    let mut c = GCounter::new();
    for &(a, n) in dots {
        c.apply(c.inc_many(a.to_string(), n));
    }
    c
}

/// Two replicas of a text: a shared history of `chars` characters, then concurrent edits.
fn text_pair(chars: usize, salt: u64) -> [String; 2] {
    let (a, b) = (doc(1 + salt * 2), doc(2 + salt * 2));
    let base = "héllo wörld, ".repeat(chars / 13 + 1);
    a.get_or_insert_text("text")
        .insert(&mut a.transact_mut(), 0, &base[..chars]);
    b.transact_mut()
        .apply_update(Update::decode_v1(&BASE64.decode(encode(&a)).unwrap()).unwrap())
        .unwrap();
    a.get_or_insert_text("text").insert(&mut a.transact_mut(), 3, "A😀");
    b.get_or_insert_text("text")
        .insert(&mut b.transact_mut(), 5, &format!("B{salt}"));
    [encode(&a), encode(&b)]
}

fn compare(c: &mut Criterion, name: &str, mut ours: impl FnMut() -> Vec<u8>, mut peer: impl FnMut() -> Vec<u8>) {
    let mut group = c.benchmark_group(name);
    group.bench_function("ramanujan", |b| b.iter(|| black_box(ours())));
    group.bench_function("peer", |b| b.iter(|| black_box(peer())));
    group.finish();
}

fn merges(c: &mut Criterion) {
    let counters = |salt: u64| {
        json!({"crdt_type": "GCounter", "states": [
            counter(&[("a", 3 + salt), ("b", 1)]), counter(&[("b", 4), ("c", 2 + salt)]),
        ]})
        .to_string()
        .into_bytes()
    };
    let body = counters(0);
    compare(c, "gcounter_merge", alternating([counters(0), counters(1)]), || {
        raw_crdts_merge(&body)
    });
    for chars in [16, 4096] {
        let texts = |salt| {
            json!({"crdt_type": "TextCRDT", "states": text_pair(chars, salt)})
                .to_string()
                .into_bytes()
        };
        let body = texts(0);
        compare(
            c,
            &format!("text_merge_{chars}_chars"),
            alternating([texts(0), texts(1)]),
            || raw_yrs_merge(&body),
        );
    }
}

/// One update per keystroke, `n` of them.
fn keystrokes(n: usize) -> Vec<Vec<u8>> {
    let d = doc(9);
    let text = d.get_or_insert_text("text");
    let mut updates = Vec::with_capacity(n);
    for i in 0..n {
        let before = d.transact().state_vector();
        let mut txn = d.transact_mut();
        let len = text.len(&txn);
        text.insert(&mut txn, (i as u32 * 7) % (len + 1), "x");
        drop(txn);
        updates.push(d.transact().encode_diff_v1(&before));
    }
    updates
}

fn many_updates(c: &mut Criterion) {
    for n in [100, 1000] {
        let updates = keystrokes(n);
        let mut group = c.benchmark_group(format!("merge_{n}_updates"));
        group.bench_function("apply_into_doc", |b| {
            b.iter(|| {
                let d = Doc::new();
                {
                    let mut txn = d.transact_mut();
                    for u in &updates {
                        txn.apply_update(Update::decode_v1(u).unwrap()).unwrap();
                    }
                }
                black_box(d.transact().encode_state_as_update_v1(&StateVector::default()))
            })
        });
        group.bench_function("yrs_merge_updates_v1", |b| {
            b.iter(|| black_box(yrs::merge_updates_v1(updates.iter().map(|u| u.as_slice())).unwrap()))
        });
        let states: Vec<Value> = updates.iter().map(|u| json!(BASE64.encode(u))).collect();
        group.bench_function("service_merge", |b| {
            b.iter_batched(
                || states.clone(),
                |states| black_box(Merger::new(1).merge("TextCRDT", states, None).unwrap()),
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

fn trace(name: &str) -> Value {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/traces")
        .join(name);
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The automerge-paper trace through the service: `/crdt/apply` in batches of
/// 2,000 transactions, each batch as the next of four replicas.
fn replay_service(txns: &[Value]) -> String {
    let merger = Merger::new(4);
    let mut state = Value::Null;
    for (batch, txns) in txns.chunks(2_000).enumerate() {
        let mut ops = Vec::new();
        for txn in txns {
            for p in txn["patches"].as_array().unwrap() {
                if p[1].as_u64().unwrap() > 0 {
                    ops.push(json!({"op": "delete", "index": p[0], "len": p[1]}));
                }
                if !p[2].as_str().unwrap().is_empty() {
                    ops.push(json!({"op": "insert", "index": p[0], "text": p[2]}));
                }
            }
        }
        let answer = merger
            .apply("TextCRDT", Some(state), ops, Some(&(batch % 4 + 1).to_string()), None)
            .unwrap();
        state = serde_json::from_slice::<Value>(&answer).unwrap()["state"].take();
    }
    state.as_str().unwrap().to_string()
}

/// The same transactions in the same batches with yrs alone: each batch, as
/// the next of four replicas, decodes the whole document, applies its edits in
/// one transaction and encodes it (base64, as the service answers).
fn replay_raw_yrs(txns: &[Value]) -> String {
    let mut state = encode(&doc(1));
    for (batch, txns) in txns.chunks(2_000).enumerate() {
        let d = doc(batch as u64 % 4 + 1);
        let text = d.get_or_insert_text("text");
        let mut t = d.transact_mut();
        let update = BASE64.decode(&state).unwrap();
        t.apply_update(Update::decode_v1(&update).unwrap()).unwrap();
        for p in txns.iter().flat_map(|txn| txn["patches"].as_array().unwrap()) {
            let (pos, del, ins) = (
                p[0].as_u64().unwrap() as u32,
                p[1].as_u64().unwrap() as u32,
                p[2].as_str().unwrap(),
            );
            if del > 0 {
                text.remove_range(&mut t, pos, del);
            }
            if !ins.is_empty() {
                text.insert(&mut t, pos, ins);
            }
        }
        drop(t);
        state = encode(&d);
    }
    state
}

fn replay(c: &mut Criterion) {
    let trace = trace("automerge-paper.json.gz");
    let txns = trace["txns"].as_array().unwrap().clone();
    // Both do the same work and end with the trace's content.
    let text_of = |state: &str| {
        let d = doc(99);
        let text = d.get_or_insert_text("text");
        let update = BASE64.decode(state).unwrap();
        d.transact_mut()
            .apply_update(Update::decode_v1(&update).unwrap())
            .unwrap();
        text.get_string(&d.transact())
    };
    let end = trace["endContent"].as_str().unwrap();
    assert_eq!(text_of(&replay_service(&txns)), end);
    assert_eq!(text_of(&replay_raw_yrs(&txns)), end);
    let mut group = c.benchmark_group("replay_automerge_paper");
    group.sample_size(10);
    group.bench_function("ramanujan", |b| b.iter(|| black_box(replay_service(&txns))));
    group.bench_function("raw_yrs", |b| b.iter(|| black_box(replay_raw_yrs(&txns))));
    group.finish();
}

/// Gossip among 9 replicas of a text: each round one replica may type, then a
/// random pair merges through the service and both keep the answer. Prints the
/// memo's counts: this is the workload the cache is for.
fn hit_ratio(_: &mut Criterion) {
    let merger = Merger::new(4096);
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut replicas: Vec<Value> = (0..9).map(|_| json!(encode(&Doc::new()))).collect();
    for round in 0..5_000u64 {
        if next(10) < 2 {
            let r = next(9) as usize;
            let answer = merger
                .apply(
                    "TextCRDT",
                    Some(replicas[r].clone()),
                    vec![json!({"op": "insert", "index": 0, "text": "x"})],
                    Some(&(r + 1).to_string()),
                    None,
                )
                .unwrap();
            replicas[r] = serde_json::from_slice::<Value>(&answer).unwrap()["state"].take();
        }
        // Two different replicas: a replica merged with itself would count as
        // a free "identical" answer no gossip protocol asks for.
        let i = next(9) as usize;
        let j = (i + 1 + next(8) as usize) % 9;
        let (answer, _) = merger
            .merge("TextCRDT", vec![replicas[i].clone(), replicas[j].clone()], None)
            .unwrap();
        let merged = serde_json::from_slice::<Value>(&answer).unwrap()["state"].take();
        replicas[i] = merged.clone();
        replicas[j] = merged;
        let _ = round;
    }
    let s = merger.stats();
    println!(
        "hit_ratio gossip(9 replicas, 5000 merges of two different replicas, 20% of rounds edit): identical={} hits={} contained={} misses={} hit_ratio={:.3} answered_without_merging={:.3}",
        s.identical,
        s.hits,
        s.contained,
        s.misses,
        s.hit_ratio,
        (s.identical + s.hits) as f64 / 5000.0
    );
}

criterion_group! {
    name = crdt;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = hit_ratio, merges, many_updates, replay
}
criterion_main!(crdt);
