//! Usage counters per gateway key or per deployment, for the admin dashboard: an all-time
//! total plus hourly (last `KEEP_HOURS`) and daily (last `KEEP_DAYS`, UTC) series.
//!
//! Invariant: every recorded sample is in `total`, and in the hour and day slot of its
//! timestamp unless that slot is older than the retention horizon; each series holds at most
//! one slot per hour/day, sorted oldest first, and only slots inside the retention horizon
//! (relative to the newest slot). Pruning on every `record` keeps the stored JSON bounded
//! (at most 48 + 35 slots) however long the key lives, while `total` keeps the full history.
//! All arithmetic saturates, so a counter can stick at `u64::MAX` but never wrap or panic.
//!
//! Pure: timestamps come in as `now_ms` (Unix epoch milliseconds).

use crate::usage::format_usd;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Upper bounds (inclusive) of the latency histogram buckets; the last one is open-ended.
pub const LATENCY_BOUNDS_MS: [u64; 11] = [
    50,
    100,
    200,
    500,
    1000,
    2000,
    5000,
    10_000,
    30_000,
    60_000,
    u64::MAX,
];
/// Hourly slots kept, counting the current hour.
pub const KEEP_HOURS: u64 = 48;
/// Daily slots kept, counting the current day.
pub const KEEP_DAYS: u64 = 35;
const MS_PER_HOUR: u64 = 3_600_000;
const MS_PER_DAY: u64 = 86_400_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub fallbacks: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_nanos: u64,
    pub latency_ms_sum: u64,
    /// Latency histogram: counts per bucket with upper bounds `LATENCY_BOUNDS_MS`. Stored JSON
    /// with fewer entries (older formats) is padded on the next update.
    pub latency_buckets: Vec<u64>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            requests: 0,
            ok: 0,
            errors: 0,
            fallbacks: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost_nanos: 0,
            latency_ms_sum: 0,
            latency_buckets: vec![0; LATENCY_BOUNDS_MS.len()],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Sample {
    pub ok: bool,
    pub fallback: bool,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_nanos: u64,
    pub latency_ms: u64,
    /// Time to the first content chunk, for streamed answers.
    #[serde(default)]
    pub ttft_ms: Option<u64>,
    /// The attempt failed on one of its deadlines (degradation counts timeouts apart).
    #[serde(default)]
    pub timeout: bool,
    /// The attempt failed on the request's own fault: it says nothing about the deployment.
    #[serde(default)]
    pub client_fault: bool,
}

impl Counters {
    pub fn add(&mut self, s: &Sample) {
        self.requests = self.requests.saturating_add(1);
        if s.ok {
            self.ok = self.ok.saturating_add(1);
        } else {
            self.errors = self.errors.saturating_add(1);
        }
        if s.fallback {
            self.fallbacks = self.fallbacks.saturating_add(1);
        }
        self.input_tokens = self.input_tokens.saturating_add(s.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(s.output_tokens);
        self.cost_nanos = self.cost_nanos.saturating_add(s.cost_nanos);
        self.latency_ms_sum = self.latency_ms_sum.saturating_add(s.latency_ms);
        self.pad_buckets(LATENCY_BOUNDS_MS.len());
        if let Some(b) = self.latency_buckets.get_mut(bucket_of(s.latency_ms)) {
            *b = b.saturating_add(1);
        }
    }

    pub fn merge(&mut self, other: &Counters) {
        self.requests = self.requests.saturating_add(other.requests);
        self.ok = self.ok.saturating_add(other.ok);
        self.errors = self.errors.saturating_add(other.errors);
        self.fallbacks = self.fallbacks.saturating_add(other.fallbacks);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cost_nanos = self.cost_nanos.saturating_add(other.cost_nanos);
        self.latency_ms_sum = self.latency_ms_sum.saturating_add(other.latency_ms_sum);
        self.pad_buckets(other.latency_buckets.len().max(LATENCY_BOUNDS_MS.len()));
        for (mine, theirs) in self.latency_buckets.iter_mut().zip(&other.latency_buckets) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    /// Upper bound of the bucket holding the p-th percentile (`p_bps` in basis points,
    /// 5000 = p50, capped at 10_000); None if no samples. A percentile in the open-ended
    /// last bucket is `u64::MAX`.
    pub fn percentile_ms(&self, p_bps: u32) -> Option<u64> {
        percentile_ms(&self.latency_buckets, p_bps)
    }

    /// Errors per 10_000 requests (0 when there are none).
    pub fn error_rate_bps(&self) -> u64 {
        rate_bps(self.errors, self.requests)
    }

    /// Fallbacks per 10_000 requests (0 when there are none).
    pub fn fallback_rate_bps(&self) -> u64 {
        rate_bps(self.fallbacks, self.requests)
    }

    /// The admin-API view: every field, plus `cost_usd`, p50/p95/p99 (null when empty) and
    /// error/fallback rates in basis points.
    pub fn to_json(&self) -> Value {
        json!({
            "requests": self.requests,
            "ok": self.ok,
            "errors": self.errors,
            "fallbacks": self.fallbacks,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_nanos": self.cost_nanos,
            "cost_usd": format_usd(self.cost_nanos),
            "latency_ms_sum": self.latency_ms_sum,
            "latency_buckets": self.latency_buckets,
            "latency_p50_ms": self.percentile_ms(5_000),
            "latency_p95_ms": self.percentile_ms(9_500),
            "latency_p99_ms": self.percentile_ms(9_900),
            "error_rate_bps": self.error_rate_bps(),
            "fallback_rate_bps": self.fallback_rate_bps(),
        })
    }

    fn pad_buckets(&mut self, len: usize) {
        if self.latency_buckets.len() < len {
            self.latency_buckets.resize(len, 0);
        }
    }
}

/// The index of the latency bucket (`LATENCY_BOUNDS_MS`) that holds `latency_ms`.
pub fn bucket_of(latency_ms: u64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|bound| latency_ms <= *bound)
        .unwrap_or(LATENCY_BOUNDS_MS.len().saturating_sub(1))
}

/// Upper bound of the bucket of `buckets` (counts per `LATENCY_BOUNDS_MS` bucket) holding the
/// p-th percentile (`p_bps` in basis points, capped at 10_000); None if no samples. A
/// percentile in the open-ended last bucket is `u64::MAX`.
pub fn percentile_ms(buckets: &[u64], p_bps: u32) -> Option<u64> {
    let n = buckets.iter().fold(0u64, |acc, c| acc.saturating_add(*c));
    if n == 0 {
        return None;
    }
    // Nearest-rank: the smallest bucket whose cumulative count reaches ceil(n * p).
    let p = u128::from(p_bps.min(10_000));
    let rank = (u128::from(n) * p).div_ceil(10_000).max(1);
    let mut seen = 0u128;
    for (i, c) in buckets.iter().enumerate() {
        seen = seen.saturating_add(u128::from(*c));
        if seen >= rank {
            return Some(LATENCY_BOUNDS_MS.get(i).copied().unwrap_or(u64::MAX));
        }
    }
    Some(u64::MAX)
}

/// `part` per 10_000 of `whole` (0 when `whole` is 0).
pub fn rate_bps(part: u64, whole: u64) -> u64 {
    (u128::from(part) * 10_000)
        .checked_div(u128::from(whole))
        .map_or(0, |r| u64::try_from(r).unwrap_or(u64::MAX))
}

/// One hour or day of counters, tagged with its number (`now_ms / period_ms`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
struct Slot {
    #[serde(rename = "n")]
    num: u64,
    #[serde(rename = "c")]
    counters: Counters,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    total: Counters,
    /// Hour slots, oldest first.
    hours: Vec<Slot>,
    /// UTC day slots, oldest first.
    days: Vec<Slot>,
}

impl Stats {
    pub fn record(&mut self, s: &Sample, now_ms: u64) {
        self.total.add(s);
        record_in(&mut self.hours, now_ms / MS_PER_HOUR, KEEP_HOURS, s);
        record_in(&mut self.days, now_ms / MS_PER_DAY, KEEP_DAYS, s);
    }

    pub fn total(&self) -> &Counters {
        &self.total
    }

    /// Hourly series, oldest first, only hours that have data: (hour_start_ms, Counters).
    pub fn hours(&self) -> Vec<(u64, Counters)> {
        series(&self.hours, MS_PER_HOUR, 0)
    }

    /// Daily (UTC) series, oldest first, only days that have data: (day_start_ms, Counters).
    pub fn days(&self) -> Vec<(u64, Counters)> {
        series(&self.days, MS_PER_DAY, 0)
    }

    /// JSON for the admin API: `{"total": {...}, "hours": [{"start_ms": .., ...}], "days":
    /// [...]}`, each entry shaped by `Counters::to_json`. Slots that have fallen out of the
    /// retention horizon by `now_ms` (but were not yet pruned by a `record`) are left out.
    pub fn to_json(&self, now_ms: u64) -> Value {
        let entries = |slots: &[Slot], period_ms: u64, keep: u64| -> Vec<Value> {
            let oldest = (now_ms / period_ms).saturating_sub(keep.saturating_sub(1));
            series(slots, period_ms, oldest)
                .into_iter()
                .map(|(start_ms, c)| {
                    let mut v = c.to_json();
                    if let Some(o) = v.as_object_mut() {
                        o.insert("start_ms".to_string(), json!(start_ms));
                    }
                    v
                })
                .collect()
        };
        json!({
            "total": self.total.to_json(),
            "hours": entries(&self.hours, MS_PER_HOUR, KEEP_HOURS),
            "days": entries(&self.days, MS_PER_DAY, KEEP_DAYS),
        })
    }
}

/// Adds `s` to slot `num` (inserted in order if absent), then drops slots more than `keep`
/// periods behind the newest. A sample for a slot already beyond the horizon is not stored.
fn record_in(slots: &mut Vec<Slot>, num: u64, keep: u64, s: &Sample) {
    let newest = slots.last().map_or(num, |last| last.num.max(num));
    let oldest = newest.saturating_sub(keep.saturating_sub(1));
    if num >= oldest {
        match slots.iter_mut().find(|slot| slot.num == num) {
            Some(slot) => slot.counters.add(s),
            None => {
                let pos = slots
                    .iter()
                    .position(|slot| slot.num > num)
                    .unwrap_or(slots.len());
                let mut counters = Counters::default();
                counters.add(s);
                slots.insert(pos, Slot { num, counters });
            }
        }
    }
    slots.retain(|slot| slot.num >= oldest);
}

fn series(slots: &[Slot], period_ms: u64, oldest: u64) -> Vec<(u64, Counters)> {
    slots
        .iter()
        .filter(|slot| slot.num >= oldest && slot.counters.requests > 0)
        .map(|slot| (slot.num.saturating_mul(period_ms), slot.counters.clone()))
        .collect()
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;
