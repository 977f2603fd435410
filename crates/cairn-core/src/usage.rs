//! Accounting records: one per model call, and the aggregates `GET /v1/usage` returns.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How a model call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// Completed normally.
    Ok,
    /// Failed (every target failed, or the upstream rejected the request).
    Error,
    /// The client went away before the response was complete.
    Cancelled,
    /// The upstream stream broke after it had started.
    Cut,
}

impl CallStatus {
    /// The snake_case name used in storage and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Ok => "ok",
            CallStatus::Error => "error",
            CallStatus::Cancelled => "cancelled",
            CallStatus::Cut => "cut",
        }
    }

    /// Parses the stored name; unknown names read as `Error`.
    pub fn parse(s: &str) -> Self {
        match s {
            "ok" => CallStatus::Ok,
            "cancelled" => CallStatus::Cancelled,
            "cut" => CallStatus::Cut,
            _ => CallStatus::Error,
        }
    }
}

/// One model call, as accounted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// The request id (also sent back in `x-request-id`).
    pub id: String,
    /// When the call started, Unix milliseconds.
    pub ts_ms: i64,
    /// Tenant billed.
    pub tenant_id: String,
    /// Key used.
    pub key_id: String,
    /// `chat` or `embeddings`.
    pub endpoint: String,
    /// The model name the client asked for.
    pub model_alias: String,
    /// Provider of the target that served (or last failed) the call.
    pub provider: String,
    /// Upstream model of that target.
    pub upstream_model: String,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// True when token counts were estimated because the upstream reported none.
    pub tokens_estimated: bool,
    /// Cost in US dollars from the target's configured prices.
    pub cost_usd: f64,
    /// Total latency in milliseconds.
    pub latency_ms: u64,
    /// Time to first token in milliseconds (streams only).
    pub ttft_ms: Option<u64>,
    /// Output tokens per second after the first token (streams) or over the call.
    pub output_tokens_per_s: Option<f64>,
    /// Retries taken (across all targets).
    pub retries: u32,
    /// Fallbacks to a later target.
    pub fallbacks: u32,
    /// Whether the response was streamed.
    pub streamed: bool,
    /// How the call ended.
    pub status: CallStatus,
    /// Error message when status is not `ok`.
    pub error: Option<String>,
}

/// A filter over usage records. Times are Unix milliseconds, `[from, to)`.
#[derive(Clone, Debug, Default)]
pub struct UsageQuery {
    /// Only this tenant; `None` for all tenants (admins).
    pub tenant_id: Option<String>,
    /// Only this key.
    pub key_id: Option<String>,
    /// Only this model alias.
    pub model_alias: Option<String>,
    /// Inclusive start.
    pub from_ms: i64,
    /// Exclusive end.
    pub to_ms: i64,
}

/// Usage aggregated by UTC day, tenant, model alias and key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageBucket {
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Tenant.
    pub tenant_id: String,
    /// Model alias requested.
    pub model: String,
    /// Key used.
    pub key_id: String,
    /// Number of calls.
    pub requests: u64,
    /// Calls that did not end `ok`.
    pub errors: u64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Cost in US dollars.
    pub cost_usd: f64,
}
