//! Live news of the runs this process steps: a model's text as it streams (not journaled:
//! a reader who reconnects gets the journal, which holds the whole output), a nudge each time
//! a journal grows, and the cancellation of runs being stepped here. Readers on other nodes
//! see the journal by polling storage; the nudges only make this node's readers prompt.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// What happened to a run.
#[derive(Clone, Debug, PartialEq)]
pub enum RunNews {
    /// Model text streamed in (its step is journaled when the call ends).
    Delta(String),
    /// The journal grew to this many entries.
    Appended(u64),
}

/// One piece of news, for one run.
#[derive(Clone, Debug)]
pub struct RunEvent {
    /// The run.
    pub run_id: Arc<str>,
    /// What happened.
    pub news: RunNews,
}

/// The hub: one broadcast channel for every run, and the cancel switches of running ones.
#[derive(Clone)]
pub struct RunHub {
    tx: broadcast::Sender<RunEvent>,
    running: Arc<Mutex<HashMap<String, CancellationToken>>>,
}

impl Default for RunHub {
    fn default() -> Self {
        Self { tx: broadcast::channel(4096).0, running: Arc::default() }
    }
}

impl RunHub {
    /// Tells readers of `run_id`.
    pub fn publish(&self, run_id: &str, news: RunNews) {
        // No receiver is fine: nobody is watching.
        let _ = self.tx.send(RunEvent { run_id: run_id.into(), news });
    }

    /// Every run's news from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.tx.subscribe()
    }

    /// Registers run `run_id` as stepped here: `cancel` stops its model and tool calls. The
    /// guard unregisters it.
    pub fn running(&self, run_id: &str, cancel: CancellationToken) -> RunningGuard {
        self.running.lock().insert(run_id.to_owned(), cancel);
        RunningGuard { hub: self.clone(), run_id: run_id.to_owned() }
    }

    /// Stops run `run_id` if this process steps it.
    pub fn cancel(&self, run_id: &str) {
        if let Some(token) = self.running.lock().get(run_id) {
            token.cancel();
        }
    }
}

/// Unregisters a running run when dropped.
pub struct RunningGuard {
    hub: RunHub,
    run_id: String,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.hub.running.lock().remove(&self.run_id);
    }
}
