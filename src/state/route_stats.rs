//! Per-route statistics, kept in each deployment's object: for every route that sent the
//! deployment traffic, 48 hourly `Figures` (`state::hourly`).
//!
//! Two kinds of figure share a slot, written by two kinds of record:
//! - **request figures** (`RouteRequest`: requests, fallbacks, failures, response-cache hits,
//!   cost, cache-read savings) are counted once per request, in the object of the deployment
//!   that answered it, else of the last deployment it tried: those objects get the request's
//!   reports anyway, so counting there adds no object call the request's subrequest budget did
//!   not plan for. A request that tried no deployment (a response-cache hit; every deployment
//!   skipped) is counted in the object of the route's *first* deployment. For a cache hit this
//!   was chosen over the deployment whose answer was cached: the cache entry is per data centre
//!   and may outlive a table edit that removed that deployment, while the first deployment is
//!   always one of the route's.
//! - **attempt figures** (`RouteAttempt`: attempts, errors, latency, attempt cost) are counted
//!   in the object of the deployment that was tried, one per attempt.
//!
//! So a route's figures are the sum over all deployments' objects (`route_view`). Both records
//! ride on the report each isolate already sends to the object (`worker::outbox`).
//!
//! Invariant: at most `MAX_ROUTES` routes per object (a new route evicts the one seen least
//! recently) and `hourly::KEEP_HOURS` slots per route, and slots serialise without their zero
//! fields, so the stored JSON stays small (well under 100 KB). All sums saturate.
//!
//! Pure: `now_ms` comes in with every call.

use super::hourly::{Hourly, Tally};
use super::stats::{bucket_of, percentile_ms, rate_bps, LATENCY_BOUNDS_MS};
use crate::usage::format_usd;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Routes kept per object, at most.
pub const MAX_ROUTES: usize = 16;

/// One request of a route, as the isolate reports it to the route's first deployment's object.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteRequest {
    pub route: String,
    /// Answered after at least one other deployment was tried or passed over.
    pub fell_back: bool,
    /// No deployment answered.
    pub failed: bool,
    /// Answered from the response cache (no deployment called, cost 0).
    pub cache_hit: bool,
    /// What the request cost (billed failed attempts included), nano-USD.
    pub cost_nanos: u64,
    /// What the provider's prompt cache saved: cached prompt tokens at the input price minus
    /// at the cached-input price, nano-USD.
    pub savings_nanos: u64,
    /// Prompt tokens read from the provider's cache.
    pub cached_tokens: u64,
}

/// One attempt of a route on this deployment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteAttempt {
    pub route: String,
    pub ok: bool,
    pub latency_ms: u64,
    pub cost_nanos: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn all_zero(v: &[u64]) -> bool {
    v.iter().all(|n| *n == 0)
}

/// The figures of one route in one hour (or summed over a window). Stored: short explicit
/// wire names (`state::stored_shapes`), zero fields left out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Figures {
    #[serde(rename = "q", skip_serializing_if = "is_zero")]
    pub requests: u64,
    #[serde(rename = "f", skip_serializing_if = "is_zero")]
    pub fallbacks: u64,
    #[serde(rename = "x", skip_serializing_if = "is_zero")]
    pub failed: u64,
    #[serde(rename = "h", skip_serializing_if = "is_zero")]
    pub cache_hits: u64,
    #[serde(rename = "c", skip_serializing_if = "is_zero")]
    pub cost_nanos: u64,
    #[serde(rename = "s", skip_serializing_if = "is_zero")]
    pub savings_nanos: u64,
    #[serde(rename = "k", skip_serializing_if = "is_zero")]
    pub cached_tokens: u64,
    #[serde(rename = "a", skip_serializing_if = "is_zero")]
    pub attempts: u64,
    #[serde(rename = "e", skip_serializing_if = "is_zero")]
    pub attempt_errors: u64,
    #[serde(rename = "ac", skip_serializing_if = "is_zero")]
    pub attempt_cost_nanos: u64,
    /// Attempt latency histogram (`stats::LATENCY_BOUNDS_MS` buckets; trailing zeros may be
    /// missing).
    #[serde(rename = "l", skip_serializing_if = "all_zero")]
    pub latency_buckets: Vec<u64>,
}

impl Figures {
    pub fn add_request(&mut self, r: &RouteRequest) {
        self.requests = self.requests.saturating_add(1);
        self.fallbacks = self.fallbacks.saturating_add(u64::from(r.fell_back));
        self.failed = self.failed.saturating_add(u64::from(r.failed));
        self.cache_hits = self.cache_hits.saturating_add(u64::from(r.cache_hit));
        self.cost_nanos = self.cost_nanos.saturating_add(r.cost_nanos);
        self.savings_nanos = self.savings_nanos.saturating_add(r.savings_nanos);
        self.cached_tokens = self.cached_tokens.saturating_add(r.cached_tokens);
    }

    pub fn add_attempt(&mut self, a: &RouteAttempt) {
        self.attempts = self.attempts.saturating_add(1);
        self.attempt_errors = self.attempt_errors.saturating_add(u64::from(!a.ok));
        self.attempt_cost_nanos = self.attempt_cost_nanos.saturating_add(a.cost_nanos);
        let i = bucket_of(a.latency_ms);
        if self.latency_buckets.len() <= i {
            self.latency_buckets.resize(i + 1, 0);
        }
        if let Some(b) = self.latency_buckets.get_mut(i) {
            *b = b.saturating_add(1);
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Figures::default()
    }

    /// The request figures for the admin API (money as nano-USD and as a USD string).
    pub fn requests_json(&self) -> Value {
        json!({
            "requests": self.requests,
            "fallbacks": self.fallbacks,
            "failed": self.failed,
            "fallback_rate_bps": rate_bps(self.fallbacks, self.requests),
            "cache_hits": self.cache_hits,
            "cost_nanos": self.cost_nanos,
            "cost_usd": format_usd(self.cost_nanos),
            "savings_nanos": self.savings_nanos,
            "savings_usd": format_usd(self.savings_nanos),
            "cached_tokens": self.cached_tokens,
        })
    }

    /// The attempt figures for the admin API: failover rate = the share of attempts that
    /// failed (the gateway moved on, or the request failed), latency percentiles (bucket upper
    /// bounds; null when there were no attempts).
    pub fn attempts_json(&self) -> Value {
        let p95 = percentile_ms(&self.latency_buckets, 9_500);
        json!({
            "attempts": self.attempts,
            "errors": self.attempt_errors,
            "failover_rate_bps": rate_bps(self.attempt_errors, self.attempts),
            "latency_p50_ms": percentile_ms(&self.latency_buckets, 5_000),
            "latency_p95_ms": p95,
            "latency_buckets": padded(&self.latency_buckets),
            "cost_nanos": self.attempt_cost_nanos,
            "cost_usd": format_usd(self.attempt_cost_nanos),
        })
    }
}

fn padded(b: &[u64]) -> Vec<u64> {
    let mut v = b.to_vec();
    if v.len() < LATENCY_BOUNDS_MS.len() {
        v.resize(LATENCY_BOUNDS_MS.len(), 0);
    }
    v
}

impl Tally for Figures {
    fn merge(&mut self, o: &Self) {
        self.requests = self.requests.saturating_add(o.requests);
        self.fallbacks = self.fallbacks.saturating_add(o.fallbacks);
        self.failed = self.failed.saturating_add(o.failed);
        self.cache_hits = self.cache_hits.saturating_add(o.cache_hits);
        self.cost_nanos = self.cost_nanos.saturating_add(o.cost_nanos);
        self.savings_nanos = self.savings_nanos.saturating_add(o.savings_nanos);
        self.cached_tokens = self.cached_tokens.saturating_add(o.cached_tokens);
        self.attempts = self.attempts.saturating_add(o.attempts);
        self.attempt_errors = self.attempt_errors.saturating_add(o.attempt_errors);
        self.attempt_cost_nanos = self.attempt_cost_nanos.saturating_add(o.attempt_cost_nanos);
        if self.latency_buckets.len() < o.latency_buckets.len() {
            self.latency_buckets.resize(o.latency_buckets.len(), 0);
        }
        for (mine, theirs) in self.latency_buckets.iter_mut().zip(&o.latency_buckets) {
            *mine = mine.saturating_add(*theirs);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
struct Entry {
    /// When the route last sent a record here (for eviction).
    #[serde(rename = "seen")]
    seen_ms: u64,
    #[serde(rename = "f")]
    figures: Hourly<Figures>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteStats {
    #[serde(rename = "r")]
    routes: BTreeMap<String, Entry>,
}

impl RouteStats {
    pub fn record_request(&mut self, r: &RouteRequest, now_ms: u64) {
        self.entry(&r.route, now_ms)
            .figures
            .add(now_ms, |f| f.add_request(r));
    }

    pub fn record_attempt(&mut self, a: &RouteAttempt, now_ms: u64) {
        self.entry(&a.route, now_ms)
            .figures
            .add(now_ms, |f| f.add_attempt(a));
    }

    /// Each route's figures summed over the last `hours` hours (1..=48) ending at `now_ms`;
    /// routes without figures in the window are left out.
    pub fn window(&self, now_ms: u64, hours: u64) -> BTreeMap<String, Figures> {
        self.routes
            .iter()
            .map(|(name, e)| (name.clone(), e.figures.window(now_ms, hours)))
            .filter(|(_, f)| !f.is_empty())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    fn entry(&mut self, route: &str, now_ms: u64) -> &mut Entry {
        if !self.routes.contains_key(route) && self.routes.len() >= MAX_ROUTES {
            let stalest = self
                .routes
                .iter()
                .min_by_key(|(_, e)| e.seen_ms)
                .map(|(name, _)| name.clone());
            if let Some(name) = stalest {
                self.routes.remove(&name);
            }
        }
        let e = self.routes.entry(route.to_string()).or_default();
        e.seen_ms = e.seen_ms.max(now_ms);
        e
    }
}

#[cfg(test)]
#[path = "route_stats_tests.rs"]
mod tests;
