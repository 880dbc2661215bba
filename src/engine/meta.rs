//! What happened while serving one request: every attempt, who answered, usage and timing.
//! Response headers and the per-request log line are both rendered from this.

use crate::resilience::ErrorClass;
use crate::usage::Usage;

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
    /// Deployments passed over without an attempt, with why (`context_window`,
    /// `missing_capability_vision`, …).
    pub skipped: Vec<(String, String)>,
    pub deployment: Option<String>,
    pub provider: Option<String>,
    /// The model that answered, as the upstream named it.
    pub model: Option<String>,
    pub usage: Option<Usage>,
    /// The usage (of the final attempt) was estimated: the provider never reported it.
    pub usage_estimated: bool,
    pub cost_nanos: Option<u64>,
    /// Time spent waiting on upstreams and backoff sleeps; the rest is the gateway's own.
    pub waiting_ms: u64,
    /// Set when the request ended: HTTP status given to the client (200 for streams even if
    /// they ended with an in-band error) and the final error class, if any.
    pub status: u16,
    pub error: Option<String>,
    /// Mid-stream resumes, as `deployment:method`.
    pub resumes: Vec<String>,
    /// Hedging: `deployment:won` for a hedge that answered, `deployment:cancelled` for the
    /// attempt that lost the race.
    pub hedges: Vec<String>,
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
}

impl Meta {
    pub fn overhead_ms(&self, now_ms: u64) -> u64 {
        now_ms
            .saturating_sub(self.started_ms)
            .saturating_sub(self.waiting_ms)
    }

    /// `deployment:class[:status]` for every failed attempt, then `deployment:skipped_<why>`
    /// for every deployment passed over, comma-separated.
    pub fn fallback_reasons(&self) -> String {
        let skips = self
            .skipped
            .iter()
            .map(|(d, why)| format!("{d}:skipped_{why}"));
        let parts: Vec<String> = self
            .attempts
            .iter()
            .filter_map(|a| {
                a.class.map(|c| match a.status {
                    Some(s) => format!("{}:{}:{}", a.deployment, c, s),
                    None => format!("{}:{}", a.deployment, c),
                })
            })
            .chain(skips)
            .collect();
        parts.join(", ")
    }
}
