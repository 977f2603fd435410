//! The model ports the knowledge layer (and later agents) call through: an embedder and a
//! chat model, named like any gateway model. The gateway implements both (see its `adapters`
//! module), so every model call made for a caller passes its limits and is charged to it, and
//! no service depends on how models are reached.

use std::sync::Arc;

use async_trait::async_trait;

use crate::openai::{ChatCompletion, ChatRequest, ChatStream, Routed};
use crate::{CallContext, Result};

/// Why texts could not be embedded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmbedFailure {
    /// Worth retrying later (upstream down, overloaded, rate-limited).
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help (input refused, a malformed answer).
    #[error("{0}")]
    Permanent(String),
    /// No model of that name is configured.
    #[error("{0}")]
    UnknownModel(String),
    /// The caller's key is over a rate limit or its budget: the caller's own limits apply to
    /// the model calls made for it.
    #[error("{message}")]
    Limited {
        /// Which limit.
        message: String,
        /// When to try again.
        retry_after: std::time::Duration,
        /// True for the budget, false for a rate limit.
        budget: bool,
    },
}

/// Embeds texts with a named model on behalf of a caller, who is charged for it.
#[async_trait]
pub trait TextEmbedder: Send + Sync {
    /// One vector per text, in order.
    async fn embed(&self, ctx: &CallContext, model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedFailure>;

    /// `model`'s tokenizer, for chunk budgets. The default estimates (`estimate_tokens`); an
    /// adapter that can reach the model's own tokenizer returns that.
    async fn tokenizer(&self, _model: &str) -> Tokenizer {
        Arc::new(estimate_tokens)
    }
}

/// Counts the tokens of a text.
pub type Tokenizer = Arc<dyn Fn(&str) -> usize + Send + Sync>;

/// Four tokens per three words: close for English word-piece and BPE tokenizers, for models
/// whose tokenizer is not at hand (remote ones).
pub fn estimate_tokens(text: &str) -> usize {
    (text.split_whitespace().count() * 4).div_ceil(3)
}

/// Runs chat completions on behalf of a caller.
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// A whole completion.
    async fn complete(&self, ctx: &CallContext, req: ChatRequest) -> Result<(ChatCompletion, Routed)>;

    /// A streamed completion; returns once the first chunk arrived.
    async fn stream(&self, ctx: &CallContext, req: ChatRequest) -> Result<(ChatStream, Routed)>;

    /// Whether chat model `model` can call tools; `ModelNotFound` for unknown names.
    fn supports_tools(&self, model: &str) -> Result<bool>;

    /// Waits until the usage records of every call made so far are written (streams that
    /// hold no client connection end before theirs are).
    async fn flush_usage(&self) {}

    /// What a call to `model` served as `routed` costs with these token counts, in US dollars,
    /// at the serving target's configured prices (0 when unknown).
    fn cost(&self, model: &str, routed: &Routed, input_tokens: u64, output_tokens: u64) -> f64 {
        let _ = (model, routed, input_tokens, output_tokens);
        0.0
    }
}
