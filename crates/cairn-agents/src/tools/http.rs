//! `http_request`: the model makes an HTTP request to a host on the tenant's allow-list (the
//! same one webhooks use), narrowed by the tool's own `hosts`, with the methods the tool
//! allows. Redirects are not followed (one could leave the list); the answer is cut at the
//! tool's byte limit and the whole call at its time limit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::body::{read_capped, Capped};
use cairn_jobs::builtin::Webhook;
use cairn_jobs::Refusal;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{json, Value};

use super::{Tool, ToolCallCtx};
use crate::spec::{HttpMethod, HttpRequestTool, ToolSpec};

/// Default largest answer body given to the model.
const DEFAULT_MAX_BODY: u32 = 64 * 1024;
/// Default time limit of one request.
const DEFAULT_TIMEOUT_MS: u32 = 10_000;
/// Headers the model may not set.
const RESERVED: &[&str] = &["host", "content-length", "transfer-encoding", "connection", "idempotency-key"];

/// Makes requests for agents.
pub struct HttpRequest {
    allow: Arc<Webhook>,
    client: reqwest::Client,
}

impl HttpRequest {
    /// Requests to hosts `allow` admits for the run's tenant.
    pub fn new(allow: Arc<Webhook>) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self { allow, client }
    }
}

fn methods(settings: &HttpRequestTool) -> Vec<HttpMethod> {
    if settings.methods.is_empty() {
        vec![HttpMethod::Get]
    } else {
        settings.methods.clone()
    }
}

fn method_name(m: HttpMethod) -> &'static str {
    match m {
        HttpMethod::Get => "GET",
        HttpMethod::Post => "POST",
        HttpMethod::Put => "PUT",
        HttpMethod::Patch => "PATCH",
        HttpMethod::Delete => "DELETE",
    }
}

#[async_trait]
impl Tool for HttpRequest {
    fn parameters(&self, spec: &ToolSpec) -> Value {
        let settings = spec.http_request.clone().unwrap_or_default();
        let names: Vec<&str> = methods(&settings).into_iter().map(method_name).collect();
        json!({
            "type": "object",
            "required": ["url"],
            "additionalProperties": false,
            "properties": {
                "method": {"type": "string", "enum": names, "description": "HTTP method (default GET)."},
                "url": {"type": "string", "minLength": 1, "maxLength": 4096, "description": "http(s) URL."},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "body": {"type": "string", "maxLength": 1_048_576, "description": "Request body."},
            },
        })
    }

    async fn call(&self, ctx: &ToolCallCtx<'_>, spec: &ToolSpec, arguments: Value) -> Result<String, String> {
        let settings = spec.http_request.clone().unwrap_or_default();
        let method = arguments["method"].as_str().unwrap_or("GET");
        if !methods(&settings).into_iter().any(|m| method_name(m) == method) {
            return Err(format!("method {method} is not allowed for this tool"));
        }
        let url = Url::parse(arguments["url"].as_str().unwrap_or_default()).map_err(|e| format!("url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("the url must be http:// or https://".into());
        }
        let tenant = &ctx.call.principal.tenant_id;
        self.allow.allow(tenant, &url).map_err(|r| match r {
            Refusal::Invalid(m) | Refusal::Forbidden(m) => m,
        })?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let with_port = format!("{host}:{}", url.port_or_known_default().unwrap_or(0));
        if !settings.hosts.is_empty()
            && !settings.hosts.iter().any(|h| h.eq_ignore_ascii_case(&host) || *h == with_port)
        {
            return Err(format!("host '{with_port}' is not one of this tool's hosts"));
        }
        let timeout = Duration::from_millis(settings.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS).into());
        let method = Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut req = self.client.request(method.clone(), url).timeout(timeout);
        let headers: BTreeMap<String, String> =
            serde_json::from_value(arguments["headers"].clone()).unwrap_or_default();
        for (name, value) in &headers {
            let lower = name.to_ascii_lowercase();
            if RESERVED.contains(&lower.as_str()) || lower.starts_with("x-cairn-") {
                return Err(format!("header '{name}' cannot be set"));
            }
            let name = HeaderName::try_from(name.as_str()).map_err(|_| format!("header '{name}' is not valid"))?;
            let value =
                HeaderValue::try_from(value.as_str()).map_err(|_| format!("header '{name}' has a bad value"))?;
            req = req.header(name, value);
        }
        if method != Method::GET {
            req = req.header("idempotency-key", ctx.idempotency_key);
        }
        if let Some(body) = arguments["body"].as_str() {
            req = req.body(body.to_owned());
        }
        let send = async {
            let resp = req.send().await.map_err(|e| format!("the request failed: {}", e.without_url()))?;
            let status = resp.status().as_u16();
            let content_type =
                resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let max = settings.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY) as usize;
            let body = read_capped(resp.bytes_stream(), max)
                .await
                .map_err(|e| format!("reading the answer: {}", e.without_url()))?;
            let truncated = matches!(body, Capped::Cut(_));
            let body = body.into_bytes();
            Ok::<_, String>(json!({
                "status": status,
                "content_type": content_type,
                "body": String::from_utf8_lossy(&body),
                "truncated": truncated,
            }))
        };
        let answer = tokio::select! {
            r = tokio::time::timeout(timeout, send) => r.map_err(|_| format!("the request took longer than {} ms", timeout.as_millis()))??,
            _ = ctx.call.cancel.cancelled() => return Err("the run was stopped".into()),
        };
        Ok(answer.to_string())
    }
}
