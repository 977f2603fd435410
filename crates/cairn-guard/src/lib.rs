//! Cairn's guardrails: PII redaction (applied to text before it is embedded or stored, usable on
//! model output) and prompt-injection screening with fencing of untrusted text. Output
//! validation comes next.

#![warn(missing_docs)]

pub mod injection;
pub mod pii;

pub use injection::{InjectionFlag, InjectionScreen};
pub use pii::{Finding, PiiKind, PiiPolicy, Redaction, Redactor};
