//! The PII output guard on a streamed answer. Each choice's text passes a `StreamRedactor`,
//! which holds back the tail that may still be part of a value, so no chunk boundary lets a
//! value out unredacted; what is held goes out with the choice's last chunk (the one with its
//! `finish_reason`), or in a chunk of its own when the stream ends without one. In `block`
//! mode the first value found ends the stream with an error before any of it is sent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cairn_core::guard::{GuardKind, GuardMode, GuardOutcome};
use cairn_core::openai::{ChatChunk, ChunkChoice, Delta, UsageField};
use cairn_guard::{Redactor, Released, StreamRedactor};

use super::{Blocked, GuardPlan, Guards};

/// The PII output guard of one stream.
pub(crate) struct StreamPii {
    mode: GuardMode,
    redactor: Arc<Redactor>,
    choices: BTreeMap<u32, StreamRedactor>,
    kinds: BTreeSet<&'static str>,
    metrics: Arc<cairn_telemetry::Metrics>,
}

impl Guards {
    /// The stream guard for a call under `plan`, when its PII output guard is on.
    pub fn stream_pii(&self, plan: &GuardPlan) -> Option<StreamPii> {
        let mode = plan.settings.pii_output;
        (mode != GuardMode::Off).then(|| StreamPii {
            mode,
            redactor: self.redactor.clone(),
            choices: BTreeMap::new(),
            kinds: BTreeSet::new(),
            metrics: self.metrics.clone(),
        })
    }
}

impl StreamPii {
    /// Takes what was found in `r` and gives the text to send.
    fn text(&mut self, r: Released) -> Result<String, Blocked> {
        if !r.findings.is_empty() {
            self.kinds.extend(r.findings.iter().map(|f| f.kind.label()));
            if self.mode == GuardMode::Block {
                return Err(self.blocked());
            }
        }
        Ok(if self.mode == GuardMode::Redact { r.redacted } else { r.raw })
    }

    fn blocked(&self) -> Blocked {
        let what = self.kinds.iter().copied().collect::<Vec<_>>().join(", ");
        Blocked {
            guard: GuardKind::PiiOutput,
            reason: format!("the answer holds personal data ({what}); the stream was stopped before it"),
            param: None,
        }
    }

    /// Rewrites `chunk`'s text in place: what may go now, plus everything held for a choice
    /// that finishes in it.
    pub fn chunk(&mut self, chunk: &mut ChatChunk) -> Result<(), Blocked> {
        for choice in &mut chunk.choices {
            let redactor = self.redactor.clone();
            let held = self.choices.entry(choice.index).or_insert_with(|| StreamRedactor::new(redactor));
            let mut released = held.push(choice.delta.content.as_deref().unwrap_or_default());
            if choice.finish_reason.is_some() {
                let rest = held.finish();
                self.choices.remove(&choice.index);
                released.raw.push_str(&rest.raw);
                released.redacted.push_str(&rest.redacted);
                let offset = released.raw.len() - rest.raw.len();
                released.findings.extend(rest.findings.into_iter().map(|mut f| {
                    f.start += offset;
                    f.end += offset;
                    f
                }));
            }
            let text = self.text(released)?;
            if choice.delta.content.is_some() || !text.is_empty() {
                choice.delta.content = Some(text);
            }
        }
        Ok(())
    }

    /// The stream ended: a chunk with what is still held for choices that never finished.
    pub fn finish(&mut self, template: &ChatChunk) -> Result<Option<ChatChunk>, Blocked> {
        let mut choices = Vec::new();
        for (index, mut held) in std::mem::take(&mut self.choices) {
            let text = self.text(held.finish())?;
            if !text.is_empty() {
                choices.push(ChunkChoice {
                    index,
                    delta: Delta { content: Some(text), ..Default::default() },
                    finish_reason: None,
                    logprobs: None,
                });
            }
        }
        Ok((!choices.is_empty()).then(|| ChatChunk { choices, usage: UsageField::Absent, ..template.clone() }))
    }

    /// Counts what the guard did over the whole stream (once, when the stream ends).
    pub fn settle(&self) -> GuardOutcome {
        let outcome = super::pii_outcome(!self.kinds.is_empty(), self.mode);
        super::count(&self.metrics, GuardKind::PiiOutput, outcome);
        outcome
    }
}
