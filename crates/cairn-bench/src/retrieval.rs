//! `cairn-bench retrieval`: retrieval quality of the keyword, vector and hybrid retrievers on a
//! BEIR dataset, with the in-process embedding model. Document embeddings are cached on disk
//! (they take minutes on two cores), keyed by dataset, model and corpus size.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use cairn_core::knowledge::{embedding_from_bytes, embedding_to_bytes};
use cairn_core::search::{Bm25Params, VectorScan};
use cairn_knowledge::beir::BeirDataset;
use cairn_knowledge::eval::{mrr_at, ndcg_at, recall_at};
use cairn_knowledge::retrieve::FUSION_DEPTH;
use cairn_knowledge::{fuse, Analyzer, AnnIndex, AnnParams, Bm25Index, Fusion};

use crate::pgsearch::{self, Doc, COLLECTION};
use cairn_models::{Embedder, EmbedderOptions};

/// Candidates each retriever hands to fusion.
const DEPTH: usize = 1000;
/// Candidate depths per retriever compared for hybrid fusion (the service's is `FUSION_DEPTH`).
const FUSION_DEPTHS: [usize; 4] = [50, 100, 150, 200];

/// The corpus embeddings, from the cache or computed (and cached).
fn corpus_vectors(data: &BeirDataset, embedder: &Embedder, cache: &Path) -> Result<Vec<Vec<f32>>> {
    if let Ok(bytes) = std::fs::read(cache) {
        let floats = embedding_from_bytes(&bytes);
        if floats.len().is_multiple_of(data.corpus.len()) && !floats.is_empty() {
            let dim = floats.len() / data.corpus.len();
            eprintln!("[retrieval] using cached embeddings {}", cache.display());
            return Ok(floats.chunks(dim).map(<[f32]>::to_vec).collect());
        }
    }
    let start = Instant::now();
    let texts: Vec<String> = data.corpus.iter().map(|d| format!("{} {}", d.title, d.text)).collect();
    let mut out = Vec::with_capacity(texts.len());
    for (i, chunk) in texts.chunks(32).enumerate() {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        out.extend(embedder.embed(&refs));
        if i % 20 == 0 {
            eprintln!(
                "[retrieval] embedded {}/{} documents ({:.0} s)",
                out.len(),
                texts.len(),
                start.elapsed().as_secs_f64()
            );
        }
    }
    if let Some(dir) = cache.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(cache, embedding_to_bytes(&out.concat())).with_context(|| format!("writing {}", cache.display()))?;
    Ok(out)
}

/// Mean nDCG@10, recall@100 and MRR@10 of `ranked` lists (document numbers) per query.
fn score(data: &BeirDataset, ranked: &[Vec<(u64, f32)>]) -> (f64, f64, f64) {
    let (mut ndcg, mut recall, mut mrr) = (0.0, 0.0, 0.0);
    for ((qid, _), hits) in data.queries.iter().zip(ranked) {
        let ids: Vec<String> = hits.iter().map(|(d, _)| data.corpus[*d as usize].id.clone()).collect();
        let rel = &data.qrels[qid];
        ndcg += ndcg_at(&ids, rel, 10);
        recall += recall_at(&ids, rel, 100);
        mrr += mrr_at(&ids, rel, 10);
    }
    let n = data.queries.len() as f64;
    (ndcg / n, recall / n, mrr / n)
}

/// Runs the evaluation and prints a Markdown table; with `postgres` (a server URL), the same
/// corpus is also searched inside a fresh PostgreSQL database, side by side.
pub async fn run(
    dataset: &Path,
    model: &Path,
    threads: usize,
    cache_dir: &Path,
    postgres: Option<String>,
) -> Result<()> {
    let data = BeirDataset::load(dataset).with_context(|| format!("loading {}", dataset.display()))?;
    let embedder =
        Embedder::load(model, &EmbedderOptions { threads }).with_context(|| format!("loading {}", model.display()))?;
    let name = dataset.file_name().and_then(|n| n.to_str()).unwrap_or("dataset");
    let model_name = model.file_name().and_then(|n| n.to_str()).unwrap_or("model");
    let cache: PathBuf = cache_dir.join(format!("{name}-{model_name}-{}.f32", data.corpus.len()));
    let vectors = corpus_vectors(&data, &embedder, &cache)?;

    let mut keyword = Bm25Index::default();
    let mut vector = AnnIndex::new(vectors.first().map_or(384, Vec::len), AnnParams::default());
    for (n, (d, v)) in data.corpus.iter().zip(&vectors).enumerate() {
        keyword.insert(n as u64, &format!("{}\n{}", d.title, d.text));
        vector.insert(n as u64, v)?;
    }
    let queries: Vec<&str> = data.queries.iter().map(|(_, t)| t.as_str()).collect();
    let query_vectors = embedder.embed(&queries);
    let kw: Vec<_> = queries.iter().map(|q| keyword.search(q, DEPTH, &|_| true)).collect();
    let vec: Vec<_> = query_vectors.iter().map(|q| vector.search(q, DEPTH, None)).collect::<Result<_, _>>()?;

    println!("## Retrieval quality ({name}, {} documents, {} queries)\n", data.corpus.len(), data.queries.len());
    println!("| retriever | nDCG@10 | recall@100 | MRR@10 |\n|---|---|---|---|");
    let row = |label: &str, ranked: &[Vec<(u64, f32)>]| {
        let (n, r, m) = score(&data, ranked);
        println!("| {label} | {n:.4} | {r:.4} | {m:.4} |");
    };
    row("keyword (BM25)", &kw);
    row("vector (exact cosine)", &vec);
    let fused =
        |f: Fusion| -> Vec<Vec<(u64, f32)>> { kw.iter().zip(&vec).map(|(a, b)| fuse(f, a, b, DEPTH)).collect() };
    row("hybrid: RRF k=60, equal weights", &fused(Fusion::Rrf { k: 60.0, keyword_weight: 0.5 }));
    for w in [0.3f32, 0.4, 0.5, 0.6] {
        row(&format!("hybrid: convex, keyword weight {w}"), &fused(Fusion::Convex { keyword_weight: w }));
    }
    // Each retriever's list cut to the depth a hybrid search asks of it (min-max normalisation
    // depends on where a list ends, so the depth is part of the fusion).
    let at_depth = |a: &[Vec<(u64, f32)>], b: &[Vec<(u64, f32)>], depth: usize| -> Vec<Vec<(u64, f32)>> {
        let cut = |l: &Vec<(u64, f32)>| l[..l.len().min(depth)].to_vec();
        a.iter().zip(b).map(|(a, b)| fuse(Fusion::Convex { keyword_weight: 0.5 }, &cut(a), &cut(b), depth)).collect()
    };
    let service = |depth: usize| if depth == FUSION_DEPTH { " (the service's)" } else { "" };
    for depth in FUSION_DEPTHS {
        row(&format!("hybrid: convex 0.5, each list cut to {depth}{}", service(depth)), &at_depth(&kw, &vec, depth));
    }
    if let Some(url) = postgres {
        let docs = data
            .corpus
            .iter()
            .zip(&vectors)
            .enumerate()
            .map(|(n, (d, v))| Doc {
                id: n.to_string(),
                metadata: serde_json::json!({}),
                chunks: vec![(format!("{}\n{}", d.title, d.text), v.clone())],
            })
            .collect();
        let (store, search, _) = pgsearch::fresh(&url).await?;
        let start = Instant::now();
        pgsearch::load(&store, vector.dim() as u32, docs, None).await?;
        eprintln!("[retrieval] loaded PostgreSQL in {:.1} s", start.elapsed().as_secs_f64());
        let doc_of = pgsearch::documents_of_chunks(&store).await?;
        let number = |hits: Vec<(u64, f32)>| -> Vec<(u64, f32)> {
            hits.into_iter()
                .filter_map(|(id, s)| doc_of.get(&id).and_then(|d| d.parse().ok()).map(|n| (n, s)))
                .collect()
        };
        let analyzer = Analyzer::english();
        let (mut pkw, mut pvec, mut pexact) = (Vec::new(), Vec::new(), Vec::new());
        for (q, qv) in queries.iter().zip(&query_vectors) {
            let terms = analyzer.terms(q);
            pkw.push(number(search.keyword_search(COLLECTION, &terms, Bm25Params::default(), DEPTH, None).await?));
            pvec.push(number(search.vector_search(COLLECTION, qv, DEPTH, None, VectorScan::Index).await?));
            pexact.push(number(search.vector_search(COLLECTION, qv, DEPTH, None, VectorScan::Exact).await?));
        }
        row("PostgreSQL keyword (BM25 over the chunk_terms table)", &pkw);
        row("PostgreSQL vector (pgvector HNSW, m 16, ef_search 1000)", &pvec);
        row("PostgreSQL vector (exact scan)", &pexact);
        let hybrid: Vec<_> =
            pkw.iter().zip(&pvec).map(|(a, b)| fuse(Fusion::Convex { keyword_weight: 0.5 }, a, b, DEPTH)).collect();
        row("PostgreSQL hybrid: convex, keyword weight 0.5, lists of 1,000", &hybrid);
        // Searched at each depth, as a hybrid search asks: a keyword search's budget of postings
        // and the vector index's ef depend on it, so these are not the lists above cut short.
        for depth in FUSION_DEPTHS {
            let (mut kw_at, mut vec_at) = (Vec::new(), Vec::new());
            for (q, qv) in queries.iter().zip(&query_vectors) {
                let terms = analyzer.terms(q);
                kw_at
                    .push(number(search.keyword_search(COLLECTION, &terms, Bm25Params::default(), depth, None).await?));
                vec_at.push(number(search.vector_search(COLLECTION, qv, depth, None, VectorScan::Index).await?));
            }
            if depth == FUSION_DEPTH {
                row(&format!("PostgreSQL keyword, searched at depth {depth}"), &kw_at);
            }
            let label =
                format!("PostgreSQL hybrid: convex 0.5, each retriever searched at depth {depth}{}", service(depth));
            row(&label, &at_depth(&kw_at, &vec_at, depth));
        }
    }
    Ok(())
}
