//! `webhook`: calls the user's own system with a signed POST, exactly as the `webhook` job type
//! does (Standard Webhooks signature, the tenant's allow-list), with the call's arguments as
//! the body and `run:step:call` as the message id and idempotency key, so a receiver applies a
//! call once however often a crash makes Cairn send it.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::body::{read_capped, Capped};
use cairn_jobs::builtin::{Delivery, Webhook};
use cairn_jobs::Refusal;
use reqwest::Url;
use serde_json::Value;

use super::{cut, Tool, ToolCallCtx, MAX_RESULT_BYTES};
use crate::spec::ToolSpec;

/// Calls webhooks for agents.
pub struct WebhookTool(pub Arc<Webhook>);

#[async_trait]
impl Tool for WebhookTool {
    fn parameters(&self, spec: &ToolSpec) -> Value {
        spec.webhook.as_ref().map(|w| w.parameters.clone()).unwrap_or_else(|| serde_json::json!({"type": "object"}))
    }

    async fn call(&self, ctx: &ToolCallCtx<'_>, spec: &ToolSpec, arguments: Value) -> Result<String, String> {
        let settings = spec.webhook.as_ref().ok_or("the tool has no webhook settings")?;
        let url = Url::parse(&settings.url).map_err(|e| format!("url: {e}"))?;
        let tenant = &ctx.call.principal.tenant_id;
        self.0.allow(tenant, &url).map_err(|r| match r {
            Refusal::Invalid(m) | Refusal::Forbidden(m) => m,
        })?;
        let body = serde_json::to_vec(&arguments).map_err(|e| e.to_string())?;
        let delivery = Delivery {
            tenant_id: tenant,
            url,
            body,
            headers: &BTreeMap::new(),
            id: ctx.idempotency_key,
            context: vec![("x-cairn-run-id", ctx.run_id.to_owned()), ("x-cairn-tool", ctx.tool.to_owned())],
        };
        let resp = tokio::select! {
            r = self.0.deliver(delivery) => r?,
            _ = ctx.call.cancel.cancelled() => return Err("the run was stopped".into()),
        };
        let status = resp.status();
        // One byte past the limit is enough to say the answer was cut.
        let body = tokio::select! {
            r = read_capped(resp.bytes_stream(), MAX_RESULT_BYTES + 1) => r.map(Capped::into_bytes).unwrap_or_default(),
            _ = ctx.call.cancel.cancelled() => return Err("the run was stopped".into()),
        };
        let text = cut(String::from_utf8_lossy(&body).into_owned(), MAX_RESULT_BYTES);
        if status.is_success() {
            Ok(text)
        } else {
            Err(format!("the webhook answered {status}: {text}"))
        }
    }
}
