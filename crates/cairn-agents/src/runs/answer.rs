//! Answering what a run waits on: approvals of its tool calls (approve, reject, edit) and
//! client tool outputs. Each answer is checked against what the run waits on, journaled, and,
//! for approvals, recorded in the audit log; when nothing is left waiting the run is queued.

use cairn_core::audit::{self, AuditAction};
use cairn_core::runs::{RunState, StepKind};
use cairn_core::tenancy::Role;
use cairn_core::time::now_ms;
use cairn_core::{CallContext, Error, Result};
use cairn_jobs::EnqueueRequest;
use serde_json::json;

use super::{view, ActionAnswer, RunService, RunView};
use crate::actions::{ActionKind, ActionTaken, Decision, PendingAction};
use crate::events::RunNews;
use crate::journal::payload;

impl RunService {
    /// Journals `answers` (each for a call the run waits on, of the kind the route takes), and
    /// when nothing is left waiting, queues the run again.
    pub(super) async fn answer(
        &self,
        ctx: &CallContext,
        id: &str,
        answers: Vec<ActionAnswer>,
        client: bool,
    ) -> Result<RunView> {
        let caller = &ctx.principal;
        caller.require(Role::Member)?;
        let run = self.visible(caller, id).await?;
        if answers.is_empty() || answers.len() > 100 {
            return Err(Error::invalid_param("answers", "send 1 to 100 answers"));
        }
        let replay = self.replay(&run).await?;
        // A pause's entry is journaled just before its state changes: a run still `running`
        // with calls waiting is pausing, and takes answers (the runner picks them up).
        let pausing = run.state == RunState::Running && !replay.waiting().is_empty();
        if run.state != RunState::RequiresAction && !pausing {
            let state = run.state.as_str();
            return Err(Error::Conflict(format!("run '{id}' is not waiting for action (it is {state})")));
        }
        let spec = self.spec(&run).await?;
        let waiting: Vec<PendingAction> = replay.waiting().into_iter().cloned().collect();
        let mut seen = std::collections::BTreeSet::new();
        let mut decided = Vec::with_capacity(answers.len());
        let mut approvals = Vec::new();
        for (i, a) in answers.iter().enumerate() {
            let list = if client { "outputs" } else { "answers" };
            let at = |field: &str| format!("{list}[{i}].{field}");
            let decision = a.decision(&at)?;
            let Some(item) = waiting.iter().find(|w| w.call_id == a.call_id) else {
                return Err(Error::invalid_param(
                    at("call_id"),
                    format!("the run does not wait on call '{}'", a.call_id),
                ));
            };
            if !seen.insert(a.call_id.clone()) {
                return Err(Error::invalid_param(at("call_id"), format!("call '{}' is answered twice", a.call_id)));
            }
            match (client, item.kind, &a.decision) {
                (true, ActionKind::ClientOutput, _) | (false, ActionKind::Approval | ActionKind::Unresolved, _) => {}
                (false, ActionKind::ClientOutput, _) => {
                    return Err(Error::invalid_param(at("call_id"), "a client tool's output goes to /tool_outputs"))
                }
                (true, _, _) => {
                    return Err(Error::invalid_param(at("call_id"), "this call waits for approval: use /approvals"))
                }
            }
            match &decision {
                Decision::Edit { arguments } => {
                    let tool =
                        spec.tools.get(&item.tool).ok_or_else(|| Error::Internal("pending tool missing".into()))?;
                    self.rt
                        .tools
                        .check_arguments(&run.tenant_id, tool, arguments)
                        .await
                        .map_err(|e| Error::invalid_param(at("arguments"), e))?;
                }
                Decision::Reject { message: Some(m) } | Decision::Respond { output: m }
                    if m.chars().count() > 262_144 =>
                {
                    return Err(Error::invalid_param(at("output"), "at most 262144 characters"));
                }
                _ => {}
            }
            if !client {
                approvals.push(json!({"call_id": a.call_id, "tool": item.tool, "decision": a.decision}));
            }
            decided.push((a.call_id.clone(), decision));
        }
        let mut seq = run.steps;
        let now = now_ms();
        for (call_id, decision) in decided {
            let taken = ActionTaken { call_id, decision, by: caller.key_id.clone() };
            if !self.rt.runs.append_step(id, seq, StepKind::ActionTaken, &payload(&taken), now).await? {
                return Err(Error::Conflict(format!("run '{id}' changed while answering: read it again and retry")));
            }
            seq += 1;
            self.rt.hub.publish(id, RunNews::Appended(seq));
        }
        for details in approvals {
            audit::record(&*self.rt.audit, caller, &run.tenant_id, AuditAction::RunApproval, id, details).await;
        }
        let run = self.visible(caller, id).await?;
        let replay = self.replay(&run).await?;
        if replay.waiting().is_empty() {
            let moved =
                self.rt.runs.set_run_state(id, &[RunState::RequiresAction], RunState::Queued, None, now).await?;
            if let Some(run) = moved {
                let job = self.rt.job_for(&run, &format!("resume:{seq}"), None, false);
                self.rt.enqueue(&run, EnqueueRequest { trace: Some(ctx.trace), ..job }).await?;
                return view(run, &replay);
            }
        }
        view(run, &replay)
    }
}
