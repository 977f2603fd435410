//! Configuration: one TOML file, every key overridable by `CAIRN_<SECTION>__<KEY>` environment
//! variables (double underscore between levels). Secrets are never in the file: providers name
//! the environment variable holding their key (`api_key_env`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod agents;
mod cache;
mod guards;
mod jobs;
mod knowledge;
mod limits;
mod models;
mod routing;
mod storage;
mod tracing;

pub use agents::{AgentsConfig, StdioServerConfig};
pub use cache::{ModelCacheConfig, SemanticCacheConfig};
pub use guards::GuardsConfig;
pub use jobs::JobsConfig;
pub use knowledge::{KnowledgeConfig, Retrieval, VectorIndexConfig};
pub use limits::{RedisConfig, SharedLimits, UsageCommit};
pub use models::{ModelConfig, ModelKind, TargetConfig};
pub use routing::{ModelSize, RouteConfig, RouteExample};
pub use storage::{redact_url_password, StorageConfig};
pub use tracing::{OtlpConfig, TracingConfig};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Top-level sections; only `CAIRN_` variables under one of these are read as config overrides,
/// so variables such as `CAIRN_ADMIN_KEY` or `CAIRN_CONFIG` never collide with config keys.
const SECTIONS: &[&str] = &[
    "server",
    "storage",
    "gateway",
    "providers",
    "models",
    "local",
    "jobs",
    "knowledge",
    "agents",
    "tracing",
    "log",
    "guards",
    "redis",
];

/// Models served when nothing is configured: (alias, kind, model in the cache).
const DEFAULT_LOCAL_MODELS: &[(&str, ModelKind, &str)] =
    &[("local/minilm", ModelKind::Embedding, "minilm"), ("local/smollm2", ModelKind::Chat, "smollm2")];

/// The whole configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP server.
    pub server: ServerConfig,
    /// Where state lives.
    pub storage: StorageConfig,
    /// Routing defaults: retries, timeouts, breakers.
    pub gateway: GatewayConfig,
    /// Upstream providers by name.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Model names clients use, each routed to an ordered list of targets.
    pub models: BTreeMap<String, ModelConfig>,
    /// In-process models: where they live and how they run.
    pub local: LocalConfig,
    /// The durable job queue and its workers.
    pub jobs: JobsConfig,
    /// Uploads and RAG answers.
    pub knowledge: KnowledgeConfig,
    /// The agent runtime.
    pub agents: AgentsConfig,
    /// Traces: what spans keep, how long they live.
    pub tracing: TracingConfig,
    /// Logging.
    pub log: LogConfig,
    /// What every alias's guards share (the injection classifier's model and thresholds).
    pub guards: GuardsConfig,
    /// A Redis shared by every node, for rate limits (`gateway.shared_limits = "redis"`).
    pub redis: RedisConfig,
}

/// Settings of the models that run inside Cairn (provider kind `local`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalConfig {
    /// Model cache folder; empty means `CAIRN_MODELS_DIR`, else `~/.cache/cairn/models`.
    pub models_dir: PathBuf,
    /// Inference threads per model; 0 means one per core.
    pub threads: usize,
    /// Most texts in one embedding forward pass.
    pub max_batch: usize,
    /// Longest an embedding request waits to be batched with others. 0 (the default): a
    /// request runs at once when the model is idle, and the requests that arrive while it is
    /// busy run together next, so batching comes from load and a lone request never waits.
    pub max_wait_ms: u64,
    /// Most requests queued per model before new ones get 503.
    pub queue: usize,
    /// Context window of chat models in tokens (prompt plus output); 0 is the model's own.
    pub chat_context: u32,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self { models_dir: PathBuf::new(), threads: 0, max_batch: 32, max_wait_ms: 0, queue: 1024, chat_context: 4096 }
    }
}

/// HTTP server settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address.
    pub bind: String,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Deadline for a non-streaming request, in seconds.
    pub request_timeout_secs: u64,
    /// On shutdown, how long in-flight requests and streams may run before they are cut.
    pub shutdown_grace_secs: u64,
    /// Origins allowed by CORS; empty disables CORS headers, `["*"]` allows any.
    pub cors_allowed_origins: Vec<String>,
    /// A connection that has not sent a request's headers within this many seconds is closed.
    pub header_read_timeout_secs: u64,
    /// Most connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// `/metrics` open to anyone who reaches the port; otherwise an owner key or the scrape
    /// token (`CAIRN_METRICS_TOKEN`) is needed, since it shows every tenant's spend.
    pub public_metrics: bool,
}

/// Where the `/metrics` scrape token is read from.
pub const METRICS_TOKEN_ENV: &str = "CAIRN_METRICS_TOKEN";

/// Shortest scrape token accepted: as hard to guess as a key.
pub const METRICS_TOKEN_MIN_CHARS: usize = 32;

impl ServerConfig {
    /// The `/metrics` scrape token from [`METRICS_TOKEN_ENV`], if set; one shorter than
    /// [`METRICS_TOKEN_MIN_CHARS`] is an error (which never repeats the token).
    pub fn metrics_token(&self) -> Result<Option<String>, String> {
        match std::env::var(METRICS_TOKEN_ENV) {
            Ok(t) if t.chars().count() < METRICS_TOKEN_MIN_CHARS => {
                Err(format!("{METRICS_TOKEN_ENV} must have at least {METRICS_TOKEN_MIN_CHARS} characters"))
            }
            Ok(t) => Ok(Some(t)),
            Err(_) => Ok(None),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            max_body_bytes: 4 * 1024 * 1024,
            request_timeout_secs: 600,
            shutdown_grace_secs: 30,
            cors_allowed_origins: Vec::new(),
            header_read_timeout_secs: 10,
            max_connections: 1024,
            public_metrics: false,
        }
    }
}

/// Routing defaults, overridable per target.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Retries per target on connect errors, timeouts, 429 and 5xx (before falling back).
    pub max_retries: u32,
    /// First retry delay; doubles each retry, with full jitter.
    pub backoff_base_ms: u64,
    /// Cap on one retry delay (also caps how long a `retry-after` is honoured).
    pub backoff_max_ms: u64,
    /// Default timeouts for targets.
    pub timeouts: Timeouts,
    /// Consecutive failures that open a target's circuit breaker.
    pub breaker_failure_threshold: u32,
    /// How long an open breaker rejects calls before letting one probe through.
    pub breaker_open_ms: u64,
    /// How long a failed usage write waits before it is retried (records are otherwise written
    /// as soon as they arrive).
    pub usage_flush_ms: u64,
    /// When a call's answer is sent: once its usage record is committed (the default), or at
    /// once, the record following within milliseconds.
    pub usage_commit: UsageCommit,
    /// Output tokens a chat call that sets no `max_tokens` is assumed to need at most, when its
    /// worst-case cost is reserved against a budget.
    pub reserve_output_tokens: u32,
    /// Streams one key may hold open at once on one node: streamed chat and answers, and SSE
    /// watchers of jobs.
    pub max_streams_per_key: usize,
    /// How long authenticated keys are cached (a revocation on another node takes this long).
    pub key_cache_ttl_ms: u64,
    /// Where rate-limit buckets live: `auto` (default), `process`, `database` or `redis`.
    pub shared_limits: SharedLimits,
    /// Memory for recently used response cache entries on each node, in MiB (0: none).
    pub cache_memory_mb: usize,
    /// How long a node serves a cache entry from memory before reading storage again (a purge
    /// or refresh on another node reaches it within this time).
    pub cache_memory_fresh_ms: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_retries: 2,
            backoff_base_ms: 100,
            backoff_max_ms: 5_000,
            timeouts: Timeouts::default(),
            breaker_failure_threshold: 5,
            breaker_open_ms: 30_000,
            usage_flush_ms: 250,
            usage_commit: UsageCommit::BeforeAnswer,
            reserve_output_tokens: 4_096,
            max_streams_per_key: 64,
            key_cache_ttl_ms: 5_000,
            shared_limits: SharedLimits::Auto,
            cache_memory_mb: 64,
            cache_memory_fresh_ms: 5_000,
        }
    }
}

/// Timeouts for one upstream call.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// TCP/TLS connect.
    pub connect_ms: u64,
    /// From sending the request to the first token (or the whole response when not streaming).
    pub first_token_ms: u64,
    /// The whole call, stream included.
    pub total_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { connect_ms: 5_000, first_token_ms: 60_000, total_ms: 600_000 }
    }
}

/// Per-target timeout overrides; unset fields take the gateway default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutOverrides {
    /// TCP/TLS connect.
    pub connect_ms: Option<u64>,
    /// To first token.
    pub first_token_ms: Option<u64>,
    /// Whole call.
    pub total_ms: Option<u64>,
}

impl TimeoutOverrides {
    /// Applies these overrides on top of `base`.
    pub fn over(&self, base: Timeouts) -> Timeouts {
        Timeouts {
            connect_ms: self.connect_ms.unwrap_or(base.connect_ms),
            first_token_ms: self.first_token_ms.unwrap_or(base.first_token_ms),
            total_ms: self.total_ms.unwrap_or(base.total_ms),
        }
    }
}

/// The wire protocol a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible HTTP server (OpenAI, vLLM, Ollama, llama.cpp server, ...).
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
    /// Models running inside Cairn (targets name a model in the cache, or a path).
    Local,
}

/// One upstream provider.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Wire protocol.
    pub kind: ProviderKind,
    /// Base URL, e.g. `https://api.openai.com/v1` or `https://api.anthropic.com` (not for `local`).
    #[serde(default)]
    pub base_url: String,
    /// Name of the environment variable holding the API key (never the key itself).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Extra headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Most concurrent upstream requests to this provider; more wait for a slot.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Timeout overrides for every target on this provider.
    #[serde(default)]
    pub timeouts: TimeoutOverrides,
    /// Prompts may reach it with personal data (the `pii_input` guard skips it); default: true
    /// for `local` (nothing leaves the process), false for every remote provider.
    #[serde(default)]
    pub trusted: Option<bool>,
}

fn default_concurrency() -> usize {
    512
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when stderr is not a terminal, human-readable otherwise.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

/// Logging settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `cairn_gateway=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Auto, level: "info".into() }
    }
}

/// Why a configuration could not be loaded or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment override could not be parsed.
    #[error("{0}")]
    Parse(String),
    /// The values parse but do not make sense together; one line per problem.
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl Config {
    /// Loads `path` (if given) with `CAIRN_...` environment overrides from `env` on top.
    /// `CAIRN_DATA_DIR` is a shorthand for `CAIRN_STORAGE__DATA_DIR`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(p) = path {
            if !p.exists() {
                return Err(ConfigError::Parse(format!("config file {} not found", p.display())));
            }
            fig = fig.merge(Toml::file(p));
        }
        if let Ok(dir) = std::env::var("CAIRN_DATA_DIR") {
            fig = fig.merge(("storage.data_dir", dir));
        }
        // The filter sees the raw name after the prefix (e.g. `SERVER__BIND`), before `split`.
        let env = Env::prefixed("CAIRN_")
            .filter(|k| {
                let k = k.as_str().to_ascii_lowercase();
                SECTIONS.iter().any(|s| k.starts_with(&format!("{s}__")))
            })
            .split("__");
        let config: Config = fig.merge(env).extract().map_err(|e| ConfigError::Parse(e.to_string()))?;
        let config = config.with_local_defaults();
        config.validate()?;
        Ok(config)
    }

    /// With no provider and no model configured, serves the in-process models: `local/minilm`
    /// (embeddings) and `local/smollm2` (chat).
    pub fn with_local_defaults(mut self) -> Self {
        if !self.providers.is_empty() || !self.models.is_empty() {
            return self;
        }
        self.providers.insert(
            "local".into(),
            ProviderConfig {
                kind: ProviderKind::Local,
                base_url: String::new(),
                api_key_env: None,
                headers: BTreeMap::new(),
                max_concurrency: default_concurrency(),
                timeouts: TimeoutOverrides::default(),
                trusted: None,
            },
        );
        for &(alias, kind, model) in DEFAULT_LOCAL_MODELS {
            let target = TargetConfig {
                provider: "local".into(),
                model: model.into(),
                input_usd_per_mtok: 0.0,
                output_usd_per_mtok: 0.0,
                timeouts: TimeoutOverrides::default(),
                tools: true,
            };
            self.models.insert(
                alias.into(),
                ModelConfig { kind, targets: vec![target], cache: None, guards: Default::default(), route: None },
            );
        }
        self
    }

    /// Parses a TOML string (no environment overrides) and validates it.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks cross-references and ranges; returns every problem at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.server.bind.parse::<SocketAddr>().is_err() {
            problems.push(format!("server.bind '{}' is not an IP:port address", self.server.bind));
        }
        if let Err(e) = self.server.metrics_token() {
            problems.push(e);
        }
        if self.server.max_body_bytes < 1024 {
            problems.push("server.max_body_bytes must be at least 1024".into());
        }
        let url = self.storage.database_url();
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            problems.push(format!("storage.url must start with sqlite:// or postgres:// (got '{url}')"));
        }
        if self.gateway.backoff_base_ms > self.gateway.backoff_max_ms {
            problems.push("gateway.backoff_base_ms must not exceed gateway.backoff_max_ms".into());
        }
        problems.extend(self.jobs.problems());
        problems.extend(self.knowledge.problems());
        problems.extend(self.agents.problems());
        problems.extend(self.tracing.problems());
        problems.extend(self.guards.problems());
        problems.extend(self.redis.problems(self.gateway.shared_limits));
        if self.gateway.breaker_failure_threshold == 0 {
            problems.push("gateway.breaker_failure_threshold must be at least 1".into());
        }
        for (name, p) in &self.providers {
            let remote = p.kind != ProviderKind::Local;
            if remote && !(p.base_url.starts_with("http://") || p.base_url.starts_with("https://")) {
                problems.push(format!("providers.{name}.base_url must be an http(s) URL"));
            }
            if p.max_concurrency == 0 {
                problems.push(format!("providers.{name}.max_concurrency must be at least 1"));
            }
        }
        for (alias, m) in &self.models {
            match &m.route {
                Some(r) => {
                    let lookup = |n: &str| self.models.get(n).map(|t| (t.kind == ModelKind::Chat, t.route.is_some()));
                    problems.extend(r.problems(alias, lookup));
                    if !m.targets.is_empty() || m.kind != ModelKind::Chat {
                        problems.push(format!("models.{alias}: a routed chat alias has no targets of its own"));
                    }
                }
                None if m.targets.is_empty() => problems.push(format!("models.{alias} has no targets")),
                None => {}
            }
            if let Some(Err(problem)) = m.cache.as_ref().map(|c| c.check(alias)) {
                problems.push(problem);
            }
            if let Some(s) = m.cache.as_ref().and_then(|c| c.semantic.as_ref()) {
                let kind = self.models.get(&s.embedding).map(|e| e.kind);
                if m.kind != ModelKind::Chat || kind != Some(ModelKind::Embedding) {
                    problems.push(format!(
                        "models.{alias}.cache.semantic: needs a chat alias and an embedding alias (embedding = \"{}\")",
                        s.embedding
                    ));
                }
            }
            problems.extend(m.guards.check(&format!("models.{alias}.guards")).err());
            for (i, t) in m.targets.iter().enumerate() {
                match self.providers.get(&t.provider) {
                    None => problems.push(format!(
                        "models.{alias}.targets[{i}] names provider '{}', which is not configured",
                        t.provider
                    )),
                    Some(p) if p.kind == ProviderKind::Anthropic && m.kind == ModelKind::Embedding => {
                        problems.push(format!(
                            "models.{alias} is an embedding model but provider '{}' (anthropic) has no embeddings",
                            t.provider
                        ))
                    }
                    Some(_) => {}
                }
                if t.input_usd_per_mtok < 0.0 || t.output_usd_per_mtok < 0.0 {
                    problems.push(format!("models.{alias}.targets[{i}] has a negative price"));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Warnings that do not stop startup: e.g. a provider key variable that is not set.
    pub fn warnings(&self) -> Vec<String> {
        self.providers
            .iter()
            .filter_map(|(name, p)| {
                let var = p.api_key_env.as_ref()?;
                std::env::var(var)
                    .is_err()
                    .then(|| format!("providers.{name}: environment variable {var} (its API key) is not set"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
        [server]
        bind = "127.0.0.1:9999"

        [providers.up]
        kind = "openai"
        base_url = "http://127.0.0.1:1/v1"
        api_key_env = "UP_KEY"

        [models.fast]
        targets = [{ provider = "up", model = "m1", input_usd_per_mtok = 0.5 }]
    "#;

    #[test]
    fn parses_a_sample() {
        let c = Config::from_toml(SAMPLE).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:9999");
        assert_eq!(c.models["fast"].targets[0].input_usd_per_mtok, 0.5);
        assert_eq!(c.gateway.max_retries, 2);
    }

    #[test]
    fn reports_every_problem() {
        let bad = r#"
            [server]
            bind = "nowhere"
            [models.x]
            targets = [{ provider = "ghost", model = "m" }]
            [models.y]
            targets = []
        "#;
        let ConfigError::Invalid(problems) = Config::from_toml(bad).unwrap_err() else { panic!("expected Invalid") };
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn rejects_unknown_keys() {
        assert!(matches!(Config::from_toml("[server]\nbindd = \"x\""), Err(ConfigError::Parse(_))));
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, SAMPLE).unwrap();
        // Each test runs in its own process under nextest, so setting variables is contained.
        std::env::set_var("CAIRN_SERVER__BIND", "127.0.0.1:7777");
        std::env::set_var("CAIRN_GATEWAY__MAX_RETRIES", "5");
        std::env::set_var("CAIRN_ADMIN_KEY", "not-a-config-key");
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:7777");
        assert_eq!(c.gateway.max_retries, 5);
        assert_eq!(c.models["fast"].targets[0].model, "m1");
    }

    #[test]
    fn missing_file_is_an_error() {
        assert!(Config::load(Some(Path::new("/nonexistent/cairn.toml"))).is_err());
    }

    #[test]
    fn local_models_are_the_default_only_when_nothing_is_configured() {
        let c = Config::default().with_local_defaults();
        assert_eq!(c.providers["local"].kind, ProviderKind::Local);
        assert_eq!(c.models["local/minilm"].kind, ModelKind::Embedding);
        assert!(c.validate().is_ok());
        let c = Config::from_toml(SAMPLE).unwrap().with_local_defaults();
        assert!(!c.providers.contains_key("local"));
    }

    #[test]
    fn defaults_to_sqlite_in_data_dir() {
        let c = Config::default();
        assert_eq!(c.storage.database_url(), "sqlite://cairn-data/cairn.db");
        assert!(c.validate().is_ok());
    }
}
