//! A bare llama.cpp generation loop: the same bindings and the same compiled llama.cpp as the
//! engine, but none of the engine around it (no thread hand-off, queue, channel, stop filter or
//! sampler chain). It is the reference `cairn-bench generate` measures the engine against, on
//! the same GGUF file and thread count, in the same run.

use std::num::NonZeroU32;
use std::path::Path;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;

use crate::engine::backend;
use crate::EngineError;

/// Figures of one bare run.
#[derive(Clone, Debug)]
pub struct BareRun {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Seconds to process the prompt.
    pub prompt_secs: f64,
    /// Seconds from the start to the first generated token.
    pub first_token_secs: f64,
    /// Tokens generated.
    pub output_tokens: u32,
    /// Seconds from the first generated token to the last.
    pub generation_secs: f64,
}

/// Loads `path` with `threads` threads and `context` tokens, renders `user` with the model's
/// chat template, and generates exactly `n_out` tokens greedily (past end-of-generation, as
/// llama.cpp's own `llama-bench` does), `runs` times; returns each run's figures.
pub fn generate(
    path: &Path,
    threads: usize,
    context: u32,
    user: &str,
    n_out: u32,
    runs: usize,
) -> Result<Vec<BareRun>, EngineError> {
    let fail = |message: String| EngineError::Load { path: path.display().to_string(), message };
    let backend = backend()?;
    let model =
        LlamaModel::load_from_file(backend, path, &LlamaModelParams::default()).map_err(|e| fail(e.to_string()))?;
    let t = i32::try_from(threads.max(1)).unwrap_or(1);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(context))
        .with_n_batch(context)
        .with_n_threads(t)
        .with_n_threads_batch(t);
    let mut ctx = model.new_context(backend, params).map_err(|e| fail(e.to_string()))?;
    let template = model.chat_template(None).map_err(|e| fail(e.to_string()))?;
    let chat = [LlamaChatMessage::new("user".into(), user.into()).map_err(|e| fail(e.to_string()))?];
    let text = model.apply_chat_template(&template, &chat, true).map_err(|e| fail(e.to_string()))?;
    let vocab = model.vocab();
    let tokens = vocab.tokenize(text.as_bytes(), vocab.should_add_bos(), true);
    let invalid = |e: String| EngineError::Invalid(e);
    let mut out = Vec::with_capacity(runs);
    for _ in 0..runs {
        ctx.clear_kv_cache();
        let start = Instant::now();
        let mut batch = LlamaBatch::new(tokens.len().max(1), 1);
        let last = tokens.len() as i32 - 1;
        for (i, tok) in (0i32..).zip(&tokens) {
            batch.add(*tok, i, &[0], i == last).map_err(|e| invalid(e.to_string()))?;
        }
        ctx.decode(&mut batch).map_err(|e| invalid(e.to_string()))?;
        let prompt_secs = start.elapsed().as_secs_f64();
        let mut sampler = LlamaSampler::greedy();
        let mut first = None;
        for n in 0..n_out {
            let token = sampler.sample(&ctx, batch.n_tokens() - 1);
            first.get_or_insert_with(Instant::now);
            if n + 1 == n_out {
                break;
            }
            batch.clear();
            batch.add(token, tokens.len() as i32 + n as i32, &[0], true).map_err(|e| invalid(e.to_string()))?;
            ctx.decode(&mut batch).map_err(|e| invalid(e.to_string()))?;
        }
        let first = first.unwrap_or_else(Instant::now);
        out.push(BareRun {
            prompt_tokens: tokens.len() as u32,
            prompt_secs,
            first_token_secs: (first - start).as_secs_f64(),
            output_tokens: n_out,
            generation_secs: first.elapsed().as_secs_f64(),
        });
    }
    Ok(out)
}
