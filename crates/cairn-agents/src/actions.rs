//! What a run waits for and what it is told: the items of a pause (`ActionRequested`) and each
//! answer (`ActionTaken`), as journaled. A pause names each tool call that cannot go on alone
//! (it needs a person's approval, it is the client's to run, or a crash left it unresolved);
//! each answer settles one call and records who gave it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Why a tool call waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// The tool's approval policy asks a person first.
    Approval,
    /// A client tool: the caller runs it and posts the output.
    ClientOutput,
    /// A crash interrupted the call after it started, and the tool is not idempotent: a person
    /// decides whether to make it again.
    Unresolved,
}

/// One call a run waits on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PendingAction {
    /// The model's call id.
    pub call_id: String,
    /// The tool called.
    pub tool: String,
    /// The arguments as the model wrote them (a JSON string, possibly malformed).
    pub arguments: String,
    /// Why it waits.
    pub kind: ActionKind,
    /// Why, in words.
    pub reason: String,
}

/// A pause: the calls the run waits on, and until when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ActionRequested {
    /// The calls.
    pub items: Vec<PendingAction>,
    /// After this (Unix ms), unanswered approvals count as rejected and a run still waiting for
    /// client outputs ends `expired`.
    pub expires_at_ms: i64,
}

/// An answer to one pending call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Run the call as the model wrote it.
    Approve,
    /// Do not run it; the model reads `message` as the call's result.
    Reject {
        /// Why, for the model.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Run it with these arguments instead (checked against the tool's schema).
    Edit {
        /// The new arguments (an object).
        #[schema(value_type = Object)]
        arguments: Value,
    },
    /// Do not run it; the model reads `output` as the call's result (a client tool's output, or
    /// a person answering in the tool's place).
    Respond {
        /// The result text.
        output: String,
    },
}

/// One answer, journaled with who gave it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionTaken {
    /// The call it answers.
    pub call_id: String,
    /// The answer.
    #[serde(flatten)]
    pub decision: Decision,
    /// The key that answered (`system:expiry` when the wait ran out).
    pub by: String,
}

impl ActionTaken {
    /// The tool result the model reads when this answer settles the call without running it.
    pub fn result(&self) -> Option<(String, bool)> {
        match &self.decision {
            Decision::Reject { message } => Some((
                match message {
                    Some(m) => format!("A person rejected this call: {m}"),
                    None => "A person rejected this call.".to_owned(),
                },
                true,
            )),
            Decision::Respond { output } => Some((output.clone(), false)),
            Decision::Approve | Decision::Edit { .. } => None,
        }
    }
}
