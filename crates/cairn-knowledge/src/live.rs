//! The live index: for every collection, a BM25 index and a vector index held in memory, built
//! from storage at start and kept current by following storage's change log. Storage stays
//! the source of truth; the indexes are caches any node can rebuild, so nodes stay stateless
//! and see changes made by other processes once they `catch_up`.
//!
//! Vectors go into a `cairn-ann` index per collection: an exact scan while the collection is
//! small, an HNSW graph from `Params::graph_from` vectors on. With a folder to save them in
//! ([`LiveOptions::dir`]), each collection's vector index is saved (at start when it changed,
//! then in the background once enough changes accumulate) and loaded at the next start, then
//! reconciled with the chunks storage holds, so a restart does not rebuild the graphs.
//!
//! Opening reads the log's position before loading chunks, so a change made while loading is
//! applied again afterwards (applying a change twice is harmless: it reloads the document).
//! Each document's title and metadata are held beside its chunks, so metadata filters are
//! evaluated inside the retrievers and results need no further lookups.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::config::Retrieval;
use cairn_core::filter::Filter;
use cairn_core::knowledge::{ChangeKind, ChunkRecord, KnowledgeStore};
use cairn_core::store::StoreResult;
use cairn_core::trace::now_ns;
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;

use crate::chunk::index_text;
use crate::fusion::{fuse, Fusion};
use crate::keyword::Bm25Index;
use crate::retrieve::{wrong_dimensions, Found, Retriever, SearchQuery, KEYWORD_WEIGHT};
pub use crate::retrieve::{ChunkInfo, DocInfo, Hit, Phase, Phases, SearchMode};
use crate::snapshot::Snapshots;
use cairn_ann::{AnnIndex, Params as AnnParams, VectorError};

/// Chunks loaded per storage round trip.
const PAGE: u32 = 2000;

/// How the live index keeps its vector indexes and runs searches.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// The vector indexes' parameters.
    pub ann: AnnParams,
    /// Where vector indexes are saved and loaded from; `None` rebuilds them at every start.
    pub dir: Option<PathBuf>,
    /// Chunks in a collection from which a hybrid search runs its keyword and vector legs on
    /// two threads (below it, a second thread costs more than it saves).
    pub parallel_from: usize,
}

impl Default for LiveOptions {
    fn default() -> Self {
        Self { ann: AnnParams::default(), dir: None, parallel_from: 50_000 }
    }
}

/// One collection's indexes.
struct CollectionIndex {
    keyword: Bm25Index,
    ann: AnnParams,
    vector: Option<AnnIndex>,
    /// Vector changes since the vector index was last saved.
    unsaved: usize,
    chunks: HashMap<u64, ChunkInfo>,
    by_document: HashMap<String, Vec<u64>>,
    /// A number per document id ever indexed (the keyword index's owner of its chunks), so
    /// that a search reaches a document's metadata, and keeps the filter's verdict on it, by
    /// number instead of hashing its id.
    ordinals: HashMap<String, u32>,
    /// Title and metadata of each live document, by number, for results and filters.
    documents: Vec<Option<DocInfo>>,
    /// Each chunk's document number (chunk ids are storage's sequence numbers, not input: a
    /// fast non-keyed hash is safe), asked for every chunk a filtered vector search meets.
    owner_of: FxHashMap<u64, u32>,
}

impl CollectionIndex {
    fn new(ann: AnnParams) -> Self {
        Self {
            keyword: Bm25Index::default(),
            ann,
            vector: None,
            unsaved: 0,
            chunks: HashMap::new(),
            by_document: HashMap::new(),
            ordinals: HashMap::new(),
            documents: Vec::new(),
            owner_of: FxHashMap::default(),
        }
    }

    /// The number of `document_id` (see `ordinals`).
    fn ordinal(&mut self, document_id: &str) -> u32 {
        if let Some(&n) = self.ordinals.get(document_id) {
            return n;
        }
        let n = self.documents.len() as u32;
        self.documents.push(None);
        self.ordinals.insert(document_id.to_owned(), n);
        n
    }

    /// Sets the title and metadata of `document_id`.
    fn set_document(&mut self, document_id: &str, info: DocInfo) {
        let n = self.ordinal(document_id);
        self.documents[n as usize] = Some(info);
    }

    /// The title and metadata of `document_id`, while it is indexed.
    fn document(&self, document_id: &str) -> Option<&DocInfo> {
        let n = *self.ordinals.get(document_id)?;
        self.documents.get(n as usize)?.as_ref()
    }

    /// Drops `document_id`'s chunks, but the vectors of `readded` (chunks about to be added
    /// again: `add` keeps a vector it already holds, so applying a change twice does not churn
    /// the graph).
    fn remove_document(&mut self, document_id: &str, readded: &HashSet<u64>) {
        if let Some(&n) = self.ordinals.get(document_id) {
            self.documents[n as usize] = None;
        }
        for id in self.by_document.remove(document_id).unwrap_or_default() {
            self.keyword.remove(id);
            self.owner_of.remove(&id);
            if let Some(v) = self.vector.as_mut().filter(|_| !readded.contains(&id)) {
                self.unsaved += usize::from(v.remove(id));
            }
            self.chunks.remove(&id);
        }
    }

    fn add(&mut self, c: ChunkRecord) {
        let id = c.id as u64;
        let owner = self.ordinal(&c.document_id);
        self.owner_of.insert(id, owner);
        self.keyword.insert_owned(id, owner, &index_text(&c.headings, &c.text));
        let (dim, ann) = (c.embedding.len(), self.ann);
        let vector = self.vector.get_or_insert_with(|| AnnIndex::new(dim, ann));
        // A loaded index may hold this very vector already: nothing to do.
        if !vector.holds(id, &c.embedding) {
            match vector.insert(id, &c.embedding) {
                Ok(()) => self.unsaved += 1,
                // Storage only holds vectors the ingestion checked; a bad one stays keyword-only.
                Err(e) => tracing::warn!(chunk = id, error = %e, "chunk vector not indexed"),
            }
        }
        self.by_document.entry(c.document_id.clone()).or_default().push(id);
        self.chunks
            .insert(id, ChunkInfo { document_id: c.document_id, seq: c.seq, text: c.text, headings: c.headings });
    }
}

/// Every collection's indexes (see the module docs).
pub struct LiveIndex {
    store: Arc<dyn KnowledgeStore>,
    collections: Arc<RwLock<HashMap<String, CollectionIndex>>>,
    cursor: Mutex<i64>,
    ann: AnnParams,
    parallel_from: usize,
    snapshots: Option<Arc<Snapshots>>,
    /// Collections whose vector index is being rebuilt or saved now.
    busy: Arc<Mutex<HashSet<String>>>,
}

impl LiveIndex {
    /// Builds the indexes of every collection from `store`, with default options (nothing
    /// saved).
    pub async fn open(store: Arc<dyn KnowledgeStore>) -> StoreResult<Self> {
        Self::open_with(store, LiveOptions::default()).await
    }

    /// Builds the indexes of every collection from `store`, loading saved vector indexes from
    /// `options.dir` where they are usable and saving those that changed.
    pub async fn open_with(store: Arc<dyn KnowledgeStore>, options: LiveOptions) -> StoreResult<Self> {
        let snapshots = match options.dir.map(Snapshots::open).transpose() {
            Ok(s) => s.map(Arc::new),
            Err(e) => {
                tracing::warn!(error = %e, "vector index folder unusable; indexes are rebuilt at each start");
                None
            }
        };
        let cursor = store.latest_change().await?;
        let mut collections = HashMap::new();
        for c in store.list_collections(None).await? {
            let mut index = CollectionIndex::new(options.ann);
            index.vector = snapshots.as_ref().and_then(|s| s.load(&c.id, options.ann));
            let mut seen = HashSet::new();
            let mut last_doc: Option<String> = None;
            loop {
                let docs = store.list_documents(&c.id, None, last_doc.as_deref(), PAGE).await?;
                let Some(last) = docs.last() else { break };
                last_doc = Some(last.id.clone());
                for d in docs {
                    index.set_document(&d.id, DocInfo { title: d.title, metadata: d.metadata });
                }
            }
            let mut after = 0;
            loop {
                let page = store.collection_chunks(&c.id, after, PAGE).await?;
                let Some(last) = page.last() else { break };
                after = last.id;
                seen.extend(page.iter().map(|chunk| chunk.id as u64));
                page.into_iter().for_each(|chunk| index.add(chunk));
            }
            if let Some(v) = &mut index.vector {
                // Vectors the saved index holds that storage no longer does.
                let before = v.len();
                v.retain(|key| seen.contains(&key));
                index.unsaved += before - v.len();
            }
            if let (Some(s), Some(v)) = (&snapshots, &index.vector) {
                if index.unsaved > 0 {
                    s.save(&c.id, v);
                    index.unsaved = 0;
                }
            }
            collections.insert(c.id, index);
        }
        if let Some(s) = &snapshots {
            s.remove_others(&collections.keys().map(String::as_str).collect());
        }
        Ok(Self {
            store,
            collections: Arc::new(RwLock::new(collections)),
            cursor: Mutex::new(cursor),
            ann: options.ann,
            parallel_from: options.parallel_from,
            snapshots,
            busy: Arc::default(),
        })
    }

    /// Applies every change logged since the last call; returns how many.
    pub async fn apply_changes(&self) -> StoreResult<usize> {
        let store = &*self.store;
        let mut applied = 0;
        loop {
            let from = *self.cursor.lock();
            let changes = store.changes_since(from, 500).await?;
            let Some(last) = changes.last().map(|c| c.seq) else { return Ok(applied) };
            for change in changes {
                let doc = change.document_id.as_deref().unwrap_or_default();
                match change.kind {
                    ChangeKind::CollectionDeleted => {
                        self.collections.write().remove(&change.collection_id);
                        if let Some(s) = &self.snapshots {
                            s.remove(&change.collection_id);
                        }
                    }
                    ChangeKind::DocumentDeleted => {
                        if let Some(ix) = self.collections.write().get_mut(&change.collection_id) {
                            ix.remove_document(doc, &HashSet::new());
                        }
                    }
                    ChangeKind::Document => {
                        // Loaded before taking the lock: searches go on meanwhile.
                        let chunks = store.document_chunks(&change.collection_id, doc).await?;
                        let document = store.get_document(&change.collection_id, doc).await?;
                        let mut all = self.collections.write();
                        let ix =
                            all.entry(change.collection_id.clone()).or_insert_with(|| CollectionIndex::new(self.ann));
                        let readded: HashSet<u64> = match document {
                            Some(_) => chunks.iter().map(|c| c.id as u64).collect(),
                            None => HashSet::new(),
                        };
                        ix.remove_document(doc, &readded);
                        // Gone since (a later change deletes it): leave it out.
                        if let Some(d) = document {
                            ix.set_document(&d.id, DocInfo { title: d.title, metadata: d.metadata });
                            chunks.into_iter().for_each(|c| ix.add(c));
                        }
                    }
                }
                applied += 1;
            }
            *self.cursor.lock() = last;
            self.maintain();
        }
    }

    /// Background upkeep of the vector indexes after changes: a collection whose graph is
    /// mostly removed nodes is rebuilt away from the lock (searches and changes go on; the new
    /// graph catches up with changes made meanwhile before it is swapped in), and one that
    /// changed by a tenth of its size (at least 1,000 vectors) since it was saved is saved
    /// (searches go on while the file is written; applying changes waits for it).
    fn maintain(&self) {
        let saves = self.snapshots.is_some();
        let due: Vec<(String, bool)> = self
            .collections
            .read()
            .iter()
            .filter_map(|(id, ix)| {
                let v = ix.vector.as_ref()?;
                let rebuild = v.needs_rebuild();
                let save = saves && ix.unsaved >= 1000 && ix.unsaved >= v.len() / 10;
                (rebuild || save).then(|| (id.clone(), rebuild))
            })
            .collect();
        for (id, rebuild) in due {
            if !self.busy.lock().insert(id.clone()) {
                continue;
            }
            let (collections, busy, snapshots) = (self.collections.clone(), self.busy.clone(), self.snapshots.clone());
            tokio::task::spawn_blocking(move || {
                if rebuild {
                    rebuild_vectors(&collections, &id);
                }
                if let Some(snapshots) = snapshots {
                    let mut all = collections.upgradable_read();
                    if let Some(v) = all.get(&id).and_then(|ix| ix.vector.as_ref()) {
                        snapshots.save(&id, v);
                        all.with_upgraded(|all| all.get_mut(&id).map(|ix| ix.unsaved = 0));
                    }
                }
                busy.lock().remove(&id);
            });
        }
    }

    /// Chunks indexed for `collection_id`.
    pub fn len(&self, collection_id: &str) -> usize {
        self.collections.read().get(collection_id).map_or(0, |ix| ix.chunks.len())
    }

    /// The best `k` chunks of `collection_id` for the query, among documents whose metadata
    /// passes `filter`. `vector` is the query's embedding (needed unless the mode is keyword).
    pub fn search(
        &self,
        collection_id: &str,
        text: &str,
        vector: Option<&[f32]>,
        mode: SearchMode,
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<Hit>, VectorError> {
        let q = LiveQuery { collection_id, text, vector, mode, k, filter, parallel_from: self.parallel_from };
        search_in(&self.collections.read(), &q, &mut Phases::default())
    }
}

/// Rebuilds the vector index of collection `id` from a copy of its live vectors, without
/// holding the lock meanwhile, then swaps it in once it has caught up with the current one.
fn rebuild_vectors(collections: &RwLock<HashMap<String, CollectionIndex>>, id: &str) {
    let plan = collections.read().get(id).and_then(|ix| ix.vector.as_ref()).map(AnnIndex::rebuild_plan);
    let Some(plan) = plan else { return };
    let mut fresh = plan.build();
    let mut all = collections.write();
    if let Some(ix) = all.get_mut(id) {
        if let Some(current) = &ix.vector {
            fresh.catch_up_with(current);
            ix.vector = Some(fresh);
        }
    }
}

/// One search leg's filter verdicts, worked out once per document and kept by document
/// number: retrievers ask chunk by chunk, and a document's chunks share its metadata.
struct Verdicts<'a> {
    ix: &'a CollectionIndex,
    filter: Option<&'a Filter>,
    /// Per document number: 0 unasked, 1 allowed, 2 refused.
    known: RefCell<Vec<u8>>,
}

impl<'a> Verdicts<'a> {
    fn new(ix: &'a CollectionIndex, filter: Option<&'a Filter>) -> Self {
        let known = RefCell::new(if filter.is_some() { vec![0; ix.documents.len()] } else { Vec::new() });
        Self { ix, filter, known }
    }

    /// Whether the filter passes document number `owner` (unknown numbers do not pass).
    fn allows(&self, owner: u32) -> bool {
        let Some(f) = self.filter else { return true };
        let known = self.known.borrow().get(owner as usize).copied().unwrap_or(2);
        if known != 0 {
            return known == 1;
        }
        let null = serde_json::Value::Null;
        let doc = self.ix.documents.get(owner as usize).and_then(Option::as_ref);
        let verdict = f.matches(doc.map_or(&null, |d| &d.metadata));
        self.known.borrow_mut()[owner as usize] = if verdict { 1 } else { 2 };
        verdict
    }
}

/// One search's inputs, borrowed.
struct LiveQuery<'a> {
    collection_id: &'a str,
    text: &'a str,
    vector: Option<&'a [f32]>,
    mode: SearchMode,
    k: usize,
    filter: Option<&'a Filter>,
    /// `LiveOptions::parallel_from`.
    parallel_from: usize,
}

/// `LiveIndex::search` on the locked map, noting when each phase (keyword, vector, fusion) ran
/// and what it found.
fn search_in(
    all: &HashMap<String, CollectionIndex>,
    q: &LiveQuery<'_>,
    phases: &mut Phases,
) -> Result<Vec<Hit>, VectorError> {
    let LiveQuery { collection_id, text, vector, mode, k, filter, parallel_from } = *q;
    let Some(ix) = all.get(collection_id) else { return Ok(Vec::new()) };
    let depth = mode.depth(k);
    let keyword = || {
        let start = now_ns();
        let verdicts = Verdicts::new(ix, filter);
        let found = ix.keyword.search_owned(text, depth, &|owner| verdicts.allows(owner));
        (Phase::since(start, found.len()), found)
    };
    let vectors = || -> Result<_, VectorError> {
        let start = now_ns();
        let verdicts = Verdicts::new(ix, filter);
        let allowed = |id: u64| ix.owner_of.get(&id).is_some_and(|&owner| verdicts.allows(owner));
        let found = match (&ix.vector, vector) {
            (Some(v), Some(q)) => v.search(q, depth, filter.is_some().then_some(&allowed))?,
            _ => Vec::new(),
        };
        Ok((Phase::since(start, found.len()), found))
    };
    let ranked = match mode {
        SearchMode::Keyword => {
            let (phase, found) = keyword();
            phases.keyword = Some(phase);
            found
        }
        SearchMode::Vector => {
            let (phase, found) = vectors()?;
            phases.vector = Some(phase);
            found
        }
        SearchMode::Hybrid => {
            // On a large collection each leg takes milliseconds: the keyword leg runs on a
            // second thread meanwhile, so a query waits for the slower leg, not their sum.
            let ((kp, by_words), vector_leg) = if ix.chunks.len() >= parallel_from {
                std::thread::scope(|s| {
                    let words = s.spawn(keyword);
                    let meaning = vectors();
                    (words.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), meaning)
                })
            } else {
                (keyword(), vectors())
            };
            let (vp, by_meaning) = vector_leg?;
            (phases.keyword, phases.vector) = (Some(kp), Some(vp));
            let start = now_ns();
            let fused = fuse(Fusion::Convex { keyword_weight: KEYWORD_WEIGHT }, &by_words, &by_meaning, k);
            phases.fusion = Some(Phase::since(start, fused.len()));
            fused
        }
    };
    Ok(ranked
        .into_iter()
        .take(k)
        .filter_map(|(id, score)| {
            ix.chunks.get(&id).map(|c| Hit {
                chunk_id: id,
                collection_id: collection_id.to_owned(),
                score,
                similarity: ix.vector.as_ref().zip(vector).and_then(|(v, q)| v.similarity(id, q)),
                chunk: c.clone(),
                document: ix
                    .document(&c.document_id)
                    .cloned()
                    .unwrap_or_else(|| DocInfo { title: String::new(), metadata: serde_json::json!({}) }),
            })
        })
        .collect())
}

#[async_trait]
impl Retriever for LiveIndex {
    async fn catch_up(&self) -> StoreResult<usize> {
        self.apply_changes().await
    }

    async fn search(&self, q: SearchQuery) -> cairn_core::Result<Found> {
        let (collections, parallel_from) = (self.collections.clone(), self.parallel_from);
        // Scoring is CPU work proportional to the collection: off the async threads.
        let work = tokio::task::spawn_blocking(move || {
            let all = collections.read();
            if let (Some(ix), Some(v)) = (all.get(&q.collection_id), q.vector.as_deref()) {
                if let Some(want) = ix.vector.as_ref().map(AnnIndex::dim).filter(|d| *d != v.len()) {
                    return Err(wrong_dimensions(v.len(), want));
                }
            }
            let mut phases = Phases::default();
            let leg = LiveQuery {
                collection_id: &q.collection_id,
                text: &q.text,
                vector: q.vector.as_deref(),
                mode: q.mode,
                k: q.k,
                filter: q.filter.as_deref(),
                parallel_from,
            };
            let hits = search_in(&all, &leg, &mut phases)
                .map_err(|e| cairn_core::Error::invalid_param("query", e.to_string()))?;
            Ok(Found { hits, phases })
        });
        work.await.map_err(|e| cairn_core::Error::Internal(format!("search task failed: {e}")))?
    }

    fn kind(&self) -> Retrieval {
        Retrieval::Memory
    }
}
