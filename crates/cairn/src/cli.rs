//! Command-line interface definition.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Cairn: the AI backend stack in one binary.
#[derive(Parser, Debug)]
#[command(name = "cairn", version, about)]
pub struct Cli {
    /// Config file (TOML). Every key can be overridden by CAIRN_<SECTION>__<KEY> variables.
    #[arg(long, short, global = true, env = "CAIRN_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server.
    #[command(
        after_help = "Examples:\n  cairn serve\n  cairn serve --config cairn.toml\n  CAIRN_SERVER__BIND=0.0.0.0:8080 cairn serve"
    )]
    Serve,
    /// Run job workers only (no HTTP server), sharing the configured storage with other nodes.
    #[command(
        after_help = "Examples:\n  cairn worker\n  cairn worker --types webhook --concurrency 32 --metrics-bind 127.0.0.1:9464\n  CAIRN_STORAGE__URL=postgres://db/cairn cairn worker"
    )]
    Worker(WorkerArgs),
    /// Inspect and manage durable jobs (works directly on the configured storage).
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Create, list and revoke API keys (works directly on the configured storage).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create and list tenants.
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Add files and folders to a collection of a running Cairn, with a progress bar.
    #[command(
        after_help = "Examples:\n  cairn ingest docs/ --collection handbook\n  cairn ingest a.pdf b.md --collection papers --metadata '{\"team\": \"legal\"}'\n  CAIRN_URL=http://cairn:8080 CAIRN_API_KEY=sk-cairn-... cairn ingest ./wiki --collection wiki"
    )]
    Ingest(IngestArgs),
    /// Ask a collection of a running Cairn a question; prints the answer and its citations.
    #[command(
        after_help = "Examples:\n  cairn ask --collection handbook \"How many vacation days do we get?\"\n  cairn ask --collection papers --model fast --top-k 8 \"What lowers LDL?\""
    )]
    Ask(AskArgs),
    /// Create, list and show agents of a running Cairn.
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// Run an agent of a running Cairn, streaming the run and asking for approvals and client
    /// tool outputs on the terminal.
    #[command(
        after_help = "Examples:\n  cairn run support \"Refund order 7\"\n  cairn run support --thread thr_... \"And order 8?\"\n  echo a | cairn run support \"Refund order 7\"   # answers prompts from stdin"
    )]
    Run(RunArgs),
    /// Measure Cairn on benchmark datasets.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Check the audit log (works directly on the configured storage).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Fetch and list the models that run inside Cairn.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Train and measure the prompt-injection classifier.
    #[command(subcommand)]
    Guard(GuardCommand),
    /// Train and measure the cost router.
    #[command(subcommand)]
    Route(RouteCommand),
}

/// `cairn route ...`
#[derive(Subcommand, Debug)]
pub enum RouteCommand {
    /// Fit the cost router's weights on the labelled set's `train` split and write them (the
    /// built-in ones live at crates/cairn-gateway/data/routing-model.json).
    #[command(
        after_help = "Example:\n  cairn route train\n  cairn route train --set my-requests.jsonl --out my-router.json"
    )]
    Train {
        /// The labelled set (JSON lines: text, label small|large, split).
        #[arg(long, default_value = "crates/cairn-gateway/data/routing-set.jsonl")]
        set: std::path::PathBuf,
        /// Where to write the weights.
        #[arg(long, default_value = "crates/cairn-gateway/data/routing-model.json")]
        out: std::path::PathBuf,
        /// Embedding model whose word vectors compare requests by meaning.
        #[arg(long, default_value = "minilm")]
        model: String,
    },
    /// Report accuracy, the share sent to the large model per threshold, and decision time.
    #[command(after_help = "Example:\n  cairn route eval\n  cairn route eval --set held-out.jsonl")]
    Eval {
        /// The labelled set.
        #[arg(long, default_value = "crates/cairn-gateway/data/routing-set.jsonl")]
        set: std::path::PathBuf,
        /// Weights to measure; default: the built-in ones.
        #[arg(long)]
        weights: Option<std::path::PathBuf>,
        /// Embedding model whose word vectors compare requests by meaning.
        #[arg(long, default_value = "minilm")]
        model: String,
        /// Which split to measure.
        #[arg(long, default_value = "test")]
        split: String,
    },
}

/// `cairn guard ...`
#[derive(Subcommand, Debug)]
pub enum GuardCommand {
    /// Train the injection classifier on the labelled set's `train` split and write the model
    /// (the one built into Cairn lives at crates/cairn-guard/data/injection-model.json).
    #[command(
        after_help = "Example:\n  cairn guard train\n  cairn guard train --set my-set.jsonl --out my-model.json --model /models/minilm"
    )]
    Train {
        /// The labelled set (JSON lines: text, label, source, split, payload).
        #[arg(long, default_value = "crates/cairn-guard/data/injection-set.jsonl")]
        set: std::path::PathBuf,
        /// Where to write the model.
        #[arg(long, default_value = "crates/cairn-guard/data/injection-model.json")]
        out: std::path::PathBuf,
        /// Embedding model whose word vectors to use: a name in the model cache or a folder.
        #[arg(long, default_value = "minilm")]
        model: String,
        /// L2 penalty on the weights.
        #[arg(long, default_value_t = 1e-4)]
        l2: f32,
        /// Passes over the training windows.
        #[arg(long, default_value_t = 400)]
        epochs: usize,
        /// Hash buckets for words and word pairs.
        #[arg(long, default_value_t = 4096)]
        buckets: usize,
    },
    /// Report detection and false-positive rates on the `test` split, direct and indirect,
    /// at the model's thresholds and across a sweep of thresholds.
    #[command(after_help = "Example:\n  cairn guard eval\n  cairn guard eval --set held-out.jsonl --split train")]
    Eval {
        /// The labelled set.
        #[arg(long, default_value = "crates/cairn-guard/data/injection-set.jsonl")]
        set: std::path::PathBuf,
        /// The model to measure; default: the one built in.
        #[arg(long)]
        classifier: Option<std::path::PathBuf>,
        /// Embedding model whose word vectors to use.
        #[arg(long, default_value = "minilm")]
        model: String,
        /// Which split to measure.
        #[arg(long, default_value = "test")]
        split: String,
    },
}

/// `cairn models ...`
#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// Download models into the model cache (CAIRN_MODELS_DIR), verifying every file.
    #[command(
        after_help = "Examples:\n  cairn models pull            # every model Cairn knows\n  cairn models pull minilm"
    )]
    Pull {
        /// Models to fetch (default: all).
        names: Vec<String>,
    },
    /// List known models and whether they are present.
    #[command(after_help = "Example:\n  cairn models list")]
    List,
    /// Print the folder of a model in the cache.
    #[command(after_help = "Example:\n  cairn models path minilm")]
    Path {
        /// Model name.
        name: String,
    },
}

/// Arguments of `cairn worker`.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Only these job types (comma-separated; default: every type).
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
    /// Concurrency per type (default: `jobs.default_concurrency` and `jobs.concurrency`).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Serve `/healthz` and `/metrics` (Prometheus) on this address, e.g. 127.0.0.1:9464.
    #[arg(long)]
    pub metrics_bind: Option<String>,
}

/// `cairn jobs ...`
#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// List jobs, newest first.
    #[command(
        after_help = "Examples:\n  cairn jobs list --state dead\n  cairn jobs list --type webhook --tenant acme --json"
    )]
    List {
        /// Only this type.
        #[arg(long = "type")]
        kind: Option<String>,
        /// Only this state: queued, running, succeeded, cancelled, dead.
        #[arg(long)]
        state: Option<String>,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only jobs created in the last N seconds.
        #[arg(long)]
        since_secs: Option<u64>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one job with every attempt.
    #[command(after_help = "Example:\n  cairn jobs show job_0192f3...")]
    Show {
        /// Job id.
        id: String,
    },
    /// Follow a job's state and progress until it finishes.
    #[command(after_help = "Example:\n  cairn jobs watch job_0192f3...")]
    Watch {
        /// Job id.
        id: String,
    },
    /// Enqueue a job.
    #[command(
        after_help = "Examples:\n  cairn jobs enqueue noop\n  cairn jobs enqueue webhook --payload '{\"url\": \"https://hooks.example.com/x\"}' --tenant acme"
    )]
    Enqueue {
        /// Job type.
        #[arg(value_name = "TYPE")]
        kind: String,
        /// JSON payload.
        #[arg(long, default_value = "{}")]
        payload: String,
        /// Tenant (default: `default`).
        #[arg(long)]
        tenant: Option<String>,
        /// Priority, -1000..=1000.
        #[arg(long, default_value_t = 0)]
        priority: i32,
        /// Run no sooner than this many milliseconds from now.
        #[arg(long)]
        delay_ms: Option<u64>,
        /// Attempts before dead-lettering.
        #[arg(long)]
        max_attempts: Option<u32>,
        /// Deduplication key.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Cancel a queued or running job.
    #[command(after_help = "Example:\n  cairn jobs cancel job_0192f3...")]
    Cancel {
        /// Job id.
        id: String,
    },
    /// Replay a dead or cancelled job.
    #[command(after_help = "Example:\n  cairn jobs retry job_0192f3...")]
    Retry {
        /// Job id.
        id: String,
    },
    /// Replay every dead job (of a type or tenant).
    #[command(after_help = "Examples:\n  cairn jobs retry-dead\n  cairn jobs retry-dead --type webhook --tenant acme")]
    RetryDead {
        /// Only this type.
        #[arg(long = "type")]
        kind: Option<String>,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Delete finished jobs older than an age.
    #[command(
        after_help = "Examples:\n  cairn jobs purge --older-than 7d\n  cairn jobs purge --older-than 12h --type noop"
    )]
    Purge {
        /// Age: a number with s, m, h or d (e.g. 90m, 7d).
        #[arg(long)]
        older_than: String,
        /// Only this type.
        #[arg(long = "type")]
        kind: Option<String>,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// `cairn keys ...`
#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key and print its secret (shown only this once).
    #[command(
        after_help = "Example:\n  cairn keys create --tenant acme --name backend --role member --rpm 600 --budget-usd 50"
    )]
    Create(CreateKeyArgs),
    /// List keys (never their secrets).
    #[command(after_help = "Example:\n  cairn keys list --tenant acme")]
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id.
    #[command(after_help = "Example:\n  cairn keys revoke key_0192f3...")]
    Revoke {
        /// The key id (`key_...`).
        id: String,
    },
}

/// Arguments of `cairn keys create`.
#[derive(Args, Debug)]
pub struct CreateKeyArgs {
    /// Owning tenant (created if it does not exist).
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// Label.
    #[arg(long, default_value = "")]
    pub name: String,
    /// admin, member or reader.
    #[arg(long, default_value = "member")]
    pub role: String,
    /// Requests per minute.
    #[arg(long)]
    pub rpm: Option<u32>,
    /// Tokens per minute.
    #[arg(long)]
    pub tpm: Option<u64>,
    /// Monthly spend budget in US dollars.
    #[arg(long)]
    pub budget_usd: Option<f64>,
}

/// `cairn tenants ...`
/// `cairn audit ...`
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Walk the hash chain; exits non-zero naming the first entry that was edited, removed or
    /// inserted.
    #[command(
        after_help = "Example:\n  cairn audit verify\n  CAIRN_STORAGE__URL=postgres://db/cairn cairn audit verify"
    )]
    Verify,
}

#[derive(Subcommand, Debug)]
pub enum TenantsCommand {
    /// Create a tenant.
    #[command(after_help = "Example:\n  cairn tenants create acme --name \"Acme Corp\"")]
    Create {
        /// Slug: a-z, 0-9, '-' and '_'.
        id: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List tenants.
    #[command(after_help = "Example:\n  cairn tenants list")]
    List,
}

/// `cairn config ...`
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the config (file plus environment) and print the effective values.
    #[command(after_help = "Example:\n  cairn config check --config cairn.toml")]
    Check,
}

/// Arguments of `cairn ingest`.
#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Files and folders (folders are walked; hidden files and unsupported types are skipped).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Collection name or id; created when missing.
    #[arg(long)]
    pub collection: String,
    /// Embedding model of a collection created here.
    #[arg(long, default_value = "local/minilm")]
    pub embedding_model: String,
    /// Metadata for every document (a JSON object).
    #[arg(long)]
    pub metadata: Option<String>,
    /// Cairn's address.
    #[arg(long, env = "CAIRN_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key (member role or above).
    #[arg(long, env = "CAIRN_API_KEY", hide_env_values = true)]
    pub key: String,
    /// Return once uploaded, without waiting for ingestion.
    #[arg(long)]
    pub no_wait: bool,
}

/// `cairn eval ...`
#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Ingest a BEIR dataset (corpus.jsonl, queries.jsonl, qrels/test.tsv) through the real
    /// pipeline; report nDCG@10, recall@100, MRR@10, query latency and ingestion throughput.
    #[command(after_help = "Example:\n  cairn eval retrieval --dataset ../shared/data/scifact")]
    Retrieval(EvalRetrievalArgs),
    /// Ask a collection of a running Cairn every question of a JSON Lines dataset
    /// (`{"question": ..., "expected_documents": [...]}`); score citation precision and recall
    /// and, with --judge, faithfulness; store the results (`GET /v1/evals`).
    #[command(after_help = "Example:\n  cairn eval answers --dataset qa.jsonl --collection handbook --judge fast")]
    Answers(EvalAnswersArgs),
    /// Measure a semantic cache on labelled question pairs (paraphrases and near-misses): per
    /// similarity threshold, the hit rate and the share of hits that would be wrong.
    #[command(
        after_help = "Example:\n  cairn eval semantic-cache\n  cairn eval semantic-cache --pairs my-pairs.jsonl --model /models/bge-small"
    )]
    SemanticCache {
        /// The pairs: JSON Lines of {"a": ..., "b": ..., "same": true|false}.
        #[arg(long, default_value = "crates/cairn-gateway/data/semantic-pairs.jsonl")]
        pairs: PathBuf,
        /// The embedding model: a name in the model cache or a folder.
        #[arg(long, default_value = "minilm")]
        model: String,
        /// Also list the pairs decided wrongly at the default threshold, with the reason.
        #[arg(long)]
        show: bool,
    },
}

/// Arguments of `cairn eval answers`.
#[derive(Args, Debug)]
pub struct EvalAnswersArgs {
    /// The dataset: JSON Lines of {"question": "...", "expected_documents": ["doc-id", ...]}.
    #[arg(long)]
    pub dataset: PathBuf,
    /// Collection name or id.
    #[arg(long)]
    pub collection: String,
    /// Chat model that writes the answers (default: the server's `knowledge.answer_model`).
    #[arg(long)]
    pub model: Option<String>,
    /// Chat model that grades faithfulness (none: no faithfulness scores).
    #[arg(long)]
    pub judge: Option<String>,
    /// Questions asked at once (1-16).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Cairn's address.
    #[arg(long, env = "CAIRN_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key (a member key of the collection's tenant).
    #[arg(long, env = "CAIRN_API_KEY", hide_env_values = true)]
    pub key: String,
}

/// Arguments of `cairn eval retrieval`.
#[derive(Args, Debug)]
pub struct EvalRetrievalArgs {
    /// The dataset folder.
    #[arg(long)]
    pub dataset: PathBuf,
    /// Embedding model (a gateway model name).
    #[arg(long, default_value = "local/minilm")]
    pub embedding_model: String,
    /// Chunk budget in tokens.
    #[arg(long, default_value_t = 200)]
    pub chunk_tokens: u32,
    /// Chunk overlap in tokens.
    #[arg(long, default_value_t = 30)]
    pub chunk_overlap: u32,
    /// Skip the embedding-only baseline.
    #[arg(long)]
    pub skip_baseline: bool,
    /// Documents whose chunks the embedding-only baseline embeds (rates are compared).
    #[arg(long, default_value_t = 1000)]
    pub baseline_docs: usize,
}

/// Arguments of `cairn ask`.
#[derive(Args, Debug)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// Collection name or id.
    #[arg(long)]
    pub collection: String,
    /// Chat model that writes the answer (default: the server's `knowledge.answer_model`).
    #[arg(long)]
    pub model: Option<String>,
    /// Sources given to the model (1-20).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Cairn's address.
    #[arg(long, env = "CAIRN_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key.
    #[arg(long, env = "CAIRN_API_KEY", hide_env_values = true)]
    pub key: String,
}

/// Where a running Cairn is, and the key to use.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Cairn's address.
    #[arg(long, env = "CAIRN_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key.
    #[arg(long, env = "CAIRN_API_KEY", hide_env_values = true)]
    pub key: String,
}

/// `cairn agents ...`
#[derive(Subcommand, Debug)]
pub enum AgentsCommand {
    /// Create an agent from a JSON definition (a file, or `-` for stdin); a definition with the
    /// name of an existing agent updates it (a new version).
    #[command(
        after_help = "Examples:\n  cairn agents create support.json\n  cat support.json | cairn agents create -"
    )]
    Create {
        /// The definition (see POST /v1/agents).
        file: PathBuf,
        /// The server.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the tenant's agents.
    #[command(after_help = "Example:\n  cairn agents list")]
    List {
        /// The server.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print an agent's definition (by name or id).
    #[command(after_help = "Example:\n  cairn agents show support")]
    Show {
        /// Agent name or id.
        agent: String,
        /// The server.
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Arguments of `cairn run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Agent name or id.
    pub agent: String,
    /// The user's message.
    pub input: String,
    /// Run on this thread (default: a one-off run).
    #[arg(long)]
    pub thread: Option<String>,
    /// Whom the run is for (scopes the agent's long-term memory).
    #[arg(long)]
    pub end_user: Option<String>,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}
