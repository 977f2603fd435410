//! Cairn's knowledge layer. Built so far: the text analyzer, the BM25 keyword index and the
//! retrieval metrics used to evaluate it; ingestion, vector search, hybrid fusion and RAG build
//! on these.

#![warn(missing_docs)]

pub mod analyze;
pub mod eval;
pub mod keyword;

pub use analyze::Analyzer;
pub use keyword::{Bm25Index, Bm25Params};
