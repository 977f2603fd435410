//! `webhook`: POSTs a JSON body to a URL on an allow-listed host: the way jobs call back into
//! the user's own systems.
//!
//! - **Allow-lists** are per tenant: a tenant's webhooks may call the instance's hosts
//!   (`jobs.webhook_allowed_hosts`) and its own (`jobs.webhook_tenant_hosts`), never another
//!   tenant's. Redirects are not followed.
//! - **Signed** in the shape of the Standard Webhooks specification: `webhook-id` (the job id,
//!   also sent as `Idempotency-Key`, so a receiver applies the effect once even when an attempt
//!   is repeated), `webhook-timestamp` (Unix seconds) and `webhook-signature`
//!   (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed by the tenant's secret,
//!   `whsec_<base64 key>`). `x-cairn-tenant`, `x-cairn-job-id` and `x-cairn-job-attempt` say who
//!   sent it. Callers cannot set any of these headers.
//! - **Bounded**: each delivery, connecting and reading the answer, ends within
//!   `jobs.webhook_timeout_secs`.
//!
//! 2xx succeeds; 408, 429 and 5xx retry (honouring `retry-after`); other 4xx fail for good.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use cairn_core::config::JobsConfig;
use cairn_core::store::TenantStore;
use hmac::{Hmac, Mac};
use rand::RngCore;
use reqwest::header::{HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::handler::{JobContext, JobError, JobHandler, Refusal};

/// Headers a payload may not set, besides every `webhook-*` and `x-cairn-*` header.
const RESERVED: &[&str] = &["host", "content-length", "content-type", "idempotency-key", "transfer-encoding"];
/// The purpose under which tenants' signing secrets are stored.
pub const SECRET_PURPOSE: &str = "webhook";
/// Prefix of a signing secret (as in the Standard Webhooks specification).
const SECRET_PREFIX: &str = "whsec_";

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

/// The payload's JSON Schema: what `Webhook::parse` checks before the allow-list.
fn payload_schema() -> Value {
    // Header names are HTTP tokens; the reserved ones, in any letter case, are refused.
    let any_case = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                } else {
                    regex_escape(c)
                }
            })
            .collect()
    };
    let reserved: Vec<String> = RESERVED
        .iter()
        .map(|h| format!("{}$", any_case(h)))
        .chain(["webhook-", "x-cairn-"].iter().map(|p| any_case(p)))
        .collect();
    json!({
        "type": "object",
        "required": ["url"],
        "additionalProperties": false,
        "properties": {
            "url": {
                "type": "string",
                "format": "uri",
                "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\\s]+",
                "description": "http(s) URL on a host allowed for the tenant (jobs.webhook_allowed_hosts, jobs.webhook_tenant_hosts).",
            },
            "body": {"description": "JSON body to send (default `{}`)."},
            "headers": {
                "type": "object",
                "description": "Extra request headers; Cairn's own (webhook-*, x-cairn-*) and host, content-length, content-type, idempotency-key, transfer-encoding cannot be set.",
                "propertyNames": {
                    "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
                    "not": {"pattern": format!("^({})", reserved.join("|"))},
                },
                "additionalProperties": {"type": "string", "pattern": "^[\\t\\u0020-\\u007e]*$"},
            },
        },
    })
}

/// `c` as a regular expression matching itself.
fn regex_escape(c: char) -> String {
    if "\\^$.|?*+()[]{}-".contains(c) {
        format!("\\{c}")
    } else {
        c.to_string()
    }
}

/// A fresh signing secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(key))
}

/// `v1,<signature>` of `body` sent as message `id` at `timestamp` (Unix seconds) under `secret`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|e| format!("bad secret: {e}"))?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Ok(format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())))
}

/// Calls allow-listed URLs, signed (see the module docs).
pub struct Webhook {
    instance: Vec<String>,
    tenants: BTreeMap<String, Vec<String>>,
    secrets: Arc<dyn TenantStore>,
    client: reqwest::Client,
}

impl Webhook {
    /// A webhook type with `config`'s allow-lists and timeout, signing with the secrets kept
    /// in `secrets`.
    pub fn new(config: &JobsConfig, secrets: Arc<dyn TenantStore>) -> Self {
        let lower = |hosts: &[String]| hosts.iter().map(|h| h.to_ascii_lowercase()).collect::<Vec<_>>();
        // No redirects: a redirect could lead to a host outside the allow-list.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(config.webhook_timeout_secs.max(1)))
            .build()
            .unwrap_or_default();
        Self {
            instance: lower(&config.webhook_allowed_hosts),
            tenants: config.webhook_tenant_hosts.iter().map(|(t, h)| (t.clone(), lower(h))).collect(),
            secrets,
            client,
        }
    }

    fn allowed(&self, tenant_id: &str) -> impl Iterator<Item = &String> {
        self.instance.iter().chain(self.tenants.get(tenant_id).into_iter().flatten())
    }

    fn parse(&self, tenant_id: &str, payload: &Value) -> Result<(Payload, Url), Refusal> {
        let p: Payload = serde_json::from_value(payload.clone()).map_err(|e| e.to_string())?;
        let url = Url::parse(&p.url).map_err(|e| format!("url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("url must be http:// or https://".into());
        }
        for (name, value) in &p.headers {
            let lower = name.to_ascii_lowercase();
            let cairns = lower.starts_with("webhook-") || lower.starts_with("x-cairn-");
            if cairns || RESERVED.contains(&lower.as_str()) || HeaderName::try_from(name.as_str()).is_err() {
                return Err(format!("header '{name}' cannot be set").into());
            }
            if HeaderValue::try_from(value.as_str()).is_err() {
                return Err(format!("header '{name}' has an invalid value").into());
            }
        }
        self.allow(tenant_id, &url)?;
        Ok((p, url))
    }

    /// Refuses (`Forbidden`) a URL whose host is not on `tenant_id`'s allow-list.
    pub fn allow(&self, tenant_id: &str, url: &Url) -> Result<(), Refusal> {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(0);
        let with_port = format!("{host}:{port}");
        if !self.allowed(tenant_id).any(|a| *a == host || *a == with_port) {
            // The message names no other tenant's hosts: only whether this tenant has any.
            let any = self.allowed(tenant_id).next().is_some();
            return Err(Refusal::Forbidden(format!(
                "host '{with_port}' is not allowed for this tenant ({})",
                if any {
                    "see jobs.webhook_allowed_hosts and jobs.webhook_tenant_hosts"
                } else {
                    "no host is allowed, so webhooks are off"
                }
            )));
        }
        Ok(())
    }

    /// Sends `delivery`, signed with its tenant's secret (see the module docs); the answer
    /// whatever its status, or why none came.
    pub async fn deliver(&self, delivery: Delivery<'_>) -> Result<reqwest::Response, String> {
        let Delivery { tenant_id, url, body, headers, id, context } = delivery;
        let secret = self
            .secrets
            .tenant_secret(tenant_id, SECRET_PURPOSE, &new_secret())
            .await
            .map_err(|e| format!("reading the signing secret: {e}"))?;
        let timestamp = cairn_core::time::now_secs();
        let signature = sign(&secret, id, timestamp, &body)?;
        let mut req = self.client.post(url).header("content-type", "application/json");
        for (name, value) in headers {
            req = req.header(name, value);
        }
        // Set last, so nothing above can stand in for them.
        req = req
            .header("idempotency-key", id)
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("x-cairn-tenant", tenant_id);
        for (name, value) in context {
            req = req.header(name, value);
        }
        req.body(body).send().await.map_err(|e| format!("calling the webhook: {}", e.without_url()))
    }
}

/// One signed request: to whom, what, and under which message id (also the idempotency key).
pub struct Delivery<'a> {
    /// The sending tenant (whose secret signs).
    pub tenant_id: &'a str,
    /// An allowed URL (see `Webhook::allow`).
    pub url: Url,
    /// The JSON body, serialised.
    pub body: Vec<u8>,
    /// The caller's extra headers, already checked.
    pub headers: &'a BTreeMap<String, String>,
    /// The message id.
    pub id: &'a str,
    /// `x-cairn-*` headers that say what sent it.
    pub context: Vec<(&'static str, String)>,
}

#[async_trait]
impl JobHandler for Webhook {
    fn validate(&self, tenant_id: &str, payload: &Value) -> Result<(), Refusal> {
        self.parse(tenant_id, payload).map(|_| ())
    }

    fn payload_schema(&self) -> Value {
        payload_schema()
    }

    async fn run(&self, ctx: JobContext) -> Result<Option<Value>, JobError> {
        let tenant = &ctx.job.tenant_id;
        // Validated at enqueue; checked again in case the allow-list changed since.
        let (p, url) = self.parse(tenant, ctx.payload()).map_err(|r| match r {
            Refusal::Invalid(m) | Refusal::Forbidden(m) => JobError::Permanent(m),
        })?;
        let body =
            serde_json::to_vec(&p.body.unwrap_or_else(|| json!({}))).map_err(|e| JobError::Permanent(e.to_string()))?;
        let delivery = Delivery {
            tenant_id: tenant,
            url,
            body,
            headers: &p.headers,
            id: &ctx.job.id,
            context: vec![
                ("x-cairn-job-id", ctx.job.id.clone()),
                ("x-cairn-job-attempt", ctx.job.attempts.to_string()),
            ],
        };
        let resp = tokio::select! {
            r = self.deliver(delivery) => r.map_err(JobError::Retry)?,
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
mod tests;
