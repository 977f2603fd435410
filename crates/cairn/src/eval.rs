//! `cairn eval retrieval`: retrieval quality, ingestion throughput and query latency of the
//! real pipeline on a BEIR dataset. The corpus goes in through the knowledge service (pending
//! documents, `knowledge.ingest` jobs run by an in-process worker: parse, redact, chunk, embed,
//! store, index) into a throwaway SQLite database, and every query through the search service,
//! so the figures are what a user of Cairn gets. The same chunk texts are then embedded alone,
//! through the same embedder and with the same concurrency, to show what the pipeline costs
//! over embedding.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use cairn_core::config::Config;
use cairn_core::jobs::JobState;
use cairn_core::knowledge::PiiMode;
use cairn_core::tenancy::{KeyLimits, Principal, Role};
use cairn_core::CallContext;
use cairn_gateway::adapters::GatewayEmbedder;
use cairn_guard::{PiiPolicy, Redactor};
use cairn_jobs::Worker;
use cairn_knowledge::beir::BeirDataset;
use cairn_knowledge::chunk::{index_text, ChunkOptions};
use cairn_knowledge::embed::TextEmbedder;
use cairn_knowledge::eval::{mrr_at, ndcg_at, recall_at};
use cairn_knowledge::ingest::INGEST_JOB;
use cairn_knowledge::prepare::{prepare_text, Preparation};
use cairn_knowledge::retrieve::SearchMode;
use cairn_knowledge::service::{CreateCollection, NewDocument, SearchRequest};
use futures::StreamExt;
use serde_json::Map;

use crate::cli::EvalRetrievalArgs;

/// Documents per `add_documents` call (the API's limit).
const BATCH: usize = 1000;
/// Chunks per embedding call, as the ingestion job sends them.
const EMBED_BATCH: usize = 32;

fn operator() -> Principal {
    Principal {
        key_id: "system:eval".into(),
        tenant_id: "eval".into(),
        role: Role::Owner,
        limits: KeyLimits::default(),
    }
}

/// Runs the evaluation (see the module docs) and prints a Markdown report.
pub async fn retrieval(mut config: Config, args: EvalRetrievalArgs) -> Result<()> {
    let data = BeirDataset::load(&args.dataset).with_context(|| format!("loading {}", args.dataset.display()))?;
    let scratch = scratch_dir()?;
    config.storage.url = format!("sqlite://{}", scratch.join("eval.db").display());
    config.jobs.workers_in_serve = false;
    let result = run(config, &args, &data).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn scratch_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("cairn-eval-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

async fn run(config: Config, args: &EvalRetrievalArgs, data: &BeirDataset) -> Result<()> {
    let state = cairn::compose::services(&config).await.map_err(|e| anyhow!(e))?;
    // The baseline embeds with as many calls in flight as ingestion jobs ran at once.
    let concurrency = config.jobs.concurrency.get(INGEST_JOB).copied().unwrap_or(config.jobs.default_concurrency);
    let me = CallContext::new(operator(), "eval");
    let create = CreateCollection {
        name: "eval".into(),
        embedding_model: args.embedding_model.clone(),
        chunk_max_tokens: Some(args.chunk_tokens),
        chunk_overlap_tokens: Some(args.chunk_overlap),
        pii: Some(PiiMode::Off),
        tenant_id: None,
        pii_exempt_fields: Vec::new(),
    };
    let col = state.knowledge.create_collection(&me, create).await.map_err(|e| anyhow!("{e}"))?;
    let name = args.dataset.file_name().and_then(|n| n.to_str()).unwrap_or("dataset").to_owned();
    eprintln!("{name}: {} documents, {} queries, model {}", data.corpus.len(), data.queries.len(), col.embedding_model);

    // Ingestion, end to end: from the first upload to the last job's end.
    let worker = Worker::new(state.jobs.clone(), "eval", None);
    worker.start();
    let started = Instant::now();
    let mut jobs = Vec::with_capacity(data.corpus.len());
    for part in data.corpus.chunks(BATCH) {
        let docs = part
            .iter()
            .map(|d| NewDocument {
                id: Some(d.id.clone()),
                // The title leads the text, as BEIR evaluations index it.
                text: format!("# {}\n\n{}", d.title, d.text),
                title: Some(d.title.clone()),
                source: None,
                metadata: None,
            })
            .collect();
        let accepted = state.knowledge.add_documents(&me, &col.id, docs).await.map_err(|e| anyhow!("{e}"))?;
        jobs.extend(accepted.into_iter().map(|a| a.job_id));
    }
    let chunks = wait_for(&state.jobs, &me.principal, &jobs).await?;
    let ingest_secs = started.elapsed().as_secs_f64();
    worker.shutdown(Duration::from_secs(5)).await;
    eprintln!("ingested {chunks} chunks in {ingest_secs:.1} s");

    let baseline = if args.skip_baseline {
        None
    } else {
        Some(embed_alone(&state, &col, data, args.baseline_docs, concurrency).await?)
    };

    let mut rows = Vec::new();
    for mode in SearchMode::ALL {
        let mut latencies = Vec::with_capacity(data.queries.len());
        let (mut ndcg, mut recall, mut mrr) = (0.0, 0.0, 0.0);
        for (qid, text) in &data.queries {
            let req =
                SearchRequest { query: text.clone(), mode: Some(mode), top_k: Some(100), filter: None, also: vec![] };
            let t = Instant::now();
            let hits = state.knowledge.search(&me, &col.id, req).await.map_err(|e| anyhow!("{e}"))?;
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            // Chunks to documents, best chunk first.
            let mut ranked: Vec<String> = Vec::new();
            for h in hits {
                if !ranked.contains(&h.document_id) {
                    ranked.push(h.document_id);
                }
            }
            let rel = &data.qrels[qid];
            ndcg += ndcg_at(&ranked, rel, 10);
            recall += recall_at(&ranked, rel, 100);
            mrr += mrr_at(&ranked, rel, 10);
        }
        let n = data.queries.len() as f64;
        latencies.sort_by(f64::total_cmp);
        rows.push((mode.as_str(), ndcg / n, recall / n, mrr / n, latencies));
    }

    println!(
        "## Retrieval through the pipeline ({name}, {} documents, {} queries)\n",
        data.corpus.len(),
        data.queries.len()
    );
    println!("| mode | nDCG@10 | recall@100 | MRR@10 | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|---|---|");
    for (mode, ndcg, recall, mrr, lat) in &rows {
        println!(
            "| {mode} | {ndcg:.4} | {recall:.4} | {mrr:.4} | {:.2} | {:.2} | {:.2} |",
            percentile(lat, 0.50),
            percentile(lat, 0.95),
            percentile(lat, 0.99)
        );
    }
    println!("\nQuery latency is the search service's, query embedding included.\n");
    println!("## Ingestion ({chunks} chunks, chunk budget {} tokens)\n", args.chunk_tokens);
    println!("| path | seconds | chunks/s |\n|---|---|---|");
    let pipeline = chunks as f64 / ingest_secs;
    println!("| pipeline, end to end (jobs, parse, chunk, embed, store, index) | {ingest_secs:.1} | {pipeline:.1} |");
    if let Some((n, secs)) = baseline {
        let raw = n as f64 / secs;
        println!(
            "| embedding alone: the same chunks of the first {} documents, same concurrency | {secs:.1} | {raw:.1} |",
            args.baseline_docs.min(data.corpus.len())
        );
        println!("\nPipeline cost over embedding alone: {:+.1}%", (raw / pipeline - 1.0) * 100.0);
    }
    Ok(())
}

/// Waits until every job ended; returns the chunks they stored. Fails if any job failed.
async fn wait_for(jobs: &cairn_jobs::JobService, me: &Principal, ids: &[String]) -> Result<u64> {
    let mut chunks = 0u64;
    let mut next = 0;
    let mut last_report = Instant::now();
    while next < ids.len() {
        let detail = jobs.get(me, &ids[next]).await.map_err(|e| anyhow!("{e}"))?;
        if !detail.job.state.is_final() {
            if last_report.elapsed() > Duration::from_secs(5) {
                eprintln!("  {next}/{} documents ingested", ids.len());
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        if detail.job.state != JobState::Succeeded {
            let why = detail.attempts_history.last().and_then(|a| a.error.clone()).unwrap_or_default();
            bail!("ingesting {} failed: {why}", ids[next]);
        }
        chunks += detail.job.result.as_ref().and_then(|r| r["chunks"].as_u64()).unwrap_or(0);
        next += 1;
    }
    Ok(chunks)
}

/// Embeds the chunk texts of the first `docs` documents directly, as the pipeline cut them:
/// (chunks, seconds). Throughputs compare as rates, so a sample keeps the run short.
async fn embed_alone(
    state: &cairn_api::AppState,
    col: &cairn_core::knowledge::Collection,
    data: &BeirDataset,
    docs: usize,
    concurrency: usize,
) -> Result<(usize, f64)> {
    let embedder: Arc<dyn TextEmbedder> = Arc::new(GatewayEmbedder(state.gateway.clone()));
    let redactor = Redactor::new(PiiPolicy::Off);
    let tokens = embedder.tokenizer(&col.embedding_model).await;
    let counter = |t: &str| tokens(t);
    let prep = Preparation { chunking: ChunkOptions::of(col), redactor: &redactor, counter: &counter };
    let texts: Vec<String> = data
        .corpus
        .iter()
        .take(docs)
        .flat_map(|d| {
            let p = prepare_text(format!("# {}\n\n{}", d.title, d.text), Some(d.title.clone()), Map::new(), &prep);
            p.chunks.into_iter().map(|c| index_text(&c.headings, &c.text))
        })
        .collect();
    let started = Instant::now();
    let batches: Vec<Vec<String>> = texts.chunks(EMBED_BATCH).map(<[String]>::to_vec).collect();
    let mut calls = futures::stream::iter(batches)
        .map(|b| {
            let e = embedder.clone();
            let model = col.embedding_model.clone();
            let ctx = CallContext::new(operator(), "eval-baseline");
            async move { e.embed(&ctx, &model, &b).await }
        })
        .buffer_unordered(concurrency);
    while let Some(r) = calls.next().await {
        r.map_err(|e| anyhow!("embedding: {e}"))?;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!("embedded the same {} chunks alone in {secs:.1} s", texts.len());
    Ok((texts.len(), secs))
}

/// The `q` quantile of sorted `v`.
fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}
