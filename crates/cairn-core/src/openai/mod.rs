//! OpenAI API wire types. Known fields are typed and validated; unknown fields are kept in
//! `extra` and passed through to OpenAI-compatible upstreams, so new OpenAI parameters work
//! without a Cairn release.

pub mod chat;
pub mod embeddings;
pub mod error;
pub mod models;
pub mod served;

pub use chat::*;
pub use embeddings::*;
pub use error::*;
pub use models::*;
pub use served::*;

/// Extra JSON fields carried through untouched.
pub type Extra = serde_json::Map<String, serde_json::Value>;
