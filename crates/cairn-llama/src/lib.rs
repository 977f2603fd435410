//! GGUF chat models run in-process by llama.cpp. The model's own metadata provides its
//! tokenizer and chat template, so any llama-family GGUF file loads the same way. One
//! dedicated thread owns the model and its context and serves requests one at a time from a
//! bounded queue; tokens stream back over a channel, and a caller that goes away stops
//! generation at the next token.

#![warn(missing_docs)]

pub mod bare;
mod engine;
mod stops;

pub use engine::{ChatEngine, EngineOptions, Event, Finish, GenerateRequest, Message};

/// Why the engine could not load or serve.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model file is missing, unreadable or not a GGUF model llama.cpp can run.
    #[error("cannot load model {path}: {message}")]
    Load {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The request cannot be served as asked (e.g. the prompt does not fit the context).
    #[error("{0}")]
    Invalid(String),
    /// The queue is full; try again shortly.
    #[error("the chat model is busy: its queue is full")]
    Overloaded,
    /// The engine thread has stopped.
    #[error("the chat engine has stopped")]
    Stopped,
}
