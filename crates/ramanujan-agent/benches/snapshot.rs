//! What a hosted (Spin) agent pays on every request to be restored from its
//! snapshot and saved again, when the request does not step on any of the
//! submissions whose own e-graphs it keeps: here a sync tick, with 64 own
//! e-graphs (the most an agent keeps) in the snapshot.
//!
//! `cargo bench -p ramanujan-agent --bench snapshot`

use criterion::{Criterion, criterion_group, criterion_main};
use ramanujan_agent::agent::{Agent, AgentSnapshot, WorkLimits};
use ramanujan_core::Color;
use ramanujan_core::parse::parse_expr;
use std::collections::HashSet;

/// A RED agent that rewrote 64 submissions to their end, as MessagePack.
fn saved_agent() -> Vec<u8> {
    let known: HashSet<String> = ["a".to_string(), "b".to_string()].into();
    let mut agent = Agent::new("a".into(), Color::Red, vec!["b".into()], known, WorkLimits::default());
    for i in 0..64 {
        let expr = parse_expr(&format!("(* (+ x{i} y) (+ x{i} (* 2 z)))")).unwrap();
        agent.submit(&expr);
        for _ in 0..50 {
            if !agent.is_dirty() {
                break;
            }
            agent.work();
        }
    }
    rmp_serde::to_vec_named(&agent.into_snapshot()).unwrap()
}

fn bench(c: &mut Criterion) {
    let saved = saved_agent();
    println!("snapshot: {} bytes", saved.len());
    c.bench_function("restore, sync tick, save (64 own e-graphs)", |b| {
        b.iter(|| {
            let snapshot: AgentSnapshot = rmp_serde::from_slice(&saved).unwrap();
            let mut agent = Agent::from_snapshot(snapshot, WorkLimits::default());
            let out = agent.sync_tick();
            let bytes = rmp_serde::to_vec_named(&agent.into_snapshot()).unwrap();
            (out, bytes)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
