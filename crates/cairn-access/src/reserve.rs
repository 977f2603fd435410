//! Group commit for budget reservations: reservations from concurrent calls that arrive while a
//! batch is being decided go into the next transaction together. At light load a lone
//! reservation is written at once, so it adds no wait; under load many calls share one
//! transaction instead of queueing for the database one by one. Each reservation is still
//! decided in order against everything held before it, so the budget holds exactly.

use std::sync::Arc;

use cairn_core::store::{Store, StoreError, StoreResult};
use cairn_core::usage::{Reservation, ReserveOutcome};
use tokio::sync::{mpsc, oneshot};

/// Most reservations decided in one transaction.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<StoreResult<ReserveOutcome>>;

/// A handle to the reserving task; the task ends when the handle is dropped.
pub(crate) struct Reserver {
    tx: mpsc::Sender<(Reservation, Reply)>,
}

impl Reserver {
    /// Starts the task over `store` (call within a Tokio runtime).
    pub(crate) fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(reserve_loop(store, rx));
        Self { tx }
    }

    /// Decides `r` (in a transaction shared with other calls' reservations).
    pub(crate) async fn reserve(&self, r: Reservation) -> StoreResult<ReserveOutcome> {
        let stopped = || StoreError::Backend("the reservation writer has stopped".into());
        let (reply, rx) = oneshot::channel();
        self.tx.send((r, reply)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

async fn reserve_loop(store: Arc<dyn Store>, mut rx: mpsc::Receiver<(Reservation, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let (batch, replies): (Vec<Reservation>, Vec<Reply>) = group.into_iter().unzip();
        match store.reserve_budgets(&batch).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
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
