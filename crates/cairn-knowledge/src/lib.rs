//! Cairn's knowledge layer: collections of documents made searchable and answerable.
//!
//! - Preparation: parsers (`parse`), PII redaction and structure-aware chunking (`prepare`,
//!   `chunk`), run by the durable `knowledge.ingest` job (`ingest`).
//! - Retrieval: the port the services search through (`retrieve`), with two implementations:
//!   the live index that follows storage's change log on every node (`live`: the analyzer,
//!   BM25 and the `cairn-ann` vector index, saved and reloaded by `snapshot`, fusion, metadata
//!   filters) and search inside the database
//!   (`retrieve::DatabaseRetriever`); snippets (`highlight`).
//! - Services: collections, documents, uploads and search (`service`, `upload`); RAG answers
//!   with citations (`answer`, `rag`), also inside chat completions (`grounded_chat`).
//! - Ports to the rest of Cairn: `embed::TextEmbedder` and `generate::ChatModel`, filled by the
//!   gateway in the composition root.
//! - Evaluation: BEIR datasets and retrieval metrics (`beir`, `eval`).

#![warn(missing_docs)]

pub mod analyze;
pub mod answer;
pub mod beir;
pub mod chunk;
pub mod decisions;
pub mod embed;
pub mod eval;
pub mod fusion;
pub mod generate;
pub mod grounded_chat;
pub mod highlight;
pub mod ingest;
pub mod keyword;
pub mod live;
pub mod parse;
pub mod prepare;
pub mod rag;
pub mod retrieve;
pub mod service;
mod snapshot;
mod traced;
pub mod upload;

pub use analyze::Analyzer;
pub use cairn_ann::{AnnIndex, Params as AnnParams, VectorError};
pub use cairn_core::filter;
pub use chunk::{chunk_text, Chunk, ChunkOptions, TokenCounter};
pub use fusion::{fuse, Fusion};
pub use keyword::{Bm25Index, Bm25Params};
