//! The timeline's feed from a real broker into a real DuckDB timeline file:
//! a feed that dies after writing a batch and before acknowledging it (the
//! worst moment) is followed by one on the same durable consumer, and every
//! event is in the timeline exactly once, even after the broker has
//! delivered the unacknowledged batch again.

use interaction_timeline::{Filter, Timeline};
use ramanujan_events::{Event, Kind};
use ramanujan_network::nats::broker::{self, ACK_WAIT};
use ramanujan_network::nats::{FeedSink, LocalBroker, feed_timeline};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The timeline as the feed's sink; the first write can be made to "crash"
/// after it is stored: it reports, then hangs until released, so its feed is
/// stopped with the batch written and not acknowledged.
struct Sink {
    timeline: Arc<Timeline>,
    crash_after_write: AtomicBool,
    written: Mutex<Option<mpsc::Sender<()>>>,
    release: Mutex<Option<mpsc::Receiver<()>>>,
}

impl FeedSink for Sink {
    fn position(&self, consumer: &str) -> Result<Option<u64>, String> {
        self.timeline.feed_position(consumer).map_err(|e| e.to_string())
    }

    fn write(&self, consumer: &str, through: u64, events: &[Event]) -> Result<(), String> {
        self.timeline
            .append_fed(consumer, through, events)
            .map_err(|e| e.to_string())?;
        if self.crash_after_write.swap(false, Ordering::SeqCst) {
            if let Some(written) = self.written.lock().unwrap().take() {
                let _ = written.send(());
            }
            if let Some(release) = self.release.lock().unwrap().take() {
                let _ = release.recv_timeout(Duration::from_secs(120));
            }
            return Err("crashed".into());
        }
        Ok(())
    }
}

fn stored(timeline: &Timeline) -> usize {
    timeline
        .query(&Filter {
            source: Some("feed-test".into()),
            limit: 10_000,
            ..Filter::default()
        })
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_killed_between_writing_and_acknowledging_writes_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let server = LocalBroker::start(dir.path()).expect("nats-server runs (.ci/run installs it)");
    let url = server.url();
    let timeline = Timeline::open(Some(&dir.path().join("timeline.duckdb"))).unwrap();
    let js = async_nats::jetstream::new(broker::connect(&url, "feed-test").await.unwrap());
    broker::ensure_timeline_stream(&js).await.unwrap();
    // 30 messages of 20 events each.
    let event = |i: u64| {
        let mut e = Event::from_component(
            "feed-test",
            Kind::Saturation {
                duration_us: i,
                cached: false,
            },
        );
        e.at_us = 1_000_000 + i as i64;
        e
    };
    for m in 0..30u64 {
        broker::publish_events(&js, (0..20).map(|i| event(m * 20 + i)).collect()).await;
    }
    let total = 600;

    let (written_tx, written_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let crashing = Arc::new(Sink {
        timeline: timeline.clone(),
        crash_after_write: AtomicBool::new(true),
        written: Mutex::new(Some(written_tx)),
        release: Mutex::new(Some(release_rx)),
    });
    let first = tokio::spawn({
        let (url, sink) = (url.clone(), crashing.clone());
        async move { feed_timeline(&url, "timeline", sink, std::future::pending()).await }
    });
    tokio::task::spawn_blocking(move || written_rx.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("the first feed writes a batch");
    first.abort();
    let _ = first.await;
    let _ = release_tx.send(());
    let written_by_first = stored(&timeline);
    assert!(written_by_first > 0, "the crashed feed's batch is stored");

    let honest = Arc::new(Sink {
        timeline: timeline.clone(),
        crash_after_write: AtomicBool::new(false),
        written: Mutex::new(None),
        release: Mutex::new(None),
    });
    let second = tokio::spawn({
        let url = url.clone();
        async move { feed_timeline(&url, "timeline", honest, std::future::pending()).await }
    });
    let started = Instant::now();
    while stored(&timeline) < total {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} of {total} events",
            stored(&timeline)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The crashed feed's batch comes again once its ack wait has passed; it
    // must be acknowledged, not written again.
    tokio::time::sleep(ACK_WAIT + Duration::from_secs(2)).await;
    assert_eq!(
        stored(&timeline),
        total,
        "every event exactly once ({written_by_first} were written by the feed that died)"
    );
    second.abort();
}
