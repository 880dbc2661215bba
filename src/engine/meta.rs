//! What happened while serving one request: every attempt, who answered, usage and timing.
//! Response headers and the per-request log line are both rendered from this.

use super::resume::Method;
use crate::resilience::ErrorClass;
use crate::state::degradation::Reason;
use crate::usage::Usage;

/// A capability a request may need and a deployment may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    Tools,
    Vision,
    Json,
    Streaming,
}

impl Capability {
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Tools => "tools",
            Capability::Vision => "vision",
            Capability::Json => "json",
            Capability::Streaming => "streaming",
        }
    }
}

/// Why a deployment was passed over without an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Its context window is too small for the request.
    ContextWindow,
    /// It lacks a capability the request needs.
    MissingCapability(Capability),
    /// The request's subrequest budget could not pay for a visit.
    SubrequestBudget,
    BreakerOpen,
    /// Half-open, and another request holds the probe lease.
    BreakerHalfOpen,
    /// The operator's kill switch.
    BreakerForcedOpen,
    /// Its own rate limit (`limits`) refused the attempt.
    DeploymentLimit,
    /// Left out by the route's plan: a required tag, the cost ceiling (`routing::strategy`).
    Plan(&'static str),
}

impl Skip {
    /// Skipped because of its breaker (open, half-open and busy, or killed).
    pub fn is_breaker(self) -> bool {
        matches!(
            self,
            Skip::BreakerOpen | Skip::BreakerHalfOpen | Skip::BreakerForcedOpen
        )
    }
}

impl Skip {
    /// As the log line and `x-router-fallback-reasons` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::ContextWindow => "context_window",
            Skip::MissingCapability(Capability::Tools) => "missing_capability_tools",
            Skip::MissingCapability(Capability::Vision) => "missing_capability_vision",
            Skip::MissingCapability(Capability::Json) => "missing_capability_json",
            Skip::MissingCapability(Capability::Streaming) => "missing_capability_streaming",
            Skip::SubrequestBudget => "subrequest_budget",
            Skip::BreakerOpen => "breaker_open",
            Skip::BreakerHalfOpen => "breaker_half_open",
            Skip::BreakerForcedOpen => "breaker_forced_open",
            Skip::DeploymentLimit => "deployment_limit",
            Skip::Plan(why) => why,
        }
    }
}

/// How a hedged attempt ended for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hedge {
    /// The hedge answered first.
    Won,
    /// The attempt that lost the race, cancelled.
    Cancelled,
}

impl Hedge {
    pub fn as_str(self) -> &'static str {
        match self {
            Hedge::Won => "won",
            Hedge::Cancelled => "cancelled",
        }
    }
}

/// What the route's response cache did for the request (`x-router-cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Answered from the cache; no upstream was called.
    Hit,
    /// Looked up and not found; a storable answer is stored.
    Miss,
    /// Neither read nor written (the client opted out, or a sampled request).
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub deployment: String,
    /// None for the attempt that answered.
    pub class: Option<ErrorClass>,
    pub status: Option<u16>,
    pub started_ms: u64,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub request_id: String,
    pub route: String,
    pub stream: bool,
    pub started_ms: u64,
    pub attempts: Vec<AttemptRecord>,
    /// Deployments passed over without an attempt, with why.
    pub skipped: Vec<(String, Skip)>,
    /// Degraded deployments the plan moved behind healthy ones, with why.
    pub deferred: Vec<(String, Reason)>,
    pub deployment: Option<String>,
    pub provider: Option<String>,
    /// The model that answered, as the upstream named it.
    pub model: Option<String>,
    pub usage: Option<Usage>,
    /// The usage (of the final attempt) was estimated: the provider never reported it.
    pub usage_estimated: bool,
    pub cost_nanos: Option<u64>,
    /// Part of `cost_nanos`: the estimated prompt of each attempt that failed after reaching
    /// the model (in attempt order), then of each cancelled hedge, on providers that bill
    /// them (`bill_failed_prompts`): (deployment, nano-USD).
    pub failed_prompts: Vec<(String, u64)>,
    /// Time spent waiting on upstreams and backoff sleeps; the rest is the gateway's own.
    pub waiting_ms: u64,
    /// Set when the request ended: HTTP status given to the client (200 for streams even if
    /// they ended with an in-band error) and the final error class, if any.
    pub status: u16,
    pub error: Option<String>,
    /// Mid-stream resumes: on which deployment, how.
    pub resumes: Vec<(String, Method)>,
    /// Hedging: the hedge that answered, and the attempt that lost the race.
    pub hedges: Vec<(String, Hedge)>,
    /// First attempts cancelled by their hedge before they committed: the deployment, and
    /// how long it had waited (its time to commit is at least that).
    pub hedge_waits: Vec<(String, u64)>,
    /// The task the request was classified as, and what decided the route (`header`,
    /// `metadata`, `rule:<name>`, `default`, `model`).
    pub task: Option<String>,
    pub route_source: Option<String>,
    /// The gateway key's name, when the caller used one.
    pub key_name: Option<String>,
    /// Headers the glue adds (rate-limit headroom).
    pub extra_headers: Vec<(&'static str, String)>,
    /// Durable Object calls made for this request: (waited on, in the background).
    pub state_calls: (u32, u32),
    /// Subrequests charged to the request's budget (`limits.subrequests`): the worst-case
    /// count of the engine's cost model, the fixed reserve included.
    pub subrequests: u32,
    /// On a route with a response cache: what the cache did.
    pub cache: Option<CacheStatus>,
}

impl Meta {
    /// The sum of `failed_prompts`.
    pub fn failed_prompts_nanos(&self) -> u64 {
        self.failed_prompts
            .iter()
            .map(|(_, n)| *n)
            .fold(0, u64::saturating_add)
    }

    pub fn overhead_ms(&self, now_ms: u64) -> u64 {
        now_ms
            .saturating_sub(self.started_ms)
            .saturating_sub(self.waiting_ms)
    }

    /// `deployment:degraded_<why>` for every degraded deployment moved back, then
    /// `deployment:class[:status]` for every failed attempt, then `deployment:skipped_<why>`
    /// for every deployment passed over, comma-separated.
    /// The request went past its plan's first choice: more than one attempt, or a deployment
    /// skipped or deferred on the way (what the statistics and alerts count as a fallback).
    pub fn fell_back(&self) -> bool {
        self.attempts.len() > 1 || !self.skipped.is_empty() || !self.deferred.is_empty()
    }

    pub fn fallback_reasons(&self) -> String {
        let deferred = self
            .deferred
            .iter()
            .map(|(d, why)| format!("{d}:{}", why.as_str()));
        let failed = self.attempts.iter().filter_map(|a| {
            a.class.map(|c| match a.status {
                Some(s) => format!("{}:{}:{}", a.deployment, c, s),
                None => format!("{}:{}", a.deployment, c),
            })
        });
        let skips = self
            .skipped
            .iter()
            .map(|(d, why)| format!("{d}:skipped_{}", why.as_str()));
        let parts: Vec<String> = deferred.chain(failed).chain(skips).collect();
        parts.join(", ")
    }

    /// `deployment:method` for every resume (the log line).
    pub fn resume_list(&self) -> Vec<String> {
        self.resumes
            .iter()
            .map(|(d, m)| format!("{d}:{}", m.as_str()))
            .collect()
    }

    /// `deployment:won` / `deployment:cancelled`, comma-separated (`x-router-hedge`).
    pub fn hedge_list(&self) -> String {
        let parts: Vec<String> = self
            .hedges
            .iter()
            .map(|(d, h)| format!("{d}:{}", h.as_str()))
            .collect();
        parts.join(",")
    }
}
