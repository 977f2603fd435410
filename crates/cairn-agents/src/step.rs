//! One worker's turn at a run: load it, replay its journal, and step it until it ends, pauses
//! or is lost to another worker (see `runner` for the lifecycle, `journal` for replay).

use std::sync::Arc;

use cairn_core::openai::{ChatMessage, ChatRequest, StreamEvent, StreamOptions};
use cairn_core::runs::{Append, Run, RunState, RunStep, StepKind};
use cairn_core::tenancy::Principal;
use cairn_core::time::now_ms;
use cairn_core::{CallContext, Error};
use cairn_jobs::{JobContext, JobError};
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::actions::{ActionKind, ActionRequested, ActionTaken, Decision, PendingAction};
use crate::events::{RunNews, RunningGuard};
use crate::fold::Folded;
use crate::journal::{idempotency_key, payload, Cap, ModelOutput, Next, Replay, Started, ToolResult, ToolStarted};
use crate::runner::Runtime;
use crate::spec::{AgentSpec, Approval, ToolKind};
use crate::tools::ToolCallCtx;

/// Journal entries read per page when loading.
pub(crate) const PAGE: u32 = 1000;

/// Why a turn stops early.
pub(crate) enum Halt {
    /// The run is no longer this worker's: another appended, or it ended (a cancellation).
    Lost,
    /// The key's budget has no room: the run ends gracefully, saying so.
    Stop(String),
    /// The attempt failed; the queue decides what next.
    Job(JobError),
}

impl From<JobError> for Halt {
    fn from(e: JobError) -> Self {
        Halt::Job(e)
    }
}

pub(crate) fn storage(e: impl std::fmt::Display) -> Halt {
    Halt::Job(JobError::Retry(format!("storage: {e}")))
}

/// The journal as this worker knows it: its length and what it says.
pub(crate) struct Journal {
    /// Entries stored.
    pub(crate) seq: u64,
    /// What the stored and pending entries say.
    pub(crate) replay: Replay,
    /// Entries read into `replay` but not yet stored: written with the next entry that must be
    /// durable before Cairn acts (a tool call's start, a pause, the end), in one transaction.
    pending: Vec<(StepKind, Value)>,
}

/// A run being stepped.
pub(crate) struct Stepper {
    pub(crate) rt: Arc<Runtime>,
    pub(crate) run: Run,
    pub(crate) spec: AgentSpec,
    pub(crate) call: CallContext,
    pub(crate) journal: Mutex<Journal>,
    pub(crate) history: Vec<ChatMessage>,
    /// The agent's tools as the model is offered them.
    tools: Vec<cairn_core::openai::Tool>,
    /// The run's memory scope, when the agent has memory.
    pub(crate) memory: Option<crate::ports::MemoryScope>,
    _guard: RunningGuard,
}

impl Stepper {
    /// Loads run `run`: its agent version, its journal, and the key it acts as.
    pub(crate) async fn load(rt: Arc<Runtime>, run: Run, ctx: &JobContext) -> Result<Stepper, JobError> {
        let permanent = |m: String| JobError::Permanent(m);
        let version = rt
            .agents
            .get_agent_version(&run.agent_id, run.agent_version)
            .await
            .map_err(|e| JobError::Retry(format!("storage: {e}")))?
            .ok_or_else(|| {
                permanent(format!("agent version {} of '{}' is missing", run.agent_version, run.agent_id))
            })?;
        let spec: AgentSpec = serde_json::from_value(version.spec).map_err(|e| permanent(e.to_string()))?;
        let steps =
            crate::journal::read_all(&*rt.runs, &run.id).await.map_err(|e| JobError::Retry(format!("storage: {e}")))?;
        let replay = Replay::of(&steps).map_err(|e| permanent(e.to_string()))?;
        let seq = steps.last().map_or(0, |s| s.seq);
        let principal = match rt.keys.get_key(&run.key_id).await.map_err(|e| JobError::Retry(e.to_string()))? {
            Some(k)
                if k.revoked_at_ms.is_none()
                    && (k.tenant_id == run.tenant_id || k.role == cairn_core::tenancy::Role::Owner) =>
            {
                Principal { key_id: k.id, tenant_id: k.tenant_id, role: k.role, limits: k.limits }
            }
            _ => return Err(permanent("the key that started this run was revoked".into())),
        };
        let cancel = ctx.cancel_token().child_token();
        let guard = rt.hub.running(&run.id, cancel.clone());
        let mut call = CallContext::new(principal, run.id.clone());
        call.trace = ctx.trace;
        call.cancel = cancel;
        // The run reads its model's stream itself: no client connection is held open.
        call.holds_connection = false;
        let tools = rt.tools.definitions(&run.tenant_id, &spec).await;
        let memory = spec.memory.clone().map(|settings| crate::ports::MemoryScope {
            tenant_id: run.tenant_id.clone(),
            agent_id: run.agent_id.clone(),
            end_user: run.input["end_user"].as_str().unwrap_or_default().to_owned(),
            settings,
        });
        Ok(Stepper {
            memory,
            rt,
            tools,
            spec,
            call,
            journal: Mutex::new(Journal { seq, replay, pending: Vec::new() }),
            history: Vec::new(),
            run,
            _guard: guard,
        })
    }

    /// Takes the run (queued, or running when a crash left it so) and steps it.
    pub(crate) async fn start(mut self) -> Result<Option<RunState>, JobError> {
        let now = now_ms();
        let open = [RunState::Queued, RunState::Running];
        match self.rt.runs.set_run_state(&self.run.id, &open, RunState::Running, None, now).await {
            Ok(Some(run)) => self.run = run,
            Ok(None) => return Ok(None),
            Err(e) => return Err(JobError::Retry(format!("storage: {e}"))),
        }
        let r = self.go().await;
        outcome(r)
    }

    /// Ends the run's pause if it ran out: unanswered approvals are rejected (the run goes on),
    /// and a run still waiting for client outputs ends `expired`.
    pub(crate) async fn expire(mut self) -> Result<Option<RunState>, JobError> {
        let r = async {
            let (waiting, due) = {
                let j = self.journal.lock().await;
                let waiting: Vec<PendingAction> = j.replay.waiting().into_iter().cloned().collect();
                (waiting, j.replay.wait_until.is_some_and(|t| t <= now_ms()))
            };
            if waiting.is_empty() || !due {
                return Err(Halt::Lost);
            }
            if waiting.iter().any(|w| w.kind == ActionKind::ClientOutput) {
                let reason = "the client tool outputs did not come in time".to_owned();
                return self.end(RunState::Expired, Some(reason), None).await;
            }
            for w in waiting {
                let taken = ActionTaken {
                    call_id: w.call_id,
                    decision: Decision::Reject { message: Some("the approval expired".into()) },
                    by: "system:expiry".into(),
                };
                self.append(StepKind::ActionTaken, &taken).await?;
            }
            let moved = self
                .rt
                .runs
                .set_run_state(&self.run.id, &[RunState::RequiresAction], RunState::Running, None, now_ms())
                .await
                .map_err(storage)?;
            self.run = moved.ok_or(Halt::Lost)?;
            self.go().await
        }
        .await;
        outcome(r)
    }

    /// Appends one journal entry; `Lost` when the journal moved on without this worker.
    pub(crate) async fn append<T: Serialize>(&self, kind: StepKind, entry: &T) -> Result<(), Halt> {
        self.defer(kind, entry).await?;
        self.flush().await
    }

    /// Adds one journal entry to what the run knows, to be stored with the next `flush`.
    pub(crate) async fn defer<T: Serialize>(&self, kind: StepKind, entry: &T) -> Result<(), Halt> {
        let mut j = self.journal.lock().await;
        let value = payload(entry);
        let seq = j.seq + j.pending.len() as u64 + 1;
        let step = RunStep { run_id: self.run.id.clone(), seq, kind, payload: value.clone(), created_at_ms: now_ms() };
        j.replay.apply(&step).map_err(|e| Halt::Job(JobError::Permanent(e.to_string())))?;
        j.pending.push((kind, value));
        Ok(())
    }

    /// Stores the pending entries, all in one transaction.
    async fn flush(&self) -> Result<(), Halt> {
        let mut j = self.journal.lock().await;
        if j.pending.is_empty() {
            return Ok(());
        }
        let append =
            Append { run_id: self.run.id.clone(), expected: j.seq, entries: j.pending.clone(), now_ms: now_ms() };
        if !self.rt.journal.append(append).await.map_err(storage)? {
            return Err(Halt::Lost);
        }
        j.seq += j.pending.len() as u64;
        j.pending.clear();
        self.rt.hub.publish(&self.run.id, RunNews::Appended(j.seq));
        Ok(())
    }

    /// Steps the run until it ends or pauses.
    async fn go(&mut self) -> Result<RunState, Halt> {
        self.prepare_history().await?;
        loop {
            if self.call.cancel.is_cancelled() {
                // Results not stored yet are kept if the journal still takes them (a shutdown;
                // a cancelled run refuses them): a finished call is then not made again.
                let _ = self.flush().await;
                return Err(Halt::Lost);
            }
            let next = {
                let mut j = self.journal.lock().await;
                // Wall time runs from the start, less the time spent waiting for people.
                let limit_ms = i64::from(self.spec.limits.max_wall_secs) * 1000;
                let since = j.replay.started_at_ms.unwrap_or(self.run.created_at_ms);
                j.replay.out_of_time = now_ms() - since - j.replay.waited_ms >= limit_ms;
                j.replay.next(&self.spec)
            };
            match next {
                Next::CallModel { final_call } => {
                    if let Some(cap) = final_call {
                        self.close_unfinished(cap).await?;
                    }
                    match self.call_model(final_call).await {
                        Err(Halt::Stop(reason)) => {
                            let answer = format!("The run stopped: {reason}.");
                            return self.end(RunState::Succeeded, Some(reason), Some(answer)).await;
                        }
                        other => other?,
                    }
                }
                Next::CallTools(calls) => {
                    if let Some(state) = crate::act::tools(self, calls, false).await? {
                        return Ok(state);
                    }
                }
                Next::Resolve(calls) => {
                    if let Some(state) = crate::act::tools(self, calls, true).await? {
                        return Ok(state);
                    }
                }
                Next::Finish { answer, cap } => return self.finish(answer, cap).await,
                Next::Ended(state) => return self.settle(state).await,
            }
        }
    }

    /// Journals where the history ends (appending the run's input to its thread first), once,
    /// then loads that history.
    async fn prepare_history(&mut self) -> Result<(), Halt> {
        let inputs: Vec<ChatMessage> = serde_json::from_value(self.run.input["messages"].clone()).unwrap_or_default();
        let Some(thread) = self.run.thread_id.clone() else {
            self.history = inputs;
            if self.journal.lock().await.replay.history_to.is_none() {
                self.append(StepKind::Started, &Started { history_to: 0 }).await?;
            }
            return self.recall_before_run().await;
        };
        let known = self.journal.lock().await.replay.history_to;
        let mut messages = Vec::new();
        loop {
            let after = messages.last().map_or(0, |m: &cairn_core::runs::ThreadMessage| m.seq);
            if known.is_some_and(|to| after >= to) {
                break;
            }
            let page = self.rt.runs.list_messages(&thread, after, PAGE).await.map_err(storage)?;
            let done = page.len() < PAGE as usize;
            messages.extend(page);
            if done {
                break;
            }
        }
        let history_to = match known {
            Some(to) => to,
            None => {
                // A crash after the input went in and before `Started` must not add it twice.
                let mine = messages.iter().any(|m| m.run_id.as_deref() == Some(self.run.id.as_str()));
                if !inputs.is_empty() && !mine {
                    let added = self
                        .rt
                        .runs
                        .append_messages(&thread, &inputs, Some(&self.run.id), now_ms())
                        .await
                        .map_err(storage)?;
                    messages.extend(added);
                }
                let to = messages.last().map_or(0, |m| m.seq);
                self.append(StepKind::Started, &Started { history_to: to }).await?;
                to
            }
        };
        self.history = messages.into_iter().filter(|m| m.seq <= history_to).map(|m| m.message).collect();
        self.fit_history().await?;
        self.recall_before_run().await
    }

    /// Answers the last output's open calls as not run, before a final call without tools.
    async fn close_unfinished(&self, cap: Cap) -> Result<(), Halt> {
        let open = self.journal.lock().await.replay.unfinished();
        for call in open {
            let result =
                ToolResult { call_id: call.id, content: format!("Not run: {}.", cap.reason()), is_error: true };
            self.append(StepKind::ToolResult, &result).await?;
        }
        Ok(())
    }

    /// The request of the run's next model call.
    async fn model_request(&self, final_call: Option<Cap>) -> ChatRequest {
        let tools = if final_call.is_none() { self.tools.clone() } else { Vec::new() };
        let with_tools = !tools.is_empty();
        let response_format = self.spec.output_schema.as_ref().map(
            |schema| serde_json::json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}),
        );
        let (must_call, max_tokens) = self.call_settings(final_call, with_tools).await;
        ChatRequest {
            model: self.spec.model.clone(),
            messages: self.messages(final_call).await,
            stream: Some(true),
            stream_options: Some(StreamOptions { include_usage: true }),
            tools: with_tools.then_some(tools),
            tool_choice: must_call.then(|| serde_json::json!("required")),
            temperature: self.spec.temperature,
            max_tokens,
            response_format,
            ..Default::default()
        }
    }

    /// One model call, streamed (its text goes out as news), journaled whole when it ends.
    async fn call_model(&self, final_call: Option<Cap>) -> Result<(), Halt> {
        let req = self.model_request(final_call).await;
        let with_tools = req.tools.is_some();
        let estimate = req.estimated_prompt_tokens();
        let step = self.journal.lock().await.replay.steps + 1;
        let mut call = self.call.clone();
        call.request_id = format!("{}:{step}", self.run.id);
        // A key's rate limit makes the run wait in place: it is not a failed attempt (the
        // request is built again then, rather than copied for every call).
        let open = async {
            let mut first = Some(req);
            loop {
                let req = match first.take() {
                    Some(req) => req,
                    None => self.model_request(final_call).await,
                };
                match self.rt.models.stream(&call, req).await {
                    Ok(ok) => break Ok(ok),
                    Err(Error::RateLimited { retry_after, .. }) => {
                        tokio::select! {
                            _ = tokio::time::sleep(retry_after.max(std::time::Duration::from_millis(10))) => {}
                            _ = self.call.cancel.cancelled() => break Err(Halt::Lost),
                        }
                    }
                    Err(e) => break Err(self.model_error(e)),
                }
            }
        };
        // What the model is about to read (the last tool results) is stored while its call
        // starts: its answer is journaled only after that store, and a crash before the store
        // ends leaves those results unjournaled, as a crash during the tool calls would.
        let ((), (mut stream, routed)) = tokio::try_join!(self.flush(), open)?;
        let mut folded = Folded::default();
        loop {
            let event = tokio::select! {
                e = stream.next() => e,
                _ = self.call.cancel.cancelled() => return Err(Halt::Lost),
            };
            match event {
                Some(StreamEvent::Chunk(chunk)) => {
                    if let Some(text) = folded.add(&chunk) {
                        self.rt.hub.publish(&self.run.id, RunNews::Delta(text));
                    }
                }
                Some(StreamEvent::Error(message)) => {
                    return Err(Halt::Job(JobError::Retry(format!("the model stream broke: {message}"))))
                }
                // The same conversation would be refused again: the run ends, saying why.
                Some(StreamEvent::Refused { message, .. }) => return Err(Halt::Stop(message)),
                Some(StreamEvent::Done) | None => break,
            }
        }
        let usage = folded.usage.clone();
        let message = folded.message();
        let (input, output) = match usage {
            Some(u) => (u.prompt_tokens, u.completion_tokens),
            None => (estimate, (message.text_content().chars().count() as u64).div_ceil(4)),
        };
        let cost_usd = self.rt.models.cost(&self.spec.model, &routed, input, output);
        let out = ModelOutput {
            message,
            input_tokens: input,
            output_tokens: output,
            cost_usd,
            tools_offered: with_tools,
            final_for: final_call,
        };
        // Stored with the next entry that must be durable (the calls' start, the end).
        self.defer(StepKind::ModelOutput, &out).await
    }

    /// What a failed model call means for the run.
    fn model_error(&self, e: Error) -> Halt {
        match e {
            Error::RateLimited { message, retry_after }
            | Error::Unavailable { message, retry_after: Some(retry_after) } => {
                Halt::Job(JobError::RetryAfter { after: retry_after, message })
            }
            Error::Upstream { message, .. } | Error::Unavailable { message, .. } | Error::Internal(message) => {
                Halt::Job(JobError::Retry(message))
            }
            // The key's budget: a graceful stop (see `finish`).
            Error::BudgetExceeded { message, .. } => Halt::Stop(format!("the key's budget has no room: {message}")),
            // A guard would refuse the same conversation again: the run ends, saying why.
            blocked @ Error::GuardBlocked { .. } => Halt::Stop(blocked.to_string()),
            other => Halt::Job(JobError::Permanent(format!("the model call was refused: {other}"))),
        }
    }

    /// Ends the run with its answer (or, after a cap without a final call, a message saying so).
    async fn finish(&self, answer: Option<String>, cap: Option<Cap>) -> Result<RunState, Halt> {
        let reason = cap.map(|c| c.reason().to_owned());
        let answer = match (answer, &reason) {
            (Some(a), _) if !a.is_empty() => a,
            (_, Some(r)) => format!("The run stopped: {r}."),
            (_, None) => String::new(),
        };
        if cap.is_none() {
            if let Some(schema) = &self.spec.output_schema {
                if let Err(why) = self.rt.tools.check_output(schema, &answer) {
                    return self.end(RunState::Failed, Some(why), Some(answer)).await;
                }
            }
        }
        self.end(RunState::Succeeded, reason, Some(answer)).await
    }

    /// Pauses the run on `items` until they are answered or `max_wait_secs` runs out.
    pub(crate) async fn pause(&self, items: Vec<PendingAction>) -> Result<RunState, Halt> {
        let expires_at_ms = now_ms() + i64::from(self.spec.limits.max_wait_secs) * 1000;
        if !items.is_empty() {
            self.defer(StepKind::ActionRequested, &ActionRequested { items, expires_at_ms }).await?;
        }
        self.flush().await?;
        let seq = self.journal.lock().await.seq;
        let moved = self
            .rt
            .runs
            .set_run_state(&self.run.id, &[RunState::Running], RunState::RequiresAction, None, now_ms())
            .await
            .map_err(storage)?;
        let run = moved.ok_or(Halt::Lost)?;
        let until = self.journal.lock().await.replay.wait_until.unwrap_or(expires_at_ms);
        let job = self.rt.job_for(&run, &format!("expire:{seq}"), Some(until), true);
        self.rt.enqueue(&run, job).await.map_err(storage)?;
        // The pause's entry is visible before its state: answers may already be in. Nothing
        // left waiting, the run goes on (the same resume job the answers' route would queue).
        let late = self.rt.runs.list_steps(&self.run.id, seq, PAGE).await.map_err(storage)?;
        let mut j = self.journal.lock().await;
        for step in &late {
            j.replay.apply(step).map_err(|e| Halt::Job(JobError::Permanent(e.to_string())))?;
            j.seq = step.seq;
        }
        if !late.is_empty() && j.replay.waiting().is_empty() {
            let seq = j.seq;
            drop(j);
            let to = RunState::Queued;
            if let Some(run) = self
                .rt
                .runs
                .set_run_state(&run.id, &[RunState::RequiresAction], to, None, now_ms())
                .await
                .map_err(storage)?
            {
                self.rt
                    .enqueue(&run, self.rt.job_for(&run, &format!("resume:{seq}"), None, false))
                    .await
                    .map_err(storage)?;
            }
        }
        Ok(RunState::RequiresAction)
    }

    /// The agent.
    pub(crate) fn spec(&self) -> &AgentSpec {
        &self.spec
    }

    /// The runtime.
    pub(crate) fn rt(&self) -> &Runtime {
        &self.rt
    }

    /// The replayed journal, briefly.
    pub(crate) async fn replay<T>(&self, f: impl FnOnce(&Replay) -> T) -> T {
        f(&self.journal.lock().await.replay)
    }

    /// Journals that call `call_id` is starting, makes it, and journals its result.
    pub(crate) async fn make_call(&self, tool: &str, call_id: &str, arguments: Value) -> Result<(), Halt> {
        let step = self.journal.lock().await.replay.steps;
        let key = idempotency_key(&self.run.id, step, call_id);
        self.append(StepKind::ToolStarted, &ToolStarted { call_id: call_id.into(), idempotency_key: key.clone() })
            .await?;
        let spec = self.spec.tools.get(tool).ok_or(Halt::Lost)?;
        let mut span = crate::act::tool_span(self, tool, call_id);
        let ctx = ToolCallCtx {
            call: &self.call.under(&span),
            run_id: &self.run.id,
            tool,
            idempotency_key: &key,
            memory: self.memory.as_ref(),
        };
        let outcome = self.rt.tools.call(&ctx, spec, arguments).await;
        if self.call.cancel.is_cancelled() {
            return Err(Halt::Lost);
        }
        let (content, is_error) = match outcome {
            Ok(text) => (text, false),
            Err(why) => (format!("Error: {why}"), true),
        };
        crate::act::end_tool_span(self, &mut span, &content, is_error);
        // Stored with what comes next (the next model call stores it while it starts).
        self.defer(StepKind::ToolResult, &ToolResult { call_id: call_id.into(), content, is_error }).await
    }

    /// Journals a result for call `call_id` without making it (an error the model reads).
    pub(crate) async fn answer(&self, call_id: &str, content: String) -> Result<(), Halt> {
        self.append(StepKind::ToolResult, &ToolResult { call_id: call_id.into(), content, is_error: true }).await
    }

    /// Whether approval rules ask a person about a call of a tool with this policy.
    pub(crate) fn needs_approval(&self, approval: &Approval, args: &Value) -> bool {
        match approval {
            Approval::Never => false,
            Approval::Always => true,
            Approval::When(rule) => self.rt.rules.matches(rule, args),
        }
    }

    /// Whether tools of `kind` run here (client tools are the caller's).
    pub(crate) fn is_client(kind: ToolKind) -> bool {
        kind == ToolKind::Client
    }
}

/// What a turn's end means for its job.
fn outcome(r: Result<RunState, Halt>) -> Result<Option<RunState>, JobError> {
    match r {
        Ok(state) => Ok(Some(state)),
        Err(Halt::Lost) => Ok(None),
        Err(Halt::Stop(why)) => Err(JobError::Permanent(why)),
        Err(Halt::Job(e)) => Err(e),
    }
}
