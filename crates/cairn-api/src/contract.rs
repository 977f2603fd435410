//! The rules the OpenAPI document states beyond what the Rust types say: rules between fields
//! (a `tool` message needs its `tool_call_id`, `stream_options` needs `stream: true`), the
//! metadata filter language as a recursive schema, job payloads per job type, and the shape of
//! each server-sent event. The handlers enforce all of them; written here as JSON Schema
//! (OpenAPI 3.1), clients and contract testers see the same rules the server applies.

use serde_json::{json, Map, Value};
use utoipa::openapi::schema::{Object, Schema, SchemaType};
use utoipa::openapi::{Content, OpenApi, RefOr};

/// A schema written out in JSON Schema (for what utoipa's types cannot spell: `if`/`then`,
/// `not`, `dependentSchemas`, `contentSchema`).
pub(crate) fn raw(schema: Value) -> Schema {
    let mut o = Object::default();
    o.schema_type = SchemaType::AnyValue;
    if let Value::Object(map) = schema {
        o.extensions.get_or_insert_with(Default::default).extend(map);
    }
    Schema::Object(o)
}

/// Adds JSON Schema keywords to component `name` (an object schema).
fn add_keywords(doc: &mut OpenApi, name: &str, keywords: Value) {
    let Some(RefOr::T(Schema::Object(o))) = doc.components.as_mut().and_then(|c| c.schemas.get_mut(name)) else {
        panic!("the OpenAPI document has no object schema '{name}'");
    };
    if let Value::Object(map) = keywords {
        o.extensions.get_or_insert_with(Default::default).extend(map);
    }
}

/// Replaces property `prop` of each of the `components` (object schemas).
fn set_property(doc: &mut OpenApi, components: &[&str], prop: &str, schema: &Value) {
    for name in components {
        let s = doc.components.as_mut().and_then(|c| c.schemas.get_mut(*name));
        let Some(RefOr::T(Schema::Object(o))) = s else { panic!("the OpenAPI document has no object schema '{name}'") };
        let p = o.properties.get_mut(prop).unwrap_or_else(|| panic!("'{name}' has no property '{prop}'"));
        *p = RefOr::T(raw(schema.clone()));
    }
}

/// Sets component `name` to a schema written in JSON Schema.
fn set_component(doc: &mut OpenApi, name: &str, schema: Value) {
    if let Some(c) = doc.components.as_mut() {
        c.schemas.insert(name.to_owned(), RefOr::T(raw(schema)));
    }
}

/// Sets the `text/event-stream` content of the 200 response of `path`'s POST (or GET): one
/// schema per event, as schemathesis and OpenAPI 3.1 tools read SSE.
fn set_event_stream(doc: &mut OpenApi, path: &str, post: bool, event: Value) {
    let item = doc.paths.paths.get_mut(path).unwrap_or_else(|| panic!("no path {path}"));
    let op = if post { item.post.as_mut() } else { item.get.as_mut() };
    let op = op.unwrap_or_else(|| panic!("no operation on {path}"));
    if let Some(RefOr::T(ok)) = op.responses.responses.get_mut("200") {
        ok.content.insert("text/event-stream".into(), Content::new(Some(RefOr::T(raw(event)))));
    }
}

/// A `$ref` to component `name`.
fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// One SSE event: its `event` name(s) and `data` (a JSON document of schema `data`, or text).
fn sse_event(events: &[&str], data: Value) -> Value {
    let mut event = Map::new();
    if !events.is_empty() {
        event.insert("enum".into(), json!(events));
    }
    json!({
        "type": "object",
        "required": ["data"],
        "properties": {
            "event": event,
            "data": data,
            "id": {"type": "string"},
            "retry": {"type": "integer"},
        },
    })
}

/// A JSON document in an SSE `data` field.
fn json_data(schema: Value) -> Value {
    json!({"type": "string", "contentMediaType": "application/json", "contentSchema": schema})
}

/// Applies every rule to `doc`, with the payload schemas of the job types this server runs.
pub(crate) fn apply(doc: &mut OpenApi, job_types: &[cairn_jobs::JobType]) {
    chat(doc);
    filter(doc);
    knowledge(doc);
    streams(doc);
    jobs(doc, job_types);
    agents(doc);
    feedback(doc);
}

/// Feedback: a score is a yes/no, a bounded number or a short non-empty label.
fn feedback(doc: &mut OpenApi) {
    set_component(
        doc,
        "Score",
        json!({"oneOf": [
            {"type": "boolean"},
            {"type": "number", "minimum": -1e12, "maximum": 1e12},
            {"type": "string", "minLength": 1, "maxLength": 128},
        ]}),
    );
}

/// Agents: tools keyed by name, each with exactly its own kind's settings; approval rules in
/// the filter language; argument schemas that describe objects.
fn agents(doc: &mut OpenApi) {
    let object_schema = json!({
        "type": "object",
        "description": "A JSON Schema of an object.",
        "properties": {"type": {"const": "object"}},
    });
    set_property(
        doc,
        &["AgentSpec"],
        "tools",
        &json!({
            "type": "object",
            "description": "Tools the model may call, by the name it calls them.",
            "maxProperties": 64,
            "propertyNames": {"pattern": "^[a-zA-Z0-9_-]{1,64}$"},
            "additionalProperties": reference("ToolSpec"),
        }),
    );
    set_property(
        doc,
        &["AgentSpec"],
        "model",
        &json!({"type": "string", "minLength": 1, "maxLength": 200, "pattern": "[^\\s\\u0085]"}),
    );
    set_property(doc, &["AgentSpec"], "output_schema", &json!({"anyOf": [{"type": "null"}, object_schema]}));
    set_property(doc, &["WebhookTool", "ClientTool"], "parameters", &object_schema);
    set_property(
        doc,
        &["HttpRequestTool"],
        "hosts",
        &json!({"type": "array", "maxItems": 64, "items": {"type": "string", "minLength": 1, "pattern": "^[^/]*$"}}),
    );
    set_property(doc, &["McpTool"], "server", &json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}));
    set_property(doc, &["McpTool"], "tool", &json!({"type": "string", "minLength": 1, "maxLength": 256}));
    mcp_servers(doc);
    let with_settings = ["knowledge_search", "http_request", "webhook", "client", "mcp"];
    let needs_settings = ["knowledge_search", "webhook", "client", "mcp"];
    let mut rules: Vec<Value> = with_settings
        .iter()
        .map(|k| {
            json!({
                "if": {"required": [k], "properties": {*k: {"not": {"type": "null"}}}},
                "then": {"required": ["type"], "properties": {"type": {"const": k}}},
            })
        })
        .collect();
    rules.extend(needs_settings.iter().map(|k| {
        json!({
            "if": {"required": ["type"], "properties": {"type": {"const": k}}},
            "then": {"required": [k], "properties": {*k: {"not": {"type": "null"}}}},
        })
    }));
    add_keywords(doc, "ToolSpec", json!({"allOf": rules}));
    // A one-off run needs its input; a run on a thread may bring none.
    add_keywords(
        doc,
        "CreateRun",
        json!({"anyOf": [
            {"required": ["thread_id"]},
            {"required": ["messages"], "properties": {"messages": {"minItems": 1}}},
        ]}),
    );
    set_property(
        doc,
        &["NewThread"],
        "metadata",
        &json!({"type": ["object", "null"], "description": "The caller's own data (a JSON object, at most 16 KiB)."}),
    );
    set_component(
        doc,
        "Approval",
        json!({
            "description": "`never` (default), `always`, or `{\"when\": filter}`: when the call's arguments match the filter (arguments that do not parse ask too).",
            "oneOf": [
                {"type": "string", "enum": ["never", "always"]},
                {"type": "object", "required": ["when"], "additionalProperties": false, "properties": {"when": reference("MetadataFilter")}},
            ],
        }),
    );
}

/// Jobs: the known types, each type's payload, and `run_at_ms` or `delay_ms`, not both.
/// `/v1/mcp_servers`: a URL with a host (a dotted IPv4 address, or names whose last label starts
/// with a letter: URL parsers read `a.9` as a malformed address), and header names and values
/// HTTP can carry, other than those the transport sets (any letter case).
fn mcp_servers(doc: &mut OpenApi) {
    let octet = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
    let host = format!("(({octet}\\.){{3}}{octet}|([A-Za-z0-9-]{{1,63}}\\.)*[A-Za-z][A-Za-z0-9-]{{0,62}})");
    let url = format!("^[Hh][Tt][Tt][Pp][Ss]?://{host}(:[1-9][0-9]{{0,3}})?(/[!-~]*)?$");
    set_property(doc, &["CreateMcpServer"], "url", &json!({"type": "string", "maxLength": 2048, "pattern": url}));
    let any_case = |word: &str| -> String {
        word.chars()
            .map(|c| if c.is_ascii_alphabetic() { format!("[{}{}]", c.to_ascii_uppercase(), c) } else { c.to_string() })
            .collect()
    };
    let reserved: Vec<String> = cairn_agents::mcp::RESERVED_HEADERS.iter().map(|h| any_case(h)).collect();
    let headers = json!({
        "type": "object",
        "maxProperties": 16,
        "propertyNames": {
            "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$",
            "not": {"pattern": format!("^({})$", reserved.join("|"))},
        },
        "additionalProperties": {"type": "string", "maxLength": 8192, "pattern": "^[\\t\\x20-\\x7e]*$"},
    });
    set_property(doc, &["CreateMcpServer"], "headers", &headers);
}

fn jobs(doc: &mut OpenApi, types: &[cairn_jobs::JobType]) {
    let kinds: Vec<&str> = types.iter().map(|t| t.kind.as_str()).collect();
    let description = "Job type (see `GET /v1/jobs/types`).";
    set_property(doc, &["EnqueueRequest"], "type", &json!({"description": description, "enum": kinds}));
    let per_type: Vec<Value> = types
        .iter()
        .map(|t| {
            let admits_null = match &t.payload_schema["type"] {
                Value::String(s) => s == "null",
                Value::Array(a) => a.iter().any(|v| v == "null"),
                _ => t.payload_schema.get("type").is_none(),
            };
            let required: &[&str] = if admits_null { &[] } else { &["payload"] };
            json!({
                "if": {"required": ["type"], "properties": {"type": {"const": t.kind}}},
                "then": {"required": required, "properties": {"payload": t.payload_schema}},
            })
        })
        .collect();
    let both = json!({"type": "integer"});
    add_keywords(
        doc,
        "EnqueueRequest",
        json!({
            "allOf": per_type,
            "not": {"required": ["run_at_ms", "delay_ms"], "properties": {"run_at_ms": both, "delay_ms": both}},
        }),
    );
}

/// Chat: rules between fields, and the shapes of `response_format` and `stop`.
fn chat(doc: &mut OpenApi) {
    let present = |field: &str| json!({"required": [field], "properties": {field: {"not": {"type": "null"}}}});
    add_keywords(
        doc,
        "ChatRequest",
        json!({
            // stream_options only with stream: true.
            "if": present("stream_options"),
            "then": {"required": ["stream"], "properties": {"stream": {"const": true}}},
        }),
    );
    add_keywords(
        doc,
        "ChatMessage",
        json!({
            "allOf": [
                {"if": {"required": ["role"], "properties": {"role": {"const": "tool"}}}, "then": present("tool_call_id")},
                {"anyOf": [present("content"), present("tool_calls")]},
            ],
        }),
    );
    set_property(
        doc,
        &["ChatRequest"],
        "response_format",
        &json!({
            "description": "`{\"type\": \"text\"}`, `{\"type\": \"json_object\"}` or `{\"type\": \"json_schema\", \"json_schema\": {...}}`.",
            "oneOf": [
                {"type": "null"},
                {"type": "object", "required": ["type"], "properties": {"type": {"enum": ["text", "json_object"]}}},
                {
                    "type": "object",
                    "required": ["type", "json_schema"],
                    "properties": {"type": {"const": "json_schema"}, "json_schema": {"type": "object"}},
                },
            ],
        }),
    );
    set_property(
        doc,
        &["ChatRequest"],
        "stop",
        &json!({
            "description": "Up to 4 non-empty stop sequences.",
            "anyOf": [
                {"type": "null"},
                {"type": "string", "minLength": 1},
                {"type": "array", "maxItems": 4, "items": {"type": "string", "minLength": 1}},
            ],
        }),
    );
}

/// The metadata filter language (`cairn_knowledge::filter`), on every `filter` property.
fn filter(doc: &mut OpenApi) {
    let scalar = json!({"type": ["string", "number", "boolean"]});
    let bound = json!({"anyOf": [
        {"type": "number"},
        {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
        {"type": "string", "format": "date-time", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"},
    ]});
    let mut ops = Map::new();
    ops.insert("field".into(), json!({"type": "string", "pattern": "^[^.]+(\\.[^.]+)*$"}));
    for op in ["eq", "ne"] {
        ops.insert(op.into(), scalar.clone());
    }
    ops.insert("in".into(), json!({"type": "array", "minItems": 1, "items": scalar}));
    for op in ["gt", "gte", "lt", "lte"] {
        ops.insert(op.into(), bound.clone());
    }
    ops.insert("exists".into(), json!({"type": "boolean"}));
    // One operator, or one lower and one upper bound.
    let mut shapes: Vec<Value> = ["eq", "ne", "in", "gt", "gte", "lt", "lte", "exists"]
        .iter()
        .map(|op| json!({"required": ["field", op], "maxProperties": 2}))
        .collect();
    for lower in ["gt", "gte"] {
        for upper in ["lt", "lte"] {
            shapes.push(json!({"required": ["field", lower, upper], "maxProperties": 3}));
        }
    }
    let list = json!({"type": "array", "minItems": 1, "items": reference("FilterClause")});
    set_component(
        doc,
        "FilterClause",
        json!({
            "description": "One clause of a metadata filter: `{\"and\": [...]}`, `{\"or\": [...]}`, `{\"not\": {...}}`, or a condition `{\"field\": \"year\", \"gte\": 2020}` with one of eq, ne, in, gt, gte, lt, lte, exists (or a lower and an upper bound).",
            "anyOf": [
                {"type": "object", "required": ["and"], "additionalProperties": false, "properties": {"and": list}},
                {"type": "object", "required": ["or"], "additionalProperties": false, "properties": {"or": list}},
                {"type": "object", "required": ["not"], "additionalProperties": false, "properties": {"not": reference("FilterClause")}},
                {"type": "object", "additionalProperties": false, "properties": ops, "anyOf": shapes},
            ],
        }),
    );
    set_component(
        doc,
        "MetadataFilter",
        json!({
            "description": "A metadata filter: `{}` (everything) or a clause. At most 16 levels deep and 256 clauses and list values.",
            "anyOf": [{"type": "object", "maxProperties": 0}, reference("FilterClause")],
        }),
    );
    let filter = json!({"anyOf": [{"type": "null"}, reference("MetadataFilter")]});
    set_property(doc, &["SearchRequest", "AnswerRequest", "KnowledgeOption"], "filter", &filter);
}

/// Documents: metadata is an object; an upload's multipart fields.
fn knowledge(doc: &mut OpenApi) {
    let metadata = json!({"description": "User metadata: a JSON object.", "type": ["object", "null"]});
    set_property(doc, &["NewDocument"], "metadata", &metadata);
    let upload = json!({
        "type": "object",
        "description": "Also `metadata` (a JSON object for every document of the upload), and for JSON and JSON Lines files `text_field` (default `text`) and `title_field`.",
        "required": ["file"],
        "additionalProperties": false,
        "properties": {
            "file": {
                "type": "string",
                // Some text once control characters and blanks are gone.
                "pattern": "[^\\s\\u0000-\\u001f\\u007f-\\u009f]",
                "description": "A file (repeat the field for several): text, Markdown, HTML, PDF, JSON or JSON Lines, by extension, content type or `format`.",
            },
            "format": {
                "enum": ["text", "markdown", "html"],
                "description": "How to read text files; `pdf`, `json` and `jsonl` are taken too, and chosen by extension or content type.",
            },
        },
    });
    let item = doc.paths.paths.get_mut("/v1/collections/{id}/files").expect("the upload route");
    let body = item.post.as_mut().and_then(|op| op.request_body.as_mut()).expect("the upload body");
    let mut content = Content::new(Some(RefOr::T(raw(upload))));
    // A part with no file name or type is read as text.
    let text = utoipa::openapi::encoding::EncodingBuilder::new().content_type(Some("text/plain")).build();
    content.encoding.insert("file".into(), text);
    body.content.insert("multipart/form-data".into(), content);
    body.required = Some(utoipa::openapi::Required::True);
}

/// The events of each streaming route.
fn streams(doc: &mut OpenApi) {
    set_event_stream(doc, "/v1/jobs/{id}/events", false, sse_event(&["job"], json_data(reference("Job"))));
    let chunk_or_done = json!({"type": "string", "description": "A ChatChunk as JSON, or `[DONE]` last."});
    set_event_stream(doc, "/v1/chat/completions", true, sse_event(&[], chunk_or_done));
    set_event_stream(
        doc,
        "/v1/collections/{id}/answer",
        true,
        sse_event(
            &["sources", "delta", "done", "error"],
            json!({"type": "string", "description": "sources: the sources as JSON; delta: text; done: the Answer as JSON; error: an ErrorBody as JSON."}),
        ),
    );
    let run_events = [
        "run.started",
        "step.done",
        "tool.call",
        "tool.result",
        "approval.requested",
        "approval.answered",
        "summary",
        "memory.recalled",
        "run.ended",
        "model.delta",
    ];
    set_event_stream(
        doc,
        "/v1/runs/{id}/events",
        false,
        sse_event(
            &run_events,
            json_data(
                json!({"description": "A StepView (numbered events), `{\"text\"}` (model.delta), or `{\"state\", \"reason\"}` (run.ended without a journal entry)."}),
            ),
        ),
    );
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn document() -> Value {
        let job = |kind: &str, schema: Value| cairn_jobs::JobType {
            kind: kind.into(),
            concurrency: 1,
            payload_schema: schema,
        };
        let types = [
            job("noop", serde_json::json!({"type": ["object", "null"]})),
            job("webhook", serde_json::json!({"type": "object"})),
        ];
        serde_json::to_value(crate::openapi::document(&types)).unwrap()
    }

    #[test]
    fn the_rules_are_in_the_document() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["ChatMessage"]["allOf"][0]["if"]["properties"]["role"]["const"], "tool");
        assert_eq!(schemas["ChatRequest"]["then"]["properties"]["stream"]["const"], true);
        assert!(schemas["FilterClause"]["anyOf"].as_array().is_some_and(|a| a.len() == 4));
        let search_filter = &schemas["SearchRequest"]["properties"]["filter"];
        assert_eq!(search_filter["anyOf"][1]["$ref"], "#/components/schemas/MetadataFilter");
        let events = &doc["paths"]["/v1/jobs/{id}/events"]["get"]["responses"]["200"]["content"]["text/event-stream"];
        assert_eq!(events["schema"]["properties"]["event"]["enum"][0], "job");
        let run_events = &doc["paths"]["/v1/runs/{id}/events"]["get"];
        let last_id =
            run_events["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "Last-Event-ID").unwrap();
        assert_eq!(last_id["schema"], serde_json::json!({"type": "string", "pattern": "^[0-9]{0,19}$"}), "{last_id}");
        assert!(schemas["CreateRun"]["anyOf"].is_array());
        let enqueue = &schemas["EnqueueRequest"];
        assert_eq!(enqueue["properties"]["type"]["enum"], serde_json::json!(["noop", "webhook"]));
        assert_eq!(enqueue["allOf"][0]["then"]["required"], serde_json::json!([]), "noop takes no payload");
        assert_eq!(enqueue["allOf"][1]["then"]["required"], serde_json::json!(["payload"]));
        // Every `filter` property anywhere points at the filter language.
        let text = doc.to_string();
        assert!(!text.contains("\"filter\":{\"type\":[\"object\",\"null\"]"), "a filter left as a bare object");
        std::fs::write(std::env::temp_dir().join("cairn-openapi.json"), serde_json::to_vec_pretty(&doc).unwrap())
            .unwrap();
    }
}
