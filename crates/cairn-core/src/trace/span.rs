//! Spans as Cairn records them: `Tracer::start` opens one under a `TraceContext`, the work
//! sets its attributes, and dropping it hands the finished record to the `SpanSink`
//! (a bounded queue in `cairn-telemetry`), so ending a span never waits for storage.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::ids::{SpanId, TraceContext, TraceId};

/// What a span stands for, as OpenTelemetry classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    /// Work inside Cairn.
    Internal,
    /// A request Cairn served.
    Server,
    /// A call Cairn made to another service (a model provider, a tool, an MCP server).
    Client,
    /// Work Cairn queued for later (a job enqueued).
    Producer,
    /// Queued work being done (a job attempt).
    Consumer,
}

impl SpanKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }

    /// Reads a stored name (unknown ones as `internal`).
    pub fn parse(s: &str) -> Self {
        match s {
            "server" => SpanKind::Server,
            "client" => SpanKind::Client,
            "producer" => SpanKind::Producer,
            "consumer" => SpanKind::Consumer,
            _ => SpanKind::Internal,
        }
    }
}

/// How a span ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SpanStatus {
    /// Nothing said (OpenTelemetry's default).
    Unset,
    /// It did what was asked.
    Ok,
    /// It failed.
    Error,
}

impl SpanStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanStatus::Unset => "unset",
            SpanStatus::Ok => "ok",
            SpanStatus::Error => "error",
        }
    }

    /// Reads a stored name (unknown ones as `unset`).
    pub fn parse(s: &str) -> Self {
        match s {
            "ok" => SpanStatus::Ok,
            "error" => SpanStatus::Error,
            _ => SpanStatus::Unset,
        }
    }
}

/// An attribute's value (OpenTelemetry's scalar types).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttrValue {
    /// Text.
    Str(String),
    /// A whole number.
    Int(i64),
    /// A number.
    Float(f64),
    /// True or false.
    Bool(bool),
}

impl From<&str> for AttrValue {
    fn from(v: &str) -> Self {
        AttrValue::Str(v.to_owned())
    }
}
impl From<String> for AttrValue {
    fn from(v: String) -> Self {
        AttrValue::Str(v)
    }
}
impl From<i64> for AttrValue {
    fn from(v: i64) -> Self {
        AttrValue::Int(v)
    }
}
impl From<u64> for AttrValue {
    fn from(v: u64) -> Self {
        AttrValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<u32> for AttrValue {
    fn from(v: u32) -> Self {
        AttrValue::Int(i64::from(v))
    }
}
impl From<usize> for AttrValue {
    fn from(v: usize) -> Self {
        AttrValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<f64> for AttrValue {
    fn from(v: f64) -> Self {
        AttrValue::Float(v)
    }
}
impl From<bool> for AttrValue {
    fn from(v: bool) -> Self {
        AttrValue::Bool(v)
    }
}

/// A finished span, as stored and exported.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanRecord {
    /// Its trace.
    pub trace_id: TraceId,
    /// Its own id.
    pub span_id: SpanId,
    /// The span it ran under, if any (possibly another service's).
    pub parent_id: Option<SpanId>,
    /// True when no span of this process is its parent: the trace's root here.
    pub root: bool,
    /// The tenant whose work it was; traces are stored and read per tenant.
    pub tenant_id: String,
    /// `"{operation} {target}"`, e.g. `chat gpt-4o`, `POST /v1/chat/completions`.
    pub name: String,
    /// What it stands for.
    pub kind: SpanKind,
    /// Start, Unix nanoseconds.
    pub start_ns: i64,
    /// End, Unix nanoseconds.
    pub end_ns: i64,
    /// How it ended.
    pub status: SpanStatus,
    /// Why it failed, when it did.
    pub status_message: Option<String>,
    /// Attributes, OpenTelemetry GenAI names first (`gen_ai.*`), then Cairn's (`cairn.*`).
    pub attributes: Vec<(Cow<'static, str>, AttrValue)>,
}

impl SpanRecord {
    /// The attribute named `key`, if set.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The attributes as one JSON object (a later value for a key wins).
    pub fn attributes_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        for (k, v) in &self.attributes {
            let v = match v {
                AttrValue::Str(s) => serde_json::Value::from(s.as_str()),
                AttrValue::Int(i) => serde_json::Value::from(*i),
                AttrValue::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into),
                AttrValue::Bool(b) => serde_json::Value::from(*b),
            };
            out.insert(k.to_string(), v);
        }
        out
    }

    /// The attribute named `key` as text, if it is text.
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        match self.attr(key) {
            Some(AttrValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The attribute named `key` as a whole number, if it is one.
    pub fn attr_int(&self, key: &str) -> Option<i64> {
        match self.attr(key) {
            Some(AttrValue::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// The attribute named `key` as a number, if it is one.
    pub fn attr_f64(&self, key: &str) -> Option<f64> {
        match self.attr(key) {
            Some(AttrValue::Float(f)) => Some(*f),
            Some(AttrValue::Int(i)) => Some(*i as f64),
            _ => None,
        }
    }
}

/// Where finished spans go. `submit` must never block or fail the caller: a full queue
/// drops the span (and counts it).
pub trait SpanSink: Send + Sync {
    /// Takes a finished span.
    fn submit(&self, span: SpanRecord);
}

/// Masks personal data in text before it is kept (`cairn-guard`'s PII redaction).
pub trait Redact: Send + Sync {
    /// `text` with personal data replaced.
    fn redact(&self, text: &str) -> String;
}

/// How much of a call's content spans keep (`tracing.capture`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capture {
    /// No spans at all: tracing is off.
    Off,
    /// Spans with their metadata (models, tokens, cost, timings, ids), no prompt or
    /// completion text, no tool arguments or results, no retrieved text.
    #[default]
    Metadata,
    /// Metadata plus content (prompts, completions, tool calls, retrieved text), after PII
    /// redaction.
    Full,
}

/// Starts spans. Cheap to clone; `Tracer::off()` starts spans that record nothing.
#[derive(Clone, Default)]
pub struct Tracer {
    sink: Option<Arc<dyn SpanSink>>,
    redact: Option<Arc<dyn Redact>>,
    capture: Capture,
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracer").field("capture", &self.capture).finish()
    }
}

impl Tracer {
    /// A tracer that records nothing.
    pub fn off() -> Self {
        Self { sink: None, redact: None, capture: Capture::Off }
    }

    /// A tracer handing spans to `sink`, keeping content as `capture` says, redacted by
    /// `redact` (content is never kept without one).
    pub fn new(sink: Arc<dyn SpanSink>, capture: Capture, redact: Option<Arc<dyn Redact>>) -> Self {
        let sink = (capture != Capture::Off).then_some(sink);
        Self { sink, redact, capture }
    }

    /// Whether spans are recorded at all.
    pub fn enabled(&self) -> bool {
        self.sink.is_some()
    }

    /// Whether spans keep content (`full` capture with a redactor).
    pub fn captures_content(&self) -> bool {
        self.capture == Capture::Full && self.redact.is_some() && self.sink.is_some()
    }

    /// `text` as a span may keep it: redacted under `full` capture, else nothing.
    pub fn content(&self, text: &str) -> Option<String> {
        match (self.capture, &self.redact) {
            (Capture::Full, Some(r)) if self.sink.is_some() => Some(r.redact(text)),
            _ => None,
        }
    }

    /// Opens a span named `name` for `tenant`'s work at `at` in its trace.
    pub fn start(
        &self,
        at: &TraceContext,
        tenant: &str,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
    ) -> ActiveSpan {
        let id = SpanId::random();
        let record = self.sink.as_ref().map(|_| {
            Box::new(SpanRecord {
                trace_id: at.trace_id,
                span_id: id,
                parent_id: at.parent,
                root: at.parent.is_none() || at.remote,
                tenant_id: tenant.to_owned(),
                name: name.into().into_owned(),
                kind,
                start_ns: now_ns(),
                end_ns: 0,
                status: SpanStatus::Unset,
                status_message: None,
                attributes: Vec::new(),
            })
        });
        ActiveSpan { record, sink: self.sink.clone(), started: Instant::now(), at: at.under(id), end_ns: None }
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// A span being recorded; dropping it ends it and submits it.
pub struct ActiveSpan {
    record: Option<Box<SpanRecord>>,
    sink: Option<Arc<dyn SpanSink>>,
    started: Instant,
    at: TraceContext,
    /// Set for spans recorded after the fact (`set_times`).
    end_ns: Option<i64>,
}

impl ActiveSpan {
    /// Where work under this span sits: its trace, with this span as parent.
    pub fn context(&self) -> TraceContext {
        self.at
    }

    /// This span's id.
    pub fn id(&self) -> SpanId {
        self.at.parent.unwrap_or(SpanId([1; 8]))
    }

    /// Whether anything is being recorded (false under `Tracer::off()`): callers skip
    /// computing costly attributes otherwise.
    pub fn recording(&self) -> bool {
        self.record.is_some()
    }

    /// Sets attribute `key` (a later value for the same key wins).
    pub fn set(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<AttrValue>) {
        if let Some(r) = self.record.as_mut() {
            r.attributes.push((key.into(), value.into()));
        }
    }

    /// Sets when the span started and ended, for work timed elsewhere (a search phase run on
    /// a blocking thread).
    pub fn set_times(&mut self, start_ns: i64, end_ns: i64) {
        if let Some(r) = self.record.as_mut() {
            r.start_ns = start_ns;
            self.end_ns = Some(end_ns.max(start_ns));
        }
    }

    /// Sets the tenant the span is stored under (when it is known only later).
    pub fn set_tenant(&mut self, tenant: impl Into<String>) {
        if let Some(r) = self.record.as_mut() {
            r.tenant_id = tenant.into();
        }
    }

    /// Ends the span without recording it.
    pub fn discard(mut self) {
        self.record = None;
    }

    /// Renames the span (when its target is known only later).
    pub fn rename(&mut self, name: impl Into<String>) {
        if let Some(r) = self.record.as_mut() {
            r.name = name.into();
        }
    }

    /// Marks it failed with `message`.
    pub fn fail(&mut self, message: impl fmt::Display) {
        if let Some(r) = self.record.as_mut() {
            r.status = SpanStatus::Error;
            r.status_message = Some(message.to_string());
        }
    }

    /// Marks it done (unless it failed).
    pub fn ok(&mut self) {
        if let Some(r) = self.record.as_mut() {
            if r.status == SpanStatus::Unset {
                r.status = SpanStatus::Ok;
            }
        }
    }
}

impl Drop for ActiveSpan {
    fn drop(&mut self) {
        if let (Some(mut r), Some(sink)) = (self.record.take(), self.sink.as_ref()) {
            r.end_ns =
                self.end_ns.unwrap_or_else(|| r.start_ns.saturating_add(self.started.elapsed().as_nanos() as i64));
            sink.submit(*r);
        }
    }
}
