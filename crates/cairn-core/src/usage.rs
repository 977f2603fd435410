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
    /// Answered from the response cache: no upstream call, no cost, no tokens.
    Cached,
    /// Refused by a guard: before any upstream call (no cost), or after it (its cost stands).
    Blocked,
}

impl CallStatus {
    /// The snake_case name used in storage and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Ok => "ok",
            CallStatus::Error => "error",
            CallStatus::Cancelled => "cancelled",
            CallStatus::Cut => "cut",
            CallStatus::Cached => "cached",
            CallStatus::Blocked => "blocked",
        }
    }

    /// Whether the call failed (for error counts): cut, cancelled and failed calls did.
    pub fn is_error(self) -> bool {
        !matches!(self, CallStatus::Ok | CallStatus::Cached)
    }

    /// Parses the stored name; unknown names read as `Error`.
    pub fn parse(s: &str) -> Self {
        match s {
            "ok" => CallStatus::Ok,
            "cancelled" => CallStatus::Cancelled,
            "cut" => CallStatus::Cut,
            "cached" => CallStatus::Cached,
            "blocked" => CallStatus::Blocked,
            _ => CallStatus::Error,
        }
    }
}

/// One model call, as accounted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// The call's own id (UUID v7): one request may make many calls (RAG, retries, agents).
    pub id: String,
    /// The request that caused the call (sent back in `x-request-id`).
    pub request_id: String,
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

/// US dollars in billionths. Budgets, reservations and settled spend are summed and compared
/// as integers, so five calls of $0.01 fit a $0.05 budget exactly (in `f64` they do not).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NanoUsd(pub i64);

impl NanoUsd {
    /// The nearest amount to `usd` (settled costs, budgets).
    pub fn from_usd(usd: f64) -> Self {
        NanoUsd((usd * 1e9).round().clamp(0.0, i64::MAX as f64) as i64)
    }

    /// The smallest amount not below `usd` (worst-case reservations), ignoring float noise.
    pub fn ceil_usd(usd: f64) -> Self {
        NanoUsd((usd * 1e9 - 1e-6).ceil().clamp(0.0, i64::MAX as f64) as i64)
    }

    /// The amount in US dollars.
    pub fn usd(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

/// A request to grow a budget reservation: a node's credit for one key, from which it admits
/// calls without asking storage each time (see `cairn-access`).
#[derive(Clone, Debug, PartialEq)]
pub struct Reservation {
    /// The reservation (credit) id; usage records settle against it.
    pub id: String,
    /// Key whose budget is charged.
    pub key_id: String,
    /// What must fit now (the waiting call's worst case, less credit left); may be zero when
    /// only the expiry is extended.
    pub amount: NanoUsd,
    /// Headroom wanted beyond `amount`, so later calls need no trip to storage; granted only
    /// up to half of what the budget has left after `amount`, so other nodes keep a share.
    pub extra: NanoUsd,
    /// The key's monthly budget.
    pub budget: NanoUsd,
    /// First instant of the current UTC month, Unix milliseconds.
    pub month_start_ms: i64,
    /// Now, Unix milliseconds (expired reservations are dropped before counting).
    pub now_ms: i64,
    /// When the reservation lapses if never settled or released (its node crashed); never
    /// moved earlier by a later request.
    pub expires_at_ms: i64,
}

/// What storage answered to a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// The reservation grew by `granted` (`amount` plus the headroom that fit).
    Reserved {
        /// How much the reservation grew.
        granted: NanoUsd,
    },
    /// It does not fit: `settled` is this month's settled spend, `held` what reservations hold.
    Refused {
        /// Spend of finished calls this month.
        settled: NanoUsd,
        /// Live reservations (calls in progress and nodes' unspent credit).
        held: NanoUsd,
    },
}

/// A finished call to store: its usage record and the budget reservation its cost is settled
/// against (none for keys without a budget).
#[derive(Clone, Debug, PartialEq)]
pub struct Settlement {
    /// The call's usage record.
    pub record: UsageRecord,
    /// The reservation that held the call's worst case.
    pub reservation_id: Option<String>,
}
