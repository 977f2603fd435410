//! Models that run inside Cairn: a BERT sentence-embedding engine (WordPiece tokenizer and
//! encoder, on its own thread pool). Everything loads from local files; nothing is fetched.

#![warn(missing_docs)]

mod batcher;
mod bert;
pub mod catalog;
mod embedder;
mod ops;
mod word_vectors;
mod wordpiece;

use std::path::Path;

pub use batcher::{BatchOptions, BatchStats, EmbedError, Embedded, EmbeddingService};
pub use bert::{Bert, BertConfig};
pub use embedder::{Embedder, EmbedderOptions};
pub use word_vectors::WordVectors;
pub use wordpiece::WordPiece;

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file is missing or unreadable.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The model is not in the cache (the hint says how to get it).
    #[error("model '{model}' is not available: {hint}")]
    Missing {
        /// The name or path asked for.
        model: String,
        /// What to do about it.
        hint: String,
    },
    /// A file is present but not a model Cairn can load.
    #[error("invalid model: {0}")]
    Invalid(String),
}

impl ModelError {
    pub(crate) fn io(path: &Path, e: std::io::Error) -> Self {
        ModelError::Io { path: path.display().to_string(), message: e.to_string() }
    }
}

/// Reads a text file, mapping errors to `ModelError::Io`.
pub(crate) fn read(path: &Path) -> Result<String, ModelError> {
    std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))
}
