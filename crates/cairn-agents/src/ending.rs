//! How a run ends: the end is journaled, then settled (its answer on its thread, its state,
//! the next run on the thread started), and a run that answered is recorded in the audit log as
//! an AI decision: the agent's model, SHA-256 hashes of the conversation it was given and of
//! its answer, and the tools it used.

use cairn_core::audit::{self, AuditAction};
use cairn_core::openai::{ChatMessage, ChatRole};
use cairn_core::runs::{RunState, StepKind};
use cairn_core::time::now_ms;
use serde_json::json;

use crate::journal::Ended;
use crate::step::{storage, Halt, Stepper, PAGE};

impl Stepper {
    /// Journals the end, then makes storage agree (see `settle`).
    pub(crate) async fn end(
        &self,
        state: RunState,
        reason: Option<String>,
        answer: Option<String>,
    ) -> Result<RunState, Halt> {
        // Its model calls' usage records are written behind their streams: all are in before
        // anyone reads the run as ended.
        self.rt.models.flush_usage().await;
        let said = answer.clone();
        self.append(StepKind::Ended, &Ended { state, reason, answer }).await?;
        if let Some(said) = said.filter(|a| !a.is_empty()) {
            self.decided(state, &said).await;
        }
        self.settle(state).await
    }

    /// After the journal says the run ended: its answer on its thread (once), its state, and the
    /// next run on the thread started. Safe to repeat.
    pub(crate) async fn settle(&self, state: RunState) -> Result<RunState, Halt> {
        let end = self.journal.lock().await.replay.end.clone();
        if let (Some(thread), Some(Ended { answer: Some(answer), .. })) = (&self.run.thread_id, end.as_ref()) {
            let history_to = self.journal.lock().await.replay.history_to.unwrap_or(0);
            let after = self.rt.runs.list_messages(thread, history_to, PAGE).await.map_err(storage)?;
            let written = after
                .iter()
                .any(|m| m.run_id.as_deref() == Some(self.run.id.as_str()) && m.message.role == ChatRole::Assistant);
            if !written && !answer.is_empty() {
                let message = ChatMessage::text(ChatRole::Assistant, answer.clone());
                self.rt
                    .runs
                    .append_messages(thread, &[message], Some(&self.run.id), now_ms())
                    .await
                    .map_err(storage)?;
            }
        }
        let reason = end.and_then(|e| e.reason);
        let open = [RunState::Queued, RunState::Running, RunState::RequiresAction];
        let moved = self
            .rt
            .runs
            .set_run_state(&self.run.id, &open, state, reason.as_deref(), now_ms())
            .await
            .map_err(storage)?;
        let run = moved.unwrap_or_else(|| self.run.clone());
        self.rt.next_on_thread(&run).await.map_err(storage)?;
        Ok(state)
    }

    /// Records the run's answer as an AI decision (once the end is journaled).
    async fn decided(&self, state: RunState, answer: &str) {
        let (mut tools, conversation) = {
            let journal = self.journal.lock().await;
            let names: Vec<String> = journal
                .replay
                .messages
                .iter()
                .flat_map(|m| m.tool_calls.iter().flatten().map(|c| c.function.name.clone()))
                .collect();
            (names, serde_json::to_string(&journal.replay.messages).unwrap_or_default())
        };
        tools.sort_unstable();
        tools.dedup();
        let details = json!({
            "agent": self.run.agent_id,
            "model": self.spec.model,
            "state": state.as_str(),
            "prompt_sha256": audit::sha256_hex(&conversation),
            "output_sha256": audit::sha256_hex(answer),
            "tools": tools,
        });
        let caller = &self.call.principal;
        audit::record(&*self.rt.audit, caller, &self.run.tenant_id, AuditAction::AiDecision, &self.run.id, details)
            .await;
    }
}
