//! Cairn's knowledge layer. Built so far: document preparation (parsers, redaction, the
//! chunker, fingerprints), metadata filters, the text analyzer, the BM25 keyword index, the exact
//! vector index, hybrid fusion, the live index that follows storage's change log, the RAG prompt with fenced sources and its citations, and the retrieval
//! metrics used to evaluate them; storage, the ingestion jobs and the HTTP API build on these.

#![warn(missing_docs)]

pub mod analyze;
pub mod answer;
pub mod beir;
pub mod chunk;
pub mod embed;
pub mod eval;
pub mod filter;
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
pub mod service;
pub mod upload;
pub mod vector;

pub use analyze::Analyzer;
pub use chunk::{chunk_text, Chunk, ChunkOptions, TokenCounter};
pub use fusion::{fuse, Fusion};
pub use keyword::{Bm25Index, Bm25Params};
pub use vector::{VectorError, VectorIndex};
