//! AI decisions in the audit log: every answer a model gave from a collection (the answer
//! route, and chat with `cairn.knowledge`) is recorded with the model, SHA-256 hashes of the
//! prompt it was given and of what it answered, and the sources it cited. The "nothing found"
//! reply is not recorded: no model decided it. The entry is written on a task of its own, so
//! the end of a streamed answer never waits on storage.

use std::sync::Arc;

use cairn_core::audit::{self, AuditAction, AuditStore};
use cairn_core::tenancy::Principal;
use serde_json::json;

use crate::answer::Answer;

/// Where answers are recorded; `Decisions::default()` records nothing.
#[derive(Clone, Default)]
pub struct Decisions(Option<Arc<dyn AuditStore>>);

impl Decisions {
    /// Records into `store`.
    pub fn new(store: Arc<dyn AuditStore>) -> Self {
        Self(Some(store))
    }

    /// Records that a model answered `caller` from `collection`: `prompt` is everything it was
    /// sent, `model` the model that answered, `id` the answer's (or completion's) id.
    pub(crate) fn answered(
        &self,
        caller: &Principal,
        collection: &str,
        model: &str,
        prompt: &str,
        a: &Answer,
        id: &str,
    ) {
        let Some(store) = self.0.clone() else { return };
        if !a.found {
            return;
        }
        let cited: Vec<_> = a
            .citations
            .iter()
            .map(|c| json!({"n": c.n, "collection": c.collection_id, "document": c.document_id, "chunk": c.chunk_id}))
            .collect();
        let details = json!({
            "model": model,
            "collection": collection,
            "prompt_sha256": audit::sha256_hex(prompt),
            "output_sha256": audit::sha256_hex(&a.answer),
            "citations": cited,
            "sources": a.sources.len(),
        });
        let (caller, id) = (caller.clone(), id.to_owned());
        tokio::spawn(async move {
            let tenant = caller.tenant_id.clone();
            audit::record(&*store, &caller, &tenant, AuditAction::AiDecision, &id, details).await;
        });
    }
}
