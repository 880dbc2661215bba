//! The circuit breaker of one deployment: closed → open → half-open → closed.
//!
//! Invariants, and why:
//! - **Open means no traffic but probes.** While open, `acquire_probe` grants nothing before
//!   the cooldown ends (unless forced, for a chain whose every deployment is open); after it,
//!   at most `half_open_probes` leases are out at once. A lease expires after
//!   `probe_lease_ms`, so a probe whose report was lost cannot wedge the breaker half-open.
//! - **Only a probe's outcome moves a half-open breaker.** Reports from requests admitted
//!   before the trip (stale isolate snapshots) are counted nowhere, so one late success cannot
//!   close a breaker that the probe is still testing, and late failures cannot re-trip it.
//! - **Cooldowns grow on repeated trips** (doubling, capped at `cooldown_max_ms`) and honour
//!   the provider's Retry-After (also capped), and reset once a probe succeeds. With the
//!   defaults the cap is the cooldown (30 s): nothing grows (README, "Breaker defaults").
//! - **A failed probe's cooldown counts from when the probe started**, not from when it failed:
//!   a probe that took `d` to fail is followed by the next one `max(cooldown, d)` after it
//!   started. So a deployment that heals while a probe is out is probed again, and gets its
//!   traffic back, at most one cooldown after it healed, and never sooner than one cooldown
//!   after the previous probe.
//! - **Probe rounds are at least `cooldown_ms` apart**: a probe lease taken while none is out
//!   (after the cooldown, forced, or after a lost lease expired) needs `cooldown_ms` since the
//!   previous grant. A forced probe (the whole chain open) comes early only by that much, so
//!   with one probe at a time a deployment that stays down is probed at most once per
//!   `cooldown_ms`, whatever asks (user requests, forced probes, the cron).
//! - **A trip's cooldown counts from when the tripping attempt started**, as a failed probe's
//!   does: the deployment was failing since then. An attempt that hangs until its timeout
//!   (started before the deployment healed, failing after) then opens the breaker no later
//!   than one cooldown after the healing, not one cooldown after the timeout.
//! - **Failures of attempts started before a probe closed the breaker are not counted**: they
//!   tell of the outage the probe saw end (a stale isolate's requests, hanging until their
//!   timeout), not of the deployment now, so they cannot re-trip a healed deployment.
//! - **A kill switch (`force_open`) overrides everything** until `reset`.
//!
//! Every method takes `now_ms`: the Durable Object passes its clock, the tests a manual one.

use super::window::Window;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerConfig {
    /// Trip after this many failures in a row (0 = never by count).
    pub consecutive_failures: u32,
    /// Trip when the failure rate over the window reaches this (basis points; 0 = never by rate)…
    pub failure_rate_bps: u32,
    /// …once the window holds at least this many outcomes.
    pub min_requests: u32,
    pub window_ms: u64,
    /// First cooldown; doubled on each trip in a row, up to `cooldown_max_ms`.
    pub cooldown_ms: u64,
    pub cooldown_max_ms: u64,
    /// Probes allowed in flight while half-open.
    pub half_open_probes: u32,
    /// A granted probe that never reports frees its slot after this long.
    pub probe_lease_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: 5,
            failure_rate_bps: 5_000,
            min_requests: 20,
            window_ms: 60_000,
            // 30 s, not growing: a healed deployment waits at most one cooldown for its
            // traffic, and a down one is probed at most once per cooldown (README,
            // "Breaker defaults").
            cooldown_ms: 30_000,
            cooldown_max_ms: 30_000,
            half_open_probes: 1,
            probe_lease_ms: 60_000,
        }
    }
}

/// Stored in the deployment's object: wire names are explicit so that renaming a variant in
/// Rust never makes stored breakers unreadable (`stored_shapes` pins them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state")]
pub enum Phase {
    #[serde(rename = "closed")]
    Closed,
    #[serde(rename = "open")]
    Open {
        #[serde(default)]
        until_ms: u64,
    },
    /// Lease expiry times of the probes in flight.
    #[serde(rename = "half_open")]
    HalfOpen {
        #[serde(default)]
        leases: Vec<u64>,
    },
    /// Kill switch: open until an operator resets it.
    #[serde(rename = "forced_open")]
    ForcedOpen,
}

/// What one attempt on the deployment came to, as far as the breaker is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub ok: bool,
    /// The attempt held a probe lease.
    #[serde(default)]
    pub probe: bool,
    /// The provider's Retry-After, if it sent one.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
    /// When the attempt started (a failure's: see `Breaker::record`). Older reports have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
}

/// The part of the breaker a request needs: a small value to cache in each isolate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum View {
    Closed,
    /// No traffic until `until_ms`; then a probe may be asked for.
    Open {
        until_ms: u64,
    },
    /// Probing: a request must hold a probe lease to go through.
    HalfOpen,
    ForcedOpen,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    pub phase: Phase,
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Trips since the breaker last closed (drives the cooldown growth).
    #[serde(default)]
    pub trips: u32,
    #[serde(default)]
    pub window: Window,
    #[serde(default)]
    pub opened_at_ms: Option<u64>,
    /// Lifetime trip count, for the dashboard.
    #[serde(default)]
    pub total_trips: u64,
    /// When the last probe lease was granted (spaces probe rounds; a failed probe's cooldown
    /// counts from it). Not written while None, so older stored shapes stay as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probed_at_ms: Option<u64>,
    /// When a successful probe last closed it: failures of attempts started before then are
    /// not counted. Not written while None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at_ms: Option<u64>,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            phase: Phase::Closed,
            consecutive_failures: 0,
            trips: 0,
            window: Window::default(),
            opened_at_ms: None,
            total_trips: 0,
            probed_at_ms: None,
            closed_at_ms: None,
        }
    }
}

impl Breaker {
    pub fn view(&self, now_ms: u64) -> View {
        match &self.phase {
            Phase::Closed => View::Closed,
            Phase::Open { until_ms } if *until_ms > now_ms => View::Open {
                until_ms: *until_ms,
            },
            Phase::Open { .. } | Phase::HalfOpen { .. } => View::HalfOpen,
            Phase::ForcedOpen => View::ForcedOpen,
        }
    }

    /// Asks to send one request while the breaker is not closed. Closed: always granted (no
    /// lease is taken). `force` grants a probe before the cooldown ends (the whole chain is
    /// open and this deployment reopens first), but not within `cooldown_ms` of the previous
    /// probe; never through a kill switch.
    pub fn acquire_probe(&mut self, cfg: &BreakerConfig, force: bool, now_ms: u64) -> bool {
        let lease = now_ms.saturating_add(cfg.probe_lease_ms);
        let round_due = self
            .probed_at_ms
            .is_none_or(|at| now_ms >= at.saturating_add(cfg.cooldown_ms));
        let granted = match &mut self.phase {
            Phase::Closed => return true,
            Phase::ForcedOpen => false,
            Phase::Open { until_ms } => {
                let cooled = *until_ms <= now_ms;
                if cooled || (force && round_due) {
                    self.phase = Phase::HalfOpen {
                        leases: vec![lease],
                    };
                    true
                } else {
                    false
                }
            }
            Phase::HalfOpen { leases } => {
                leases.retain(|&expiry| expiry > now_ms);
                // A new round (no lease out: the last one expired unreported) is spaced like
                // any; more probes of the same round (`half_open_probes` > 1) are not.
                let room = leases.len() < cfg.half_open_probes.max(1) as usize;
                if room && (!leases.is_empty() || round_due) {
                    leases.push(lease);
                    true
                } else {
                    false
                }
            }
        };
        if granted {
            self.probed_at_ms = Some(now_ms);
        }
        granted
    }

    pub fn record(&mut self, cfg: &BreakerConfig, report: Report, now_ms: u64) {
        match &mut self.phase {
            Phase::ForcedOpen | Phase::Open { .. } => {}
            Phase::HalfOpen { leases } => {
                if !report.probe {
                    return;
                }
                if report.ok {
                    self.close();
                    self.closed_at_ms = Some(now_ms);
                } else {
                    // Free the lease (the earliest one) and re-open with a longer cooldown.
                    if let Some(pos) = leases
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, e)| **e)
                        .map(|(i, _)| i)
                    {
                        leases.remove(pos);
                    }
                    // The next probe comes one cooldown after this one started.
                    let from = self.probed_at_ms.unwrap_or(now_ms).min(now_ms);
                    self.trip(cfg, report.retry_after_ms, from, now_ms);
                }
            }
            Phase::Closed => {
                let before_close = report
                    .started_ms
                    .zip(self.closed_at_ms)
                    .is_some_and(|(started, closed)| started < closed);
                if !report.ok && before_close {
                    return;
                }
                self.window.record(report.ok, cfg.window_ms, now_ms);
                if report.ok {
                    self.consecutive_failures = 0;
                    return;
                }
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                let by_count = cfg.consecutive_failures > 0
                    && self.consecutive_failures >= cfg.consecutive_failures;
                let counts = self.window.counts(cfg.window_ms, now_ms);
                let by_rate = cfg.failure_rate_bps > 0
                    && counts.total() >= u64::from(cfg.min_requests.max(1))
                    && counts.failure_bps() >= u64::from(cfg.failure_rate_bps);
                if by_count || by_rate {
                    // The deployment was failing since this attempt started.
                    let from = report.started_ms.unwrap_or(now_ms).min(now_ms);
                    self.trip(cfg, report.retry_after_ms, from, now_ms);
                }
            }
        }
    }

    /// The cooldown the next trip would get.
    pub fn next_cooldown_ms(&self, cfg: &BreakerConfig, retry_after_ms: Option<u64>) -> u64 {
        let grown = cfg
            .cooldown_ms
            .saturating_mul(1u64 << self.trips.min(20))
            .min(cfg.cooldown_max_ms.max(cfg.cooldown_ms));
        let cap = cfg.cooldown_max_ms.max(cfg.cooldown_ms);
        grown.max(retry_after_ms.unwrap_or(0).min(cap))
    }

    /// Opens for the next cooldown, counted `from` (now, or when the failed probe started);
    /// never reopening before `now_ms`.
    fn trip(&mut self, cfg: &BreakerConfig, retry_after_ms: Option<u64>, from: u64, now_ms: u64) {
        let cooldown = self.next_cooldown_ms(cfg, retry_after_ms);
        self.phase = Phase::Open {
            until_ms: from.saturating_add(cooldown).max(now_ms),
        };
        self.trips = self.trips.saturating_add(1);
        self.total_trips = self.total_trips.saturating_add(1);
        self.consecutive_failures = 0;
        self.window.clear();
        self.opened_at_ms = Some(now_ms);
    }

    fn close(&mut self) {
        self.phase = Phase::Closed;
        self.trips = 0;
        self.consecutive_failures = 0;
        self.window.clear();
        self.opened_at_ms = None;
    }

    /// Operator reset: closed, with a clean history.
    pub fn reset(&mut self) {
        self.close();
        self.probed_at_ms = None;
        self.closed_at_ms = None;
    }

    /// Operator kill switch.
    pub fn force_open(&mut self, now_ms: u64) {
        self.phase = Phase::ForcedOpen;
        self.opened_at_ms = Some(now_ms);
    }
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;
