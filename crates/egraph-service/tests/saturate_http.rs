//! `/egraph/saturate` through the real router (tower `oneshot`, no mocks).

use axum::body::Body;
use http::StatusCode;
use ramanujan_http::Runtime;
use ramanujan_http::testing::send;
use serde_json::{Value, json};

fn saturate(app: &axum::Router, body: Value) -> (StatusCode, Value) {
    send(app, "POST", "/egraph/saturate", Body::from(body.to_string()))
}

fn app() -> axum::Router {
    egraph_service::router(Runtime::default(), 64)
}

const ASSOCIATE_ADDS: &str = "(+ 1 (+ 2 (+ 3 (+ 4 (+ 5 (+ 6 7))))))";

/// egg's own `math_associate_adds` test, run on raw egg.
fn raw_egg_classes() -> usize {
    use egg::{Rewrite, Runner, SimpleScheduler, SymbolLang, rewrite as rw};
    let rules: Vec<Rewrite<SymbolLang, ()>> = vec![
        rw!("comm-add"; "(+ ?a ?b)" => "(+ ?b ?a)"),
        rw!("assoc-add"; "(+ ?a (+ ?b ?c))" => "(+ (+ ?a ?b) ?c)"),
    ];
    let runner = Runner::default()
        .with_iter_limit(7)
        .with_scheduler(SimpleScheduler)
        .with_expr(&ASSOCIATE_ADDS.parse().unwrap())
        .run(&rules);
    runner.egraph.number_of_classes()
}

#[test]
fn math_associate_adds_reaches_the_same_127_classes_as_raw_egg() {
    let raw = raw_egg_classes();
    assert_eq!(raw, 127);
    let (status, body) = saturate(
        &app(),
        json!({
            "expression": ASSOCIATE_ADDS,
            "default_rules": false,
            "fold_constants": false,
            "scheduler": "simple",
            "rules": [
                {"name": "comm-add", "lhs": "(+ ?a ?b)", "rhs": "(+ ?b ?a)", "color": "RED"},
                {"name": "assoc-add", "lhs": "(+ ?a (+ ?b ?c))", "rhs": "(+ (+ ?a ?b) ?c)", "color": "RED"},
            ],
            "limits": {"iterations": 7},
        }),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["classes"], raw, "{body}");
    assert_eq!(body["phases"][0]["stop_reason"], "iteration_limit");
    assert_eq!(body["verification"]["input_equals_canonical"]["status"], "verified");
}

#[test]
fn saturation_reports_every_phase_and_a_verified_canonical_form() {
    let (status, body) = saturate(&app(), json!({"expression": "(+ (* x 1) (- y y))"}));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["canonical"], "x");
    assert_eq!(body["cost"], 1);
    // Rounds of RED, BLUE, GREEN until a whole round changes nothing, then extraction.
    let phases: Vec<(&str, u64)> = body["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["phase"].as_str().unwrap(), p["round"].as_u64().unwrap()))
        .collect();
    let rounds = body["rounds"].as_u64().unwrap();
    assert!(rounds >= 2, "{body}");
    assert_eq!(body["stop_reason"], "saturated", "{body}");
    let (extract, colors) = phases.split_last().unwrap();
    assert_eq!(*extract, ("extract", rounds));
    for (i, phase) in colors.iter().enumerate() {
        let expected = (["red", "blue", "green"][i % 3], i as u64 / 3 + 1);
        assert_eq!(*phase, expected, "{body}");
    }
    let last_round = &body["phases"].as_array().unwrap()[colors.len() - 3..colors.len()];
    assert!(last_round.iter().all(|p| p["stop_reason"] == "saturated"), "{body}");
    assert_eq!(body["verification"]["passed"], true);
    assert!(body["classes"].as_u64().unwrap() > 0 && body["nodes"].as_u64().unwrap() > 0);
}

/// An exponent of i64::MIN (whose `abs` overflows) is past the exponent
/// bound, not a power that folds to 1 (a release build said `1` for
/// `(pow 2 -9223372036854775808)`; a debug build panicked).
#[test]
fn an_exponent_at_the_edge_of_i64_stays_unevaluated() {
    for expr in ["(pow 2 -9223372036854775808)", "(pow x -9223372036854775808)"] {
        let (status, body) = saturate(&app(), json!({"expression": expr}));
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["canonical"], expr, "{body}");
    }
}

#[test]
fn an_unsound_rule_is_refused_with_its_counterexample_before_it_derives_anything() {
    for (lhs, rhs) in [("(+ ?a ?b)", "?a"), ("(* ?a ?b)", "(+ ?a ?b)")] {
        let (status, body) = saturate(
            &app(),
            json!({
                "expression": "(+ a b)",
                "rules": [{"name": "unsound", "lhs": lhs, "rhs": rhs, "color": "BLUE"}],
            }),
        );
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("rule `unsound`: unsound: at ?a = "), "{error}");
        assert!(error.contains("the left side is"), "{error}");
    }
    // A sound custom rule is accepted, and the answer is verified.
    let (status, body) = saturate(
        &app(),
        json!({
            "expression": "(* (/ a b) b)",
            "rules": [{"name": "cancel", "lhs": "(* (/ ?a ?b) ?b)", "rhs": "?a", "color": "BLUE", "nonzero": ["?b"]}],
        }),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["verification"]["input_equals_canonical"]["status"], "verified",
        "{body}"
    );
}

#[test]
fn a_cache_hit_answers_exactly_what_a_fresh_saturation_answers() {
    let app = app();
    let request = json!({"expression": "(* (+ a b) (+ a b))", "limits": {"nodes": 2000}});
    let (_, fresh) = saturate(&app, request.clone());
    // Same request with different whitespace: same content hash.
    let spaced = json!({"expression": "(*  (+ a b)\n(+ a b) )", "limits": {"nodes": 2000}});
    let (_, hit) = saturate(&app, spaced);
    assert_eq!(fresh["cached"], false);
    assert_eq!(hit["cached"], true);
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("cached");
        v
    };
    assert_eq!(strip(fresh), strip(hit));
    let (_, stats) = send(&app, "GET", "/egraph/stats", Body::empty());
    assert_eq!(stats["cache"]["hits"], 1);
    assert_eq!(stats["cache"]["misses"], 1);
    assert_eq!(stats["cache"]["hit_ratio"], 0.5);
    assert_eq!(stats["saturations"], 1);
}

#[test]
fn the_cache_is_bounded() {
    let app = egraph_service::router(Runtime::default(), 2);
    for i in 0..5 {
        saturate(&app, json!({"expression": format!("(+ x {i})")}));
    }
    let (_, stats) = send(&app, "GET", "/egraph/stats", Body::empty());
    assert_eq!(stats["cache"]["entries"], 2);
}

#[test]
fn bad_input_gets_a_json_4xx() {
    let app = app();
    let cases: Vec<(Body, StatusCode, &str)> = vec![
        (
            Body::from(r#"{"expression": "(+ 1"}"#),
            StatusCode::BAD_REQUEST,
            "unclosed",
        ),
        (
            Body::from(r#"{"expression": "(sin x)"}"#),
            StatusCode::BAD_REQUEST,
            "unknown operator `sin`",
        ),
        (
            Body::from(vec![0xff, 0xfe, 0x00]),
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        (
            Body::from(r#"{"expression": 42}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "expected a string",
        ),
        (
            Body::from(r#"{"expression": "x", "limits": {"nodes": "many"}}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limits",
        ),
        (
            Body::from(r#"{"expression": "x", "colour": "RED"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field",
        ),
        (
            Body::from(r#"{"expression": "x", "limits": {"time_ms": 0}}"#),
            StatusCode::BAD_REQUEST,
            "time_ms",
        ),
        (
            Body::from(r#"{"expression": "x", "limits": {"nodes": 100000000}}"#),
            StatusCode::BAD_REQUEST,
            "nodes",
        ),
        (
            Body::from(
                r#"{"expression": "x", "rules": [{"name": "r", "lhs": "(f ?a)", "rhs": "?a", "color": "RED"}]}"#,
            ),
            StatusCode::BAD_REQUEST,
            "rule `r`",
        ),
        (
            Body::from(vec![b'['; 3 * 1024 * 1024]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "length limit",
        ),
    ];
    for (body, expected, needle) in cases {
        let (status, answer) = send(&app, "POST", "/egraph/saturate", body);
        assert_eq!(status, expected, "{answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "expected `{needle}` in {answer}");
    }
}

#[test]
fn a_blow_up_is_bounded_and_says_why_it_stopped() {
    let sum = (1..=30).fold("x0".to_string(), |acc, i| format!("(+ x{i} {acc})"));
    let started = std::time::Instant::now();
    let (status, body) = saturate(
        &app(),
        json!({"expression": sum, "scheduler": "simple", "limits": {"nodes": 20000, "time_ms": 3000}}),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let reason = body["stop_reason"].as_str().unwrap();
    assert!(["node_limit", "time_limit"].contains(&reason), "{body}");
    let last = &body["phases"].as_array().unwrap().iter().rev().nth(1).unwrap();
    assert_eq!(
        last["stop_reason"], reason,
        "the phase that hit the limit is the last one"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}
