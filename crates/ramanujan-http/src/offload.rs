//! Running CPU-heavy work (saturation) off the request path.
//!
//! The native host runs jobs on a bounded blocking pool, so a long saturation
//! never stalls `/health`; on Spin, where a request owns its instance, jobs run
//! inline. Handlers only see this trait.

use crate::error::ApiError;
use std::sync::Arc;

/// A job to run.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Where jobs run.
pub trait Offload: Send + Sync + 'static {
    /// Starts `job`, or answers why not (the pool is full).
    fn spawn(&self, job: Job) -> Result<(), String>;
}

/// Runs each job immediately on the calling thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inline;

impl Offload for Inline {
    fn spawn(&self, job: Job) -> Result<(), String> {
        job();
        Ok(())
    }
}

/// Runs `work` through `offload` and awaits its result; a full pool is a 503.
pub async fn run<T: Send + 'static>(
    offload: &Arc<dyn Offload>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let (tx, rx) = futures_channel::oneshot::channel();
    offload
        .spawn(Box::new(move || {
            let _ = tx.send(work());
        }))
        .map_err(ApiError::unavailable)?;
    rx.await.map_err(|_| ApiError {
        status: http::StatusCode::INTERNAL_SERVER_ERROR,
        message: "the job stopped without an answer".into(),
    })
}
