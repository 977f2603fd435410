//! Cache keys: the SHA-256 of a request normalised so that requests the upstream would answer
//! alike share one, and requests it could answer differently never do. In the key: the tenant,
//! the namespace, the model alias, every message (a lone text part reads as plain text), tools
//! and tool choice, the response format, every sampling setting (temperature, top_p, seed,
//! stop, the output cap however spelled) and any other field passed upstream. Not in it:
//! `stream` and `stream_options` (a hit is replayed in either shape), `user`, and Cairn's own
//! `cairn` field. Object keys are sorted, so field order never matters.

use cairn_core::cache::CacheKey;
use cairn_core::openai::{ChatMessage, ChatRequest, ChatRole, EmbeddingInput, EmbeddingRequest, MessageContent};
use std::io::Write;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Bumped when the normalisation changes, so old entries are never read with new meaning.
const KEY_VERSION: u32 = 1;

/// The key of chat request `req` for `tenant` in `namespace`.
pub(crate) fn chat_key(tenant: &str, namespace: &str, req: &ChatRequest) -> CacheKey {
    hash(tenant, namespace, &normalised_chat(req, &req.messages, "chat"))
}

/// The semantic cache's key of chat request `req` and the question it is found by: the last
/// message, a user turn of plain text, is left out of the key; everything else (system prompt,
/// tools, parameters, the earlier turns) is in it. `None` when the request cannot be matched
/// by meaning: it does not end in a user text turn, or it has more than `context` earlier
/// messages besides system and developer ones.
pub(crate) fn semantic_key(
    tenant: &str,
    namespace: &str,
    req: &ChatRequest,
    context: usize,
) -> Option<(CacheKey, String)> {
    let (last, earlier) = req.messages.split_last()?;
    if last.role != ChatRole::User || last.tool_calls.is_some() {
        return None;
    }
    let question = match &last.content {
        Some(MessageContent::Text(t)) => t.clone(),
        Some(MessageContent::Parts(parts)) if parts.iter().all(|p| p.kind == "text" && p.extra.is_empty()) => {
            parts.iter().filter_map(|p| p.text.as_deref()).collect::<Vec<_>>().join("\n")
        }
        _ => return None,
    };
    let turns = earlier.iter().filter(|m| !matches!(m.role, ChatRole::System | ChatRole::Developer)).count();
    if question.trim().is_empty() || turns > context {
        return None;
    }
    // The last turn's other fields (a name, say) stay in the key: only its words may differ.
    let mut shell = last.clone();
    shell.content = None;
    let messages: Vec<ChatMessage> = earlier.iter().cloned().chain([shell]).collect();
    Some((hash(tenant, namespace, &normalised_chat(req, &messages, "chat-semantic")), question))
}

/// `req` normalised for a key, with `messages` in place of its own.
fn normalised_chat(req: &ChatRequest, messages: &[ChatMessage], endpoint: &str) -> Value {
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| {
            // A lone text part reads as plain text; only such a message is copied to say so.
            let lone_text = match m.content.as_ref() {
                Some(MessageContent::Parts(parts)) => match parts.as_slice() {
                    [only] if only.kind == "text" && only.extra.is_empty() => Some(&only.text),
                    _ => None,
                },
                _ => None,
            };
            let value = match lone_text {
                Some(text) => {
                    let mut m = m.clone();
                    m.content = text.clone().map(MessageContent::Text);
                    serde_json::to_value(m)
                }
                None => serde_json::to_value(m),
            };
            value.unwrap_or(Value::Null)
        })
        .collect();
    json!({
        "endpoint": endpoint,
        "model": req.model,
        "messages": messages,
        "tools": req.tools,
        "tool_choice": req.tool_choice,
        "response_format": req.response_format,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "n": req.n.unwrap_or(1),
        "stop": req.stop.as_ref().map(|s| s.to_vec()),
        "seed": req.seed,
        "max_tokens": req.output_cap(),
        "extra": passed_upstream(&req.extra),
    })
}

/// The key of embeddings request `req` for `tenant` in `namespace`. The response is stored as
/// floats, so `encoding_format` is applied after a hit and stays out of the key.
pub(crate) fn embeddings_key(tenant: &str, namespace: &str, req: &EmbeddingRequest) -> CacheKey {
    let input = match &req.input {
        EmbeddingInput::Text(t) => json!({"texts": [t]}),
        EmbeddingInput::Texts(t) => json!({"texts": t}),
        EmbeddingInput::Tokens(t) => json!({"tokens": [t]}),
        EmbeddingInput::TokenBatches(t) => json!({"tokens": t}),
    };
    let normalised = json!({
        "endpoint": "embeddings",
        "model": req.model,
        "input": input,
        "dimensions": req.dimensions,
        "extra": passed_upstream(&req.extra),
    });
    hash(tenant, namespace, &normalised)
}

/// The request's other fields, as the upstream gets them (without Cairn's own `cairn`).
fn passed_upstream(extra: &Map<String, Value>) -> Map<String, Value> {
    let mut passed = extra.clone();
    passed.remove("cairn");
    passed
}

fn hash(tenant: &str, namespace: &str, normalised: &Value) -> CacheKey {
    let mut h = Sha256::new();
    // Length-prefixed, so no tenant or namespace can be spelled to run into the next part.
    for part in [KEY_VERSION.to_string().as_str(), tenant, namespace] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    // Writing into a hasher cannot fail, nor can serialising a `Value`.
    let _ = write_canonical(normalised, &mut h);
    CacheKey(hex::encode(h.finalize()))
}

/// Writes `v` as compact JSON with every object's keys in sorted order (the map keeps
/// insertion order): the bytes of `v`'s sorted copy, serialised, without building that copy,
/// so the keys stored so far stay valid.
fn write_canonical(v: &Value, out: &mut impl Write) -> std::io::Result<()> {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.write_all(b"{")?;
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                serde_json::to_writer(&mut *out, k)?;
                out.write_all(b":")?;
                write_canonical(v, out)?;
            }
            out.write_all(b"}")
        }
        Value::Array(items) => {
            out.write_all(b"[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                write_canonical(item, out)?;
            }
            out.write_all(b"]")
        }
        leaf => Ok(serde_json::to_writer(out, leaf)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: Value) -> ChatRequest {
        serde_json::from_value(body).expect("request")
    }

    fn key(body: Value) -> CacheKey {
        chat_key("acme", "", &chat(body))
    }

    #[test]
    fn requests_answered_alike_share_a_key() {
        let base = key(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}));
        let same = [
            json!({"temperature": 0.0, "messages": [{"content": "hi", "role": "user"}], "model": "m"}),
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "temperature": 0, "stream": true}),
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "user": "u1", "stream_options": {"include_usage": true}, "stream": true}),
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "cairn": {"cache": {"ttl": 5}}}),
        ];
        for body in same {
            assert_eq!(key(body.clone()), base, "{body}");
        }
    }

    #[test]
    fn anything_that_changes_the_answer_changes_the_key() {
        let base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0});
        let base_key = key(base.clone());
        let changes = [
            json!({"model": "n"}),
            json!({"messages": [{"role": "user", "content": "hi "}]}),
            json!({"messages": [{"role": "system", "content": "hi"}]}),
            json!({"messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}]}),
            json!({"temperature": 0.1}),
            json!({"top_p": 0.5}),
            json!({"seed": 7}),
            json!({"max_tokens": 5}),
            json!({"stop": "x"}),
            json!({"response_format": {"type": "json_object"}}),
            json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}),
            json!({"tool_choice": "none"}),
            json!({"presence_penalty": 1}),
        ];
        for change in changes {
            let mut body = base.clone();
            for (k, v) in change.as_object().expect("object") {
                body[k] = v.clone();
            }
            assert_ne!(key(body.clone()), base_key, "{change}");
        }
        // Output caps however spelled, and stop as one string or a list of it, are the same.
        let capped = |field: &str| {
            let mut body = base.clone();
            body[field] = json!(5);
            key(body)
        };
        assert_eq!(capped("max_tokens"), capped("max_completion_tokens"));
        let mut one = base.clone();
        one["stop"] = json!("x");
        let mut list = base.clone();
        list["stop"] = json!(["x"]);
        assert_eq!(key(one), key(list));
    }

    #[test]
    fn tenants_and_namespaces_never_share_keys() {
        let req = chat(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
        let k = chat_key("acme", "", &req);
        assert_ne!(k, chat_key("umbrella", "", &req));
        assert_ne!(k, chat_key("acme", "v2", &req));
        // A tenant name cannot be spelled to run into the namespace.
        assert_ne!(chat_key("ab", "c", &req), chat_key("a", "bc", &req));
    }

    /// The form keys were first hashed over: a sorted copy, serialised.
    fn sorted_copy(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sorted_copy(&m[k]))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted_copy).collect()),
            other => other.clone(),
        }
    }

    #[test]
    fn canonical_bytes_are_those_of_the_sorted_copy() {
        let values = [
            json!(null),
            json!("quote \" backslash \\ newline \n tab \t nul \u{0} emoji 🦀 é"),
            json!({"z": 1, "a": [3, 2.5, -0.0, 1e300, {"y": true, "b": null}], "é": {}, "": [], "A": "x"}),
            json!({"b": {"d": {"f": [[], [{}], [1, {"h": 2, "g": 1}]]}, "c": 18446744073709551615u64, "a": -9223372036854775808i64}}),
            json!([0.1, 1.0, 100000000000000000000.0, 1.5e-7]),
        ];
        for v in values {
            let mut bytes = Vec::new();
            write_canonical(&v, &mut bytes).expect("written");
            assert_eq!(String::from_utf8(bytes).expect("utf-8"), sorted_copy(&v).to_string(), "{v}");
        }
    }

    #[test]
    fn embedding_inputs_normalise() {
        let e = |body: Value| embeddings_key("acme", "", &serde_json::from_value(body).expect("request"));
        let one = e(json!({"model": "e", "input": "hello"}));
        assert_eq!(one, e(json!({"model": "e", "input": ["hello"], "encoding_format": "base64"})));
        assert_ne!(one, e(json!({"model": "e", "input": ["hello", "world"]})));
        assert_ne!(one, e(json!({"model": "e", "input": "hello", "dimensions": 8})));
        assert_ne!(one, e(json!({"model": "e2", "input": "hello"})));
    }
}
