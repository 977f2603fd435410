//! The tracing section: what spans keep, how they are written, how long they live.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::trace::Capture;

/// Trace recording and retention.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracingConfig {
    /// `off` (no spans), `metadata` (no prompt or completion text) or `full` (content too,
    /// after PII redaction).
    pub capture: Capture,
    /// Finished spans waiting to be written at most; past that new spans are dropped and
    /// counted (`cairn_spans_dropped_total`), never slowing a request.
    pub queue: usize,
    /// Spans per write transaction at most.
    pub batch: usize,
    /// Longest a finished span waits to be written with others, milliseconds. Short by
    /// default: under light load writes stay small and spread out (long ones are CPU bursts
    /// that show in other requests' tail latency); under heavy load batches fill anyway.
    pub flush_ms: u64,
    /// Days traces are kept (by start); 0 keeps them forever.
    pub retention_days: u32,
    /// Days kept for particular tenants, overriding `retention_days`.
    pub tenant_retention_days: BTreeMap<String, u32>,
    /// Export to an OpenTelemetry collector (OTLP over HTTP/protobuf); off without an endpoint.
    pub otlp: OtlpConfig,
}

/// OTLP export: every recorded span is also sent, in batches, to a collector. Its queue is
/// separate from the storage writer's, so a slow or absent collector costs only its own spans.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    /// The collector's traces URL, e.g. `http://localhost:4318/v1/traces`; unset: no export.
    pub endpoint: Option<String>,
    /// Headers sent with every export (not secrets: those go in `headers_env`).
    pub headers: BTreeMap<String, String>,
    /// An environment variable holding more headers as `name=value,name=value` (the format of
    /// `OTEL_EXPORTER_OTLP_HEADERS`), for credentials.
    pub headers_env: Option<String>,
    /// Resource attributes sent besides `service.name`, e.g. `openinference.project.name`.
    pub resource: BTreeMap<String, String>,
    /// `service.name` of the exported resource.
    pub service_name: String,
    /// Spans waiting for export at most; past that they are dropped and counted.
    pub queue: usize,
    /// Spans per export request at most.
    pub batch: usize,
    /// Longest a span waits for others to join its export, milliseconds.
    pub flush_ms: u64,
    /// One export request's time limit, milliseconds.
    pub timeout_ms: u64,
    /// Tries per batch (transient failures: connection errors, 408, 429, 5xx) before it is dropped.
    pub tries: u32,
    /// Also label spans with OpenInference's `openinference.span.kind` (LLM, EMBEDDING, TOOL,
    /// AGENT, RETRIEVER, CHAIN), which Arize Phoenix reads to show them as such.
    pub openinference: bool,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            headers: BTreeMap::new(),
            headers_env: None,
            resource: BTreeMap::new(),
            service_name: "cairn".into(),
            queue: 10_000,
            batch: 512,
            flush_ms: 1_000,
            timeout_ms: 10_000,
            tries: 5,
            openinference: false,
        }
    }
}

// Header values may be credentials someone put in the file anyway: never print them.
impl std::fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpConfig")
            .field("endpoint", &self.endpoint)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("headers_env", &self.headers_env)
            .field("resource", &self.resource)
            .field("service_name", &self.service_name)
            .field("queue", &self.queue)
            .field("batch", &self.batch)
            .field("flush_ms", &self.flush_ms)
            .field("timeout_ms", &self.timeout_ms)
            .field("tries", &self.tries)
            .field("openinference", &self.openinference)
            .finish()
    }
}

impl OtlpConfig {
    /// What is wrong with these settings.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(url) = &self.endpoint {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push("tracing.otlp.endpoint must be an http(s) URL".into());
            }
        }
        for name in self.headers.keys() {
            if !is_header_name(name) {
                problems.push(format!("tracing.otlp.headers: '{name}' is not a valid header name"));
            }
        }
        if self.queue == 0 {
            problems.push("tracing.otlp.queue must be at least 1".into());
        }
        if self.batch == 0 || self.batch > 10_000 {
            problems.push("tracing.otlp.batch must be 1-10000".into());
        }
        if self.flush_ms == 0 || self.flush_ms > 60_000 {
            problems.push("tracing.otlp.flush_ms must be 1-60000".into());
        }
        if self.timeout_ms == 0 || self.timeout_ms > 300_000 {
            problems.push("tracing.otlp.timeout_ms must be 1-300000".into());
        }
        if self.tries == 0 || self.tries > 20 {
            problems.push("tracing.otlp.tries must be 1-20".into());
        }
        problems
    }

    /// Every header to send: `headers`, then those in `headers_env` (which win). Errors name
    /// the variable, never its value.
    pub fn all_headers(&self) -> Result<Vec<(String, String)>, String> {
        let mut out: BTreeMap<String, String> = self.headers.clone();
        if let Some(var) = &self.headers_env {
            let text = std::env::var(var).map_err(|_| format!("tracing.otlp.headers_env: {var} is not set"))?;
            for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (name, value) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("tracing.otlp.headers_env: {var} must be name=value pairs"))?;
                // Names are checked where headers are built (`OtlpExporter::new`).
                out.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        Ok(out.into_iter().collect())
    }
}

/// An HTTP token (RFC 9110 `tchar`s).
fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            capture: Capture::Metadata,
            queue: 20_000,
            batch: 500,
            flush_ms: 20,
            retention_days: 30,
            tenant_retention_days: BTreeMap::new(),
            otlp: OtlpConfig::default(),
        }
    }
}

impl TracingConfig {
    /// What is wrong with these settings.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.queue == 0 {
            problems.push("tracing.queue must be at least 1".into());
        }
        if self.batch == 0 || self.batch > 5_000 {
            problems.push("tracing.batch must be 1-5000".into());
        }
        if self.flush_ms == 0 || self.flush_ms > 60_000 {
            problems.push("tracing.flush_ms must be 1-60000".into());
        }
        problems.extend(self.otlp.problems());
        problems
    }

    /// Days `tenant`'s traces are kept (0: forever).
    pub fn retention_for(&self, tenant: &str) -> u32 {
        self.tenant_retention_days.get(tenant).copied().unwrap_or(self.retention_days)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_headers_come_from_the_file_and_the_environment() {
        std::env::set_var("CAIRN_TEST_OTLP_PAIRS", " authorization=Bearer a=b , x-team=env ,");
        let mut c = OtlpConfig { headers_env: Some("CAIRN_TEST_OTLP_PAIRS".into()), ..OtlpConfig::default() };
        c.headers.insert("x-team".into(), "file".into());
        c.headers.insert("x-other".into(), "1".into());
        let got = c.all_headers().unwrap();
        assert_eq!(
            got,
            [("authorization", "Bearer a=b"), ("x-other", "1"), ("x-team", "env")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        std::env::set_var("CAIRN_TEST_OTLP_BAD", "no-equals-sign-secret");
        c.headers_env = Some("CAIRN_TEST_OTLP_BAD".into());
        let err = c.all_headers().unwrap_err();
        assert!(!err.contains("secret"), "errors never quote the value: {err}");
        c.headers_env = Some("CAIRN_TEST_OTLP_UNSET".into());
        assert!(c.all_headers().is_err());
        assert!(!format!("{c:?}").contains("file"), "Debug hides header values");
    }

    #[test]
    fn bad_export_settings_are_named() {
        let c = OtlpConfig { endpoint: Some("ftp://x".into()), batch: 0, tries: 0, ..OtlpConfig::default() };
        let problems = c.problems().join("\n");
        for want in ["endpoint", "batch", "tries"] {
            assert!(problems.contains(want), "{problems}");
        }
    }
}
