//! Search inside PostgreSQL (`cairn_core::search::SearchStore`): vectors in pgvector columns
//! with an HNSW index per collection, BM25 over an inverted index in a table, and metadata
//! filters compiled to JSONB predicates with bound parameters (`filter_sql`). The schema is in
//! `search_schema.sql`; the knowledge store's writes keep it current in their own transactions
//! through the hooks below, so a search never sees a half-indexed document.

use std::collections::HashMap;

use async_trait::async_trait;
use cairn_core::filter::Filter;
use cairn_core::knowledge::{ChunkRecord, Collection};
use cairn_core::search::{Bm25Params, FoundChunk, SearchStore, VectorScan};
use cairn_core::store::StoreResult;
use sqlx::{Postgres, QueryBuilder, Row};

use crate::db_err;
use crate::filter_sql::push_filter;
use crate::postgres::PgStore;
use crate::tx::{Begin as _, PgTx};

/// Largest dimension indexed as `vector` (pgvector's HNSW limit); up to `MAX_HALFVEC_DIMS` the
/// index holds half-precision copies. Must match `cairn_search_partitions`.
const MAX_VECTOR_DIMS: i32 = 2000;
/// Largest dimension indexed at all; larger vectors are searched exactly.
const MAX_HALFVEC_DIMS: i32 = 4000;
/// The knowledge store's transaction lock (see `postgres.rs`): taken by every write to chunks.
pub(crate) const KNOWLEDGE_LOCK: &str = "SELECT pg_advisory_xact_lock(202611211)";
/// Postings read per query term, best first by impact: bounds a query's work whatever the
/// collection's size. A common term gets a share of it by its inverse document frequency
/// (`FULL_BUDGET_DF`), never less than the search's depth.
const POSTINGS_PER_TERM: i64 = 1000;
/// A term in this many chunks or fewer is read whole, whatever its share, so a collection of
/// up to this many chunks scores exactly as the in-memory index does.
const READ_WHOLE_DF: i64 = 500;
/// A term in this share of chunks or fewer may read all `POSTINGS_PER_TERM`; a more common one
/// reads them in proportion to its idf. Its postings add little to any score, and those past
/// its best few hundred by impact are short chunks that merely contain it: the budget goes
/// where the ranking is decided.
const FULL_BUDGET_DF: f64 = 0.01;
/// Rows per insert statement (PostgreSQL takes at most 65,535 bound parameters).
const ROWS_PER_INSERT: usize = 2000;

/// A collection's number and dimension (fixed for its life).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SearchKey {
    key: i64,
    dims: i32,
}

impl SearchKey {
    /// The expression an HNSW index was built on for this collection's vectors.
    fn indexed(&self, column: &str) -> String {
        // Two integers and a column name of ours: nothing here comes from a request.
        match self.dims {
            d if d <= MAX_VECTOR_DIMS => format!("({column}::vector({d}))"),
            d if d <= MAX_HALFVEC_DIMS => format!("({column}::halfvec({d}))"),
            _ => format!("({column})"),
        }
    }

    /// What goes before and after the bound query vector to cast it like the indexed
    /// expression.
    fn query_cast(&self) -> (&'static str, String) {
        match self.dims {
            d if d <= MAX_VECTOR_DIMS => ("CAST(", format!(" AS vector({d}))")),
            d if d <= MAX_HALFVEC_DIMS => ("CAST(", format!(" AS halfvec({d}))")),
            _ => ("CAST(", " AS vector)".to_owned()),
        }
    }
}

/// pgvector's text form of a vector: `[x,y,...]`, each float printed to round-trip exactly.
pub(crate) fn vector_text(v: &[f32]) -> String {
    let mut out = String::with_capacity(v.len() * 12 + 2);
    out.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&x.to_string());
    }
    out.push(']');
    out
}

/// Registers a new collection and creates its partitions and index (inside `tx`).
pub(crate) async fn collection_created(tx: &mut PgTx<'_>, c: &Collection) -> Result<(), sqlx::Error> {
    let key: i64 =
        sqlx::query_scalar("INSERT INTO search_collections (collection_id, dimensions) VALUES ($1, $2) RETURNING key")
            .bind(&c.id)
            .bind(c.dimensions as i32)
            .fetch_one(&mut **tx)
            .await?;
    sqlx::query("SELECT cairn_search_partitions($1, $2)")
        .bind(key)
        .bind(c.dimensions as i32)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Drops a collection's partitions (its rows go with them) and its registration.
pub(crate) async fn collection_deleted(tx: &mut PgTx<'_>, collection_id: &str) -> Result<(), sqlx::Error> {
    let key: Option<i64> = sqlx::query_scalar("DELETE FROM search_collections WHERE collection_id = $1 RETURNING key")
        .bind(collection_id)
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(k) = key {
        sqlx::query("SELECT cairn_search_drop($1)").bind(k).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Removes a document's chunks from the search tables and its statistics (inside `tx`).
pub(crate) async fn document_removed(
    tx: &mut PgTx<'_>,
    collection_id: &str,
    document_id: &str,
) -> Result<(), sqlx::Error> {
    let Some(key) = key_in(tx, collection_id).await? else { return Ok(()) };
    let gone = sqlx::query(
        "DELETE FROM chunk_vectors WHERE collection_key = $1 AND document_id = $2 RETURNING chunk_id, terms",
    )
    .bind(key.key)
    .bind(document_id)
    .fetch_all(&mut **tx)
    .await?;
    if gone.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(gone.len());
    let mut terms = 0i64;
    for r in &gone {
        ids.push(r.try_get::<i64, _>("chunk_id")?);
        terms += i64::from(r.try_get::<i32, _>("terms")?);
    }
    sqlx::query(
        "UPDATE search_terms s SET df = s.df - x.n FROM (SELECT term, count(*) AS n FROM chunk_terms \
         WHERE collection_key = $1 AND chunk_id = ANY($2) GROUP BY term) x WHERE s.collection_key = $1 AND s.term = x.term",
    )
    .bind(key.key)
    .bind(&ids)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM chunk_terms WHERE collection_key = $1 AND chunk_id = ANY($2)")
        .bind(key.key)
        .bind(&ids)
        .execute(&mut **tx)
        .await?;
    add_statistics(tx, key, -(ids.len() as i64), -terms).await
}

/// Adds to the collection's BM25 statistics: its chunk count and total length in terms.
async fn add_statistics(tx: &mut PgTx<'_>, key: SearchKey, chunks: i64, terms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE search_collections SET chunks = chunks + $2, total_terms = total_terms + $3 WHERE key = $1")
        .bind(key.key)
        .bind(chunks)
        .bind(terms)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Indexes a document's new chunks (`ids` as storage assigned them, in `chunks`' order) after
/// removing its old ones (inside `tx`).
pub(crate) async fn chunks_replaced(
    tx: &mut PgTx<'_>,
    collection_id: &str,
    document_id: &str,
    ids: &[i64],
    chunks: &[ChunkRecord],
) -> Result<(), sqlx::Error> {
    document_removed(tx, collection_id, document_id).await?;
    let Some(key) = key_in(tx, collection_id).await? else { return Ok(()) };
    let rows: Vec<(i64, &str, &ChunkRecord)> = ids.iter().zip(chunks).map(|(id, c)| (*id, document_id, c)).collect();
    insert_rows(tx, key, &rows).await
}

/// Inserts chunks' vectors and postings (`(chunk id, document id, chunk with its terms)`) and
/// adds them to the collection's statistics (inside `tx`).
async fn insert_rows(tx: &mut PgTx<'_>, key: SearchKey, rows: &[(i64, &str, &ChunkRecord)]) -> Result<(), sqlx::Error> {
    let total: i64 = rows.iter().map(|(_, _, c)| c.terms.len() as i64).sum();
    // Impacts at the average length the collection will have with these chunks.
    let (chunks, terms): (i64, i64) =
        sqlx::query_as("SELECT chunks, total_terms FROM search_collections WHERE key = $1")
            .bind(key.key)
            .fetch_one(&mut **tx)
            .await?;
    let avgdl = (terms + total) as f64 / (chunks + rows.len() as i64).max(1) as f64;
    let Bm25Params { k1, b } = Bm25Params::default();
    let (k1, b) = (f64::from(k1), f64::from(b));
    let mut postings: Vec<(String, i64, i32, i32, f32, &str)> = Vec::new();
    let mut df: HashMap<&str, i64> = HashMap::new();
    for (id, document_id, c) in rows {
        let mut tf: HashMap<&str, i32> = HashMap::new();
        for t in &c.terms {
            *tf.entry(t.as_str()).or_default() += 1;
        }
        let len = c.terms.len() as i32;
        for (t, n) in tf {
            let f = f64::from(n);
            let impact = f * (k1 + 1.0) / (f + k1 * (1.0 - b + b * f64::from(len) / avgdl.max(1e-9)));
            postings.push((t.to_owned(), *id, n, len, impact as f32, document_id));
            *df.entry(t).or_default() += 1;
        }
    }
    for part in rows.chunks(ROWS_PER_INSERT / 5) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO chunk_vectors (collection_key, chunk_id, document_id, embedding, terms) ",
        );
        q.push_values(part, |mut row, (id, document_id, c)| {
            row.push_bind(key.key)
                .push_bind(*id)
                .push_bind(*document_id)
                .push_bind(vector_text(&c.embedding))
                .push_unseparated("::vector")
                .push_bind(c.terms.len() as i32);
        });
        q.build().execute(&mut **tx).await?;
    }
    for part in postings.chunks(ROWS_PER_INSERT / 7) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO chunk_terms (collection_key, term, chunk_id, tf, len, impact, document_id) ",
        );
        q.push_values(part, |mut row, (term, id, tf, len, impact, document_id)| {
            row.push_bind(key.key).push_bind(term).push_bind(*id).push_bind(*tf).push_bind(*len);
            row.push_bind(*impact).push_bind(*document_id);
        });
        q.build().execute(&mut **tx).await?;
    }
    // In term order: concurrent writers (under the knowledge lock anyway) never deadlock.
    let mut df: Vec<(&str, i64)> = df.into_iter().collect();
    df.sort_unstable();
    for part in df.chunks(ROWS_PER_INSERT / 3) {
        let mut q = QueryBuilder::<Postgres>::new("INSERT INTO search_terms (collection_key, term, df) ");
        q.push_values(part, |mut row, (term, n)| {
            row.push_bind(key.key).push_bind(*term).push_bind(*n);
        });
        q.push(" ON CONFLICT (collection_key, term) DO UPDATE SET df = search_terms.df + excluded.df");
        q.build().execute(&mut **tx).await?;
    }
    add_statistics(tx, key, rows.len() as i64, total).await
}

/// The collection's search key, read inside `tx`.
async fn key_in(tx: &mut PgTx<'_>, collection_id: &str) -> Result<Option<SearchKey>, sqlx::Error> {
    let row = sqlx::query("SELECT key, dimensions FROM search_collections WHERE collection_id = $1")
        .bind(collection_id)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| Ok(SearchKey { key: r.try_get("key")?, dims: r.try_get("dimensions")? })).transpose()
}

impl PgStore {
    /// The collection's search key, from this node's cache or the database; `None` when the
    /// collection is not (or no longer) registered.
    async fn search_key(&self, collection_id: &str) -> StoreResult<Option<SearchKey>> {
        if let Some(k) = self.search_keys.lock().ok().and_then(|m| m.get(collection_id).copied()) {
            return Ok(Some(k));
        }
        let row = sqlx::query("SELECT key, dimensions FROM search_collections WHERE collection_id = $1")
            .bind(collection_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        let Some(r) = row else { return Ok(None) };
        let k = SearchKey { key: r.try_get("key").map_err(db_err)?, dims: r.try_get("dimensions").map_err(db_err)? };
        if let Ok(mut m) = self.search_keys.lock() {
            // Keys never change or get reused; the map is bounded by the collections there are.
            m.insert(collection_id.to_owned(), k);
        }
        Ok(Some(k))
    }
}

/// Reads `(chunk_id, score)` rows.
fn scored(rows: &[sqlx::postgres::PgRow]) -> StoreResult<Vec<(u64, f32)>> {
    rows.iter()
        .map(|r| {
            let id: i64 = r.try_get("chunk_id")?;
            let score: f64 = r.try_get("score")?;
            Ok((id as u64, score as f32))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db_err)
}

#[async_trait]
impl SearchStore for PgStore {
    async fn collections_to_backfill(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT collection_id FROM search_collections WHERE NOT backfilled ORDER BY key")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn index_chunks(&self, collection_id: &str, chunks: &[ChunkRecord]) -> StoreResult<usize> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        let mut tx = conn.begin_tx().await.map_err(db_err)?;
        // The knowledge store's lock: no upload or delete of these chunks runs meanwhile.
        sqlx::query(KNOWLEDGE_LOCK).execute(&mut *tx).await.map_err(db_err)?;
        let Some(key) = key_in(&mut tx, collection_id).await.map_err(db_err)? else { return Ok(0) };
        let ids: Vec<i64> = chunks.iter().map(|c| c.id).collect();
        let todo: Vec<i64> = sqlx::query_scalar(
            "SELECT c.id FROM chunks c WHERE c.collection_id = $1 AND c.id = ANY($2) AND NOT EXISTS \
             (SELECT 1 FROM chunk_vectors v WHERE v.collection_key = $3 AND v.chunk_id = c.id)",
        )
        .bind(collection_id)
        .bind(&ids)
        .bind(key.key)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let rows: Vec<(i64, &str, &ChunkRecord)> =
            chunks.iter().filter(|c| todo.contains(&c.id)).map(|c| (c.id, c.document_id.as_str(), c)).collect();
        insert_rows(&mut tx, key, &rows).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(rows.len())
    }

    async fn mark_backfilled(&self, collection_id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE search_collections SET backfilled = TRUE WHERE collection_id = $1")
            .bind(collection_id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn keyword_search(
        &self,
        collection_id: &str,
        terms: &[String],
        params: Bm25Params,
        depth: usize,
        filter: Option<&Filter>,
    ) -> StoreResult<Vec<(u64, f32)>> {
        let Some(key) = self.search_key(collection_id).await? else { return Ok(Vec::new()) };
        if terms.is_empty() || depth == 0 {
            return Ok(Vec::new());
        }
        // Each distinct term once, with how often the query repeats it (each repeat adds its
        // score again, as in the in-memory index).
        let mut counts: Vec<(String, i32)> = Vec::new();
        for t in terms {
            match counts.iter_mut().find(|(u, _)| u == t) {
                Some((_, n)) => *n += 1,
                None => counts.push((t.clone(), 1)),
            }
        }
        let (words, repeats): (Vec<String>, Vec<i32>) = counts.into_iter().unzip();
        let q = Bm25Query { key, collection_id, words: &words, repeats: &repeats, params, depth, filter };
        self.bm25(&q).await
    }

    async fn vector_search(
        &self,
        collection_id: &str,
        vector: &[f32],
        depth: usize,
        filter: Option<&Filter>,
        scan: VectorScan,
    ) -> StoreResult<Vec<(u64, f32)>> {
        let Some(key) = self.search_key(collection_id).await? else { return Ok(Vec::new()) };
        if depth == 0 || vector.len() != key.dims as usize {
            return Ok(Vec::new());
        }
        let found = self.nearest(key, collection_id, vector, depth, filter, scan).await?;
        // The index walk stops after a bounded number of candidates: under a selective filter
        // it can come back short although more chunks pass. Then the exact scan decides (cheap
        // exactly then: few chunks pass the filter).
        if found.len() < depth && filter.is_some() && scan == VectorScan::Index {
            return self.nearest(key, collection_id, vector, depth, filter, VectorScan::Exact).await;
        }
        Ok(found)
    }

    async fn found_chunks(
        &self,
        collection_id: &str,
        ids: &[u64],
        vector: Option<&[f32]>,
    ) -> StoreResult<Vec<FoundChunk>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        let key = self.search_key(collection_id).await?.map_or(-1, |k| k.key);
        let rows = sqlx::query(
            "SELECT c.id, c.document_id, c.seq, c.text, c.headings, d.title, d.metadata, \
             CASE WHEN $3::text IS NULL THEN NULL ELSE (1 - (v.embedding <=> CAST($3 AS vector)))::float8 END AS similarity \
             FROM chunks c JOIN documents d ON d.collection_id = c.collection_id AND d.id = c.document_id \
             LEFT JOIN chunk_vectors v ON v.collection_key = $4 AND v.chunk_id = c.id \
             WHERE c.collection_id = $1 AND c.id = ANY($2)",
        )
        .bind(collection_id)
        .bind(&ids)
        .bind(vector.map(vector_text))
        .bind(key)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let headings: String = r.try_get("headings")?;
                let metadata: String = r.try_get("metadata")?;
                let similarity: Option<f64> = r.try_get("similarity")?;
                Ok(FoundChunk {
                    id: r.try_get::<i64, _>("id")? as u64,
                    document_id: r.try_get("document_id")?,
                    seq: r.try_get::<i32, _>("seq")?.max(0) as u32,
                    text: r.try_get("text")?,
                    headings: serde_json::from_str(&headings).unwrap_or_default(),
                    title: r.try_get("title")?,
                    metadata: serde_json::from_str(&metadata).unwrap_or_default(),
                    // A zero vector has no direction: pgvector answers NaN.
                    similarity: similarity.map(|s| s as f32).filter(|s| s.is_finite()),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db_err)
    }
}

/// One keyword search's inputs.
struct Bm25Query<'a> {
    key: SearchKey,
    collection_id: &'a str,
    words: &'a [String],
    repeats: &'a [i32],
    params: Bm25Params,
    depth: usize,
    filter: Option<&'a Filter>,
}

/// The idf of a term in `FULL_BUDGET_DF` of a large collection's chunks, as an SQL literal.
fn full_budget_idf() -> String {
    format!("{:.6}", (1.0 + (1.0 - FULL_BUDGET_DF) / FULL_BUDGET_DF).ln())
}

impl PgStore {
    /// BM25 over each query term's best postings by impact among the documents the filter
    /// passes (`POSTINGS_PER_TERM`, less for common terms, never fewer than `depth`; all of a
    /// term in `READ_WHOLE_DF` chunks or fewer), each read posting scored exactly; best first.
    /// (Fewer than `depth` results only when fewer chunks match: then every posting was read.)
    async fn bm25(&self, b: &Bm25Query<'_>) -> StoreResult<Vec<(u64, f32)>> {
        let key = b.key.key;
        let mut q = QueryBuilder::<Postgres>::new("WITH q AS (SELECT * FROM unnest(");
        q.push_bind(b.words.to_vec())
            .push("::text[], ")
            .push_bind(b.repeats.to_vec())
            .push("::int[]) AS q(term, qtf)), ");
        if let Some(f) = b.filter {
            // The documents the filter passes, tested once each; postings of others are skipped
            // while each term's postings are read.
            q.push("allowed AS MATERIALIZED (SELECT d.id FROM documents d WHERE d.collection_id = ")
                .push_bind(b.collection_id)
                .push(" AND ");
            push_filter(&mut q, f, "d.meta");
            q.push("), ");
        }
        q.push("s AS (SELECT chunks::float8 AS n, total_terms::float8 / GREATEST(chunks, 1) AS avgdl FROM search_collections WHERE key = ")
            .push(key)
            .push("), df AS (SELECT st.term, st.df::float8 AS df FROM search_terms st JOIN q ON q.term = st.term WHERE st.collection_key = ")
            .push(key)
            .push(" AND st.df > 0), idf AS (SELECT df.term, df.df, ln(1 + (s.n - df.df + 0.5) / (df.df + 0.5)) AS idf FROM df CROSS JOIN s), \
                   best AS (SELECT q.qtf, idf.idf, t.chunk_id, t.tf, t.len FROM q JOIN idf ON idf.term = q.term CROSS JOIN LATERAL \
                   (SELECT p.chunk_id, p.tf, p.len FROM chunk_terms p WHERE p.collection_key = ")
            .push(key)
            .push(" AND p.term = q.term")
            // Under an OR the membership test stays a hashed subplan checked per posting as the
            // walk goes (a plain IN becomes a join, and the planner then reads every posting of
            // the term and sorts them); `tf < 0` never holds.
            .push(if b.filter.is_some() { " AND (p.document_id IN (SELECT id FROM allowed) OR p.tf < 0)" } else { "" })
            // Never fewer than `depth`, so a one-word query still fills its results.
            .push(" ORDER BY p.impact DESC LIMIT greatest(")
            .push_bind(b.depth as i64)
            .push(", CASE WHEN idf.df <= ")
            .push(READ_WHOLE_DF)
            .push(" THEN idf.df ELSE 0 END, ceil(")
            .push(POSTINGS_PER_TERM)
            .push(" * least(1, idf.idf / ")
            .push(full_budget_idf())
            .push("))::bigint)) t), scored AS (SELECT best.chunk_id, SUM(best.qtf * best.idf * best.tf * (")
            .push_bind(f64::from(b.params.k1))
            .push(" + 1) / (best.tf + ")
            .push_bind(f64::from(b.params.k1))
            .push(" * (1 - ")
            .push_bind(f64::from(b.params.b))
            .push(" + ")
            .push_bind(f64::from(b.params.b))
            .push(" * best.len / GREATEST(s.avgdl, 1e-9))))::float8 AS score FROM best \
                   CROSS JOIN s GROUP BY best.chunk_id) SELECT sc.chunk_id, sc.score FROM scored sc");
        q.push(" ORDER BY sc.score DESC, sc.chunk_id LIMIT ").push_bind(b.depth as i64);
        let rows = q.build().fetch_all(&self.pool).await.map_err(db_err)?;
        scored(&rows)
    }

    /// One vector search: through the HNSW index with iterative scans (so filtered searches
    /// keep walking the graph until `depth` chunks pass), or exactly.
    async fn nearest(
        &self,
        key: SearchKey,
        collection_id: &str,
        vector: &[f32],
        depth: usize,
        filter: Option<&Filter>,
        scan: VectorScan,
    ) -> StoreResult<Vec<(u64, f32)>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        let mut tx = conn.begin_tx().await.map_err(db_err)?;
        let ef = depth.clamp(40, 1000).to_string();
        // A custom plan per query: a generic one may not see that the index fits, and then
        // scans and casts every vector.
        sqlx::query(
            "SELECT set_config('hnsw.ef_search', $1, true), set_config('hnsw.iterative_scan', 'relaxed_order', true), \
             set_config('plan_cache_mode', 'force_custom_plan', true)",
        )
        .bind(ef)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut q =
            QueryBuilder::<Postgres>::new("SELECT chunk_id, (1 - distance)::float8 AS score FROM (SELECT v.chunk_id, ");
        match scan {
            VectorScan::Index => {
                let (open, close) = key.query_cast();
                q.push(key.indexed("v.embedding")).push(" <=> ").push(open).push_bind(vector_text(vector)).push(close);
            }
            // No index matches the untyped column: the planner scans (after the filter).
            VectorScan::Exact => {
                q.push("v.embedding <=> CAST(").push_bind(vector_text(vector)).push(" AS vector)");
            }
        }
        q.push(" AS distance FROM chunk_vectors v");
        if filter.is_some() {
            q.push(" JOIN documents d ON d.collection_id = ")
                .push_bind(collection_id)
                .push(" AND d.id = v.document_id");
        }
        // The key as a literal (an integer of ours), so the planner prunes to the collection's
        // partition and its index when it plans the statement.
        q.push(" WHERE v.collection_key = ").push(key.key);
        if let Some(f) = filter {
            q.push(" AND ");
            push_filter(&mut q, f, "d.meta");
        }
        q.push(" ORDER BY distance LIMIT ").push_bind(depth as i64).push(") nearest");
        let rows = q.build().fetch_all(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        let mut found = scored(&rows)?;
        // Relaxed order: the index may hand back near-ties out of order.
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(found)
    }
}
