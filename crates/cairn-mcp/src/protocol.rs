//! The JSON-RPC 2.0 messages of MCP that a tool-calling client needs, and how a tool's
//! result reads as text.

use serde_json::{json, Map, Value};

use crate::McpError;

/// Protocol versions this client speaks, newest first (the first is offered).
pub(crate) const VERSIONS: &[&str] = &["2025-06-18", "2025-03-26", "2024-11-05"];

/// A request message.
pub(crate) fn request(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A notification message.
pub(crate) fn notification(method: &str) -> Value {
    json!({"jsonrpc": "2.0", "method": method})
}

/// Whether `message` is the response to request `id`.
pub(crate) fn answers(message: &Value, id: u64) -> bool {
    message.get("id").and_then(Value::as_u64) == Some(id)
        && (message.get("result").is_some() || message.get("error").is_some())
}

/// The result of response `message`, or the server's error.
pub(crate) fn result_of(mut message: Value) -> Result<Value, McpError> {
    if let Some(error) = message.get("error") {
        return Err(McpError::Refused {
            code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: error.get("message").and_then(Value::as_str).unwrap_or("no message").chars().take(500).collect(),
        });
    }
    match message.get_mut("result") {
        Some(result) => Ok(result.take()),
        None => Err(McpError::Protocol("a response without a result".into())),
    }
}

/// One tool a server offers.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolInfo {
    /// Its name on the server.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its arguments (an object schema; `{"type": "object"}` when the server
    /// gave none that reads as one).
    pub input_schema: Value,
}

impl ToolInfo {
    /// Reads one entry of a `tools/list` result.
    pub(crate) fn read(entry: &Value) -> Result<Self, McpError> {
        let name = entry.get("name").and_then(Value::as_str).filter(|n| !n.is_empty() && n.len() <= 256);
        let Some(name) = name else {
            return Err(McpError::Protocol("a tool without a usable name".into()));
        };
        let schema = match entry.get("inputSchema") {
            Some(s @ Value::Object(m)) if m.get("type").and_then(Value::as_str) == Some("object") => s.clone(),
            _ => json!({"type": "object"}),
        };
        Ok(Self {
            name: name.to_owned(),
            description: entry.get("description").and_then(Value::as_str).unwrap_or_default().to_owned(),
            input_schema: schema,
        })
    }
}

/// What a tool call gave.
#[derive(Clone, Debug, PartialEq)]
pub struct CallOutcome {
    /// The result as the model reads it: text parts joined, other parts described.
    pub text: String,
    /// The tool reported a failure (`isError`).
    pub is_error: bool,
}

impl CallOutcome {
    /// Reads a `tools/call` result.
    pub(crate) fn read(result: &Value) -> Self {
        let mut parts = Vec::new();
        for part in result.get("content").and_then(Value::as_array).into_iter().flatten() {
            match part.get("type").and_then(Value::as_str) {
                Some("text") => parts.push(part.get("text").and_then(Value::as_str).unwrap_or_default().to_owned()),
                Some("resource") => {
                    let resource = part.get("resource").cloned().unwrap_or_default();
                    match resource.get("text").and_then(Value::as_str) {
                        Some(text) => parts.push(text.to_owned()),
                        None => parts.push(format!("[resource {}]", resource.get("uri").unwrap_or(&Value::Null))),
                    }
                }
                Some("resource_link") => parts.push(format!("[resource {}]", part.get("uri").unwrap_or(&Value::Null))),
                Some(kind) => parts.push(format!(
                    "[{kind} content, {}]",
                    part.get("mimeType").and_then(Value::as_str).unwrap_or("no type")
                )),
                None => {}
            }
        }
        // Structured content is what the tool means when it gives no text.
        if parts.is_empty() {
            if let Some(structured) = result.get("structuredContent") {
                parts.push(structured.to_string());
            }
        }
        Self { text: parts.join("\n"), is_error: result.get("isError").and_then(Value::as_bool).unwrap_or(false) }
    }
}

/// The `initialize` request's parameters.
pub(crate) fn initialize_params() -> Value {
    json!({
        "protocolVersion": VERSIONS[0],
        "capabilities": {},
        "clientInfo": {"name": "cairn", "version": env!("CARGO_PKG_VERSION")},
    })
}

/// The `tools/list` request's parameters for page `cursor`.
pub(crate) fn list_params(cursor: Option<&str>) -> Value {
    let mut params = Map::new();
    if let Some(c) = cursor {
        params.insert("cursor".into(), Value::String(c.to_owned()));
    }
    Value::Object(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_read_as_text() {
        let r = json!({"content": [{"type": "text", "text": "a"}, {"type": "image", "mimeType": "image/png", "data": ""}], "isError": true});
        let out = CallOutcome::read(&r);
        assert_eq!(out.text, "a\n[image content, image/png]");
        assert!(out.is_error);
        let structured = CallOutcome::read(&json!({"content": [], "structuredContent": {"x": 1}}));
        assert_eq!(structured.text, "{\"x\":1}");
    }

    #[test]
    fn tools_without_object_schemas_get_one() {
        let t = ToolInfo::read(&json!({"name": "t", "inputSchema": {"type": "string"}})).unwrap();
        assert_eq!(t.input_schema, json!({"type": "object"}));
        assert!(ToolInfo::read(&json!({"name": ""})).is_err());
    }

    #[test]
    fn errors_are_read() {
        let e = result_of(json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "bad"}}));
        assert!(matches!(e, Err(McpError::Refused { code: -32602, .. })));
        assert!(answers(&json!({"id": 3, "result": {}}), 3));
        assert!(!answers(&json!({"id": 3, "method": "ping"}), 3));
    }
}
