//! Embedding an image: decode (PNG or JPEG), ResNet preprocessing, the model;
//! each step timed on its own, over the four sample images, with the small
//! committed model and, when `MODEL_PATH` names one, that model too (ResNet50
//! from the ONNX model zoo: also set `MODEL_OUTPUT` to its pooling node).
//!
//! Run: `cargo bench -p skill-verification --bench embed [-- samples=N]`

use skill_verification::images::{ImageModel, decode, preprocess};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn arg(name: &str, default: usize) -> usize {
    std::env::args()
        .find_map(|a| a.strip_prefix(&format!("{name}=")).and_then(|v| v.parse().ok()))
        .unwrap_or(default)
}

fn p50(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1e3
}

fn main() {
    let samples = arg("samples", 30);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut models: Vec<(String, PathBuf, Option<String>)> = vec![(
        "tiny_embedder (committed)".into(),
        fixtures.join("tiny_embedder.onnx"),
        None,
    )];
    if let Some(path) = std::env::var_os("MODEL_PATH") {
        models.push((
            "MODEL_PATH".into(),
            PathBuf::from(path),
            std::env::var("MODEL_OUTPUT").ok(),
        ));
    }
    for (name, path, output) in models {
        let loading = Instant::now();
        let model = ImageModel::load(&path, output.as_deref()).expect("the model loads");
        println!(
            "{name}: loaded in {:.0} ms, {} values",
            loading.elapsed().as_secs_f64() * 1e3,
            model.dim()
        );
        for image in ["chelsea.png", "coffee.jpg", "astronaut.jpg", "rocket.jpg"] {
            let bytes = std::fs::read(fixtures.join("images").join(image)).unwrap();
            let (mut d, mut p, mut r, mut all) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for _ in 0..samples {
                let t = Instant::now();
                let decoded = decode(&bytes).unwrap();
                d.push(t.elapsed());
                let t2 = Instant::now();
                let input = preprocess(&decoded);
                p.push(t2.elapsed());
                let t3 = Instant::now();
                std::hint::black_box(model.run(input).unwrap());
                r.push(t3.elapsed());
                all.push(t.elapsed());
            }
            println!(
                "  {image} ({} KB): p50 {:.2} ms = decode {:.2} + preprocess {:.2} + model {:.2}",
                bytes.len() / 1024,
                p50(all),
                p50(d),
                p50(p),
                p50(r)
            );
        }
    }
}
