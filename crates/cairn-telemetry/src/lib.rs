//! Observability plumbing: the Prometheus metrics every Cairn component records into, the
//! span writer (bounded queues in front of the trace store and the OTLP exporter), and the structured-logging setup
//! (JSON when not on a terminal).

#![warn(missing_docs)]

pub mod feedback;
mod log_writer;
mod logging;
mod metrics;
mod otlp;
mod spans;
pub mod stats;
pub mod traces;

pub use feedback::FeedbackService;
pub use log_writer::LogGuard;
pub use logging::init_logging;
pub use metrics::{Labels, Metrics};
pub use otlp::OtlpExporter;
pub use spans::{Deliver, Fanout, SpanQueue, SpanQueueSettings, StoreWriter};
pub use traces::TraceService;
