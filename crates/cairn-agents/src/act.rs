//! Acting on a model output's tool calls: each call is checked (a known tool, arguments its
//! schema admits), then made, answered with an error the model reads, or held for someone
//! (an approval, a client tool's output, a call a crash left unresolved). Calls that may run
//! run in parallel, at most `max_parallel_tools` at once; the run pauses after them if any
//! call is held.

use cairn_core::openai::ToolCall;
use cairn_core::runs::RunState;
use cairn_core::trace::{attrs, ActiveSpan, SpanKind};
use futures::StreamExt;
use serde_json::Value;

use crate::actions::{ActionKind, PendingAction};
use crate::step::{Halt, Stepper};

/// Acts on `calls` (all open calls of the last output; `started` when a crash interrupted
/// them). Returns the state the run paused in, or `None` to go on.
pub(crate) async fn tools(s: &Stepper, calls: Vec<ToolCall>, started: bool) -> Result<Option<RunState>, Halt> {
    let spec = s.spec();
    let mut run_now: Vec<(String, String, Value)> = Vec::new();
    let mut held: Vec<PendingAction> = Vec::new();
    let mut still_waiting = false;
    for call in calls {
        let (open, waiting, approval) = s
            .replay(|r| {
                let waiting = r.waiting().iter().any(|w| w.call_id == call.id);
                (r.is_open(&call.id), waiting, r.approval(&call.id).map(|a| a.cloned()))
            })
            .await;
        if !open {
            continue;
        }
        if waiting {
            still_waiting = true;
            continue;
        }
        let name = &call.function.name;
        let Some(tool) = spec.tools.get(name) else {
            let known: Vec<&str> = spec.tools.keys().map(String::as_str).collect();
            let why = format!("Error: there is no tool '{name}'; the tools are: {}", known.join(", "));
            s.answer(&call.id, why).await?;
            continue;
        };
        let raw = match &approval {
            Some(Some(edited)) => edited.clone(),
            _ => Value::String(call.function.arguments.clone()),
        };
        // Arguments that do not read never run (fails closed): the model reads why.
        let args = match s.rt().tools.check_arguments(&s.run.tenant_id, tool, &raw).await {
            Ok(args) => args,
            Err(why) => {
                s.answer(&call.id, format!("Error: {why}")).await?;
                continue;
            }
        };
        let hold = |kind: ActionKind, reason: &str| PendingAction {
            call_id: call.id.clone(),
            tool: name.clone(),
            arguments: call.function.arguments.clone(),
            kind,
            reason: reason.to_owned(),
        };
        let client = Stepper::is_client(tool.kind);
        if approval.is_none() && started && !tool.idempotent {
            held.push(hold(
                ActionKind::Unresolved,
                "the call was interrupted after it started and the tool is not idempotent: approve to make it again",
            ));
        } else if approval.is_none() && s.needs_approval(&tool.approval, &args) {
            held.push(hold(ActionKind::Approval, "the tool's approval policy asks a person first"));
        } else if client {
            // Approved (perhaps edited) or needing no approval: the client runs it.
            let mut item = hold(ActionKind::ClientOutput, "a client tool: post its output");
            item.arguments = args.to_string();
            held.push(item);
        } else {
            run_now.push((name.clone(), call.id.clone(), args));
        }
    }
    // The tool call cap holds within one output too: the calls past it are not made.
    let room = s.replay(|r| spec.limits.max_tool_calls.saturating_sub(r.tool_calls)).await as usize;
    if run_now.len() > room {
        for (_, id, _) in run_now.split_off(room) {
            s.answer(&id, "Not run: the run reached its tool call limit.".into()).await?;
        }
    }
    let parallel = spec.limits.max_parallel_tools.max(1) as usize;
    let outcomes: Vec<Result<(), Halt>> = futures::stream::iter(run_now)
        .map(|(name, id, args)| async move { s.make_call(&name, &id, args).await })
        .buffer_unordered(parallel)
        .collect()
        .await;
    for outcome in outcomes {
        outcome?;
    }
    if !held.is_empty() || still_waiting {
        return s.pause(held).await.map(Some);
    }
    Ok(None)
}

/// Opens the span of one tool call, a child of the run's span.
pub(crate) fn tool_span(s: &Stepper, tool: &str, call_id: &str) -> ActiveSpan {
    let mut span = s.call.span(&s.rt().tracer, format!("execute_tool {tool}"), SpanKind::Internal);
    if span.recording() {
        span.set(attrs::OPERATION, "execute_tool");
        span.set(attrs::TOOL_NAME, tool.to_owned());
        span.set(attrs::TOOL_CALL_ID, call_id.to_owned());
        span.set(attrs::RUN_ID, s.run.id.clone());
    }
    span
}

/// Ends a tool call's span with its outcome (the result itself only under `full` capture,
/// redacted).
pub(crate) fn end_tool_span(s: &Stepper, span: &mut ActiveSpan, content: &str, is_error: bool) {
    let outcome = if is_error { "error" } else { "ok" };
    s.rt().metrics.agent_tool_calls.get_or_create(&vec![("outcome", outcome.to_owned())]).inc();
    let kept = s.rt().tracer.content(content);
    if is_error {
        span.set(attrs::ERROR_TYPE, "tool_error");
        // The error text may quote the call's arguments: content, kept only under `full`.
        span.fail(kept.as_deref().map_or("the tool call failed", |t| t).chars().take(500).collect::<String>());
    }
    if let Some(text) = kept {
        span.set("cairn.tool.result", text);
    }
    if !is_error {
        span.ok();
    }
}
