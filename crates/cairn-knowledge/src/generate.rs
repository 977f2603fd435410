//! The port RAG answers generate through: a chat model named like any gateway model. The
//! composition root adapts the gateway to it, so answers get the same routing, fallbacks,
//! budgets and accounting as `/v1/chat/completions`, charged to the caller's key.

use async_trait::async_trait;
use cairn_core::openai::{ChatCompletion, ChatRequest, ChatStream, Routed};
use cairn_core::tenancy::Principal;
use cairn_core::Result;

/// Runs chat completions on behalf of a caller.
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// A whole completion.
    async fn complete(
        &self,
        caller: &Principal,
        req: ChatRequest,
        request_id: &str,
    ) -> Result<(ChatCompletion, Routed)>;

    /// A streamed completion; returns once the first chunk arrived.
    async fn stream(&self, caller: &Principal, req: ChatRequest, request_id: &str) -> Result<(ChatStream, Routed)>;
}
