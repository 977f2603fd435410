//! Static word vectors: an embedding model's input word-piece table, averaged over a text.
//! No encoder runs, so a text costs microseconds rather than milliseconds; what it loses in
//! context it keeps in vocabulary, which is what a fast classifier over it (the injection
//! guard's) needs.

use std::path::Path;
use std::sync::Arc;

use crate::{read, ModelError, WordPiece};

/// Longest text read, in word pieces (the rest of a longer text is ignored).
const MAX_PIECES: usize = 512;

/// A model's word-piece vectors and tokenizer.
pub struct WordVectors {
    tokenizer: Arc<WordPiece>,
    table: Vec<f32>,
    dims: usize,
}

impl WordVectors {
    /// Loads `tokenizer.json` and the word embeddings of `model.safetensors` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let tokenizer = WordPiece::from_json(&read(&dir.join("tokenizer.json"))?)?;
        let (table, dims) = crate::bert::word_embeddings(dir)?;
        Ok(Self { tokenizer: Arc::new(tokenizer), table, dims })
    }

    /// Width of a vector.
    pub fn dimensions(&self) -> usize {
        self.dims
    }

    /// The mean of `text`'s word-piece vectors, L2-normalised (zeros for a text with none).
    pub fn mean(&self, text: &str) -> Vec<f32> {
        let ids = self.tokenizer.encode(text, MAX_PIECES + 2);
        let mut out = vec![0.0f32; self.dims];
        // Without [CLS] and [SEP], which every text has and so tell nothing apart.
        let pieces = ids.get(1..ids.len().saturating_sub(1)).unwrap_or_default();
        for &id in pieces {
            if let Some(row) = self.table.get(id as usize * self.dims..(id as usize + 1) * self.dims) {
                for (o, v) in out.iter_mut().zip(row) {
                    *o += v;
                }
            }
        }
        let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            out.iter_mut().for_each(|v| *v /= norm);
        }
        out
    }
}
