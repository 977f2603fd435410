//! A sentence-transformers embedding model: tokenizer + BERT encoder + pooling (+ L2 norm),
//! configured from the model folder's own files (`sentence_bert_config.json` for the window,
//! `1_Pooling/config.json` for mean or CLS pooling, `modules.json` for normalisation).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::bert::Bert;
use crate::wordpiece::WordPiece;
use crate::{read, ModelError};

/// How an embedder runs.
#[derive(Clone, Debug)]
pub struct EmbedderOptions {
    /// Threads of the embedder's own pool (never the async runtime's).
    pub threads: usize,
}

impl Default for EmbedderOptions {
    fn default() -> Self {
        Self { threads: std::thread::available_parallelism().map_or(1, |n| n.get()) }
    }
}

#[derive(Deserialize, Default)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize, Default)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
}

#[derive(Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
}

/// A loaded embedding model.
pub struct Embedder {
    tokenizer: Arc<WordPiece>,
    bert: Bert,
    pool: rayon::ThreadPool,
    threads: usize,
    max_len: usize,
    cls_pooling: bool,
    normalize: bool,
    dir: PathBuf,
}

impl Embedder {
    /// Loads the model in `dir` (a sentence-transformers folder with `config.json`,
    /// `tokenizer.json` and `model.safetensors`).
    pub fn load(dir: &Path, options: &EmbedderOptions) -> Result<Self, ModelError> {
        if !dir.is_dir() {
            return Err(ModelError::Io { path: dir.display().to_string(), message: "not a directory".into() });
        }
        let tokenizer = WordPiece::from_json(&read(&dir.join("tokenizer.json"))?)?;
        let bert = Bert::load(dir)?;
        let optional = |name: &str| read(&dir.join(name)).ok();
        let st: SentenceBertConfig =
            optional("sentence_bert_config.json").and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        let pooling: PoolingConfig =
            optional("1_Pooling/config.json").and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        let modules: Vec<Module> =
            optional("modules.json").and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        let max_len = st.max_seq_length.unwrap_or(512).min(bert.config.max_position_embeddings);
        let threads = options.threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("cairn-embed-{i}"))
            .build()
            .map_err(|e| ModelError::Invalid(format!("cannot start the embedding thread pool: {e}")))?;
        Ok(Self {
            tokenizer: Arc::new(tokenizer),
            bert,
            pool,
            threads,
            max_len,
            cls_pooling: pooling.pooling_mode_cls_token,
            normalize: modules.iter().any(|m| m.kind.ends_with("Normalize")),
            dir: dir.to_path_buf(),
        })
    }

    /// Output width.
    pub fn dimensions(&self) -> usize {
        self.bert.config.hidden_size
    }

    /// Longest input, in tokens, before truncation.
    pub fn max_tokens(&self) -> usize {
        self.max_len
    }

    /// Where the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The model's tokenizer, to count tokens without the model.
    pub fn tokenizer(&self) -> Arc<WordPiece> {
        self.tokenizer.clone()
    }

    /// Token ids of `text` as the model sees it (truncated to the window).
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text, self.max_len)
    }

    /// Embeds a batch of texts; blocks the calling thread while the pool computes.
    pub fn embed(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        let seqs: Vec<Vec<u32>> = texts.iter().map(|t| self.tokenize(t)).collect();
        self.embed_tokens(&seqs)
    }

    /// Embeds pre-tokenised sequences (ids must be below the vocabulary size).
    pub fn embed_tokens(&self, seqs: &[Vec<u32>]) -> Vec<Vec<f32>> {
        if seqs.is_empty() {
            return Vec::new();
        }
        let h = self.dimensions();
        let hidden = self.pool.install(|| self.bert.forward(seqs, self.threads));
        let mut out = Vec::with_capacity(seqs.len());
        let mut row = 0;
        for seq in seqs {
            let rows = &hidden[row * h..(row + seq.len()) * h];
            let mut v = if self.cls_pooling {
                rows[..h].to_vec()
            } else {
                let mut acc = vec![0.0f32; h];
                for r in rows.chunks_exact(h) {
                    for (a, x) in acc.iter_mut().zip(r) {
                        *a += x;
                    }
                }
                let n = seq.len().max(1) as f32;
                acc.iter_mut().for_each(|a| *a /= n);
                acc
            };
            if self.normalize {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
            }
            out.push(v);
            row += seq.len();
        }
        out
    }
}
