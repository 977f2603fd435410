//! Group commit for run journals: appends of concurrent runs that arrive while a write is in
//! progress go into the next transaction together. Many runs stepping at once (their models
//! answer at the same moment) then cost a few transactions instead of one each; a lone append
//! is written at once and waits for nothing. Each append keeps its own compare-and-set.

use std::sync::Arc;

use cairn_core::runs::{Append, RunStore};
use cairn_core::store::{StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};

/// Most appends written in one transaction.
const MAX_GROUP: usize = 512;

type Request = (Append, oneshot::Sender<StoreResult<bool>>);

/// A handle to the journal writer task; the task ends when every handle is dropped.
#[derive(Clone)]
pub struct JournalWriter {
    tx: mpsc::Sender<Request>,
}

impl JournalWriter {
    /// Starts the writer task over `runs` (within a Tokio runtime).
    pub fn start(runs: Arc<dyn RunStore>) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(write_loop(runs, rx));
        Self { tx }
    }

    /// Appends `append` (see `RunStore::append_many`); whether it went in.
    pub async fn append(&self, append: Append) -> StoreResult<bool> {
        let stopped = || StoreError::Backend("the journal writer has stopped".into());
        let (reply, rx) = oneshot::channel();
        self.tx.send((append, reply)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

async fn write_loop(runs: Arc<dyn RunStore>, mut rx: mpsc::Receiver<Request>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let (appends, replies): (Vec<Append>, Vec<_>) = group.into_iter().unzip();
        match runs.append_many(&appends).await {
            Ok(done) => {
                for (reply, ok) in replies.into_iter().zip(done) {
                    let _ = reply.send(Ok(ok));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Backend(message.clone())));
                }
            }
        }
    }
}
