//! The retrieval port: what the knowledge services and the ingest job depend on to find chunks,
//! with its two implementations chosen in the composition root (`knowledge.retrieval`):
//!
//! - `live::LiveIndex`, the embedded default: every collection's BM25 and vector indexes held
//!   in memory on each node, kept current by following storage's change log;
//! - `DatabaseRetriever`: keyword and vector search run inside the database
//!   (`cairn_core::search::SearchStore`, PostgreSQL with pgvector), so no node holds a copy of
//!   the corpus and a node starts in constant time whatever the corpus size.
//!
//! Both rank the same way (BM25 with the same analyzer and parameters, cosine similarity, the
//! same fusion), apply the metadata filter inside retrieval (so a selective filter still yields
//! `k` results), and return the same `Hit`s.

use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::config::Retrieval;
use cairn_core::filter::Filter;
use cairn_core::search::{Bm25Params, SearchStore, VectorScan};
use cairn_core::store::StoreResult;
use cairn_core::trace::now_ns;
use cairn_core::{Error, Result};

use cairn_core::knowledge::KnowledgeStore;

use crate::analyze::Analyzer;
use crate::chunk::index_text;
use crate::fusion::{fuse, Fusion};

/// How many candidates each retriever hands to fusion: on SciFact, hybrid nDCG@10 is 0.727 at
/// 100 and 200 alike (`cairn-bench retrieval`), and half the depth is half the vector walk.
pub const FUSION_DEPTH: usize = 100;
/// Weight of the keyword list in hybrid fusion (equal weights: see `docs/BENCHMARKS.md`).
pub const KEYWORD_WEIGHT: f32 = 0.5;

/// Which retrievers a search uses (`keyword`, `vector` or `hybrid` on the API).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// BM25 only.
    Keyword,
    /// Vector similarity only.
    Vector,
    /// Both, fused.
    #[default]
    Hybrid,
}

impl SearchMode {
    /// Every mode, in the order reports list them.
    pub const ALL: [SearchMode; 3] = [SearchMode::Keyword, SearchMode::Vector, SearchMode::Hybrid];

    /// The mode's name on the API.
    pub fn as_str(self) -> &'static str {
        match self {
            SearchMode::Keyword => "keyword",
            SearchMode::Vector => "vector",
            SearchMode::Hybrid => "hybrid",
        }
    }

    /// How many candidates each retriever finds for `k` results.
    pub fn depth(self, k: usize) -> usize {
        if self == SearchMode::Hybrid {
            FUSION_DEPTH.max(k)
        } else {
            k
        }
    }
}

/// What a result shows of a chunk.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkInfo {
    /// Its document.
    pub document_id: String,
    /// Position in the document.
    pub seq: u32,
    /// The text (for snippets and prompts).
    pub text: String,
    /// Headings above it.
    pub headings: Vec<String>,
}

/// What a result shows of a document, and what filters test.
#[derive(Clone, Debug, PartialEq)]
pub struct DocInfo {
    /// Title.
    pub title: String,
    /// User metadata.
    pub metadata: serde_json::Value,
}

/// One search result.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// The chunk.
    pub chunk_id: u64,
    /// The collection it was found in.
    pub collection_id: String,
    /// The score (BM25, cosine, or the fused score, per mode).
    pub score: f32,
    /// Cosine similarity of the chunk to the query vector, when one was given (whatever the
    /// mode): an absolute measure of relevance, unlike fused scores.
    pub similarity: Option<f32>,
    /// The chunk.
    pub chunk: ChunkInfo,
    /// Its document.
    pub document: DocInfo,
}

/// When one phase of a search ran and how many candidates it found.
#[derive(Clone, Copy, Debug, Default)]
pub struct Phase {
    /// Start, Unix nanoseconds.
    pub start_ns: i64,
    /// End, Unix nanoseconds.
    pub end_ns: i64,
    /// Candidates found.
    pub found: usize,
}

impl Phase {
    /// A phase that started at `start_ns`, ends now, and found `found`.
    pub fn since(start_ns: i64, found: usize) -> Self {
        Self { start_ns, end_ns: now_ns(), found }
    }
}

/// The phases of one collection's search (those that ran).
#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    /// Keyword (BM25) retrieval.
    pub keyword: Option<Phase>,
    /// Vector retrieval.
    pub vector: Option<Phase>,
    /// Fusion of the two rankings.
    pub fusion: Option<Phase>,
}

/// One collection's search, owned (the in-memory index runs it on a blocking thread).
#[derive(Clone, Debug)]
pub struct SearchQuery {
    /// The collection (its tenant already checked).
    pub collection_id: String,
    /// The query text.
    pub text: String,
    /// The query's embedding, of the collection's dimension (needed unless the mode is
    /// keyword; without it the vector side finds nothing).
    pub vector: Option<Arc<[f32]>>,
    /// Which retrievers.
    pub mode: SearchMode,
    /// Results wanted.
    pub k: usize,
    /// Only chunks whose document's metadata passes.
    pub filter: Option<Arc<Filter>>,
}

/// A collection's results, best first, and the phases that found them.
#[derive(Clone, Debug, Default)]
pub struct Found {
    /// The results.
    pub hits: Vec<Hit>,
    /// When each retriever ran.
    pub phases: Phases,
}

/// Finds chunks (see the module docs).
#[async_trait]
pub trait Retriever: Send + Sync {
    /// Brings this node's view up to date with storage after a write, so the writer reads its
    /// own writes; returns how many changes were applied.
    async fn catch_up(&self) -> StoreResult<usize>;

    /// The best `query.k` chunks of one collection.
    async fn search(&self, query: SearchQuery) -> Result<Found>;

    /// Which implementation this is, for `/readyz` and logs.
    fn kind(&self) -> Retrieval;
}

/// Retrieval inside the database (see the module docs).
pub struct DatabaseRetriever {
    store: Arc<dyn SearchStore>,
    analyzer: Analyzer,
    params: Bm25Params,
}

/// Chunks read and indexed per backfill step.
const BACKFILL_PAGE: u32 = 500;

impl DatabaseRetriever {
    /// Searches through `store` with the English analyzer and the default BM25 parameters.
    pub fn new(store: Arc<dyn SearchStore>) -> Self {
        Self { store, analyzer: Analyzer::english(), params: Bm25Params::default() }
    }

    /// Indexes the chunks of collections stored before the database searched them (an upgrade
    /// from in-memory retrieval), page by page from `chunks`; several nodes may run it at once
    /// (a chunk already indexed is skipped). Returns how many chunks it indexed.
    pub async fn backfill(&self, chunks: &dyn KnowledgeStore) -> StoreResult<usize> {
        let mut indexed = 0;
        for collection_id in self.store.collections_to_backfill().await? {
            let mut after = 0;
            loop {
                let mut page = chunks.collection_chunks(&collection_id, after, BACKFILL_PAGE).await?;
                let Some(last) = page.last().map(|c| c.id) else { break };
                after = last;
                for c in &mut page {
                    c.terms = self.analyzer.terms(&index_text(&c.headings, &c.text));
                }
                indexed += self.store.index_chunks(&collection_id, &page).await?;
            }
            self.store.mark_backfilled(&collection_id).await?;
            tracing::info!(collection = %collection_id, "collection indexed in the database");
        }
        Ok(indexed)
    }
}

#[async_trait]
impl Retriever for DatabaseRetriever {
    async fn catch_up(&self) -> StoreResult<usize> {
        // Every node reads the database itself: there is nothing to follow.
        Ok(0)
    }

    async fn search(&self, q: SearchQuery) -> Result<Found> {
        let depth = q.mode.depth(q.k);
        let filter = q.filter.as_deref();
        let keyword = async {
            if q.mode == SearchMode::Vector {
                return Ok((Vec::new(), None));
            }
            let start = now_ns();
            let terms = self.analyzer.terms(&q.text);
            let found = self.store.keyword_search(&q.collection_id, &terms, self.params, depth, filter).await?;
            let phase = Phase::since(start, found.len());
            StoreResult::Ok((found, Some(phase)))
        };
        let vector = async {
            let Some(v) = q.vector.as_deref().filter(|_| q.mode != SearchMode::Keyword) else {
                return Ok((Vec::new(), None));
            };
            let start = now_ns();
            let found = self.store.vector_search(&q.collection_id, v, depth, filter, VectorScan::Index).await?;
            let phase = Phase::since(start, found.len());
            StoreResult::Ok((found, Some(phase)))
        };
        let ((by_words, keyword_phase), (by_meaning, vector_phase)) = tokio::try_join!(keyword, vector)?;
        let mut phases = Phases { keyword: keyword_phase, vector: vector_phase, fusion: None };
        let ranked = match q.mode {
            SearchMode::Keyword => by_words,
            SearchMode::Vector => by_meaning,
            SearchMode::Hybrid => {
                let start = now_ns();
                let fused = fuse(Fusion::Convex { keyword_weight: KEYWORD_WEIGHT }, &by_words, &by_meaning, q.k);
                phases.fusion = Some(Phase::since(start, fused.len()));
                fused
            }
        };
        let ranked: Vec<(u64, f32)> = ranked.into_iter().take(q.k).collect();
        let ids: Vec<u64> = ranked.iter().map(|(id, _)| *id).collect();
        let mut found = self.store.found_chunks(&q.collection_id, &ids, q.vector.as_deref()).await?;
        let hits = ranked
            .into_iter()
            .filter_map(|(id, score)| {
                // A chunk replaced between ranking and fetching is left out, not shown stale.
                let at = found.iter().position(|c| c.id == id)?;
                let c = found.swap_remove(at);
                Some(Hit {
                    chunk_id: id,
                    collection_id: q.collection_id.clone(),
                    score,
                    similarity: c.similarity,
                    chunk: ChunkInfo { document_id: c.document_id, seq: c.seq, text: c.text, headings: c.headings },
                    document: DocInfo { title: c.title, metadata: c.metadata },
                })
            })
            .collect();
        Ok(Found { hits, phases })
    }

    fn kind(&self) -> Retrieval {
        Retrieval::Database
    }
}

/// The error for a query vector of the wrong size.
pub(crate) fn wrong_dimensions(got: usize, want: usize) -> Error {
    Error::invalid_param("query", format!("the query's embedding has {got} dimensions; this collection holds {want}"))
}
