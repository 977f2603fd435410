//! `/v1/agents` through the real HTTP API: versions that never change, compare-and-set updates,
//! tenants that cannot see or drive each other's agents, roles, and bad definitions refused
//! with the field at fault. On SQLite and PostgreSQL.

use cairn_testkit::{StandIn, TestServer};
use futures::future::join_all;
use serde_json::{json, Value};

fn definition(name: &str, instructions: &str) -> Value {
    json!({
        "name": name,
        "model": "fast",
        "instructions": instructions,
        "tools": {
            "search": {"type": "knowledge_search", "knowledge_search": {"collections": ["col_x"]}},
            "refund": {"type": "webhook", "approval": {"when": {"field": "amount", "gt": 100}},
                       "webhook": {"url": "https://hooks.example.com/refund", "parameters": {"type": "object"}}}
        },
        "limits": {"max_steps": 8}
    })
}

async fn delete(s: &TestServer, path: &str, key: &str) -> u16 {
    s.client.delete(format!("{}{path}", s.base)).bearer_auth(key).send().await.unwrap().status().as_u16()
}

async fn agents_are_versioned_and_tenant_scoped(s: TestServer) {
    let acme = s.key("acme", "member", json!({})).await;
    let reader = s.key("acme", "reader", json!({})).await;
    let globex = s.key("globex", "admin", json!({})).await;

    let (status, v1) = s.post("/v1/agents", &acme, &definition("helper", "Be brief.")).await;
    assert_eq!(status, 201, "{v1}");
    let id = v1["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (v1["object"].as_str(), v1["version"].as_u64(), v1["tenant_id"].as_str()),
        (Some("agent"), Some(1), Some("acme"))
    );
    assert_eq!(v1["limits"]["max_tool_calls"], 100, "unset limits shown with their defaults");
    let (status, _) = s.post("/v1/agents", &acme, &definition("helper", "again")).await;
    assert_eq!(status, 409, "a live name is unique in the tenant");

    // An update is a new version; the old one stays as it was.
    let (status, v2) = s.post(&format!("/v1/agents/{id}"), &acme, &definition("helper", "Be thorough.")).await;
    assert_eq!((status, v2["version"].as_u64()), (200, Some(2)), "{v2}");
    let (_, old) = s.get(&format!("/v1/agents/{id}/versions/1"), &reader).await;
    assert_eq!(old["instructions"], "Be brief.");
    assert_eq!(s.get(&format!("/v1/agents/{id}"), &reader).await.1["instructions"], "Be thorough.");
    assert_eq!(s.get(&format!("/v1/agents/{id}/versions/3"), &acme).await.0, 404);
    assert_eq!(s.get(&format!("/v1/agents/{id}/versions/x"), &acme).await.0, 400);

    // Of racing updates that all expect version 2, exactly one wins.
    let racers = (0..6).map(|i| {
        let (s, acme, id) = (&s, &acme, &id);
        async move {
            s.post(&format!("/v1/agents/{id}?expected_version=2"), acme, &definition("helper", &format!("r{i}")))
                .await
                .0
        }
    });
    let mut codes = join_all(racers).await;
    codes.sort_unstable();
    assert_eq!(codes, [200, 409, 409, 409, 409, 409]);

    // Roles: readers read; another tenant sees nothing and can change nothing.
    assert_eq!(s.post("/v1/agents", &reader, &definition("r", "x")).await.0, 403);
    let (_, listed) = s.get("/v1/agents", &reader).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(s.get(&format!("/v1/agents/{id}"), &globex).await.0, 404);
    assert_eq!(s.post(&format!("/v1/agents/{id}"), &globex, &definition("helper", "mine")).await.0, 404);
    assert_eq!(delete(&s, &format!("/v1/agents/{id}"), &globex).await, 404);
    assert_eq!(s.get("/v1/agents", &globex).await.1["data"], json!([]));
    let (status, theirs) = s.post("/v1/agents", &globex, &definition("helper", "ours")).await;
    assert_eq!(status, 201, "names are per tenant: {theirs}");
    assert_eq!(s.post("/v1/agents?tenant_id=acme", &globex, &definition("x", "y")).await.0, 403);
    // The owner may act for another tenant, but only one that exists.
    assert_eq!(s.post("/v1/agents?tenant_id=acme", &s.admin_key, &definition("owned", "y")).await.0, 201);
    let (status, err) = s.post("/v1/agents?tenant_id=nobody", &s.admin_key, &definition("x", "y")).await;
    assert_eq!(status, 404, "{err}");
    assert_eq!(s.post("/v1/threads", &s.admin_key, &json!({"tenant_id": "nobody"})).await.0, 404);
    let collection = json!({"name": "c", "embedding_model": "embed", "tenant_id": "nobody"});
    assert_eq!(s.post("/v1/collections", &s.admin_key, &collection).await.0, 404);

    // Deleting hides the agent and frees its name.
    assert_eq!(delete(&s, &format!("/v1/agents/{id}"), &acme).await, 204);
    assert_eq!(s.get(&format!("/v1/agents/{id}"), &acme).await.0, 404);
    assert_eq!(s.post("/v1/agents", &acme, &definition("helper", "new")).await.0, 201);
}

#[tokio::test]
async fn agents_are_versioned_and_tenant_scoped_on_sqlite() {
    let up = StandIn::start().await;
    agents_are_versioned_and_tenant_scoped(TestServer::start(&crate::config(&up, &up)).await).await;
}

#[tokio::test]
async fn agents_are_versioned_and_tenant_scoped_on_postgres() {
    let up = StandIn::start().await;
    let url = cairn_store::conformance::fresh_pg_database().await;
    agents_are_versioned_and_tenant_scoped(TestServer::start_with(&crate::config(&up, &up), Some(url)).await).await;
}

#[tokio::test]
async fn bad_definitions_are_refused_with_the_field_at_fault() {
    let up = StandIn::start().await;
    let s = TestServer::start(&crate::config(&up, &up)).await;
    let key = s.key("acme", "member", json!({})).await;
    let with = |k: &str, v: Value| {
        let mut d = definition("bad", "x");
        d[k] = v;
        d
    };
    let cases = [
        (with("name", json!("Has Spaces")), 400, "name"),
        (with("tools", json!({"t": {"type": "client"}})), 400, "tools.t.client"),
        (
            {
                let mut d = with("tools", json!({"t": {"type": "memory"}}));
                d["model"] = json!("notools");
                d
            },
            400,
            "model",
        ),
        (
            with("tools", json!({"t": {"type": "memory", "approval": {"when": {"amount": 5}}}})),
            400,
            "tools.t.approval.when",
        ),
        (
            with(
                "tools",
                json!({"t": {"type": "client", "client": {"parameters": {}}, "mcp": {"server": "s", "tool": "t"}}}),
            ),
            400,
            "tools.t.mcp",
        ),
        (with("limits", json!({"max_steps": 0})), 400, "limits.max_steps"),
        (with("output_schema", json!({"type": "string"})), 400, "output_schema"),
    ];
    for (body, status, param) in cases {
        let (got, err) = s.post("/v1/agents", &key, &body).await;
        assert_eq!((got, err["error"]["param"].as_str()), (status, Some(param)), "{body}: {err}");
    }
    // The largest definition allowed, and one past it.
    let tools = |n: usize| -> Value {
        (0..n).map(|i| (format!("t{i}"), json!({"type": "memory"}))).collect::<serde_json::Map<_, _>>().into()
    };
    let mut most = with("tools", tools(64));
    most["instructions"] = json!("x".repeat(32_768));
    assert_eq!(s.post("/v1/agents", &key, &most).await.0, 201);
    let (status, err) = s.post("/v1/agents", &key, &with("tools", tools(65))).await;
    assert_eq!((status, err["error"]["param"].as_str()), (400, Some("tools")), "{err}");
    let (status, _) = s.post("/v1/agents", &key, &with("instructions", json!("x".repeat(32_769)))).await;
    assert_eq!(status, 400);
    // Unknown fields, an unknown tool type and an unknown model.
    assert_eq!(s.post("/v1/agents", &key, &with("colour", json!("red"))).await.0, 400);
    assert_eq!(s.post("/v1/agents", &key, &with("tools", json!({"t": {"type": "teleport"}}))).await.0, 400);
    let (status, err) = s.post("/v1/agents", &key, &with("model", json!("no-such-model"))).await;
    assert_eq!(status, 404, "{err}");
    // An embedding model is no chat model.
    assert_eq!(s.post("/v1/agents", &key, &with("model", json!("embed"))).await.0, 404);
}

#[tokio::test]
async fn threads_keep_their_messages_in_order_and_to_their_tenant() {
    let up = StandIn::start().await;
    let s = TestServer::start(&crate::config(&up, &up)).await;
    let acme = s.key("acme", "member", json!({})).await;
    let reader = s.key("acme", "reader", json!({})).await;
    let globex = s.key("globex", "admin", json!({})).await;

    let first = json!({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
                       "metadata": {"customer": "c-17"}});
    let (status, thread) = s.post("/v1/threads", &acme, &first).await;
    assert_eq!(status, 201, "{thread}");
    let id = thread["id"].as_str().unwrap().to_owned();
    assert_eq!(thread["metadata"]["customer"], "c-17");

    // Concurrent additions are numbered without gaps.
    let adds = (0..5).map(|i| {
        let (s, acme, id) = (&s, &acme, &id);
        async move {
            let body = json!({"messages": [{"role": "user", "content": format!("q{i}")}]});
            s.post(&format!("/v1/threads/{id}/messages"), acme, &body).await.0
        }
    });
    assert!(join_all(adds).await.iter().all(|c| *c == 201));
    let (_, page) = s.get(&format!("/v1/threads/{id}/messages?limit=4"), &reader).await;
    let seqs: Vec<u64> = page["data"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(page["data"][0]["message"], json!({"role": "user", "content": "Hi"}));
    let (_, rest) = s.get(&format!("/v1/threads/{id}/messages?after={}", page["next_after"]), &reader).await;
    assert_eq!(rest["data"].as_array().map(Vec::len), Some(3));
    assert!(rest.get("next_after").is_none());

    // Readers read, never write; another tenant sees nothing.
    let one = json!({"messages": [{"role": "user", "content": "x"}]});
    assert_eq!(s.post(&format!("/v1/threads/{id}/messages"), &reader, &one).await.0, 403);
    assert_eq!(s.get(&format!("/v1/threads/{id}"), &globex).await.0, 404);
    assert_eq!(s.get(&format!("/v1/threads/{id}/messages"), &globex).await.0, 404);
    assert_eq!(s.post(&format!("/v1/threads/{id}/messages"), &globex, &one).await.0, 404);

    // Bad input is refused and adds nothing.
    let too_many: Vec<Value> = (0..101).map(|_| json!({"role": "user", "content": "x"})).collect();
    for bad in [
        json!({"messages": [{"role": "tool", "content": "x"}]}),
        json!({"messages": [{"role": "user", "content": ""}]}),
        json!({"messages": []}),
        json!({"messages": too_many}),
    ] {
        assert_eq!(s.post(&format!("/v1/threads/{id}/messages"), &acme, &bad).await.0, 400, "{bad}");
    }
    assert_eq!(s.post("/v1/threads", &acme, &json!({"metadata": [1]})).await.0, 400);
    let (_, all) = s.get(&format!("/v1/threads/{id}/messages"), &acme).await;
    assert_eq!(all["data"].as_array().map(Vec::len), Some(7));
}
