//! The `/skills` and `/verify` routes: two hosts exchange their reference
//! states over HTTP and converge; the same request gets the same bytes from
//! both; bad input gets a 4xx naming the problem, and nothing is half-stored.

use ramanujan_http::Inline;
use ramanujan_http::testing::{get, post, send, send_raw};
use serde_json::{Value, json};
use skill_verification::{PanelConfig, SkillConfig, SkillService};
use std::sync::Arc;

fn host(name: &str) -> axum::Router {
    let config = SkillConfig {
        panel: PanelConfig {
            dim: 8,
            projected_dim: 4,
            ..PanelConfig::default()
        },
        host: name.into(),
        ..SkillConfig::default()
    };
    skill_verification::router(Arc::new(SkillService::new(config, Arc::new(Inline), None, None)))
}

fn example(label: &str, axis: usize, wobble: f32) -> Value {
    let mut v = vec![0.05f32; 8];
    v[axis] = 1.0;
    v[(axis + 1) % 8] += wobble;
    json!({"label": label, "embedding": v, "source": format!("{label}-{wobble}")})
}

#[test]
fn two_hosts_exchange_states_converge_and_answer_alike() {
    let (a, b) = (host("a"), host("b"));
    let cats: Vec<Value> = (0..6).map(|i| example("cat", 0, i as f32 * 0.05)).collect();
    let dogs: Vec<Value> = (0..6).map(|i| example("dog", 4, i as f32 * 0.05)).collect();
    assert_eq!(post(&a, "/skills/examples", &json!({"examples": cats})).0, 201);
    assert_eq!(post(&b, "/skills/examples", &json!({"examples": dogs})).0, 201);
    let (_, state_a) = get(&a, "/skills/state");
    let (_, state_b) = get(&b, "/skills/state");
    assert_eq!(post(&a, "/skills/merge", &state_b).0, 200);
    assert_eq!(post(&b, "/skills/merge", &state_a).0, 200);
    assert_eq!(get(&a, "/skills").1, get(&b, "/skills").1);
    assert_eq!(get(&a, "/skills/dog").1["examples"].as_array().unwrap().len(), 6);
    let mut q = vec![0.05f32; 8];
    q[4] = 1.0;
    let body = json!({"image_id": "img", "embedding": q, "claimed_skill": "dog"}).to_string();
    let (sa, ba) = send_raw(&a, "POST", "/skills/analyze", body.clone());
    let (sb, bb) = send_raw(&b, "POST", "/skills/analyze", body.clone());
    assert_eq!((sa.as_u16(), sb.as_u16()), (200, 200));
    assert_eq!(ba, bb, "byte-identical answers");
    let answer: Value = serde_json::from_slice(&ba).unwrap();
    assert_eq!(answer["verified"], true, "{answer}");
    assert_eq!(answer["label"], "dog");
    assert_eq!(send_raw(&a, "POST", "/verify", body).0, 200);
    // Removing a skill on one host reaches the other.
    assert_eq!(send(&a, "DELETE", "/skills/cat", "").0, 200);
    let (_, state_a) = get(&a, "/skills/state");
    post(&b, "/skills/merge", &state_a);
    assert_eq!(get(&b, "/skills/cat").0, 404);
    assert_eq!(get(&b, "/skills/stats").1["analyses"], 1);
}

#[test]
fn bad_input_gets_a_4xx_that_names_it() {
    let a = host("a");
    let q = json!({"image_id": "img", "embedding": vec![1.0; 8]});
    let (status, body) = post(&a, "/skills/analyze", &q);
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no references"));
    let good = example("cat", 0, 0.0);
    let cases = [
        (json!({"examples": [good, example("analyze", 1, 0.0)]}), "reserved"),
        (
            json!({"examples": [good, {"label": "x", "embedding": [1.0, 2.0]}]}),
            "dimension 8",
        ),
        (
            json!({"examples": [good, {"label": "x", "embedding": vec![0.0; 8]}]}),
            "all zeros",
        ),
        (
            json!({"examples": [good, {"label": "x", "embedding": [1e39, 0, 0, 0, 0, 0, 0, 0]}]}),
            "not a finite",
        ),
        (json!({"examples": [good, example("", 1, 0.0)]}), "not a skill name"),
        (json!({"examples": []}), "empty"),
    ];
    for (body, names) in cases {
        let (status, answer) = post(&a, "/skills/examples", &body);
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(names),
            "{answer} should name {names}"
        );
    }
    assert_eq!(get(&a, "/skills").1["examples"], 0, "nothing half-stored");
    post(&a, "/skills/examples", &json!({"examples": [example("cat", 0, 0.0)]}));
    for (body, status, names) in [
        (json!({"image_id": "i", "embedding": [1.0]}), 400, "dimension"),
        (
            json!({"image_id": "i", "embedding": [0, 0, 0, -1e39, 0, 0, 0, 0]}),
            400,
            "not a finite",
        ),
        (
            json!({"image_id": "i", "embedding": vec![1.0; 8], "claimed_skill": "dog"}),
            404,
            "dog",
        ),
        (json!({"image_id": "i", "image": "aGVsbG8="}), 400, "MODEL_PATH"),
        (json!({"image_id": "i", "embedding": vec![1.0; 8], "k": 65}), 400, "`k`"),
        (
            json!({"image_id": "i", "embedding": vec![1.0; 8], "colour": 1}),
            422,
            "colour",
        ),
        (
            json!({"image_id": "i", "embedding": vec![1.0; 8]}),
            400,
            "claimed_skill",
        ),
    ] {
        let path = if names == "claimed_skill" {
            "/verify"
        } else {
            "/skills/analyze"
        };
        let (got, answer) = post(&a, path, &body);
        assert_eq!(got, status, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(names),
            "{answer} should name {names}"
        );
    }
    let (status, answer) = post(&a, "/skills/merge", &json!({"members": {}, "examples": {}}));
    assert!(status.is_client_error(), "{answer}");
    assert_eq!(get(&a, "/skills/nope").0, 404);
    assert_eq!(send(&a, "DELETE", "/skills/examples/nope", "").0, 404);
}
