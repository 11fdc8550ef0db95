//! The timeline over a real DuckDB file in a temp dir.

use interaction_timeline::{Filter, Timeline, router};
use ramanujan_events::event::{LifecycleState, Verdict};
use ramanujan_events::{Event, EventDot, Kind};
use ramanujan_http::testing::{get, post};
use serde_json::json;
use std::time::Duration;

fn event(at_us: i64, source: &str, kind: Kind) -> Event {
    Event {
        at_us,
        source: source.into(),
        submission: None,
        dot: None,
        seen: Default::default(),
        event: kind,
    }
}

fn step(at_us: i64, source: &str, duration_us: u64) -> Event {
    Event {
        submission: Some("s1".into()),
        dot: Some(EventDot {
            agent: source.into(),
            counter: at_us as u64,
        }),
        ..event(
            at_us,
            source,
            Kind::RewriteStep {
                color: "red".into(),
                iterations: 1,
                facts: 3,
                stop: "saturated".into(),
                duration_us,
            },
        )
    }
}

fn sent(at_us: i64, from: &str, to: &str, route: &str) -> Event {
    event(
        at_us,
        from,
        Kind::MessageSent {
            to: to.into(),
            route: route.into(),
            facts: 1,
            bytes: Some(100),
        },
    )
}

#[test]
fn emitted_events_are_stored_in_the_file_and_found_again_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("timeline.duckdb");
    let mut all = Vec::new();
    {
        let timeline = Timeline::open(Some(&path)).unwrap();
        let emitter = timeline.emitter();
        for i in 0..2_000 {
            let e = match i % 4 {
                0 => step(1_000 + i, &format!("agent-{}", i % 9), (i % 97) as u64),
                1 => sent(1_000 + i, "agent-0", "agent-1", "event"),
                2 => event(1_000 + i, "agent-2", Kind::Merge { facts_new: i as u64 }),
                _ => event(
                    1_000 + i,
                    "agent-3",
                    Kind::Verification {
                        verdict: Verdict::Verified,
                        equality: "x = x".into(),
                    },
                ),
            };
            all.push(e.clone());
            emitter.emit(e);
        }
        assert!(timeline.settle(Duration::from_secs(30)));
        let health = timeline.health();
        assert_eq!((health.status, health.written, health.dropped), ("ok", 2_000, 0));
    }
    let timeline = Timeline::open(Some(&path)).unwrap();
    let stored = timeline
        .query(&Filter {
            limit: 10_000,
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(stored.len(), 2_000);
    let events: Vec<Event> = stored.iter().map(|s| s.event.clone()).collect();
    assert_eq!(events, all, "every event, as emitted, in time order");
    let merges = timeline
        .query(&Filter {
            kind: Some("merge".into()),
            since_us: Some(1_500),
            until_us: Some(1_600),
            limit: 1_000,
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(merges.len(), 25);
    assert!(
        merges
            .iter()
            .all(|m| m.event.source == "agent-2" && (1_500..1_600).contains(&m.event.at_us))
    );
    // Numbering goes on after a reopen.
    timeline.emitter().emit(event(
        5,
        "agent-8",
        Kind::Lifecycle {
            state: LifecycleState::Restart,
        },
    ));
    assert!(timeline.settle(Duration::from_secs(30)));
    let restart = timeline
        .query(&Filter {
            source: Some("agent-8".into()),
            limit: 10,
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(restart[0].seq, 2_000);
}

/// Dropping a timeline (a host stopping) returns while producers still emit:
/// what was queued when it stopped is written, what comes after is not waited
/// for. (The writer once stopped only after 50 ms without an event, so a
/// network still ticking kept a host's Ctrl-C waiting for minutes.)
#[test]
fn a_timeline_stops_while_producers_still_emit_and_keeps_what_was_queued() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("timeline.duckdb");
    let timeline = Timeline::open(Some(&path)).unwrap();
    let emitter = timeline.emitter();
    for i in 0..1_000 {
        emitter.emit(event(i, "before", Kind::Merge { facts_new: 1 }));
    }
    let producing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let producer = {
        let (producing, emitter) = (producing.clone(), emitter.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while producing.load(std::sync::atomic::Ordering::Relaxed) {
                emitter.emit(event(i, "after", Kind::Merge { facts_new: 1 }));
                i += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let (dropped, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(timeline);
        let _ = dropped.send(());
    });
    let stopped = done.recv_timeout(Duration::from_secs(10));
    producing.store(false, std::sync::atomic::Ordering::Relaxed);
    producer.join().unwrap();
    assert!(
        stopped.is_ok(),
        "the timeline did not stop within 10 s while events kept coming"
    );
    drop(emitter);
    let reopened = Timeline::open(Some(&path)).unwrap();
    let before = reopened
        .query(&Filter {
            source: Some("before".into()),
            limit: 10_000,
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(before.len(), 1_000);
}

/// Nearest-rank percentile: the smallest value with at least `p` of the values at or below it.
fn nearest_rank(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

#[test]
fn stats_percentiles_are_the_nearest_rank_percentiles_of_the_same_rows() {
    let timeline = Timeline::open(None).unwrap();
    let emitter = timeline.emitter();
    let mut durations = Vec::new();
    let mut x: u64 = 12345;
    for i in 0..1_003 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let d = (x >> 33) % 10_000;
        durations.push(d);
        emitter.emit(step(10 + i, "agent-1", d));
    }
    for i in 0..30 {
        emitter.emit(sent(
            10 + i,
            "agent-0",
            "agent-1",
            if i % 3 == 0 { "sync_request" } else { "event" },
        ));
    }
    assert!(timeline.settle(Duration::from_secs(30)));
    let stats = timeline.stats(None, None).unwrap();
    durations.sort_unstable();
    let steps = stats.by_type.iter().find(|t| t.r#type == "rewrite_step").unwrap();
    assert_eq!((steps.count, steps.timed), (1_003, 1_003));
    for (p, got) in [(0.5, steps.p50_us), (0.95, steps.p95_us), (0.99, steps.p99_us)] {
        assert_eq!(got, Some(nearest_rank(&durations, p)), "p{p}");
    }
    let sent = stats.by_type.iter().find(|t| t.r#type == "message_sent").unwrap();
    assert_eq!((sent.count, sent.timed, sent.p50_us), (30, 0, None));
    assert_eq!(stats.messages_sent, 30);
    assert_eq!(stats.sync_ratio, Some(10.0 / 30.0));
    assert_eq!(stats.flows.len(), 1);
    assert_eq!(stats.flows[0].messages, 30);
    // A window: only what is in it.
    let window = timeline.stats(Some(10), Some(20)).unwrap();
    assert_eq!(window.events, 20);
    // The widest windows a query string can ask for are windows, not overflows.
    for (since, until, events) in [
        (Some(i64::MIN), None, 1_033),
        (None, Some(i64::MIN), 0),
        (Some(i64::MIN), Some(i64::MAX), 1_033),
    ] {
        assert_eq!(
            timeline.stats(since, until).unwrap().events,
            events,
            "{since:?}..{until:?}"
        );
    }
}

#[test]
fn bad_requests_get_a_400_naming_the_field() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let app = router(Timeline::open(None).unwrap());
    for (path, field) in [
        ("/timeline/query?type=gossip", "type"),
        ("/timeline/query?since=10&until=5", "since"),
        ("/timeline/query?limit=10001", "limit"),
        ("/timeline/query?order=random", "order"),
        ("/timeline/query?colour=red", "colour"),
        ("/timeline/query?since=yesterday", "since"),
        ("/timeline/stats?since=10&until=5", "since"),
    ] {
        let (status, body) = get(&app, path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"].as_str().unwrap().contains(field), "{path}: {body}");
    }
    for (batch, field) in [
        (
            json!({"events": [{"source": "a", "event": {"type": "merge"}}]}),
            "facts_new",
        ),
        (
            json!({"events": [{"source": "a", "event": {"type": "gossip"}}]}),
            "gossip",
        ),
        (
            json!({"events": [{"source": "a", "event": {"type": "merge", "facts_new": 1}, "colour": 1}]}),
            "colour",
        ),
        (
            json!({"events": [{"event": {"type": "merge", "facts_new": 1}}]}),
            "source",
        ),
        (
            json!({"events": [{"source": "", "event": {"type": "merge", "facts_new": 1}}]}),
            "source",
        ),
        (json!({"event": []}), "event"),
    ] {
        let (status, body) = post(&app, "/timeline/events", &batch);
        assert_eq!(status, 400, "{batch}: {body}");
        assert!(body["error"].as_str().unwrap().contains(field), "{batch}: {body}");
    }
    let (status, body) = get(&app, "/timeline/submissions/nothing");
    assert_eq!(status, 404, "{body}");
}

#[test]
fn posted_batches_are_written_before_the_answer_and_tell_a_submission_s_story() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let app = router(Timeline::open(None).unwrap());
    let about = |mut e: Event| {
        e.submission = Some("s1".into());
        e
    };
    let events = vec![
        about(event(
            1,
            "agent-0",
            Kind::Submission {
                expression: "(* 0 x)".into(),
            },
        )),
        about(event(
            2,
            "agent-1",
            Kind::MessageReceived {
                from: "agent-0".into(),
                route: "event".into(),
                facts: 4,
                bytes: None,
            },
        )),
        step(3, "agent-1", 50),
        about(event(
            4,
            "agent-2",
            Kind::MessageReceived {
                from: "agent-1".into(),
                route: "event".into(),
                facts: 2,
                bytes: None,
            },
        )),
    ];
    let (status, body) = post(&app, "/timeline/events", &json!({ "events": events }));
    assert_eq!(status, 201, "{body}");
    let (status, story) = get(&app, "/timeline/submissions/s1");
    assert_eq!(status, 200, "{story}");
    assert_eq!(story["entered"]["agent"], "agent-0");
    let reached: Vec<(&str, Option<&str>)> = story["reached"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["agent"].as_str().unwrap(), r["from"].as_str()))
        .collect();
    assert_eq!(
        reached,
        [
            ("agent-0", None),
            ("agent-1", Some("agent-0")),
            ("agent-2", Some("agent-1"))
        ]
    );
    assert_eq!(story["steps"][0]["color"], "red");
    let (_, found) = get(&app, "/timeline/query?submission=s1&type=rewrite_step");
    assert_eq!(found["count"], 1);
    let (_, health) = get(&app, "/timeline/health");
    assert_eq!(
        (health["status"].as_str(), health["written"].as_u64()),
        (Some("ok"), Some(4))
    );
}

/// A tmpfs of `size` mounted on `dir` (this needs root, as the CI machine is), unmounted on drop.
struct TinyDisk(std::path::PathBuf);

impl TinyDisk {
    fn mount(dir: &std::path::Path, size: &str) -> TinyDisk {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (the full-disk test simulates a full disk with one)"
        );
        TinyDisk(dir.to_path_buf())
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_makes_the_timeline_degraded_and_counts_what_it_lost_without_blocking_emitters() {
    let dir = tempfile::tempdir().unwrap();
    let _disk = TinyDisk::mount(dir.path(), "1m");
    let timeline = Timeline::open(Some(&dir.path().join("timeline.duckdb"))).unwrap();
    let emitter = timeline.emitter();
    emitter.emit(event(1, "agent-0", Kind::Merge { facts_new: 1 }));
    assert!(timeline.settle(Duration::from_secs(30)));
    assert_eq!(timeline.health().status, "ok");
    // 2,000 submissions of 4 KiB expressions: 8 MiB, more than the disk holds.
    let expression = "x".repeat(4096);
    for i in 0..2_000 {
        emitter.emit(event(
            2 + i,
            "agent-0",
            Kind::Submission {
                expression: expression.clone(),
            },
        ));
        if i % 100 == 0 {
            // Give the writer a turn, so that the failure is a write's, not the queue's.
            assert!(timeline.settle(Duration::from_secs(30)));
        }
    }
    assert!(
        timeline.settle(Duration::from_secs(30)),
        "the writer took everything, failing or not"
    );
    let health = timeline.health();
    assert_eq!(health.status, "degraded", "{health:?}");
    assert!(
        health.reason.as_deref().unwrap_or_default().contains("space"),
        "{health:?}"
    );
    assert!(health.dropped > 0, "{health:?}");
    assert_eq!(health.written + health.dropped, 2_001, "{health:?}");
}

fn merge_at(at_us: i64, source: &str) -> Event {
    event(at_us, source, Kind::Merge { facts_new: 1 })
}

#[test]
fn exports_carry_the_filtered_events_in_each_format() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let timeline = Timeline::open(None).unwrap();
    let events: Vec<Event> = (0..300)
        .map(|i| merge_at(1_000 + i, &format!("agent-{}", i % 3)))
        .collect();
    timeline.append_now(&events).unwrap();
    let app = router(timeline);
    let (status, all) = get(&app, "/api/timeline?agent=agent-1");
    assert_eq!(status, 200, "{all}");
    assert_eq!(all.as_array().unwrap().len(), 100);
    let (status, ndjson) = ramanujan_http::testing::send_raw(&app, "GET", "/api/timeline?format=ndjson&limit=7", "");
    assert_eq!(status, 200);
    let lines: Vec<serde_json::Value> = std::str::from_utf8(&ndjson)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7);
    assert_eq!(lines[0]["at_us"], 1_000);
    let (status, csv) = ramanujan_http::testing::send_raw(
        &app,
        "GET",
        "/api/timeline?format=csv&type=merge&since=1100&until=1110",
        "",
    );
    assert_eq!(status, 200);
    let csv = String::from_utf8(csv.to_vec()).unwrap();
    assert!(csv.starts_with("seq,at_us,source,type"), "{csv}");
    assert_eq!(csv.lines().count(), 11, "a header and ten rows: {csv}");
    let (status, parquet) =
        ramanujan_http::testing::send_raw(&app, "GET", "/api/timeline?format=parquet&agent=agent-2", "");
    assert_eq!(status, 200);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.parquet");
    std::fs::write(&file, &parquet).unwrap();
    let db = ramanujan_duckdb::duckdb::Connection::open_in_memory().unwrap();
    let (rows, sources): (u64, u64) = db
        .query_row(
            &format!(
                "SELECT count(*), count(DISTINCT source) FROM read_parquet('{}')",
                file.display()
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((rows, sources), (100, 1));
    for (path, field) in [
        ("/api/timeline?format=xml", "format"),
        ("/api/timeline?limit=100001", "limit"),
        ("/api/timeline?type=gossip", "type"),
        ("/api/timeline?since=9&until=1", "since"),
    ] {
        let (status, body) = get(&app, path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"].as_str().unwrap().contains(field), "{path}: {body}");
    }
}

#[test]
fn retention_moves_old_events_to_parquet_before_they_leave_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let retention = interaction_timeline::Retention {
        keep: Some(Duration::from_secs(3_600)),
        archive: Some(archive.clone()),
        ..Default::default()
    };
    let timeline = Timeline::open_with(Some(&dir.path().join("timeline.duckdb")), Some(retention)).unwrap();
    let now = ramanujan_events::emit::now_us();
    let old: Vec<Event> = (0..250).map(|i| merge_at(now - 7_200_000_000 + i, "agent-0")).collect();
    let recent: Vec<Event> = (0..50).map(|i| merge_at(now - 60_000_000 + i, "agent-1")).collect();
    timeline.append_now(&old).unwrap();
    timeline.append_now(&recent).unwrap();
    let (retired, file) = timeline.retain_now().unwrap();
    assert_eq!(retired, 250);
    let file = file.expect("archived");
    assert!(file.starts_with(&archive));
    let left = timeline
        .query(&Filter {
            limit: 10_000,
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(left.len(), 50);
    assert!(left.iter().all(|e| e.event.source == "agent-1"));
    let db = ramanujan_duckdb::duckdb::Connection::open_in_memory().unwrap();
    let (rows, newest): (u64, i64) = db
        .query_row(
            &format!("SELECT count(*), max(at_us) FROM read_parquet('{}')", file.display()),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((rows, newest), (250, now - 7_200_000_000 + 249));
    assert_eq!(timeline.health().retired, 250);
    assert_eq!(timeline.retain_now().unwrap(), (0, None), "nothing more is old");
}

#[test]
fn retention_by_count_keeps_the_newest_written_and_archives_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let retention = interaction_timeline::Retention {
        max_events: Some(100),
        archive: Some(archive.clone()),
        ..Default::default()
    };
    let timeline = Timeline::open_with(Some(&dir.path().join("timeline.duckdb")), Some(retention)).unwrap();
    let now = ramanujan_events::emit::now_us();
    // Written in three batches, the last with the oldest timestamps (a clock
    // behind): the count keeps what was written last, whatever its time.
    for (source, at) in [("agent-0", now), ("agent-1", now + 1_000), ("agent-2", now - 1_000_000)] {
        let batch: Vec<Event> = (0..60).map(|i| merge_at(at + i, source)).collect();
        timeline.append_now(&batch).unwrap();
    }
    assert_eq!(timeline.retain_now().unwrap().0, 80);
    let left = timeline
        .query(&Filter {
            limit: 10_000,
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(left.len(), 100);
    assert_eq!(left.iter().filter(|e| e.event.source == "agent-2").count(), 60);
    assert_eq!(left.iter().filter(|e| e.event.source == "agent-1").count(), 40);
    let files: Vec<_> = std::fs::read_dir(&archive).unwrap().collect();
    assert_eq!(files.len(), 1);
    assert_eq!(
        timeline.retain_now().unwrap(),
        (0, None),
        "at the bound, nothing leaves"
    );
    timeline.append_now(&[merge_at(now + 5, "agent-3")]).unwrap();
    assert_eq!(timeline.retain_now().unwrap().0, 1, "one past the bound, one leaves");
}

/// A batch from a broker feed is stored with the feed's position in one
/// transaction; both are found again after a reopen, per consumer.
#[test]
fn a_feed_s_batches_and_its_position_are_stored_together_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("timeline.duckdb");
    {
        let timeline = Timeline::open(Some(&path)).unwrap();
        assert_eq!(timeline.feed_position("timeline").unwrap(), None);
        timeline
            .append_fed("timeline", 7, &[merge_at(1_000, "agent-1"), merge_at(1_001, "agent-2")])
            .unwrap();
        timeline
            .append_fed("timeline", 9, &[merge_at(1_002, "agent-1")])
            .unwrap();
        timeline.append_fed("spare", 3, &[]).unwrap();
    }
    let timeline = Timeline::open(Some(&path)).unwrap();
    assert_eq!(timeline.feed_position("timeline").unwrap(), Some(9));
    assert_eq!(timeline.feed_position("spare").unwrap(), Some(3));
    let stored = timeline
        .query(&Filter {
            limit: 100,
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(stored.len(), 3);
}
