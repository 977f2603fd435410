//! Group commit for enqueues: jobs from concurrent callers that arrive while a write is in
//! progress are written together in the next transaction. Under load this turns many one-job
//! transactions into a few large ones; at light load a lone enqueue is written at once, so it
//! adds no wait. Each caller's jobs stay all-or-nothing (they share one transaction), and the
//! idempotency keys behave as if the callers had come one after another.

use std::sync::Arc;

use cairn_core::jobs::{Job, NewJob};
use cairn_core::store::{Store, StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};

/// Most jobs written in one combined transaction.
const MAX_COMBINED: usize = 2000;

type Reply = oneshot::Sender<StoreResult<Vec<(Job, bool)>>>;

/// A handle to the combining writer task; the task ends when the handle is dropped.
pub(crate) struct Combiner {
    tx: mpsc::Sender<(Vec<NewJob>, Reply)>,
}

impl Combiner {
    /// Starts the writer task over `store`.
    pub(crate) fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(write_loop(store, rx));
        Self { tx }
    }

    /// Stores `jobs` (in a transaction shared with other callers' jobs).
    pub(crate) async fn enqueue(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<(Job, bool)>> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((jobs, reply)).await.map_err(|_| StoreError::Backend("the enqueue writer has stopped".into()))?;
        rx.await.map_err(|_| StoreError::Backend("the enqueue writer has stopped".into()))?
    }
}

async fn write_loop(store: Arc<dyn Store>, mut rx: mpsc::Receiver<(Vec<NewJob>, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        let mut total = group[0].0.len();
        while total < MAX_COMBINED {
            match rx.try_recv() {
                Ok(next) => {
                    total += next.0.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        if group.len() == 1 {
            let (jobs, reply) = group.remove(0);
            let _ = reply.send(store.enqueue_jobs(&jobs).await);
            continue;
        }
        let all: Vec<NewJob> = group.iter().flat_map(|(jobs, _)| jobs.iter().cloned()).collect();
        match store.enqueue_jobs(&all).await {
            Ok(mut out) => {
                // Hand each caller back its own slice, in order.
                for (jobs, reply) in group {
                    let rest = out.split_off(jobs.len().min(out.len()));
                    let _ = reply.send(Ok(std::mem::replace(&mut out, rest)));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for (_, reply) in group {
                    let _ = reply.send(Err(StoreError::Backend(message.clone())));
                }
            }
        }
    }
}
