//! The saturate handler against egg doing the same saturation.
//!
//! `ramanujan` is the handler's whole work but the cache lookup and HTTP framing:
//! decode the JSON request, validate, run rounds of RED, BLUE and GREEN until a
//! round changes nothing, verify, extract deterministically, encode the JSON
//! answer. `egg` is egg as its own `tests/math.rs` uses it: the same language
//! (`Math`), constant folding as an e-class analysis (the same evaluation, with
//! the same zero and one known at once, constant classes pruned to their
//! leaves), the same rules with their conditions, all in one runner with egg's
//! default backoff scheduler and the same limits, then egg's `AstSize` extractor. Both must reach forms of the
//! same size; the bench checks that before it measures.
//!
//! Each workload is also measured in pairs: the handler and egg alternately,
//! which goes first switching every pair, so that this machine's drift
//! (other tenants, frequency) falls on both alike; the figure is the median of
//! the per-pair ratios with a 95 % confidence interval from order statistics.
//!
//! Run: `cargo bench -p egraph-service --bench saturate`

use criterion::{Criterion, criterion_group, criterion_main};
use egg::{
    Analysis, AstSize, ConditionalApplier, DidMerge, Extractor, Id, Language, Pattern, Rewrite, Runner,
    SimpleScheduler, Subst,
};
use egraph_service::SaturateRequest;
use ramanujan_core::Color;
use ramanujan_core::analysis::fold_absorbing;
use ramanujan_core::constant::Constant;
use ramanujan_core::lang::Math;
use ramanujan_core::parse::parse_expr;
use ramanujan_core::rules::{RuleSpec, default_rules};
use ramanujan_core::verify::check_semantically;
use serde_json::{Value, json};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Pairs per workload in the paired measurement (after as many to warm up).
const PAIRS: usize = 2_000;

/// The median of `ours / peer` over interleaved pairs, and a 95 % confidence
/// interval for it (ranks n/2 ∓ 0.98·√n of the sorted ratios).
fn paired(mut ours: impl FnMut(), mut peer: impl FnMut()) -> (f64, f64, f64) {
    let time = |f: &mut dyn FnMut()| {
        let started = Instant::now();
        f();
        started.elapsed().as_secs_f64()
    };
    let mut ratios = Vec::with_capacity(PAIRS);
    for i in 0..2 * PAIRS {
        let (a, b) = if i % 2 == 0 {
            let a = time(&mut ours);
            (a, time(&mut peer))
        } else {
            let b = time(&mut peer);
            (time(&mut ours), b)
        };
        if i >= PAIRS {
            ratios.push(a / b);
        }
    }
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len() as f64;
    let half = 0.98 * n.sqrt();
    let at = |rank: f64| ratios[(rank.round() as usize).min(ratios.len() - 1)];
    (at(n / 2.0), at(n / 2.0 - half), at(n / 2.0 + half))
}

fn handler(body: &[u8]) -> Vec<u8> {
    let req: SaturateRequest = serde_json::from_slice(body).unwrap();
    let saturation = req
        .check(Duration::from_secs(5), Duration::from_secs(60))
        .unwrap()
        .into_saturation()
        .unwrap();
    serde_json::to_vec(&saturation.run()).unwrap()
}

/// Constant folding as egg's `tests/math.rs` has it, with this project's evaluation.
#[derive(Default)]
struct ConstantFold {
    fold: bool,
}

type Graph = egg::EGraph<Math, ConstantFold>;

impl Analysis<Math> for ConstantFold {
    type Data = Option<Constant>;

    fn make(egraph: &mut Graph, enode: &Math, _id: Id) -> Self::Data {
        match enode {
            Math::Num(c) => Some(c.clone()),
            _ if egraph.analysis.fold => fold_absorbing(enode, |id| egraph[id].data.clone()),
            _ => None,
        }
    }

    fn merge(&mut self, a: &mut Self::Data, b: Self::Data) -> DidMerge {
        egg::merge_option(a, b, |_, _| DidMerge(false, false))
    }

    fn modify(egraph: &mut Graph, id: Id) {
        if let Some(c) = egraph[id].data.clone() {
            let added = egraph.add(Math::Num(c));
            egraph.union(id, added);
            egraph[id].nodes.retain(|n| n.is_leaf());
        }
    }
}

/// The rules as egg rewrites, their conditions as egg's conditional appliers.
fn egg_rules(specs: &[RuleSpec]) -> Vec<Rewrite<Math, ConstantFold>> {
    specs
        .iter()
        .map(|s| {
            let lhs: Pattern<Math> = s.lhs.parse().unwrap();
            let rhs: Pattern<Math> = s.rhs.parse().unwrap();
            let var = |v: &String| -> egg::Var { v.parse().unwrap() };
            let nonzero: Vec<egg::Var> = s.nonzero.iter().map(var).collect();
            let integer: Vec<egg::Var> = s.integer.iter().map(var).collect();
            let condition = move |egraph: &mut Graph, _: Id, subst: &Subst| {
                let value = |v: &egg::Var| egraph[subst[*v]].data.clone();
                nonzero.iter().all(|v| value(v).is_some_and(|c| !c.is_zero()))
                    && integer.iter().all(|v| value(v).is_some_and(|c| c.is_integer()))
            };
            Rewrite::new(
                s.name.clone(),
                lhs,
                ConditionalApplier {
                    condition,
                    applier: rhs,
                },
            )
            .unwrap()
        })
        .collect()
}

/// egg saturating `expr` with `rules` (all colours in one runner), then `AstSize`
/// extraction: the best form and its size.
fn egg_peer(
    expr: &str,
    rules: &[Rewrite<Math, ConstantFold>],
    fold: bool,
    simple: bool,
    iterations: usize,
) -> (usize, String) {
    let expr: egg::RecExpr<Math> = expr.parse().unwrap();
    let mut egraph = Graph::new(ConstantFold { fold });
    let root = egraph.add_expr(&expr);
    let runner = Runner::default()
        .with_egraph(egraph)
        .with_iter_limit(iterations)
        .with_node_limit(10_000)
        .with_time_limit(Duration::from_secs(5));
    let runner = if simple {
        runner.with_scheduler(SimpleScheduler)
    } else {
        runner
    };
    let egraph = runner.run(rules).egraph;
    let (size, best) = Extractor::new(&egraph, AstSize).find_best(root);
    (size, best.to_string())
}

fn bench_workload(c: &mut Criterion, name: &str, request: Value, peer: impl Fn() -> (usize, String)) {
    let body = request.to_string().into_bytes();
    let ours: Value = serde_json::from_slice(&handler(&body)).unwrap();
    let (size, form) = peer();
    println!(
        "{name}: ramanujan {} (cost {}, {}), egg {form} (size {size})",
        ours["canonical"], ours["cost"], ours["stop_reason"]
    );
    assert_eq!(
        ours["cost"].as_u64(),
        Some(size as u64),
        "{name}: the same work reaches forms of the same size"
    );
    let (median, low, high) = paired(|| drop(black_box(handler(&body))), || drop(black_box(peer())));
    println!("{name}: paired ratio ramanujan / egg {median:.3} (95 % CI {low:.3}–{high:.3}, {PAIRS} pairs)");
    let mut group = c.benchmark_group(name);
    group.bench_function("ramanujan", |b| b.iter(|| handler(black_box(&body))));
    group.bench_function("egg", |b| b.iter(&peer));
    // The handler's GREEN check alone: input = canonical form, one equality.
    let input = parse_expr(request["expression"].as_str().unwrap()).unwrap();
    let canonical = parse_expr(ours["canonical"].as_str().unwrap()).unwrap();
    group.bench_function("verify_one_equality", |b| {
        b.iter(|| check_semantically(black_box(&input), black_box(&canonical)))
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    // egg's math_associate_adds: two RED rules, simple scheduler, 7 iterations, no folding.
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
        || egg_peer(adds, &assoc_rules, false, true, 7),
    );

    // The built-in rules of every colour, constant folding, backoff scheduler:
    // egg's arithmetic goals and a product of sums.
    let specs: Vec<RuleSpec> = Color::ALL.into_iter().flat_map(default_rules).collect();
    let rules = egg_rules(&specs);
    for (name, expr) in [
        ("default_rules_product", "(* (+ a b) (+ c (* 2 d)))"),
        ("math_simplify_add", "(+ x (+ x (+ x x)))"),
        ("math_simplify_const", "(+ 1 (- a (* (- 2 1) a)))"),
        ("math_powers", "(* (pow 2 x) (pow 2 y))"),
    ] {
        bench_workload(c, name, json!({"expression": expr}), || {
            egg_peer(expr, &rules, true, false, 30)
        });
    }
}

criterion_group! {
    name = saturate;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(saturate);
