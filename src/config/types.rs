//! Validated routing table. Everything here has passed `validate`: every reference resolves,
//! every chain is non-empty, every number is in range, and money is integer nano-USD.

use crate::resilience::ErrorClass;
use crate::state::breaker::BreakerConfig;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts on one deployment before moving on (1 = no retry).
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// A Retry-After longer than this is not waited for: the engine falls back instead.
    pub max_retry_after_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// Until response headers (streaming requests).
    pub connect_ms: u64,
    /// From sending until the first content chunk (streaming requests).
    pub first_token_ms: u64,
    /// Longest silence between chunks once the stream has content.
    pub idle_ms: u64,
    /// The whole attempt; for non-streaming requests, waiting for the complete answer.
    pub attempt_ms: u64,
}

/// Price in nano-USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Price {
    /// Prompt tokens neither read from nor written to the provider's cache.
    pub input_nanos_per_mtok: u64,
    pub output_nanos_per_mtok: u64,
    /// Prompt tokens read from the provider's cache (OpenAI `cached_tokens`, Anthropic
    /// `cache_read_input_tokens`, Gemini `cachedContentTokenCount`).
    pub cached_input_nanos_per_mtok: u64,
    /// Prompt tokens written to the provider's cache (Anthropic `cache_creation_input_tokens`).
    pub cache_write_nanos_per_mtok: u64,
}

impl Price {
    /// Input and output prices, cache reads and writes at the input price.
    pub fn flat(input_nanos_per_mtok: u64, output_nanos_per_mtok: u64) -> Price {
        Price {
            input_nanos_per_mtok,
            output_nanos_per_mtok,
            cached_input_nanos_per_mtok: input_nanos_per_mtok,
            cache_write_nanos_per_mtok: input_nanos_per_mtok,
        }
    }
}

/// Connection settings shared by every HTTP provider kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProvider {
    /// Base URL without trailing slash, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Name of the Worker secret holding the API key, if the provider needs one.
    pub api_key_secret: Option<String>,
    pub headers: Vec<(String, String)>,
}

/// An OpenAI-compatible server and its quirks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiProvider {
    pub http: HttpProvider,
    /// Send `stream_options.include_usage` on streams (some servers reject `stream_options`).
    pub stream_usage: bool,
    /// Rename the client's `max_tokens` / `max_completion_tokens` to this field, if set.
    pub max_tokens_field: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnthropicProvider {
    pub http: HttpProvider,
    /// Sent as `anthropic-version`.
    pub version: String,
    /// `max_tokens` sent when the client gave none (Anthropic requires it).
    pub default_max_tokens: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MockProvider {
    pub fail_status: Option<u16>,
    pub retry_after_s: Option<u32>,
    pub latency_ms: u64,
    pub chunk_delay_ms: u64,
    pub cut_after_chunks: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi(OpenAiProvider),
    Anthropic(AnthropicProvider),
    Gemini(HttpProvider),
    Mock(MockProvider),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    pub prefill: PrefillSupport,
    /// Attempts that failed after reaching the model are billed their prompt (see `raw`).
    pub bill_failed_prompts: bool,
}

/// How a provider can continue a partial answer (for mid-stream resume).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefillSupport {
    None,
    /// A trailing assistant message is continued (Anthropic, many local servers, the mock).
    Assistant,
    /// A trailing assistant message marked `"prefix": true` (DeepSeek-style).
    PrefixFlag,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeMode {
    /// Prefill where the provider supports it, else replay and verify.
    Auto,
    Prefill,
    Replay,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePolicy {
    pub mode: ResumeMode,
    /// Resumes allowed per request.
    pub max: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub name: String,
    /// Index into `RoutingTable::providers`.
    pub provider: usize,
    pub model: String,
    pub context_window: u32,
    pub price: Price,
    pub timeouts: Timeouts,
    pub capabilities: Capabilities,
    pub breaker: BreakerPolicy,
    /// When the deployment counts as degraded (`state::degradation`).
    pub degradation: crate::state::degradation::DegradeConfig,
    pub limits: DeploymentLimits,
    /// Labels routes can require (`require_tags`).
    pub tags: Vec<String>,
    /// The vector space of an embedding model (None: a chat model).
    pub embedding: Option<EmbeddingSpace>,
}

/// An embedding model's vector space: only deployments of the same family and dimension give
/// comparable vectors, so an embeddings route never mixes two spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingSpace {
    pub family: String,
    pub dimensions: u32,
}

/// What a route serves: chat (completions, messages) or embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteKind {
    #[default]
    Chat,
    Embeddings,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Chat => "chat",
            RouteKind::Embeddings => "embeddings",
        }
    }
}

impl Deployment {
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// How a deployment's circuit breaker behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerPolicy {
    pub enabled: bool,
    pub config: BreakerConfig,
    /// Error classes that count as failures; client faults never do.
    pub counted: Vec<ErrorClass>,
    pub cron_probe: bool,
}

impl BreakerPolicy {
    pub fn counts(&self, class: ErrorClass) -> bool {
        self.enabled && !class.is_client_fault() && self.counted.contains(&class)
    }
}

/// A deployment's own request and token quotas (None = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeploymentLimits {
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
}

/// What a deployment can serve; a request needing more skips it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub tools: bool,
    pub vision: bool,
    pub json: bool,
    pub streaming: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            tools: true,
            vision: true,
            json: true,
            streaming: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainStep {
    /// Index into `RoutingTable::deployments`.
    pub deployment: usize,
    /// Retry policy for this step: defaults, then the deployment's, then the route's fields.
    pub retry: RetryPolicy,
    /// Share of first picks under the `weighted` strategy (0 = only ever a fallback).
    pub weight: u32,
    /// The route's canary, not listed in its chain: tried only by the canary slice (or a
    /// session stuck to it), never as an ordinary fallback. Always after the listed steps.
    pub canary_only: bool,
}

/// A non-empty ordered fallback chain; only `validate` can build one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain(Vec<ChainStep>);

impl Chain {
    pub(crate) fn new(steps: Vec<ChainStep>) -> Option<Self> {
        if steps.is_empty() {
            None
        } else {
            Some(Chain(steps))
        }
    }
    pub fn steps(&self) -> &[ChainStep] {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub name: String,
    pub chain: Chain,
    pub request_timeout_ms: u64,
    pub fallback_on_content_policy: bool,
    pub description: Option<String>,
    pub resume: ResumePolicy,
    /// How the first deployment to try is chosen.
    pub strategy: Strategy,
    /// Deployments lacking any of these tags are never tried.
    pub require_tags: Vec<String>,
    pub canary: Option<Canary>,
    /// Session affinity lifetime, when the route has one.
    pub sticky_ttl_ms: Option<u64>,
    /// Hedging: when the first attempt has not committed (first content chunk, or the whole
    /// answer) after this long, the next deployment is started in parallel. With
    /// `hedge_p95_cap_ms`, this is the floor of a delay that follows the deployment's measured
    /// p95 time to first token (and the delay while nothing is measured).
    pub hedge_after_ms: Option<u64>,
    /// Hedging after the measured p95 TTFT (`hedge: {"after": "p95"}`), at most this long.
    pub hedge_p95_cap_ms: Option<u64>,
    /// Answers to requests with a strict `json_schema` response format are checked against it
    /// (`validate_output`, default true).
    pub validate_output: bool,
    /// Exact-match response caching, when the route opts in (`cache`).
    pub cache: Option<CachePolicy>,
    /// Chat or embeddings (`"kind"`); a request of the other kind is refused.
    pub kind: RouteKind,
}

/// A route's response cache: how long an answer is kept, who may read it, and whether sampled
/// requests (temperature > 0 or unset, or tools) are cached too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    pub ttl_s: u32,
    pub scope: CacheScope,
    pub cache_sampled: bool,
}

/// Whose requests share cached answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheScope {
    /// Only the same gateway key's (or, without keys, every caller's).
    Key,
    /// Every caller allowed on the route.
    Shared,
}

impl Route {
    /// The hedge delay for a first attempt whose deployment's measured p95 time to first
    /// token is `p95_ms`; None when the route does not hedge.
    pub fn hedge_delay_ms(&self, p95_ms: Option<u64>) -> Option<u64> {
        let floor = self.hedge_after_ms?;
        Some(match (self.hedge_p95_cap_ms, p95_ms) {
            (Some(cap), Some(p95)) => p95.clamp(floor, cap.max(floor)),
            _ => floor,
        })
    }
}

/// Order in which a route tries its (surviving) deployments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Chain order.
    #[default]
    Ordered,
    /// First pick drawn by integer weights, then chain order.
    Weighted,
    /// Ascending estimated cost of the request.
    Cheapest,
    /// Ascending time to first token.
    Fastest,
    /// Most remaining rate-limit headroom first.
    LeastUsed,
}

impl Strategy {
    pub const ALL: [Strategy; 5] = [
        Strategy::Ordered,
        Strategy::Weighted,
        Strategy::Cheapest,
        Strategy::Fastest,
        Strategy::LeastUsed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Ordered => "ordered",
            Strategy::Weighted => "weighted",
            Strategy::Cheapest => "cheapest",
            Strategy::Fastest => "fastest",
            Strategy::LeastUsed => "least_used",
        }
    }
    pub fn from_name(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A share of a route's traffic that tries `deployment` first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canary {
    /// Index into `RoutingTable::deployments`; always also a step of the route's chain.
    pub deployment: usize,
    /// Share of requests in basis points (0..=10000).
    pub percent_bps: u32,
}

/// Task classification: rules and defaults that pick a route for a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tasks {
    /// Task of requests that name no route and match no rule.
    pub default: Option<String>,
    /// Task name → route name (every route exists).
    pub routes: BTreeMap<String, String>,
    /// In order; the first match wins.
    pub rules: Vec<TaskRule>,
}

impl Tasks {
    /// The route serving `task`.
    pub fn route_of(&self, task: &str) -> Option<&str> {
        self.routes.get(task).map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRule {
    pub name: String,
    pub when: When,
    /// A key of `Tasks::routes`.
    pub task: String,
}

/// Conditions of a rule: every one that is set must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct When {
    pub min_prompt_tokens: Option<u64>,
    pub max_prompt_tokens: Option<u64>,
    pub images: Option<bool>,
    pub tools: Option<bool>,
    pub json: Option<bool>,
    pub last_user_matches: Option<Pattern>,
    /// (lower-case name, exact value).
    pub headers: Vec<(String, String)>,
    pub models: Option<Vec<String>>,
    pub path: Option<String>,
}

/// A compiled regular expression that compares equal by its source text.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    regex: regex_lite::Regex,
}

impl Pattern {
    /// Longest pattern source accepted.
    pub const MAX_LEN: usize = 1_000;

    pub fn new(source: &str) -> Result<Pattern, String> {
        if source.len() > Self::MAX_LEN {
            return Err(format!("at most {} characters", Self::MAX_LEN));
        }
        let regex = regex_lite::RegexBuilder::new(source)
            .size_limit(1 << 20)
            .nest_limit(64)
            .build()
            .map_err(|e| format!("invalid regular expression: {e}"))?;
        Ok(Pattern {
            source: source.to_string(),
            regex,
        })
    }
    pub fn as_str(&self) -> &str {
        &self.source
    }
    pub fn is_match(&self, haystack: &str) -> bool {
        self.regex.is_match(haystack)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

/// What one request may spend on the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Subrequests per request (upstream fetches plus KV and Durable Object calls): the
    /// engine plans attempts within it (`resilience::subrequests`).
    pub subrequests: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingTable {
    /// Output tokens assumed for reservations when a request sets no output limit.
    pub estimated_output_tokens: u32,
    pub limits: RequestLimits,
    /// Origins browsers may call from (`cors.allow_origins`); `*` for any. Empty: no CORS.
    pub cors_origins: Vec<String>,
    pub providers: Vec<Provider>,
    pub deployments: Vec<Deployment>,
    pub routes: BTreeMap<String, Route>,
    /// Task classification, when the table has a `tasks` block.
    pub tasks: Option<Tasks>,
    /// The operator's webhook and which events it gets (`alerts`), when the table names one.
    pub alerts: Option<crate::state::alerts::AlertSettings>,
}

impl RoutingTable {
    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.get(name)
    }
    pub fn deployment(&self, index: usize) -> Option<&Deployment> {
        self.deployments.get(index)
    }
    pub fn provider_of(&self, deployment: &Deployment) -> Option<&Provider> {
        self.providers.get(deployment.provider)
    }
    pub fn route_names(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(String::as_str)
    }
}
