//! The agent runtime's ports, plugged into Cairn's services: approval rules are the metadata
//! filter language, and `knowledge_search` tools search through the knowledge service.

use std::sync::Arc;

use async_trait::async_trait;
use cairn_agents::ports::{ApprovalRules, KnowledgeSearch};
use cairn_core::{CallContext, Result};
use cairn_knowledge::filter::Filter;
use cairn_knowledge::service::{KnowledgeService, SearchRequest};
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
