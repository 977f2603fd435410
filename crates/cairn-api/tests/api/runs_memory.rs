//! Memory through the HTTP API: a long thread history summarised once and journaled; long-term
//! memories written in one thread and recalled in another, for the same end user only, under
//! the PII policy, listed and deleted with tenant and role checks.

use std::time::Duration;

use cairn_testkit::{Scripted, StandIn, TestServer};
use serde_json::{json, Value};

use crate::runs::{agent, kinds, server, wait_run};
use crate::runs_loop::{last_tool_results, spec};

#[tokio::test]
async fn a_long_history_is_summarised_once_and_the_summary_journaled() {
    let up = StandIn::start().await;
    let s = server(&up, false).await;
    let key = s.key("acme", "member", json!({})).await;
    let mut def = spec("brief", json!({}), json!({}));
    def["context"] = json!({"max_history_tokens": 200});
    let id = agent(&s, &key, def).await;
    // Twenty turns of about 60 tokens each: far over the budget.
    let messages: Vec<Value> = (0..20)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            json!({"role": role, "content": format!("turn {i}: {}", "the parcel went to the depot again. ".repeat(7))})
        })
        .collect();
    let (_, thread) = s.post("/v1/threads", &key, &json!({"messages": messages})).await;
    let thread = thread["id"].as_str().unwrap().to_owned();
    up.script([Scripted::Text("SUMMARY: parcels kept going to the depot.".into()), Scripted::Text("Noted.".into())]);
    let body =
        json!({"agent_id": id, "thread_id": thread, "messages": [{"role": "user", "content": "Where is it now?"}]});
    let (status, run) = s.post("/v1/runs", &key, &body).await;
    assert_eq!(status, 202, "{run}");
    let run = run["id"].as_str().unwrap().to_owned();
    let done = wait_run(&s, &key, &run, &["succeeded", "failed"]).await;
    assert_eq!(done["answer"], "Noted.", "{done}");
    // The model read the summary and the recent turns, not the oldest ones.
    let chats: Vec<Value> = up.bodies().into_iter().filter(|b| b.get("messages").is_some()).collect();
    assert_eq!(chats.len(), 2, "one summarising call, one answer");
    assert!(chats[0].to_string().contains("turn 0:"), "the summariser read the old turns");
    let read = chats[1].to_string();
    assert!(read.contains("SUMMARY: parcels kept going to the depot."), "{read}");
    assert!(!read.contains("turn 0:") && read.contains("turn 19:") && read.contains("Where is it now?"), "{read}");
    assert_eq!(kinds(&s, &key, &run).await, ["started", "summary", "model_output", "ended"]);
    // The summary's call counts in the run's usage.
    assert_eq!(done["usage"]["model_calls"], 1);
    assert!(done["usage"]["input_tokens"].as_u64().unwrap() >= 2 * 11, "{done}");
    // A bad budget is refused when the agent is defined.
    let mut bad = spec("tiny", json!({}), json!({}));
    bad["context"] = json!({"max_history_tokens": 5});
    assert_eq!(s.post("/v1/agents", &key, &bad).await.0, 400);
}

/// Polls agent `id`'s memories of `user` until `n` are ready.
async fn ready_memories(s: &TestServer, key: &str, id: &str, user: &str, n: usize) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, list) = s.get(&format!("/v1/agents/{id}/memories?end_user={user}"), key).await;
        assert_eq!(status, 200, "{list}");
        let ready = list["data"].as_array().unwrap().iter().filter(|m| m["state"] == "ready").count();
        if ready >= n {
            return list;
        }
        assert!(tokio::time::Instant::now() < deadline, "memories not ready: {list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn memories_written_in_one_thread_are_recalled_in_another_for_the_same_user_only() {
    let up = StandIn::start().await;
    let s = server(&up, false).await;
    let key = s.key("acme", "member", json!({})).await;
    let reader = s.key("acme", "reader", json!({})).await;
    let globex = s.key("globex", "admin", json!({})).await;
    let mut def = spec("concierge", json!({"memory": {"type": "memory"}}), json!({}));
    def["memory"] = json!({"embedding_model": "embed", "recall_before_run": 3, "pii": "mask"});
    let id = agent(&s, &key, def).await;
    let on_new_thread = |user: &str, text: &str| {
        let (s, key, id) = (&s, &key, &id);
        let (user, text) = (user.to_owned(), text.to_owned());
        async move {
            let (_, thread) = s.post("/v1/threads", key, &json!({})).await;
            let body = json!({"agent_id": id, "thread_id": thread["id"], "end_user": user,
                "messages": [{"role": "user", "content": text}]});
            let (status, run) = s.post("/v1/runs", key, &body).await;
            assert_eq!(status, 202, "{run}");
            let run = run["id"].as_str().unwrap().to_owned();
            wait_run(s, key, &run, &["succeeded", "failed"]).await
        }
    };

    // Thread one: Ann's preference is remembered (her address masked by the PII policy).
    up.script([
        Scripted::Calls(vec![(
            "memory".into(),
            json!({"action": "remember", "text": "Ann prefers window seats; mail ann@example.com"}),
        )]),
        Scripted::Text("Noted.".into()),
    ]);
    assert_eq!(on_new_thread("ann", "I like window seats").await["answer"], "Noted.");
    let listed = ready_memories(&s, &key, &id, "ann", 1).await;
    let text = listed["data"][0]["text"].as_str().unwrap();
    assert!(text.contains("window seats") && !text.contains("ann@example.com"), "{listed}");

    // Thread two, same user: recalled before the run and by the tool.
    up.script([
        Scripted::Calls(vec![("memory".into(), json!({"action": "recall", "text": "window seats"}))]),
        Scripted::Text("A window seat, as always.".into()),
    ]);
    let before = up.bodies().iter().filter(|b| b.get("messages").is_some()).count();
    let run = on_new_thread("ann", "Book me a window seats flight").await;
    assert_eq!(run["answer"], "A window seat, as always.");
    // What was recalled is journaled before the model read it (a resumed run reads the same).
    let (_, steps) = s.get(&format!("/v1/runs/{}/steps", run["id"].as_str().unwrap()), &key).await;
    let entries = steps["data"].as_array().unwrap();
    let recalled = entries.iter().position(|e| e["kind"] == "recalled").expect("a recalled entry");
    assert!(recalled < entries.iter().position(|e| e["kind"] == "model_output").unwrap(), "{steps}");
    assert!(entries[recalled].to_string().contains("Ann prefers window seats"), "{steps}");
    let chats: Vec<Value> = up.bodies().into_iter().filter(|b| b.get("messages").is_some()).skip(before).collect();
    assert!(chats[0].to_string().contains("What you remember about this user"), "{}", chats[0]);
    assert!(chats[0].to_string().contains("Ann prefers window seats"));
    assert!(last_tool_results(&up)[0].contains("Ann prefers window seats"), "{:?}", last_tool_results(&up));

    // Another end user of the same agent recalls nothing of Ann's.
    up.script([
        Scripted::Calls(vec![("memory".into(), json!({"action": "recall", "text": "window seats"}))]),
        Scripted::Text("Nothing yet.".into()),
    ]);
    let before = up.bodies().iter().filter(|b| b.get("messages").is_some()).count();
    on_new_thread("bob", "window seats please").await;
    let chats: Vec<Value> = up.bodies().into_iter().filter(|b| b.get("messages").is_some()).skip(before).collect();
    assert!(!chats[0].to_string().contains("Ann prefers"), "{}", chats[0]);
    assert_eq!(last_tool_results(&up), ["{\"memories\":[]}"]);

    // Listing and deleting: readers list, members delete, other tenants see nothing.
    let memory = listed["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(s.get(&format!("/v1/agents/{id}/memories"), &reader).await.0, 200);
    assert_eq!(s.get(&format!("/v1/agents/{id}/memories"), &globex).await.0, 404);
    let delete = |k: &str| {
        let req = s.client.delete(format!("{}/v1/agents/{id}/memories/{memory}", s.base)).bearer_auth(k.to_owned());
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(delete(&globex).await, 404);
    assert_eq!(delete(&reader).await, 403);
    assert_eq!(delete(&key).await, 204);
    assert_eq!(s.get(&format!("/v1/agents/{id}/memories?end_user=ann"), &key).await.1["data"], json!([]));
    assert_eq!(delete(&key).await, 404);

    // A memory tool without memory settings cannot run.
    let id = agent(&s, &key, spec("forgetful", json!({"memory": {"type": "memory"}}), json!({}))).await;
    let body = json!({"agent_id": id, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(s.post("/v1/runs", &key, &body).await.0, 400);
}
