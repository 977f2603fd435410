//! Cairn's guardrails, without I/O: PII redaction (of stored text, prompts and model output,
//! streamed output included), prompt-injection screening (rules, a classifier over an embedding
//! model's word vectors, and fencing of untrusted text) and output validation against JSON
//! Schemas. The gateway runs them as stages of every model call.

#![warn(missing_docs)]

pub mod classifier;
pub mod injection;
pub mod pii;
pub mod schema;
pub mod train;

pub use classifier::{InjectionModel, Source, TextVectors};
pub use injection::{InjectionFlag, InjectionScreen};
pub use pii::{Finding, PiiKind, PiiPolicy, Redaction, Redactor, Released, StreamRedactor};
pub use schema::Schemas;
