//! Adapts the gateway to the knowledge layer's `TextEmbedder` port, so ingestion and search
//! embed through the same routing, retries, fallbacks and accounting as `/v1/embeddings`. The
//! calls are made for the collection's tenant by a system principal (`system:knowledge`), which
//! is how they show in usage records.

use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::openai::{EmbeddingInput, EmbeddingRequest, EmbeddingVector};
use cairn_core::tenancy::{KeyLimits, Principal, Role};
use cairn_core::Error;
use cairn_gateway::GatewayService;
use cairn_knowledge::embed::{estimate_tokens, EmbedFailure, TextEmbedder, Tokenizer};

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

    async fn embed(&self, tenant_id: &str, model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedFailure> {
        let principal = Principal {
            key_id: "system:knowledge".into(),
            tenant_id: tenant_id.into(),
            role: Role::Member,
            limits: KeyLimits::default(),
        };
        let req = EmbeddingRequest {
            model: model.into(),
            input: EmbeddingInput::Texts(texts.to_vec()),
            encoding_format: None,
            dimensions: None,
            user: None,
            extra: Default::default(),
        };
        let request_id = format!("req_{}", uuid::Uuid::now_v7().simple());
        match self.0.embeddings(&principal, req, &request_id).await {
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
            Err(e @ (Error::ModelNotFound(_) | Error::InvalidRequest { .. } | Error::UpstreamRejected { .. })) => {
                Err(EmbedFailure::Permanent(e.to_string()))
            }
            Err(e) => Err(EmbedFailure::Transient(e.to_string())),
        }
    }
}
