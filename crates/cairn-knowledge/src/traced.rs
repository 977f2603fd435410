//! The spans of retrieval and of RAG answers: a `retrieve` span per search (its query
//! embedding nests under it as a model call), with one child span per phase that ran (keyword,
//! vector, fusion) per collection, and the chunks returned; an `answer` span around a RAG
//! answer with the sources it was given and the ones it cited.

use cairn_core::trace::{attrs, ActiveSpan, SpanKind, Tracer};
use cairn_core::CallContext;

use crate::retrieve::Phases;
use crate::service::SearchHit;

/// Opens the span of a search over `collections`.
pub(crate) fn retrieval(
    tracer: &Tracer,
    ctx: &CallContext,
    collections: &[String],
    mode: &str,
    k: usize,
) -> ActiveSpan {
    let first = collections.first().map_or("", String::as_str);
    let mut span = ctx.span(tracer, format!("retrieve {first}"), SpanKind::Internal);
    if span.recording() {
        span.set(attrs::OPERATION, "retrieve");
        span.set("cairn.search.collections", collections.join(","));
        span.set("cairn.search.mode", mode.to_owned());
        span.set("cairn.search.top_k", k);
    }
    span
}

/// Records the phases each collection's search ran, as children of `span`.
pub(crate) fn phases(tracer: &Tracer, ctx: &CallContext, span: &ActiveSpan, done: &[(String, Phases)]) {
    if !span.recording() {
        return;
    }
    let at = span.context();
    for (collection, p) in done {
        for (name, phase) in [("keyword", p.keyword), ("vector", p.vector), ("fusion", p.fusion)] {
            let Some(phase) = phase else { continue };
            let mut s = tracer.start(&at, &ctx.principal.tenant_id, format!("{name} {collection}"), SpanKind::Internal);
            s.set_times(phase.start_ns, phase.end_ns);
            s.set("cairn.search.phase", name);
            s.set("cairn.search.candidates", phase.found);
            s.ok();
        }
    }
}

/// Ends a search's span with the chunks it returned (their text only under `full` capture).
pub(crate) fn returned(tracer: &Tracer, span: &mut ActiveSpan, hits: &[SearchHit]) {
    if !span.recording() {
        return;
    }
    span.set("cairn.search.hits", hits.len());
    let ids: Vec<String> = hits.iter().map(|h| format!("{}:{}", h.collection_id, h.chunk_id)).collect();
    span.set("cairn.search.chunks", ids.join(","));
    if tracer.captures_content() {
        let texts: Vec<&str> = hits.iter().map(|h| h.text.as_str()).collect();
        if let Some(text) = serde_json::to_string(&texts).ok().and_then(|t| tracer.content(&t)) {
            span.set("cairn.search.texts", text);
        }
    }
    span.ok();
}

/// Opens the span of a RAG answer from `collection`.
pub(crate) fn answer(tracer: &Tracer, ctx: &CallContext, collection: &str) -> ActiveSpan {
    let mut span = ctx.span(tracer, format!("answer {collection}"), SpanKind::Internal);
    span.set(attrs::OPERATION, "rag");
    span
}

/// Ends a RAG answer's span with its sources and citations (the answer's text only under
/// `full` capture), and names the answer after its span (`ans_` + trace id + span id), which is
/// how feedback finds it.
pub(crate) fn answered(tracer: &Tracer, span: &mut ActiveSpan, a: &mut crate::answer::Answer) {
    a.id = format!("ans_{}{}", span.context().trace_id, span.id());
    if !span.recording() {
        return;
    }
    span.set("cairn.rag.found", a.found);
    span.set("cairn.rag.sources", a.sources.len());
    let cited: Vec<String> =
        a.citations.iter().map(|c| format!("[{}] {}:{}", c.n, c.collection_id, c.chunk_id)).collect();
    span.set("cairn.rag.citations", cited.join(","));
    span.set("cairn.rag.inferred_citations", a.citations.iter().filter(|c| c.inferred).count());
    // The injection screen's verdicts: sources that carried instructions (fenced, labelled).
    let flagged: Vec<&crate::answer::AnswerSource> = a.sources.iter().filter(|s| !s.flagged.is_empty()).collect();
    if !flagged.is_empty() {
        let mut rules: Vec<&str> = flagged.iter().flat_map(|s| s.flagged.iter().map(String::as_str)).collect();
        rules.sort_unstable();
        rules.dedup();
        span.set(attrs::GUARD_INJECTION_SOURCES, flagged.len());
        span.set(attrs::GUARD_INJECTION_RULES, rules.join(","));
    }
    if let Some(text) = tracer.content(&a.answer) {
        span.set(attrs::OUTPUT_MESSAGES, text);
    }
    span.ok();
}

/// Records the PII guard's verdict on an ingested document: a `guard pii` span under the
/// ingestion job with the collection's policy and how many values of each kind it redacted.
pub(crate) fn redactions(
    tracer: &Tracer,
    ctx: &CallContext,
    policy: &str,
    redacted: &serde_json::Map<String, serde_json::Value>,
) {
    let mut span = ctx.span(tracer, "guard pii", SpanKind::Internal);
    if !span.recording() {
        return;
    }
    span.set(attrs::GUARD_PII_POLICY, policy.to_owned());
    let total: u64 = redacted.values().filter_map(serde_json::Value::as_u64).sum();
    span.set(attrs::GUARD_REDACTIONS, total);
    for (kind, n) in redacted {
        if let Some(n) = n.as_u64() {
            span.set(format!("{}.{kind}", attrs::GUARD_REDACTIONS), n);
        }
    }
    span.ok();
}
