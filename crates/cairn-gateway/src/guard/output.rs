//! Guards on the way out of a whole answer: validation against the request's JSON schema (with
//! the re-ask that follows a failure) and PII redaction.

use cairn_core::guard::{GuardKind, GuardMode, GuardOutcome, ScreenMode};
use cairn_core::openai::{ChatCompletion, ChatMessage, ChatRequest, ChatRole, MessageContent};
use serde_json::Value;

use super::{Blocked, GuardPlan, Guards};

/// What the output guards make of an answer.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Deliver it (redacted where the policy says).
    Pass,
    /// It does not match the schema: ask again with this error, or refuse when no re-ask is
    /// left.
    Reask(String),
    /// Refuse the call.
    Block(Blocked),
}

/// The JSON schema the answer to `req` must match: `response_format` of type `json_schema`.
pub(crate) fn response_schema(req: &ChatRequest) -> Option<&Value> {
    let rf = req.response_format.as_ref()?;
    if rf.get("type").and_then(Value::as_str) != Some("json_schema") {
        return None;
    }
    rf.get("json_schema")?.get("schema")
}

impl Guards {
    /// Whether the answer to `req` is validated (the schema guard is on and there is a schema).
    pub fn validates(&self, plan: &GuardPlan, req: &ChatRequest) -> bool {
        plan.settings.output_schema != ScreenMode::Off && response_schema(req).is_some()
    }

    /// Runs the output guards on `completion`: the schema first (on the model's own words),
    /// then PII, redacting in place when the mode says so.
    pub fn check_output(&self, plan: &mut GuardPlan, req: &ChatRequest, completion: &mut ChatCompletion) -> Verdict {
        if let Some(schema) = response_schema(req).filter(|_| plan.settings.output_schema != ScreenMode::Off) {
            let failure = completion
                .choices
                .iter()
                .filter(|c| c.message.tool_calls.as_ref().is_none_or(Vec::is_empty))
                .find_map(|c| self.schemas.check_text(schema, &c.message.text_content()).err());
            match (failure, plan.settings.output_schema) {
                (None, _) => self.note(plan, GuardKind::OutputSchema, GuardOutcome::Pass),
                (Some(e), ScreenMode::Block) => return Verdict::Reask(e),
                (Some(e), _) => {
                    tracing::info!(error = %e, "output schema guard flagged an answer");
                    self.note(plan, GuardKind::OutputSchema, GuardOutcome::Flagged);
                }
            }
        }
        self.pii_output(plan, completion)
    }

    /// The PII output stage on a whole answer.
    fn pii_output(&self, plan: &mut GuardPlan, completion: &mut ChatCompletion) -> Verdict {
        let mode = plan.settings.pii_output;
        if mode == GuardMode::Off {
            return Verdict::Pass;
        }
        let mut kinds = std::collections::BTreeSet::new();
        for choice in &mut completion.choices {
            let mut redact = |text: &mut String| {
                let r = self.redactor.redact(text);
                if !r.findings.is_empty() {
                    kinds.extend(r.findings.iter().map(|f| f.kind.label()));
                    if mode == GuardMode::Redact {
                        *text = r.text;
                    }
                }
            };
            match &mut choice.message.content {
                Some(MessageContent::Text(t)) => redact(t),
                Some(MessageContent::Parts(parts)) => parts.iter_mut().filter_map(|p| p.text.as_mut()).for_each(redact),
                None => {}
            }
        }
        let outcome = super::pii_outcome(!kinds.is_empty(), mode);
        self.note(plan, GuardKind::PiiOutput, outcome);
        if outcome == GuardOutcome::Blocked {
            let what = kinds.into_iter().collect::<Vec<_>>().join(", ");
            return Verdict::Block(Blocked {
                guard: GuardKind::PiiOutput,
                reason: format!("the answer holds personal data ({what})"),
                param: None,
            });
        }
        Verdict::Pass
    }

    /// The refusal after the last re-ask failed.
    pub fn schema_block(&self, plan: &mut GuardPlan, error: &str, asked: u8) -> Blocked {
        self.note(plan, GuardKind::OutputSchema, GuardOutcome::Blocked);
        let tries = u32::from(asked) + 1;
        Blocked {
            guard: GuardKind::OutputSchema,
            reason: format!("no valid answer after {tries} tries; last: {error}"),
            param: Some("response_format".into()),
        }
    }
}

/// The request that asks again: the conversation, the answer that failed, and what was wrong
/// with it.
pub(crate) fn reask(req: &ChatRequest, failed: &ChatCompletion, error: &str) -> ChatRequest {
    let mut next = req.clone();
    let answer = failed.choices.first().map(|c| c.message.text_content()).unwrap_or_default();
    next.messages.push(ChatMessage::text(ChatRole::Assistant, answer));
    next.messages.push(ChatMessage::text(
        ChatRole::User,
        format!(
            "Your previous answer was rejected: {error}. Reply again with only a JSON document that \
             matches the required schema, and nothing else."
        ),
    ));
    next
}
