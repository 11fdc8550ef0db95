//! Images through the small committed model (`fixtures/tiny_embedder.onnx`,
//! made by `fixtures/make_fixtures.py`): tract computes what ONNX's reference
//! evaluator computes; the seventeen verifiers tell views of scikit-image's
//! sample photographs apart from images alone; bad images get a 4xx naming
//! the problem and store nothing.

use base64::Engine;
use image::{DynamicImage, ImageFormat, RgbImage, imageops};
use ramanujan_http::Inline;
use ramanujan_http::testing::{block_on, get, post};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use skill_verification::images::{ImageModel, decode};
use skill_verification::service::{AnalyzeRequest, NewExample};
use skill_verification::{PanelConfig, SkillConfig, SkillService};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const PHOTOS: [&str; 4] = ["chelsea.png", "coffee.jpg", "astronaut.jpg", "rocket.jpg"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn model() -> Arc<ImageModel> {
    Arc::new(ImageModel::load(&fixtures().join("tiny_embedder.onnx"), None).expect("the committed model loads"))
}

fn service(model: Option<Arc<ImageModel>>) -> SkillService {
    let config = SkillConfig {
        panel: PanelConfig {
            dim: 80,
            ..PanelConfig::default()
        },
        ..SkillConfig::default()
    };
    let service = SkillService::new(config, Arc::new(Inline), None, None);
    match model {
        Some(m) => service.with_model(m).expect("dimensions match"),
        None => service,
    }
}

fn photo(name: &str) -> RgbImage {
    decode(&std::fs::read(fixtures().join("images").join(name)).unwrap()).expect("a fixture decodes")
}

/// A view of `image` as a camera might take it again: a crop of 65 to 95 % of
/// each side at a random place, sometimes mirrored, a little brighter or
/// darker; encoded as PNG or JPEG; base64.
fn view(image: &RgbImage, rng: &mut ChaCha8Rng) -> String {
    let (w, h) = image.dimensions();
    let share = rng.random_range(0.65..0.95);
    let (cw, ch) = ((w as f64 * share) as u32, (h as f64 * share) as u32);
    let (x, y) = (rng.random_range(0..=w - cw), rng.random_range(0..=h - ch));
    let mut v = imageops::crop_imm(image, x, y, cw, ch).to_image();
    if rng.random_bool(0.5) {
        v = imageops::flip_horizontal(&v);
    }
    let v = imageops::brighten(&v, rng.random_range(-20..20));
    let mut bytes = Vec::new();
    let format = if rng.random_bool(0.5) {
        ImageFormat::Png
    } else {
        ImageFormat::Jpeg
    };
    DynamicImage::ImageRgb8(v)
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn tract_runs_the_model_as_onnx_reference_evaluator_does() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("tiny_embedder.expected.json")).unwrap())
            .unwrap();
    let want: Vec<f32> = expected["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let model = model();
    assert_eq!(model.dim(), 80);
    let input: Vec<f32> = (0..3 * 224 * 224).map(|i| (i as f64 / 100.0).sin() as f32).collect();
    let got = model.run(input).unwrap();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * w.abs().max(1.0),
            "value {i}: tract {g}, reference {w}"
        );
    }
}

#[test]
fn the_verifiers_tell_the_sample_photographs_apart_from_images_alone() {
    let service = service(Some(model()));
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let photos: Vec<(String, RgbImage)> = PHOTOS
        .iter()
        .map(|name| (name.split('.').next().unwrap().to_string(), photo(name)))
        .collect();
    let mut examples = Vec::new();
    for (label, image) in &photos {
        for i in 0..10 {
            examples.push(NewExample {
                label: label.clone(),
                embedding: None,
                image: Some(view(image, &mut rng)),
                source: Some(format!("{label}-view-{i}")),
            });
        }
    }
    let report = block_on(service.add_examples(examples)).expect("images become references");
    assert_eq!(report.references, 40);
    let (mut right, mut asked) = (0, 0);
    for (label, image) in &photos {
        for i in 0..6 {
            let request = AnalyzeRequest {
                image_id: format!("{label}-held-out-{i}"),
                embedding: None,
                image: Some(view(image, &mut rng)),
                claimed_skill: Some(label.clone()),
                k: None,
            };
            let (analysis, _) = block_on(service.analyze(request)).unwrap();
            asked += 1;
            if analysis.verified == Some(true) {
                right += 1;
            } else {
                // Never a wrong label: at worst no quorum.
                assert_eq!(analysis.decision.label, None, "{label} held-out {i}: {analysis:?}");
            }
        }
    }
    assert!(right * 10 >= asked * 9, "right on {right} of {asked} held-out views");
}

#[test]
fn bad_images_get_a_4xx_naming_the_problem_and_nothing_is_stored() {
    let with_model = skill_verification::router(Arc::new(service(Some(model()))));
    let without = skill_verification::router(Arc::new(service(None)));
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let good = view(&photo("rocket.jpg"), &mut rng);
    // 9,000 pixels wide (a few hundred bytes of PNG): past the limit.
    let mut huge = Vec::new();
    DynamicImage::ImageRgb8(RgbImage::new(9_000, 1))
        .write_to(&mut Cursor::new(&mut huge), ImageFormat::Png)
        .unwrap();
    let gif = b64(b"GIF89a\x04\x00\x04\x00\x00\x00\x00;");
    let cases = [
        (&with_model, good.clone() + "!", 400, "base64"),
        (
            &with_model,
            b64(b"\xff\xd8\xff\xe0 truncated jpeg"),
            400,
            "cannot be decoded",
        ),
        (&with_model, gif, 415, "not PNG or JPEG"),
        (&with_model, b64(&huge), 413, "too large"),
        (&without, good.clone(), 400, "MODEL_PATH"),
    ];
    for (router, image, status, says) in cases {
        // The good example first: all or nothing.
        let body = json!({"examples": [
            {"label": "rocket", "image": good},
            {"label": "rocket", "image": image},
        ]});
        let (got, answer) = post(router, "/skills/examples", &body);
        assert_eq!(got, status, "{answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(says) && error.contains("examples["), "{error}");
        assert_eq!(get(router, "/skills").1["examples"], 0, "nothing half-stored");
        // The same image to analyse: the same refusal, naming the field.
        let (got, answer) = post(router, "/skills/analyze", &json!({"image_id": "x", "image": image}));
        let error = answer["error"].as_str().unwrap();
        assert_eq!(got, status, "{answer}");
        assert!(error.contains(says) && error.starts_with("image:"), "{error}");
    }
    // Both an embedding and an image: refused.
    let body = json!({"examples": [{"label": "x", "image": good, "embedding": vec![1.0; 80]}]});
    let (got, answer) = post(&with_model, "/skills/examples", &body);
    assert_eq!(got, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("not both"));
}
