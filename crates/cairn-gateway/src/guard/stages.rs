//! The input guard stage as the pipeline runs it, and what every refusal leaves behind: a usage
//! record with status `blocked` and a `guard.block` audit entry (the guard, the model, the
//! call's id and the prompt's SHA-256; never the prompt itself).

use std::sync::Arc;

use cairn_core::audit::{self, sha256_hex, AuditAction};
use cairn_core::openai::ChatRequest;
use cairn_core::store::Store;
use cairn_core::tenancy::Principal;
use cairn_core::{CallContext, Result};

use super::{Blocked, GuardPlan};
use crate::pipeline::CallSpec;
use crate::router::ModelRoute;
use crate::service::GatewayService;

/// Writes the audit entry of a refused call.
pub(crate) struct BlockAudit {
    store: Arc<dyn Store>,
    principal: Principal,
    model: String,
    prompt_sha256: String,
}

impl BlockAudit {
    /// The audit of a call by `ctx`'s caller to `model` with `req`'s messages.
    pub fn new(store: Arc<dyn Store>, ctx: &CallContext, req: &ChatRequest) -> Self {
        let prompt = serde_json::to_string(&req.messages).unwrap_or_default();
        Self { store, principal: ctx.principal.clone(), model: req.model.clone(), prompt_sha256: sha256_hex(&prompt) }
    }

    /// Records that `b` refused call `call_id`.
    pub async fn record(&self, b: &Blocked, call_id: &str) {
        let details = serde_json::json!({
            "guard": b.guard.as_str(),
            "model": self.model,
            "param": b.param,
            "prompt_sha256": self.prompt_sha256,
        });
        let tenant = self.principal.tenant_id.clone();
        audit::record(&*self.store, &self.principal, &tenant, AuditAction::GuardBlock, call_id, details).await;
    }
}

impl GatewayService {
    /// The input guards of a chat call: injection, then PII for untrusted targets. Returns the
    /// request untrusted targets get, when it differs; a refusal is accounted and audited.
    pub(crate) async fn guard_input(
        &self,
        ctx: &CallContext,
        route: &ModelRoute,
        req: &ChatRequest,
        plan: &mut GuardPlan,
        spec: impl FnOnce() -> CallSpec,
    ) -> Result<Option<ChatRequest>> {
        let checked = match self.guards.screen_injection(plan, &req.messages).await {
            Ok(()) => self.guards.pii_input(plan, route, req),
            Err(b) => Err(b),
        };
        match checked {
            Ok(redacted) => Ok(redacted),
            Err(b) => {
                let call_id = self.blocked(ctx, route, spec(), &b).await?;
                self.block_audit(ctx, req).record(&b, &call_id).await;
                Err(b.error())
            }
        }
    }

    /// The audit of refusals of `req` by `ctx`'s caller.
    pub(crate) fn block_audit(&self, ctx: &CallContext, req: &ChatRequest) -> BlockAudit {
        BlockAudit::new(self.store.clone(), ctx, req)
    }
}
