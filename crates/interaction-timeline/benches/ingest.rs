//! Ingest: events through the timeline (emitted, queued, written by its
//! writer in batches) against raw DuckDB appender inserts of the same rows
//! into the same table, in the same run. The peer is handed its rows ready;
//! the timeline builds them from events (JSON included), as it must.
//!
//! `cargo bench -p interaction-timeline --bench ingest`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use interaction_timeline::Timeline;
use ramanujan_duckdb::duckdb::{Connection, params};
use ramanujan_events::{Event, EventDot, Kind};
use std::time::Duration;

const EVENTS: usize = 100_000;

fn events() -> Vec<Event> {
    (0..EVENTS)
        .map(|i| {
            let source = format!("agent-{}", i % 9);
            let kind = match i % 3 {
                0 => Kind::MessageSent {
                    to: format!("agent-{}", (i + 1) % 9),
                    route: "event".into(),
                    facts: 12,
                    bytes: Some(640),
                },
                1 => Kind::Merge { facts_new: 7 },
                _ => Kind::RewriteStep {
                    color: "red".into(),
                    iterations: 2,
                    facts: 31,
                    stop: "saturated".into(),
                    duration_us: 840,
                },
            };
            Event {
                at_us: 1_764_806_400_000_000 + i as i64,
                source: source.clone(),
                submission: Some(format!("{:032x}", i / 50)),
                dot: Some(EventDot {
                    agent: source,
                    counter: i as u64,
                }),
                seen: Default::default(),
                event: kind,
            }
        })
        .collect()
}

/// The timeline's rows, as the peer gets them.
type Row = (
    u64,
    i64,
    String,
    &'static str,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<u64>,
    Option<u64>,
    Option<String>,
    Option<u64>,
    Option<String>,
    String,
);

fn rows(events: &[Event]) -> Vec<Row> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let route = match &e.event {
                Kind::MessageSent { route, .. } => Some(route.clone()),
                _ => None,
            };
            (
                i as u64,
                e.at_us,
                e.source.clone(),
                e.event.name(),
                e.submission.clone(),
                e.event.peer().map(str::to_string),
                route,
                e.event.bytes(),
                e.event.duration_us(),
                e.dot.as_ref().map(|d| d.agent.clone()),
                e.dot.as_ref().map(|d| d.counter),
                (!e.seen.is_empty()).then(|| serde_json::to_string(&e.seen).unwrap()),
                serde_json::to_string(&e.event).unwrap(),
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let events = events();
    let rows = rows(&events);
    let mut group = c.benchmark_group("ingest 100,000 events");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("timeline (emit, queue, writer, DuckDB)", |b| {
        b.iter_batched(
            || (Timeline::open(None).unwrap(), events.clone()),
            |(timeline, events)| {
                let emitter = timeline.emitter();
                let mut events = events.into_iter();
                loop {
                    let chunk: Vec<Event> = events.by_ref().take(32_768).collect();
                    if chunk.is_empty() {
                        break;
                    }
                    // Never more than the queue holds (the emitter drops what does not fit).
                    while timeline.health().queued > 32_768 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    emitter.emit_all(chunk);
                }
                assert!(timeline.settle(Duration::from_secs(60)));
                assert_eq!(timeline.health().written, EVENTS as u64);
                timeline
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("raw DuckDB appender, same rows", |b| {
        b.iter_batched(
            || {
                let conn = Connection::open_in_memory().unwrap();
                conn.execute_batch(
                    "CREATE TABLE events (seq UBIGINT NOT NULL, at_us BIGINT NOT NULL, source VARCHAR NOT NULL,
                     type VARCHAR NOT NULL, submission VARCHAR, peer VARCHAR, route VARCHAR, bytes UBIGINT,
                     duration_us UBIGINT, dot_agent VARCHAR, dot_counter UBIGINT, seen VARCHAR, detail VARCHAR NOT NULL)",
                )
                .unwrap();
                conn
            },
            |conn| {
                {
                    let mut appender = conn.appender("events").unwrap();
                    for chunk in rows.chunks(8_192) {
                        for r in chunk {
                            appender
                                .append_row(params![r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10, r.11, r.12])
                                .unwrap();
                        }
                        appender.flush().unwrap();
                    }
                }
                conn
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
