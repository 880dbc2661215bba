//! The chain walk of one request, as a value: which deployment to visit next, what a failed
//! attempt leads to, and which error the caller gets when the walk runs out. It is pure (no
//! I/O, no clock: every `now` is an argument); the engine runs the gates and attempts it asks
//! for and feeds their results back.
//!
//! State: the plan (chain steps in order, then at most one forced probe), the position in it,
//! the deployments skipped for an open breaker (with when each reopens) or their own rate
//! limit (with when each admits again), the hedge partners that already failed, the smallest
//! context window still worth trying, the first capability no deployment had, the starts on
//! the current deployment, the last upstream failure, and the request's subrequest budget.
//!
//! Invariants, the ones users rely on:
//! - a deployment is visited at most once per walk (retries stay inside the visit), except the
//!   single forced probe planned when every deployment was skipped for an open breaker;
//! - no gate or attempt is started that the subrequest budget cannot pay for; a budget stop
//!   ends the walk and is charged to no breaker;
//! - no attempt starts at or past the request deadline, and no retry is planned past it;
//! - after a context-length failure only larger-context deployments are visited;
//! - the caller's own fault (`Action::Fail`) ends the walk at once with the provider's reason.

use super::book::{all_open_failed, missing_capability};
use super::failure;
use super::gate::Gate;
use super::hedge::HedgePlan;
use super::meta::{Capability, Meta, Skip};
use crate::api::chat::Needs;
use crate::api::{ApiError, ChatRequest};
use crate::config::{ChainStep, Deployment, Route, RoutingTable};
use crate::resilience::backoff::{earliest_next_start, Jitter};
use crate::resilience::policy::{decide, Action, Decision};
use crate::resilience::subrequests::SubrequestBudget;
use crate::resilience::UpstreamError;

/// A deployment the walk chose to visit.
#[derive(Clone, Copy)]
pub(super) struct Candidate<'r> {
    /// Its index in the route's chain.
    pub step_index: usize,
    pub step: &'r ChainStep,
    pub dep: &'r Deployment,
    /// The forced probe of a chain whose every breaker was open.
    pub forced: bool,
    /// It has its own rate limits: every attempt waits on an admission.
    pub limited: bool,
}

/// Why a deployment cannot serve the request (a skip rule).
enum Unfit {
    /// Its context window is no larger than one that was already too small.
    ContextWindow,
    /// It lacks this capability, which the request needs.
    Missing(Capability),
}

/// The deployment has its own rate limits: every attempt waits on an admission.
fn has_limits(dep: &Deployment) -> bool {
    dep.limits.rpm.is_some() || dep.limits.tpm.is_some()
}

/// What follows a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AfterFailure {
    /// Try the same deployment again at this time (absolute ms, before the request deadline).
    RetryAt(u64),
    /// Go on to the next candidate.
    Next,
    /// Stop: the caller gets this error (the request itself was refused).
    Fail(ApiError),
}

pub(super) struct ChainWalk<'r> {
    table: &'r RoutingTable,
    route: &'r Route,
    needs: Needs,
    request_deadline_ms: u64,
    /// The routing strategy's order of chain steps (handed on to a committed stream's resume).
    order: Vec<usize>,
    /// (chain step, forced probe): the order, then at most one forced probe.
    plan: Vec<(usize, bool)>,
    next_visit: usize,
    /// Set when the walk must end whatever is left in the plan.
    stopped: bool,
    /// Deployments skipped for an open breaker, with when each reopens.
    open_skips: Vec<(usize, u64)>,
    /// When each deployment skipped for its own rate limit can take traffic again.
    limit_skips: Vec<u64>,
    /// Chain steps a hedge already tried (and that failed): not visited again.
    hedged_done: Vec<usize>,
    min_context: Option<u32>,
    unserved: Option<Capability>,
    deadline_hit: bool,
    budget_stop: bool,
    last_error: Option<UpstreamError>,
    /// Start times of the attempts on the current candidate (retry count and pacing).
    starts: Vec<u64>,
    jitter: Jitter,
    budget: SubrequestBudget,
}

impl<'r> ChainWalk<'r> {
    pub fn new(
        table: &'r RoutingTable,
        route: &'r Route,
        needs: Needs,
        order: Vec<usize>,
        request_deadline_ms: u64,
        jitter_seed: u64,
    ) -> Self {
        ChainWalk {
            table,
            route,
            needs,
            request_deadline_ms,
            plan: order.iter().map(|&i| (i, false)).collect(),
            order,
            next_visit: 0,
            stopped: false,
            open_skips: Vec::new(),
            limit_skips: Vec::new(),
            hedged_done: Vec::new(),
            min_context: None,
            unserved: None,
            deadline_hit: false,
            budget_stop: false,
            last_error: None,
            starts: Vec::new(),
            jitter: Jitter::new(jitter_seed),
            budget: SubrequestBudget::new(table.limits.subrequests),
        }
    }

    pub fn request_deadline_ms(&self) -> u64 {
        self.request_deadline_ms
    }

    pub fn order(&self) -> &[usize] {
        &self.order
    }

    pub fn budget(&self) -> &SubrequestBudget {
        &self.budget
    }

    /// Charges calls the request makes outside the walk (see `RequestContext::outside_calls`).
    pub fn spend_up_front(&mut self, calls: u32) {
        self.budget.spend_up_front(calls);
    }

    /// The next deployment to visit, recording in `meta` every one skipped on the way (context
    /// too small, a capability missing); None when the walk is over. When every deployment
    /// was skipped for an open breaker and nothing was tried, the one that reopens first is
    /// planned once more as a forced probe rather than failing without trying.
    pub fn next_candidate(&mut self, meta: &mut Meta) -> Option<Candidate<'r>> {
        self.starts.clear();
        while !self.stopped {
            let Some(&(step_index, forced)) = self.plan.get(self.next_visit) else {
                let all_open = meta.attempts.is_empty() && !self.open_skips.is_empty();
                if all_open && !self.forced_planned() {
                    if let Some(&(i, _)) = self.open_skips.iter().min_by_key(|(_, at)| *at) {
                        self.plan.push((i, true));
                        continue;
                    }
                }
                return None;
            };
            self.next_visit += 1;
            if let Some(c) = self.eligible(step_index, forced, meta) {
                return Some(c);
            }
        }
        None
    }

    /// The skip rules of a visit, in order; None: skipped (and recorded in `meta`).
    fn eligible(
        &mut self,
        step_index: usize,
        forced: bool,
        meta: &mut Meta,
    ) -> Option<Candidate<'r>> {
        if self.hedged_done.contains(&step_index) {
            return None;
        }
        let step = self.route.chain.steps().get(step_index)?;
        let dep = self.table.deployment(step.deployment)?;
        match self.unfit(dep) {
            None => {}
            Some(Unfit::ContextWindow) => {
                meta.skipped.push((dep.name.clone(), Skip::ContextWindow));
                return None;
            }
            Some(Unfit::Missing(missing)) => {
                meta.skipped
                    .push((dep.name.clone(), Skip::MissingCapability(missing)));
                self.unserved.get_or_insert(missing);
                return None;
            }
        }
        let limited = has_limits(dep);
        if !self
            .budget
            .affords_visit(step.deployment, dep.breaker.enabled, limited)
        {
            meta.skipped
                .push((dep.name.clone(), Skip::SubrequestBudget));
            self.budget_stop = true;
            self.stopped = true;
            return None;
        }
        Some(Candidate {
            step_index,
            step,
            dep,
            forced,
            limited,
        })
    }

    /// The skip rules that depend only on the deployment and what the walk learned: None
    /// when it may serve the request. A new rule of this kind goes here; visits and hedges
    /// both obey it.
    fn unfit(&self, dep: &Deployment) -> Option<Unfit> {
        if self
            .min_context
            .is_some_and(|min| dep.context_window <= min)
        {
            return Some(Unfit::ContextWindow);
        }
        missing_capability(&self.needs, &dep.capabilities).map(Unfit::Missing)
    }

    fn forced_planned(&self) -> bool {
        self.plan.iter().any(|(_, f)| *f)
    }

    /// The breaker gate's answer for `c`: Some(probe) to go on, None when it skips it.
    pub fn on_gate(&mut self, c: &Candidate<'_>, gate: Gate, meta: &mut Meta) -> Option<bool> {
        self.budget.charge_gate(gate.asked_probe());
        match gate {
            Gate::Go { probe } => Some(probe),
            Gate::Skip { why, reopens_ms } => {
                meta.skipped.push((c.dep.name.clone(), why));
                if let Some(at) = reopens_ms {
                    self.open_skips.push((c.step_index, at));
                }
                None
            }
        }
    }

    /// The forced probe asked for its lease (charged here); refused, the walk is over.
    pub fn on_forced_probe(&mut self, granted: bool) -> bool {
        self.budget.charge_probe();
        if !granted {
            self.stopped = true;
        }
        granted
    }

    /// Whether an attempt on `c` may start at `now`: before the request deadline and paid for
    /// by the budget (charged here). False ends the walk.
    pub fn may_start(&mut self, c: &Candidate<'_>, now: u64) -> bool {
        if now >= self.request_deadline_ms {
            self.deadline_hit = true;
        } else if !self.budget.try_attempt(c.step.deployment, c.limited) {
            // Never a fetch the platform would refuse (and the breaker then blame).
            self.budget_stop = true;
        } else {
            self.starts.push(now);
            return true;
        }
        self.stopped = true;
        false
    }

    /// The deployment's own rate limit refused the attempt; it admits again in `retry_ms`.
    pub fn on_limited(&mut self, c: &Candidate<'_>, now: u64, retry_ms: u64, meta: &mut Meta) {
        meta.skipped
            .push((c.dep.name.clone(), Skip::DeploymentLimit));
        self.limit_skips.push(now.saturating_add(retry_ms));
    }

    /// The hedge of the attempt just started on `c`, when the route hedges and this is the
    /// request's first attempt (never a probe, never a deployment with limits): the delay
    /// (`Route::hedge_delay_ms`, from `c`'s measured p95 time to commit on a p95 route)
    /// and what the hedge may use.
    pub fn hedge<'h>(
        &'h mut self,
        c: &Candidate<'_>,
        probe: bool,
        req: &'h ChatRequest,
        meta: &Meta,
        p95_ms: Option<u64>,
    ) -> Option<(u64, HedgePlan<'h>)> {
        let first = meta.attempts.is_empty() && self.starts.len() == 1;
        let after = self
            .route
            .hedge_delay_ms(p95_ms)
            .filter(|_| first && !probe && !c.limited)?;
        let steps = self.route.chain.steps();
        let fits = |&(i, forced): &(usize, bool)| {
            let dep = steps
                .get(i)
                .and_then(|s| self.table.deployment(s.deployment));
            !forced && dep.is_some_and(|d| self.unfit(d).is_none() && !has_limits(d))
        };
        let rest = self
            .plan
            .get(self.next_visit..)
            .unwrap_or_default()
            .iter()
            .filter(|p| fits(p))
            .map(|(i, _)| *i)
            .collect();
        Some((
            after,
            HedgePlan {
                budget: &mut self.budget,
                route: self.route,
                req,
                request_deadline_ms: self.request_deadline_ms,
                primary_step: c.step_index,
                rest,
            },
        ))
    }

    /// A hedge on this chain step failed: the walk does not visit it again.
    pub fn on_hedge_failed(&mut self, step_index: usize) {
        self.hedged_done.push(step_index);
    }

    /// An attempt on `c` failed with `error` at `now`; `probe`: it held the probe lease.
    pub fn on_failure(
        &mut self,
        c: &Candidate<'_>,
        probe: bool,
        error: UpstreamError,
        now: u64,
    ) -> AfterFailure {
        if c.forced {
            // The failed probe re-opened it for at least another cooldown.
            let cooldown = c
                .dep
                .breaker
                .config
                .cooldown_ms
                .max(error.retry_after_ms.unwrap_or(0));
            for skip in self
                .open_skips
                .iter_mut()
                .filter(|(i, _)| *i == c.step_index)
            {
                skip.1 = now.saturating_add(cooldown);
            }
        }
        let decision = Decision {
            error: &error,
            attempts_here: self.starts.len() as u32,
            retry: &c.step.retry,
            fallback_on_content_policy: self.route.fallback_on_content_policy,
        };
        let mut action = decide(&decision, &mut self.jitter);
        if probe && matches!(action, Action::RetrySame { .. }) {
            // A failed probe re-opened the breaker: no second try here.
            action = Action::NextDeployment;
        }
        let step = match action {
            Action::RetrySame { delay_ms } => {
                let at = now
                    .saturating_add(delay_ms)
                    .max(earliest_next_start(&self.starts));
                if at >= self.request_deadline_ms {
                    AfterFailure::Next
                } else {
                    AfterFailure::RetryAt(at)
                }
            }
            Action::NextDeployment => AfterFailure::Next,
            Action::NextLargerContext => {
                let w = c.dep.context_window;
                self.min_context = Some(self.min_context.map_or(w, |m| m.max(w)));
                AfterFailure::Next
            }
            Action::Fail => AfterFailure::Fail(failure::client_fault(&error)),
        };
        self.last_error = Some(error);
        step
    }

    /// The error the caller gets when the walk ran out without an answer, in order of what
    /// explains it best: the budget stopped it; every deployment was at its own rate limit;
    /// every breaker was open; no deployment had a needed capability; else the last failure.
    pub fn final_error(&self, meta: &Meta, now: u64) -> ApiError {
        let route = self.route;
        let last = self.last_error.as_ref();
        if self.budget_stop {
            return failure::budget_exhausted(route, meta, last, &self.budget);
        }
        if !self.deadline_hit && meta.attempts.is_empty() && !self.limit_skips.is_empty() {
            let at = self.limit_skips.iter().copied().min().unwrap_or(now);
            return failure::deployments_limited(route, at.saturating_sub(now));
        }
        if !self.deadline_hit && all_open_failed(meta, self.forced_planned()) {
            // None when every deployment is kill-switched: nothing reopens by itself.
            let reopens = self.open_skips.iter().map(|(_, at)| *at).min();
            return failure::all_open(route, meta, last, reopens.map(|at| at.saturating_sub(now)));
        }
        match self.unserved {
            Some(cap) if meta.attempts.is_empty() => failure::unsupported(route, cap.as_str()),
            _ => failure::exhausted(route, meta, last, self.deadline_hit),
        }
    }
}

#[cfg(test)]
#[path = "walk_tests.rs"]
mod tests;
