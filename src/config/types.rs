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
    pub input_nanos_per_mtok: u64,
    pub output_nanos_per_mtok: u64,
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
    pub limits: DeploymentLimits,
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingTable {
    /// Output tokens assumed for reservations when a request sets no output limit.
    pub estimated_output_tokens: u32,
    pub providers: Vec<Provider>,
    pub deployments: Vec<Deployment>,
    pub routes: BTreeMap<String, Route>,
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
