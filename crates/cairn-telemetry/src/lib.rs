//! Observability plumbing: the Prometheus metrics every Cairn component records into, and the
//! structured-logging setup (JSON when not on a terminal).

#![warn(missing_docs)]

mod logging;
mod metrics;

pub use logging::init_logging;
pub use metrics::{Labels, Metrics};
