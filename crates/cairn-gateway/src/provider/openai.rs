//! Any OpenAI-compatible HTTP server (OpenAI, vLLM, Ollama, llama.cpp server, ...). Requests
//! pass through with the upstream model name swapped in and unknown fields kept; streams always
//! ask for usage so that Cairn can account them, whatever the client asked for.

use async_trait::async_trait;
use cairn_core::openai::{
    ChatChunk, ChatCompletion, ChatRequest, EmbeddingRequest, EmbeddingResponse, EncodingFormat, StreamOptions,
};
use futures::StreamExt;

use super::http::{json, send};
use super::{ChunkStream, Provider, ProviderError};
use crate::sse;

/// A provider speaking the OpenAI API.
pub struct OpenAiProvider {
    client: reqwest::Client,
    chat_url: String,
    embeddings_url: String,
}

impl OpenAiProvider {
    /// A provider at `base_url` (e.g. `https://api.openai.com/v1`).
    pub fn new(client: reqwest::Client, base_url: &str) -> Self {
        let base = base_url.trim_end_matches('/');
        Self { client, chat_url: format!("{base}/chat/completions"), embeddings_url: format!("{base}/embeddings") }
    }
}

#[async_trait]
impl Provider for OpenAiProvider {
    async fn chat(&self, request: &ChatRequest, model: &str) -> Result<ChatCompletion, ProviderError> {
        let body = ChatRequest { model: model.into(), stream: None, stream_options: None, ..request.clone() };
        let resp = send(self.client.post(&self.chat_url).json(&body)).await?;
        json(resp).await
    }

    async fn token_count(&self, model: &str) -> Option<super::TokenCount> {
        super::tiktoken::counter(model)
    }

    async fn chat_stream(&self, request: &ChatRequest, model: &str) -> Result<ChunkStream, ProviderError> {
        let body = ChatRequest {
            model: model.into(),
            stream: Some(true),
            stream_options: Some(StreamOptions { include_usage: true }),
            ..request.clone()
        };
        let resp = send(self.client.post(&self.chat_url).json(&body)).await?;
        let events = Box::pin(sse::decode(resp.bytes_stream().map(|r| r.map_err(reqwest::Error::without_url))));
        // A stream that ends without `[DONE]` was cut: say so instead of ending quietly.
        let chunks = futures::stream::unfold((events, false), |(mut events, over)| async move {
            if over {
                return None;
            }
            loop {
                return match events.next().await {
                    None => Some((Err(ProviderError::Protocol("stream ended before [DONE]".into())), (events, true))),
                    Some(Err(e)) => Some((Err(e), (events, true))),
                    Some(Ok(ev)) if ev.data.trim() == "[DONE]" => None,
                    Some(Ok(ev)) if ev.data.trim().is_empty() => continue,
                    Some(Ok(ev)) => Some((parse_chunk(&ev.data), (events, false))),
                };
            }
        });
        Ok(Box::pin(chunks))
    }

    async fn embed(&self, request: &EmbeddingRequest, model: &str) -> Result<EmbeddingResponse, ProviderError> {
        let body =
            EmbeddingRequest { model: model.into(), encoding_format: Some(EncodingFormat::Float), ..request.clone() };
        let resp = send(self.client.post(&self.embeddings_url).json(&body)).await?;
        json(resp).await
    }
}

/// Parses one `data:` payload; an in-stream `{"error":...}` becomes a `Status` error.
fn parse_chunk(data: &str) -> Result<ChatChunk, ProviderError> {
    let value: serde_json::Value =
        serde_json::from_str(data).map_err(|e| ProviderError::Protocol(format!("invalid JSON in stream: {e}")))?;
    if let Some(err) = value.get("error") {
        let message = err.get("message").and_then(|m| m.as_str()).unwrap_or("upstream error in stream");
        return Err(ProviderError::Status { status: 502, message: message.into(), retry_after: None });
    }
    serde_json::from_value(value).map_err(|e| ProviderError::Protocol(format!("unexpected chunk shape: {e}")))
}
