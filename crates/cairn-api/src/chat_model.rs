//! Adapts the gateway to the knowledge layer's `ChatModel` port: RAG answers are generated
//! through the same routing, fallbacks, budgets and accounting as `/v1/chat/completions`, on
//! the caller's own key, and streams end cleanly on server shutdown like any other.

use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::openai::{ChatCompletion, ChatRequest, ChatStream, Routed};
use cairn_core::tenancy::Principal;
use cairn_core::Result;
use cairn_gateway::GatewayService;
use cairn_knowledge::generate::ChatModel;
use tokio_util::sync::CancellationToken;

/// The gateway as a `ChatModel`.
pub struct GatewayChat {
    /// The gateway.
    pub gateway: Arc<GatewayService>,
    /// Cancelled at shutdown: open streams end.
    pub shutdown: CancellationToken,
}

#[async_trait]
impl ChatModel for GatewayChat {
    async fn complete(
        &self,
        caller: &Principal,
        req: ChatRequest,
        request_id: &str,
    ) -> Result<(ChatCompletion, Routed)> {
        self.gateway.chat(caller, req, request_id).await
    }

    async fn stream(&self, caller: &Principal, req: ChatRequest, request_id: &str) -> Result<(ChatStream, Routed)> {
        self.gateway.chat_stream(caller, req, request_id, self.shutdown.clone()).await
    }
}
