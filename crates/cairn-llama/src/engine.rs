//! The engine: a thread that owns a llama.cpp model and context, prefills each prompt in one
//! batch, samples token by token (greedy at temperature 0, else top-p, temperature and a
//! seeded draw), applies stop sequences, and streams text back until the end-of-generation
//! token, the token limit, a stop sequence, or the caller hanging up.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use tokio::sync::mpsc;

use crate::stops::StopFilter;
use crate::EngineError;

/// llama.cpp's backend may be initialised once per process; every engine shares it.
static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

/// The process's llama.cpp backend, initialised on first use.
pub(crate) fn backend() -> Result<&'static LlamaBackend, EngineError> {
    BACKEND
        .get_or_init(|| {
            LlamaBackend::init()
                .map(|mut b| {
                    b.void_logs(); // llama.cpp's own logging would bypass Cairn's structured logs
                    b
                })
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Load { path: String::new(), message: e.clone() })
}

/// How an engine runs.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Threads for prompt processing and generation.
    pub threads: usize,
    /// Context window in tokens (prompt plus output); 0 uses the model's trained window.
    pub context: u32,
    /// Requests waiting beyond the one running; more are refused with `Overloaded`.
    pub queue: usize,
}

/// One chat message, already reduced to text.
#[derive(Clone, Debug)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateRequest {
    /// The conversation.
    pub messages: Vec<Message>,
    /// Most tokens to generate (also bounded by the context window).
    pub max_tokens: u32,
    /// Sampling temperature; 0 is greedy and deterministic.
    pub temperature: f32,
    /// Nucleus sampling mass.
    pub top_p: f32,
    /// Seed for the random draw (fixed seed + same request = same output).
    pub seed: u32,
    /// Stop sequences (not included in the output).
    pub stop: Vec<String>,
    /// A GBNF grammar (root rule `root`) the output must follow, if any.
    pub grammar: Option<String>,
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// End-of-generation token or a stop sequence.
    Stop,
    /// The token limit.
    Length,
}

/// What the engine streams back.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The prompt is processed; generation begins.
    Started {
        /// Prompt tokens.
        prompt_tokens: u32,
    },
    /// Generated text (whole UTF-8 characters; stop sequences held back and removed).
    Text {
        /// The text.
        text: String,
        /// Tokens generated so far, this text's included: what a call cut here has cost.
        generated: u32,
    },
    /// Generation ended.
    Done {
        /// Why.
        finish: Finish,
        /// Prompt tokens.
        prompt_tokens: u32,
        /// Generated tokens.
        completion_tokens: u32,
    },
    /// The request failed (e.g. the prompt does not fit); nothing more follows.
    Failed(String),
}

struct Job {
    request: GenerateRequest,
    events: mpsc::Sender<Event>,
}

/// A loaded chat model behind its queue.
pub struct ChatEngine {
    tx: SyncSender<Job>,
    context: u32,
    path: PathBuf,
}

impl ChatEngine {
    /// Loads the GGUF model at `path` on a new engine thread; returns once it is ready.
    pub fn load(path: &Path, options: EngineOptions) -> Result<Self, EngineError> {
        let load_err = |message: String| EngineError::Load { path: path.display().to_string(), message };
        if !path.is_file() {
            return Err(load_err("not a file".into()));
        }
        backend()?;
        let (tx, rx) = sync_channel::<Job>(options.queue.max(1));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let file = path.to_path_buf();
        std::thread::Builder::new()
            .name("cairn-llama".into())
            .spawn(move || run(&file, &options, rx, ready_tx))
            .map_err(|e| load_err(format!("cannot start the engine thread: {e}")))?;
        let context = ready_rx.recv().map_err(|_| load_err("the engine thread ended while loading".into()))??;
        Ok(Self { tx, context, path: path.to_path_buf() })
    }

    /// The context window in tokens.
    pub fn context(&self) -> u32 {
        self.context
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a request; events arrive on the returned receiver. Dropping it cancels.
    pub fn generate(&self, request: GenerateRequest) -> Result<mpsc::Receiver<Event>, EngineError> {
        let (events, rx) = mpsc::channel(256);
        match self.tx.try_send(Job { request, events }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(EngineError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(EngineError::Stopped),
        }
    }
}

fn run(
    path: &Path,
    options: &EngineOptions,
    jobs: Receiver<Job>,
    ready: std::sync::mpsc::Sender<Result<u32, EngineError>>,
) {
    let fail = |message: String| EngineError::Load { path: path.display().to_string(), message };
    let Ok(backend) = backend() else {
        let _ = ready.send(Err(fail("llama.cpp backend unavailable".into())));
        return;
    };
    let model = match LlamaModel::load_from_file(backend, path, &LlamaModelParams::default()) {
        Ok(m) => m,
        Err(e) => {
            let _ = ready.send(Err(fail(format!("{e} (is it a valid GGUF model?)"))));
            return;
        }
    };
    let threads = i32::try_from(options.threads.max(1)).unwrap_or(1);
    let n_ctx = if options.context == 0 { model.n_ctx_train() } else { options.context.min(model.n_ctx_train()) };
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(n_ctx)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = match model.new_context(backend, params) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(fail(format!("cannot create a context: {e}"))));
            return;
        }
    };
    let template = model.chat_template(None).ok();
    if template.is_none() {
        tracing::warn!(path = %path.display(), "model has no chat template; using ChatML");
    }
    let _ = ready.send(Ok(n_ctx));
    while let Ok(job) = jobs.recv() {
        if job.events.is_closed() {
            continue; // the caller left while queued
        }
        if let Err(message) = serve(&model, &mut ctx, template.as_ref(), n_ctx, &job) {
            let _ = job.events.blocking_send(Event::Failed(message));
        }
    }
}

/// Renders the conversation with the model's own template (ChatML when it has none).
fn prompt(model: &LlamaModel, template: Option<&LlamaChatTemplate>, messages: &[Message]) -> Result<String, String> {
    if let Some(t) = template {
        let chat = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "messages must not contain NUL characters".to_string())?;
        return model
            .apply_chat_template(t, &chat, true)
            .map_err(|e| format!("applying the chat template failed: {e}"));
    }
    let mut out = String::new();
    for m in messages {
        out.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content));
    }
    out.push_str("<|im_start|>assistant\n");
    Ok(out)
}

/// Runs one request to completion; returns an error message for failures before output.
fn serve(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    template: Option<&LlamaChatTemplate>,
    n_ctx: u32,
    job: &Job,
) -> Result<(), String> {
    let req = &job.request;
    let vocab = model.vocab();
    let text = prompt(model, template, &req.messages)?;
    let tokens = vocab.tokenize(text.as_bytes(), vocab.should_add_bos(), true);
    let n_prompt = tokens.len() as u32;
    if n_prompt + 1 > n_ctx {
        return Err(format!("the prompt has {n_prompt} tokens; the model's context holds {n_ctx}"));
    }
    let max_new = req.max_tokens.min(n_ctx - n_prompt);
    ctx.clear_kv_cache();
    let mut batch = LlamaBatch::new(tokens.len().max(1), 1);
    let last = tokens.len() as i32 - 1;
    for (i, t) in (0i32..).zip(&tokens) {
        batch.add(*t, i, &[0], i == last).map_err(|e| e.to_string())?;
    }
    ctx.decode(&mut batch).map_err(|e| format!("prompt processing failed: {e}"))?;
    if job.events.blocking_send(Event::Started { prompt_tokens: n_prompt }).is_err() {
        return Ok(()); // cancelled
    }
    // A grammar goes first: it masks every token that would leave it, then the draw picks.
    let mut chain = Vec::new();
    if let Some(g) = &req.grammar {
        chain.push(LlamaSampler::grammar(model, g, "root").map_err(|e| format!("the output grammar is invalid: {e}"))?);
    }
    if req.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        chain.push(LlamaSampler::top_p(req.top_p.clamp(0.0, 1.0), 1));
        chain.push(LlamaSampler::temp(req.temperature));
        chain.push(LlamaSampler::dist(req.seed));
    }
    let mut sampler = LlamaSampler::chain_simple(chain);
    let mut stops = StopFilter::new(req.stop.clone());
    let mut bytes: Vec<u8> = Vec::new();
    let mut generated = 0u32;
    let mut finish = Finish::Length;
    while generated < max_new {
        let token = sampler.sample(ctx, batch.n_tokens() - 1);
        if vocab.is_eog(token) {
            finish = Finish::Stop;
            break;
        }
        generated += 1;
        bytes.extend(vocab.token_to_piece(token, false, None));
        let (out, hit) = stops.push(&take_utf8(&mut bytes));
        if !out.is_empty() && job.events.blocking_send(Event::Text { text: out, generated }).is_err() {
            return Ok(()); // cancelled mid-stream
        }
        if hit {
            finish = Finish::Stop;
            break;
        }
        if generated == max_new || job.events.is_closed() {
            break;
        }
        batch.clear();
        batch.add(token, (n_prompt + generated - 1) as i32, &[0], true).map_err(|e| e.to_string())?;
        ctx.decode(&mut batch).map_err(|e| format!("generation failed: {e}"))?;
    }
    let mut rest = if finish == Finish::Stop && stops.hit() { String::new() } else { stops.finish() };
    rest.push_str(&String::from_utf8_lossy(&bytes));
    if !rest.is_empty() {
        let _ = job.events.blocking_send(Event::Text { text: rest, generated });
    }
    let _ = job.events.blocking_send(Event::Done { finish, prompt_tokens: n_prompt, completion_tokens: generated });
    Ok(())
}

/// Removes and returns the longest valid UTF-8 prefix, keeping an incomplete trailing
/// character (a token can end mid-character) for the next token.
fn take_utf8(bytes: &mut Vec<u8>) -> String {
    let valid = match std::str::from_utf8(bytes) {
        Ok(s) => s.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        // Invalid bytes in the middle: replace them rather than stall.
        Err(_) => {
            let s = String::from_utf8_lossy(bytes).into_owned();
            bytes.clear();
            return s;
        }
    };
    let rest = bytes.split_off(valid);
    String::from_utf8(std::mem::replace(bytes, rest)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::take_utf8;

    #[test]
    fn keeps_split_characters_for_the_next_token() {
        let mut b = "héllo".as_bytes()[..2].to_vec(); // "h" and half of "é"
        assert_eq!(take_utf8(&mut b), "h");
        b.extend(&"héllo".as_bytes()[2..]);
        assert_eq!(take_utf8(&mut b), "éllo");
        assert!(b.is_empty());
    }
}
