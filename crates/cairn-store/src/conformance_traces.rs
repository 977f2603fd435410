//! The trace store's part of the conformance suite.

use std::borrow::Cow;
use std::sync::Arc;

use cairn_core::store::Store;
use cairn_core::trace::{
    attrs, AttrValue, RollupGroup, SpanId, SpanKind, SpanRecord, SpanStatus, TraceCursor, TraceId, TraceQuery,
};
use cairn_core::usage::NanoUsd;

fn span(tenant: &str, trace: TraceId, parent: Option<SpanId>, name: &str, start_ns: i64, end_ns: i64) -> SpanRecord {
    SpanRecord {
        trace_id: trace,
        span_id: SpanId::random(),
        parent_id: parent,
        root: parent.is_none(),
        tenant_id: tenant.into(),
        name: name.into(),
        kind: SpanKind::Internal,
        start_ns,
        end_ns,
        status: SpanStatus::Ok,
        status_message: None,
        attributes: Vec::new(),
    }
}

fn with(mut s: SpanRecord, attributes: &[(&'static str, AttrValue)]) -> SpanRecord {
    s.attributes.extend(attributes.iter().map(|(k, v)| (Cow::Borrowed(*k), v.clone())));
    s
}

/// A model call's span: its usage and cost count towards its trace.
fn call(tenant: &str, trace: TraceId, parent: SpanId, model: &str, at: i64, cost: f64) -> SpanRecord {
    with(
        span(tenant, trace, Some(parent), &format!("chat {model}"), at, at + 5_000_000),
        &[
            (attrs::CALL_ID, "call".into()),
            (attrs::REQUEST_MODEL, model.into()),
            (attrs::INPUT_TOKENS, 10i64.into()),
            (attrs::OUTPUT_TOKENS, 4i64.into()),
            (attrs::COST_USD, cost.into()),
        ],
    )
}

fn query(tenant: &str) -> TraceQuery {
    TraceQuery { tenant_id: Some(tenant.into()), limit: 100, ..Default::default() }
}

/// Summaries folded across batches, duplicates skipped, filters, paging, tenants kept apart,
/// retention.
pub(crate) async fn traces(s: Arc<dyn Store>) {
    let t1 = TraceId::random();
    let root = with(
        span("acme", t1, None, "POST /v1/chat/completions", 1_000_000_000, 1_050_000_000),
        &[(attrs::KEY_ID, "key_a".into()), (attrs::END_USER, "u-7".into()), (attrs::SESSION, "s-1".into())],
    );
    let first = call("acme", t1, root.span_id, "fast", 1_001_000_000, 0.25);
    let mut second = call("acme", t1, root.span_id, "smart", 1_010_000_000, 0.5);
    second.status = SpanStatus::Error;
    second.status_message = Some("upstream said 500".into());
    // The calls arrive before their root, in two batches; the first batch is written twice.
    s.insert_spans(std::slice::from_ref(&first)).await.unwrap();
    s.insert_spans(std::slice::from_ref(&first)).await.unwrap();
    s.insert_spans(&[second.clone(), root.clone()]).await.unwrap();

    // The hour's rollups count each model call once.
    let rollups = s.rollups(Some("acme"), 0, 3_600_000, RollupGroup::Rows).await.unwrap();
    let by_model: Vec<(&str, i64, i64, i64, i64)> =
        rollups.iter().map(|r| (r.model.as_str(), r.calls, r.errors, r.input_tokens, r.output_tokens)).collect();
    assert_eq!(by_model, [("fast", 1, 0, 10, 4), ("smart", 1, 1, 10, 4)]);
    assert_eq!(rollups[0].cost, NanoUsd::from_usd(0.25));
    assert_eq!(rollups[0].latency.iter().sum::<i64>(), 1);
    assert_eq!(rollups[0].hour_ms, 0);
    assert!(s.rollups(Some("acme"), 3_600_000, 7_200_000, RollupGroup::Rows).await.unwrap().is_empty());
    assert!(s.rollups(Some("globex"), 0, 3_600_000, RollupGroup::Rows).await.unwrap().is_empty());

    let (summary, spans) = s.get_trace(Some("acme"), &t1.to_string()).await.unwrap().expect("stored");
    assert_eq!(summary.name, "POST /v1/chat/completions");
    assert_eq!(summary.span_count, 3, "the duplicate is skipped");
    assert_eq!(summary.error_count, 1);
    assert_eq!(summary.status, SpanStatus::Error);
    assert_eq!((summary.input_tokens, summary.output_tokens), (20, 8));
    assert_eq!(NanoUsd::from_usd(summary.cost_usd), NanoUsd::from_usd(0.75));
    assert_eq!(summary.model.as_deref(), Some("fast"));
    assert_eq!((summary.key_id.as_deref(), summary.user.as_deref()), (Some("key_a"), Some("u-7")));
    assert_eq!(summary.session_id.as_deref(), Some("s-1"));
    assert_eq!(summary.start_ms, 1_000.0);
    assert_eq!(summary.duration_ms, 50.0);
    assert_eq!(spans.len(), 3);
    assert_eq!(spans[0].name, "POST /v1/chat/completions");
    assert_eq!(spans[1].parent_id.as_deref(), Some(root.span_id.to_string().as_str()));
    assert_eq!(spans[2].status_message.as_deref(), Some("upstream said 500"));
    assert_eq!(spans[1].attributes["gen_ai.request.model"], "fast");

    // Another tenant using the same trace id gets a trace of its own.
    let intruder = span("globex", t1, None, "GET /v1/models", 2_000_000_000, 2_000_100_000);
    s.insert_spans(&[intruder]).await.unwrap();
    let (theirs, their_spans) = s.get_trace(Some("globex"), &t1.to_string()).await.unwrap().unwrap();
    assert_eq!((theirs.span_count, their_spans.len()), (1, 1));
    assert_eq!(s.get_trace(Some("acme"), &t1.to_string()).await.unwrap().unwrap().0.span_count, 3);
    assert!(s.get_trace(Some("initech"), &t1.to_string()).await.unwrap().is_none());

    // More traces for the filters: a cheap quick one and an agent run's.
    let t2 = TraceId::random();
    let root2 = with(
        span("acme", t2, None, "GET /v1/models", 3_000_000_000, 3_001_000_000),
        &[(attrs::KEY_ID, "key_b".into())],
    );
    let t3 = TraceId::random();
    let root3 =
        with(span("acme", t3, None, "agent run", 4_000_000_000, 4_900_000_000), &[(attrs::RUN_ID, "run_1".into())]);
    let call3 = call("acme", t3, root3.span_id, "fast", 4_100_000_000, 0.01);
    s.insert_spans(&[root2, root3, call3]).await.unwrap();

    let ids = |v: Vec<cairn_core::trace::TraceSummary>| v.into_iter().map(|t| t.trace_id).collect::<Vec<String>>();
    let (t1s, t2s, t3s) = (t1.to_string(), t2.to_string(), t3.to_string());
    assert_eq!(ids(s.list_traces(&query("acme")).await.unwrap()), [t3s.as_str(), &t2s, &t1s], "newest first");
    assert_eq!(ids(s.list_traces(&query("globex")).await.unwrap()), [t1s.as_str()]);
    let owner = TraceQuery { limit: 100, ..Default::default() };
    assert_eq!(s.list_traces(&owner).await.unwrap().len(), 4, "the instance owner sees every tenant's");
    let q = |f: fn(&mut TraceQuery)| {
        let mut q = query("acme");
        f(&mut q);
        q
    };
    assert_eq!(ids(s.list_traces(&q(|q| q.model = Some("fast".into()))).await.unwrap()), [t3s.as_str(), &t1s]);
    assert_eq!(ids(s.list_traces(&q(|q| q.model = Some("smart".into()))).await.unwrap()), [t1s.as_str()]);
    assert_eq!(ids(s.list_traces(&q(|q| q.key_id = Some("key_b".into()))).await.unwrap()), [t2s.as_str()]);
    assert_eq!(ids(s.list_traces(&q(|q| q.status = Some(SpanStatus::Error))).await.unwrap()), [t1s.as_str()]);
    assert_eq!(ids(s.list_traces(&q(|q| q.status = Some(SpanStatus::Ok))).await.unwrap()), [t3s.as_str(), &t2s]);
    assert_eq!(ids(s.list_traces(&q(|q| q.min_duration_ns = Some(50_000_000))).await.unwrap()), [t3s.as_str(), &t1s]);
    assert_eq!(ids(s.list_traces(&q(|q| q.min_cost = Some(NanoUsd::from_usd(0.5)))).await.unwrap()), [t1s.as_str()]);
    assert_eq!(ids(s.list_traces(&q(|q| q.run_id = Some("run_1".into()))).await.unwrap()), [t3s.as_str()]);
    assert_eq!(ids(s.list_traces(&q(|q| q.session_id = Some("s-1".into()))).await.unwrap()), [t1s.as_str()]);
    assert_eq!(ids(s.list_traces(&q(|q| q.user = Some("u-7".into()))).await.unwrap()), [t1s.as_str()]);
    assert_eq!(ids(s.list_traces(&q(|q| q.from_ns = Some(2_000_000_000))).await.unwrap()), [t3s.as_str(), &t2s]);
    assert_eq!(ids(s.list_traces(&q(|q| q.to_ns = Some(3_000_000_000))).await.unwrap()), [t1s.as_str()]);
    // Paging: two at a time, the cursor after the last one seen.
    let mut page = q(|q| q.limit = 2);
    let first_page = s.list_traces(&page).await.unwrap();
    assert_eq!(first_page.len(), 2);
    let last = &first_page[1];
    page.after = Some(TraceCursor { start_ns: last.start_ns, trace_id: last.trace_id.clone() });
    assert_eq!(ids(s.list_traces(&page).await.unwrap()), [t1s.as_str()]);

    // Retention: traces that started before the cut go, with their spans; others stay.
    assert_eq!(s.delete_traces_before(Some("acme"), 3_500_000_000, 1_000).await.unwrap(), 2);
    assert_eq!(ids(s.list_traces(&query("acme")).await.unwrap()), [t3s.as_str()]);
    assert!(s.get_trace(Some("acme"), &t1s).await.unwrap().is_none());
    assert!(s.get_trace(Some("globex"), &t1s).await.unwrap().is_some(), "another tenant's cut is its own");
    // Late spans of a deleted trace start a new summary rather than failing.
    s.insert_spans(&[span("acme", t1, Some(root.span_id), "late", 5_000_000_000, 5_000_000_001)]).await.unwrap();
    assert_eq!(s.get_trace(Some("acme"), &t1s).await.unwrap().unwrap().1.len(), 1);
    assert_eq!(
        s.rollups(None, 0, i64::MAX, RollupGroup::Rows).await.unwrap().len(),
        2,
        "the hour is not past the cut yet"
    );
    assert_eq!(s.delete_traces_before(None, i64::MAX, 1_000).await.unwrap(), 3);
    assert!(s.list_traces(&owner).await.unwrap().is_empty());
    assert!(s.rollups(None, 0, i64::MAX, RollupGroup::Rows).await.unwrap().is_empty());
}

/// Writers racing on the same traces (nodes sharing a database, batches holding the traces in
/// opposite orders) lose no count and never deadlock.
pub(crate) async fn racing_writers(s: Arc<dyn Store>) {
    let (t1, t2) = (TraceId::random(), TraceId::random());
    let root1 = span("acme", t1, None, "one", 1_000, 2_000);
    let root2 = span("acme", t2, None, "two", 1_000, 2_000);
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (s, p1, p2) = (s.clone(), root1.span_id, root2.span_id);
            tokio::spawn(async move {
                for _ in 0..5 {
                    let mut batch = Vec::new();
                    for _ in 0..20 {
                        batch.push(call("acme", t1, p1, "fast", 1_500, 0.001));
                        batch.push(call("acme", t2, p2, "fast", 1_500, 0.001));
                    }
                    if w % 2 == 1 {
                        batch.reverse();
                    }
                    s.insert_spans(&batch).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    for t in [t1, t2] {
        let (summary, _) = s.get_trace(Some("acme"), &t.to_string()).await.unwrap().unwrap();
        assert_eq!(summary.span_count, 8 * 5 * 20);
        assert_eq!(summary.input_tokens, 8 * 5 * 20 * 10);
        assert_eq!(NanoUsd::from_usd(summary.cost_usd), NanoUsd(8 * 5 * 20 * NanoUsd::from_usd(0.001).0));
    }
    let calls: i64 =
        s.rollups(Some("acme"), 0, 3_600_000, RollupGroup::Rows).await.unwrap().iter().map(|r| r.calls).sum();
    assert_eq!(calls, 2 * 8 * 5 * 20);
    assert_eq!(s.delete_traces_before(Some("acme"), i64::MAX, 1_000).await.unwrap(), 2);
}

/// Feedback: every score kind round-trips, reads are per tenant, the per-target cap holds,
/// old feedback goes; evaluations list without items and read back whole.
pub(crate) async fn feedback(s: Arc<dyn Store>) {
    use cairn_core::trace::{EvalItem, EvalRun, Feedback, FeedbackTarget, Score};
    let fb = |id: &str, tenant: &str, target: FeedbackTarget, target_id: &str, score: Score, at: i64| Feedback {
        id: id.into(),
        tenant_id: tenant.into(),
        target,
        target_id: target_id.into(),
        trace_id: Some("t1".into()),
        name: "helpful".into(),
        score,
        comment: Some("fine".into()),
        author: None,
        key_id: "k".into(),
        created_ms: at,
    };
    let scores = [Score::Boolean(false), Score::Numeric(-0.25), Score::Categorical("off-topic".into())];
    for (i, score) in scores.iter().enumerate() {
        let f = fb(&format!("fb_a{i}"), "acme", FeedbackTarget::Trace, "t1", score.clone(), 10 + i as i64);
        assert!(s.insert_feedback(&f, 3).await.unwrap());
    }
    let over = fb("fb_a9", "acme", FeedbackTarget::Trace, "t1", Score::Boolean(true), 20);
    assert!(!s.insert_feedback(&over, 3).await.unwrap(), "the cap holds");
    let other = fb("fb_g1", "globex", FeedbackTarget::Answer, "ans", Score::Numeric(1.0), 5);
    assert!(s.insert_feedback(&other, 3).await.unwrap(), "caps are per tenant and target");
    let got = s.feedback_for_trace(Some("acme"), "t1").await.unwrap();
    assert_eq!(got.iter().map(|f| f.score.clone()).collect::<Vec<_>>(), scores);
    assert_eq!(got[0], fb("fb_a0", "acme", FeedbackTarget::Trace, "t1", Score::Boolean(false), 10));
    assert_eq!(s.feedback_for_trace(None, "t1").await.unwrap().len(), 4);
    assert_eq!(s.feedback_for("globex", FeedbackTarget::Answer, "ans").await.unwrap().len(), 1);
    assert!(s.feedback_for("acme", FeedbackTarget::Answer, "ans").await.unwrap().is_empty());
    assert_eq!(s.delete_feedback_before("acme", 12, 100).await.unwrap(), 2);
    assert_eq!(s.feedback_for_trace(Some("acme"), "t1").await.unwrap().len(), 1);

    let item = EvalItem {
        question: "q".into(),
        answer_id: Some("ans_x".into()),
        expected: vec!["d1".into()],
        cited: vec!["d1".into(), "d2".into()],
        citation_precision: Some(0.5),
        citation_recall: Some(1.0),
        faithfulness: None,
        error: None,
    };
    let run = |id: &str, tenant: &str, at: i64| EvalRun {
        id: id.into(),
        tenant_id: tenant.into(),
        collection_id: "col".into(),
        dataset: "qa.jsonl".into(),
        model: None,
        judge: Some("judge".into()),
        questions: 1,
        citation_precision: Some(0.5),
        citation_recall: Some(1.0),
        faithfulness: None,
        items: vec![item.clone()],
        key_id: "k".into(),
        created_ms: at,
    };
    s.insert_eval(&run("eval_1", "acme", 1)).await.unwrap();
    s.insert_eval(&run("eval_2", "acme", 2)).await.unwrap();
    s.insert_eval(&run("eval_3", "globex", 3)).await.unwrap();
    let listed = s.list_evals(Some("acme"), 10).await.unwrap();
    assert_eq!(listed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["eval_2", "eval_1"]);
    assert!(listed[0].items.is_empty(), "lists leave items out");
    assert_eq!(s.list_evals(None, 10).await.unwrap().len(), 3);
    assert_eq!(s.get_eval(Some("acme"), "eval_1").await.unwrap(), Some(run("eval_1", "acme", 1)));
    assert_eq!(s.get_eval(Some("acme"), "eval_3").await.unwrap(), None, "another tenant's is unknown");
}
