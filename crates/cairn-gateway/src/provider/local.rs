//! Models running inside Cairn, served as an ordinary provider so routing, fallback,
//! accounting, metrics and limits apply to them too. Targets name a model in the model cache
//! (`minilm`, `smollm2`) or a path: a sentence-transformers folder for embeddings, a GGUF file
//! (or a folder holding one) for chat. Each model loads once, off the async runtime, and runs
//! on its own threads: embeddings behind a dynamic batcher, chat behind a bounded queue.

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
use cairn_llama::{ChatEngine, EngineOptions};
use cairn_models::catalog;
use cairn_models::{BatchOptions, EmbedError, Embedder, EmbedderOptions, EmbeddingService};
use tokio::sync::Mutex;

use super::local_chat;
use super::{ChunkStream, Provider, ProviderError, TokenCount};

/// How long a client should wait before retrying when a model's queue is full.
const OVERLOADED_RETRY: Duration = Duration::from_secs(1);

/// The in-process model provider.
pub struct LocalProvider {
    models_dir: PathBuf,
    threads: usize,
    batch: BatchOptions,
    chat_context: u32,
    embedders: Mutex<HashMap<String, Arc<EmbeddingService>>>,
    chats: Mutex<HashMap<String, Arc<ChatEngine>>>,
}

impl LocalProvider {
    /// A provider reading models from the configured cache.
    pub fn new(cfg: &LocalConfig) -> Self {
        let models_dir = crate::models_dir(cfg);
        let threads =
            if cfg.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { cfg.threads };
        let batch = BatchOptions {
            max_batch: cfg.max_batch.max(1),
            max_wait: Duration::from_millis(cfg.max_wait_ms),
            queue: cfg.queue.max(1),
        };
        Self {
            models_dir,
            threads,
            batch,
            chat_context: cfg.chat_context,
            embedders: Mutex::new(HashMap::new()),
            chats: Mutex::new(HashMap::new()),
        }
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

impl LocalProvider {
    /// The chat engine for `model`, loading it on first use.
    pub async fn chat_engine(&self, model: &str) -> Result<Arc<ChatEngine>, ProviderError> {
        let mut loaded = self.chats.lock().await;
        if let Some(engine) = loaded.get(model) {
            return Ok(engine.clone());
        }
        let unavailable = |message: String| ProviderError::Unavailable { message, retry_after: None };
        let found = catalog::resolve(&self.models_dir, model).map_err(|e| unavailable(e.to_string()))?;
        let file = gguf_file(&found).ok_or_else(|| unavailable(format!("no .gguf file in {}", found.display())))?;
        let options = EngineOptions { threads: self.threads, context: self.chat_context, queue: self.batch.queue };
        let engine = tokio::task::spawn_blocking(move || ChatEngine::load(&file, options))
            .await
            .map_err(|e| unavailable(format!("loading model '{model}' failed: {e}")))?
            .map_err(|e| unavailable(format!("model '{model}' cannot be loaded: {e}")))?;
        tracing::info!(model, context = engine.context(), threads = self.threads, "chat model loaded");
        let engine = Arc::new(engine);
        loaded.insert(model.to_owned(), engine.clone());
        Ok(engine)
    }
}

/// The GGUF file a chat model reference points at: the file itself, or the one in a folder.
fn gguf_file(path: &std::path::Path) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path.to_path_buf());
    }
    let preferred = path.join("model.gguf");
    if preferred.is_file() {
        return Some(preferred);
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "gguf"))
}

/// Whether a reference is a chat model (GGUF) rather than an embedding model folder.
fn is_chat_model(path: &std::path::Path) -> bool {
    !path.join("config.json").is_file() && gguf_file(path).is_some()
}

fn client_error(message: String) -> ProviderError {
    ProviderError::Status { status: 400, message, retry_after: None }
}

#[async_trait]
impl Provider for LocalProvider {
    async fn chat(&self, request: &ChatRequest, model: &str) -> Result<ChatCompletion, ProviderError> {
        let (job, tools) = local_chat::to_engine(request)?;
        let engine = self.chat_engine(model).await?;
        let events = engine.generate(job).map_err(local_chat::engine_error)?;
        local_chat::complete(events, model, tools).await
    }

    async fn chat_stream(&self, request: &ChatRequest, model: &str) -> Result<ChunkStream, ProviderError> {
        let (job, tools) = local_chat::to_engine(request)?;
        let engine = self.chat_engine(model).await?;
        let events = engine.generate(job).map_err(local_chat::engine_error)?;
        Ok(local_chat::stream(events, model, tools))
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

    fn supports_tools(&self, _model: &str) -> bool {
        // Calls are described in the prompt and, when required, grammar-constrained.
        true
    }

    async fn token_count(&self, model: &str) -> Option<TokenCount> {
        // Asked at every stream's start: a loaded chat model answers without touching the disk.
        if self.chats.lock().await.contains_key(model) {
            return None;
        }
        let path = catalog::resolve(&self.models_dir, model).ok()?;
        if is_chat_model(&path) {
            return None;
        }
        let svc = self.embedder(model).await.ok()?;
        Some(Arc::new(move |text: &str| svc.count_tokens(text)))
    }

    async fn warm_up(&self, model: &str) -> Result<(), ProviderError> {
        match catalog::resolve(&self.models_dir, model) {
            Ok(path) if is_chat_model(&path) => self.chat_engine(model).await.map(|_| ()),
            Ok(_) => self.embedder(model).await.map(|_| ()),
            Err(e) => Err(ProviderError::Unavailable { message: e.to_string(), retry_after: None }),
        }
    }
}
