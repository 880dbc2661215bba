//! The request's subrequest budget (`limits.subrequests` in the routing table).
//!
//! Cloudflare caps the subrequests of one invocation (50 on Workers Free, 10,000 on Paid).
//! Every `fetch` counts, and so does every call to KV or a Durable Object, including those
//! made through `waitUntil` after the answer. Past the cap the platform fails the call; for
//! an upstream `fetch` the gateway would read that as the deployment's connection failure and
//! charge it to a healthy deployment's breaker. So the engine plans within the budget: it
//! never gates a deployment or starts an attempt the budget cannot pay for, and a stop for the
//! budget reports nothing to any breaker (no attempt was made, none failed).
//!
//! Cost model, an upper bound (a request usually spends less: breaker reads are cached per
//! isolate and reports are batched):
//! - [`RESERVED_CALLS`] per request, for the gateway's calls outside the attempt loop: reading
//!   the routing table from KV and writing its last-good copy, the gateway key's lookup (KV),
//!   admission and settle (its Durable Object), and the timer that flushes batched reports.
//! - 1 per breaker gate (reading the deployment's breaker: a wait the first time an isolate
//!   sees it, a background refresh when its snapshot is stale), and 1 more when the gate asks
//!   the object for a probe lease.
//! - [`REPORT_CALLS`] per deployment with an attempt, once per request: its reports and usage
//!   samples (sent before a stream commits, and when the request ends).
//! - 1 per upstream request (first try, retry, fallback, hedge, resume), and 1 more for the
//!   admission of a deployment with its own `limits` (rpm/tpm).
//!
//! Invariant: `used <= limit` at all times. A check says whether a step can be paid for in the
//! worst case before the engine takes it; a charge the budget cannot pay is refused and
//! leaves the budget unchanged.

/// Workers Free's per-request limit.
pub const DEFAULT_SUBREQUESTS: u32 = 50;
/// The gateway's own calls per request outside the attempt loop (see the module doc).
pub const RESERVED_CALLS: u32 = 6;
/// The response cache's calls when a route caches answers: the lookup, and the store of a
/// complete answer (both to the Workers Cache API, which counts like a `fetch`).
pub const CACHE_CALLS: u32 = 2;
/// Report calls charged once per deployment that had an attempt.
pub const REPORT_CALLS: u32 = 2;
/// The smallest budget that pays for one attempt on one deployment in the worst case (gate
/// with a probe lease, reports, the request and a deployment-limit admission).
pub const MIN_SUBREQUESTS: u32 = RESERVED_CALLS + 2 + REPORT_CALLS + 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubrequestBudget {
    limit: u32,
    used: u32,
    /// Deployments (table indices) whose report calls are already charged.
    reported: Vec<usize>,
}

impl SubrequestBudget {
    /// A request's budget: `limit` subrequests, of which `RESERVED_CALLS` are spent up front.
    pub fn new(limit: u32) -> Self {
        SubrequestBudget {
            limit,
            used: RESERVED_CALLS.min(limit),
            reported: Vec::new(),
        }
    }

    /// The request's calls made outside the attempt loop besides the reserve (the response
    /// cache's lookup and store): spent up front, as the reserve is, never past the limit.
    pub fn spend_up_front(&mut self, calls: u32) {
        self.charge(calls);
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Subrequests charged so far (the reserve included).
    pub fn used(&self) -> u32 {
        self.used
    }

    fn fits(&self, cost: u32) -> bool {
        self.used.saturating_add(cost) <= self.limit
    }

    fn report_cost(&self, deployment: usize) -> u32 {
        if self.reported.contains(&deployment) {
            0
        } else {
            REPORT_CALLS
        }
    }

    /// Whether visiting `deployment` can pay, in the worst case, for its gate (`probe`: the
    /// gate may ask for a probe lease, i.e. its breaker is enabled) and one attempt
    /// (`limited`: the attempt waits on the deployment's own rate-limit admission).
    pub fn affords_visit(&self, deployment: usize, probe: bool, limited: bool) -> bool {
        let gate = 1 + u32::from(probe);
        self.fits(gate + self.attempt_cost(deployment, limited))
    }

    /// Charges one gate: its breaker read, and the probe lease if it asked for one.
    pub fn charge_gate(&mut self, asked_probe: bool) {
        self.charge(1 + u32::from(asked_probe));
    }

    /// Charges a probe lease asked for without a breaker read (the forced probe of a chain
    /// whose every breaker is open).
    pub fn charge_probe(&mut self) {
        self.charge(1);
    }

    fn attempt_cost(&self, deployment: usize, limited: bool) -> u32 {
        1 + u32::from(limited) + self.report_cost(deployment)
    }

    /// Charges one upstream request on `deployment` (with its admission when `limited`, and
    /// its reports on its first attempt). False, and nothing charged, when it does not fit.
    pub fn try_attempt(&mut self, deployment: usize, limited: bool) -> bool {
        let cost = self.attempt_cost(deployment, limited);
        if !self.fits(cost) {
            return false;
        }
        self.used += cost;
        if !self.reported.contains(&deployment) {
            self.reported.push(deployment);
        }
        true
    }

    /// Charges what a check already allowed; never past the limit.
    fn charge(&mut self, cost: u32) {
        self.used = self.used.saturating_add(cost).min(self.limit);
    }

    /// Why the request stopped, for the caller and the log.
    pub fn describe(&self) -> String {
        format!(
            "the request reached its subrequest budget (limits.subrequests = {}; it counts \
             upstream requests and the gateway's own Durable Object and KV calls, {} of them \
             kept for the calls every request makes)",
            self.limit, RESERVED_CALLS
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_spent_up_front() {
        let b = SubrequestBudget::new(50);
        assert_eq!((b.limit(), b.used()), (50, RESERVED_CALLS));
    }

    #[test]
    fn cache_calls_are_spent_up_front_and_leave_less_for_attempts() {
        let mut b = SubrequestBudget::new(MIN_SUBREQUESTS);
        assert!(b.affords_visit(0, true, true));
        b.spend_up_front(CACHE_CALLS);
        assert_eq!(b.used(), RESERVED_CALLS + CACHE_CALLS);
        assert!(
            !b.affords_visit(0, true, true),
            "the cache's calls use the attempt's room"
        );
        b.spend_up_front(u32::MAX);
        assert_eq!(b.used(), MIN_SUBREQUESTS, "never past the limit");
    }

    #[test]
    fn reports_are_charged_once_per_deployment() {
        let mut b = SubrequestBudget::new(50);
        assert!(b.try_attempt(0, false));
        assert_eq!(b.used(), RESERVED_CALLS + 1 + REPORT_CALLS);
        assert!(b.try_attempt(0, false));
        assert_eq!(b.used(), RESERVED_CALLS + 2 + REPORT_CALLS);
        assert!(b.try_attempt(3, true));
        assert_eq!(
            b.used(),
            RESERVED_CALLS + 2 + REPORT_CALLS + 2 + REPORT_CALLS
        );
    }

    #[test]
    fn a_charge_that_does_not_fit_is_refused_and_changes_nothing() {
        // Reserve 6 + first attempt 3 = 9; one retry fits (10), the next does not.
        let mut b = SubrequestBudget::new(10);
        assert!(b.try_attempt(0, false));
        assert!(b.try_attempt(0, false));
        assert_eq!(b.used(), 10);
        assert!(!b.try_attempt(0, false));
        assert!(!b.try_attempt(1, false));
        assert_eq!(b.used(), 10);
    }

    #[test]
    fn a_visit_is_checked_for_its_worst_case() {
        let mut b = SubrequestBudget::new(RESERVED_CALLS + 5);
        // gate 1 + probe 1 + attempt 1 + reports 2 = 5: fits; with an admission (6) it does not.
        assert!(b.affords_visit(0, true, false));
        assert!(!b.affords_visit(0, true, true));
        assert!(b.affords_visit(0, false, true));
        b.charge_gate(true);
        assert!(b.try_attempt(0, false));
        assert_eq!(b.used(), b.limit());
        // A deployment already reported on costs only its gate and request.
        let mut b = SubrequestBudget::new(RESERVED_CALLS + 5);
        assert!(b.try_attempt(0, false));
        assert!(b.affords_visit(0, false, false));
        assert!(!b.affords_visit(1, false, false));
    }

    #[test]
    fn never_past_the_limit() {
        let mut b = SubrequestBudget::new(3);
        assert_eq!(b.used(), 3);
        b.charge_gate(true);
        b.charge_probe();
        assert_eq!(b.used(), 3);
        assert!(!b.try_attempt(0, false));
    }

    #[test]
    fn the_minimum_pays_for_one_attempt_in_the_worst_case() {
        let b = SubrequestBudget::new(MIN_SUBREQUESTS);
        assert!(b.affords_visit(0, true, true));
        assert!(!SubrequestBudget::new(MIN_SUBREQUESTS - 1).affords_visit(0, true, true));
    }

    #[test]
    fn the_description_names_the_setting_and_its_value() {
        let d = SubrequestBudget::new(20).describe();
        assert!(d.contains("limits.subrequests = 20"), "{d}");
    }
}
