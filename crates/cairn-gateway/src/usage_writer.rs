//! The usage writer: one background task that commits usage records in batches. It commits as
//! soon as a record a client waits for arrives, taking everything queued meanwhile into the
//! same transaction (group commit), so a finished call is on disk within one transaction's
//! time. Records nobody waits for (an agent run's own model calls, cache hits, blocked calls,
//! and every journaled record) linger up to `LINGER` to share a transaction with others: they
//! would otherwise take the single writer connection just before what does wait for it (a
//! run's journal entry), or cost a transaction each. A write that fails is kept and retried
//! every `usage_flush_ms`; inserts are idempotent by call id, so a retried batch never
//! double-counts. Journaled records are released from the journal once committed.

use std::sync::Arc;
use std::time::Duration;

use cairn_core::store::Store;
use cairn_core::usage::Settlement;
use cairn_telemetry::Metrics;
use tokio::sync::{mpsc, oneshot};

use crate::accounting::Urgency;
use crate::journal::{Segment, UsageJournal};

/// Records kept in memory at most while storage is failing; older ones are dropped (logged).
const MAX_BUFFER: usize = 100_000;
/// Records per transaction.
const BATCH: usize = 1_000;
/// How long a record nobody waits for may wait for company before it is written.
const LINGER: Duration = Duration::from_millis(20);

/// What the writer is handed.
pub(crate) enum Msg {
    /// A record to settle, how urgent it is, and who learns when its transaction ended.
    Record(Box<Settlement>, Urgency, oneshot::Sender<()>),
    /// A record already durable in the journal: it lingers, and its entry is released once
    /// it is committed.
    Journaled(Box<Settlement>, Segment),
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// The writer's two queues. What a caller waits for (an awaited record, a flush) wakes it at
/// once; what nobody waits for (lingering and journaled records) wakes it only when it is idle,
/// so a steady stream of them costs a wake-up or two per `LINGER`, not one per record.
pub(crate) struct Queues {
    /// Awaited records and flushes.
    pub urgent: mpsc::UnboundedReceiver<Msg>,
    /// Records nobody waits for.
    pub lazy: mpsc::UnboundedReceiver<Msg>,
}

impl Queues {
    /// Takes what is already queued on both into the batch (on closing, all of it).
    fn drain(&mut self, mut batch: Batch, buf: &mut Buffer, waiting: &mut Vec<oneshot::Sender<()>>) -> Batch {
        for rx in [&mut self.urgent, &mut self.lazy] {
            while batch == Batch::Closed || buf.records.len() < BATCH {
                match rx.try_recv() {
                    Ok(msg) => batch = batch.take(Some(msg), buf, waiting),
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        batch = Batch::Closed;
                        break;
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                }
            }
        }
        batch
    }
}

/// Commits what the queues hand it until every sender is gone.
pub(crate) async fn writer(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    mut queues: Queues,
    every: Duration,
    journal: Option<Arc<UsageJournal>>,
) {
    let mut buf = Buffer::default();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut retry = tokio::time::interval(every);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut batch = Batch::Open { urgent: false };
        tokio::select! {
            biased;
            msg = queues.urgent.recv() => batch = batch.take(msg, &mut buf, &mut waiting),
            msg = queues.lazy.recv() => batch = batch.take(msg, &mut buf, &mut waiting),
            _ = retry.tick(), if !buf.records.is_empty() => {}
        };
        // Everything that queued up while the last transaction ran joins this one; records
        // nobody waits for also wait up to `LINGER` for more (only a waited-for one cuts that
        // short).
        let linger_until = tokio::time::Instant::now() + LINGER;
        loop {
            batch = queues.drain(batch, &mut buf, &mut waiting);
            let Batch::Open { urgent: false } = batch else { break };
            if buf.records.is_empty() || buf.records.len() >= BATCH {
                break;
            }
            tokio::select! {
                msg = queues.urgent.recv() => batch = batch.take(msg, &mut buf, &mut waiting),
                _ = tokio::time::sleep_until(linger_until) => {
                    batch = queues.drain(batch, &mut buf, &mut waiting);
                    break;
                }
            }
        }
        write(&*store, &metrics, &mut buf, journal.as_deref()).await;
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
        if batch == Batch::Closed {
            return;
        }
    }
}

/// The batch the writer is gathering.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Batch {
    /// Taking more; `urgent` once something in it is awaited (then it takes only what queued).
    Open { urgent: bool },
    /// Every sender is gone: write what is held and what is still queued, then stop.
    Closed,
}

impl Batch {
    /// Adds one message to the batch (`None`: the queue closed).
    fn take(self, msg: Option<Msg>, buf: &mut Buffer, waiting: &mut Vec<oneshot::Sender<()>>) -> Batch {
        match msg {
            Some(Msg::Record(r, urgency, done)) => {
                buf.push(*r, None);
                waiting.push(done);
                self.urgent_if(urgency == Urgency::Awaited)
            }
            Some(Msg::Journaled(r, segment)) => {
                buf.push(*r, Some(segment));
                self
            }
            Some(Msg::Flush(done)) => {
                waiting.push(done);
                self.urgent_if(true)
            }
            None => Batch::Closed,
        }
    }

    /// The batch, urgent now if `now` is.
    fn urgent_if(self, now: bool) -> Batch {
        match self {
            Batch::Open { urgent } => Batch::Open { urgent: urgent || now },
            Batch::Closed => Batch::Closed,
        }
    }
}

/// Records waiting for their transaction, and which journal file holds each (if one does).
#[derive(Default)]
struct Buffer {
    records: Vec<Settlement>,
    journaled: Vec<Option<Segment>>,
}

impl Buffer {
    /// Queues a record.
    fn push(&mut self, record: Settlement, journaled: Option<Segment>) {
        self.records.push(record);
        self.journaled.push(journaled);
    }

    /// Takes the first `n` records out; returns how many of them each journal file holds.
    fn drain(&mut self, n: usize) -> [u64; 2] {
        self.records.drain(..n);
        let mut counts = [0; 2];
        for segment in self.journaled.drain(..n).flatten() {
            counts[segment.index()] += 1;
        }
        counts
    }
}

async fn write(store: &dyn Store, metrics: &Metrics, buf: &mut Buffer, journal: Option<&UsageJournal>) {
    while !buf.records.is_empty() {
        let n = buf.records.len().min(BATCH);
        match store.insert_usage(&buf.records[..n]).await {
            Ok(()) => {
                let journaled = buf.drain(n);
                if let Some(journal) = journal {
                    journal.committed(journaled);
                }
            }
            Err(e) => {
                metrics.usage_write_failures.inc();
                tracing::error!(error = %e, pending = buf.records.len(), "writing usage records failed; will retry");
                if buf.records.len() > MAX_BUFFER {
                    let excess = buf.records.len() - MAX_BUFFER;
                    // Journaled ones stay in the journal (never released): the next start
                    // replays them.
                    buf.drain(excess);
                    tracing::error!(dropped = excess, "usage buffer full; oldest records dropped");
                }
                return;
            }
        }
    }
}
