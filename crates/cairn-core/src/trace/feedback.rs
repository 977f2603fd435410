//! Feedback and evaluations: scores people (or `cairn eval answers`) give a trace, a RAG
//! answer or an agent run, and the stored results of answer evaluations. Both are kept per
//! tenant beside the traces they judge.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::store::StoreResult;

/// What a piece of feedback judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FeedbackTarget {
    /// A whole trace (by trace id).
    Trace,
    /// A RAG answer (by the answer's id).
    Answer,
    /// An agent run (by run id).
    Run,
}

impl FeedbackTarget {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackTarget::Trace => "trace",
            FeedbackTarget::Answer => "answer",
            FeedbackTarget::Run => "run",
        }
    }

    /// Reads a stored name (unknown ones as `trace`).
    pub fn parse(s: &str) -> Self {
        match s {
            "answer" => FeedbackTarget::Answer,
            "run" => FeedbackTarget::Run,
            _ => FeedbackTarget::Trace,
        }
    }
}

/// A score: a number, a yes/no, or a category.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Score {
    /// Yes or no (thumbs up or down).
    Boolean(bool),
    /// A number (a rating, a 0-1 metric).
    Numeric(f64),
    /// A label (`correct`, `off-topic`).
    Categorical(String),
}

/// One stored piece of feedback.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Feedback {
    /// `fb_...`.
    pub id: String,
    /// The tenant whose trace it judges.
    pub tenant_id: String,
    /// What it judges.
    pub target: FeedbackTarget,
    /// The trace id, answer id or run id judged.
    pub target_id: String,
    /// The trace it belongs to, when known (a run's trace may not be stored yet).
    pub trace_id: Option<String>,
    /// What is scored (`helpful`, `faithfulness`).
    pub name: String,
    /// The score.
    pub score: Score,
    /// Free text.
    pub comment: Option<String>,
    /// Who gave it, as the caller says (an end user id, a reviewer, `eval:RUN`).
    pub author: Option<String>,
    /// The key that sent it.
    pub key_id: String,
    /// When, Unix milliseconds.
    pub created_ms: i64,
}

/// One question of an answer evaluation and how its answer scored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EvalItem {
    /// The question asked.
    pub question: String,
    /// The answer's id (feedback with its scores is attached to it).
    pub answer_id: Option<String>,
    /// The documents expected to be cited.
    pub expected: Vec<String>,
    /// The documents cited.
    pub cited: Vec<String>,
    /// Share of cited documents that were expected (absent when nothing was cited).
    #[schema(minimum = 0, maximum = 1)]
    pub citation_precision: Option<f64>,
    /// Share of expected documents that were cited (absent when none were expected).
    #[schema(minimum = 0, maximum = 1)]
    pub citation_recall: Option<f64>,
    /// The judge's faithfulness score, 0-1 (absent without a judge or when it failed).
    #[schema(minimum = 0, maximum = 1)]
    pub faithfulness: Option<f64>,
    /// Why an answer or a judgement failed.
    pub error: Option<String>,
}

/// A stored answer evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EvalRun {
    /// `eval_...`.
    pub id: String,
    /// The tenant it ran for.
    pub tenant_id: String,
    /// The collection asked.
    pub collection_id: String,
    /// The dataset's name (its file name).
    pub dataset: String,
    /// The model that answered (absent: the collection's default).
    pub model: Option<String>,
    /// The judge model (absent: no faithfulness scores).
    pub judge: Option<String>,
    /// Questions asked.
    pub questions: u32,
    /// Mean citation precision over the answers that cited something.
    pub citation_precision: Option<f64>,
    /// Mean citation recall over the questions that expected something.
    pub citation_recall: Option<f64>,
    /// Mean faithfulness over the judged answers.
    pub faithfulness: Option<f64>,
    /// Every question's result.
    pub items: Vec<EvalItem>,
    /// The key that stored it.
    pub key_id: String,
    /// When, Unix milliseconds.
    pub created_ms: i64,
}

/// Stored feedback and evaluations.
#[async_trait]
pub trait FeedbackStore: Send + Sync {
    /// Stores `f` unless its target already holds `max_per_target` pieces; false then.
    async fn insert_feedback(&self, f: &Feedback, max_per_target: u32) -> StoreResult<bool>;
    /// Feedback on trace `trace_id` of `tenant` (`None`: any tenant), oldest first.
    async fn feedback_for_trace(&self, tenant: Option<&str>, trace_id: &str) -> StoreResult<Vec<Feedback>>;
    /// Feedback on one target of `tenant`, oldest first.
    async fn feedback_for(&self, tenant: &str, target: FeedbackTarget, id: &str) -> StoreResult<Vec<Feedback>>;
    /// Deletes up to `limit` pieces of `tenant`'s feedback given before `before_ms`.
    async fn delete_feedback_before(&self, tenant: &str, before_ms: i64, limit: u32) -> StoreResult<u64>;
    /// Stores an evaluation.
    async fn insert_eval(&self, e: &EvalRun) -> StoreResult<()>;
    /// `tenant`'s evaluations (`None`: every tenant's), newest first, without their items.
    async fn list_evals(&self, tenant: Option<&str>, limit: u32) -> StoreResult<Vec<EvalRun>>;
    /// One evaluation of `tenant` (`None`: any tenant's), with its items.
    async fn get_eval(&self, tenant: Option<&str>, id: &str) -> StoreResult<Option<EvalRun>>;
}
