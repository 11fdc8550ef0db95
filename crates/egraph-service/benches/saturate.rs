//! The saturate handler against raw egg on the same workloads.
//!
//! `ramanujan` is the handler's whole work but the cache lookup and HTTP framing:
//! decode the JSON request, validate, run the four phases (RED, BLUE, GREEN with
//! verification, deterministic extraction), encode the JSON answer.
//! `raw_egg` runs the same rule patterns in the same phases on egg's `SymbolLang`
//! with no analysis, then egg's `AstSize` extractor.
//!
//! Run: `cargo bench -p egraph-service --bench saturate`

use criterion::{Criterion, criterion_group, criterion_main};
use egg::{AstSize, Extractor, Pattern, Rewrite, Runner, SimpleScheduler, SymbolLang};
use egraph_service::SaturateRequest;
use ramanujan_core::Color;
use ramanujan_core::rules::{RuleSpec, default_rules};
use serde_json::{Value, json};
use std::hint::black_box;
use std::time::Duration;

fn handler(body: &[u8]) -> Vec<u8> {
    let req: SaturateRequest = serde_json::from_slice(body).unwrap();
    let saturation = req.check(Duration::from_secs(5)).unwrap().into_saturation().unwrap();
    serde_json::to_vec(&saturation.run()).unwrap()
}

fn egg_rules(specs: &[RuleSpec]) -> Vec<Rewrite<SymbolLang, ()>> {
    specs
        .iter()
        .filter(|s| s.nonzero.is_empty())
        .map(|s| {
            let lhs: Pattern<SymbolLang> = s.lhs.parse().unwrap();
            let rhs: Pattern<SymbolLang> = s.rhs.parse().unwrap();
            Rewrite::new(s.name.clone(), lhs, rhs).unwrap()
        })
        .collect()
}

fn raw_egg(expr: &str, phases: &[Vec<Rewrite<SymbolLang, ()>>], simple: bool, iterations: usize) -> String {
    let expr: egg::RecExpr<SymbolLang> = expr.parse().unwrap();
    let mut egraph = egg::EGraph::<SymbolLang, ()>::default();
    let root = egraph.add_expr(&expr);
    for rules in phases {
        let runner = Runner::default()
            .with_egraph(egraph)
            .with_iter_limit(iterations)
            .with_node_limit(10_000);
        let runner = if simple {
            runner.with_scheduler(SimpleScheduler)
        } else {
            runner
        };
        egraph = runner.run(rules).egraph;
    }
    Extractor::new(&egraph, AstSize).find_best(root).1.to_string()
}

fn bench_workload(c: &mut Criterion, name: &str, request: Value, peer: impl Fn() -> String) {
    let body = request.to_string().into_bytes();
    let mut group = c.benchmark_group(name);
    group.bench_function("ramanujan", |b| b.iter(|| handler(black_box(&body))));
    group.bench_function("raw_egg", |b| b.iter(&peer));
    group.finish();
}

fn benches(c: &mut Criterion) {
    // egg's math_associate_adds: two RED rules, simple scheduler, 7 iterations.
    let adds = "(+ 1 (+ 2 (+ 3 (+ 4 (+ 5 (+ 6 7))))))";
    let assoc_specs: Vec<RuleSpec> = default_rules(Color::Red)
        .into_iter()
        .filter(|r| r.name == "comm-add" || r.name == "assoc-add")
        .collect();
    let assoc_rules = egg_rules(&assoc_specs);
    bench_workload(
        c,
        "math_associate_adds",
        json!({"expression": adds, "rules": assoc_specs, "default_rules": false, "fold_constants": false,
               "scheduler": "simple", "limits": {"iterations": 7}}),
        || raw_egg(adds, std::slice::from_ref(&assoc_rules), true, 7),
    );

    // The built-in RED, BLUE and GREEN rules on a product of sums, backoff scheduler.
    let product = "(* (+ a b) (+ c (* 2 d)))";
    let phases: Vec<_> = Color::ALL.into_iter().map(|c| egg_rules(&default_rules(c))).collect();
    bench_workload(c, "default_rules_product", json!({"expression": product}), || {
        raw_egg(product, &phases, false, 30)
    });
}

criterion_group! {
    name = saturate;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(saturate);
