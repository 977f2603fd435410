//! Observability plumbing: the Prometheus metrics every Cairn component records into, the
//! span writer (a bounded queue in front of the trace store), and the structured-logging setup
//! (JSON when not on a terminal).

#![warn(missing_docs)]

mod logging;
mod metrics;
mod spans;
pub mod stats;
pub mod traces;

pub use logging::init_logging;
pub use metrics::{Labels, Metrics};
pub use spans::{SpanQueue, SpanQueueSettings};
pub use traces::TraceService;
