//! Attribute names: OpenTelemetry's semantic conventions (GenAI, HTTP, errors) where one
//! exists, Cairn's own under `cairn.`. One list, so the writer, the read API and the exporter
//! agree on what each span carries.

/// What a GenAI span does: `chat`, `embeddings`, `execute_tool`, `invoke_agent`.
pub const OPERATION: &str = "gen_ai.operation.name";
/// The provider that served (or failed) the call.
pub const PROVIDER: &str = "gen_ai.provider.name";
/// The model the caller asked for (Cairn's alias).
pub const REQUEST_MODEL: &str = "gen_ai.request.model";
/// The upstream model that served.
pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
/// Output token cap asked for.
pub const REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
/// Sampling temperature asked for.
pub const REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
/// Why generation stopped.
pub const FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
/// Prompt tokens.
pub const INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
/// Output tokens.
pub const OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// A tool's name.
pub const TOOL_NAME: &str = "gen_ai.tool.name";
/// The model's id for one tool call.
pub const TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
/// An agent's id.
pub const AGENT_ID: &str = "gen_ai.agent.id";
/// An agent's name.
pub const AGENT_NAME: &str = "gen_ai.agent.name";
/// The conversation (thread) a call belongs to.
pub const CONVERSATION_ID: &str = "gen_ai.conversation.id";
/// The prompt, under `full` capture only (redacted).
pub const INPUT_MESSAGES: &str = "gen_ai.input.messages";
/// The completion, under `full` capture only (redacted).
pub const OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
/// A short class of error (`timeout`, `status_429`, `rate_limit`, ...).
pub const ERROR_TYPE: &str = "error.type";
/// HTTP method of a request served.
pub const HTTP_METHOD: &str = "http.request.method";
/// The route template that matched.
pub const HTTP_ROUTE: &str = "http.route";
/// The response's status code.
pub const HTTP_STATUS: &str = "http.response.status_code";
/// The end user the request was made for (the OpenAI `user` field).
pub const END_USER: &str = "enduser.id";
/// The session the request belongs to (the `x-session-id` header).
pub const SESSION: &str = "session.id";
/// The key that made the request.
pub const KEY_ID: &str = "cairn.key.id";
/// Cairn's request id (`x-request-id`).
pub const REQUEST_ID: &str = "cairn.request.id";
/// A model call's own id (its usage record's).
pub const CALL_ID: &str = "cairn.call.id";
/// What the call cost, US dollars.
pub const COST_USD: &str = "cairn.cost_usd";
/// Time to the first token, milliseconds (streams).
pub const TTFT_MS: &str = "cairn.ttft_ms";
/// Output tokens per second after the first.
pub const TOKENS_PER_S: &str = "cairn.output_tokens_per_s";
/// Whether the response was streamed.
pub const STREAMED: &str = "cairn.streamed";
/// Retries the call took.
pub const RETRIES: &str = "cairn.retries";
/// Moves to a later target the call took.
pub const FALLBACKS: &str = "cairn.fallbacks";
/// An attempt's number at its target, from 0.
pub const ATTEMPT: &str = "cairn.attempt";
/// An agent run's id.
pub const RUN_ID: &str = "cairn.run.id";
/// A job's id.
pub const JOB_ID: &str = "cairn.job.id";
/// How a job attempt ended (`succeeded`, `failed`, `timed_out`, ...).
pub const JOB_OUTCOME: &str = "cairn.job.outcome";
/// What a limit or budget decided (`admitted`, `rate`, `budget`, `streams`).
pub const LIMIT_DECISION: &str = "cairn.limit.decision";
/// The tenant whose work a span was (added on export; stored spans keep it in a column).
pub const TENANT_ID: &str = "cairn.tenant.id";
/// Sources of a RAG answer the injection screen flagged (fenced and labelled as data).
pub const GUARD_INJECTION_SOURCES: &str = "cairn.guard.injection_sources";
/// The injection screen's rules those sources tripped.
pub const GUARD_INJECTION_RULES: &str = "cairn.guard.injection_rules";
/// The PII policy a document was ingested under (`mask`, `hash`, `drop`, ...).
pub const GUARD_PII_POLICY: &str = "cairn.guard.pii_policy";
/// Values the PII guard redacted (per kind under `cairn.guard.redactions.KIND`).
pub const GUARD_REDACTIONS: &str = "cairn.guard.redactions";
/// What the call's guards did, as in `x-cairn-guards` (`injection=pass, pii_output=redacted`).
pub const GUARDS: &str = "cairn.guards";
/// Which model a routed alias chose, as in `x-cairn-route` (`large; alias=smart; score=0.73`).
pub const ROUTE: &str = "cairn.route";
/// What the response cache did for the call: `hit`, `miss` or `bypass`.
pub const CACHE_STATUS: &str = "cairn.cache.status";
/// For a semantic cache hit, how similar the cached question was.
pub const CACHE_SIMILARITY: &str = "cairn.cache.similarity";
