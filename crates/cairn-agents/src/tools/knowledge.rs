//! `knowledge_search`: hybrid search over the collections the tool lists, as the run's caller,
//! so another tenant's collection is as good as missing.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{Tool, ToolCallCtx};
use crate::ports::KnowledgeSearch;
use crate::spec::ToolSpec;

/// Results per search unless the tool says otherwise.
const DEFAULT_TOP_K: u32 = 5;

/// Searches through the knowledge port.
pub struct KnowledgeSearchTool(pub Arc<dyn KnowledgeSearch>);

#[async_trait]
impl Tool for KnowledgeSearchTool {
    fn parameters(&self, _spec: &ToolSpec) -> Value {
        json!({
            "type": "object",
            "required": ["query"],
            "additionalProperties": false,
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": 2000, "description": "What to search for."},
            },
        })
    }

    async fn call(&self, ctx: &ToolCallCtx<'_>, spec: &ToolSpec, arguments: Value) -> Result<String, String> {
        let settings = spec.knowledge_search.as_ref().ok_or("the tool has no knowledge_search settings")?;
        let query = arguments["query"].as_str().unwrap_or_default();
        let top_k = settings.top_k.unwrap_or(DEFAULT_TOP_K);
        let hits = self.0.search(ctx.call, &settings.collections, query, top_k).await.map_err(|e| e.to_string())?;
        Ok(render(&hits))
    }
}

/// Hits as numbered passages, each with its source: models of every size read prose better
/// than JSON, and the source lets them cite.
fn render(hits: &Value) -> String {
    let hits = hits.as_array().map(Vec::as_slice).unwrap_or_default();
    if hits.is_empty() {
        return "No passage matches.".into();
    }
    let text = |h: &Value, k: &str| h[k].as_str().unwrap_or_default().to_owned();
    hits.iter()
        .enumerate()
        .map(|(i, h)| {
            let title = text(h, "title");
            let source =
                if title.is_empty() { text(h, "document_id") } else { format!("{title}, {}", text(h, "document_id")) };
            format!("[{}] ({source}) {}", i + 1, text(h, "text"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}
