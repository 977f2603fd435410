use serde_json::json;

use super::*;

fn no_rules(_: &Value) -> std::result::Result<(), String> {
    Ok(())
}

fn spec(v: Value) -> std::result::Result<AgentSpec, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

fn param(v: Value) -> String {
    match spec(v).unwrap().check(&no_rules) {
        Err(Error::InvalidRequest { param, .. }) => param.unwrap_or_default(),
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[test]
fn a_full_definition_reads_and_passes() {
    let s = spec(json!({
        "name": "support-bot",
        "model": "gpt",
        "instructions": "Help.",
        "tools": {
            "search": {"type": "knowledge_search", "knowledge_search": {"collections": ["col_1"], "top_k": 5}},
            "fetch": {"type": "http_request", "http_request": {"methods": ["GET", "POST"]}},
            "refund": {"type": "webhook", "approval": {"when": {"field": "amount", "gt": 100}},
             "webhook": {"url": "https://hooks.example.com/refund", "parameters": {"type": "object"}}},
            "ask_user": {"type": "client", "approval": "always", "client": {"parameters": {}}},
            "time": {"type": "mcp", "mcp": {"server": "clock", "tool": "now"}},
            "memory": {"type": "memory"}
        },
        "limits": {"max_steps": 10, "max_cost_usd": 0.5}
    }))
    .unwrap();
    s.check(&no_rules).unwrap();
    assert_eq!(s.limits.max_tool_calls, 100, "unset limits keep their defaults");
    assert_eq!(s.tools["refund"].approval, Approval::When(json!({"field": "amount", "gt": 100})));
    // What is stored reads back the same.
    assert_eq!(spec(serde_json::to_value(&s).unwrap()).unwrap(), s);
}

#[test]
fn each_rule_names_the_field_at_fault() {
    let base = || json!({"name": "a", "model": "m"});
    let with = |k: &str, v: Value| {
        let mut b = base();
        b[k] = v;
        b
    };
    assert_eq!(param(with("name", json!("Bad Name"))), "name");
    assert_eq!(param(with("name", json!("-x"))), "name");
    assert_eq!(param(with("model", json!(" "))), "model");
    assert_eq!(param(with("output_schema", json!({"type": "array"}))), "output_schema");
    assert_eq!(param(with("limits", json!({"max_steps": 0}))), "limits.max_steps");
    assert_eq!(param(with("limits", json!({"max_repeats": 1}))), "limits.max_repeats");
    let tools = |t: Value| with("tools", json!({"t": t}));
    assert_eq!(param(with("tools", json!({"x y": {"type": "memory"}}))), "tools.x y");
    assert_eq!(param(tools(json!({"type": "client"}))), "tools.t.client");
    assert_eq!(
        param(tools(json!({"type": "client", "client": {"parameters": {}}, "mcp": {"server": "s", "tool": "t"}}))),
        "tools.t.mcp"
    );
    assert_eq!(
        param(tools(json!({"type": "knowledge_search", "knowledge_search": {"collections": []}}))),
        "tools.t.knowledge_search.collections"
    );
    assert_eq!(
        param(tools(json!({"type": "webhook", "webhook": {"url": "ftp://x", "parameters": {}}}))),
        "tools.t.webhook.url"
    );
}

#[test]
fn approval_rules_are_checked_and_unknown_fields_refused() {
    let bad_rule = |_: &Value| Err("filter: expected 'field'".to_string());
    let s = spec(json!({"name": "a", "model": "m", "tools": {"m": {"type": "memory", "approval": {"when": {}}}}}));
    let Err(Error::InvalidRequest { param, .. }) = s.unwrap().check(&bad_rule) else { panic!("a bad rule passed") };
    assert_eq!(param.as_deref(), Some("tools.m.approval.when"));
    assert!(spec(json!({"name": "a", "model": "m", "extra": 1})).is_err());
    assert!(spec(json!({"name": "a", "model": "m", "tools": {"x": {"type": "nope"}}})).is_err());
    assert!(spec(json!({"name": "a", "model": "m", "limits": {"max_steps": 5, "bogus": 1}})).is_err());
}
