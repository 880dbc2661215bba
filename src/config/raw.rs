//! Raw routing-table schema, exactly as written in KV. Every struct rejects unknown fields so
//! a typo (`"max_attempt"`) is an error instead of a silently ignored setting, and accepts
//! only a JSON object: serde's derived structs also read the positional form (`"retry": [7,
//! 100, 1000, 5000]` as `max_attempts` 7, …), which is never what the author meant.
//!
//! How: each struct derives `Deserialize` with `#[serde(remote = "Self")]`, which turns the
//! derived code into an inherent `deserialize` function instead of the trait impl, and
//! [`objects_only!`] writes the trait impl, which asks for a map and hands that map to the
//! derived code. Nested structs go through their own trait impls, so every level is checked.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// A struct whose derived deserializer (`#[serde(remote = "Self")]`) reads any struct form.
trait Derived<'de>: Sized {
    fn derived<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
}

/// Accepts a JSON object only, and reads it with `T`'s derived deserializer.
struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Derived<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::derived(de::value::MapAccessDeserializer::new(map))
    }
}

/// `Deserialize` for structs derived with `#[serde(remote = "Self")]`: objects only.
macro_rules! objects_only {
    ($($t:ident),+ $(,)?) => {$(
        impl<'de> Derived<'de> for $t {
            fn derived<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $t::deserialize(d) // the inherent (derived) function, not the trait method
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_map(ObjectVisitor::<$t>(PhantomData))
            }
        }
    )+};
}

objects_only!(
    RawTable,
    RawDefaults,
    RawBreaker,
    RawLimits,
    RawRequestLimits,
    RawCors,
    RawRetry,
    RawTimeouts,
    RawProvider,
    RawMock,
    RawDeployment,
    RawEmbedding,
    RawCapabilities,
    RawPrice,
    RawRoute,
    RawWeightedEntry,
    RawCanary,
    RawSticky,
    RawHedge,
    RawCache,
    RawTasks,
    RawRule,
    RawWhen,
);

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RawTable {
    pub version: Value,
    #[serde(default)]
    pub defaults: RawDefaults,
    pub providers: BTreeMap<String, RawProvider>,
    pub deployments: BTreeMap<String, RawDeployment>,
    pub routes: BTreeMap<String, RawRoute>,
    /// Task classification: which route serves which kind of request.
    pub tasks: Option<RawTasks>,
    /// Per-request limits of the platform the gateway runs on.
    #[serde(default)]
    pub limits: RawRequestLimits,
    /// Browsers: which origins may call the gateway (CORS); none when absent.
    #[serde(default)]
    pub cors: RawCors,
    /// The operator's webhook (checked in `config::alerts`).
    pub alerts: Option<Value>,
}

/// Cross-origin calls from browsers and WebViews, opt-in by origin.
#[derive(Debug, Default, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RawCors {
    /// Exact origins (`https://app.example.com`), or `"*"` for any.
    #[serde(default)]
    pub allow_origins: Vec<String>,
}

/// What one request may spend on the platform (Workers' per-invocation limits).
#[derive(Debug, Default, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RawRequestLimits {
    /// Subrequests (fetches, KV and Durable Object calls) one request may make: 50 on
    /// Workers Free (the default), 10,000 on Workers Paid.
    pub subrequests: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RawDefaults {
    #[serde(default)]
    pub retry: RawRetry,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    pub request_timeout_ms: Option<u64>,
    #[serde(default)]
    pub breaker: RawBreaker,
    /// `"off"` or thresholds (checked in `config::degradation`).
    pub degradation: Option<serde_json::Value>,
    /// Output tokens assumed for budget and TPM reservations when a request sets no limit.
    pub estimated_output_tokens: Option<u32>,
}

/// Circuit-breaker settings; every field falls back to `defaults.breaker`, then built-ins.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
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
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RawLimits {
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RawRetry {
    pub max_attempts: Option<u32>,
    pub backoff_base_ms: Option<u64>,
    pub backoff_max_ms: Option<u64>,
    pub max_retry_after_ms: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect_ms: Option<u64>,
    pub first_token_ms: Option<u64>,
    pub idle_ms: Option<u64>,
    pub attempt_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
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
    /// The provider bills the prompt of an attempt that failed after it reached the model (a
    /// cut or stalled stream, a cancelled hedge): count it in the request's cost. Default:
    /// on for real providers, off for the mock.
    pub bill_failed_prompts: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RawMock {
    pub fail_status: Option<u16>,
    pub retry_after_s: Option<u32>,
    pub latency_ms: Option<u64>,
    pub chunk_delay_ms: Option<u64>,
    /// Streams that are not continuations end abruptly after this many words (resume demo).
    pub cut_after_chunks: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
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
    /// `"off"` or thresholds over `defaults.degradation` (checked in `config::degradation`).
    pub degradation: Option<serde_json::Value>,
    #[serde(default)]
    pub limits: RawLimits,
    /// Free-form labels (`"eu"`, `"zdr"`) that routes can require.
    #[serde(default)]
    pub tags: Vec<String>,
    /// An embedding model: its vector space (`config::embedding`).
    pub embedding: Option<RawEmbedding>,
}

/// An embedding deployment's vector space.
#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RawEmbedding {
    /// Models whose vectors are comparable share a family (e.g. `"text-embedding-3"`).
    pub family: String,
    /// Length of the vectors it returns.
    pub dimensions: u32,
}

/// What a deployment can do; every capability defaults to true.
#[derive(Debug, Default, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RawCapabilities {
    pub tools: Option<bool>,
    pub vision: Option<bool>,
    pub json: Option<bool>,
    pub streaming: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RawPrice {
    /// USD per million input tokens, as a JSON number or a decimal string.
    pub input_per_mtok_usd: Value,
    /// USD per million output tokens, as a JSON number or a decimal string.
    pub output_per_mtok_usd: Value,
    /// USD per million prompt tokens read from the provider's prompt cache (default: the
    /// input price).
    #[serde(default)]
    pub cached_input_per_mtok_usd: Option<Value>,
    /// USD per million prompt tokens written to the provider's prompt cache (Anthropic's
    /// cache creation; default: the input price).
    #[serde(default)]
    pub cache_write_per_mtok_usd: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RawRoute {
    pub chain: Vec<RawChainEntry>,
    /// "ordered" (default), "weighted", "cheapest", "fastest" or "least_used".
    pub strategy: Option<String>,
    /// Deployments lacking any of these tags are never tried on this route.
    #[serde(default)]
    pub require_tags: Vec<String>,
    pub canary: Option<RawCanary>,
    pub sticky: Option<RawSticky>,
    /// Hedging: start the next deployment if the first has not committed after `after_ms`.
    pub hedge: Option<RawHedge>,
    #[serde(default)]
    pub retry: RawRetry,
    pub request_timeout_ms: Option<u64>,
    #[serde(default)]
    pub fallback_on_content_policy: bool,
    pub description: Option<String>,
    /// Mid-stream resume: "auto" (default), "prefill", "replay" or "off".
    pub resume: Option<String>,
    pub max_resumes: Option<u32>,
    /// Check answers against a strict `json_schema` response format (default true).
    pub validate_output: Option<bool>,
    /// Exact-match response caching (off when absent).
    pub cache: Option<RawCache>,
    /// `"chat"` (default) or `"embeddings"`.
    pub kind: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RawCache {
    pub ttl_s: u64,
    /// "key" (default) or "shared".
    pub scope: Option<String>,
    #[serde(default)]
    pub cache_sampled: bool,
}

/// One chain entry: a deployment name, or `{"deployment": "x", "weight": 3}`.
#[derive(Debug)]
pub struct RawChainEntry {
    pub deployment: String,
    pub weight: Option<u32>,
}

#[derive(Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
struct RawWeightedEntry {
    deployment: String,
    weight: Option<u32>,
}

impl<'de> Deserialize<'de> for RawChainEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = RawChainEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a deployment name or {"deployment": "<name>", "weight": <integer>}"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawChainEntry, E> {
                Ok(RawChainEntry {
                    deployment: v.to_owned(),
                    weight: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawChainEntry, A::Error> {
                let e = RawWeightedEntry::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawChainEntry {
                    deployment: e.deployment,
                    weight: e.weight,
                })
            }
        }
        d.deserialize_any(EntryVisitor)
    }
}

/// A share of a route's traffic that tries `deployment` first.
#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RawCanary {
    pub deployment: String,
    /// Share of requests, in basis points (500 = 5 %).
    pub percent_bps: u32,
}

/// Session affinity: a session keeps its deployment for `ttl_ms` after its last request.
#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RawSticky {
    pub ttl_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RawHedge {
    /// A fixed delay; or, with `after: "p95"`, none.
    pub after_ms: Option<u64>,
    /// `"p95"`: hedge once the first token is later than the deployment's measured p95 time
    /// to first token, within `floor_ms` (also the delay while nothing is measured) and
    /// `cap_ms`.
    pub after: Option<String>,
    pub floor_ms: Option<u64>,
    pub cap_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RawTasks {
    /// Task for requests naming no route (e.g. `"model": "auto"`) that no rule matched.
    pub default: Option<String>,
    /// Task name → route name.
    #[serde(default)]
    pub routes: BTreeMap<String, String>,
    /// Tried in order; the first whose every condition holds picks the task.
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RawRule {
    pub name: String,
    #[serde(default)]
    pub when: RawWhen,
    pub task: String,
}

/// Conditions of a rule; every one present must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RawWhen {
    pub min_prompt_tokens: Option<u64>,
    pub max_prompt_tokens: Option<u64>,
    pub images: Option<bool>,
    pub tools: Option<bool>,
    pub json: Option<bool>,
    /// Regular expression searched in the last user message.
    pub last_user_matches: Option<String>,
    /// Request headers that must have exactly these values.
    #[serde(default)]
    pub header: BTreeMap<String, String>,
    /// Requested model names.
    pub model: Option<Vec<String>>,
    /// Request path, e.g. `/v1/chat/completions`.
    pub path: Option<String>,
}
