//! Feedback and evaluations: scores on a trace, a RAG answer (its id names the answer's span:
//! `ans_` + trace id + span id) or an agent run, and stored answer evaluations. Every check of
//! who may judge or read what is here, not in the handlers.

use std::sync::Arc;

use cairn_core::runs::RunStore;
use cairn_core::tenancy::{Principal, Role};
use cairn_core::trace::{
    EvalItem, EvalRun, Feedback, FeedbackStore, FeedbackTarget, Score, StoredSpan, TraceId, TraceQuery, TraceStore,
};
use cairn_core::{Error, Result};
use serde::Deserialize;

use crate::traces::TraceService;

/// Most feedback one trace, answer or run holds (a guard against floods).
pub const MAX_PER_TARGET: u32 = 1_000;
/// Longest comment, in characters.
const MAX_COMMENT: usize = 4_000;
/// Most questions one stored evaluation holds.
const MAX_EVAL_ITEMS: usize = 1_000;

/// Feedback as clients send it.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// What is scored, e.g. `helpful`, `correct` (default `feedback`).
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub name: Option<String>,
    /// `true`/`false`, a number, or a category (1-128 characters).
    pub score: Score,
    /// Free text, up to 4000 characters.
    #[schema(max_length = 4000)]
    pub comment: Option<String>,
    /// Who gives it (an end user id, a reviewer), up to 256 characters.
    #[schema(max_length = 256)]
    pub author: Option<String>,
}

/// An evaluation as `cairn eval answers` stores it; the averages are computed here.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEval {
    /// The collection asked.
    #[schema(min_length = 1, max_length = 128)]
    pub collection_id: String,
    /// The dataset's name.
    #[schema(min_length = 1, max_length = 256)]
    pub dataset: String,
    /// The answering model, if not the default.
    #[schema(min_length = 1, max_length = 256)]
    pub model: Option<String>,
    /// The judge model, if any.
    #[schema(min_length = 1, max_length = 256)]
    pub judge: Option<String>,
    /// Every question's result (1-1000).
    #[schema(min_items = 1, max_items = 1000)]
    pub items: Vec<EvalItem>,
}

/// Takes feedback and stores evaluations.
pub struct FeedbackService {
    store: Arc<dyn FeedbackStore>,
    spans: Arc<dyn TraceStore>,
    runs: Arc<dyn RunStore>,
    traces: Arc<TraceService>,
}

impl FeedbackService {
    /// Feedback over `store`, checking targets against stored traces and runs.
    pub fn new(
        store: Arc<dyn FeedbackStore>,
        spans: Arc<dyn TraceStore>,
        runs: Arc<dyn RunStore>,
        traces: Arc<TraceService>,
    ) -> Self {
        Self { store, spans, runs, traces }
    }

    /// Stores the caller's feedback on `target` `id`; another tenant's target is "not found".
    pub async fn give(
        &self,
        p: &Principal,
        target: FeedbackTarget,
        id: &str,
        req: FeedbackRequest,
    ) -> Result<Feedback> {
        p.require(Role::Member)?;
        let (name, score, comment, author) = checked(req)?;
        let (tenant_id, trace_id) = self.resolve(p, target, id).await?;
        let f = Feedback {
            id: format!("fb_{}", uuid::Uuid::now_v7().simple()),
            tenant_id,
            target,
            target_id: id.to_owned(),
            trace_id,
            name,
            score,
            comment,
            author,
            key_id: p.key_id.clone(),
            created_ms: cairn_core::time::now_ms(),
        };
        if !self.store.insert_feedback(&f, MAX_PER_TARGET).await? {
            return Err(Error::Conflict(format!(
                "this {} holds the most feedback allowed ({MAX_PER_TARGET})",
                target.as_str()
            )));
        }
        Ok(f)
    }

    /// Feedback on `target` `id`, oldest first.
    pub async fn list(&self, p: &Principal, target: FeedbackTarget, id: &str) -> Result<Vec<Feedback>> {
        p.require(Role::Reader)?;
        let (tenant_id, _) = self.resolve(p, target, id).await?;
        Ok(self.store.feedback_for(&tenant_id, target, id).await?)
    }

    /// The tenant and trace of a target the caller may judge.
    async fn resolve(&self, p: &Principal, target: FeedbackTarget, id: &str) -> Result<(String, Option<String>)> {
        let shown: String = id.chars().take(64).collect();
        let tenant = (p.role != Role::Owner).then_some(p.tenant_id.as_str());
        match target {
            FeedbackTarget::Trace => {
                let missing = || Error::NotFound(format!("no trace '{shown}'"));
                id.parse::<TraceId>().map_err(|_| missing())?;
                let (summary, _) = self.stored_trace(tenant, id, |_| true).await?.ok_or_else(missing)?;
                Ok((summary, Some(id.to_owned())))
            }
            FeedbackTarget::Answer => {
                let missing = || Error::NotFound(format!("no answer '{shown}'"));
                let hex = id.strip_prefix("ans_").filter(|h| h.len() == 48).ok_or_else(missing)?;
                let (trace, span) = hex.split_at(32);
                trace.parse::<TraceId>().map_err(|_| missing())?;
                let answered =
                    |spans: &[StoredSpan]| spans.iter().any(|s| s.span_id == span && s.name.starts_with("answer "));
                let (tenant_id, spans) = self.stored_trace(tenant, trace, answered).await?.ok_or_else(missing)?;
                if !answered(&spans) {
                    return Err(missing());
                }
                Ok((tenant_id, Some(trace.to_owned())))
            }
            FeedbackTarget::Run => {
                let missing = || Error::NotFound(format!("no run '{shown}'"));
                let run = self.runs.get_run(id).await?.filter(|r| p.sees(&r.tenant_id)).ok_or_else(missing)?;
                let q = TraceQuery {
                    tenant_id: Some(run.tenant_id.clone()),
                    run_id: Some(run.id.clone()),
                    limit: 1,
                    ..TraceQuery::default()
                };
                let trace = self.spans.list_traces(&q).await?.into_iter().next().map(|t| t.trace_id);
                Ok((run.tenant_id, trace))
            }
        }
    }

    /// A stored trace's tenant and spans. When it is missing, or `complete` says spans are
    /// (feedback sent right after the response, its spans still in this node's queue or split
    /// over two batches), the queue is written first and the trace read again.
    async fn stored_trace(
        &self,
        tenant: Option<&str>,
        trace_id: &str,
        complete: impl Fn(&[StoredSpan]) -> bool,
    ) -> Result<Option<(String, Vec<StoredSpan>)>> {
        if let Some((t, spans)) = self.spans.get_trace(tenant, trace_id).await? {
            if complete(&spans) {
                return Ok(Some((t.tenant_id, spans)));
            }
        }
        self.traces.flush_stored().await;
        Ok(self.spans.get_trace(tenant, trace_id).await?.map(|(t, spans)| (t.tenant_id, spans)))
    }

    /// Stores an evaluation for the caller's tenant, averaging its items.
    pub async fn record_eval(&self, p: &Principal, e: NewEval) -> Result<EvalRun> {
        p.require(Role::Member)?;
        if e.items.is_empty() || e.items.len() > MAX_EVAL_ITEMS {
            return Err(Error::invalid_param("items", format!("items must hold 1-{MAX_EVAL_ITEMS} questions")));
        }
        for (param, v, max) in [("collection_id", Some(&e.collection_id), 128), ("dataset", Some(&e.dataset), 256)]
            .into_iter()
            .chain([("model", e.model.as_ref(), 256), ("judge", e.judge.as_ref(), 256)])
        {
            if v.is_some_and(|v| v.is_empty() || v.chars().count() > max) {
                return Err(Error::invalid_param(param, format!("{param} must be 1-{max} characters")));
            }
        }
        for item in &e.items {
            for v in [item.citation_precision, item.citation_recall, item.faithfulness].into_iter().flatten() {
                if !(0.0..=1.0).contains(&v) {
                    return Err(Error::invalid_param("items", "scores must be from 0 to 1"));
                }
            }
        }
        let mean = |f: fn(&EvalItem) -> Option<f64>| {
            let v: Vec<f64> = e.items.iter().filter_map(f).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        let run = EvalRun {
            id: format!("eval_{}", uuid::Uuid::now_v7().simple()),
            tenant_id: p.tenant_id.clone(),
            collection_id: e.collection_id,
            dataset: e.dataset,
            model: e.model,
            judge: e.judge,
            questions: e.items.len() as u32,
            citation_precision: mean(|i| i.citation_precision),
            citation_recall: mean(|i| i.citation_recall),
            faithfulness: mean(|i| i.faithfulness),
            items: e.items,
            key_id: p.key_id.clone(),
            created_ms: cairn_core::time::now_ms(),
        };
        self.store.insert_eval(&run).await?;
        Ok(run)
    }

    /// Evaluations of the caller's tenant (owners: `tenant`, or every tenant), newest first.
    pub async fn evals(&self, p: &Principal, tenant: Option<&str>, limit: Option<u32>) -> Result<Vec<EvalRun>> {
        p.require(Role::Reader)?;
        let tenant = p.readable_tenant(tenant)?;
        let limit = limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(Error::invalid_param("limit", "limit must be 1-500"));
        }
        Ok(self.store.list_evals(tenant.as_deref(), limit).await?)
    }

    /// One evaluation with its items.
    pub async fn eval(&self, p: &Principal, id: &str) -> Result<EvalRun> {
        p.require(Role::Reader)?;
        let tenant = (p.role != Role::Owner).then_some(p.tenant_id.as_str());
        let shown: String = id.chars().take(64).collect();
        self.store.get_eval(tenant, id).await?.ok_or_else(|| Error::NotFound(format!("no evaluation '{shown}'")))
    }
}

/// Checks a request's fields; returns name, score, comment and author.
fn checked(req: FeedbackRequest) -> Result<(String, Score, Option<String>, Option<String>)> {
    let name = req.name.unwrap_or_else(|| "feedback".into());
    let name_ok =
        (1..=64).contains(&name.len()) && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"_.:-".contains(&c));
    if !name_ok {
        return Err(Error::invalid_param("name", "name must be 1-64 letters, digits, '_', '.', ':' or '-'"));
    }
    match &req.score {
        Score::Numeric(n) if !n.is_finite() || n.abs() > 1e12 => {
            return Err(Error::invalid_param("score", "a numeric score must be within ±1e12"));
        }
        Score::Categorical(c) if c.is_empty() || c.chars().count() > 128 => {
            return Err(Error::invalid_param("score", "a categorical score must be 1-128 characters"));
        }
        _ => {}
    }
    if req.comment.as_ref().is_some_and(|c| c.chars().count() > MAX_COMMENT) {
        return Err(Error::invalid_param("comment", format!("comment must be at most {MAX_COMMENT} characters")));
    }
    if req.author.as_ref().is_some_and(|a| a.chars().count() > 256) {
        return Err(Error::invalid_param("author", "author must be at most 256 characters"));
    }
    Ok((name, req.score, req.comment, req.author))
}
