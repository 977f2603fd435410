//! `cairn-bench gateway`: starts a fast stand-in upstream and a real `cairn serve` process in
//! front of it, then measures, side by side in one run, direct-to-upstream and through-Cairn
//! latency at fixed rates (non-streaming total time, and time to first byte when streaming),
//! the maximum throughput through Cairn, and Cairn's resident memory idle and after load.

mod agents;
mod ann;
mod cache;
mod embed;
mod generate;
mod guards;
mod jobs;
mod keyword;
mod load;
mod pgsearch;
mod rates;
mod retrieval;
mod search;
mod server_time;
mod startup;
mod traces;
mod upstream;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand};

use crate::load::{Summary, Target};

/// Known key, handed to Cairn through CAIRN_ADMIN_KEY so the benchmark can authenticate.
const BENCH_KEY: &str = "sk-cairn-benchmark00000000000000000000000000000000000000";

#[derive(Parser)]
#[command(about = "Cairn benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// A `cairn serve` process driven at a fixed rate (the cache and tracing benchmarks).
#[derive(clap::Args)]
struct RateRun {
    /// The cairn binary to run.
    #[arg(long, default_value = "target/release/cairn")]
    cairn: PathBuf,
    /// Seconds per fixed-rate run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Requests per second on each path.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
}

#[derive(Subcommand)]
enum Cmd {
    /// What an exact-cache hit costs: beside the upstream direct and Cairn uncached, in one run.
    #[command(after_help = "Example:\n  scripts/bench-cache.sh\n  cairn-bench cache --seconds 10 --rate 1000")]
    Cache {
        #[command(flatten)]
        run: RateRun,
    },
    /// What the guards cost: the classifier and redaction in process, then a guarded alias
    /// beside an unguarded one through the gateway, in one run.
    #[command(
        after_help = "Example:\n  scripts/bench-guards.sh\n  cairn-bench guards --seconds 10 --rate 200 --model ~/.cache/cairn/models/minilm"
    )]
    Guards {
        #[command(flatten)]
        run: RateRun,
        /// The embedding model folder whose word vectors the classifier reads.
        #[arg(long)]
        model: PathBuf,
    },
    /// What tracing adds to a gateway call (off vs metadata capture, one interleaved run), span
    /// ingestion on SQLite, and trace reads with a million spans stored.
    #[command(
        after_help = "Example:\n  scripts/bench-traces.sh\n  cairn-bench traces --seconds 10 --rate 1000 --spans 1000000"
    )]
    Traces {
        #[command(flatten)]
        run: RateRun,
        /// Spans to store before the read queries.
        #[arg(long, default_value_t = 1_000_000)]
        spans: u64,
        /// Spans per write transaction (the span writer's `tracing.batch`).
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Measure storage only (no `cairn serve` overhead runs).
        #[arg(long)]
        storage_only: bool,
        /// The servers' `gateway.usage_commit`: whether answers wait for their usage record.
        #[arg(long, default_value = "before_answer", value_parser = usage_commit)]
        usage_commit: cairn_core::config::UsageCommit,
    },
    /// Latency added by the gateway at fixed rates, and maximum throughput.
    #[command(
        after_help = "Example:\n  scripts/bench-gateway.sh\n  cairn-bench gateway --cairn target/release/cairn --seconds 10"
    )]
    Gateway {
        /// The cairn binary to run.
        #[arg(long, default_value = "target/release/cairn")]
        cairn: PathBuf,
        /// Seconds per fixed-rate run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Fixed rates, requests per second.
        #[arg(long, value_delimiter = ',', default_value = "100,500,1000")]
        rates: Vec<u32>,
        /// Concurrent connections for the maximum-throughput run.
        #[arg(long, default_value_t = 64)]
        workers: usize,
    },
    /// Generation speed of the in-process chat model (prompt tokens/s, TTFT, output tokens/s).
    #[command(
        after_help = "Example:\n  scripts/bench-generate.sh\n  cairn-bench generate --model ~/.cache/cairn/models/smollm2/model.gguf --threads 1,2"
    )]
    Generate {
        /// The GGUF file.
        #[arg(long)]
        model: PathBuf,
        /// Thread counts to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        threads: Vec<usize>,
        /// Runs per thread count.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Tokens to generate per run.
        #[arg(long, default_value_t = 128)]
        max_tokens: u32,
    },
    /// Durable job queue: no-op jobs enqueued and completed per second, enqueue-to-start latency.
    #[command(
        after_help = "Example:\n  scripts/bench-jobs.sh\n  cairn-bench jobs --jobs 50000 --postgres postgres://postgres@127.0.0.1:54329/bench"
    )]
    Jobs {
        /// Jobs per throughput run.
        #[arg(long, default_value_t = 50_000)]
        jobs: u64,
        /// Also run on this PostgreSQL database.
        #[arg(long)]
        postgres: Option<String>,
    },
    /// What a shared rate-limit take costs on PostgreSQL and on Redis, side by side.
    #[command(
        after_help = "Example:\n  cairn-bench rates --postgres \"$(scripts/postgres.sh url)\" --redis \"$(scripts/redis.sh url)\""
    )]
    Rates {
        /// A PostgreSQL server (a fresh database is made on it).
        #[arg(long)]
        postgres: Option<String>,
        /// A Redis server.
        #[arg(long)]
        redis: Option<String>,
        /// Takes per measure.
        #[arg(long, default_value_t = 20_000)]
        takes: usize,
        /// Tasks taking at once in the concurrent measures.
        #[arg(long, default_value_t = 16)]
        tasks: usize,
    },
    /// Retrieval quality (nDCG@10, recall@100, MRR@10) of keyword, vector and hybrid search.
    #[command(
        after_help = "Example:\n  cairn-bench retrieval --dataset ../shared/data/scifact --model ~/.cache/cairn/models/minilm"
    )]
    Retrieval {
        /// A BEIR-format dataset folder.
        #[arg(long, default_value = "../shared/data/scifact")]
        dataset: PathBuf,
        /// The embedding model folder.
        #[arg(long)]
        model: PathBuf,
        /// Inference threads (default: all cores).
        #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
        threads: usize,
        /// Where document embeddings are cached.
        #[arg(long, default_value = "cairn-data/eval-cache")]
        cache: PathBuf,
        /// Also search the corpus inside PostgreSQL (a server URL; a fresh database is made).
        #[arg(long)]
        postgres: Option<String>,
    },
    /// The embedded HNSW index's recall, queries per second, build time and memory (the peers,
    /// FAISS and hnswlib, run on the files it leaves: `scripts/bench-ann.sh` runs both).
    #[command(after_help = "Example:\n  cairn-bench ann --vectors 1000000 --out target/ann-bench")]
    Ann {
        /// Where the vectors, queries and ground truth are written.
        #[arg(long, default_value = "target/ann-bench")]
        out: PathBuf,
        /// Vectors indexed.
        #[arg(long, default_value_t = 1_000_000)]
        vectors: usize,
        /// Queries.
        #[arg(long, default_value_t = 1000)]
        queries: usize,
        /// Vector dimensions.
        #[arg(long, default_value_t = 384)]
        dim: usize,
        /// Neighbours per node (HNSW's M).
        #[arg(long, default_value_t = 16)]
        m: usize,
        /// Candidates kept while building.
        #[arg(long, default_value_t = 100)]
        ef_construction: usize,
        /// Candidates kept while searching, one row each (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "16,32,64,128")]
        ef_search: Vec<usize>,
        /// Keep cairn-ann's saved index in `--out` and load it on the next run instead of
        /// building it again (the build time and memory are then not measured).
        #[arg(long)]
        keep_index: bool,
    },
    /// Query latency of keyword, vector and hybrid search (embedded, and inside PostgreSQL),
    /// and a node's start-up time and memory over the same corpus.
    #[command(
        after_help = "Example:\n  cairn-bench search --chunks 1000000 --postgres URL --cairn target/release/cairn"
    )]
    Search {
        /// A BEIR-format dataset folder (texts and queries).
        #[arg(long, default_value = "../shared/data/scifact")]
        dataset: PathBuf,
        /// Chunks to index.
        #[arg(long, default_value_t = 100_000)]
        chunks: usize,
        /// Vector dimensions.
        #[arg(long, default_value_t = 384)]
        dim: usize,
        /// Also search the chunks inside PostgreSQL (a server URL; a fresh database is made).
        #[arg(long)]
        postgres: Option<String>,
        /// Also time the start-up of this `cairn` binary's `serve` over the corpus.
        #[arg(long)]
        cairn: Option<PathBuf>,
        /// Leave out the embedded (SQLite, live index) runs: PostgreSQL only.
        #[arg(long, requires = "postgres")]
        skip_embedded: bool,
        /// Keep the embedded run's data (SQLite file, saved HNSW graph) in this folder instead
        /// of a temporary one; a later run given the same folder, `--chunks` and `--dim`
        /// searches it without writing or rebuilding (start-up rows then time saved graphs only).
        #[arg(long, conflicts_with = "skip_embedded")]
        embedded_dir: Option<PathBuf>,
        /// The `--postgres` URL names a database an earlier run left holding this corpus
        /// (same `--chunks` and `--dim`): search it without writing.
        #[arg(long, requires = "postgres")]
        loaded: bool,
    },
    /// The embedded keyword index alone: pruned top-k search beside exhaustive scoring.
    #[command(after_help = "Example:\n  cairn-bench keyword --chunks 1000000")]
    Keyword {
        /// A BEIR-format dataset folder (texts and queries).
        #[arg(long, default_value = "../shared/data/scifact")]
        dataset: PathBuf,
        /// Chunks to index.
        #[arg(long, default_value_t = 1_000_000)]
        chunks: usize,
    },
    /// Runtime overhead per agent step (model and tool time excluded) over many concurrent
    /// runs, and journal bytes per step at 10 and 100 steps.
    #[command(after_help = "Example:\n  cairn-bench agents --cairn target/release/cairn --runs 200 --steps 10")]
    Agents {
        /// The cairn binary to run.
        #[arg(long, default_value = "target/release/cairn")]
        cairn: PathBuf,
        /// Concurrent runs.
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// Model calls per run (all but the last ask for one tool call).
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// The stand-in model's latency per call, ms.
        #[arg(long, default_value_t = 200)]
        latency_ms: u64,
        /// A Python with `langgraph` and `langgraph-checkpoint-sqlite`: runs the same workload
        /// on LangGraph with its SQLite checkpointer, side by side.
        #[arg(long)]
        peer: Option<PathBuf>,
    },
    /// Sentences per second of the in-process embedding model at batch 1 and 32.
    #[command(
        after_help = "Example:\n  scripts/bench-embed.sh\n  cairn-bench embed --model ~/.cache/cairn/models/minilm --threads 2"
    )]
    Embed {
        /// The model folder.
        #[arg(long)]
        model: PathBuf,
        /// SciFact corpus to cut sentences from.
        #[arg(long, default_value = "../shared/data/scifact/corpus.jsonl")]
        corpus: PathBuf,
        /// Inference threads (default: all cores).
        #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
        threads: usize,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

/// Kills the child process when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

async fn wait_ready(client: &load::HttpClient, url: &str) -> Result<()> {
    wait_ready_within(client, url, Duration::from_secs(30)).await
}

/// Polls `url` until it answers a success, for at most `within`.
async fn wait_ready_within(client: &load::HttpClient, url: &str, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(resp) = client.get(url.parse()?).await {
            if resp.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("cairn did not become ready at {url}")
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Gateway { cairn, seconds, rates, workers } => gateway(cairn, seconds, rates, workers).await,
        Cmd::Agents { cairn, runs, steps, latency_ms, peer } => agents::run(cairn, runs, steps, latency_ms, peer).await,
        Cmd::Embed { model, corpus, threads, seconds } => embed::run(&model, &corpus, threads, seconds),
        Cmd::Generate { model, threads, runs, max_tokens } => generate::run(&model, &threads, runs, max_tokens).await,
        Cmd::Jobs { jobs, postgres } => jobs::run(jobs, postgres).await,
        Cmd::Rates { postgres, redis, takes, tasks } => rates::run(postgres, redis, takes, tasks.max(1)).await,
        Cmd::Retrieval { dataset, model, threads, cache, postgres } => {
            retrieval::run(&dataset, &model, threads, &cache, postgres).await
        }
        Cmd::Ann { out, vectors, queries, dim, m, ef_construction, ef_search, keep_index } => {
            let params = cairn_ann::Params { m, ef_construction, ef_search: 64, graph_from: 0 };
            ann::run(&out, vectors, queries, dim, params, &ef_search, keep_index)
        }
        Cmd::Search { dataset, chunks, dim, postgres, cairn, skip_embedded, embedded_dir, loaded } => {
            let postgres = postgres.map(|url| search::Postgres { url, loaded });
            let embedded = (!skip_embedded).then_some(search::Embedded { dir: embedded_dir });
            search::run(&dataset, chunks, dim, postgres, cairn.as_deref(), embedded).await
        }
        Cmd::Keyword { dataset, chunks } => keyword::run(&dataset, chunks),
        Cmd::Cache { run } => cache::run(run.cairn, run.seconds, run.rate).await,
        Cmd::Guards { run, model } => guards::run(run.cairn, run.seconds, run.rate, model).await,
        Cmd::Traces { run, spans, batch, storage_only, usage_commit } => {
            let servers = traces::Servers { cairn: run.cairn, usage_commit };
            traces::run(servers, run.seconds, run.rate, spans, batch, storage_only).await
        }
    }
}

/// Reads a `gateway.usage_commit` value as the configuration spells it.
fn usage_commit(s: &str) -> std::result::Result<cairn_core::config::UsageCommit, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("'{s}' is not a usage_commit (before_answer or after_answer)"))
}

/// Starts `cairn serve` with `extra` config (TOML) and a `bench` model on the OpenAI-style
/// upstream at `upstream`, on a free port with its data in `dir`, the admin key `BENCH_KEY`;
/// returns the process, its port and its config file once it is ready.
async fn start_cairn(
    cairn: &std::path::Path,
    dir: &std::path::Path,
    upstream: std::net::SocketAddr,
    extra: &str,
) -> Result<(Server, u16, PathBuf)> {
    let port = free_port()?;
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:{port}\"\n[log]\nlevel = \"warn\"\n[storage]\ndata_dir = \"{}\"\n{extra}\n\
             [providers.up]\nkind = \"openai\"\nbase_url = \"http://{upstream}/v1\"\n\
             [models.bench]\ntargets = [{{ provider = \"up\", model = \"bench\", input_usd_per_mtok = 0.15, output_usd_per_mtok = 0.6 }}]\n",
            dir.join("data").display()
        ),
    )?;
    let server = spawn_serve(cairn, &config)?;
    wait_ready(&load::client(), &format!("http://127.0.0.1:{port}/readyz")).await?;
    Ok((server, port, config))
}

/// Spawns `cairn serve` with `config` and the admin key `BENCH_KEY` (stdout dropped).
fn spawn_serve(cairn: &std::path::Path, config: &std::path::Path) -> Result<Server> {
    let child = Command::new(cairn)
        .args(["serve", "--config"])
        .arg(config)
        .env("CAIRN_ADMIN_KEY", BENCH_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {} (build it with: cargo build --release -p cairn)", cairn.display()))?;
    Ok(Server(child))
}

/// The gateway benchmark (see the module docs).
async fn gateway(cairn: PathBuf, seconds: u64, rates: Vec<u32>, workers: usize) -> Result<()> {
    let upstream = upstream::start().await?;
    let dir = tempfile::tempdir()?;
    let (server, port, config) = start_cairn(&cairn, dir.path(), upstream, "").await?;
    let pid = server.0.id();
    let client = load::client();
    // Calls go through a member key with a monthly budget, so every one is admitted by a
    // budget reservation in storage and settled by its usage record: the full accounting path.
    let created = Command::new(&cairn)
        .args(["keys", "create", "--tenant", "default", "--role", "member", "--budget-usd", "1000000", "--config"])
        .arg(&config)
        .stderr(Stdio::null())
        .output()
        .context("creating the benchmark's budgeted key")?;
    let mut member_key = String::from_utf8(created.stdout)?.trim().to_owned();
    if !member_key.starts_with("sk-cairn-") {
        bail!("cairn keys create printed no key");
    }
    // CAIRN_BENCH_NO_BUDGET=1 measures the fast path of keys without a budget instead.
    if std::env::var_os("CAIRN_BENCH_NO_BUDGET").is_some() {
        member_key = BENCH_KEY.into();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = rss_mb(pid);

    let body = |stream: bool| {
        Bytes::from(format!(
            r#"{{"model":"bench","stream":{stream},"messages":[{{"role":"system","content":"You are terse."}},{{"role":"user","content":"Say hello to the benchmark."}}]}}"#
        ))
    };
    let direct =
        |stream| Target { url: format!("http://{upstream}/v1/chat/completions"), key: None, body: body(stream) };
    let cairn_t = |stream| Target {
        url: format!("http://127.0.0.1:{port}/v1/chat/completions"),
        key: Some(member_key.clone()),
        body: body(stream),
    };
    // Warm up connection pools on both paths.
    let _ = load::paired_rate(&direct(false), &cairn_t(false), 200, Duration::from_secs(1), false).await;

    let dur = Duration::from_secs(seconds);
    println!("## Gateway overhead (cairn-bench gateway, {seconds}s per run, direct and via Cairn interleaved)\n");
    println!("| mode | rate (req/s each path) | direct p50 | direct p99 | via Cairn p50 | via Cairn p99 | added p50 | added p99 | generator lag p99 | errors |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &rate in &rates {
        for (mode, stream) in [("non-streaming, total", false), ("streaming, time to first byte", true)] {
            let (d, c, lag) = load::paired_rate(&direct(stream), &cairn_t(stream), rate, dur, stream).await?;
            row(mode, rate, &d, &c, lag);
        }
    }
    let max = load::max_throughput(&client, &cairn_t(false), workers, dur).await;
    let max_direct = load::max_throughput(&client, &direct(false), workers, dur).await;
    let loaded_rss = rss_mb(pid);
    println!("\n| measure | value |\n|---|---|");
    println!(
        "| max throughput via Cairn ({workers} connections, non-streaming) | {:.0} req/s ({} errors) |",
        max.throughput, max.errors
    );
    println!("| max throughput direct to the stand-in (same load generator) | {:.0} req/s |", max_direct.throughput);
    println!("| Cairn resident memory, idle after start | {idle_rss:.1} MB |");
    println!("| Cairn resident memory, after the runs | {loaded_rss:.1} MB |");
    drop(server);
    Ok(())
}

fn row(mode: &str, rate: u32, d: &Summary, c: &Summary, lag: f64) {
    println!(
        "| {mode} | {rate} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {lag:.2} ms | {} |",
        d.p50,
        d.p99,
        c.p50,
        c.p99,
        c.p50 - d.p50,
        c.p99 - d.p99,
        d.errors + c.errors
    );
}
