//! Cairn's guardrails. Today: PII redaction, applied to text before it is embedded or stored
//! and usable on model output. Prompt-injection screening and output validation come next.

#![warn(missing_docs)]

pub mod pii;

pub use pii::{Finding, PiiKind, PiiPolicy, Redaction, Redactor};
