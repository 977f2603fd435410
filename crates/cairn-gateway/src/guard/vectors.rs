//! The injection classifier's word vectors: an in-process embedding model's word-piece table
//! (`cairn_models::WordVectors`) behind the guard crate's `TextVectors` port.

use std::path::Path;

use cairn_guard::TextVectors;
use cairn_models::{catalog, WordVectors};

/// Word vectors of a local embedding model.
pub struct StaticVectors(WordVectors);

impl StaticVectors {
    /// Loads the vectors of `reference` (a model in `models_dir`, or a folder path).
    pub fn load(models_dir: &Path, reference: &str) -> Result<Self, String> {
        let dir = catalog::resolve(models_dir, reference).map_err(|e| e.to_string())?;
        WordVectors::load(&dir).map(Self).map_err(|e| e.to_string())
    }
}

impl TextVectors for StaticVectors {
    fn dimensions(&self) -> usize {
        self.0.dimensions()
    }

    fn mean(&self, text: &str) -> Vec<f32> {
        self.0.mean(text)
    }
}
