//! The agent runtime's ports, plugged into Cairn's services: approval rules are the metadata
//! filter language, `knowledge_search` tools search through the knowledge service, and agents'
//! long-term memories live in it.

use std::sync::Arc;

use async_trait::async_trait;
use cairn_agents::ports::{ApprovalRules, KnowledgeSearch, Memories, MemoryItem, MemoryScope};
use cairn_core::knowledge::{Collection, Document};
use cairn_core::tenancy::Principal;
use cairn_core::{CallContext, Error, Result};
use cairn_knowledge::filter::Filter;
use cairn_knowledge::service::{CreateCollection, DocumentQuery, KnowledgeService, NewDocument, SearchRequest};
use serde_json::{json, Value};

/// Approval rules over a call's arguments, in the metadata filter language.
pub struct FilterRules;

impl ApprovalRules for FilterRules {
    fn check(&self, rule: &Value) -> std::result::Result<(), String> {
        Filter::parse(rule).map(|_| ()).map_err(|e| e.to_string())
    }

    fn matches(&self, rule: &Value, arguments: &Value) -> bool {
        // A rule that does not read asks a person (fails closed).
        Filter::parse(rule).map_or(true, |f| f.matches(arguments))
    }
}

/// Searches for agents through the knowledge service, as the run's caller.
pub struct KnowledgeTool(pub Arc<KnowledgeService>);

#[async_trait]
impl KnowledgeSearch for KnowledgeTool {
    async fn search(&self, ctx: &CallContext, collections: &[String], query: &str, top_k: u32) -> Result<Value> {
        let Some((first, also)) = collections.split_first() else {
            return Ok(json!([]));
        };
        let req = SearchRequest {
            query: query.to_owned(),
            mode: None,
            top_k: Some(top_k as usize),
            filter: None,
            also: also.to_vec(),
        };
        let hits = self.0.search(ctx, first, req).await?;
        Ok(Value::Array(
            hits.into_iter()
                .map(|h| {
                    json!({
                        "collection_id": h.collection_id, "document_id": h.document_id, "title": h.title,
                        "score": h.score, "text": h.text,
                    })
                })
                .collect(),
        ))
    }
}

/// Agents' long-term memory in the knowledge layer: a collection per agent in its tenant
/// (`memory-<agent id>`, made on the first memory with the agent's embedding model and PII
/// policy), a document per memory with its end user in the metadata, recalled by hybrid search
/// filtered to that end user. The document's title holds the memory's text for listings.
pub struct KnowledgeMemories(pub Arc<KnowledgeService>);

/// Longest memory kept, in characters.
const MAX_MEMORY_CHARS: usize = 2000;

impl KnowledgeMemories {
    fn name(agent_id: &str) -> String {
        format!("memory-{agent_id}")
    }

    /// The agent's memory collection, if it exists yet.
    async fn find(&self, caller: &Principal, tenant_id: &str, agent_id: &str) -> Result<Option<Collection>> {
        let name = Self::name(agent_id);
        let all = self.0.collections(caller).await?;
        Ok(all.into_iter().find(|c| c.tenant_id == tenant_id && c.name == name))
    }

    /// The agent's memory collection, made if missing (a concurrent maker's wins).
    async fn collection(&self, ctx: &CallContext, scope: &MemoryScope) -> Result<Collection> {
        if let Some(c) = self.find(&ctx.principal, &scope.tenant_id, &scope.agent_id).await? {
            return Ok(c);
        }
        let req = CreateCollection {
            name: Self::name(&scope.agent_id),
            embedding_model: scope.settings.embedding_model.clone(),
            chunk_max_tokens: None,
            chunk_overlap_tokens: None,
            pii: Some(scope.settings.pii),
            pii_exempt_fields: vec!["end_user".into()],
            tenant_id: Some(scope.tenant_id.clone()),
        };
        match self.0.create_collection(ctx, req).await {
            Ok(c) => Ok(c),
            Err(Error::Conflict(_)) => self
                .find(&ctx.principal, &scope.tenant_id, &scope.agent_id)
                .await?
                .ok_or_else(|| Error::Internal("the memory collection vanished".into())),
            Err(e) => Err(e),
        }
    }
}

fn item(d: Document) -> MemoryItem {
    MemoryItem {
        end_user: d.metadata["end_user"].as_str().unwrap_or_default().to_owned(),
        id: d.id,
        text: d.title,
        state: d.state.as_str().to_owned(),
        created_at_ms: d.created_at_ms,
    }
}

#[async_trait]
impl Memories for KnowledgeMemories {
    async fn remember(&self, ctx: &CallContext, scope: &MemoryScope, text: &str) -> Result<MemoryItem> {
        let text: String = text.chars().take(MAX_MEMORY_CHARS).collect();
        let col = self.collection(ctx, scope).await?;
        let doc = NewDocument {
            id: Some(format!("mem_{}", uuid::Uuid::now_v7().simple())),
            title: Some(text.clone()),
            source: None,
            text,
            metadata: Some(json!({"end_user": scope.end_user})),
        };
        let mut accepted = self.0.add_documents(ctx, &col.id, vec![doc]).await?;
        let a = accepted.pop().ok_or_else(|| Error::Internal("no memory stored".into()))?;
        Ok(item(a.document))
    }

    async fn recall(&self, ctx: &CallContext, scope: &MemoryScope, query: &str, top_k: u32) -> Result<Vec<MemoryItem>> {
        let Some(col) = self.find(&ctx.principal, &scope.tenant_id, &scope.agent_id).await? else {
            return Ok(Vec::new());
        };
        let req = SearchRequest {
            query: query.chars().take(4000).collect(),
            mode: None,
            top_k: Some(top_k.clamp(1, 20) as usize),
            filter: Some(json!({"field": "end_user", "eq": scope.end_user})),
            also: Vec::new(),
        };
        let hits = self.0.search(ctx, &col.id, req).await?;
        let mut seen = std::collections::HashSet::new();
        Ok(hits
            .into_iter()
            .filter(|h| seen.insert(h.document_id.clone()))
            .map(|h| MemoryItem {
                id: h.document_id,
                text: h.title,
                end_user: scope.end_user.clone(),
                state: "ready".into(),
                created_at_ms: 0,
            })
            .collect())
    }

    async fn list(
        &self,
        caller: &Principal,
        tenant_id: &str,
        agent_id: &str,
        end_user: Option<&str>,
    ) -> Result<Vec<MemoryItem>> {
        let Some(col) = self.find(caller, tenant_id, agent_id).await? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let q = DocumentQuery { limit: Some(1000), cursor: cursor.take(), state: None };
            let page = self.0.documents(caller, &col.id, q).await?;
            out.extend(page.data.into_iter().map(item).filter(|m| end_user.is_none_or(|u| m.end_user == u)));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        out.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then_with(|| b.id.cmp(&a.id)));
        Ok(out)
    }

    async fn forget(&self, caller: &Principal, tenant_id: &str, agent_id: &str, id: &str) -> Result<()> {
        let col = self
            .find(caller, tenant_id, agent_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("memory '{id}' does not exist")))?;
        self.0.delete_document(caller, &col.id, id).await
    }
}
