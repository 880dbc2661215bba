//! Raw routing-table schema, exactly as written in KV. Every struct rejects unknown fields so
//! a typo (`"max_attempt"`) is an error instead of a silently ignored setting.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTable {
    pub version: Value,
    #[serde(default)]
    pub defaults: RawDefaults,
    pub providers: BTreeMap<String, RawProvider>,
    pub deployments: BTreeMap<String, RawDeployment>,
    pub routes: BTreeMap<String, RawRoute>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    #[serde(default)]
    pub retry: RawRetry,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    pub request_timeout_ms: Option<u64>,
    #[serde(default)]
    pub breaker: RawBreaker,
    /// Output tokens assumed for budget and TPM reservations when a request sets no limit.
    pub estimated_output_tokens: Option<u32>,
}

/// Circuit-breaker settings; every field falls back to `defaults.breaker`, then built-ins.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    pub enabled: Option<bool>,
    pub consecutive_failures: Option<u32>,
    pub failure_rate_bps: Option<u32>,
    pub min_requests: Option<u32>,
    pub window_ms: Option<u64>,
    pub cooldown_ms: Option<u64>,
    pub cooldown_max_ms: Option<u64>,
    pub half_open_probes: Option<u32>,
    /// Error classes that count as failures (default: every provider-side class).
    pub count: Option<Vec<String>>,
    /// Let the cron trigger probe this deployment while its breaker is open (default true).
    pub cron_probe: Option<bool>,
}

/// Per-deployment traffic limits (the provider's quota for this deployment).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub max_attempts: Option<u32>,
    pub backoff_base_ms: Option<u64>,
    pub backoff_max_ms: Option<u64>,
    pub max_retry_after_ms: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect_ms: Option<u64>,
    pub first_token_ms: Option<u64>,
    pub idle_ms: Option<u64>,
    pub attempt_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub kind: String,
    pub base_url: Option<String>,
    pub api_key_secret: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub mock: Option<RawMock>,
    pub anthropic_version: Option<String>,
    pub max_tokens_default: Option<u32>,
    /// `openai` only: ask for usage in streams with `stream_options` (default true).
    pub stream_usage: Option<bool>,
    /// `openai` only: the field this server reads the output limit from.
    pub max_tokens_field: Option<String>,
    /// How this provider continues a partial answer: "none", "assistant" (a trailing assistant
    /// message) or "prefix_flag" (the same with `"prefix": true`, DeepSeek-style).
    pub prefill: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMock {
    pub fail_status: Option<u16>,
    pub retry_after_s: Option<u32>,
    pub latency_ms: Option<u64>,
    pub chunk_delay_ms: Option<u64>,
    /// Streams that are not continuations end abruptly after this many words (resume demo).
    pub cut_after_chunks: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeployment {
    pub provider: String,
    pub model: String,
    pub context_window: u32,
    pub price: Option<RawPrice>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub retry: RawRetry,
    #[serde(default)]
    pub capabilities: RawCapabilities,
    #[serde(default)]
    pub breaker: RawBreaker,
    #[serde(default)]
    pub limits: RawLimits,
}

/// What a deployment can do; every capability defaults to true.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapabilities {
    pub tools: Option<bool>,
    pub vision: Option<bool>,
    pub json: Option<bool>,
    pub streaming: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    /// USD per million input tokens, as a JSON number or a decimal string.
    pub input_per_mtok_usd: Value,
    /// USD per million output tokens, as a JSON number or a decimal string.
    pub output_per_mtok_usd: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub chain: Vec<String>,
    #[serde(default)]
    pub retry: RawRetry,
    pub request_timeout_ms: Option<u64>,
    #[serde(default)]
    pub fallback_on_content_policy: bool,
    pub description: Option<String>,
    /// Mid-stream resume: "auto" (default), "prefill", "replay" or "off".
    pub resume: Option<String>,
    pub max_resumes: Option<u32>,
}
