//! The chat port RAG answers generate through, owned by the core (`cairn_core::models`):
//! re-exported here, where the knowledge layer has always named it.

pub use cairn_core::models::ChatModel;
