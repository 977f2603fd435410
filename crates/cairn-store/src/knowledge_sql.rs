//! The knowledge layer's queries, written once for SQLite and PostgreSQL. Replacing a
//! document's chunks is one transaction (old chunks out, new ones in, the document marked
//! ready, the change logged), so a reader sees the old version or the new one, never a mix.
//! Documents are keyed by collection and id; every write made for an ingestion job names the
//! version it was made for and changes nothing once a newer upload superseded it.

/// Selected columns of `collections`.
pub(crate) const COLLECTION_COLUMNS: &str =
    "id, tenant_id, name, embedding_model, dimensions, chunk_max_tokens, chunk_overlap_tokens, pii, created_at_ms, \
    pii_exempt";
/// Selected columns of `documents`.
pub(crate) const DOCUMENT_COLUMNS: &str = "id, collection_id, tenant_id, title, source, metadata, fingerprint, state, \
    error, chunk_count, created_at_ms, updated_at_ms, version";
/// Selected columns of `chunks`.
pub(crate) const CHUNK_COLUMNS: &str =
    "id, document_id, collection_id, seq, text, start_byte, end_byte, headings, embedding";

/// Implements `KnowledgeStore` for `$store` (with `pool` and `writer` fields) on `$db`, beside
/// the job store (whose `insert_jobs` it uses to write documents and their jobs together).
/// `$serialise` runs first in every transaction that appends to the change log: followers read
/// the log by sequence number, so entries must commit in that order. PostgreSQL draws
/// sequence numbers at insert time, so concurrent writers take a transaction-scoped advisory
/// lock; SQLite has one writer and needs nothing.
macro_rules! impl_knowledge_store {
    ($store:ty, $db:ty, $serialise:literal, $search:path) => {
        #[allow(unused_imports)]
        use $crate::tx::Begin as _;
        use $search as search_index;
        use cairn_core::knowledge::{
            embedding_from_bytes, embedding_to_bytes, Change, ChangeKind, ChunkRecord, Collection, Document,
            DocumentKey, DocumentState, KnowledgeStore, PiiMode,
        };
        use cairn_core::jobs::{Job, NewJob};
        use cairn_core::store::{StoreError, StoreResult};
        use sqlx::Row;

        type KRow = <$db as sqlx::Database>::Row;

        fn collection_from_row(r: &KRow) -> Result<Collection, sqlx::Error> {
            Ok(Collection {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                name: r.try_get("name")?,
                embedding_model: r.try_get("embedding_model")?,
                dimensions: r.try_get::<i32, _>("dimensions")?.max(0) as u32,
                chunk_max_tokens: r.try_get::<i32, _>("chunk_max_tokens")?.max(0) as u32,
                chunk_overlap_tokens: r.try_get::<i32, _>("chunk_overlap_tokens")?.max(0) as u32,
                pii: PiiMode::parse(&r.try_get::<String, _>("pii")?),
                pii_exempt: serde_json::from_str(&r.try_get::<String, _>("pii_exempt")?)
                    .map_err(|e| sqlx::Error::Decode(e.into()))?,
                created_at_ms: r.try_get("created_at_ms")?,
            })
        }

        fn document_from_row(r: &KRow) -> Result<Document, sqlx::Error> {
            let metadata: String = r.try_get("metadata")?;
            Ok(Document {
                id: r.try_get("id")?,
                collection_id: r.try_get("collection_id")?,
                tenant_id: r.try_get("tenant_id")?,
                title: r.try_get("title")?,
                source: r.try_get("source")?,
                metadata: serde_json::from_str(&metadata).map_err(|e| sqlx::Error::Decode(e.into()))?,
                fingerprint: r.try_get("fingerprint")?,
                state: DocumentState::parse(&r.try_get::<String, _>("state")?),
                error: r.try_get("error")?,
                chunk_count: r.try_get::<i32, _>("chunk_count")?.max(0) as u32,
                version: r.try_get("version")?,
                created_at_ms: r.try_get("created_at_ms")?,
                updated_at_ms: r.try_get("updated_at_ms")?,
            })
        }

        fn chunk_from_row(r: &KRow) -> Result<ChunkRecord, sqlx::Error> {
            let headings: String = r.try_get("headings")?;
            Ok(ChunkRecord {
                id: r.try_get("id")?,
                document_id: r.try_get("document_id")?,
                collection_id: r.try_get("collection_id")?,
                seq: r.try_get::<i32, _>("seq")?.max(0) as u32,
                text: r.try_get("text")?,
                start: r.try_get::<i32, _>("start_byte")?.max(0) as u32,
                end: r.try_get::<i32, _>("end_byte")?.max(0) as u32,
                headings: serde_json::from_str(&headings).map_err(|e| sqlx::Error::Decode(e.into()))?,
                embedding: embedding_from_bytes(&r.try_get::<Vec<u8>, _>("embedding")?),
                terms: Vec::new(),
            })
        }

        fn all<T>(rows: &[KRow], f: fn(&KRow) -> Result<T, sqlx::Error>) -> StoreResult<Vec<T>> {
            rows.iter().map(f).collect::<Result<_, _>>().map_err($crate::db_err)
        }

        /// Writes `d` inside `tx` if the stored document is at `d.version - 1` (or absent).
        async fn upsert_document(tx: &mut $crate::tx::Tx<'_, $db>, d: &Document) -> StoreResult<()> {
            let sql = format!(
                "INSERT INTO documents ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (collection_id, id) DO UPDATE SET title = excluded.title, source = excluded.source, \
                 metadata = excluded.metadata, state = excluded.state, error = excluded.error, \
                 updated_at_ms = excluded.updated_at_ms, version = excluded.version \
                 WHERE documents.version = excluded.version - 1",
                $crate::knowledge_sql::DOCUMENT_COLUMNS
            );
            let n = sqlx::query(&sql)
                .bind(&d.id)
                .bind(&d.collection_id)
                .bind(&d.tenant_id)
                .bind(&d.title)
                .bind(&d.source)
                .bind(d.metadata.to_string())
                .bind(&d.fingerprint)
                .bind(d.state.as_str())
                .bind(&d.error)
                .bind(d.chunk_count as i32)
                .bind(d.created_at_ms)
                .bind(d.updated_at_ms)
                .bind(d.version)
                .execute(&mut **tx)
                .await
                .map_err(|e| match $crate::db_err(e) {
                    StoreError::NotFound(_) => {
                        StoreError::NotFound(format!("collection '{}' does not exist", d.collection_id))
                    }
                    other => other,
                })?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "document '{}' was changed by another upload meanwhile; send it again",
                    d.id
                )));
            }
            Ok(())
        }

        /// Why a versioned write matched no row: the document is gone, or a newer upload
        /// superseded the version.
        async fn missing_or_superseded(tx: &mut $crate::tx::Tx<'_, $db>, doc: &DocumentKey<'_>) -> StoreError {
            let exists = sqlx::query("SELECT version FROM documents WHERE collection_id = $1 AND id = $2")
                .bind(doc.collection_id)
                .bind(doc.id)
                .fetch_optional(&mut **tx)
                .await;
            match exists {
                Ok(Some(_)) => StoreError::Conflict(format!(
                    "version {} of document '{}' was superseded by a newer upload",
                    doc.version, doc.id
                )),
                Ok(None) => StoreError::NotFound(format!("document '{}' does not exist", doc.id)),
                Err(e) => $crate::db_err(e),
            }
        }

        /// Starts a transaction that may append to the change log.
        async fn begin_logged<C: $crate::tx::Begin<$db>>(conn: &mut C) -> StoreResult<$crate::tx::Tx<'_, $db>> {
            let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
            if !$serialise.is_empty() {
                sqlx::query($serialise).execute(&mut *tx).await.map_err($crate::db_err)?;
            }
            Ok(tx)
        }

        /// Appends one entry to the change log inside `tx`, and deletes the cached answers built
        /// on the collection: they may no longer be what it says.
        async fn log_change(
            tx: &mut $crate::tx::Tx<'_, $db>,
            collection_id: &str,
            document_id: Option<&str>,
            kind: ChangeKind,
            at_ms: i64,
        ) -> Result<(), sqlx::Error> {
            sqlx::query("INSERT INTO knowledge_changes (collection_id, document_id, kind, at_ms) VALUES ($1, $2, $3, $4)")
                .bind(collection_id)
                .bind(document_id)
                .bind(kind.as_str())
                .bind(at_ms)
                .execute(&mut **tx)
                .await?;
            sqlx::query(
                "DELETE FROM response_cache WHERE (tenant_id, cache_key) IN \
                 (SELECT tenant_id, cache_key FROM response_cache_collections WHERE collection_id = $1)",
            )
            .bind(collection_id)
            .execute(&mut **tx)
            .await?;
            sqlx::query("DELETE FROM response_cache_collections WHERE collection_id = $1")
                .bind(collection_id)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        #[async_trait::async_trait]
        impl KnowledgeStore for $store {
            async fn create_collection(&self, c: &Collection) -> StoreResult<()> {
                let sql = format!(
                    "INSERT INTO collections ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    $crate::knowledge_sql::COLLECTION_COLUMNS
                );
                let mut conn = self.write_conn().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                sqlx::query(&sql)
                    .bind(&c.id)
                    .bind(&c.tenant_id)
                    .bind(&c.name)
                    .bind(&c.embedding_model)
                    .bind(c.dimensions as i32)
                    .bind(c.chunk_max_tokens as i32)
                    .bind(c.chunk_overlap_tokens as i32)
                    .bind(c.pii.as_str())
                    .bind(c.created_at_ms)
                    .bind(serde_json::to_string(&c.pii_exempt).unwrap_or_else(|_| "[]".into()))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| match $crate::db_err(e) {
                        StoreError::Conflict(_) => StoreError::Conflict(format!("a collection named '{}' exists", c.name)),
                        other => other,
                    })?;
                search_index::collection_created(&mut tx, c).await.map_err($crate::db_err)?;
                tx.commit().await.map_err($crate::db_err)?;
                Ok(())
            }

            async fn get_collection(&self, id: &str) -> StoreResult<Option<Collection>> {
                let sql = format!("SELECT {} FROM collections WHERE id = $1", $crate::knowledge_sql::COLLECTION_COLUMNS);
                let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await.map_err($crate::db_err)?;
                row.as_ref().map(collection_from_row).transpose().map_err($crate::db_err)
            }

            async fn list_collections(&self, tenant_id: Option<&str>) -> StoreResult<Vec<Collection>> {
                let sql = format!(
                    "SELECT {} FROM collections WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY tenant_id, name",
                    $crate::knowledge_sql::COLLECTION_COLUMNS
                );
                let rows = sqlx::query(&sql).bind(tenant_id).fetch_all(&self.pool).await.map_err($crate::db_err)?;
                all(&rows, collection_from_row)
            }

            async fn delete_collection(&self, id: &str, at_ms: i64) -> StoreResult<bool> {
                let mut conn = self.write_conn().await?;
                let mut tx = begin_logged(&mut conn).await?;
                for sql in [
                    "DELETE FROM chunks WHERE collection_id = $1",
                    "DELETE FROM documents WHERE collection_id = $1",
                ] {
                    sqlx::query(sql).bind(id).execute(&mut *tx).await.map_err($crate::db_err)?;
                }
                let n = sqlx::query("DELETE FROM collections WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::db_err)?
                    .rows_affected();
                if n == 1 {
                    search_index::collection_deleted(&mut tx, id).await.map_err($crate::db_err)?;
                    log_change(&mut tx, id, None, ChangeKind::CollectionDeleted, at_ms).await.map_err($crate::db_err)?;
                }
                tx.commit().await.map_err($crate::db_err)?;
                Ok(n == 1)
            }

            async fn put_document(&self, d: &Document) -> StoreResult<()> {
                let mut conn = self.write_conn().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                upsert_document(&mut tx, d).await?;
                tx.commit().await.map_err($crate::db_err)
            }

            async fn put_documents_with_jobs(
                &self,
                docs: &[Document],
                jobs: &[NewJob],
            ) -> StoreResult<Vec<(Job, bool)>> {
                let mut conn = self.write_conn().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                for d in docs {
                    upsert_document(&mut tx, d).await?;
                }
                let out = super::job_ports::insert_jobs(&mut tx, jobs).await?;
                tx.commit().await.map_err($crate::db_err)?;
                Ok(out)
            }

            async fn get_document(&self, collection_id: &str, id: &str) -> StoreResult<Option<Document>> {
                let sql = format!(
                    "SELECT {} FROM documents WHERE collection_id = $1 AND id = $2",
                    $crate::knowledge_sql::DOCUMENT_COLUMNS
                );
                let row = sqlx::query(&sql)
                    .bind(collection_id)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::db_err)?;
                row.as_ref().map(document_from_row).transpose().map_err($crate::db_err)
            }

            async fn list_documents(
                &self,
                collection_id: &str,
                state: Option<DocumentState>,
                after_id: Option<&str>,
                limit: u32,
            ) -> StoreResult<Vec<Document>> {
                let sql = format!(
                    "SELECT {} FROM documents WHERE collection_id = $1 AND ($2 IS NULL OR id > $2) \
                     AND ($4 IS NULL OR state = $4) ORDER BY id LIMIT $3",
                    $crate::knowledge_sql::DOCUMENT_COLUMNS
                );
                let rows = sqlx::query(&sql)
                    .bind(collection_id)
                    .bind(after_id)
                    .bind(i64::from(limit))
                    .bind(state.map(DocumentState::as_str))
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::db_err)?;
                all(&rows, document_from_row)
            }

            async fn replace_chunks(
                &self,
                doc: &DocumentKey<'_>,
                fingerprint: &str,
                chunks: &[ChunkRecord],
                at_ms: i64,
            ) -> StoreResult<Vec<i64>> {
                let mut conn = self.write_conn().await?;
                let mut tx = begin_logged(&mut conn).await?;
                // The document row first: it locks the row (so an upload bumping the version waits
                // for this commit) and checks the version in the same statement.
                let n = sqlx::query(
                    "UPDATE documents SET state = 'ready', error = NULL, fingerprint = $4, chunk_count = $5, \
                     updated_at_ms = $6 WHERE collection_id = $1 AND id = $2 AND version = $3",
                )
                .bind(doc.collection_id)
                .bind(doc.id)
                .bind(doc.version)
                .bind(fingerprint)
                .bind(chunks.len() as i32)
                .bind(at_ms)
                .execute(&mut *tx)
                .await
                .map_err($crate::db_err)?
                .rows_affected();
                if n == 0 {
                    return Err(missing_or_superseded(&mut tx, doc).await);
                }
                sqlx::query("DELETE FROM chunks WHERE collection_id = $1 AND document_id = $2")
                    .bind(doc.collection_id)
                    .bind(doc.id)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::db_err)?;
                let mut ids = Vec::with_capacity(chunks.len());
                for part in chunks.chunks(200) {
                    let sql = format!(
                        "INSERT INTO chunks (document_id, collection_id, seq, text, start_byte, end_byte, headings, embedding) \
                         VALUES {} RETURNING id, seq",
                        $crate::jobs_sql::numbered("(?, ?, ?, ?, ?, ?, ?, ?)", part.len())
                    );
                    let mut q = sqlx::query(&sql);
                    for c in part {
                        q = q
                            .bind(doc.id)
                            .bind(doc.collection_id)
                            .bind(c.seq as i32)
                            .bind(&c.text)
                            .bind(c.start as i32)
                            .bind(c.end as i32)
                            .bind(serde_json::to_string(&c.headings).unwrap_or_else(|_| "[]".into()))
                            .bind(embedding_to_bytes(&c.embedding));
                    }
                    let rows = q.fetch_all(&mut *tx).await.map_err($crate::db_err)?;
                    for r in rows {
                        let seq = r.try_get::<i32, _>("seq").map_err($crate::db_err)?;
                        ids.push((seq.max(0) as u32, r.try_get::<i64, _>("id").map_err($crate::db_err)?));
                    }
                }
                // Each chunk's id, in `chunks`' order (matched by position in the document).
                let id_of: std::collections::HashMap<u32, i64> = ids.iter().copied().collect();
                let by_chunk: Vec<i64> = chunks.iter().map(|c| id_of.get(&c.seq).copied().unwrap_or(0)).collect();
                search_index::chunks_replaced(&mut tx, doc.collection_id, doc.id, &by_chunk, chunks)
                    .await
                    .map_err($crate::db_err)?;
                let mut ids: Vec<i64> = ids.into_iter().map(|(_, id)| id).collect();
                ids.sort_unstable();
                log_change(&mut tx, doc.collection_id, Some(doc.id), ChangeKind::Document, at_ms)
                    .await
                    .map_err($crate::db_err)?;
                tx.commit().await.map_err($crate::db_err)?;
                Ok(ids)
            }

            async fn mark_ready(&self, doc: &DocumentKey<'_>, at_ms: i64) -> StoreResult<()> {
                let mut conn = self.write_conn().await?;
                let mut tx = begin_logged(&mut conn).await?;
                let n = sqlx::query(
                    "UPDATE documents SET state = 'ready', error = NULL, updated_at_ms = $4 \
                     WHERE collection_id = $1 AND id = $2 AND version = $3",
                )
                .bind(doc.collection_id)
                .bind(doc.id)
                .bind(doc.version)
                .bind(at_ms)
                .execute(&mut *tx)
                .await
                .map_err($crate::db_err)?
                .rows_affected();
                if n == 0 {
                    return Err(missing_or_superseded(&mut tx, doc).await);
                }
                log_change(&mut tx, doc.collection_id, Some(doc.id), ChangeKind::Document, at_ms)
                    .await
                    .map_err($crate::db_err)?;
                tx.commit().await.map_err($crate::db_err)?;
                Ok(())
            }

            async fn fail_document(&self, doc: &DocumentKey<'_>, error: &str, at_ms: i64) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE documents SET state = 'failed', error = $4, updated_at_ms = $5 \
                     WHERE collection_id = $1 AND id = $2 AND version = $3",
                )
                .bind(doc.collection_id)
                .bind(doc.id)
                .bind(doc.version)
                .bind(error)
                .bind(at_ms)
                .execute(&mut *self.write_conn().await?)
                .await
                .map_err($crate::db_err)?;
                Ok(())
            }

            async fn delete_document(&self, collection_id: &str, id: &str, at_ms: i64) -> StoreResult<bool> {
                let mut conn = self.write_conn().await?;
                let mut tx = begin_logged(&mut conn).await?;
                sqlx::query("DELETE FROM chunks WHERE collection_id = $1 AND document_id = $2")
                    .bind(collection_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::db_err)?;
                let n = sqlx::query("DELETE FROM documents WHERE collection_id = $1 AND id = $2")
                    .bind(collection_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::db_err)?
                    .rows_affected();
                if n == 1 {
                    search_index::document_removed(&mut tx, collection_id, id).await.map_err($crate::db_err)?;
                    log_change(&mut tx, collection_id, Some(id), ChangeKind::DocumentDeleted, at_ms)
                        .await
                        .map_err($crate::db_err)?;
                }
                tx.commit().await.map_err($crate::db_err)?;
                Ok(n == 1)
            }

            async fn document_chunks(&self, collection_id: &str, id: &str) -> StoreResult<Vec<ChunkRecord>> {
                let sql = format!(
                    "SELECT {} FROM chunks WHERE collection_id = $1 AND document_id = $2 ORDER BY seq",
                    $crate::knowledge_sql::CHUNK_COLUMNS
                );
                let rows = sqlx::query(&sql)
                    .bind(collection_id)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::db_err)?;
                all(&rows, chunk_from_row)
            }

            async fn collection_chunks(&self, collection_id: &str, after_id: i64, limit: u32) -> StoreResult<Vec<ChunkRecord>> {
                let sql = format!(
                    "SELECT {} FROM chunks WHERE collection_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                    $crate::knowledge_sql::CHUNK_COLUMNS
                );
                let rows = sqlx::query(&sql)
                    .bind(collection_id)
                    .bind(after_id)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::db_err)?;
                all(&rows, chunk_from_row)
            }

            async fn changes_since(&self, seq: i64, limit: u32) -> StoreResult<Vec<Change>> {
                let rows = sqlx::query(
                    "SELECT seq, collection_id, document_id, kind FROM knowledge_changes WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(seq)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::db_err)?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    let kind: String = r.try_get("kind").map_err($crate::db_err)?;
                    // An entry written by a newer version that this one does not know: skip it.
                    let Some(kind) = ChangeKind::parse(&kind) else { continue };
                    out.push(Change {
                        seq: r.try_get("seq").map_err($crate::db_err)?,
                        collection_id: r.try_get("collection_id").map_err($crate::db_err)?,
                        document_id: r.try_get("document_id").map_err($crate::db_err)?,
                        kind,
                    });
                }
                Ok(out)
            }

            async fn latest_change(&self) -> StoreResult<i64> {
                sqlx::query("SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) AS seq FROM knowledge_changes")
                    .fetch_one(&self.pool)
                    .await
                    .and_then(|r| r.try_get("seq"))
                    .map_err($crate::db_err)
            }
        }
    };
}
pub(crate) use impl_knowledge_store;
