//! Traces: every request is a tree of spans (the HTTP request, its model calls and their
//! attempts, retrieval, agent steps, job attempts), recorded through a `Tracer` and stored
//! per tenant through the `TraceStore` port.

pub mod attrs;
mod feedback;
mod ids;
pub mod rollup;
mod span;
mod store;

pub use feedback::{EvalItem, EvalRun, Feedback, FeedbackStore, FeedbackTarget, Score};
pub use ids::{BadId, SpanId, TraceContext, TraceId};
pub use rollup::{Rollup, RollupGroup};
pub use span::{now_ns, ActiveSpan, AttrValue, Capture, Redact, SpanKind, SpanRecord, SpanSink, SpanStatus, Tracer};
pub use store::{StoredSpan, TraceCursor, TraceDelta, TraceQuery, TraceStore, TraceSummary};
