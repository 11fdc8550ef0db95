//! The Yjs types over `/crdt`: merges of concurrent edits made with yrs,
//! UTF-16 offsets, diffs from a state vector, operations, and bad input.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use crdt_service::router;
use ramanujan_http::testing::post;
use serde_json::{Value, json};
use yrs::updates::decoder::Decode;
use yrs::{ClientID, Doc, GetString, Map, OffsetKind, Options, ReadTxn, StateVector, Text, Transact, Update};

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

fn load(doc: &Doc, state: &str) {
    let update = Update::decode_v1(&BASE64.decode(state).unwrap()).unwrap();
    doc.transact_mut().apply_update(update).unwrap();
}

fn ok(app: &axum::Router, path: &str, body: Value) -> Value {
    let (status, answer) = post(app, path, &body);
    assert_eq!(status, 200, "{path} {body}: {answer}");
    answer
}

fn refused(app: &axum::Router, path: &str, body: Value, says: &str) {
    let (status, answer) = post(app, path, &body);
    assert_eq!(status, 400, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains(says), "`{error}` should say `{says}`");
}

#[test]
fn concurrent_text_edits_merge_as_yrs_merges_them() {
    let app = router(64, None);
    let (a, b) = (doc(1), doc(2));
    a.get_or_insert_text("text")
        .insert(&mut a.transact_mut(), 0, "héllo wörld");
    load(&b, &encode(&a));
    // Concurrent edits on both sides, around characters outside ASCII and the BMP.
    a.get_or_insert_text("text")
        .insert(&mut a.transact_mut(), 5, ", 😀 dear");
    b.get_or_insert_text("text").remove_range(&mut b.transact_mut(), 0, 1);
    b.get_or_insert_text("text").insert(&mut b.transact_mut(), 0, "Ĥ");
    let merged = ok(
        &app,
        "/crdt/merge",
        json!({"crdt_type": "TextCRDT", "states": [encode(&a), encode(&b)]}),
    );
    load(&a, &encode(&b));
    let expected = a.get_or_insert_text("text").get_string(&a.transact());
    assert_eq!(expected, "Ĥéllo, 😀 dear wörld");
    assert_eq!(merged["value"], expected);
    // The merged state loads in yrs to the same text.
    let c = doc(3);
    load(&c, merged["state"].as_str().unwrap());
    assert_eq!(c.get_or_insert_text("text").get_string(&c.transact()), expected);
    // Reversed inputs: same bytes, from the cache.
    let (_, again) = post(
        &app,
        "/crdt/merge",
        &json!({"crdt_type": "TextCRDT", "states": [encode(&b), encode(&a)]}),
    );
    assert_eq!(again["value"], expected);
}

#[test]
fn operations_count_utf16_units_as_yjs_does() {
    let app = router(64, None);
    let ops = json!([
        {"op": "insert", "index": 0, "text": "😀é"},
        {"op": "insert", "index": 2, "text": "x"},
        {"op": "delete", "index": 0, "len": 2},
    ]);
    let answer = ok(
        &app,
        "/crdt/apply",
        json!({"crdt_type": "TextCRDT", "ops": ops, "actor": "7"}),
    );
    assert_eq!(answer["value"], "xé");
    // Read back by yrs, the edits are client 7's.
    let d = doc(1);
    load(&d, answer["state"].as_str().unwrap());
    assert_eq!(d.get_or_insert_text("text").get_string(&d.transact()), "xé");
    assert!(d.transact().state_vector().contains_client(&ClientID::new(7)));
    // A bad op anywhere refuses them all, naming it.
    refused(
        &app,
        "/crdt/apply",
        json!({"crdt_type": "TextCRDT", "state": answer["state"], "ops": [
            {"op": "insert", "index": 0, "text": "ok"},
            {"op": "delete", "index": 1, "len": 9},
        ]}),
        "op 1: range 1..1+9 is outside 0..4",
    );
    refused(
        &app,
        "/crdt/apply",
        json!({"crdt_type": "TextCRDT", "ops": [{"op": "splice", "index": 0}]}),
        "op 0: unknown variant `splice`",
    );
    refused(
        &app,
        "/crdt/apply",
        json!({"crdt_type": "TextCRDT", "ops": [], "actor": "9007199254740992"}),
        "client id",
    );
}

#[test]
fn maps_and_arrays_read_as_json() {
    let app = router(64, None);
    let map = ok(
        &app,
        "/crdt/apply",
        json!({"crdt_type": "Map", "root": "doc", "actor": "3", "ops": [
            {"op": "set", "key": "title", "value": "Ramanujan"},
            {"op": "set", "key": "meta", "value": {"tags": ["crdt", 1729], "draft": false}},
            {"op": "set", "key": "gone", "value": null},
            {"op": "remove", "key": "gone"},
        ]}),
    );
    assert_eq!(
        map["value"],
        json!({"title": "Ramanujan", "meta": {"tags": ["crdt", 1729], "draft": false}})
    );
    let other = doc(4);
    other
        .get_or_insert_map("doc")
        .insert(&mut other.transact_mut(), "year", 1887);
    let merged = ok(
        &app,
        "/crdt/merge",
        json!({"crdt_type": "Map", "states": [map["state"], encode(&other)]}),
    );
    assert_eq!(merged["value"]["year"], 1887);
    assert_eq!(merged["value"]["title"], "Ramanujan");
    let array = ok(
        &app,
        "/crdt/apply",
        json!({"crdt_type": "Array", "actor": "5", "ops": [
            {"op": "push", "values": [1, "two", {"three": 3}]},
            {"op": "insert", "index": 1, "values": [1.5]},
            {"op": "delete", "index": 0, "len": 1},
        ]}),
    );
    assert_eq!(array["value"], json!([1.5, "two", {"three": 3}]));
}

#[test]
fn a_diff_from_a_state_vector_brings_a_replica_up_to_date() {
    let app = router(64, None);
    let (a, b) = (doc(1), doc(2));
    a.get_or_insert_text("text").insert(&mut a.transact_mut(), 0, "shared ");
    load(&b, &encode(&a));
    b.get_or_insert_text("text").insert(&mut b.transact_mut(), 7, "news ✓");
    let a_now = ok(
        &app,
        "/crdt/merge",
        json!({"crdt_type": "TextCRDT", "states": [encode(&a), encode(&a)]}),
    );
    let diff = ok(
        &app,
        "/crdt/diff",
        json!({"crdt_type": "TextCRDT", "state": encode(&b), "since": a_now["state_vector"]}),
    );
    let update = diff["update"].as_str().unwrap();
    assert!(
        BASE64.decode(update).unwrap().len() < BASE64.decode(encode(&b)).unwrap().len(),
        "the diff is smaller than the state"
    );
    load(&a, update);
    assert_eq!(a.get_or_insert_text("text").get_string(&a.transact()), "shared news ✓");
    refused(
        &app,
        "/crdt/diff",
        json!({"crdt_type": "TextCRDT", "state": encode(&b), "since": "%%%"}),
        "`since` is not valid base64",
    );
}

#[test]
fn bad_states_are_refused_by_index_and_why() {
    let app = router(64, None);
    let text = doc(1);
    text.get_or_insert_text("text")
        .insert(&mut text.transact_mut(), 0, "abc");
    let good = encode(&text);
    let bytes = BASE64.decode(&good).unwrap();
    let truncated = BASE64.encode(&bytes[..bytes.len() / 2]);
    let map = doc(2);
    map.get_or_insert_map("text").insert(&mut map.transact_mut(), "k", 1);
    let array = ok(
        &app,
        "/crdt/apply",
        json!({"crdt_type": "Array", "root": "text", "actor": "3", "ops": [{"op": "push", "values": [1, 2]}]}),
    );
    let cases = [
        (
            json!([good, "not base64!"]),
            "state 1 is not a valid TextCRDT: the state is not valid base64",
        ),
        (
            json!([good, truncated]),
            "state 1 is not a valid TextCRDT: not a Yjs v1 update",
        ),
        (
            json!([good, 42]),
            "state 1 is not a valid TextCRDT: a Yjs state is a base64 string",
        ),
        (
            json!([good, BASE64.encode([255u8; 40])]),
            "state 1 is not a valid TextCRDT",
        ),
        (
            json!([good, encode(&map)]),
            "state 1: root `text` holds a map, not a text",
        ),
        (
            json!([encode(&map), encode(&map)]),
            "state 0: root `text` holds a map, not a text",
        ),
        (
            json!([good, array["state"]]),
            "state 1: root `text` holds an array, not a text",
        ),
        (
            json!([array["state"], good]),
            "state 0: root `text` holds an array, not a text",
        ),
    ];
    for (states, says) in cases {
        refused(
            &app,
            "/crdt/merge",
            json!({"crdt_type": "TextCRDT", "states": states}),
            says,
        );
    }
    // The map read as a Map is fine, and a root is only for Yjs types.
    ok(
        &app,
        "/crdt/merge",
        json!({"crdt_type": "Map", "states": [encode(&map), encode(&map)]}),
    );
    refused(
        &app,
        "/crdt/merge",
        json!({"crdt_type": "GCounter", "root": "x", "states": [{"inner": {"dots": {}}}, {"inner": {"dots": {}}}]}),
        "a GCounter has none",
    );
    // Two roots and no `root`: say which.
    let two = doc(5);
    two.get_or_insert_text("a").insert(&mut two.transact_mut(), 0, "1");
    two.get_or_insert_text("b").insert(&mut two.transact_mut(), 0, "2");
    refused(
        &app,
        "/crdt/merge",
        json!({"crdt_type": "TextCRDT", "states": [encode(&two), good]}),
        "name one with `root`",
    );
    let b = ok(
        &app,
        "/crdt/merge",
        json!({"crdt_type": "TextCRDT", "root": "b", "states": [encode(&two), encode(&two)]}),
    );
    assert_eq!(b["value"], "2");
}

#[test]
fn crdts_types_apply_and_diff() {
    let app = router(64, None);
    let a = ok(
        &app,
        "/crdt/apply",
        json!({"crdt_type": "PNCounter", "actor": "a", "ops": [{"op": "increment", "by": 5}, {"op": "decrement"}]}),
    );
    assert_eq!(a["value"], "4");
    let b = ok(
        &app,
        "/crdt/apply",
        json!({"crdt_type": "PNCounter", "actor": "b", "state": a["state"], "ops": [{"op": "increment", "by": 10}]}),
    );
    let diff = ok(
        &app,
        "/crdt/diff",
        json!({"crdt_type": "PNCounter", "state": b["state"], "since": a["state"]}),
    );
    assert_eq!(
        diff["update"],
        json!({"p": {"inner": {"dots": {"b": 10}}}, "n": {"inner": {"dots": {}}}})
    );
    let caught_up = ok(
        &app,
        "/crdt/merge",
        json!({"crdt_type": "PNCounter", "states": [a["state"], diff["update"]]}),
    );
    assert_eq!(caught_up["value"], "14");
    let set = ok(
        &app,
        "/crdt/apply",
        json!({"crdt_type": "ORSet", "actor": "a", "ops": [
            {"op": "add", "member": "x"}, {"op": "add", "member": "y"}, {"op": "remove", "member": "x"},
        ]}),
    );
    assert_eq!(set["value"], json!(["y"]));
    let unchanged = ok(
        &app,
        "/crdt/diff",
        json!({"crdt_type": "ORSet", "state": set["state"], "since": set["state"]}),
    );
    assert_eq!(unchanged["update"]["entries"], json!({}));
    let graph = ok(
        &app,
        "/crdt/apply",
        json!({"crdt_type": "EGraph", "actor": "red-1", "ops": [{"op": "add", "expr": "(* a (+ b c))"}]}),
    );
    assert_eq!(graph["value"]["terms"], 5);
    refused(
        &app,
        "/crdt/apply",
        json!({"crdt_type": "GCounter", "ops": [{"op": "increment"}]}),
        "need an `actor`",
    );
    refused(
        &app,
        "/crdt/apply",
        json!({"crdt_type": "LWWRegister", "state": {"val": 1, "marker": 3}, "ops": [{"op": "set", "value": 2, "marker": 3}]}),
        "op 0: marker 3 already carries another value",
    );
}

#[test]
fn the_yjs_examples_read_as_described() {
    let app = router(64, None);
    let (_, types) = ramanujan_http::testing::get(&app, "/crdt/types");
    let values: Vec<(String, Value)> = types["types"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| ["TextCRDT", "Map", "Array"].contains(&t["crdt_type"].as_str().unwrap()))
        .map(|t| {
            let body = json!({"crdt_type": t["crdt_type"], "states": [t["example"], t["example"]]});
            (
                t["crdt_type"].as_str().unwrap().to_string(),
                ok(&app, "/crdt/merge", body)["value"].clone(),
            )
        })
        .collect();
    assert_eq!(
        values,
        vec![
            ("TextCRDT".to_string(), json!("héllo 😀")),
            ("Map".to_string(), json!({"k": 1})),
            ("Array".to_string(), json!([1, "two"])),
        ]
    );
}

#[test]
fn a_few_bytes_cannot_declare_a_huge_table() {
    // Found by the fuzz target: a count of ~2^31 clients in 7 bytes made yrs
    // reserve and clear a hash table of that size.
    let app = router(4, None);
    let bomb = BASE64.encode([0xf9, 0xff, 0xff, 0xff, 0x61, 0x61, 0x61]);
    let text = "AQEBAAQBBHRleHQLaMOpbGxvIPCfmIAA";
    refused(
        &app,
        "/crdt/merge",
        json!({"crdt_type": "TextCRDT", "states": [text, bomb]}),
        "state 1 is not a valid TextCRDT: declares",
    );
    refused(
        &app,
        "/crdt/diff",
        json!({"crdt_type": "TextCRDT", "state": text, "since": bomb}),
        "`since`: declares",
    );
}

#[test]
fn a_client_id_over_53_bits_is_refused_not_a_crash() {
    // Found by the fuzz target: yrs asserts on it (debug builds) instead of erring.
    let app = router(4, None);
    let text = "AQEBAAQBBHRleHQLaMOpbGxvIPCfmIAA";
    let (status, answer) = post(
        &app,
        "/crdt/merge",
        &json!({"crdt_type": "TextCRDT", "states": [text, "AQH//////////wQ="]}),
    );
    if cfg!(debug_assertions) {
        // yrs's assertion fires; the service answers it as this state's error.
        assert_eq!(status, 400, "{answer}");
        assert!(answer["error"].as_str().unwrap().starts_with("state 1"), "{answer}");
    } else {
        // No assertion: yrs reads the id with its top bits dropped; any answer but a crash.
        assert!(status == 400 || status == 200, "{status} {answer}");
    }
}

#[test]
fn an_update_yrs_cannot_re_encode_is_refused_not_a_crash() {
    // Found by the fuzz target: it decodes and applies, is left pending, and
    // yrs then fails (panics) re-reading it while encoding the merged document.
    let app = router(4, None);
    let text = "AQEBAAQBBHRleHQLaMOpbGxvIPCfmIAA";
    refused(
        &app,
        "/crdt/merge",
        json!({"crdt_type": "TextCRDT", "states": [text, "AQEAARIIDggAAAAAgD8="]}),
        "state 1 cannot be merged: yrs cannot read it",
    );
}

#[test]
fn a_yjs_state_holding_the_other_is_counted_as_contained() {
    use crdt_service::merge::{Merger, Outcome};
    let (a, b) = (doc(1), doc(2));
    a.get_or_insert_text("text").insert(&mut a.transact_mut(), 0, "héllo");
    load(&b, &encode(&a));
    b.get_or_insert_text("text").remove_range(&mut b.transact_mut(), 0, 2);
    b.get_or_insert_text("text").insert(&mut b.transact_mut(), 0, "😀");
    let merger = Merger::new(8);
    let merge = |states: Vec<String>| merger.merge("TextCRDT", states.into_iter().map(Value::from).collect(), None);
    assert_eq!(merge(vec![encode(&a), encode(&b)]).unwrap().1, Outcome::Contained);
    // Two histories that each hold something the other lacks: a plain miss.
    let before = a.transact().state_vector();
    a.get_or_insert_text("text").insert(&mut a.transact_mut(), 0, ">");
    let tail = BASE64.encode(a.transact().encode_diff_v1(&before));
    let head = encode(&b);
    let (_, outcome) = merge(vec![head, tail]).unwrap();
    assert_eq!(outcome, Outcome::Miss);
}

#[test]
fn overlapping_blocks_are_refused_before_yrs_reads_freed_memory() {
    // Found by the fuzz target: yrs 0.28.1 integrates this update (two
    // sections for client 0 whose blocks overlap) into a corrupt document and
    // then segfaults reading it as an array.
    let app = router(4, None);
    let bad = "AwEAAAIBAQEBAQMJAQMBAQEBAQEBAQABAf8DAQEBAQEBAQEBAQEBAAEB/wMBAQEBAQHpqqqqqqqqqgoB6f4AAADpqqqqqqqqqgoB6f4AAAABAen+ZQABnwEBKAHp/gBeAA==";
    for crdt_type in ["Array", "Map", "TextCRDT"] {
        refused(
            &app,
            "/crdt/merge",
            json!({"crdt_type": crdt_type, "states": [bad, bad]}),
            "state 0 is not a valid",
        );
    }
}

#[test]
fn states_that_disagree_about_a_client_across_a_gap_are_refused_in_either_order() {
    // yrs 0.28.1 reads freed memory when a range the document holds resumes
    // after a gap strictly inside a block of the next update (found by the
    // fuzz target; valgrind shows the read). Here two documents both claim
    // client 1: in one its clock 5 is a map entry, in the other it is inside
    // the text "abcdefgh".
    let app = router(4, None);
    let first = doc(1);
    first
        .get_or_insert_text("t")
        .insert(&mut first.transact_mut(), 0, "hello");
    first.get_or_insert_map("m").insert(&mut first.transact_mut(), "a", 1);
    let mut since = StateVector::default();
    since.set_max(ClientID::new(1), 5);
    let map_entry_only = BASE64.encode(first.transact().encode_diff_v1(&since));

    let other_client = doc(3);
    other_client
        .get_or_insert_text("u")
        .insert(&mut other_client.transact_mut(), 0, "xy");
    let second = doc(1);
    load(&second, &encode(&other_client));
    second
        .get_or_insert_text("t")
        .insert(&mut second.transact_mut(), 0, "abcdefgh");
    let mut since = StateVector::default();
    since.set_max(ClientID::new(3), 1);
    let text_and_a_diff = BASE64.encode(second.transact().encode_diff_v1(&since));

    for (states, blamed) in [
        ([&map_entry_only, &text_and_a_diff], 1),
        ([&text_and_a_diff, &map_entry_only], 0),
    ] {
        for crdt_type in ["Map", "TextCRDT"] {
            refused(
                &app,
                "/crdt/merge",
                json!({"crdt_type": crdt_type, "states": states}),
                &format!("state {blamed} "),
            );
        }
    }
    // Each alone, and each with a state of one history, still merges.
    ok(
        &app,
        "/crdt/merge",
        json!({"crdt_type": "Map", "states": [map_entry_only, encode(&first)], "root": "m"}),
    );
    ok(
        &app,
        "/crdt/merge",
        json!({"crdt_type": "TextCRDT", "states": [text_and_a_diff, encode(&second)], "root": "t"}),
    );
}
