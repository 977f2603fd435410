//! JSON Schemas as GBNF grammars for llama.cpp's constrained decoding: a local model's output
//! can only be JSON the grammar admits, so a small model calls tools with well-formed
//! arguments and answers a `json_schema` response format with a document of that shape.

use cairn_core::openai::Tool;
use serde_json::Value;

/// GBNF admitting exactly one call of one of `tools`, arguments following its schema.
pub(crate) fn tool_call(tools: &[&Tool]) -> String {
    let mut g = Grammar { string: "short-string", ..Grammar::default() };
    let mut alternatives = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        let schema = t.function.parameters.clone().unwrap_or(Value::Null);
        let args = g.rule(&format!("args{i}"), &schema, 0);
        alternatives
            .push(format!("{} \", \\\"arguments\\\": \" {args}", literal(&Value::String(t.function.name.clone()))));
    }
    let root = format!("root ::= \"{{\\\"name\\\": \" ( {} ) \"}}\"\n", alternatives.join(" | "));
    g.finish(root)
}

/// GBNF admitting one JSON document of `schema` (`response_format` of type `json_schema`):
/// its types, enums, constants, alternatives and required properties, nested up to
/// `MAX_DEPTH`. Other keywords (bounds, patterns) are not expressed; the output schema guard
/// checks them.
pub(crate) fn json_schema(schema: &Value) -> String {
    let mut g = Grammar { string: "string", ..Grammar::default() };
    let body = g.rule("doc", schema, 0);
    g.finish(format!("root ::= ws {body}\n"))
}

/// GBNF admitting one JSON object (`response_format` of type `json_object`).
pub(crate) fn json_object() -> String {
    Grammar::default().finish("root ::= ws object\n".into())
}

/// JSON's building blocks. Whitespace is bounded, so a model cannot pad forever.
const BASE: &str = r#"ws ::= [ ]?
char ::= [^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] )
string ::= "\"" char* "\""
short-string ::= "\"" char{0,200} "\""
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
    /// The rule strings of the schema take (`short-string` for tool arguments).
    string: &'static str,
}

impl Grammar {
    /// The whole grammar: `root`, JSON's building blocks, then the rules made.
    fn finish(self, root: String) -> String {
        let mut out = root;
        out.push_str(BASE);
        for (name, body) in self.rules {
            out.push_str(&format!("{name} ::= {body}\n"));
        }
        out
    }

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
            // Argument strings are bounded: a small model can otherwise run one on forever.
            Some("string") => self.string.into(),
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
    /// out: a document needs only what is required); with none required, any object.
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
    use serde_json::json;

    #[test]
    fn response_schemas_become_grammars_of_their_shape() {
        let g = json_schema(&json!({"type": "object", "required": ["city", "tags", "kind"], "properties": {
            "city": {"type": "string"}, "tags": {"type": "array", "items": {"type": "integer"}},
            "kind": {"enum": ["big", "small"]}, "note": {"type": "string"}}}));
        assert!(g.starts_with("root ::= ws doc\n"), "{g}");
        assert!(g.contains("doc-1 ::= \"[\" ws ( integer ( \",\" ws integer )* )? \"]\""), "{g}");
        assert!(g.contains("\"\\\"city\\\"\" \":\" ws string"), "response strings are not cut short: {g}");
        assert!(g.contains("( \"\\\"big\\\"\" | \"\\\"small\\\"\" )"), "{g}");
        assert!(!g.contains("note"), "optional properties are left out: {g}");
        assert_eq!(json_object().lines().next(), Some("root ::= ws object"));
        // Anything the grammar cannot say is any JSON value.
        assert!(json_schema(&json!({"not": {}})).starts_with("root ::= ws value"));
    }
}
