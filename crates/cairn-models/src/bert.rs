//! A BERT encoder (the sentence-transformers family: MiniLM, MPNet-style BERT, BGE, E5 ...)
//! loaded from `config.json` + `model.safetensors`. Sequences are packed end to end without
//! padding: the per-token layers (projections, LayerNorm, GELU) run once over every real token,
//! and only attention looks at sequence boundaries, so a batch costs no wasted work.

use std::path::Path;

use gemm::Parallelism;
use rayon::prelude::*;
use serde::Deserialize;

use crate::ops;
use crate::ModelError;

/// The parts of `config.json` the encoder needs.
#[derive(Clone, Debug, Deserialize)]
pub struct BertConfig {
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Longest sequence the position table covers.
    pub max_position_embeddings: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f32,
    /// Activation; only `gelu` is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Architecture family.
    #[serde(default)]
    pub model_type: String,
}

fn default_eps() -> f32 {
    1e-12
}

fn default_act() -> String {
    "gelu".into()
}

struct Layer {
    qkv_w: Vec<f32>,
    qkv_b: Vec<f32>,
    attn_out_w: Vec<f32>,
    attn_out_b: Vec<f32>,
    ln1_g: Vec<f32>,
    ln1_b: Vec<f32>,
    inter_w: Vec<f32>,
    inter_b: Vec<f32>,
    out_w: Vec<f32>,
    out_b: Vec<f32>,
    ln2_g: Vec<f32>,
    ln2_b: Vec<f32>,
}

/// A loaded BERT encoder.
pub struct Bert {
    /// Its configuration.
    pub config: BertConfig,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    emb_ln_g: Vec<f32>,
    emb_ln_b: Vec<f32>,
    layers: Vec<Layer>,
}

/// Reads tensors by name from a safetensors file, accepting an optional `bert.` prefix and
/// converting F16/BF16 to F32.
struct Weights<'a> {
    st: safetensors::SafeTensors<'a>,
}

impl Weights<'_> {
    fn get(&self, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
        let view = self
            .st
            .tensor(name)
            .or_else(|_| self.st.tensor(&format!("bert.{name}")))
            .map_err(|_| ModelError::Invalid(format!("model.safetensors lacks tensor {name}")))?;
        let data = view.data();
        let out: Vec<f32> = match view.dtype() {
            safetensors::Dtype::F32 => {
                data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
            }
            safetensors::Dtype::F16 => {
                data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
            }
            safetensors::Dtype::BF16 => {
                data.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
            }
            other => return Err(ModelError::Invalid(format!("tensor {name} has unsupported type {other:?}"))),
        };
        if out.len() != len {
            return Err(ModelError::Invalid(format!("tensor {name} has {} values, expected {len}", out.len())));
        }
        Ok(out)
    }
}

/// `dir`'s `config.json`.
fn read_config(dir: &Path) -> Result<BertConfig, ModelError> {
    let text = crate::read(&dir.join("config.json"))?;
    serde_json::from_str(&text).map_err(|e| ModelError::Invalid(format!("config.json: {e}")))
}

/// `dir`'s `model.safetensors`, mapped.
fn map_weights(dir: &Path) -> Result<memmap2::Mmap, ModelError> {
    let path = dir.join("model.safetensors");
    let file = std::fs::File::open(&path).map_err(|e| ModelError::io(&path, e))?;
    // SAFETY: callers only read the map and copy the weights out before dropping it, so later
    // changes to the file cannot affect a loaded model.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ModelError::io(&path, e))
}

impl<'a> Weights<'a> {
    /// The tensors in a mapped `model.safetensors`.
    fn parse(map: &'a [u8]) -> Result<Self, ModelError> {
        let st = safetensors::SafeTensors::deserialize(map)
            .map_err(|e| ModelError::Invalid(format!("model.safetensors is corrupt: {e}")))?;
        Ok(Weights { st })
    }

    /// Rows of the word-embedding table (the vocabulary size).
    fn vocab(&self) -> Result<usize, ModelError> {
        self.st
            .tensor("embeddings.word_embeddings.weight")
            .or_else(|_| self.st.tensor("bert.embeddings.word_embeddings.weight"))
            .map(|t| t.shape()[0])
            .map_err(|_| ModelError::Invalid("model.safetensors lacks word embeddings".into()))
    }
}

/// The word-embedding table of the model in `dir` and its width (`[vocab × hidden]`), without
/// the encoder: what static word vectors need.
pub(crate) fn word_embeddings(dir: &Path) -> Result<(Vec<f32>, usize), ModelError> {
    let config = read_config(dir)?;
    let map = map_weights(dir)?;
    let w = Weights::parse(&map)?;
    let h = config.hidden_size;
    Ok((w.get("embeddings.word_embeddings.weight", w.vocab()? * h)?, h))
}

impl Bert {
    /// Loads `config.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let config = read_config(dir)?;
        if config.hidden_act != "gelu" {
            return Err(ModelError::Invalid(format!("activation {} is not supported", config.hidden_act)));
        }
        if config.num_attention_heads == 0 || !config.hidden_size.is_multiple_of(config.num_attention_heads) {
            return Err(ModelError::Invalid("hidden_size must be a multiple of num_attention_heads".into()));
        }
        let map = map_weights(dir)?;
        let w = Weights::parse(&map)?;
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let vocab = w.vocab()?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            let mut qkv_w = w.get(&format!("{p}.attention.self.query.weight"), h * h)?;
            qkv_w.extend(w.get(&format!("{p}.attention.self.key.weight"), h * h)?);
            qkv_w.extend(w.get(&format!("{p}.attention.self.value.weight"), h * h)?);
            let mut qkv_b = w.get(&format!("{p}.attention.self.query.bias"), h)?;
            qkv_b.extend(w.get(&format!("{p}.attention.self.key.bias"), h)?);
            qkv_b.extend(w.get(&format!("{p}.attention.self.value.bias"), h)?);
            layers.push(Layer {
                qkv_w,
                qkv_b,
                attn_out_w: w.get(&format!("{p}.attention.output.dense.weight"), h * h)?,
                attn_out_b: w.get(&format!("{p}.attention.output.dense.bias"), h)?,
                ln1_g: w.get(&format!("{p}.attention.output.LayerNorm.weight"), h)?,
                ln1_b: w.get(&format!("{p}.attention.output.LayerNorm.bias"), h)?,
                inter_w: w.get(&format!("{p}.intermediate.dense.weight"), i * h)?,
                inter_b: w.get(&format!("{p}.intermediate.dense.bias"), i)?,
                out_w: w.get(&format!("{p}.output.dense.weight"), h * i)?,
                out_b: w.get(&format!("{p}.output.dense.bias"), h)?,
                ln2_g: w.get(&format!("{p}.output.LayerNorm.weight"), h)?,
                ln2_b: w.get(&format!("{p}.output.LayerNorm.bias"), h)?,
            });
        }
        Ok(Bert {
            word: w.get("embeddings.word_embeddings.weight", vocab * h)?,
            position: w.get("embeddings.position_embeddings.weight", config.max_position_embeddings * h)?,
            token_type: w.get("embeddings.token_type_embeddings.weight", h).or_else(|_| {
                // Models with two token types: row 0 is all single-segment inputs need.
                w.get("embeddings.token_type_embeddings.weight", 2 * h).map(|mut v| {
                    v.truncate(h);
                    v
                })
            })?,
            emb_ln_g: w.get("embeddings.LayerNorm.weight", h)?,
            emb_ln_b: w.get("embeddings.LayerNorm.bias", h)?,
            layers,
            config,
        })
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.word.len() / self.config.hidden_size
    }

    /// Runs the encoder over `seqs` (token ids, at most `max_position_embeddings` each) and
    /// returns the final hidden states of every token, packed `[Σlen × hidden]`. Runs on the
    /// current rayon pool; `threads` is its size.
    pub fn forward(&self, seqs: &[Vec<u32>], threads: usize) -> Vec<f32> {
        let c = &self.config;
        let (h, heads) = (c.hidden_size, c.num_attention_heads);
        let d = h / heads;
        let total: usize = seqs.iter().map(Vec::len).sum();
        let par = if threads > 1 { Parallelism::Rayon(threads) } else { Parallelism::None };

        let mut x = vec![0.0f32; total * h];
        let mut row = 0;
        for seq in seqs {
            for (pos, &id) in seq.iter().enumerate() {
                let out = &mut x[row * h..(row + 1) * h];
                let word = &self.word[id as usize * h..(id as usize + 1) * h];
                let posv = &self.position[pos * h..(pos + 1) * h];
                for j in 0..h {
                    out[j] = word[j] + posv[j] + self.token_type[j];
                }
                row += 1;
            }
        }
        let zeros = vec![0.0f32; total * h];
        ops::add_layer_norm(&mut x, &zeros, &self.emb_ln_g, &self.emb_ln_b, c.layer_norm_eps);

        let mut qkv = vec![0.0f32; total * 3 * h];
        let mut ctx = vec![0.0f32; total * h];
        let mut tmp = vec![0.0f32; total * h];
        let mut inter = vec![0.0f32; total * c.intermediate_size];
        let scale = 1.0 / (d as f32).sqrt();
        for layer in &self.layers {
            ops::linear(&x, &layer.qkv_w, &layer.qkv_b, &mut qkv, par);
            attention(&qkv, &mut ctx, seqs, h, heads, scale);
            ops::linear(&ctx, &layer.attn_out_w, &layer.attn_out_b, &mut tmp, par);
            ops::add_layer_norm(&mut tmp, &x, &layer.ln1_g, &layer.ln1_b, c.layer_norm_eps);
            std::mem::swap(&mut x, &mut tmp);
            ops::linear(&x, &layer.inter_w, &layer.inter_b, &mut inter, par);
            ops::gelu(&mut inter);
            ops::linear(&inter, &layer.out_w, &layer.out_b, &mut tmp, par);
            ops::add_layer_norm(&mut tmp, &x, &layer.ln2_g, &layer.ln2_b, c.layer_norm_eps);
            std::mem::swap(&mut x, &mut tmp);
        }
        x
    }
}

/// Self-attention for every sequence and head: `ctx = softmax(q·kᵀ·scale)·v`. Sequences own
/// disjoint row ranges of `ctx`, so they run in parallel.
fn attention(qkv: &[f32], ctx: &mut [f32], seqs: &[Vec<u32>], h: usize, heads: usize, scale: f32) {
    let d = h / heads;
    let mut parts: Vec<(usize, usize, &mut [f32])> = Vec::with_capacity(seqs.len());
    let mut rest = ctx;
    let mut offset = 0;
    for seq in seqs {
        let (mine, tail) = rest.split_at_mut(seq.len() * h);
        parts.push((offset, seq.len(), mine));
        rest = tail;
        offset += seq.len();
    }
    parts.into_par_iter().for_each(|(off, len, out)| {
        let mut scores = vec![0.0f32; len * len];
        let base = &qkv[off * 3 * h..(off + len) * 3 * h];
        for head in 0..heads {
            let q = &base[head * d..];
            let k = &base[h + head * d..];
            let v = &base[2 * h + head * d..];
            ops::matmul_t(q, 3 * h, k, 3 * h, len, d, len, scale, &mut scores);
            for row in scores.chunks_exact_mut(len) {
                ops::softmax(row);
            }
            ops::matmul(&scores, v, 3 * h, len, len, d, &mut out[head * d..], h);
        }
    });
}
