//! `webhook`: POSTs a JSON body to a URL on an allow-listed host: the way jobs call back into
//! the user's own systems. Each request carries `Idempotency-Key: <job id>`, so the receiver
//! can apply the effect once even when an attempt is repeated (a worker died after sending).
//! 2xx succeeds; 408, 429 and 5xx retry (honouring `retry-after`); other 4xx fail for good.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::handler::{JobContext, JobError, JobHandler};

/// Headers a payload may not set.
const RESERVED: &[&str] = &["host", "content-length", "content-type", "idempotency-key", "transfer-encoding"];

/// The `webhook` payload.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    /// `http(s)://` URL on an allowed host.
    url: String,
    /// JSON body to send (default `{}`).
    #[serde(default)]
    body: Option<Value>,
    /// Extra request headers.
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Calls allow-listed URLs (see the module docs).
pub struct Webhook {
    allowed: Vec<String>,
    client: reqwest::Client,
}

impl Webhook {
    /// A webhook type that may call `allowed_hosts` (`host` for any port, or `host:port`).
    pub fn new(allowed_hosts: Vec<String>) -> Self {
        // No redirects: a redirect could lead to a host outside the allow-list.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self { allowed: allowed_hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect(), client }
    }

    fn parse(&self, payload: &Value) -> Result<(Payload, Url), String> {
        let p: Payload = serde_json::from_value(payload.clone()).map_err(|e| e.to_string())?;
        let url = Url::parse(&p.url).map_err(|e| format!("url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("url must be http:// or https://".into());
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(0);
        let with_port = format!("{host}:{port}");
        if !self.allowed.iter().any(|a| *a == host || *a == with_port) {
            return Err(format!(
                "host '{with_port}' is not allowed (jobs.webhook_allowed_hosts: {})",
                if self.allowed.is_empty() { "empty, so webhooks are off".to_owned() } else { self.allowed.join(", ") }
            ));
        }
        for (name, value) in &p.headers {
            let lower = name.to_ascii_lowercase();
            if RESERVED.contains(&lower.as_str()) || HeaderName::try_from(name.as_str()).is_err() {
                return Err(format!("header '{name}' cannot be set"));
            }
            if HeaderValue::try_from(value.as_str()).is_err() {
                return Err(format!("header '{name}' has an invalid value"));
            }
        }
        Ok((p, url))
    }
}

#[async_trait]
impl JobHandler for Webhook {
    fn validate(&self, payload: &Value) -> Result<(), String> {
        self.parse(payload).map(|_| ())
    }

    async fn run(&self, ctx: JobContext) -> Result<Option<Value>, JobError> {
        // Validated at enqueue; checked again in case the allow-list changed since.
        let (p, url) = self.parse(ctx.payload()).map_err(JobError::Permanent)?;
        let mut req = self
            .client
            .post(url)
            .json(&p.body.unwrap_or_else(|| json!({})))
            .header("idempotency-key", &ctx.job.id)
            .header("x-cairn-job-id", &ctx.job.id)
            .header("x-cairn-job-attempt", ctx.job.attempts.to_string());
        for (name, value) in &p.headers {
            req = req.header(name, value);
        }
        let resp = tokio::select! {
            r = req.send() => r.map_err(|e| JobError::Retry(format!("calling the webhook: {e}")))?,
            _ = ctx.cancelled() => return Err(JobError::Cancelled),
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(Some(json!({ "status": status.as_u16() })));
        }
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let message = format!("the webhook answered {status}");
        match (status.as_u16(), retry_after) {
            (408 | 429 | 500..=599, Some(after)) => Err(JobError::RetryAfter { after, message }),
            (408 | 429 | 500..=599, None) => Err(JobError::Retry(message)),
            _ => Err(JobError::Permanent(message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_hosts_pass() {
        let w = Webhook::new(vec!["hooks.example.com".into(), "127.0.0.1:9000".into()]);
        assert!(w.validate(&json!({"url": "https://hooks.example.com/x"})).is_ok());
        assert!(w.validate(&json!({"url": "http://127.0.0.1:9000/x", "body": [1]})).is_ok());
        for bad in [
            json!({"url": "http://127.0.0.1:9001/x"}),
            json!({"url": "https://evil.example.com/"}),
            json!({"url": "ftp://hooks.example.com/"}),
            json!({"url": "not a url"}),
            json!({"body": {}}),
            json!({"url": "https://hooks.example.com/", "headers": {"Host": "x"}}),
            json!({"url": "https://hooks.example.com/", "extra": 1}),
        ] {
            assert!(w.validate(&bad).is_err(), "{bad}");
        }
        let off = Webhook::new(vec![]);
        assert!(off.validate(&json!({"url": "https://hooks.example.com/"})).unwrap_err().contains("off"));
    }
}
