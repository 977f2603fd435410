//! MCP tools against a real MCP server (the official Python SDK), over both transports: a
//! tenant adds a Streamable HTTP server and its agents call the tools they list; the operator's
//! stdio server serves only the tenants it names; bad servers, bad arguments and tool errors
//! reach the model as results; tenants and roles are kept apart. On SQLite and PostgreSQL.

use cairn_testkit::mcp::{records, stdio_config, McpServer};
use cairn_testkit::{Scripted, StandIn, TestServer};
use serde_json::{json, Value};

use crate::runs::{agent, config, start, wait_run};
use crate::runs_loop::last_tool_results;

fn mcp_tool(server: &str, tool: &str) -> Value {
    json!({"type": "mcp", "mcp": {"server": server, "tool": tool}})
}

async fn start_server(up: &StandIn, postgres: bool, extra: &str) -> TestServer {
    let url = if postgres { Some(cairn_store::conformance::fresh_pg_database().await) } else { None };
    TestServer::start_with(&format!("{}\n{extra}", config(up)), url).await
}

async fn http_servers_and_runs(postgres: bool) {
    let mcp = McpServer::http(Some("t0ken")).await;
    let up = StandIn::start().await;
    let s = start_server(&up, postgres, "").await;
    let admin = s.key("acme", "admin", json!({})).await;
    let member = s.key("acme", "member", json!({})).await;
    let reader = s.key("acme", "reader", json!({})).await;
    let globex = s.key("globex", "admin", json!({})).await;

    // Only admins add servers; the credential is stored but never shown.
    let body = json!({"name": "calc", "url": mcp.url, "headers": {"Authorization": "Bearer t0ken"}});
    assert_eq!(s.post("/v1/mcp_servers", &member, &body).await.0, 403);
    let (status, created) = s.post("/v1/mcp_servers", &admin, &body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["header_names"], json!(["Authorization"]));
    assert!(!created.to_string().contains("t0ken"), "{created}");
    assert_eq!(s.post("/v1/mcp_servers", &admin, &body).await.0, 409);
    let (status, listed) = s.get("/v1/mcp_servers", &reader).await;
    assert_eq!((status, listed["data"].as_array().map(Vec::len)), (200, Some(1)), "{listed}");

    // Its tools, asked of the server with the stored credential.
    let (status, tools) = s.get("/v1/mcp_servers/calc/tools", &member).await;
    assert_eq!(status, 200, "{tools}");
    let names: Vec<&str> = tools["data"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    for expected in ["add", "echo", "record", "fail", "sleep"] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let add = tools["data"].as_array().unwrap().iter().find(|t| t["name"] == "add").unwrap();
    assert_eq!(add["input_schema"]["properties"]["a"]["type"], "integer", "{add}");
    assert_eq!(s.get("/v1/mcp_servers/calc/tools", &reader).await.0, 403);

    // Another tenant sees nothing of it.
    assert_eq!(s.get("/v1/mcp_servers/calc", &globex).await.0, 404);
    assert_eq!(s.get("/v1/mcp_servers/calc/tools", &globex).await.0, 404);
    assert_eq!(s.delete("/v1/mcp_servers/calc", &globex).await, 404);
    assert_eq!(s.get("/v1/mcp_servers", &globex).await.1["data"], json!([]));

    // An agent calls the tools it lists: a good call, a side effect with its idempotency key,
    // a tool error, arguments the server's schema refuses, and a tool it does not list.
    let tools = json!({
        "add": mcp_tool("calc", "add"),
        "record": mcp_tool("calc", "record"),
        "fail": mcp_tool("calc", "fail"),
    });
    let id = agent(&s, &member, json!({"name": "calc", "model": "fast", "tools": tools})).await;
    up.script([
        Scripted::Calls(vec![
            ("add".into(), json!({"a": 2, "b": 3})),
            ("record".into(), json!({"key": "k1"})),
            ("fail".into(), json!({"reason": "out of paper"})),
            ("add".into(), json!({"a": "two", "b": 3})),
            ("echo".into(), json!({"text": "hi"})),
        ]),
        Scripted::Text("2 + 3 = 5.".into()),
    ]);
    let run = start(&s, &member, &id, "Add 2 and 3").await;
    let done = wait_run(&s, &member, &run, &["succeeded", "failed"]).await;
    assert_eq!((done["state"].as_str(), done["answer"].as_str()), (Some("succeeded"), Some("2 + 3 = 5.")), "{done}");
    // Parallel calls answer in the order they finish.
    let results = last_tool_results(&up);
    let has = |text: &str| results.iter().any(|r| r.contains(text));
    assert_eq!(results.len(), 5, "{results:?}");
    assert!(results.iter().any(|r| r == "5") && results.iter().any(|r| r == "recorded k1"), "{results:?}");
    assert!(has("the tool reported an error") && has("out of paper"), "{results:?}");
    assert!(has("\"two\" is not of type \"integer\""), "the server's schema was checked: {results:?}");
    assert!(has("there is no tool 'echo'"), "the server's other tools are not the agent's: {results:?}");
    assert_eq!(mcp.records(), ["k1"], "the side effect happened once");
    // The model was offered the server's description and schema for each listed tool only.
    let first = up.bodies().into_iter().find(|b| b.get("tools").is_some()).unwrap();
    let offered: Vec<&str> =
        first["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(offered, ["add", "fail", "record"]);
    assert_eq!(first["tools"][0]["function"]["description"], "Adds two integers.");
    assert_eq!(first["tools"][0]["function"]["parameters"]["required"], json!(["a", "b"]));

    // Deleted (or down), the server's tools fail as results and the run still ends.
    assert_eq!(s.delete("/v1/mcp_servers/calc", &member).await, 403);
    assert_eq!(s.delete("/v1/mcp_servers/calc", &admin).await, 204);
    assert_eq!(s.get("/v1/mcp_servers/calc", &admin).await.0, 404);
    up.script([Scripted::Calls(vec![("add".into(), json!({"a": 1, "b": 1}))]), Scripted::Text("Cannot add.".into())]);
    let run = start(&s, &member, &id, "Add 1 and 1").await;
    let done = wait_run(&s, &member, &run, &["succeeded", "failed"]).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(last_tool_results(&up)[0].contains("there is no MCP server 'calc'"), "{:?}", last_tool_results(&up));
}

#[tokio::test]
async fn http_mcp_servers_on_sqlite() {
    http_servers_and_runs(false).await;
}

#[tokio::test]
async fn http_mcp_servers_on_postgres() {
    http_servers_and_runs(true).await;
}

#[tokio::test]
async fn stdio_servers_serve_the_tenants_the_operator_names() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stdio.log");
    let up = StandIn::start().await;
    let s = start_server(&up, false, &stdio_config("local", &["acme"], &log)).await;
    let acme = s.key("acme", "admin", json!({})).await;
    let globex = s.key("globex", "admin", json!({})).await;

    let (status, listed) = s.get("/v1/mcp_servers", &acme).await;
    assert_eq!(status, 200);
    assert_eq!(listed["data"][0]["transport"], "stdio", "{listed}");
    assert!(!listed.to_string().contains("mcp_server.py"), "the operator's command is not shown: {listed}");
    assert_eq!(s.get("/v1/mcp_servers/local", &globex).await.0, 404);
    assert_eq!(s.get("/v1/mcp_servers", &globex).await.1["data"], json!([]));
    // A tenant cannot shadow or remove the operator's server.
    let shadow = json!({"name": "local", "url": "http://127.0.0.1:9/mcp"});
    assert_eq!(s.post("/v1/mcp_servers", &acme, &shadow).await.0, 409);
    assert_eq!(s.delete("/v1/mcp_servers/local", &acme).await, 403);
    let (status, tools) = s.get("/v1/mcp_servers/local/tools", &acme).await;
    assert_eq!(status, 200, "{tools}");

    let tools = json!({"record": mcp_tool("local", "record"), "add": mcp_tool("local", "add")});
    let spec = json!({"name": "local", "model": "fast", "tools": tools, "tool_choice": "required"});
    let id = agent(&s, &acme, spec.clone()).await;
    up.script([
        Scripted::Calls(vec![("record".into(), json!({"key": "s1"})), ("add".into(), json!({"a": 40, "b": 2}))]),
        Scripted::Text("Done.".into()),
    ]);
    let run = start(&s, &acme, &id, "Record s1").await;
    let done = wait_run(&s, &acme, &run, &["succeeded", "failed"]).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let mut results = last_tool_results(&up);
    results.sort();
    assert_eq!(results, ["42", "recorded s1"]);
    assert_eq!(records(&log), ["s1"]);
    // `tool_choice: required` holds until the run has called a tool, then the model chooses.
    let chats: Vec<Value> = up.bodies().into_iter().filter(|b| b.get("messages").is_some()).collect();
    let choices: Vec<&Value> = chats.iter().map(|b| &b["tool_choice"]).collect();
    assert_eq!(choices, [&json!("required"), &Value::Null], "{chats:?}");

    // Globex may define the same agent, but its runs cannot reach acme's server.
    let other = agent(&s, &globex, spec).await;
    up.script([Scripted::Calls(vec![("record".into(), json!({"key": "g1"}))]), Scripted::Text("No.".into())]);
    let run = start(&s, &globex, &other, "Record g1").await;
    let done = wait_run(&s, &globex, &run, &["succeeded", "failed"]).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(last_tool_results(&up)[0].contains("there is no MCP server 'local'"), "{:?}", last_tool_results(&up));
    assert_eq!(records(&log), ["s1"], "globex's call never reached the server");
}

#[tokio::test]
async fn bad_servers_are_refused_or_reported() {
    let mcp = McpServer::http(Some("t0ken")).await;
    let up = StandIn::start().await;
    let s = start_server(&up, false, "").await;
    let admin = s.key("acme", "admin", json!({})).await;
    let refused = [
        json!({"name": "x", "url": "ftp://127.0.0.1/mcp"}),
        json!({"name": "x", "url": "http://user:pw@127.0.0.1:1/mcp"}),
        json!({"name": "bad name", "url": mcp.url}),
        json!({"name": "x", "url": mcp.url, "headers": {"Mcp-Session-Id": "forged"}}),
        json!({"name": "x", "url": mcp.url, "headers": {"X-Bad": "line\nbreak"}}),
        json!({"name": "x", "url": mcp.url, "command": "sh"}),
    ];
    let off_list = json!({"name": "x", "url": "http://example.com/mcp"});
    assert_eq!(s.post("/v1/mcp_servers", &admin, &off_list).await.0, 403, "hosts off the allow-list are refused");
    for body in refused {
        let (status, err) = s.post("/v1/mcp_servers", &admin, &body).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert!(err["error"]["message"].is_string(), "{err}");
    }
    // The largest definition allowed, and one past each limit.
    let headers = |n: usize| -> Value {
        // (3 KB each: the test server takes bodies up to 64 KB; one value of 8 KB is tried below.)
        (0..n).map(|i| (format!("X-H{i}"), json!("v".repeat(3000)))).collect::<serde_json::Map<_, _>>().into()
    };
    let name = "n".repeat(64);
    let most = json!({"name": name, "url": mcp.url, "headers": headers(16)});
    assert_eq!(s.post("/v1/mcp_servers", &admin, &most).await.0, 201);
    assert_eq!(s.get(&format!("/v1/mcp_servers/{name}"), &admin).await.1["header_names"].as_array().unwrap().len(), 16);
    let long = json!({"name": "long", "url": mcp.url, "headers": {"X-Big": "v".repeat(8192)}});
    assert_eq!(s.post("/v1/mcp_servers", &admin, &long).await.0, 201);
    for body in [
        json!({"name": "n".repeat(65), "url": mcp.url}),
        json!({"name": "x", "url": mcp.url, "headers": headers(17)}),
        json!({"name": "x", "url": mcp.url, "headers": {"X-Big": "v".repeat(8193)}}),
    ] {
        assert_eq!(s.post("/v1/mcp_servers", &admin, &body).await.0, 400);
    }
    // Eight admins racing for one name: exactly one wins.
    let race = json!({"name": "race", "url": mcp.url});
    let racers = (0..8).map(|_| s.post("/v1/mcp_servers", &admin, &race));
    let statuses: Vec<u16> = futures::future::join_all(racers).await.into_iter().map(|(st, _)| st).collect();
    assert_eq!(statuses.iter().filter(|st| **st == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|st| *st == 201 || *st == 409), "{statuses:?}");

    // A wrong credential and a server that is down: clear 502s, not 500s.
    let wrong = json!({"name": "wrong", "url": mcp.url, "headers": {"Authorization": "Bearer nope"}});
    assert_eq!(s.post("/v1/mcp_servers", &admin, &wrong).await.0, 201);
    let (status, err) = s.get("/v1/mcp_servers/wrong/tools", &admin).await;
    assert_eq!(status, 502, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("401"), "{err}");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = json!({"name": "down", "url": format!("http://127.0.0.1:{port}/mcp")});
    assert_eq!(s.post("/v1/mcp_servers", &admin, &down).await.0, 201);
    assert_eq!(s.get("/v1/mcp_servers/down/tools", &admin).await.0, 502);
    assert_eq!(s.get("/v1/mcp_servers/missing/tools", &admin).await.0, 404);

    // A run whose server is down is offered the tool, reads why its call failed, and ends.
    let id = agent(&s, &admin, json!({"name": "d", "model": "fast", "tools": {"add": mcp_tool("down", "add")}})).await;
    up.script([Scripted::Calls(vec![("add".into(), json!({"a": 1, "b": 2}))]), Scripted::Text("Down.".into())]);
    let run = start(&s, &admin, &id, "Add").await;
    let done = wait_run(&s, &admin, &run, &["succeeded", "failed"]).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(last_tool_results(&up)[0].contains("unreachable"), "{:?}", last_tool_results(&up));

    // A call that outlives its time limit is reported as such; the server stays usable.
    let (status, _) = s
        .post(
            "/v1/mcp_servers",
            &admin,
            &json!({"name": "ok", "url": mcp.url,
        "headers": {"Authorization": "Bearer t0ken"}}),
        )
        .await;
    assert_eq!(status, 201);
    let tools = json!({
        "sleep": {"type": "mcp", "mcp": {"server": "ok", "tool": "sleep", "timeout_ms": 200}},
        "echo": mcp_tool("ok", "echo"),
    });
    let id = agent(&s, &admin, json!({"name": "slow", "model": "fast", "tools": tools})).await;
    up.script([
        Scripted::Calls(vec![("sleep".into(), json!({"seconds": 5}))]),
        Scripted::Calls(vec![("echo".into(), json!({"text": "still here"}))]),
        Scripted::Text("Done.".into()),
    ]);
    let run = start(&s, &admin, &id, "Sleep").await;
    let done = wait_run(&s, &admin, &run, &["succeeded", "failed"]).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let chats: Vec<Value> = up.bodies().into_iter().filter(|b| b.get("messages").is_some()).collect();
    let tool_text = |b: &Value| -> Vec<String> {
        b["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect()
    };
    let results = tool_text(chats.last().unwrap());
    assert!(results[0].contains("did not answer within 200 ms"), "{results:?}");
    assert_eq!(results[1], "still here", "{results:?}");
}
