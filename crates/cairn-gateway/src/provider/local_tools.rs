//! Tool calling on in-process models, which have no native tool format: the tools are
//! described in a system message, a call is the JSON object `{"name": ..., "arguments": {...}}`,
//! and when the request requires a call (`tool_choice` `required` or a named function) a
//! grammar built from the tools' argument schemas constrains decoding, so even a small model
//! emits a call that parses and fits the schema. With `auto` the model chooses: output that
//! reads as a call of an offered tool is a call, anything else is the answer. Earlier calls and
//! their results are written back into the conversation as text the model can read.

use cairn_core::openai::{ChatMessage, ChatRole, FunctionCall, Tool, ToolCall};
use serde_json::Value;

/// How a request's tools shape one generation.
pub(crate) struct ToolPlan {
    /// The system text describing the tools and the call format.
    pub system: String,
    /// The grammar forcing a call, when one is required.
    pub grammar: Option<String>,
    /// Names of the tools that may be called.
    pub names: Vec<String>,
}

/// The plan for `tools` under `choice`; `None` when no tool may be called. A named function
/// that is not offered is the client's error.
pub(crate) fn plan(tools: &[Tool], choice: Option<&Value>) -> Result<Option<ToolPlan>, String> {
    let forced: Option<&str> = match choice {
        Some(Value::Object(o)) => Some(
            o.get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or("tool_choice names no function")?,
        ),
        _ => None,
    };
    let mode = choice.and_then(Value::as_str).unwrap_or("auto");
    if tools.is_empty() || mode == "none" {
        return Ok(None);
    }
    let offered: Vec<&Tool> = match forced {
        Some(name) => {
            vec![tools
                .iter()
                .find(|t| t.function.name == name)
                .ok_or(format!("tool_choice names '{name}', which is not offered"))?]
        }
        None => tools.iter().collect(),
    };
    let mut system = String::from(
        "You can call tools. To call one, reply with only a JSON object: \
         {\"name\": \"<tool name>\", \"arguments\": {<arguments>}}. Otherwise reply with your answer.\nTools:\n",
    );
    for t in &offered {
        let f = &t.function;
        let params = f.parameters.clone().unwrap_or(Value::Null);
        system.push_str(&format!("- {}({}): {}\n", f.name, signature(&params), f.description.as_deref().unwrap_or("")));
    }
    let required = forced.is_some() || mode == "required";
    let grammar = required.then(|| super::grammar::tool_call(&offered));
    Ok(Some(ToolPlan { system, grammar, names: offered.iter().map(|t| t.function.name.clone()).collect() }))
}

/// A tool's arguments as a small model reads them best: `name: type` pairs, required ones
/// first (a whole JSON Schema, descriptions and all, gets copied into the arguments).
fn signature(schema: &Value) -> String {
    let required: Vec<&str> =
        schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return String::new();
    };
    let kind = |p: &Value| match p.get("enum").and_then(Value::as_array) {
        Some(options) => options.iter().map(Value::to_string).collect::<Vec<_>>().join(" | "),
        None => p.get("type").and_then(Value::as_str).unwrap_or("any").to_owned(),
    };
    let mut parts: Vec<String> = props
        .iter()
        .filter(|(k, _)| required.contains(&k.as_str()))
        .map(|(k, p)| format!("{k}: {}", kind(p)))
        .collect();
    parts.extend(
        props.iter().filter(|(k, _)| !required.contains(&k.as_str())).map(|(k, p)| format!("{k}?: {}", kind(p))),
    );
    parts.join(", ")
}

/// `text` as a call of one of `names`, if it reads as one.
pub(crate) fn parse_call(text: &str, names: &[String]) -> Option<ToolCall> {
    let trimmed = text.trim();
    let body = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .map(|s| s.trim_end().trim_end_matches("```").trim())
        .unwrap_or(trimmed);
    let value: Value = serde_json::from_str(body).ok()?;
    let name = value.get("name")?.as_str()?;
    if !names.iter().any(|n| n == name) {
        return None;
    }
    let arguments = match value.get("arguments") {
        Some(Value::String(s)) => s.clone(),
        Some(a @ Value::Object(_)) => a.to_string(),
        None => "{}".into(),
        Some(_) => return None,
    };
    Some(ToolCall {
        id: format!("call_{}", uuid::Uuid::new_v4().simple()),
        kind: "function".into(),
        function: FunctionCall { name: name.to_owned(), arguments },
    })
}

/// The conversation as (role, text) turns a model without a tool format reads. An
/// assistant's calls become a sentence saying what it called (a call written as JSON in the
/// history gets copied, not answered); the results that follow become one user turn naming
/// each call, and when they end the conversation, the user's last question is asked again
/// after them, which small models need to answer from the results.
pub(crate) fn render(messages: &[ChatMessage]) -> Vec<(String, String)> {
    let calls: Vec<&ToolCall> = messages.iter().flat_map(|m| m.tool_calls.iter().flatten()).collect();
    let question = messages.iter().rev().find(|m| m.role == ChatRole::User).map(ChatMessage::text_content);
    let mut out: Vec<(String, String)> = Vec::with_capacity(messages.len());
    let mut results: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if m.role == ChatRole::Tool {
            let id = m.tool_call_id.as_deref().unwrap_or_default();
            let name = calls.iter().find(|c| c.id == id).map_or("the tool", |c| c.function.name.as_str());
            results.push(format!("Result of {name}:\n{}", m.text_content()));
            let last_of_run = messages.get(i + 1).is_none_or(|n| n.role != ChatRole::Tool);
            if last_of_run {
                let mut text = results.join("\n\n");
                if let (true, Some(q)) = (i + 1 == messages.len(), &question) {
                    text.push_str(&format!("\n\nUse these results to answer: {q}"));
                }
                out.push(("user".into(), text));
                results.clear();
            }
            continue;
        }
        let text = match m.tool_calls.as_deref() {
            Some(called) if m.role == ChatRole::Assistant && !called.is_empty() => {
                let said: Vec<String> =
                    called.iter().map(|c| format!("I called {}({}).", c.function.name, c.function.arguments)).collect();
                said.join("\n")
            }
            _ => m.text_content(),
        };
        let role = match m.role {
            ChatRole::System | ChatRole::Developer => "system",
            ChatRole::User | ChatRole::Tool => "user",
            ChatRole::Assistant => "assistant",
        };
        out.push((role.into(), text));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::openai::FunctionDef;
    use serde_json::json;

    fn tool(name: &str, parameters: Value) -> Tool {
        Tool {
            kind: "function".into(),
            function: FunctionDef {
                name: name.into(),
                description: Some("d".into()),
                parameters: Some(parameters),
                strict: None,
            },
        }
    }

    #[test]
    fn calls_parse_only_for_offered_tools() {
        let names = vec!["search".to_owned()];
        let call =
            parse_call("```json\n{\"name\": \"search\", \"arguments\": {\"query\": \"x\"}}\n```", &names).unwrap();
        assert_eq!(call.function.arguments, "{\"query\":\"x\"}");
        assert!(parse_call("{\"name\": \"other\", \"arguments\": {}}", &names).is_none());
        assert!(parse_call("The answer is 42.", &names).is_none());
    }

    #[test]
    fn calls_and_results_render_as_prose_and_the_question_comes_back() {
        let messages: Vec<ChatMessage> = serde_json::from_value(json!([
            {"role": "user", "content": "Meal allowance?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "search", "arguments": "{\"query\":\"meals\"}"}},
                {"id": "b", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "b", "content": "nothing"},
            {"role": "tool", "tool_call_id": "a", "content": "60 euros"},
        ]))
        .unwrap();
        let turns = render(&messages);
        assert_eq!(turns.len(), 3, "the two results are one turn: {turns:?}");
        assert_eq!(
            turns[1],
            ("assistant".into(), "I called search({\"query\":\"meals\"}).\nI called lookup({}).".into())
        );
        assert_eq!(turns[2].0, "user");
        assert!(turns[2].1.starts_with("Result of lookup:\nnothing\n\nResult of search:\n60 euros"), "{turns:?}");
        assert!(turns[2].1.ends_with("Use these results to answer: Meal allowance?"), "{turns:?}");
    }

    #[test]
    fn required_calls_get_a_grammar_from_the_schema() {
        let t = tool(
            "search",
            json!({"type": "object", "required": ["query", "k"], "properties": {
            "query": {"type": "string"}, "k": {"type": "integer"}, "mode": {"enum": ["a", "b"]}}}),
        );
        let p = plan(std::slice::from_ref(&t), Some(&json!("required"))).unwrap().unwrap();
        let g = p.grammar.unwrap();
        assert!(g.starts_with("root ::= \"{\\\"name\\\": \" ( \"\\\"search\\\"\""), "{g}");
        assert!(
            g.contains(
                "args0 ::= \"{\" ws \"\\\"query\\\"\" \":\" ws short-string \",\" ws \"\\\"k\\\"\" \":\" ws integer \"}\""
            ),
            "{g}"
        );
        assert!(plan(std::slice::from_ref(&t), None).unwrap().unwrap().grammar.is_none(), "auto: the model chooses");
        assert!(plan(std::slice::from_ref(&t), Some(&json!("none"))).unwrap().is_none());
        let named = json!({"type": "function", "function": {"name": "nope"}});
        assert!(plan(&[t], Some(&named)).is_err());
    }
}
