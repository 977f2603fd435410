//! The gateway behind the core's model ports (`cairn_core::models`): knowledge ingestion,
//! search and RAG answers embed and generate through the same pipeline as `/v1/embeddings`
//! and `/v1/chat/completions`, on the caller's key (its limits, its budget, its usage).

use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::models::{estimate_tokens, ChatModel, EmbedFailure, TextEmbedder, Tokenizer};
use cairn_core::openai::{
    ChatCompletion, ChatRequest, ChatStream, EmbeddingInput, EmbeddingRequest, EmbeddingVector, Routed,
};
use cairn_core::{CallContext, Error, Result};
use tokio_util::sync::CancellationToken;

use crate::GatewayService;

/// The gateway as a `TextEmbedder`.
pub struct GatewayEmbedder(pub Arc<GatewayService>);

#[async_trait]
impl TextEmbedder for GatewayEmbedder {
    async fn tokenizer(&self, model: &str) -> Tokenizer {
        match self.0.token_count(model).await {
            Some(count) => count,
            None => Arc::new(estimate_tokens),
        }
    }

    async fn embed(&self, ctx: &CallContext, model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedFailure> {
        let req = EmbeddingRequest::new(model, EmbeddingInput::Texts(texts.to_vec()));
        match self.0.embeddings(ctx, req).await {
            Ok((mut resp, _)) => {
                resp.data.sort_by_key(|e| e.index);
                resp.data
                    .into_iter()
                    .map(|e| match e.embedding {
                        EmbeddingVector::Float(v) => Ok(v),
                        EmbeddingVector::Base64(_) => {
                            Err(EmbedFailure::Permanent("the model answered in base64".into()))
                        }
                    })
                    .collect()
            }
            Err(Error::RateLimited { message, retry_after }) => {
                Err(EmbedFailure::Limited { message, retry_after, budget: false })
            }
            Err(Error::BudgetExceeded { message, retry_after }) => {
                Err(EmbedFailure::Limited { message, retry_after, budget: true })
            }
            Err(e @ Error::ModelNotFound(_)) => Err(EmbedFailure::UnknownModel(e.to_string())),
            Err(e @ (Error::InvalidRequest { .. } | Error::UpstreamRejected { .. } | Error::Forbidden(_))) => {
                Err(EmbedFailure::Permanent(e.to_string()))
            }
            Err(e) => Err(EmbedFailure::Transient(e.to_string())),
        }
    }
}

/// The gateway as a `ChatModel`.
pub struct GatewayChat {
    /// The gateway.
    pub gateway: Arc<GatewayService>,
    /// Cancelled at shutdown: open streams end.
    pub shutdown: CancellationToken,
}

#[async_trait]
impl ChatModel for GatewayChat {
    async fn complete(&self, ctx: &CallContext, req: ChatRequest) -> Result<(ChatCompletion, Routed)> {
        self.gateway.chat(ctx, req).await
    }

    async fn stream(&self, ctx: &CallContext, req: ChatRequest) -> Result<(ChatStream, Routed)> {
        self.gateway.chat_stream(ctx, req, self.shutdown.clone()).await
    }

    fn supports_tools(&self, model: &str) -> Result<bool> {
        self.gateway.supports_tools(model)
    }

    async fn flush_usage(&self) {
        self.gateway.flush_usage().await
    }

    fn cost(&self, model: &str, routed: &Routed, input_tokens: u64, output_tokens: u64) -> f64 {
        self.gateway.cost(model, routed, input_tokens, output_tokens)
    }
}
