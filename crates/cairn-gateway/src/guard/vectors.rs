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

/// The word vectors the guards and the cost router share, loaded on first use (a key may turn
/// screening on at any time); `None` when they cannot be loaded (logged once), and then the
/// other features decide.
#[derive(Clone)]
pub(crate) struct SharedVectors(std::sync::Arc<Lazy>);

struct Lazy {
    cell: tokio::sync::OnceCell<Option<std::sync::Arc<StaticVectors>>>,
    models_dir: std::path::PathBuf,
    model: String,
}

impl SharedVectors {
    /// Vectors of `model` (in `models_dir`, or a path), not loaded yet.
    pub fn new(models_dir: std::path::PathBuf, model: String) -> Self {
        Self(std::sync::Arc::new(Lazy { cell: tokio::sync::OnceCell::new(), models_dir, model }))
    }

    /// The vectors, loading them the first time.
    pub async fn get(&self) -> Option<std::sync::Arc<StaticVectors>> {
        let lazy = &self.0;
        lazy.cell
            .get_or_init(|| async {
                let (dir, name) = (lazy.models_dir.clone(), lazy.model.clone());
                match tokio::task::spawn_blocking(move || StaticVectors::load(&dir, &name)).await {
                    Ok(Ok(v)) => Some(std::sync::Arc::new(v)),
                    Ok(Err(e)) => {
                        tracing::error!(model = %lazy.model, error = %e, "guards and routing run without word vectors");
                        None
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "loading word vectors failed");
                        None
                    }
                }
            })
            .await
            .clone()
    }
}
