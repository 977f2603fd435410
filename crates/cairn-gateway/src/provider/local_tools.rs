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
        system.push_str(&format!(
            "- {}: {} Arguments (JSON Schema): {}\n",
            f.name,
            f.description.as_deref().unwrap_or(""),
            params
        ));
    }
    let required = forced.is_some() || mode == "required";
    let grammar = required.then(|| grammar(&offered));
    Ok(Some(ToolPlan { system, grammar, names: offered.iter().map(|t| t.function.name.clone()).collect() }))
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

/// One message as text the model reads: an assistant's calls in the call format, a tool's
/// result as a user turn naming the call it answers (small models know no `tool` role).
pub(crate) fn render(m: &ChatMessage, calls: &[ToolCall]) -> (String, String) {
    match m.role {
        ChatRole::Assistant if m.tool_calls.as_ref().is_some_and(|c| !c.is_empty()) => {
            let text: Vec<String> = m
                .tool_calls
                .iter()
                .flatten()
                .map(|c| {
                    let args: Value = serde_json::from_str(&c.function.arguments).unwrap_or(Value::Null);
                    serde_json::json!({"name": c.function.name, "arguments": args}).to_string()
                })
                .collect();
            ("assistant".into(), text.join("\n"))
        }
        ChatRole::Tool => {
            let id = m.tool_call_id.as_deref().unwrap_or_default();
            let name = calls.iter().find(|c| c.id == id).map_or("the tool", |c| c.function.name.as_str());
            ("user".into(), format!("Result of {name}:\n{}", m.text_content()))
        }
        _ => (
            match m.role {
                ChatRole::System | ChatRole::Developer => "system",
                ChatRole::User | ChatRole::Tool => "user",
                ChatRole::Assistant => "assistant",
            }
            .into(),
            m.text_content(),
        ),
    }
}

/// GBNF admitting exactly one call of one of `tools`, arguments following its schema.
fn grammar(tools: &[&Tool]) -> String {
    let mut g = Grammar::default();
    let mut alternatives = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        let schema = t.function.parameters.clone().unwrap_or(Value::Null);
        let args = g.rule(&format!("args{i}"), &schema, 0);
        alternatives
            .push(format!("{} \", \\\"arguments\\\": \" {args}", literal(&Value::String(t.function.name.clone()))));
    }
    let mut out = format!("root ::= \"{{\\\"name\\\": \" ( {} ) \"}}\"\n", alternatives.join(" | "));
    out.push_str(BASE);
    for (name, body) in g.rules {
        out.push_str(&format!("{name} ::= {body}\n"));
    }
    out
}

/// JSON's building blocks. Whitespace is bounded, so a model cannot pad forever.
const BASE: &str = r#"ws ::= [ ]?
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] ) )* "\""
integer ::= "-"? ( [0-9] | [1-9] [0-9] [0-9]? [0-9]? [0-9]? [0-9]? [0-9]? [0-9]? [0-9]? )
number ::= integer ( "." [0-9]+ )? ( [eE] [-+]? [0-9]+ )?
boolean ::= "true" | "false"
null ::= "null"
value ::= object | array | string | number | boolean | null
object ::= "{" ws ( string ":" ws value ( "," ws string ":" ws value )* )? "}"
array ::= "[" ws ( value ( "," ws value )* )? "]"
"#;

/// Most nesting a schema's rules follow; deeper parts take any JSON value.
const MAX_DEPTH: usize = 6;

/// Rules made from schemas, by name.
#[derive(Default)]
struct Grammar {
    rules: Vec<(String, String)>,
}

impl Grammar {
    /// The rule (a name, or an inline expression) for values of `schema`.
    fn rule(&mut self, name: &str, schema: &Value, depth: usize) -> String {
        if depth > MAX_DEPTH {
            return "value".into();
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array).filter(|o| !o.is_empty()) {
            return format!("( {} )", options.iter().map(literal).collect::<Vec<_>>().join(" | "));
        }
        if let Some(c) = schema.get("const") {
            return literal(c);
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(options) = schema.get(key).and_then(Value::as_array).filter(|o| !o.is_empty()) {
                let parts: Vec<String> =
                    options.iter().enumerate().map(|(i, o)| self.rule(&format!("{name}-{i}"), o, depth + 1)).collect();
                return format!("( {} )", parts.join(" | "));
            }
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("string") => "string".into(),
            Some("integer") => "integer".into(),
            Some("number") => "number".into(),
            Some("boolean") => "boolean".into(),
            Some("null") => "null".into(),
            Some("array") => {
                let item = match schema.get("items") {
                    Some(items) => self.rule(&format!("{name}-item"), items, depth + 1),
                    None => "value".into(),
                };
                self.define(name, format!("\"[\" ws ( {item} ( \",\" ws {item} )* )? \"]\""))
            }
            Some("object") => self.object(name, schema, depth),
            _ => "value".into(),
        }
    }

    /// An object with its required properties, in the schema's order (optional ones are left
    /// out: a call needs only what is required); with none required, any object.
    fn object(&mut self, name: &str, schema: &Value, depth: usize) -> String {
        let required: Vec<&str> =
            schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let Some(props) = schema.get("properties").and_then(Value::as_object).filter(|_| !required.is_empty()) else {
            return "object".into();
        };
        let mut parts = Vec::new();
        for (i, (key, sub)) in props.iter().filter(|(k, _)| required.contains(&k.as_str())).enumerate() {
            let value = self.rule(&format!("{name}-{i}"), sub, depth + 1);
            parts.push(format!("{} \":\" ws {value}", literal(&Value::String(key.clone()))));
        }
        if parts.is_empty() {
            return "object".into();
        }
        self.define(name, format!("\"{{\" ws {} \"}}\"", parts.join(" \",\" ws ")))
    }

    fn define(&mut self, name: &str, body: String) -> String {
        let name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
        self.rules.push((name.clone(), body));
        name
    }
}

/// A GBNF literal matching `value`'s JSON text exactly.
fn literal(value: &Value) -> String {
    let json = value.to_string();
    let mut out = String::from("\"");
    for c in json.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
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
                "args0 ::= \"{\" ws \"\\\"query\\\"\" \":\" ws string \",\" ws \"\\\"k\\\"\" \":\" ws integer \"}\""
            ),
            "{g}"
        );
        assert!(plan(std::slice::from_ref(&t), None).unwrap().unwrap().grammar.is_none(), "auto: the model chooses");
        assert!(plan(std::slice::from_ref(&t), Some(&json!("none"))).unwrap().is_none());
        let named = json!({"type": "function", "function": {"name": "nope"}});
        assert!(plan(&[t], Some(&named)).is_err());
    }
}
