//! In-process notifications about jobs: which job changed (so watchers re-read it at once
//! instead of waiting for their next poll), which job must stop (so a local worker cancels it
//! without waiting for its next lease renewal), and which job types have new work (so idle
//! workers claim at once). Other processes see the same changes through storage, by polling.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{broadcast, Notify};

/// A change worth telling listeners about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobEvent {
    /// The job's state or progress changed.
    Changed(String),
    /// Someone asked to cancel the job.
    CancelRequested(String),
}

/// The process's job event bus and per-type wake-ups; cheap to clone. Changes and
/// cancellations travel apart, so the workers' cancellation listener is not woken per job.
#[derive(Clone)]
pub struct EventHub {
    changes: broadcast::Sender<JobEvent>,
    cancels: broadcast::Sender<JobEvent>,
    wake: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new()
    }
}

impl EventHub {
    /// An empty hub.
    pub fn new() -> Self {
        // Lagging receivers only lose hints: watchers also poll storage.
        Self { changes: broadcast::channel(1024).0, cancels: broadcast::channel(256).0, wake: Arc::default() }
    }

    /// Tells watchers that `job_id` changed.
    pub fn changed(&self, job_id: &str) {
        // Nothing to build when nobody watches (the common case under load).
        if self.changes.receiver_count() > 0 {
            let _ = self.changes.send(JobEvent::Changed(job_id.to_owned()));
        }
    }

    /// Tells local workers to stop `job_id`.
    pub fn cancel_requested(&self, job_id: &str) {
        let _ = self.cancels.send(JobEvent::CancelRequested(job_id.to_owned()));
    }

    /// Subscribes to job changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.changes.subscribe()
    }

    /// Subscribes to cancellation requests from now on.
    pub fn subscribe_cancels(&self) -> broadcast::Receiver<JobEvent> {
        self.cancels.subscribe()
    }

    /// The wake-up for idle workers of one job type.
    pub fn waker(&self, kind: &str) -> Arc<Notify> {
        self.wake.lock().entry(kind.to_owned()).or_default().clone()
    }

    /// Wakes idle workers of `kind`: jobs of that type became due.
    pub fn wake(&self, kind: &str) {
        // notify_one keeps a permit when nobody waits, so a wake-up is never lost.
        self.waker(kind).notify_one();
    }
}
