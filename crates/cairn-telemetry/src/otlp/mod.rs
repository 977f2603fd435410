//! OTLP export: every recorded span is also sent to an OpenTelemetry collector (Jaeger,
//! Tempo, Phoenix, Langfuse, an OpenTelemetry Collector) as OTLP over HTTP/protobuf. The
//! exporter has its own bounded queue (see `spans`), so an absent or slow collector drops and
//! counts only exported spans; storage and requests never wait for it.
//!
//! Each batch is one `POST` to the configured endpoint, tried up to `tries` times on transient
//! failures (connection errors, timeouts, 408, 429, 502-504; a `Retry-After` is honoured up to
//! 30 s) with doubling pauses from 500 ms. Other refusals drop the batch at once: sending the
//! same bytes again would be refused again.

mod proto;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::config::OtlpConfig;
use cairn_core::trace::SpanRecord;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};

use crate::spans::Deliver;
use crate::Metrics;

/// Longest pause between tries.
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// Sends span batches to a collector.
pub struct OtlpExporter {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    headers: HeaderMap,
    resource: proto::Resource,
    tries: u32,
    metrics: Arc<Metrics>,
}

impl OtlpExporter {
    /// An exporter for `config`, or `None` when no endpoint is set. Errors name the setting at
    /// fault, never a header's value.
    pub fn new(config: &OtlpConfig, metrics: Arc<Metrics>) -> Result<Option<Self>, String> {
        let Some(endpoint) = &config.endpoint else { return Ok(None) };
        let endpoint =
            reqwest::Url::parse(endpoint).map_err(|e| format!("tracing.otlp.endpoint is not a valid URL: {e}"))?;
        let mut headers = HeaderMap::new();
        for (name, value) in config.all_headers()? {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("tracing.otlp: '{name}' is not a valid header name"))?;
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| format!("tracing.otlp: the value of header '{name}' is not valid in a header"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_timeout(Duration::from_millis(config.timeout_ms.min(5_000)))
            .build()
            .map_err(|e| format!("tracing.otlp: building the HTTP client: {e}"))?;
        let mut attributes = vec![
            ("service.name".to_owned(), config.service_name.clone()),
            ("service.version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
            ("telemetry.sdk.name".to_owned(), "cairn".to_owned()),
            ("telemetry.sdk.language".to_owned(), "rust".to_owned()),
        ];
        for (k, v) in &config.resource {
            attributes.retain(|(have, _)| have != k);
            attributes.push((k.clone(), v.clone()));
        }
        let resource = proto::Resource {
            attributes,
            scope: ("cairn", env!("CARGO_PKG_VERSION")),
            openinference: config.openinference,
        };
        Ok(Some(Self { client, endpoint, headers, resource, tries: config.tries.max(1), metrics }))
    }

    /// What one try came to.
    async fn send(&self, body: bytes::Bytes) -> Outcome {
        let sent = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/x-protobuf")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Outcome::Sent,
            Ok(r) => {
                let status = r.status().as_u16();
                let wait = r
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(MAX_PAUSE));
                if matches!(status, 408 | 429 | 502..=504) {
                    Outcome::Retry(format!("collector answered {status}"), wait)
                } else {
                    Outcome::Refused(format!("collector answered {status}"))
                }
            }
            // Without the URL: it may carry credentials.
            Err(e) => Outcome::Retry(e.without_url().to_string(), None),
        }
    }
}

/// How one export try ended.
enum Outcome {
    Sent,
    Retry(String, Option<Duration>),
    Refused(String),
}

#[async_trait]
impl Deliver for OtlpExporter {
    async fn deliver(&self, spans: Vec<SpanRecord>) {
        let n = spans.len() as u64;
        let body = bytes::Bytes::from(proto::export_request(&self.resource, &spans));
        drop(spans);
        let mut pause = Duration::from_millis(500);
        for attempt in 1..=self.tries {
            let why = match self.send(body.clone()).await {
                Outcome::Sent => {
                    self.metrics.otlp_spans_exported.inc_by(n);
                    return;
                }
                Outcome::Refused(why) => {
                    tracing::warn!(spans = n, reason = %why, "OTLP export refused; batch dropped");
                    break;
                }
                Outcome::Retry(why, wait) if attempt < self.tries => {
                    tracing::warn!(spans = n, attempt, reason = %why, "OTLP export failed; retrying");
                    tokio::time::sleep(wait.unwrap_or(pause)).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                    continue;
                }
                Outcome::Retry(why, _) => why,
            };
            tracing::warn!(spans = n, reason = %why, "OTLP export failed; batch dropped");
        }
        self.metrics.otlp_export_failures.inc();
        self.metrics.otlp_spans_dropped.inc_by(n);
    }
}
