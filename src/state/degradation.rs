//! Degradation: a deployment that is slow or flaky without being down. Its object keeps two
//! sets of figures from the attempts reported to it: a **baseline** (the long window, from
//! `recent_ms` to `baseline_ms` ago) and a **recent** window (the last `recent_ms`), each with
//! the p95 of latency (non-streamed answers) and of time to first token (streamed ones), the
//! error rate and the timeout rate.
//!
//! Invariants, and why:
//! - **Cold is never degraded**: a verdict needs `min_recent` samples in the recent window and
//!   `min_baseline` in the baseline, so a new or idle deployment keeps its place.
//! - **Hysteresis**: a deployment turns degraded when a figure passes its threshold (p95 over
//!   `latency_factor_pct` % of the baseline's, errors over `error_rate_bps`, timeouts over
//!   `timeout_rate_bps`) and is restored only when every figure is back under half-way (the
//!   factor's midpoint to 100 %, half the rates), and never sooner than `recent_ms` after it
//!   turned: a flapping deployment changes state at most once per recent window. If too few
//!   samples arrive to judge it once that hold is over, it is restored (cold again).
//! - **The baseline is what the deployment is like when well**: it is the newest `baseline_ms`
//!   worth of slots recorded while the deployment was not degraded, however old, and slots
//!   recorded while it was degraded never enter it, so a long degradation cannot become the
//!   new normal (a deployment that stays slow stays behind the others, where the operator
//!   sees it).
//! - Client faults (a request too long, a refusal) say nothing about the deployment and are
//!   not counted at all.
//!
//! Figures are kept in slots of `recent_ms / 5`; latencies in log-scale buckets, four per
//! doubling (within 25 %), kept sparse, so the stored state stays a few KiB. Pure: `now_ms`
//! comes in with every call.

use super::stats::Sample;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The thresholds and windows (routing table: `defaults.degradation`, per deployment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DegradeConfig {
    pub enabled: bool,
    /// Recent p95 (latency or TTFT) above this percentage of the baseline's: degraded.
    pub latency_factor_pct: u32,
    /// Recent error rate above this (basis points): degraded.
    pub error_rate_bps: u32,
    /// Recent timeout rate above this (basis points): degraded.
    pub timeout_rate_bps: u32,
    pub recent_ms: u64,
    pub baseline_ms: u64,
    pub min_recent: u32,
    pub min_baseline: u32,
    /// Share of requests (basis points) that still try a degraded deployment first, so its
    /// recent figures keep coming and it can be seen to recover.
    pub recovery_share_bps: u32,
}

impl Default for DegradeConfig {
    fn default() -> Self {
        DegradeConfig {
            enabled: true,
            latency_factor_pct: 200,
            error_rate_bps: 200,
            timeout_rate_bps: 100,
            recent_ms: 300_000,
            baseline_ms: 3_600_000,
            min_recent: 20,
            min_baseline: 50,
            recovery_share_bps: 500,
        }
    }
}

impl DegradeConfig {
    pub fn off() -> Self {
        DegradeConfig {
            enabled: false,
            ..DegradeConfig::default()
        }
    }

    fn slot_ms(&self) -> u64 {
        (self.recent_ms / SLOTS_PER_RECENT).max(1)
    }

    fn baseline_slots(&self) -> usize {
        usize::try_from(self.baseline_ms / self.slot_ms()).unwrap_or(usize::MAX)
    }
}

const SLOTS_PER_RECENT: u64 = 5;

/// Why a deployment is degraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Timeouts,
    Errors,
    Ttft,
    Latency,
}

impl Reason {
    /// As a fallback reason: `degraded_latency`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeouts => "degraded_timeouts",
            Reason::Errors => "degraded_errors",
            Reason::Ttft => "degraded_ttft",
            Reason::Latency => "degraded_latency",
        }
    }
}

/// Log-scale histogram: (bucket, count), sorted by bucket, four buckets per doubling.
type Histogram = Vec<(u8, u32)>;

fn bump(h: &mut Histogram, b: u8, n: u32) {
    match h.binary_search_by_key(&b, |(k, _)| *k) {
        Ok(i) => {
            if let Some((_, c)) = h.get_mut(i) {
                *c = c.saturating_add(n);
            }
        }
        Err(i) => h.insert(i, (b, n)),
    }
}

fn bucket(ms: u64) -> u8 {
    if ms < 4 {
        return ms as u8;
    }
    let e = 63 - u64::from(ms.leading_zeros());
    let frac = (ms >> (e - 2)) & 3;
    (4 * e + frac).min(u64::from(u8::MAX)) as u8
}

/// The smallest value in bucket `b`.
fn bucket_floor(b: u8) -> u64 {
    if b < 4 {
        return u64::from(b);
    }
    let (e, frac) = (u64::from(b / 4), u64::from(b % 4));
    (4 + frac).checked_shl((e - 2) as u32).unwrap_or(u64::MAX)
}

/// A first attempt that its hedge beat, cancelled after `waited_ms` without committing
/// (`stream`: no first content chunk; else no whole answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HedgeWait {
    pub stream: bool,
    pub waited_ms: u64,
}

/// The largest value in bucket `b`.
fn bucket_ceiling(b: u8) -> u64 {
    b.checked_add(1)
        .map_or(u64::MAX, |next| bucket_floor(next).saturating_sub(1))
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
struct Slot {
    start: u64,
    /// Recorded while the deployment was degraded: kept out of the baseline.
    degraded: bool,
    requests: u32,
    errors: u32,
    timeouts: u32,
    latency: Histogram,
    ttft: Histogram,
}

/// One window's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    pub requests: u64,
    pub errors: u64,
    pub timeouts: u64,
    latency: Histogram,
    ttft: Histogram,
}

impl Figures {
    fn add(&mut self, s: &Slot) {
        self.requests += u64::from(s.requests);
        self.errors += u64::from(s.errors);
        self.timeouts += u64::from(s.timeouts);
        for (mine, theirs) in [(&mut self.latency, &s.latency), (&mut self.ttft, &s.ttft)] {
            for (b, n) in theirs {
                bump(mine, *b, *n);
            }
        }
    }

    fn count(h: &Histogram) -> u64 {
        h.iter().map(|(_, n)| u64::from(*n)).sum()
    }

    /// The bucket that holds the p95.
    fn p95_bucket(h: &Histogram) -> Option<u8> {
        let n = Self::count(h);
        let rank = (n * 95).div_ceil(100).max(1);
        let mut seen = 0;
        for (b, c) in h {
            seen += u64::from(*c);
            if seen >= rank {
                return Some(*b);
            }
        }
        None
    }

    fn p95(h: &Histogram) -> Option<u64> {
        Self::p95_bucket(h).map(bucket_floor)
    }

    pub fn latency_p95_ms(&self) -> Option<u64> {
        Self::p95(&self.latency)
    }

    pub fn ttft_p95_ms(&self) -> Option<u64> {
        Self::p95(&self.ttft)
    }

    fn rate_bps(&self, n: u64) -> u64 {
        (n * 10_000).checked_div(self.requests).unwrap_or(0)
    }

    fn to_json(&self) -> Value {
        json!({
            "requests": self.requests,
            "error_rate_bps": self.rate_bps(self.errors),
            "timeout_rate_bps": self.rate_bps(self.timeouts),
            "latency_p95_ms": self.latency_p95_ms(),
            "latency_samples": Self::count(&self.latency),
            "ttft_p95_ms": self.ttft_p95_ms(),
            "ttft_samples": Self::count(&self.ttft),
        })
    }
}

/// The figures of one deployment and its current verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Degradation {
    slots: Vec<Slot>,
    /// Degraded, why, and since when.
    state: Option<(Reason, u64)>,
    /// The settings of the last judgement (they travel with the reports), for the admin view.
    cfg: Option<DegradeConfig>,
}

impl Degradation {
    /// Adds one attempt's sample (client faults are not counted).
    pub fn record(&mut self, cfg: &DegradeConfig, s: &Sample, now_ms: u64) {
        if s.client_fault || !cfg.enabled {
            return;
        }
        let Some(slot) = self.slot_at(cfg, now_ms) else {
            return;
        };
        slot.requests = slot.requests.saturating_add(1);
        if s.timeout {
            slot.timeouts = slot.timeouts.saturating_add(1);
        } else if !s.ok {
            slot.errors = slot.errors.saturating_add(1);
        } else if let Some(t) = s.ttft_ms {
            bump(&mut slot.ttft, bucket(t), 1);
        } else {
            bump(&mut slot.latency, bucket(s.latency_ms), 1);
        }
    }

    /// A first attempt cancelled by its hedge before it committed: its time to commit (the
    /// first content chunk of a stream, the whole answer otherwise) is at least `w.waited_ms`.
    /// Without it a deployment that its hedge always beats is never measured, and the hedge
    /// keeps firing at its floor on every request. A lower bound ranks like the true value
    /// above it, so it is counted (as a TTFT or a latency sample) only when it is in or above
    /// the bucket of the p95 the hedge uses now, or when there is none yet; the p95 then
    /// climbs to the deployment's real time.
    pub fn record_hedge_wait(&mut self, cfg: &DegradeConfig, w: HedgeWait, now_ms: u64) {
        if !cfg.enabled {
            return;
        }
        let b = bucket(w.waited_ms);
        let counts = self
            .hedge_p95_bucket(cfg, w.stream, now_ms)
            .is_none_or(|p95| b >= p95);
        if let (true, Some(slot)) = (counts, self.slot_at(cfg, now_ms)) {
            bump(
                if w.stream {
                    &mut slot.ttft
                } else {
                    &mut slot.latency
                },
                b,
                1,
            );
        }
    }

    /// The slot that records at `now_ms` (a new one when its time has come).
    fn slot_at(&mut self, cfg: &DegradeConfig, now_ms: u64) -> Option<&mut Slot> {
        let slot_ms = cfg.slot_ms();
        let start = now_ms - now_ms % slot_ms;
        let degraded = self.state.is_some();
        if self.slots.last().is_none_or(|last| last.start != start) {
            self.slots.push(Slot {
                start,
                ..Slot::default()
            });
            self.prune(cfg, now_ms);
        }
        let slot = self.slots.last_mut()?;
        slot.degraded |= degraded;
        Some(slot)
    }

    /// (recent, baseline) figures at `now_ms`. The baseline is the newest `baseline_ms` of
    /// slots that were recorded while the deployment was well, however long ago.
    pub fn figures(&self, cfg: &DegradeConfig, now_ms: u64) -> (Figures, Figures) {
        let recent_from = now_ms.saturating_sub(cfg.recent_ms);
        let (mut recent, mut base) = (Figures::default(), Figures::default());
        for s in self.slots.iter().filter(|s| s.start >= recent_from) {
            recent.add(s);
        }
        for s in self.baseline_slots(recent_from).take(cfg.baseline_slots()) {
            base.add(s);
        }
        (recent, base)
    }

    /// Slots that may count for the baseline, newest first.
    fn baseline_slots(&self, recent_from: u64) -> impl Iterator<Item = &Slot> {
        self.slots
            .iter()
            .rev()
            .filter(move |s| s.start < recent_from && !s.degraded)
    }

    /// Keeps the recent window's slots and the baseline's, nothing else: at most
    /// `SLOTS_PER_RECENT + 1 + baseline_ms / slot` slots.
    fn prune(&mut self, cfg: &DegradeConfig, now_ms: u64) {
        let recent_from = now_ms.saturating_sub(cfg.recent_ms);
        let old_well = self.baseline_slots(recent_from).count();
        let mut drop_well = old_well.saturating_sub(cfg.baseline_slots());
        self.slots.retain(|s| {
            if s.start >= recent_from {
                return true;
            }
            if s.degraded {
                return false;
            }
            if drop_well > 0 {
                drop_well -= 1;
                return false;
            }
            true
        });
    }

    /// Judges the deployment now (with hysteresis) and returns the verdict.
    pub fn update(&mut self, cfg: &DegradeConfig, now_ms: u64) -> Option<Reason> {
        self.cfg = Some(*cfg);
        if !cfg.enabled {
            self.state = None;
            return None;
        }
        let (recent, base) = self.figures(cfg, now_ms);
        let recent_from = now_ms.saturating_sub(cfg.recent_ms);
        self.state = match self.state {
            None => {
                let turned = breach(cfg, &recent, &base, true).map(|r| (r, now_ms));
                if turned.is_some() {
                    // The evidence is not what the deployment is like when well.
                    for s in self.slots.iter_mut().filter(|s| s.start >= recent_from) {
                        s.degraded = true;
                    }
                }
                turned
            }
            Some((reason, since)) if now_ms < since.saturating_add(cfg.recent_ms) => {
                Some((reason, since))
            }
            Some((_, since)) => breach(cfg, &recent, &base, false).map(|r| (r, since)),
        };
        self.current()
    }

    /// The p95 time to commit to hedge on: of the first token for streams (`stream`), of the
    /// whole answer otherwise. The recent window's when it holds `min_recent` such answers,
    /// else the baseline's when it holds `min_baseline`. It is the top of the p95's bucket (at
    /// most 25 % above the true p95, never below it), so that a deployment that always takes
    /// about the same time is not hedged on every request.
    pub fn hedge_p95_ms(&self, cfg: &DegradeConfig, stream: bool, now_ms: u64) -> Option<u64> {
        self.hedge_p95_bucket(cfg, stream, now_ms)
            .map(bucket_ceiling)
    }

    fn hedge_p95_bucket(&self, cfg: &DegradeConfig, stream: bool, now_ms: u64) -> Option<u8> {
        let (recent, base) = self.figures(cfg, now_ms);
        let pick = |f: Figures| if stream { f.ttft } else { f.latency };
        let (recent, base) = (pick(recent), pick(base));
        let enough = |h: &Histogram, min: u32| Figures::count(h) >= u64::from(min.max(1));
        if enough(&recent, cfg.min_recent) {
            return Figures::p95_bucket(&recent);
        }
        enough(&base, cfg.min_baseline)
            .then(|| Figures::p95_bucket(&base))
            .flatten()
    }

    pub fn current(&self) -> Option<Reason> {
        self.state.map(|(r, _)| r)
    }

    /// The admin view: the verdict and both windows' figures (with the last settings used).
    pub fn to_json(&self, now_ms: u64) -> Value {
        let cfg = self.cfg.unwrap_or_default();
        let (recent, base) = self.figures(&cfg, now_ms);
        json!({
            "degraded": self.current().map(Reason::as_str),
            "since_ms": self.state.map(|(_, since)| since),
            "enabled": cfg.enabled,
            "recent": recent.to_json(),
            "baseline": base.to_json(),
        })
    }
}

/// The first figure past its threshold (`entering`), or past the half-way mark back to normal
/// (staying degraded), when both windows hold enough samples for it.
fn breach(cfg: &DegradeConfig, recent: &Figures, base: &Figures, entering: bool) -> Option<Reason> {
    let (min_r, min_b) = (u64::from(cfg.min_recent), u64::from(cfg.min_baseline));
    let (factor, errors, timeouts) = if entering {
        (
            cfg.latency_factor_pct,
            cfg.error_rate_bps,
            cfg.timeout_rate_bps,
        )
    } else {
        (
            cfg.latency_factor_pct.div_ceil(2) + 50,
            cfg.error_rate_bps / 2,
            cfg.timeout_rate_bps / 2,
        )
    };
    if recent.requests >= min_r && base.requests >= min_b {
        if recent.rate_bps(recent.timeouts) > u64::from(timeouts) {
            return Some(Reason::Timeouts);
        }
        if recent.rate_bps(recent.errors) > u64::from(errors) {
            return Some(Reason::Errors);
        }
    }
    let slow = |r: &Histogram, b: &Histogram| {
        if Figures::count(r) < min_r || Figures::count(b) < min_b {
            return false;
        }
        match (Figures::p95(r), Figures::p95(b)) {
            (Some(r), Some(b)) => {
                r.saturating_mul(100) > b.max(1).saturating_mul(u64::from(factor))
            }
            _ => false,
        }
    };
    if slow(&recent.ttft, &base.ttft) {
        return Some(Reason::Ttft);
    }
    slow(&recent.latency, &base.latency).then_some(Reason::Latency)
}

#[cfg(test)]
#[path = "degradation_tests.rs"]
mod tests;
