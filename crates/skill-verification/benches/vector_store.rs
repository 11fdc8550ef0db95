//! Where the references' vectors live: the measurement behind the choice in
//! the crate README. Over the same references (10,000 of dimension 2,048 unless
//! `refs=`/`dim=` say) and the same queries, one exact top-7 by inner product
//! (unit vectors: cosine), ties by key:
//!
//! - **memory**: a scan of the vectors in memory (the SIMD `dot` the verifiers use);
//! - **duckdb**: a `FLOAT[dim]` column in a DuckDB file, `array_inner_product`
//!   ordered and limited, the query vector bound as text and cast (the duckdb
//!   crate binds no arrays), and again with the query read from a table of
//!   queries (no text: DuckDB's own cost only);
//!
//! and what the chosen store (redb, `store.rs`) costs: storing the references,
//! loading them at start, and adding one example to a full set. LanceDB is
//! not measured: see the README. Run:
//! `cargo bench -p skill-verification --bench vector_store` (`-- refs=N dim=N queries=N`).

use ramanujan_duckdb::duckdb::{Connection, params};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use skill_verification::embedding::{Embedding, dot};
use skill_verification::references::{Provenance, ReferenceSet};
use skill_verification::store::{RedbReferences, ReferenceStore};
use std::time::{Duration, Instant};

const K: usize = 7;

fn arg(name: &str, default: usize) -> usize {
    std::env::args()
        .find_map(|a| a.strip_prefix(&format!("{name}=")).and_then(|v| v.parse().ok()))
        .unwrap_or(default)
}

fn percentiles(mut times: Vec<Duration>) -> String {
    times.sort();
    let at = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    format!("p50 {:.3} ms, p99 {:.3} ms", at(0.5), at(0.99))
}

/// A vector as DuckDB's text form of a list (`[0.1, -0.2, ...]`), exact for f32.
fn as_text(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:?}")).collect();
    format!("[{}]", parts.join(","))
}

/// The exact top `K` by inner product, ties by key (row index here).
fn top_in_memory(query: &[f32], refs: &[Embedding]) -> Vec<usize> {
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(K + 1);
    for (r, e) in refs.iter().enumerate() {
        let s = dot(query, e.values());
        if best.len() < K || s > best[K - 1].0 {
            best.push((s, r));
            best.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            best.truncate(K);
        }
    }
    best.into_iter().map(|(_, r)| r).collect()
}

fn main() {
    let n = arg("refs", 10_000);
    let dim = arg("dim", 2048);
    let queries = arg("queries", 200);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut vector = || -> Vec<f32> { (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    let refs: Vec<Embedding> = (0..n).map(|_| Embedding::new(vector(), dim).unwrap()).collect();
    let asked: Vec<Embedding> = (0..queries).map(|_| Embedding::new(vector(), dim).unwrap()).collect();
    println!("{n} references of dimension {dim}, {queries} queries, top {K}");

    // In memory.
    let mut memory = Vec::new();
    let mut expected = Vec::new();
    for q in &asked {
        let started = Instant::now();
        let top = top_in_memory(q.values(), &refs);
        memory.push(started.elapsed());
        expected.push(top);
    }
    println!("memory scan:                 {}", percentiles(memory.clone()));

    // DuckDB, in a file.
    let dir = tempfile::tempdir().unwrap();
    let db = Connection::open(dir.path().join("vectors.duckdb")).unwrap();
    db.execute_batch(&format!(
        "CREATE TABLE refs (row INTEGER, v FLOAT[{dim}]); CREATE TABLE queries (id INTEGER, v FLOAT[{dim}]);"
    ))
    .unwrap();
    let started = Instant::now();
    db.execute_batch("BEGIN").unwrap();
    {
        let mut insert = db
            .prepare(&format!("INSERT INTO refs VALUES (?, ?::FLOAT[{dim}])"))
            .unwrap();
        for (r, e) in refs.iter().enumerate() {
            insert.execute(params![r as i64, as_text(e.values())]).unwrap();
        }
        let mut insert = db
            .prepare(&format!("INSERT INTO queries VALUES (?, ?::FLOAT[{dim}])"))
            .unwrap();
        for (i, q) in asked.iter().enumerate() {
            insert.execute(params![i as i64, as_text(q.values())]).unwrap();
        }
    }
    db.execute_batch("COMMIT; CHECKPOINT").unwrap();
    println!(
        "duckdb: stored {n} references in {:.2} s ({:.1} MB on disk)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(dir.path().join("vectors.duckdb")).unwrap().len() as f64 / 1e6
    );
    let mut bound = db
        .prepare(&format!(
            "SELECT row FROM refs ORDER BY array_inner_product(v, ?::FLOAT[{dim}]) DESC, row LIMIT {K}"
        ))
        .unwrap();
    let mut from_table = db
        .prepare(&format!(
            "SELECT refs.row FROM refs, (SELECT v FROM queries WHERE id = ?) q \
             ORDER BY array_inner_product(refs.v, q.v) DESC, refs.row LIMIT {K}"
        ))
        .unwrap();
    let (mut text_times, mut table_times, mut same) = (Vec::new(), Vec::new(), 0);
    for (i, q) in asked.iter().enumerate() {
        let text = as_text(q.values());
        let started = Instant::now();
        let top: Vec<usize> = bound
            .query_map(params![text], |row| row.get::<_, i64>(0))
            .unwrap()
            .map(|r| r.unwrap() as usize)
            .collect();
        text_times.push(started.elapsed());
        let started = Instant::now();
        let again: Vec<usize> = from_table
            .query_map(params![i as i64], |row| row.get::<_, i64>(0))
            .unwrap()
            .map(|r| r.unwrap() as usize)
            .collect();
        table_times.push(started.elapsed());
        assert_eq!(top, again);
        if top == expected[i] {
            same += 1;
        }
    }
    println!("duckdb, query bound as text: {}", percentiles(text_times.clone()));
    println!("duckdb, query from a table:  {}", percentiles(table_times.clone()));
    println!("duckdb's top {K} = the memory scan's on {same} of {queries} queries");
    let p50 = |mut t: Vec<Duration>| {
        t.sort();
        t[t.len() / 2].as_secs_f64()
    };
    let mem = p50(memory);
    println!(
        "ratio at p50 (duckdb / memory): {:.1}x bound as text, {:.1}x from a table",
        p50(text_times) / mem,
        p50(table_times) / mem
    );

    // The chosen store: the references in redb, beside the in-memory scan.
    let path = dir.path().join("skills.redb");
    let store = RedbReferences::open(&path).unwrap();
    let provenance = Provenance {
        host: "bench".into(),
        source: None,
    };
    let mut set = ReferenceSet::new();
    let examples: Vec<_> = refs
        .iter()
        .enumerate()
        .map(|(r, e)| (format!("skill-{}", r % 20), e.clone(), provenance.clone()))
        .collect();
    let started = Instant::now();
    let change = set.add("bench", examples);
    store.save(&set, &change).unwrap();
    println!(
        "redb: stored {n} references in one change in {:.2} s ({:.1} MB on disk)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&path).unwrap().len() as f64 / 1e6
    );
    let mut adds = Vec::new();
    for _ in 0..50 {
        let one = vec![(
            "one more".to_string(),
            Embedding::new(vector(), dim).unwrap(),
            provenance.clone(),
        )];
        let started = Instant::now();
        let mut next = set.clone();
        let change = next.add("bench", one);
        store.save(&next, &change).unwrap();
        adds.push(started.elapsed());
        set = next;
    }
    println!(
        "redb: one example added to {n}, copy-change-store (durable): {}",
        percentiles(adds)
    );
    drop(store);
    let started = Instant::now();
    let store = RedbReferences::open(&path).unwrap();
    let state = store.load().unwrap().unwrap();
    ReferenceSet::check_state(&state, dim).unwrap();
    let loaded = ReferenceSet::from_state(state);
    println!(
        "redb: opened (compacting: {:.1} MB on disk now), loaded and checked {} references at start in {:.2} s",
        std::fs::metadata(&path).unwrap().len() as f64 / 1e6,
        loaded.len(),
        started.elapsed().as_secs_f64()
    );
}
