//! Per-key (or per-deployment) rate limits and spend budgets: requests and tokens per minute,
//! nano-USD per UTC day and per UTC calendar month.
//!
//! Invariant: `spent_in_period + reserved_total <= budget` after every admission. An admission
//! reserves the request's estimated cost (and tokens) before the call starts; settling swaps
//! the estimate for the actual. So concurrent in-flight calls cannot jointly overrun a budget,
//! and the only possible overshoot is `actual − estimate` of calls that were already in flight
//! when the last request was admitted. A lost settle cannot block a key forever: reservations
//! expire after `RESERVATION_TTL_MS` (or the request's deadline, if later: a reservation
//! outlives its request), and at most `MAX_RESERVATIONS` are kept.
//!
//! RPM/TPM use a sliding 60-second window of one-second buckets: a request's count (and its
//! reserved tokens) sit in the bucket of the second it was admitted, and leave the window 60 s
//! later. Only non-empty buckets are stored (at most 60), which keeps the stored JSON small.
//!
//! Pure: every method takes `now_ms` (Unix epoch milliseconds).
//!
//! Here: the limits, admission, settling and spend. The window's buckets are in `quota_window.rs`,
//! the budget periods and their calendar arithmetic in `quota_calendar.rs`.

#[path = "quota_calendar.rs"]
mod calendar;
#[path = "quota_window.rs"]
mod window;

#[cfg(test)]
use calendar::{civil_from_days, days_from_civil};
use calendar::{day_of, month_of, next_month_start_ms, Period, MS_PER_DAY};
use serde::{Deserialize, Serialize};
use window::{in_window, Bucket};

/// A reservation not settled or released within this time is dropped (without spend).
pub const RESERVATION_TTL_MS: u64 = 15 * 60 * 1000;
/// Most outstanding reservations kept; admitting beyond that first drops the earliest admitted.
pub const MAX_RESERVATIONS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens (input + output) per minute.
    pub tpm: Option<u64>,
    /// Spend cap per UTC day, nano-USD.
    pub budget_day_nanos: Option<u64>,
    /// Spend cap per UTC calendar month, nano-USD.
    pub budget_month_nanos: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Estimate {
    pub tokens: u64,
    pub cost_nanos: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Actual {
    pub tokens: u64,
    pub cost_nanos: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Denial {
    Rpm,
    Tpm,
    BudgetDay,
    BudgetMonth,
    /// The limit's stored state cannot be read: admission fails closed.
    StateUnreadable,
}

/// For `x-ratelimit-*` headers (OpenAI names): limit/remaining/reset for requests and tokens.
/// Fields are `None` when the corresponding limit is not configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Headroom {
    pub limit_requests: Option<u32>,
    pub remaining_requests: Option<u32>,
    pub reset_requests_ms: Option<u64>,
    pub limit_tokens: Option<u64>,
    pub remaining_tokens: Option<u64>,
    pub reset_tokens_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Admission {
    Admitted {
        headroom: Headroom,
    },
    Denied {
        reason: Denial,
        retry_after_ms: u64,
        headroom: Headroom,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Spend {
    /// Settled spend in the current UTC day.
    pub day_nanos: u64,
    /// Settled spend in the current UTC calendar month.
    pub month_nanos: u64,
    /// Estimated cost held by live reservations (not yet in `day_nanos`/`month_nanos`).
    pub reserved_nanos: u64,
    pub reservations: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
struct Reservation {
    id: String,
    /// Admission time; its tokens sit in bucket `at / 1000`.
    #[serde(rename = "at")]
    at_ms: u64,
    #[serde(rename = "t")]
    tokens: u64,
    #[serde(rename = "c")]
    cost_nanos: u64,
    /// Held at least until then (the request's deadline): a long request's reservation must
    /// not expire while it still runs.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    until_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Quota {
    /// Non-empty buckets of the last 60 seconds, oldest first.
    #[serde(rename = "w", skip_serializing_if = "Vec::is_empty")]
    window: Vec<Bucket>,
    /// Outstanding reservations in admission order.
    #[serde(rename = "r", skip_serializing_if = "Vec::is_empty")]
    reservations: Vec<Reservation>,
    #[serde(rename = "d")]
    day: Period,
    #[serde(rename = "m")]
    month: Period,
}

impl Quota {
    /// Atomically checks every limit (rpm, tpm, budget_day, budget_month — the first failing
    /// one is reported) and, if all pass, counts the request (RPM), reserves `est.tokens`
    /// (TPM) and `est.cost_nanos` (budgets) under reservation `id`.
    ///
    /// A denied request records nothing (only housekeeping happens: expiring stale
    /// reservations and dropping buckets that left the window). Admitting an `id` that is
    /// already reserved is idempotent: Admitted, nothing counted twice.
    ///
    /// TPM: a request whose estimate alone exceeds the whole `tpm` limit is admitted when the
    /// window holds no tokens, and denied otherwise — without that exception it could never
    /// pass. (`tpm = 0` gets no exception: it only admits zero-token requests.)
    ///
    /// When `MAX_RESERVATIONS` are outstanding, a successful admission first drops the
    /// earliest-admitted reservation (as `expire` would: no spend), bounding memory.
    pub fn admit(&mut self, id: &str, limits: &Limits, est: Estimate, now_ms: u64) -> Admission {
        self.admit_until(id, limits, est, now_ms, None)
    }

    /// `admit`, the reservation held at least until `until_ms` (the request's deadline) even
    /// past `RESERVATION_TTL_MS`.
    pub fn admit_until(
        &mut self,
        id: &str,
        limits: &Limits,
        est: Estimate,
        now_ms: u64,
        until_ms: Option<u64>,
    ) -> Admission {
        self.expire(now_ms);
        if self.reservations.iter().any(|r| r.id == id) {
            return Admission::Admitted {
                headroom: self.headroom(limits, now_ms),
            };
        }
        if let Some((reason, retry_after_ms)) = self.check(limits, est, now_ms) {
            return Admission::Denied {
                reason,
                retry_after_ms,
                headroom: self.headroom(limits, now_ms),
            };
        }
        // Bound memory: the earliest admitted go first (`drain` keeps `excess <= len`).
        let excess = (self.reservations.len() + 1).saturating_sub(MAX_RESERVATIONS);
        self.reservations
            .drain(..excess.min(self.reservations.len()));
        self.add_to_bucket(now_ms / 1000, 1, est.tokens);
        self.reservations.push(Reservation {
            id: id.to_string(),
            at_ms: now_ms,
            tokens: est.tokens,
            cost_nanos: est.cost_nanos,
            until_ms,
        });
        Admission::Admitted {
            headroom: self.headroom(limits, now_ms),
        }
    }

    /// Replaces reservation `id` by the actual tokens/cost: the tokens replace the estimate in
    /// the second they were reserved in (if still inside the window); the cost is added to
    /// the current day's and month's spend. Returns false if `id` is unknown (already
    /// settled, released or expired) — the actual is then still added to the spend and to the
    /// current second's tokens, so real spend is never lost.
    pub fn settle(&mut self, id: &str, actual: Actual, now_ms: u64) -> bool {
        self.expire(now_ms);
        let found = self.take(id);
        match &found {
            Some(r) => self.retoken(r, actual.tokens, now_ms),
            None => self.add_to_bucket(now_ms / 1000, 0, actual.tokens),
        }
        self.day.add(day_of(now_ms), actual.cost_nanos);
        self.month.add(month_of(now_ms), actual.cost_nanos);
        found.is_some()
    }

    /// Drops reservation `id` without spend (the call failed before any tokens were billed):
    /// its reserved tokens leave the window, its request still counts toward RPM. Returns
    /// false if `id` is unknown.
    pub fn release(&mut self, id: &str, now_ms: u64) -> bool {
        self.expire(now_ms);
        let Some(r) = self.take(id) else {
            return false;
        };
        self.retoken(&r, 0, now_ms);
        true
    }

    /// Drops reservations older than `RESERVATION_TTL_MS` (their cost reservation is freed
    /// without spend; their tokens left the window long ago), so a lost settle cannot block a
    /// key forever. Also drops buckets that left the window. `admit`/`settle`/`release` call it.
    pub fn expire(&mut self, now_ms: u64) {
        self.reservations.retain(|r| !expired(r, now_ms));
        self.window.retain(|b| in_window(b.sec, now_ms));
    }

    pub fn spend(&self, now_ms: u64) -> Spend {
        let live = self.reservations.iter().filter(|r| !expired(r, now_ms));
        Spend {
            day_nanos: self.day.spent(day_of(now_ms)),
            month_nanos: self.month.spent(month_of(now_ms)),
            reserved_nanos: sat_sum(live.clone().map(|r| r.cost_nanos)),
            reservations: u32::try_from(live.count()).unwrap_or(u32::MAX),
        }
    }

    pub fn headroom(&self, limits: &Limits, now_ms: u64) -> Headroom {
        let (requests, tokens) = self.window_totals(now_ms);
        let requests = u32::try_from(requests).unwrap_or(u32::MAX);
        Headroom {
            limit_requests: limits.rpm,
            remaining_requests: limits.rpm.map(|l| l.saturating_sub(requests)),
            reset_requests_ms: limits
                .rpm
                .map(|_| self.reset_ms(now_ms, |b| b.requests > 0)),
            limit_tokens: limits.tpm,
            remaining_tokens: limits.tpm.map(|l| l.saturating_sub(tokens)),
            reset_tokens_ms: limits.tpm.map(|_| self.reset_ms(now_ms, |b| b.tokens > 0)),
        }
    }

    /// The first failing limit and its retry-after, or None when `est` fits everywhere.
    fn check(&self, limits: &Limits, est: Estimate, now_ms: u64) -> Option<(Denial, u64)> {
        let (requests, tokens) = self.window_totals(now_ms);
        if let Some(rpm) = limits.rpm {
            let fits = |r: u64, _t: u64| r.saturating_add(1) <= u64::from(rpm);
            if !fits(requests, tokens) {
                return Some((Denial::Rpm, self.wait_until_fits(now_ms, fits)));
            }
        }
        if let Some(tpm) = limits.tpm {
            let fits = |_r: u64, t: u64| t.saturating_add(est.tokens) <= tpm || (t == 0 && tpm > 0);
            if !fits(requests, tokens) {
                return Some((Denial::Tpm, self.wait_until_fits(now_ms, fits)));
            }
        }
        let spend = self.spend(now_ms);
        let over = |spent: u64, budget: u64| {
            spent
                .saturating_add(spend.reserved_nanos)
                .saturating_add(est.cost_nanos)
                > budget
        };
        if let Some(budget) = limits.budget_day_nanos {
            if over(spend.day_nanos, budget) {
                let end = day_of(now_ms).saturating_add(1).saturating_mul(MS_PER_DAY);
                return Some((Denial::BudgetDay, end.saturating_sub(now_ms).max(1)));
            }
        }
        if let Some(budget) = limits.budget_month_nanos {
            if over(spend.month_nanos, budget) {
                let end = next_month_start_ms(now_ms);
                return Some((Denial::BudgetMonth, end.saturating_sub(now_ms).max(1)));
            }
        }
        None
    }

    fn take(&mut self, id: &str) -> Option<Reservation> {
        let i = self.reservations.iter().position(|r| r.id == id)?;
        Some(self.reservations.remove(i))
    }
}

fn sat_sum(values: impl Iterator<Item = u64>) -> u64 {
    values.fold(0, u64::saturating_add)
}

fn expired(r: &Reservation, now_ms: u64) -> bool {
    r.at_ms.saturating_add(RESERVATION_TTL_MS) <= now_ms && r.until_ms.is_none_or(|u| u <= now_ms)
}

#[cfg(test)]
#[path = "quota_budget_tests.rs"]
mod budget_tests;
#[cfg(test)]
#[path = "quota_property_tests.rs"]
mod property_tests;
#[cfg(test)]
#[path = "quota_tests.rs"]
mod tests;
