//! Structured logging: JSON lines by default when stderr is not a terminal, human-readable
//! otherwise; the level comes from config (`log.level`) unless `RUST_LOG` is set.

use std::io::IsTerminal;

use cairn_core::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber in `format` at `level`; calling it twice is harmless (the
/// second call is ignored), so tests may call it freely.
pub fn init_logging(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ =
        if json { builder.json().flatten_event(true).with_current_span(false).try_init() } else { builder.try_init() };
}
