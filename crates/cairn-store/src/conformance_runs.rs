//! The run store's part of the conformance suite (threads, runs, journals).

use std::sync::Arc;

use cairn_core::agents::Agent;
use cairn_core::jobs::NewJob;
use cairn_core::openai::{ChatMessage, ChatRole};
use cairn_core::runs::{Append, BusyThread, Run, RunState, StepKind, Thread};
use cairn_core::store::{Store, StoreError};
use serde_json::json;

fn job(run_id: &str, at: i64) -> NewJob {
    NewJob {
        id: format!("job_{run_id}"),
        tenant_id: "acme".into(),
        kind: "agent.run".into(),
        payload: json!({"run_id": run_id}),
        priority: 0,
        idempotency_key: Some(format!("run:{run_id}")),
        max_attempts: 5,
        timeout_ms: 60_000,
        run_at_ms: at,
        created_at_ms: at,
        trace_parent: None,
    }
}

fn run(id: &str, thread: Option<&str>, at: i64) -> Run {
    Run {
        id: id.into(),
        tenant_id: "acme".into(),
        key_id: "k1".into(),
        agent_id: "agt_r".into(),
        agent_version: 1,
        thread_id: thread.map(str::to_owned),
        input: json!({"input": "hi"}),
        state: RunState::Queued,
        steps: 0,
        error: None,
        created_at_ms: at,
        updated_at_ms: at,
    }
}

/// Messages numbered without gaps, one open run per thread, journals that cannot fork.
pub(crate) async fn runs(s: Arc<dyn Store>) {
    let agent = Agent {
        id: "agt_r".into(),
        tenant_id: "acme".into(),
        name: "runner".into(),
        version: 1,
        spec: json!({}),
        created_at_ms: 1,
        updated_at_ms: 1,
    };
    s.create_agent(&agent).await.unwrap();
    let thread = Thread { id: "thr_1".into(), tenant_id: "acme".into(), metadata: json!({"a": 1}), created_at_ms: 1 };
    let first = s.create_thread(&thread, &[ChatMessage::text(ChatRole::User, "first")]).await.unwrap();
    assert_eq!(first[0].seq, 1, "a thread's first messages go in with it");
    assert_eq!(s.get_thread("thr_1").await.unwrap(), Some(thread));

    // Concurrent appenders get distinct, gapless numbers.
    let appenders: Vec<_> = (0..6)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let m = ChatMessage::text(ChatRole::User, format!("m{i}"));
                s.append_messages("thr_1", &[m.clone(), m], None, 2).await.unwrap()
            })
        })
        .collect();
    for a in appenders {
        a.await.unwrap();
    }
    let all = s.list_messages("thr_1", 0, 100).await.unwrap();
    assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=13).collect::<Vec<_>>());
    assert_eq!(s.list_messages("thr_1", 10, 100).await.unwrap().len(), 3);
    let missing = s.append_messages("thr_none", &[ChatMessage::text(ChatRole::User, "x")], None, 2).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))));

    // One open run per thread when asked to refuse; queued behind it when asked to queue.
    // The run at the head gets its job in the same transaction; a queued one does not.
    let first_job =
        s.create_run(&run("run_1", Some("thr_1"), 10), BusyThread::Refuse, &job("run_1", 10)).await.unwrap();
    assert_eq!(first_job.map(|(j, created)| (j.id, created)), Some(("job_run_1".to_owned(), true)));
    assert!(s.get_job("job_run_1").await.unwrap().is_some());
    let busy = s.create_run(&run("run_2", Some("thr_1"), 11), BusyThread::Refuse, &job("run_2", 11)).await;
    assert!(matches!(busy, Err(StoreError::Conflict(_))), "{busy:?}");
    assert!(s.get_job("job_run_2").await.unwrap().is_none(), "a refused run leaves no job");
    let queued = s.create_run(&run("run_3", Some("thr_1"), 12), BusyThread::Queue, &job("run_3", 12)).await.unwrap();
    assert!(queued.is_none(), "a run queued behind another waits for its job");
    assert_eq!(s.thread_head("thr_1").await.unwrap().unwrap().id, "run_1");
    let other_tenant = Run { tenant_id: "globex".into(), ..run("run_4", Some("thr_1"), 13) };
    let refused = s.create_run(&other_tenant, BusyThread::Queue, &job("run_4", 13)).await;
    assert!(matches!(refused, Err(StoreError::NotFound(_))));

    // State changes are compare-and-set.
    let running = s.set_run_state("run_1", &[RunState::Queued], RunState::Running, None, 20).await.unwrap();
    assert_eq!(running.unwrap().state, RunState::Running);
    assert!(s.set_run_state("run_1", &[RunState::Queued], RunState::Running, None, 21).await.unwrap().is_none());

    // The journal: of racing appenders at the same length exactly one wins.
    let racers: Vec<_> = (0..5)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.append_step("run_1", 0, StepKind::ModelOutput, &json!({"racer": i}), 30).await.unwrap()
            })
        })
        .collect();
    let mut wins = 0;
    for r in racers {
        wins += usize::from(r.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert!(s.append_step("run_1", 1, StepKind::ToolStarted, &json!({"call": "c1"}), 31).await.unwrap());
    assert!(!s.append_step("run_1", 1, StepKind::ToolResult, &json!({}), 32).await.unwrap(), "stale length");
    let steps = s.list_steps("run_1", 0, 10).await.unwrap();
    assert_eq!(
        steps.iter().map(|st| (st.seq, st.kind)).collect::<Vec<_>>(),
        [(1, StepKind::ModelOutput), (2, StepKind::ToolStarted)]
    );
    assert_eq!(s.get_run("run_1").await.unwrap().unwrap().steps, 2);
    // Several entries go in together or not at all.
    let batch = [(StepKind::ToolResult, json!({"n": 3})), (StepKind::ModelOutput, json!({"n": 4}))];
    assert!(!s.append_steps("run_1", 1, &batch, 33).await.unwrap(), "stale length: nothing written");
    assert_eq!(s.list_steps("run_1", 0, 10).await.unwrap().len(), 2);
    assert!(s.append_steps("run_1", 2, &batch, 33).await.unwrap());
    let stored = s.get_run("run_1").await.unwrap().unwrap();
    assert_eq!((stored.steps, stored.updated_at_ms), (4, 33));
    assert_eq!(s.list_steps("run_1", 2, 10).await.unwrap().iter().map(|st| st.seq).collect::<Vec<_>>(), [3, 4]);

    // Appends of several runs in one call: each is judged against the journals as they stood
    // before the call (so of two appends to one run, the later cannot follow the earlier).
    assert!(s.create_run(&run("run_6", None, 34), BusyThread::Refuse, &job("run_6", 34)).await.unwrap().is_some());
    let append = |id: &str, expected: u64, n: usize| Append {
        run_id: id.into(),
        expected,
        entries: (0..n).map(|i| (StepKind::ToolResult, json!({"i": i}))).collect(),
        now_ms: 35,
    };
    let group = [
        append("run_1", 4, 2),
        append("run_6", 3, 1),
        append("run_6", 0, 2),
        append("run_6", 2, 1),
        append("run_x", 0, 1),
    ];
    assert_eq!(s.append_many(&group).await.unwrap(), [true, false, true, false, false]);
    assert_eq!(s.get_run("run_1").await.unwrap().unwrap().steps, 6);
    let six = s.list_steps("run_6", 0, 10).await.unwrap();
    assert_eq!(
        six.iter().map(|st| (st.seq, st.payload["i"].as_u64())).collect::<Vec<_>>(),
        [(1, Some(0)), (2, Some(1))]
    );
    assert_eq!(s.get_run("run_6").await.unwrap().unwrap().steps, 2);
    // Two writers that read the same length: one goes in, whole; the other leaves nothing.
    assert_eq!(s.append_many(&[append("run_6", 2, 2), append("run_6", 2, 1)]).await.unwrap(), [true, false]);
    assert_eq!(s.get_run("run_6").await.unwrap().unwrap().steps, 4);

    // An ended run takes no more steps, and the next run on the thread is at its head.
    let ended = s.set_run_state("run_1", &[RunState::Running], RunState::Failed, Some("boom"), 40).await.unwrap();
    assert_eq!(ended.unwrap().error.as_deref(), Some("boom"));
    assert!(!s.append_step("run_1", 6, StepKind::Ended, &json!({}), 41).await.unwrap());
    assert_eq!(s.append_many(&[append("run_1", 6, 1), append("run_6", 4, 1)]).await.unwrap(), [false, true]);
    assert_eq!(s.thread_head("thr_1").await.unwrap().unwrap().id, "run_3");
    // A one-off run needs no thread.
    assert!(s.create_run(&run("run_5", None, 50), BusyThread::Refuse, &job("run_5", 50)).await.unwrap().is_some());
    assert_eq!(s.get_run("run_5").await.unwrap().unwrap().input["input"], "hi");
}
