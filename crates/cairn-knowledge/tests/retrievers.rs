//! Both retrievers behind the retrieval port, on real stores: the in-memory live index (on
//! SQLite and on PostgreSQL) and search inside PostgreSQL. The same scenario runs on each
//! (every mode, filters, changes made by another process, deletes), and on one PostgreSQL
//! corpus the two are compared query by query: BM25 scores and ranks, exact vector search,
//! HNSW recall under a selective filter, and metadata filters compiled to SQL against
//! `Filter::matches` on the same documents.

use std::collections::HashSet;
use std::sync::Arc;

use cairn_core::filter::Filter;
use cairn_core::knowledge::ChunkRecord;
use cairn_core::search::{SearchStore, VectorScan};
use cairn_core::store::Store;
use cairn_knowledge::live::{LiveIndex, LiveOptions};
use cairn_knowledge::retrieve::{DatabaseRetriever, Hit, Retriever, SearchMode, SearchQuery};
use serde_json::{json, Value};
use support::records::{chunk, collection, put, sqlite};

mod support;

fn query(
    col: &str,
    text: &str,
    vector: Option<&[f32]>,
    mode: SearchMode,
    k: usize,
    filter: Option<&Value>,
) -> SearchQuery {
    SearchQuery {
        collection_id: col.into(),
        text: text.into(),
        vector: vector.map(Arc::from),
        mode,
        k,
        filter: filter.map(|f| Arc::new(Filter::parse(f).unwrap())),
    }
}

async fn search(r: &dyn Retriever, q: SearchQuery) -> Vec<Hit> {
    r.search(q).await.unwrap().hits
}

fn ids(hits: &[Hit]) -> Vec<(String, u32)> {
    hits.iter().map(|h| (h.chunk.document_id.clone(), h.chunk.seq)).collect()
}

/// Asserts two rankings are the same: the same chunks with the same scores, in the same order
/// but for ties (scores within 1e-4, which single and double precision arithmetic may order
/// either way).
fn assert_same_ranking(a: &[Hit], b: &[Hit], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x.score - y.score).abs() < 1e-3 * x.score.abs().max(1.0), "{what}: {} vs {}", x.score, y.score);
        if x.chunk_id != y.chunk_id {
            let j = a.iter().position(|h| h.chunk_id == y.chunk_id);
            let tied = j.is_some_and(|j| (a[j].score - a[i].score).abs() < 1e-4);
            assert!(tied, "{what}: rank {i} is chunk {} in one and {} in the other", x.chunk_id, y.chunk_id);
        }
    }
}

async fn postgres() -> (Arc<dyn Store>, Arc<dyn SearchStore>) {
    postgres_at(&cairn_store::conformance::fresh_pg_database().await).await
}

async fn postgres_at(url: &str) -> (Arc<dyn Store>, Arc<dyn SearchStore>) {
    let (store, search) = cairn_store::open_with_search(url, 4).await.unwrap();
    (store, search.expect("PostgreSQL searches"))
}

/// Which retriever a scenario runs on.
enum Kind {
    Live,
    Database(Arc<dyn SearchStore>),
}

/// Every mode, filters inside retrieval, another process's changes, deletes.
async fn scenario(store: Arc<dyn Store>, kind: Kind) {
    store.create_collection(&collection("col", 3)).await.unwrap();
    put(
        &*store,
        "col",
        "aspirin",
        json!({"drug": "aspirin", "year": 2019}),
        &[chunk(0, "Aspirin reduces fever and pain", &[1.0, 0.0, 0.0])],
    )
    .await;
    let statins = [
        chunk(0, "Statins lower cholesterol", &[0.0, 1.0, 0.0]),
        chunk(1, "Statins and muscle pain", &[0.0, 0.9, 0.1]),
    ];
    put(&*store, "col", "statins", json!({"drug": "statins", "year": 2023}), &statins).await;
    let r: Arc<dyn Retriever> = match kind {
        // Hybrid searches run their legs on two threads whatever the size (`threaded`).
        Kind::Live => Arc::new(threaded(&store).await),
        Kind::Database(search) => Arc::new(DatabaseRetriever::new(search)),
    };
    let r = &*r;

    let kw = search(r, query("col", "pain", None, SearchMode::Keyword, 10, None)).await;
    assert_eq!(kw.len(), 2);
    assert!(kw.iter().all(|h| h.similarity.is_none() && h.score > 0.0));
    let vec = search(r, query("col", "", Some(&[0.0, 1.0, 0.05]), SearchMode::Vector, 1, None)).await;
    assert_eq!(ids(&vec), [("statins".to_owned(), 0)]);
    assert!((vec[0].similarity.unwrap() - vec[0].score).abs() < 1e-5);
    assert_eq!(vec[0].document.metadata["year"], 2023);
    let hybrid = search(r, query("col", "muscle pain", Some(&[0.0, 1.0, 0.1]), SearchMode::Hybrid, 1, None)).await;
    assert_eq!(ids(&hybrid), [("statins".to_owned(), 1)]);
    // A metadata filter applies inside retrieval: still a full top-k from what passes.
    let before_2020 = json!({"field": "year", "lt": 2020});
    let filtered =
        search(r, query("col", "pain statins", Some(&[0.0, 1.0, 0.0]), SearchMode::Hybrid, 2, Some(&before_2020)))
            .await;
    assert_eq!(ids(&filtered), [("aspirin".to_owned(), 0)]);
    let only_statins = json!({"field": "drug", "in": ["statins"]});
    let top = search(r, query("col", "pain", None, SearchMode::Keyword, 1, Some(&only_statins))).await;
    assert_eq!(ids(&top), [("statins".to_owned(), 1)]);
    assert!(search(r, query("nope", "pain", None, SearchMode::Keyword, 5, None)).await.is_empty());
    assert!(search(r, query("col", "zebra", None, SearchMode::Keyword, 5, None)).await.is_empty());

    // Another process replaces a document: no stale hit once caught up.
    put(
        &*store,
        "col",
        "aspirin",
        json!({"drug": "aspirin", "year": 2024}),
        &[chunk(0, "Aspirin thins the blood", &[1.0, 0.0, 0.0])],
    )
    .await;
    r.catch_up().await.unwrap();
    assert!(search(r, query("col", "fever", None, SearchMode::Keyword, 5, None)).await.is_empty(), "no stale hit");
    assert_eq!(search(r, query("col", "blood", None, SearchMode::Keyword, 5, None)).await.len(), 1);
    // The document's new metadata took effect too.
    assert!(search(r, query("col", "blood", None, SearchMode::Keyword, 5, Some(&before_2020))).await.is_empty());

    store.delete_document("col", "statins", 3).await.unwrap();
    r.catch_up().await.unwrap();
    assert!(search(r, query("col", "cholesterol", None, SearchMode::Keyword, 5, None)).await.is_empty());
    assert!(search(r, query("col", "", Some(&[0.0, 1.0, 0.0]), SearchMode::Vector, 5, None))
        .await
        .iter()
        .all(|h| h.chunk.document_id == "aspirin"));
    store.delete_collection("col", 4).await.unwrap();
    r.catch_up().await.unwrap();
    assert!(search(r, query("col", "blood", None, SearchMode::Keyword, 5, None)).await.is_empty());
    // A collection made again under the same name starts empty.
    store.create_collection(&collection("col", 3)).await.unwrap();
    r.catch_up().await.unwrap();
    assert!(search(r, query("col", "blood", None, SearchMode::Hybrid, 5, None)).await.is_empty());
}

#[tokio::test]
async fn live_index_on_sqlite() {
    let (store, _dir) = sqlite().await;
    scenario(store, Kind::Live).await;
}

#[tokio::test]
async fn live_index_on_postgres() {
    let (store, _) = postgres().await;
    scenario(store, Kind::Live).await;
}

#[tokio::test]
async fn database_retriever_on_postgres() {
    let (store, search) = postgres().await;
    scenario(store, Kind::Database(search)).await;
}

/// A small deterministic generator (no dependency on a random crate's sequence).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f32 {
        (self.next() % 20001) as f32 / 10000.0 - 1.0
    }
}

const WORDS: &[&str] = &[
    "protein",
    "binding",
    "receptor",
    "cancer",
    "cell",
    "gene",
    "expression",
    "mouse",
    "trial",
    "dose",
    "heart",
    "risk",
    "vitamin",
    "bone",
    "density",
    "brain",
    "neuron",
    "insulin",
    "glucose",
    "immune",
    "virus",
    "vaccine",
    "the",
    "of",
    "and",
    "proteins",
    "cells",
    "genes",
    "mice",
    "doses",
    "2019",
    "covid",
];

/// Metadata with every shape filters meet: numbers, strings, lists, dates, nested objects,
/// nulls and missing fields.
fn metadata(g: &mut Lcg, i: usize) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("year".into(), json!(2015 + g.below(10)));
    m.insert("lang".into(), json!(["en", "de", "fr"][g.below(3) as usize]));
    let tags: Vec<&str> = (0..g.below(3)).map(|_| ["oncology", "cardiology", "trial"][g.below(3) as usize]).collect();
    m.insert("tags".into(), json!(tags));
    if g.below(4) > 0 {
        let day = 1 + g.below(28);
        let date = match g.below(3) {
            0 => format!("2024-0{}-{day:02}", 1 + g.below(9)),
            1 => format!("2024-0{}-{day:02}T12:30:00+02:00", 1 + g.below(9)),
            _ => "not a date".to_owned(),
        };
        m.insert("published".into(), json!(date));
    }
    if g.below(5) == 0 {
        m.insert("draft".into(), Value::Null);
    } else if g.below(2) == 0 {
        m.insert("draft".into(), json!(g.below(2) == 0));
    }
    let name = ["Ada", "Grace", "Alan"][g.below(3) as usize];
    m.insert("author".into(), json!({"name": name, "n": i}));
    m.insert("score".into(), json!(g.unit() * 10.0));
    Value::Object(m)
}

fn filters() -> Vec<Value> {
    vec![
        json!({}),
        json!({"field": "year", "gte": 2020}),
        json!({"field": "year", "eq": 2018.0}),
        json!({"field": "year", "gt": 2016, "lte": 2019}),
        json!({"field": "lang", "ne": "en"}),
        json!({"field": "tags", "eq": "trial"}),
        json!({"field": "tags", "in": ["oncology", "cardiology"]}),
        json!({"field": "tags", "ne": "trial"}),
        json!({"field": "published", "lt": "2024-05-01"}),
        json!({"field": "published", "gte": "2024-03-10T10:00:00Z"}),
        json!({"field": "published", "exists": false}),
        json!({"field": "draft", "exists": true}),
        json!({"field": "draft", "eq": false}),
        json!({"not": {"field": "draft", "eq": true}}),
        json!({"field": "author.name", "eq": "Ada"}),
        json!({"field": "author.n", "lt": 40}),
        json!({"field": "score", "gt": 2.5}),
        json!({"field": "missing.path", "ne": 1}),
        json!({"or": [{"field": "lang", "eq": "fr"}, {"and": [{"field": "year", "lt": 2017}, {"field": "tags", "exists": true}]}]}),
        json!({"not": {"or": [{"field": "lang", "eq": "en"}, {"field": "author.name", "in": ["Grace", "Alan"]}]}}),
        json!({"field": "author.n", "in": [3, 5, 8, 13, 21, 34, 55, 89, 144, 233]}),
        // Bounds of the other type: no value matches, and no cast fails.
        json!({"field": "lang", "gt": 3}),
        json!({"field": "year", "lt": "2024-01-01"}),
        json!({"field": "tags", "gte": 0}),
    ]
}

/// One PostgreSQL corpus, both retrievers: the same answers.
#[tokio::test]
async fn database_search_matches_the_live_index() {
    let (store, db_store) = postgres().await;
    const DIM: usize = 8;
    store.create_collection(&collection("big", DIM as u32)).await.unwrap();
    let mut g = Lcg(7);
    let mut docs = Vec::new();
    for i in 0..240 {
        let meta = metadata(&mut g, i);
        let chunks: Vec<ChunkRecord> = (0..1 + g.below(3) as u32)
            .map(|seq| {
                // The first word is never a stop word: every chunk has a term.
                let mut text = vec![WORDS[g.below(20) as usize]];
                text.extend((0..2 + g.below(12)).map(|_| WORDS[g.below(WORDS.len() as u64) as usize]));
                let v: Vec<f32> = (0..DIM).map(|_| g.unit()).collect();
                chunk(seq, &text.join(" "), &v)
            })
            .collect();
        put(&*store, "big", &format!("doc{i:03}"), meta.clone(), &chunks).await;
        docs.push((format!("doc{i:03}"), meta, chunks.len()));
    }
    let index = LiveIndex::open(store.clone()).await.unwrap();
    let db = DatabaseRetriever::new(db_store.clone());

    // Filters compiled to SQL pass exactly the documents `Filter::matches` passes: a keyword
    // query matching every chunk returns each passing document.
    let every = WORDS.iter().filter(|w| !["the", "of", "and"].contains(w)).copied().collect::<Vec<_>>().join(" ");
    for f in filters() {
        let parsed = Filter::parse(&f).unwrap();
        let passing: Vec<_> = docs.iter().filter(|(_, m, _)| parsed.matches(m)).collect();
        let want: HashSet<String> = passing.iter().map(|(id, _, _)| id.clone()).collect();
        let got = search(&db, query("big", &every, None, SearchMode::Keyword, 100, Some(&f))).await;
        let got_docs: HashSet<String> = got.iter().map(|h| h.chunk.document_id.clone()).collect();
        assert!(got_docs.is_subset(&want), "{f}: a document the filter refuses was returned");
        if passing.iter().map(|(_, _, n)| n).sum::<usize>() <= 100 {
            assert_eq!(got_docs, want, "{f}");
        } else {
            assert_eq!(got.len(), 100, "{f}");
        }
        let live = search(&index, query("big", &every, None, SearchMode::Keyword, 100, Some(&f))).await;
        assert_same_ranking(&got, &live, &f.to_string());
    }

    // BM25: the same scores and ranks for queries of one or several terms, repeats included.
    for text in ["protein", "cancer cell expression", "heart heart risk", "the of", "vaccine covid 2019 immune", "mice"]
    {
        for f in [None, Some(json!({"field": "year", "gte": 2019}))] {
            let a = search(&index, query("big", text, None, SearchMode::Keyword, 20, f.as_ref())).await;
            let b = search(&db, query("big", text, None, SearchMode::Keyword, 20, f.as_ref())).await;
            assert_same_ranking(&a, &b, text);
        }
    }

    // Vectors: the exact scan agrees with the in-memory index; the HNSW walk recalls at least
    // 95% of the exact top 10 under a selective filter, and still returns 10.
    let selective = Filter::parse(&json!({"field": "lang", "eq": "de"})).unwrap();
    let mut recalled = 0;
    let mut total = 0;
    for _ in 0..30 {
        let q: Vec<f32> = (0..DIM).map(|_| g.unit()).collect();
        let exact = db_store.vector_search("big", &q, 10, Some(&selective), VectorScan::Exact).await.unwrap();
        let live = search(
            &index,
            query("big", "", Some(&q), SearchMode::Vector, 10, Some(&json!({"field": "lang", "eq": "de"}))),
        )
        .await;
        assert_eq!(
            exact.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            live.iter().map(|h| h.chunk_id).collect::<Vec<_>>()
        );
        let approx = db_store.vector_search("big", &q, 10, Some(&selective), VectorScan::Index).await.unwrap();
        assert_eq!(approx.len(), 10);
        let want: HashSet<u64> = exact.iter().map(|(id, _)| *id).collect();
        recalled += approx.iter().filter(|(id, _)| want.contains(id)).count();
        total += 10;
    }
    assert!(recalled as f64 / total as f64 >= 0.95, "recall@10 {recalled}/{total}");

    // Deletes and replacements keep the statistics (chunk count, lengths, document
    // frequencies) exact.
    for i in (0..240).step_by(7) {
        store.delete_document("big", &format!("doc{i:03}"), 5).await.unwrap();
    }
    let v: Vec<f32> = (0..DIM).map(|_| g.unit()).collect();
    put(&*store, "big", "doc001", json!({"year": 2020}), &[chunk(0, "protein protein cancer mice", &v)]).await;
    index.catch_up().await.unwrap();
    for text in ["protein", "cancer cell expression", "mice vaccine"] {
        let a = search(&index, query("big", text, None, SearchMode::Keyword, 20, None)).await;
        let b = search(&db, query("big", text, None, SearchMode::Keyword, 20, None)).await;
        assert_same_ranking(&a, &b, &format!("after changes: {text}"));
    }

    // Hybrid: both fuse the same lists the same way.
    let q: Vec<f32> = (0..DIM).map(|_| g.unit()).collect();
    let a = search(&index, query("big", "protein binding", Some(&q), SearchMode::Hybrid, 10, None)).await;
    let b = search(&db, query("big", "protein binding", Some(&q), SearchMode::Hybrid, 10, None)).await;
    assert_same_ranking(&a, &b, "hybrid");
    // The legs on two threads find what they find on one, filter or not.
    let two = threaded(&store).await;
    for filter in [None, Some(json!({"field": "year", "gte": 2020}))] {
        let q = || query("big", "protein binding cancer", Some(&q), SearchMode::Hybrid, 10, filter.as_ref());
        let (a, b) = (search(&index, q()).await, search(&two, q()).await);
        assert!(!a.is_empty());
        assert_eq!(ids(&a), ids(&b));
        assert_eq!(a.iter().map(|h| h.score).collect::<Vec<_>>(), b.iter().map(|h| h.score).collect::<Vec<_>>());
    }
}

/// A live index whose hybrid searches run their two legs on two threads at any size.
async fn threaded(store: &Arc<dyn Store>) -> LiveIndex {
    let options = LiveOptions { parallel_from: 0, ..LiveOptions::default() };
    LiveIndex::open_with(store.clone(), options).await.unwrap()
}

/// A database upgraded from in-memory retrieval: its chunks are in storage but not in the
/// search tables. The backfill indexes them, once, whichever node runs it.
#[tokio::test]
async fn chunks_stored_before_are_backfilled() {
    use sqlx::Connection;
    let url = cairn_store::conformance::fresh_pg_database().await;
    let (store, db_store) = postgres_at(&url).await;
    store.create_collection(&collection("old", 3)).await.unwrap();
    put(&*store, "old", "aspirin", json!({"year": 2019}), &[chunk(0, "Aspirin reduces fever", &[1.0, 0.0, 0.0])]).await;
    let statins =
        [chunk(0, "Statins lower cholesterol", &[0.0, 1.0, 0.0]), chunk(1, "Statins and pain", &[0.0, 0.9, 0.1])];
    put(&*store, "old", "statins", json!({"year": 2023}), &statins).await;
    // What an earlier version left: chunks only.
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for sql in [
        "DELETE FROM chunk_vectors",
        "DELETE FROM chunk_terms",
        "DELETE FROM search_terms",
        "UPDATE search_collections SET chunks = 0, total_terms = 0, backfilled = FALSE",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    let db = DatabaseRetriever::new(db_store);
    assert!(search(&db, query("old", "statins", None, SearchMode::Keyword, 5, None)).await.is_empty());

    assert_eq!(db.backfill(&*store).await.unwrap(), 3);
    assert_eq!(db.backfill(&*store).await.unwrap(), 0, "done once");
    let index = LiveIndex::open(store.clone()).await.unwrap();
    for text in ["statins", "pain fever", "cholesterol"] {
        let a = search(&index, query("old", text, None, SearchMode::Keyword, 5, None)).await;
        let b = search(&db, query("old", text, None, SearchMode::Keyword, 5, None)).await;
        assert_same_ranking(&a, &b, text);
        assert!(!b.is_empty(), "{text}");
    }
    let near = search(&db, query("old", "", Some(&[0.0, 1.0, 0.0]), SearchMode::Vector, 1, None)).await;
    assert_eq!(ids(&near), [("statins".to_owned(), 0)]);
}

/// The largest inputs a search accepts, inside PostgreSQL and at once: the longest query (4,096
/// characters of distinct words), the deepest filter (15 of the 16 levels allowed) and the
/// widest (255 of 256 clauses and values). Each is answered, never a database error.
#[tokio::test]
async fn the_largest_accepted_searches_are_answered_concurrently() {
    let (store, db_store) = postgres().await;
    store.create_collection(&collection("col", 3)).await.unwrap();
    for i in 0..20 {
        let text = format!("word{i} shared text number {i}");
        put(
            &*store,
            "col",
            &format!("d{i}"),
            json!({"a": i, "tags": ["x", i]}),
            &[chunk(0, &text, &[1.0, i as f32, 0.5])],
        )
        .await;
    }
    let db: Arc<dyn Retriever> = Arc::new(DatabaseRetriever::new(db_store));
    let mut long = String::new();
    let mut n = 0;
    while long.len() + 12 < 4096 {
        long.push_str(&format!("word{n} "));
        n += 1;
    }
    let deep = (0..11).fold(json!({"field": "a", "gte": 0}), |f, i| match i % 3 {
        0 => json!({"and": [f]}),
        1 => json!({"or": [f, {"field": "missing", "exists": true}]}),
        _ => json!({"not": {"not": f}}),
    });
    let wide = json!({"or": (0..127).map(|i| json!({"field": "tags", "in": [i]})).collect::<Vec<_>>()});
    let mut searches = Vec::new();
    for round in 0..8 {
        for (text, filter) in [(long.as_str(), None), ("shared", Some(&deep)), ("shared text", Some(&wide))] {
            let mode = SearchMode::ALL[round % 3];
            let q = query("col", text, Some(&[1.0, 3.0, 0.5]), mode, 100, filter);
            let db = db.clone();
            searches.push(tokio::spawn(async move { db.search(q).await }));
        }
    }
    for s in searches {
        let found = s.await.unwrap().expect("answered");
        assert!(found.hits.len() <= 100);
    }
    let all = search(&*db, query("col", &long, None, SearchMode::Keyword, 100, None)).await;
    assert_eq!(all.len(), 20, "every document holds one of the query's words");
}

/// A word in every chunk reads few postings inside PostgreSQL (its share of the per-term budget
/// follows its idf), yet a one-word search for it still fills its depth, ranked as the live
/// index ranks it.
#[tokio::test]
async fn a_word_in_every_chunk_still_fills_a_deep_search() {
    let (store, db_store) = postgres().await;
    store.create_collection(&collection("col", 3)).await.unwrap();
    let chunks: Vec<_> = (0..600)
        .map(|i| chunk(i, &format!("common x{i} {}", "pad ".repeat(i as usize % 9)), &[1.0, i as f32, 0.5]))
        .collect();
    put(&*store, "col", "d", json!({}), &chunks).await;
    let db = DatabaseRetriever::new(db_store);
    let index = LiveIndex::open(store.clone()).await.unwrap();
    let a = search(&index, query("col", "common", None, SearchMode::Keyword, 550, None)).await;
    let b = search(&db, query("col", "common", None, SearchMode::Keyword, 550, None)).await;
    assert_eq!(b.len(), 550);
    assert_same_ranking(&a, &b, "common");
}
