//! `/crdt` over its router: answers, headers, and bad input.

use crdt_service::router;
use ramanujan_http::testing::{get, post, send};
use serde_json::{Value, json};

fn counter(dots: Value) -> Value {
    json!({"inner": {"dots": dots}})
}

#[test]
fn merges_and_reports_how() {
    let app = router(64, None);
    let body = json!({"crdt_type": "GCounter", "states": [counter(json!({"a": 2})), counter(json!({"b": 3}))]});
    let (status, merged) = post(&app, "/crdt/merge", &body);
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["value"], "5");
    assert_eq!(merged["state"], counter(json!({"a": 2, "b": 3})));
    let reg = json!({"crdt_type": "LWWRegister", "states": [{"val": "old", "marker": 1}, {"val": {"new": true}, "marker": 2}]});
    let (status, merged) = post(&app, "/crdt/merge", &reg);
    assert_eq!((status.as_u16(), merged["value"].clone()), (200, json!({"new": true})));
    let (_, stats) = get(&app, "/crdt/stats");
    assert_eq!(
        stats["misses"].as_u64().unwrap() + stats["contained"].as_u64().unwrap(),
        2
    );
    let (status, types) = get(&app, "/crdt/types");
    assert_eq!(status, 200);
    // Every listed example merges with itself, and the answer (written by
    // hand for speed) has exactly the fields the API's description says;
    // a diff's answer likewise.
    for t in types["types"].as_array().unwrap() {
        let body = json!({"crdt_type": t["crdt_type"], "states": [t["example"], t["example"]]});
        let (status, answer) = post(&app, "/crdt/merge", &body);
        assert_eq!(status, 200, "{t}: {answer}");
        let read: crdt_service::merge::CrdtAnswer = serde_json::from_value(answer.clone()).expect("as described");
        assert_eq!(read.crdt_type, t["crdt_type"].as_str().unwrap());
        assert_eq!(
            read.state_vector.is_some(),
            ["TextCRDT", "Map", "Array"].contains(&read.crdt_type.as_str()),
            "{answer}"
        );
        let (status, delta) = post(
            &app,
            "/crdt/diff",
            &json!({"crdt_type": t["crdt_type"], "state": t["example"]}),
        );
        assert_eq!(status, 200, "{t}: {delta}");
        serde_json::from_value::<crdt_service::merge::CrdtDelta>(delta).expect("as described");
    }
}

#[test]
fn bad_input_gets_a_400_that_says_why() {
    let app = router(64, None);
    let cases = [
        (json!({"crdt_type": "Nope", "states": [{}, {}]}), "unknown crdt_type"),
        (
            json!({"crdt_type": "GCounter", "states": [counter(json!({"a": 1}))]}),
            "two or more",
        ),
        (
            json!({"crdt_type": "GCounter", "states": [counter(json!({"a": 1})), {"inner": {"dots": {"a": -1}}}]}),
            "state 1 is not a valid GCounter",
        ),
        (
            json!({"crdt_type": "ORSet", "states": [
                {"clock": {"dots": {}}, "entries": {}, "deferred": {}},
                {"clock": {"dots": {}}, "entries": {}, "deferred": {"x": ["m"]}},
            ]}),
            "state 1 is not a valid ORSet",
        ),
        (
            json!({"crdt_type": "LWWRegister", "states": [{"val": 1, "marker": 3}, {"val": 2, "marker": 3}]}),
            "same marker",
        ),
        (
            json!({"crdt_type": "CausalContext", "states": (0..10_000).map(|_| json!({"dots": {}})).collect::<Vec<_>>()}),
            "at most",
        ),
    ];
    for (body, says) in cases {
        let (status, answer) = post(&app, "/crdt/merge", &body);
        assert_eq!(status, 400, "{answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(says), "`{error}` should say `{says}`");
    }
    // Malformed JSON and unknown fields: the shared JSON extractor's 400 and 422.
    let (status, _) = send(&app, "POST", "/crdt/merge", "{not json");
    assert!(status.is_client_error());
    let (status, answer) = post(
        &app,
        "/crdt/merge",
        &json!({"crdt_type": "GCounter", "states": [], "extra": 1}),
    );
    assert_eq!(status, 422);
    assert!(answer["error"].as_str().unwrap().contains("unknown field"));
}
