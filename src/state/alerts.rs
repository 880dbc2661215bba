//! Alerts to the operator's webhook: what turns into an alert, and the outbox of alerts an
//! object still has to deliver.
//!
//! Invariants, and why:
//! - **One alert per event, subject and window.** An alert is keyed by (event, subject,
//!   `now / window_ms`); a second alert with the same key is dropped when it is pushed, so a
//!   flapping breaker (open → half-open → open → …) gives one `breaker_opened` per window, not
//!   one per flap. The marks of sent keys are kept until their window ends (at most
//!   `MAX_MARKS`).
//! - **Bounded retries, never a loop.** A failed delivery is tried again after `BACKOFF_MS`
//!   (1 s, 5 s, 30 s, 2 min) and dropped after `MAX_TRIES` tries in all; `next_alarm_ms` is
//!   `None` once nothing is pending, so the object's alarm stops rescheduling itself. At most
//!   `MAX_PENDING` alerts wait (the oldest is dropped first), so the stored state stays small.
//! - **Edges, not levels**, for the breaker, degradation and budgets: the functions below see a
//!   before and an after and say what changed. Budget thresholds (50, 80, 100 %) are crossed at
//!   most once each per budget period, since spend only grows within a period.
//!
//! Pure: `now_ms` comes in with every call; the Durable Objects send, this module decides.

use super::breaker::Phase;
use super::degradation::Reason;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Tries in all (the first one and the retries).
pub const MAX_TRIES: u32 = 5;
/// Wait after the n-th failed try (the last entry repeats).
pub const BACKOFF_MS: [u64; 4] = [1_000, 5_000, 30_000, 120_000];
/// Alerts waiting for delivery, at most.
pub const MAX_PENDING: usize = 32;
/// Dedup marks kept, at most.
const MAX_MARKS: usize = 256;
pub const DEFAULT_WINDOW_MS: u64 = 300_000;
pub const DEFAULT_FALLBACK_RATIO_BPS: u32 = 1_000;
/// A route's fallback ratio is judged on at least this many requests in the window.
pub const MIN_FALLBACK_SAMPLES: u64 = 10;
/// Budget thresholds, in percent of the budget.
pub const BUDGET_THRESHOLDS_PCT: [u64; 3] = [50, 80, 100];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    BreakerOpened,
    BreakerClosed,
    Degraded,
    Recovered,
    FallbackRatio,
    Budget,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::BreakerOpened => "breaker_opened",
            Event::BreakerClosed => "breaker_closed",
            Event::Degraded => "degraded",
            Event::Recovered => "recovered",
            Event::FallbackRatio => "fallback_ratio",
            Event::Budget => "budget",
        }
    }
}

/// Which events are sent (`alerts.events`); all on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Switches {
    pub breaker_opened: bool,
    pub breaker_closed: bool,
    pub degraded: bool,
    pub recovered: bool,
    pub fallback_ratio: bool,
    pub budget: bool,
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            breaker_opened: true,
            breaker_closed: true,
            degraded: true,
            recovered: true,
            fallback_ratio: true,
            budget: true,
        }
    }
}

impl Switches {
    pub fn allows(&self, e: Event) -> bool {
        match e {
            Event::BreakerOpened => self.breaker_opened,
            Event::BreakerClosed => self.breaker_closed,
            Event::Degraded => self.degraded,
            Event::Recovered => self.recovered,
            Event::FallbackRatio => self.fallback_ratio,
            Event::Budget => self.budget,
        }
    }
}

/// The table's `alerts` block, validated; it travels with each call to the objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSettings {
    /// Name of the secret holding the webhook URL (never the URL).
    pub secret: String,
    #[serde(default)]
    pub events: Switches,
    pub window_ms: u64,
    pub fallback_ratio_bps: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    Deployment,
    Route,
    Key,
}

impl Subject {
    fn as_str(self) -> &'static str {
        match self {
            Subject::Deployment => "deployment",
            Subject::Route => "route",
            Subject::Key => "key",
        }
    }
}

/// What happened, to what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub event: Event,
    pub subject: Subject,
    pub name: String,
    /// Tells apart alerts of one event on one subject that are deduplicated separately
    /// (a budget's period and threshold: `day:80`); empty for the others.
    #[serde(default)]
    pub scope: String,
    pub detail: String,
}

/// An alert waiting for delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub alert: Alert,
    pub at_ms: u64,
    pub window: u64,
    /// The secret naming the webhook, as the table said when the alert was raised.
    pub secret: String,
    pub tries: u32,
    pub next_ms: u64,
}

impl Pending {
    /// Unique among pending alerts: the dedup key.
    pub fn id(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}",
            self.alert.event.as_str(),
            self.alert.subject.as_str(),
            self.alert.name,
            self.alert.scope,
            self.window
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Mark {
    id: String,
    until_ms: u64,
}

/// What became of a failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    At(u64),
    GaveUp,
}

/// An object's alerts: pending ones and the marks that deduplicate them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Outbox {
    pending: Vec<Pending>,
    marks: Vec<Mark>,
}

impl Outbox {
    /// Queues `alert` unless its event is switched off or it was raised already in this
    /// window. Returns whether it was queued.
    pub fn push(&mut self, alert: Alert, settings: &AlertSettings, now_ms: u64) -> bool {
        if !settings.events.allows(alert.event) {
            return false;
        }
        let window_ms = settings.window_ms.max(1);
        let window = now_ms / window_ms;
        let p = Pending {
            alert,
            at_ms: now_ms,
            window,
            secret: settings.secret.clone(),
            tries: 0,
            next_ms: now_ms,
        };
        let id = p.id();
        self.marks.retain(|m| m.until_ms > now_ms);
        if self.marks.iter().any(|m| m.id == id) {
            return false;
        }
        if self.marks.len() >= MAX_MARKS {
            self.marks.remove(0);
        }
        self.marks.push(Mark {
            id,
            until_ms: window.saturating_add(1).saturating_mul(window_ms),
        });
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
        }
        self.pending.push(p);
        true
    }

    /// The alerts to try now.
    pub fn due(&self, now_ms: u64) -> Vec<Pending> {
        self.pending
            .iter()
            .filter(|p| p.next_ms <= now_ms)
            .cloned()
            .collect()
    }

    pub fn delivered(&mut self, id: &str) {
        self.pending.retain(|p| p.id() != id);
    }

    /// Counts a failed try of `id`: retried after the backoff, or dropped after `MAX_TRIES`.
    pub fn failed(&mut self, id: &str, now_ms: u64) -> Retry {
        let Some(p) = self.pending.iter_mut().find(|p| p.id() == id) else {
            return Retry::GaveUp;
        };
        p.tries = p.tries.saturating_add(1);
        if p.tries >= MAX_TRIES {
            self.pending.retain(|p| p.id() != id);
            return Retry::GaveUp;
        }
        let step = usize::try_from(p.tries - 1).unwrap_or(usize::MAX);
        let wait = BACKOFF_MS
            .get(step)
            .or(BACKOFF_MS.last())
            .copied()
            .unwrap_or(1_000);
        p.next_ms = now_ms.saturating_add(wait);
        Retry::At(p.next_ms)
    }

    /// Drops every pending alert (no webhook to send them to); returns how many.
    pub fn drop_all(&mut self) -> usize {
        std::mem::take(&mut self.pending).len()
    }

    /// When the object's alarm should next fire; None when nothing is pending.
    pub fn next_alarm_ms(&self) -> Option<u64> {
        self.pending.iter().map(|p| p.next_ms).min()
    }

    pub fn pending(&self) -> &[Pending] {
        &self.pending
    }
}

fn open(p: &Phase) -> bool {
    matches!(p, Phase::Open { .. } | Phase::ForcedOpen)
}

/// A breaker that changed phase: `breaker_opened` when it (re-)opened, `breaker_closed` when
/// it closed; nothing for other moves (open → half-open).
pub fn breaker_edge(before: &Phase, after: &Phase) -> Option<Event> {
    if open(after) && !open(before) {
        Some(Event::BreakerOpened)
    } else if *after == Phase::Closed && *before != Phase::Closed {
        Some(Event::BreakerClosed)
    } else {
        None
    }
}

/// A deployment's degradation verdict that changed: `degraded` (with why) or `recovered`.
pub fn degradation_edge(before: Option<Reason>, after: Option<Reason>) -> Option<(Event, String)> {
    match (before, after) {
        (None, Some(r)) => Some((Event::Degraded, r.as_str().to_string())),
        (Some(r), None) => Some((Event::Recovered, format!("was {}", r.as_str()))),
        _ => None,
    }
}

/// The budget thresholds (percent) that spend crossed going from `before` to `after`.
pub fn budget_crossings(before_nanos: u64, after_nanos: u64, budget_nanos: u64) -> Vec<u64> {
    if budget_nanos == 0 {
        return Vec::new();
    }
    let at = |pct: u64| (u128::from(budget_nanos) * u128::from(pct)).div_ceil(100);
    BUDGET_THRESHOLDS_PCT
        .into_iter()
        .filter(|&pct| u128::from(before_nanos) < at(pct) && at(pct) <= u128::from(after_nanos))
        .collect()
}

/// Whether `fallbacks` out of `requests` in the window passes the threshold (with enough
/// requests to judge).
pub fn fallback_ratio_passed(fallbacks: u64, requests: u64, threshold_bps: u32) -> bool {
    requests >= MIN_FALLBACK_SAMPLES
        && u128::from(fallbacks) * 10_000 > u128::from(requests) * u128::from(threshold_bps)
}

/// The JSON the webhook receives: a Slack-compatible `text` and the structured fields.
pub fn payload(p: &Pending, at: &str) -> Value {
    let a = &p.alert;
    let what = match a.event {
        Event::BreakerOpened => "breaker opened",
        Event::BreakerClosed => "breaker closed",
        Event::Degraded => "degraded",
        Event::Recovered => "recovered",
        Event::FallbackRatio => "fallback ratio above threshold",
        Event::Budget => "budget threshold passed",
    };
    let mut body = json!({
        "text": format!("[llm-gateway] {} {}: {} ({})", a.subject.as_str(), a.name, what, a.detail),
        "event": a.event.as_str(),
        "detail": a.detail,
        "at": at,
    });
    if let Some(o) = body.as_object_mut() {
        o.insert(a.subject.as_str().to_string(), json!(a.name));
    }
    body
}

#[cfg(test)]
#[path = "alerts_tests.rs"]
mod tests;
