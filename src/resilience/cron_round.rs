//! The cron's probe round, paid from one invocation's subrequest budget.
//!
//! A cron trigger is one invocation, and Cloudflare caps its subrequests as it caps a
//! request's (`limits.subrequests` of the table: 50 on Workers Free). For each deployment the
//! round reads its breaker (one object call) and, when it is half-open, probes it through the
//! engine (probe lease, the request, its reports). A probe sent past the cap would fail as the
//! deployment's connection failure and re-open a breaker that the upstream no longer deserves,
//! so the round stops before a deployment it could not read and probe in the worst case. The
//! next round (a minute later) starts one deployment further along the list, so every
//! deployment comes first in turn, however long the list.
//!
//! Invariant: `used <= limit`. A breaker is only read when a probe after it could be paid for
//! too, and the engine is told what the round spent before it (`outside_calls`), so its own
//! budget check covers the probe.

use super::subrequests::{MIN_SUBREQUESTS, RESERVED_CALLS};

/// Reading one deployment's breaker.
pub const VIEW_CALLS: u32 = 1;
/// The most one probe costs after its breaker read: what a request's single attempt costs in
/// the worst case (gate with a probe lease, the request, a deployment-limit admission, reports).
pub const PROBE_CALLS: u32 = MIN_SUBREQUESTS - RESERVED_CALLS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronRound {
    limit: u32,
    used: u32,
}

impl CronRound {
    /// A round within `limit` subrequests. The request reserve pays for the round's own calls
    /// outside the probes (the routing table's read and its last-good copy).
    pub fn new(limit: u32) -> Self {
        CronRound {
            limit,
            used: RESERVED_CALLS.min(limit),
        }
    }

    /// Charges one breaker read when the read and a probe after it fit; false (nothing
    /// charged) when the round must stop here.
    pub fn take_view(&mut self) -> bool {
        if self.used.saturating_add(VIEW_CALLS + PROBE_CALLS) > self.limit {
            return false;
        }
        self.used += VIEW_CALLS;
        true
    }

    /// What the round spent beyond the reserve, for the probe's engine run (which charges its
    /// own reserve, so the two count the same calls once).
    pub fn outside_calls(&self) -> u32 {
        self.used.saturating_sub(RESERVED_CALLS)
    }

    /// After a probe: `engine_used` is the engine's count, which began from `outside_calls`.
    pub fn probed(&mut self, engine_used: u32) {
        self.used = self.used.max(engine_used).min(self.limit);
    }

    pub fn used(&self) -> u32 {
        self.used
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }
}

/// The order in which the round scheduled at `scheduled_ms` visits a list of `n`
/// deployments: from one further along each minute, round the list.
pub fn visit_order(n: usize, scheduled_ms: u64) -> impl Iterator<Item = usize> {
    let first = if n == 0 {
        0
    } else {
        ((scheduled_ms / 60_000) % n as u64) as usize
    };
    (0..n).map(move |i| (first + i) % n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_reads_a_breaker_only_when_a_probe_after_it_fits() {
        let mut r = CronRound::new(MIN_SUBREQUESTS + 2);
        assert!(r.take_view());
        assert_eq!(r.used(), RESERVED_CALLS + VIEW_CALLS);
        // The probe charged the worst case.
        r.probed(RESERVED_CALLS + VIEW_CALLS + PROBE_CALLS);
        assert!(
            !r.take_view(),
            "one more read and probe would pass the limit"
        );
        assert_eq!(r.used(), MIN_SUBREQUESTS + 1);
    }

    #[test]
    fn closed_breakers_cost_one_read_each() {
        let mut r = CronRound::new(50);
        let mut reads = 0;
        while r.take_view() {
            reads += 1;
        }
        assert_eq!(reads, 50 - RESERVED_CALLS - PROBE_CALLS);
        assert!(r.used() <= r.limit());
    }

    #[test]
    fn the_engine_is_told_what_the_round_spent() {
        let mut r = CronRound::new(50);
        assert!(r.take_view());
        assert!(r.take_view());
        assert_eq!(r.outside_calls(), 2);
        // The engine's count starts at its reserve plus the outside calls.
        r.probed(RESERVED_CALLS + 2 + 4);
        assert_eq!(r.used(), RESERVED_CALLS + 6);
        r.probed(0);
        assert_eq!(r.used(), RESERVED_CALLS + 6, "never counts down");
        r.probed(u32::MAX);
        assert_eq!(r.used(), 50, "never past the limit");
    }

    #[test]
    fn each_minute_starts_one_deployment_further() {
        let at = |minute: u64| visit_order(4, minute * 60_000 + 59_999).collect::<Vec<_>>();
        assert_eq!(at(0), vec![0, 1, 2, 3]);
        assert_eq!(at(1), vec![1, 2, 3, 0]);
        assert_eq!(at(5), vec![1, 2, 3, 0]);
        assert_eq!(visit_order(0, 123).count(), 0);
    }
}
