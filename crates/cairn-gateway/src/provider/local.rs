//! Models running inside Cairn, served as an ordinary provider so routing, fallback,
//! accounting, metrics and limits apply to them too. Targets name a model in the model cache
//! (`minilm`) or a path. Each model loads once, off the async runtime, and runs on its own
//! thread pool behind a dynamic batcher.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::config::LocalConfig;
use cairn_core::openai::{
    ChatCompletion, ChatRequest, Embedding, EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage,
    EmbeddingVector,
};
use cairn_models::catalog;
use cairn_models::{BatchOptions, EmbedError, Embedder, EmbedderOptions, EmbeddingService};
use tokio::sync::Mutex;

use super::{ChunkStream, Provider, ProviderError};

/// How long a client should wait before retrying when a model's queue is full.
const OVERLOADED_RETRY: Duration = Duration::from_secs(1);

/// The in-process model provider.
pub struct LocalProvider {
    models_dir: PathBuf,
    threads: usize,
    batch: BatchOptions,
    embedders: Mutex<HashMap<String, Arc<EmbeddingService>>>,
}

impl LocalProvider {
    /// A provider reading models from the configured cache.
    pub fn new(cfg: &LocalConfig) -> Self {
        let models_dir =
            if cfg.models_dir.as_os_str().is_empty() { catalog::default_models_dir() } else { cfg.models_dir.clone() };
        let threads =
            if cfg.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { cfg.threads };
        let batch = BatchOptions {
            max_batch: cfg.max_batch.max(1),
            max_wait: Duration::from_millis(cfg.max_wait_ms),
            queue: cfg.queue.max(1),
        };
        Self { models_dir, threads, batch, embedders: Mutex::new(HashMap::new()) }
    }

    /// The embedding service for `model`, loading it on first use.
    pub async fn embedder(&self, model: &str) -> Result<Arc<EmbeddingService>, ProviderError> {
        let mut loaded = self.embedders.lock().await;
        if let Some(svc) = loaded.get(model) {
            return Ok(svc.clone());
        }
        let unavailable = |message: String| ProviderError::Unavailable { message, retry_after: None };
        let dir = catalog::resolve(&self.models_dir, model).map_err(|e| unavailable(e.to_string()))?;
        let options = EmbedderOptions { threads: self.threads };
        let embedder = tokio::task::spawn_blocking(move || Embedder::load(&dir, &options))
            .await
            .map_err(|e| unavailable(format!("loading model '{model}' failed: {e}")))?
            .map_err(|e| unavailable(format!("model '{model}' cannot be loaded: {e}")))?;
        tracing::info!(model, dims = embedder.dimensions(), threads = self.threads, "embedding model loaded");
        let svc = Arc::new(EmbeddingService::start(embedder, self.batch.clone()));
        loaded.insert(model.to_owned(), svc.clone());
        Ok(svc)
    }
}

fn client_error(message: String) -> ProviderError {
    ProviderError::Status { status: 400, message, retry_after: None }
}

#[async_trait]
impl Provider for LocalProvider {
    async fn chat(&self, _: &ChatRequest, model: &str) -> Result<ChatCompletion, ProviderError> {
        Err(ProviderError::Unavailable {
            message: format!("local chat model '{model}' is not available yet"),
            retry_after: None,
        })
    }

    async fn chat_stream(&self, _: &ChatRequest, model: &str) -> Result<ChunkStream, ProviderError> {
        Err(ProviderError::Unavailable {
            message: format!("local chat model '{model}' is not available yet"),
            retry_after: None,
        })
    }

    async fn embed(&self, request: &EmbeddingRequest, model: &str) -> Result<EmbeddingResponse, ProviderError> {
        let texts = match &request.input {
            EmbeddingInput::Text(t) => vec![t.clone()],
            EmbeddingInput::Texts(t) => t.clone(),
            EmbeddingInput::Tokens(_) | EmbeddingInput::TokenBatches(_) => {
                return Err(client_error("local embedding models take text input, not token arrays".into()))
            }
        };
        let svc = self.embedder(model).await?;
        if let Some(d) = request.dimensions {
            if d as usize != svc.dimensions() {
                return Err(client_error(format!(
                    "model '{model}' produces {} dimensions and does not support shortening them",
                    svc.dimensions()
                )));
            }
        }
        let out = svc.embed(texts).await.map_err(|e| match e {
            EmbedError::Overloaded => ProviderError::Unavailable {
                message: format!("model '{model}' is busy: its queue is full"),
                retry_after: Some(OVERLOADED_RETRY),
            },
            EmbedError::Stopped => ProviderError::Unavailable { message: e.to_string(), retry_after: None },
        })?;
        let data = out
            .vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| Embedding {
                object: "embedding".into(),
                index: i as u32,
                embedding: EmbeddingVector::Float(v),
            })
            .collect();
        Ok(EmbeddingResponse {
            object: "list".into(),
            data,
            model: model.into(),
            usage: EmbeddingUsage { prompt_tokens: out.tokens, total_tokens: out.tokens },
        })
    }

    async fn warm_up(&self, model: &str) -> Result<(), ProviderError> {
        self.embedder(model).await.map(|_| ())
    }
}
