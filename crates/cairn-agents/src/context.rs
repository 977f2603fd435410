//! Short-term memory: fitting a thread's history to the model. When the history a run starts
//! with is longer than the agent's `context.max_history_tokens` (estimated), its older turns are
//! summarised by `context.summary_model` (the agent's model by default, charged to the run's
//! key) and the model reads the summary and the recent turns instead. The summary is journaled,
//! so a resumed run reads the same one without calling again, and its cost counts toward the
//! run's caps.

use cairn_core::openai::{ChatMessage, ChatRequest, ChatRole};
use cairn_core::runs::StepKind;
use cairn_jobs::JobError;

use crate::journal::{Cap, Recalled, Summary};
use crate::spec::ToolChoice;

/// Output tokens of the final answer after a cap on output tokens.
const FINAL_ANSWER_TOKENS: u32 = 512;
use crate::step::{Halt, Stepper};

/// What the summarising model is told.
const SUMMARISE: &str = "Summarise the conversation below for an assistant that will continue it. \
Keep every fact, name, number, decision and open question; drop pleasantries. Write plain prose, \
at most a few paragraphs.";

/// Estimated tokens of `messages` (the gateway's own estimate).
fn tokens(messages: &[ChatMessage]) -> u64 {
    ChatRequest { messages: messages.to_vec(), ..Default::default() }.estimated_prompt_tokens()
}

impl Stepper {
    /// Replaces the older part of the history by its summary when the history is over budget
    /// (see the module docs); uses the journaled summary when there is one.
    pub(crate) async fn fit_history(&mut self) -> Result<(), Halt> {
        let known = self.replay(|r| r.summary.clone()).await;
        if let Some(s) = known {
            self.apply_summary(&s);
            return Ok(());
        }
        let Some(budget) = self.spec.context.max_history_tokens.map(u64::from) else { return Ok(()) };
        if self.history.is_empty() || tokens(&self.history) <= budget {
            return Ok(());
        }
        // Keep the most recent turns within half the budget; summarise the rest.
        let mut kept = 0;
        let mut used = 0;
        for m in self.history.iter().rev() {
            let t = tokens(std::slice::from_ref(m));
            if used + t > budget / 2 {
                break;
            }
            used += t;
            kept += 1;
        }
        let covers = self.history.len() - kept;
        if covers == 0 {
            return Ok(());
        }
        let transcript: String =
            self.history[..covers].iter().map(|m| format!("{}: {}\n", role_name(m.role), m.text_content())).collect();
        let model = self.spec.context.summary_model.clone().unwrap_or_else(|| self.spec.model.clone());
        let req = ChatRequest {
            model: model.clone(),
            messages: vec![
                ChatMessage::text(ChatRole::System, SUMMARISE),
                ChatMessage::text(ChatRole::User, transcript),
            ],
            ..Default::default()
        };
        let mut call = self.call.clone();
        call.request_id = format!("{}:summary", self.run.id);
        let (done, routed) = self.rt.models.complete(&call, req).await.map_err(|e| {
            Halt::Job(match e {
                cairn_core::Error::RateLimited { message, retry_after } => {
                    JobError::RetryAfter { after: retry_after, message }
                }
                other => JobError::Retry(format!("summarising the history: {other}")),
            })
        })?;
        let text = done.choices.first().map(|c| c.message.text_content()).unwrap_or_default();
        let (input_tokens, output_tokens) =
            done.usage.as_ref().map_or((0, 0), |u| (u.prompt_tokens, u.completion_tokens));
        let cost_usd = self.rt.models.cost(&model, &routed, input_tokens, output_tokens);
        let summary = Summary { covers, text, input_tokens, output_tokens, cost_usd };
        self.append(StepKind::Summary, &summary).await?;
        self.apply_summary(&summary);
        Ok(())
    }

    /// Gives the model the memories most relevant to the run's latest user message, when the
    /// agent recalls before each run. Not journaled: a resumed run recalls again.
    pub(crate) async fn recall_before_run(&mut self) -> Result<(), Halt> {
        let Some(scope) = self.memory.clone() else { return Ok(()) };
        let top_k = scope.settings.recall_before_run;
        let query = self.history.iter().rev().find(|m| m.role == ChatRole::User).map(|m| m.text_content());
        let (true, Some(query)) = (top_k > 0, query) else { return Ok(()) };
        let known = self.journal.lock().await.replay.recalled.clone();
        let recalled = match known {
            Some(r) => r,
            None => {
                let found = self
                    .rt
                    .memories
                    .recall(&self.call, &scope, &query, top_k)
                    .await
                    .map_err(|e| Halt::Job(JobError::Retry(format!("recalling memories: {e}"))))?;
                let r = Recalled { memories: found.into_iter().map(|m| m.text).collect() };
                // Stored before the model reads it (the next model call flushes it first).
                self.defer(StepKind::Recalled, &r).await?;
                r
            }
        };
        if recalled.memories.is_empty() {
            return Ok(());
        }
        let list: String = recalled.memories.iter().map(|m| format!("- {m}\n")).collect();
        let at = self.history.iter().rposition(|m| m.role == ChatRole::User).unwrap_or(0);
        let note = format!("What you remember about this user (from earlier conversations):\n{list}");
        self.history.insert(at, ChatMessage::text(ChatRole::System, note));
        Ok(())
    }

    /// Whether the next model call must call a tool (`tool_choice: required` until the run
    /// has made a call), and its output-token limit: what is left of the run's, or a short
    /// answer's worth for the final call after a cap.
    pub(crate) async fn call_settings(&self, final_call: Option<Cap>, with_tools: bool) -> (bool, Option<u32>) {
        let (tool_calls, output_tokens) = {
            let j = self.journal.lock().await;
            (j.replay.tool_calls, j.replay.output_tokens)
        };
        let must_call = with_tools && self.spec.tool_choice == ToolChoice::Required && tool_calls == 0;
        let max_tokens = match (final_call, self.spec.limits.max_output_tokens) {
            (Some(_), Some(_)) => Some(FINAL_ANSWER_TOKENS),
            (None, Some(cap)) => Some(cap.saturating_sub(output_tokens).clamp(1, u64::from(u32::MAX)) as u32),
            (_, None) => None,
        };
        (must_call, max_tokens)
    }

    /// What the model reads: instructions, history, the run's own steps, and after a cap a
    /// last word saying to answer now.
    pub(crate) async fn messages(&self, final_call: Option<Cap>) -> Vec<ChatMessage> {
        let mut out = Vec::new();
        if !self.spec.instructions.is_empty() {
            out.push(ChatMessage::text(ChatRole::System, self.spec.instructions.clone()));
        }
        out.extend(self.history.iter().cloned());
        out.extend(self.journal.lock().await.replay.messages.iter().cloned());
        if let Some(cap) = final_call {
            out.push(ChatMessage::text(
                ChatRole::System,
                format!(
                    "Stop here: {}. Write your final answer now from what you have; make no tool calls.",
                    cap.reason()
                ),
            ));
        }
        out
    }

    /// The history as the model reads it after `summary`.
    fn apply_summary(&mut self, summary: &Summary) {
        let covers = summary.covers.min(self.history.len());
        let note = format!("Summary of the earlier conversation:\n{}", summary.text);
        self.history.splice(..covers, [ChatMessage::text(ChatRole::System, note)]);
    }
}

fn role_name(role: ChatRole) -> &'static str {
    match role {
        ChatRole::User => "user",
        ChatRole::Assistant => "assistant",
        ChatRole::System | ChatRole::Developer => "system",
        ChatRole::Tool => "tool",
    }
}
