//! Dynamic batching for the embedding model: requests from many callers are queued to one
//! batcher thread, which gathers them for up to `max_wait` (or until `max_batch` texts; with no
//! wait, whatever queued while the last pass ran), runs
//! them as one packed forward pass on the model's own thread pool, and hands each caller its
//! vectors. The queue is bounded: when full, callers get `Overloaded` at once. A caller that
//! goes away before its turn is skipped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::embedder::Embedder;
use crate::wordpiece::WordPiece;

/// Batching limits.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    /// Most texts in one forward pass.
    pub max_batch: usize,
    /// Longest a first request waits for company.
    pub max_wait: Duration,
    /// Most requests waiting; more are refused with `Overloaded`.
    pub queue: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self { max_batch: 32, max_wait: Duration::ZERO, queue: 1024 }
    }
}

/// Why an embedding request was not served.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The queue is full; try again shortly.
    #[error("the embedding queue is full")]
    Overloaded,
    /// The batcher has stopped.
    #[error("the embedding model has stopped")]
    Stopped,
}

/// Vectors for one request, with the tokens they cost.
pub struct Embedded {
    /// One vector per input, in order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens processed, special tokens included.
    pub tokens: u64,
}

struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Embedded>,
}

/// Counters, for metrics and tests.
#[derive(Default, Debug)]
pub struct BatchStats {
    /// Forward passes run.
    pub batches: AtomicU64,
    /// Texts embedded.
    pub texts: AtomicU64,
    /// Requests skipped because their caller had gone.
    pub skipped: AtomicU64,
}

/// An embedding model behind a dynamic batcher. Cheap to share (`Arc`).
pub struct EmbeddingService {
    tx: SyncSender<Job>,
    dimensions: usize,
    max_tokens: usize,
    tokenizer: Arc<WordPiece>,
    /// Counters.
    pub stats: Arc<BatchStats>,
}

impl EmbeddingService {
    /// Starts the batcher thread for `embedder`.
    pub fn start(embedder: Embedder, options: BatchOptions) -> Self {
        let (tx, rx) = sync_channel::<Job>(options.queue.max(1));
        let stats = Arc::new(BatchStats::default());
        let (dimensions, max_tokens, tokenizer) = (embedder.dimensions(), embedder.max_tokens(), embedder.tokenizer());
        let thread_stats = stats.clone();
        let spawned = std::thread::Builder::new().name("cairn-embed-batcher".into()).spawn(move || {
            let max_batch = options.max_batch.max(1);
            while let Ok(first) = rx.recv() {
                let mut jobs = vec![first];
                let mut count = jobs[0].texts.len();
                let deadline = Instant::now() + options.max_wait;
                while count < max_batch {
                    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                        Ok(job) => {
                            count += job.texts.len();
                            jobs.push(job);
                        }
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
                run(&embedder, jobs, max_batch, &thread_stats);
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the embedding batcher thread");
        }
        Self { tx, dimensions, max_tokens, tokenizer, stats }
    }

    /// Output width.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// Tokens of `text` in this model's tokenizer (no special tokens, no truncation).
    pub fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer.count(text)
    }

    /// Input window in tokens.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Embeds `texts`, batched with whatever else is waiting.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Embedded, EmbedError> {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Job { texts, reply }) {
            Ok(()) => rx.await.map_err(|_| EmbedError::Stopped),
            Err(TrySendError::Full(_)) => Err(EmbedError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(EmbedError::Stopped),
        }
    }
}

/// Runs gathered jobs in forward passes of at most `max_batch` texts, skipping callers that
/// have gone away, and replies to each job.
fn run(embedder: &Embedder, jobs: Vec<Job>, max_batch: usize, stats: &BatchStats) {
    let (live, gone): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| !j.reply.is_closed());
    stats.skipped.fetch_add(gone.len() as u64, Ordering::Relaxed);
    let seqs: Vec<Vec<u32>> = live.iter().flat_map(|j| j.texts.iter().map(|t| embedder.tokenize(t))).collect();
    let mut vectors = Vec::with_capacity(seqs.len());
    for chunk in seqs.chunks(max_batch) {
        vectors.extend(embedder.embed_tokens(chunk));
        stats.batches.fetch_add(1, Ordering::Relaxed);
    }
    stats.texts.fetch_add(seqs.len() as u64, Ordering::Relaxed);
    let mut vectors = vectors.into_iter();
    let mut seq_lens = seqs.iter().map(Vec::len);
    for job in live {
        let n = job.texts.len();
        let tokens = seq_lens.by_ref().take(n).map(|l| l as u64).sum();
        let _ = job.reply.send(Embedded { vectors: vectors.by_ref().take(n).collect(), tokens });
    }
}
