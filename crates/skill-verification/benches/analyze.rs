//! `/skills/analyze`'s work over 10,000 references of dimension 2,048 (17
//! verifiers, each a k-NN scan of its projected view), against one exact k-NN
//! query of the same references in full dimension (the peer), same run.
//!
//! The verifiers run inline here (one after another on one core), so the
//! figure is the CPU an analysis costs; requests/s on two cores is at most
//! twice its inverse. Run: `cargo bench -p skill-verification --bench analyze`
//! (`-- refs=N samples=N` to change the size).

use ramanujan_http::Inline;
use ramanujan_http::testing::block_on;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use skill_verification::embedding::{Embedding, dot};
use skill_verification::service::{AnalyzeRequest, NewExample};
use skill_verification::{SkillConfig, SkillService};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DIM: usize = 2048;

fn arg(name: &str, default: usize) -> usize {
    std::env::args()
        .find_map(|a| a.strip_prefix(&format!("{name}=")).and_then(|v| v.parse().ok()))
        .unwrap_or(default)
}

fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let at = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

fn main() {
    let refs = arg("refs", 10_000);
    let samples = arg("samples", 500);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let centres: Vec<Vec<f32>> = (0..20)
        .map(|_| (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    let mut noisy = |c: &Vec<f32>| -> Vec<f32> { c.iter().map(|x| x + 0.6 * rng.random_range(-1.0f32..1.0)).collect() };
    let examples: Vec<NewExample> = (0..refs)
        .map(|i| NewExample {
            label: format!("skill-{}", i % 20),
            embedding: Some(noisy(&centres[i % 20])),
            image: None,
            source: None,
        })
        .collect();
    let queries: Vec<Vec<f32>> = (0..samples).map(|i| noisy(&centres[i % 20])).collect();
    let service = SkillService::new(SkillConfig::default(), Arc::new(Inline), None, None);
    let loaded = Instant::now();
    for chunk in examples.chunks(5_000) {
        block_on(service.add_examples(chunk.to_vec())).unwrap();
    }
    println!("loaded {refs} references in {:.2} s", loaded.elapsed().as_secs_f64());
    // The peer: one exact k-NN scan in full dimension over the same unit vectors.
    let full: Vec<Embedding> = examples
        .iter()
        .map(|e| Embedding::new(e.embedding.clone().expect("an embedding"), DIM).unwrap())
        .collect();
    let (mut ours, mut peer, mut right) = (Vec::new(), Vec::new(), 0);
    for (i, q) in queries.iter().enumerate() {
        let request = AnalyzeRequest {
            image_id: format!("q{i}"),
            embedding: Some(q.clone()),
            image: None,
            claimed_skill: None,
            k: None,
        };
        let started = Instant::now();
        let (analysis, _) = block_on(service.analyze(request)).unwrap();
        ours.push(started.elapsed());
        if analysis.decision.label.as_deref() == Some(&format!("skill-{}", i % 20)) {
            right += 1;
        }
        let started = Instant::now();
        let unit = Embedding::new(q.clone(), DIM).unwrap();
        let mut best: Vec<(f32, usize)> = Vec::with_capacity(8);
        for (r, e) in full.iter().enumerate() {
            let s = dot(unit.values(), e.values());
            if best.len() < 7 || s > best[6].0 {
                best.push((s, r));
                best.sort_by(|a, b| b.0.total_cmp(&a.0));
                best.truncate(7);
            }
        }
        std::hint::black_box(&best);
        peer.push(started.elapsed());
    }
    let (p50, p99) = percentiles(ours);
    let (q50, q99) = percentiles(peer);
    println!(
        "analyze (17 verifiers, inline): p50 {p50:.3} ms, p99 {p99:.3} ms; consensus right on {right} of {samples}"
    );
    println!("exact k-NN, one query, full dimension: p50 {q50:.3} ms, p99 {q99:.3} ms");
    println!(
        "ratio {:.2}x at p50; at most {:.0} analyses/s on 2 cores by CPU",
        p50 / q50,
        2e3 / p50
    );
}
