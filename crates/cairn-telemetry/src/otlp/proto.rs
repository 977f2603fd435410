//! OTLP/protobuf encoding of span batches: an `ExportTraceServiceRequest` of
//! opentelemetry-proto v1 (`collector/trace/v1`). Written by hand because Cairn sends this one
//! message and needs neither a protobuf runtime nor generated code; field numbers are the
//! proto's, named below.

use cairn_core::trace::{attrs, AttrValue, SpanKind, SpanRecord, SpanStatus};

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

/// What describes the sender of every span in a request.
pub struct Resource {
    /// Resource attributes (`service.name`, ...).
    pub attributes: Vec<(String, String)>,
    /// The instrumentation scope's name and version.
    pub scope: (&'static str, &'static str),
    /// Whether spans also carry `openinference.span.kind`.
    pub openinference: bool,
}

/// Encodes one export request carrying `spans`.
pub fn export_request(resource: &Resource, spans: &[SpanRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 * spans.len() + 128);
    // ExportTraceServiceRequest.resource_spans = 1
    message(&mut out, 1, |rs| {
        // ResourceSpans.resource = 1; Resource.attributes = 1
        message(rs, 1, |r| {
            for (k, v) in &resource.attributes {
                key_value(r, 1, k, &AttrValue::Str(v.clone()));
            }
        });
        // ResourceSpans.scope_spans = 2
        message(rs, 2, |ss| {
            // ScopeSpans.scope = 1; InstrumentationScope.name = 1, version = 2
            message(ss, 1, |scope| {
                string(scope, 1, resource.scope.0);
                string(scope, 2, resource.scope.1);
            });
            for span in spans {
                // ScopeSpans.spans = 2
                message(ss, 2, |s| encode_span(s, span, resource.openinference));
            }
        });
    });
    out
}

fn encode_span(out: &mut Vec<u8>, span: &SpanRecord, openinference: bool) {
    bytes(out, 1, &span.trace_id.0); // trace_id
    bytes(out, 2, &span.span_id.0); // span_id
    if let Some(parent) = span.parent_id {
        bytes(out, 4, &parent.0); // parent_span_id
    }
    string(out, 5, &span.name); // name
    varint_field(out, 6, kind(span.kind)); // kind
    fixed64(out, 7, span.start_ns.max(0) as u64); // start_time_unix_nano
    fixed64(out, 8, span.end_ns.max(span.start_ns).max(0) as u64); // end_time_unix_nano
    for (k, v) in &span.attributes {
        key_value(out, 9, k, v); // attributes
    }
    if span.attr(attrs::TENANT_ID).is_none() {
        key_value(out, 9, attrs::TENANT_ID, &AttrValue::Str(span.tenant_id.clone()));
    }
    if let Some(kind) = openinference.then(|| span.attr_str(attrs::OPERATION).and_then(openinference_kind)).flatten() {
        key_value(out, 9, "openinference.span.kind", &AttrValue::Str(kind.into()));
    }
    // status = 15; Status.message = 2, code = 3 (UNSET 0, OK 1, ERROR 2)
    if span.status != SpanStatus::Unset {
        message(out, 15, |st| {
            if let Some(m) = &span.status_message {
                string(st, 2, m);
            }
            varint_field(st, 3, if span.status == SpanStatus::Ok { 1 } else { 2 });
        });
    }
    // flags = 16 (fixed32): whether the parent is known, and whether it is another process's.
    let flags: u32 = match (span.parent_id, span.root) {
        (Some(_), true) => 0x300,
        (Some(_), false) => 0x100,
        (None, _) => 0,
    };
    if flags != 0 {
        key(out, 16, 5);
        out.extend_from_slice(&flags.to_le_bytes());
    }
}

/// OpenInference's span kind for a GenAI operation name.
fn openinference_kind(operation: &str) -> Option<&'static str> {
    Some(match operation {
        "chat" | "text_completion" | "generate_content" => "LLM",
        "embeddings" => "EMBEDDING",
        "execute_tool" => "TOOL",
        "invoke_agent" | "create_agent" => "AGENT",
        "retrieve" => "RETRIEVER",
        "rag" => "CHAIN",
        _ => return None,
    })
}

/// OTLP's `SpanKind` numbers.
fn kind(k: SpanKind) -> u64 {
    match k {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// A `KeyValue` (key = 1, value = 2: an `AnyValue` whose oneof is always written, even when
/// empty, so the receiver knows its type).
fn key_value(out: &mut Vec<u8>, field: u32, k: &str, v: &AttrValue) {
    message(out, field, |kv| {
        string(kv, 1, k);
        message(kv, 2, |any| match v {
            AttrValue::Str(s) => {
                key(any, 1, LEN);
                varint(any, s.len() as u64);
                any.extend_from_slice(s.as_bytes());
            }
            AttrValue::Bool(b) => {
                key(any, 2, VARINT);
                varint(any, u64::from(*b));
            }
            AttrValue::Int(i) => {
                key(any, 3, VARINT);
                varint(any, *i as u64); // int64: two's complement, as protobuf encodes it
            }
            AttrValue::Float(f) => {
                key(any, 4, FIXED64);
                any.extend_from_slice(&f.to_bits().to_le_bytes());
            }
        });
    });
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(out, field, VARINT);
        varint(out, v);
    }
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

fn bytes(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    if !data.is_empty() {
        key(out, field, LEN);
        varint(out, data.len() as u64);
        out.extend_from_slice(data);
    }
}

fn string(out: &mut Vec<u8>, field: u32, s: &str) {
    bytes(out, field, s.as_bytes());
}

/// A length-delimited sub-message, built in place: its body is written after a reserved
/// length, then the length is filled in (moving the body only when it needs more bytes).
fn message(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(out, field, LEN);
    let at = out.len();
    out.push(0);
    body(out);
    let len = (out.len() - at - 1) as u64;
    let mut prefix = Vec::with_capacity(10);
    varint(&mut prefix, len);
    out.splice(at..at + 1, prefix);
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::trace::{SpanId, TraceId};

    #[test]
    fn varints_are_little_endian_base_128() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        out.clear();
        varint(&mut out, (-1i64) as u64);
        assert_eq!(out.len(), 10);
    }

    #[test]
    fn long_messages_get_multi_byte_lengths() {
        let mut out = Vec::new();
        message(&mut out, 1, |m| string(m, 1, &"x".repeat(200)));
        // key 1/LEN, length 203 (two bytes), inner key, inner length 200 (two bytes), body.
        assert_eq!(&out[..3], &[0x0a, 0xcb, 0x01]);
        assert_eq!(&out[3..6], &[0x0a, 0xc8, 0x01]);
        assert_eq!(out.len(), 6 + 200);
    }

    #[test]
    fn a_span_carries_its_ids_and_attributes() {
        let span = SpanRecord {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent_id: Some(SpanId([3; 8])),
            root: false,
            tenant_id: "t".into(),
            name: "chat m".into(),
            kind: SpanKind::Client,
            start_ns: 1,
            end_ns: 2,
            status: SpanStatus::Error,
            status_message: Some("boom".into()),
            attributes: vec![(attrs::INPUT_TOKENS.into(), AttrValue::Int(-5))],
        };
        let mut out = Vec::new();
        encode_span(&mut out, &span, true);
        assert_eq!(&out[..18], &[[0x0a, 16].as_slice(), &[1; 16]].concat()[..]);
        assert!(out.windows(9).any(|w| w == [0x22, 8, 3, 3, 3, 3, 3, 3, 3]));
        assert!(out.windows(attrs::INPUT_TOKENS.len()).any(|w| w == attrs::INPUT_TOKENS.as_bytes()));
        assert!(out.windows(4).any(|w| w == b"boom"));
        assert!(out.windows(1).any(|w| w == b"t"));
    }
}
