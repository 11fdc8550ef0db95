//! The agents' interaction events from the broker to a timeline: a durable
//! consumer of `timeline.events` that hands each batch to the timeline's
//! writer and acknowledges it only once written, so a timeline that stops
//! (or is killed) takes up again where it was: nothing it acknowledged is
//! lost. Each batch is written with the broker sequence it reached, in one
//! transaction, so a batch written but not acknowledged before a crash is
//! recognised when the broker delivers it again, and acknowledged without
//! being written twice. Batches are written in the broker's order: a batch
//! that cannot be written is retried before anything after it.

use super::broker;
use async_nats::jetstream::{self, AckKind};
use futures_util::{FutureExt, StreamExt};
use ramanujan_events::Event;
use std::sync::Arc;
use std::time::Duration;

/// Where the feed writes: a timeline that keeps, with the events, how far
/// each feed got.
pub trait FeedSink: Send + Sync + 'static {
    /// The last broker sequence `consumer` wrote (`None`: never wrote).
    fn position(&self, consumer: &str) -> Result<Option<u64>, String>;
    /// Writes `events` and records `through` as `consumer`'s position, both
    /// or neither, durably once this returns `Ok`.
    fn write(&self, consumer: &str, through: u64, events: &[Event]) -> Result<(), String>;
}

/// Feeds `sink` from the durable consumer `consumer` of the broker at `url`
/// until `shutdown` resolves.
pub async fn feed_timeline(
    url: &str,
    consumer: &str,
    sink: Arc<dyn FeedSink>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let client = broker::connect(url, &format!("timeline-{consumer}")).await?;
    let js = jetstream::new(client);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut position = loop {
        let (reader, name) = (sink.clone(), consumer.to_string());
        match tokio::task::spawn_blocking(move || reader.position(&name)).await {
            Ok(Ok(position)) => break position.unwrap_or(0),
            Ok(Err(e)) => tracing::warn!(error = %e, "the timeline's feed position could not be read; retrying"),
            Err(e) => tracing::warn!(error = %e, "reading the timeline's feed position failed; retrying"),
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    };
    let mut messages = broker::timeline_events(&js, consumer).await;
    loop {
        let first = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            next = messages.next() => next,
        };
        let first = match first {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "timeline feed hiccup");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            None => {
                messages = broker::timeline_events(&js, consumer).await;
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < 256 {
            match messages.next().now_or_never() {
                Some(Some(Ok(message))) => batch.push(message),
                _ => break,
            }
        }
        let mut events = Vec::new();
        let mut taken = Vec::new();
        let mut through = position;
        for message in batch {
            let Ok(seq) = message.info().map(|info| info.stream_sequence) else {
                tracing::warn!("a timeline message without its broker sequence; dropped");
                let _ = message.ack_with(AckKind::Term).await;
                continue;
            };
            if seq <= position {
                // Written before a crash (or an ack that was lost): already stored.
                let _ = message.ack().await;
                continue;
            }
            through = through.max(seq);
            match broker::decode_events_message(message.headers.as_ref(), &message.payload) {
                Ok(batch) => {
                    events.extend(batch);
                    taken.push(message);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a malformed timeline message; dropped");
                    let _ = message.ack_with(AckKind::Term).await;
                }
            }
        }
        if taken.is_empty() {
            continue;
        }
        // Written before anything later is taken; retried until it is (or
        // the host stops). Meanwhile the broker may deliver the batch again:
        // once written, those copies are at or below the position.
        let events = Arc::new(events);
        loop {
            let (writer, name, batch) = (sink.clone(), consumer.to_string(), events.clone());
            let written = tokio::task::spawn_blocking(move || writer.write(&name, through, &batch))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
            match written {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "the timeline could not write a batch from the broker; retrying");
                    tokio::select! {
                        _ = &mut shutdown => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
        position = through;
        for message in taken {
            if let Err(e) = message.ack().await {
                tracing::debug!(error = %e, "timeline ack failed; the batch will come again and be skipped");
            }
        }
    }
}
