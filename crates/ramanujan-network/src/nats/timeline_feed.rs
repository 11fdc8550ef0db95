//! The agents' interaction events from the broker to a timeline: a durable
//! consumer of `timeline.events` that hands each batch to the timeline's
//! writer and acknowledges it only once written, so a timeline that stops
//! (or is killed) takes up again where it was: nothing it acknowledged is
//! lost, and a batch it wrote but had not acknowledged may come twice.

use super::broker;
use async_nats::jetstream::{self, AckKind};
use futures_util::{FutureExt, StreamExt};
use ramanujan_events::Event;
use std::sync::Arc;
use std::time::Duration;

/// Writes a batch of events durably (a timeline's `append_now`).
pub type WriteEvents = Arc<dyn Fn(Vec<Event>) -> Result<(), String> + Send + Sync>;

/// Feeds `write` from the durable consumer `consumer` of the broker at `url`
/// until `shutdown` resolves.
pub async fn feed_timeline(
    url: &str,
    consumer: &str,
    write: WriteEvents,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let client = broker::connect(url, &format!("timeline-{consumer}")).await?;
    let js = jetstream::new(client);
    let mut messages = broker::timeline_events(&js, consumer).await;
    let mut shutdown = std::pin::pin!(shutdown);
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
        for message in batch {
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
        let writer = write.clone();
        let written = tokio::task::spawn_blocking(move || writer(events))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        match written {
            Ok(()) => {
                for message in taken {
                    if let Err(e) = message.ack().await {
                        tracing::debug!(error = %e, "timeline ack failed; the batch will come again");
                    }
                }
            }
            Err(e) => {
                // Not acknowledged: the broker delivers it again after its ack wait.
                tracing::warn!(error = %e, "the timeline could not write a batch from the broker; it will come again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
