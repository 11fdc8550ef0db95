//! A bounded pool for CPU-heavy jobs on tokio's blocking threads.

use ramanujan_http::offload::{Job, Offload};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

/// Runs at most `workers` jobs at once; refuses new jobs while `queue` are running or waiting.
pub struct BlockingPool {
    handle: Handle,
    running: Arc<Semaphore>,
    in_flight: Arc<AtomicUsize>,
    queue: usize,
}

impl BlockingPool {
    /// A pool on the current tokio runtime.
    pub fn new(workers: usize, queue: usize) -> Self {
        BlockingPool {
            handle: Handle::current(),
            running: Arc::new(Semaphore::new(workers.max(1))),
            in_flight: Arc::new(AtomicUsize::new(0)),
            queue: queue.max(1),
        }
    }
}

impl Offload for BlockingPool {
    fn spawn(&self, job: Job) -> Result<(), String> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(format!(
                "busy: {} saturations are running or waiting; try again later",
                self.queue
            ));
        }
        let running = self.running.clone();
        let in_flight = self.in_flight.clone();
        self.handle.spawn(async move {
            if let Ok(_permit) = running.acquire_owned().await {
                // A panicking job drops its answer channel; the handler reports that.
                let _ = tokio::task::spawn_blocking(job).await;
            }
            in_flight.fetch_sub(1, Ordering::AcqRel);
        });
        Ok(())
    }
}
