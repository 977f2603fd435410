//! The embedding port, owned by the core (`cairn_core::models`): re-exported here, where the
//! knowledge layer has always named it.

pub use cairn_core::models::{estimate_tokens, EmbedFailure, TextEmbedder, Tokenizer};
