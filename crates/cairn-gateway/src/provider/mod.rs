//! Upstream providers, each a module behind the `Provider` trait. A provider speaks one wire
//! protocol and always returns OpenAI-shaped types; the router never sees protocol details.

mod anthropic;
mod anthropic_stream;
mod grammar;
mod http;
mod local;
mod local_chat;
mod local_tools;
mod openai;
mod tiktoken;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::config::{ProviderConfig, ProviderKind};
use cairn_core::openai::{ChatChunk, ChatCompletion, ChatRequest, EmbeddingRequest, EmbeddingResponse};
use futures::Stream;

pub use anthropic::AnthropicProvider;
pub(crate) use http::TRACEPARENT;
pub use local::LocalProvider;
pub use openai::OpenAiProvider;

/// A stream of OpenAI-shaped chunks from an upstream. The last item may carry only usage.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, ProviderError>> + Send>>;

/// Why an upstream call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The TCP/TLS connection could not be made, or broke before a response.
    #[error("connection failed: {0}")]
    Connect(String),
    /// A deadline passed (`connect`, `first_token` or `total`).
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The upstream answered with an error status.
    #[error("upstream returned {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The upstream's error message.
        message: String,
        /// The upstream's `retry-after`, if sent.
        retry_after: Option<Duration>,
    },
    /// The upstream answered with something that is not the protocol (bad JSON, cut stream).
    #[error("malformed upstream response: {0}")]
    Protocol(String),
    /// The target cannot serve now (model not installed, queue full): try the next target;
    /// neither retried nor counted against the breaker.
    #[error("{message}")]
    Unavailable {
        /// Why, and what fixes it.
        message: String,
        /// When to try again, if it is a matter of time.
        retry_after: Option<Duration>,
    },
    /// The provider cannot do this (e.g. embeddings on Anthropic).
    #[error("{0}")]
    Unsupported(String),
}

impl ProviderError {
    /// Worth retrying on the same target: connect errors, timeouts, 408, 429, 5xx, bad JSON.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Connect(_) | ProviderError::Timeout(_) | ProviderError::Protocol(_) => true,
            ProviderError::Status { status, .. } => matches!(status, 408 | 409 | 429) || *status >= 500,
            ProviderError::Unsupported(_) | ProviderError::Unavailable { .. } => false,
        }
    }

    /// The client's fault (the request itself is bad): returned as is, never retried elsewhere.
    pub fn is_client_error(&self) -> bool {
        matches!(self, ProviderError::Status { status: 400 | 413 | 422, .. })
    }

    /// A short label for the `upstream_errors` metric.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Connect(_) => "connect",
            ProviderError::Timeout(_) => "timeout",
            ProviderError::Status { status: 429, .. } => "status_429",
            ProviderError::Status { status, .. } if *status >= 500 => "status_5xx",
            ProviderError::Status { .. } => "status_4xx",
            ProviderError::Protocol(_) => "protocol",
            ProviderError::Unsupported(_) => "unsupported",
            ProviderError::Unavailable { .. } => "unavailable",
        }
    }

    /// The `retry-after` the upstream asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. } | ProviderError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Counts the tokens of a text in a model's own tokenizer.
pub type TokenCount = std::sync::Arc<dyn Fn(&str) -> usize + Send + Sync>;

/// One upstream LLM API.
#[async_trait]
pub trait Provider: Send + Sync {
    /// A non-streaming chat completion with `model` as the upstream model.
    async fn chat(&self, request: &ChatRequest, model: &str) -> Result<ChatCompletion, ProviderError>;

    /// Starts a streaming chat completion; returns once the upstream accepted the request.
    /// The stream always ends with a usage-only chunk when the upstream reports usage.
    async fn chat_stream(&self, request: &ChatRequest, model: &str) -> Result<ChunkStream, ProviderError>;

    /// Embeds the inputs (always as floats; the service re-encodes for the client).
    async fn embed(&self, request: &EmbeddingRequest, model: &str) -> Result<EmbeddingResponse, ProviderError>;

    /// Prepares `model` ahead of the first request (in-process models load here); remote
    /// providers have nothing to do.
    async fn warm_up(&self, _model: &str) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Whether `model` can call tools (every provider's API can; the operator can say a model
    /// cannot with `targets[].tools = false`).
    fn supports_tools(&self, _model: &str) -> bool {
        true
    }

    /// The tokenizer of `model`, when this provider has it at hand (in-process embedding
    /// models; OpenAI's models, whose tokenizers are public); otherwise callers estimate.
    async fn token_count(&self, _model: &str) -> Option<TokenCount> {
        None
    }
}

/// Builds the provider for a config entry, with its connect timeout. Local providers share
/// one instance (`local`), so each in-process model loads once.
pub fn build(
    name: &str,
    cfg: &ProviderConfig,
    connect_timeout: Duration,
    local: &Arc<LocalProvider>,
) -> Result<Arc<dyn Provider>, String> {
    Ok(match cfg.kind {
        ProviderKind::Openai => Arc::new(OpenAiProvider::new(http::client(name, cfg, connect_timeout)?, &cfg.base_url)),
        ProviderKind::Anthropic => {
            Arc::new(AnthropicProvider::new(http::client(name, cfg, connect_timeout)?, &cfg.base_url))
        }
        ProviderKind::Local => local.clone(),
    })
}
