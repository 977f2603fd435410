//! Structured logging: JSON lines by default when stderr is not a terminal, human-readable
//! otherwise; the level comes from config (`log.level`) unless `RUST_LOG` is set. Lines reach
//! stderr through a bounded queue and a thread of their own (`crate::log_writer`), so a slow
//! reader of stderr never slows the code that logs.

use std::io::IsTerminal;

use cairn_core::config::LogFormat;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::log_writer::{self, LogGuard, QUEUE_LINES};

/// Installs the global subscriber in `format` at `level` and returns the guard that writes out
/// queued lines when dropped: hold it for as long as the process logs. Calling it twice is
/// harmless (the second call is ignored).
pub fn init_logging(format: LogFormat, level: &str) -> LogGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    match log_writer::start(std::io::stderr(), QUEUE_LINES, log_writer::lines_dropped()) {
        Ok((writer, guard)) => {
            install(filter, json, writer);
            guard
        }
        Err(e) => {
            install(filter, json, std::io::stderr);
            tracing::warn!(error = %e, "cannot start the log writer's thread; logging to stderr directly");
            LogGuard::unqueued()
        }
    }
}

/// Sets the global subscriber writing to `writer`, unless one is set already.
fn install<W>(filter: EnvFilter, json: bool, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let _ =
        if json { builder.json().flatten_event(true).with_current_span(false).try_init() } else { builder.try_init() };
}
