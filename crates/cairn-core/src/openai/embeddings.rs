//! `POST /v1/embeddings` request and response types.

use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Extra;

/// An embeddings request.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingRequest {
    /// Model name.
    #[schema(min_length = 1, pattern = "[^\\s\\u0085]")]
    pub model: String,
    /// Text(s) or token array(s) to embed.
    pub input: EmbeddingInput,
    /// `float` (default) or `base64` (little-endian f32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<EncodingFormat>,
    /// Output dimensions, for models that support shortening.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub dimensions: Option<u32>,
    /// End-user id, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Other fields, passed through.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Extra,
}

impl EmbeddingRequest {
    /// A request for `input` from `model`, every option at its default (floats, full width).
    pub fn new(model: impl Into<String>, input: EmbeddingInput) -> Self {
        Self {
            model: model.into(),
            input,
            encoding_format: None,
            dimensions: None,
            user: None,
            extra: Extra::default(),
        }
    }
}

/// What to embed: one string, several, or pre-tokenised input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    Text(String),
    /// Several texts.
    Texts(Vec<String>),
    /// One token array.
    Tokens(Vec<u32>),
    /// Several token arrays.
    TokenBatches(Vec<Vec<u32>>),
}

impl EmbeddingInput {
    /// Number of inputs (each becomes one embedding).
    pub fn len(&self) -> usize {
        match self {
            EmbeddingInput::Text(_) | EmbeddingInput::Tokens(_) => 1,
            EmbeddingInput::Texts(v) => v.len(),
            EmbeddingInput::TokenBatches(v) => v.len(),
        }
    }

    /// True when there is nothing to embed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A rough token count (about four characters a token) for limits and estimates.
    pub fn estimated_tokens(&self) -> u64 {
        match self {
            EmbeddingInput::Text(s) => estimate_tokens(s),
            EmbeddingInput::Texts(v) => v.iter().map(|s| estimate_tokens(s)).sum(),
            EmbeddingInput::Tokens(t) => t.len() as u64,
            EmbeddingInput::TokenBatches(v) => v.iter().map(|t| t.len() as u64).sum(),
        }
    }
}

impl EmbeddingInput {
    /// An upper bound on the input's tokens (a byte each for text, plus the model's two
    /// framing tokens per input), for budget reservations.
    pub fn token_bound(&self) -> u64 {
        match self {
            EmbeddingInput::Text(s) => s.len() as u64 + 2,
            EmbeddingInput::Texts(v) => v.iter().map(|s| s.len() as u64 + 2).sum(),
            EmbeddingInput::Tokens(t) => t.len() as u64,
            EmbeddingInput::TokenBatches(v) => v.iter().map(|t| t.len() as u64).sum(),
        }
    }
}

/// Estimates a token count from text length: about four characters a token, at least one.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

/// How embedding vectors are encoded in the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// JSON array of floats.
    Float,
    /// Base64 of little-endian f32 bytes.
    Base64,
}

/// An embeddings response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingResponse {
    /// Always `list`.
    pub object: String,
    /// One entry per input, in input order.
    pub data: Vec<Embedding>,
    /// Model that produced the vectors.
    #[schema(min_length = 1, pattern = "[^\\s\\u0085]")]
    pub model: String,
    /// Token usage.
    pub usage: EmbeddingUsage,
}

/// One embedding.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Embedding {
    /// Always `embedding`.
    pub object: String,
    /// Position of the input.
    pub index: u32,
    /// The vector.
    pub embedding: EmbeddingVector,
}

/// A vector as floats or base64.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingVector {
    /// Floats.
    Float(Vec<f32>),
    /// Base64 of little-endian f32 bytes.
    Base64(String),
}

impl EmbeddingVector {
    /// Re-encodes as base64 (little-endian f32), the format the official SDKs request.
    pub fn into_base64(self) -> EmbeddingVector {
        match self {
            EmbeddingVector::Float(v) => {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            b => b,
        }
    }
}

/// Token usage of an embeddings call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingUsage {
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Same as `prompt_tokens`.
    pub total_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_shapes() {
        let one: EmbeddingInput = serde_json::from_str(r#""hi""#).unwrap();
        let many: EmbeddingInput = serde_json::from_str(r#"["a","b"]"#).unwrap();
        let toks: EmbeddingInput = serde_json::from_str(r#"[1,2,3]"#).unwrap();
        assert_eq!((one.len(), many.len(), toks.len()), (1, 2, 1));
        assert!(serde_json::from_str::<EmbeddingInput>("42").is_err());
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let EmbeddingVector::Base64(b) = EmbeddingVector::Float(vec![1.0, -2.5]).into_base64() else { panic!() };
        let bytes = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
        assert_eq!(f32::from_le_bytes(bytes[4..8].try_into().unwrap()), -2.5);
    }
}
