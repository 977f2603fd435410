//! The port the knowledge layer embeds through: a collection names a gateway model, and the
//! composition root adapts the gateway (routing, retries, accounting) to this trait, so this
//! crate never depends on how models are reached.

use std::sync::Arc;

use async_trait::async_trait;

/// Why texts could not be embedded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmbedFailure {
    /// Worth retrying later (upstream down, overloaded, rate-limited).
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help (unknown model, input refused).
    #[error("{0}")]
    Permanent(String),
}

/// Embeds texts with a named model on behalf of a tenant.
#[async_trait]
pub trait TextEmbedder: Send + Sync {
    /// One vector per text, in order.
    async fn embed(&self, tenant_id: &str, model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedFailure>;

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
