//! `/colors/...` through the real router.

use ramanujan_http::testing::{get, post, send_raw};
use serde_json::{Value, json};

fn app() -> axum::Router {
    duck_colors::router()
}

/// The palette for seed 42, n 16, is byte-identical to the one committed in
/// `tests/golden/palette-42-16.json`: every run and every host (the maths is
/// pure Rust, `libm`) gives the same bytes. `UPDATE_GOLDEN=1` rewrites the file
/// (review the diff: a change breaks every deployed palette).
#[test]
fn palette_is_byte_identical_across_runs() {
    let (status, body) = send_raw(&app(), "GET", "/colors/palette?n=16&seed=42", "");
    assert_eq!(status, 200);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/palette-42-16.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, format!("{}\n", String::from_utf8(body.to_vec()).unwrap())).unwrap();
    }
    let golden = std::fs::read_to_string(path).unwrap();
    assert_eq!(String::from_utf8(body.to_vec()).unwrap(), golden.trim_end());
    let (_, hex) = send_raw(&app(), "GET", "/colors/palette?n=16&seed=0x2a", "");
    assert_eq!(hex, golden.trim_end().as_bytes());
}

#[test]
fn palette_answers_hex_and_oklch() {
    let (status, body) = get(&app(), "/colors/palette?n=5&seed=18446744073709551615");
    assert_eq!(status, 200);
    assert_eq!(body["seed"], "18446744073709551615");
    let colors = body["colors"].as_array().unwrap();
    assert_eq!(colors.len(), 5);
    for c in colors {
        let hex = c["hex"].as_str().unwrap();
        assert!(hex.len() == 7 && hex.starts_with('#'), "{hex}");
        assert!(c["css"].as_str().unwrap().starts_with("oklch("));
        let l = c["oklch"]["l"].as_f64().unwrap();
        assert!((0.6..=0.78).contains(&l));
    }
}

#[test]
fn palette_rejects_bad_queries() {
    for q in [
        "n=0",
        "n=5000",
        "n=abc",
        "seed=-1",
        "seed=0xZZ",
        "seed=18446744073709551616",
        "colour=red",
    ] {
        let (status, body) = get(&app(), &format!("/colors/palette?{q}"));
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body["error"].is_string(), "{q}: {body}");
    }
}

#[test]
fn assign_colours_the_sierpinski_triangle_properly() {
    // S(2,3): three triangles joined at their corners, named by strings.
    let edges = json!([
        ["00", "01"],
        ["01", "02"],
        ["02", "00"],
        ["10", "11"],
        ["11", "12"],
        ["12", "10"],
        ["20", "21"],
        ["21", "22"],
        ["22", "20"],
        ["01", "10"],
        ["02", "20"],
        ["12", "21"]
    ]);
    let (status, body) = post(&app(), "/colors/assign", &json!({ "edges": edges }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["method"], "exact");
    assert_eq!(body["three_colorable"], true);
    assert_eq!(body["conflicts"], json!([]));
    let color_of = |v: &str| {
        body["colors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["vertex"] == v)
            .unwrap()["color"]
            .clone()
    };
    for e in edges.as_array().unwrap() {
        assert_ne!(
            color_of(e[0].as_str().unwrap()),
            color_of(e[1].as_str().unwrap()),
            "{e}"
        );
    }
    assert_eq!(body["counts"], json!({"RED": 3, "BLUE": 3, "GREEN": 3}));
    let red = body["colors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["color"] == "RED")
        .unwrap();
    assert_eq!(red["polarity"], "positive");
}

#[test]
fn assign_lists_conflicts_when_four_colours_are_needed() {
    let k4 = json!({"vertices": [1, 2, 3, 4], "edges": [[1,2],[1,3],[1,4],[2,3],[2,4],[3,4]]});
    let (status, body) = post(&app(), "/colors/assign", &k4);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["method"], "dsatur");
    assert_eq!(body["three_colorable"], false);
    assert_eq!(body["conflicts"].as_array().unwrap().len(), 1);
}

#[test]
fn assign_rejects_bad_graphs() {
    let cases: Vec<Value> = vec![
        json!({"edges": []}),
        json!({"edges": [["a", "a"]]}),
        json!({"vertices": ["a"], "edges": [["a", "b"]]}),
        json!({"vertices": ["a", "a"], "edges": []}),
        json!({"edges": [["a"]]}),
        json!({"edges": "a-b"}),
        json!({"edges": [], "extra": 1}),
        json!({"edges": [[1.5, 2]]}),
    ];
    for case in cases {
        let (status, body) = post(&app(), "/colors/assign", &case);
        assert!(status.is_client_error(), "{case}: {status}");
        assert!(body["error"].is_string(), "{case}: {body}");
    }
    let big: Vec<Value> = (0..5000).map(|i| json!([i, i + 1])).collect();
    let (status, body) = post(&app(), "/colors/assign", &json!({ "edges": big }));
    assert_eq!(status, 400, "{body}");
}

#[test]
fn polarity_is_inferred_from_colour() {
    let (status, body) = get(&app(), "/colors/polarity");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!([
            {"color": "RED", "polarity": "positive"},
            {"color": "BLUE", "polarity": "negative"},
            {"color": "GREEN", "polarity": "neutral"}
        ])
    );
    assert_eq!(get(&app(), "/colors/polarity/blue").1["polarity"], "negative");
    let (status, body) = get(&app(), "/colors/polarity/purple");
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("purple"));
}
