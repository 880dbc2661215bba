//! The attempt loop: route → chain → attempt → classify → retry / fall back / answer.
//! It owns the deadlines and the streaming contract; all I/O goes through the ports.

mod attempt;
mod body;
mod book;
mod failure;
mod gate;
mod hedge;
mod meta;
mod outcome;
pub mod ports;
pub mod resume;
mod resuming;
mod stream;

pub use body::AttemptBody;
pub use meta::{AttemptRecord, Meta};
pub use outcome::{CommittedStream, Outcome};
pub use ports::{
    AlwaysClosed, Clock, Health, ReadAhead, ResponseBody, ResponseHead, Transport, TransportError,
};
use resuming::ResumeState;
pub use stream::{Piece, Step};

use crate::api::{ChatRequest, ClientFormat};
use crate::config::{Route, RoutingTable};
use crate::providers::{build_target, Secrets};
use crate::redact::Redactor;
use crate::resilience::backoff::{earliest_next_start, Jitter};
use crate::resilience::policy::{decide, Action, Decision};
use crate::resilience::subrequests::SubrequestBudget;
use crate::resilience::UpstreamError;
use attempt::{run_attempt, AttemptInput, AttemptOutcome};
use book::{all_open_failed, failed, missing_capability};
use gate::{gate, Gate};
use hedge::{HedgePlan, Hedged};
use std::rc::Rc;

pub struct Engine<'a, T, C, H = AlwaysClosed> {
    pub table: &'a RoutingTable,
    pub transport: &'a T,
    pub clock: &'a C,
    pub secrets: &'a dyn Secrets,
    pub health: &'a H,
    /// Scrubs secrets from upstream errors (`Redactor::for_table`, cached by the glue).
    pub redactor: &'a Rc<Redactor>,
}

/// Per-request facts the glue supplies.
pub struct RequestContext {
    pub request_id: String,
    pub started_ms: u64,
    pub jitter_seed: u64,
    /// Chain step indices in the order to try (the routing strategy's plan); None = the
    /// chain's own order. Steps not listed are never tried, not even as fallbacks.
    pub order: Option<Vec<usize>>,
}

/// The chain's own order, without canary-only steps (only a plan's canary slice uses those).
pub fn chain_order(route: &Route) -> Vec<usize> {
    route
        .chain
        .steps()
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.canary_only)
        .map(|(i, _)| i)
        .collect()
}

impl<T: Transport, C: Clock, H: Health> Engine<'_, T, C, H> {
    /// Serves one chat request on `route`. Never panics; every path ends in an `Outcome`.
    pub async fn run(
        &self,
        route: &Route,
        req: &Rc<ChatRequest>,
        ctx: RequestContext,
    ) -> Outcome<T::Body> {
        let mut meta = Meta {
            request_id: ctx.request_id,
            route: route.name.clone(),
            stream: req.stream,
            started_ms: ctx.started_ms,
            status: 200,
            ..Meta::default()
        };
        let mut jitter = Jitter::new(ctx.jitter_seed);
        let request_deadline = ctx.started_ms + route.request_timeout_ms;
        let mut last_error: Option<UpstreamError> = None;
        let mut min_context: Option<u32> = None;
        let mut deadline_hit = false;
        let needs = req.needs();
        let mut unserved: Option<&'static str> = None;
        // Deployments skipped because their breaker is open, with when each reopens.
        let mut open_skips: Vec<(usize, u64)> = Vec::new();
        // (chain index, forced probe): the chain in order, then at most one forced probe.
        let order = ctx.order.unwrap_or_else(|| chain_order(route));
        let mut plan: Vec<(usize, bool)> = order.iter().map(|&i| (i, false)).collect();
        let mut next_visit = 0;
        // When each deployment skipped for its own rate limit can take traffic again.
        let mut limit_skips: Vec<u64> = Vec::new();
        // Chain steps a hedge already tried (and that failed): not tried again.
        let mut hedged_done: Vec<usize> = Vec::new();
        let est_tokens = {
            let u = crate::keys::estimated_usage(req, self.table);
            u.prompt_tokens.saturating_add(u.completion_tokens)
        };
        // Every gate, attempt, hedge and resume is paid from it; set when it stopped the plan.
        let mut budget = SubrequestBudget::new(self.table.limits.subrequests);
        let mut budget_stop = false;

        'chain: loop {
            let Some(&(step_index, forced)) = plan.get(next_visit) else {
                // Every deployment was skipped for an open breaker: rather than fail without
                // trying, probe the one that reopens first (once).
                let all_open = meta.attempts.is_empty() && !open_skips.is_empty();
                if all_open && !plan.iter().any(|(_, f)| *f) {
                    if let Some(&(i, _)) = open_skips.iter().min_by_key(|(_, at)| *at) {
                        plan.push((i, true));
                        continue;
                    }
                }
                break;
            };
            next_visit += 1;
            if hedged_done.contains(&step_index) {
                continue;
            }
            let Some(step) = route.chain.steps().get(step_index) else {
                continue;
            };
            let Some(dep) = self.table.deployment(step.deployment) else {
                continue;
            };
            if min_context.is_some_and(|min| dep.context_window <= min) {
                meta.skipped
                    .push((dep.name.clone(), "context_window".into()));
                continue;
            }
            if let Some(missing) = missing_capability(&needs, &dep.capabilities) {
                meta.skipped
                    .push((dep.name.clone(), format!("missing_capability_{missing}")));
                unserved.get_or_insert(missing);
                continue;
            }
            let limited = dep.limits.rpm.is_some() || dep.limits.tpm.is_some();
            if !budget.affords_visit(step.deployment, dep.breaker.enabled, limited) {
                meta.skipped
                    .push((dep.name.clone(), "subrequest_budget".into()));
                budget_stop = true;
                break 'chain;
            }
            let probe = if forced {
                budget.charge_probe();
                if !self
                    .health
                    .acquire_probe(dep, true, self.clock.now_ms())
                    .await
                {
                    break 'chain;
                }
                true
            } else {
                let g = gate(self.health, dep, self.clock.now_ms()).await;
                budget.charge_gate(g.asked_probe());
                match g {
                    Gate::Go { probe } => probe,
                    Gate::Skip { why, reopens_ms } => {
                        meta.skipped.push((dep.name.clone(), why.into()));
                        if let Some(at) = reopens_ms {
                            open_skips.push((step_index, at));
                        }
                        continue;
                    }
                }
            };
            let provider_name = self.table.provider_of(dep).map(|p| p.name.clone());
            let mut starts: Vec<u64> = Vec::new();
            loop {
                let now = self.clock.now_ms();
                if now >= request_deadline {
                    deadline_hit = true;
                    break 'chain;
                }
                if !budget.try_attempt(step.deployment, limited) {
                    // Never a fetch the platform would refuse (and the breaker then blame).
                    budget_stop = true;
                    break 'chain;
                }
                let reservation = format!("{}:{}", meta.request_id, meta.attempts.len());
                if limited {
                    if let Err(retry_ms) =
                        self.health.admit(dep, &reservation, est_tokens, now).await
                    {
                        meta.skipped
                            .push((dep.name.clone(), "deployment_limit".into()));
                        limit_skips.push(now.saturating_add(retry_ms));
                        continue 'chain;
                    }
                }
                starts.push(now);
                // Set when a hedge answered: the rest of this pass is about its deployment.
                let mut hedge_won: Option<(usize, u64)> = None;
                let outcome = match build_target(self.table, dep, req, self.secrets) {
                    Ok(target) => {
                        let input = AttemptInput {
                            deployment: dep,
                            target,
                            stream: req.stream,
                            client_wants_usage: req.include_usage
                                || req.client == ClientFormat::Anthropic,
                            client: req.client,
                            request_deadline_ms: request_deadline,
                            resume: None,
                            redactor: self.redactor,
                        };
                        let first = meta.attempts.is_empty() && starts.len() == 1;
                        match route.hedge_after_ms.filter(|_| first && !probe && !limited) {
                            None => run_attempt(input, self.transport, self.clock).await,
                            Some(after) => {
                                let hp = HedgePlan {
                                    budget: &mut budget,
                                    route,
                                    req,
                                    needs: &needs,
                                    min_context,
                                    request_deadline_ms: request_deadline,
                                    primary_step: step_index,
                                    rest: plan
                                        .get(next_visit..)
                                        .unwrap_or_default()
                                        .iter()
                                        .filter(|(_, f)| !*f)
                                        .map(|(i, _)| *i)
                                        .collect(),
                                };
                                match self.hedged_attempt(input, after, hp).await {
                                    Hedged::Primary { outcome, loser } => {
                                        // A hedge that failed is not tried again later.
                                        if let Some(failed_step) =
                                            loser.and_then(|l| self.note_loser(route, &mut meta, l))
                                        {
                                            hedged_done.push(failed_step);
                                        }
                                        outcome
                                    }
                                    Hedged::Hedge {
                                        outcome,
                                        step_index: b,
                                        started_ms,
                                        loser,
                                    } => {
                                        let _ = self.note_loser(route, &mut meta, loser);
                                        hedge_won = Some((b, started_ms));
                                        outcome
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => AttemptOutcome::Failed(e),
                };
                // A hedge that answered: this pass continues with its deployment.
                let (dep, step_index, now, provider_name) = match hedge_won.and_then(|(b, at)| {
                    let d = route.chain.steps().get(b)?;
                    Some((self.table.deployment(d.deployment)?, b, at))
                }) {
                    Some((d, b, at)) => {
                        meta.hedges.push(format!("{}:won", d.name));
                        (d, b, at, self.table.provider_of(d).map(|p| p.name.clone()))
                    }
                    None => (dep, step_index, now, provider_name.clone()),
                };
                let end = self.clock.now_ms();
                let mut record = AttemptRecord {
                    deployment: dep.name.clone(),
                    class: None,
                    status: None,
                    started_ms: now,
                    duration_ms: end.saturating_sub(now),
                };
                match outcome {
                    AttemptOutcome::Complete {
                        body,
                        client_ready,
                        usage,
                        model,
                    } => {
                        self.report(dep, true, probe, None);
                        if limited {
                            let used = usage.map_or(est_tokens, |u| {
                                u.prompt_tokens.saturating_add(u.completion_tokens)
                            });
                            self.health.settle(dep, &reservation, Some(used));
                        }
                        meta.waiting_ms += record.duration_ms;
                        record.status = Some(200);
                        meta.attempts.push(record);
                        meta.deployment = Some(dep.name.clone());
                        meta.provider = provider_name;
                        meta.model = model.or_else(|| Some(dep.model.clone()));
                        meta.usage = usage;
                        meta.cost_nanos = usage.map(|u| u.cost_nanos(&dep.price));
                        meta.subrequests = budget.used();
                        return Outcome::Complete {
                            body,
                            client_ready,
                            meta,
                        };
                    }
                    AttemptOutcome::Committed(live) => {
                        // The breaker hears of this attempt when the stream ends: a stream
                        // that breaks after commit is a failure, not a success then a failure.
                        if limited {
                            // The stream's usage is not known yet: the estimate stands.
                            self.health.settle(dep, &reservation, Some(est_tokens));
                        }
                        meta.waiting_ms += record.duration_ms;
                        record.status = Some(200);
                        meta.attempts.push(record);
                        meta.deployment = Some(dep.name.clone());
                        meta.provider = provider_name;
                        meta.model = live
                            .model()
                            .map(str::to_string)
                            .or_else(|| Some(dep.model.clone()));
                        let mut live = live;
                        live.waiting_ms = 0;
                        meta.subrequests = budget.used();
                        let resume = ResumeState::new(
                            req,
                            route,
                            &order,
                            step_index,
                            request_deadline,
                            budget,
                        );
                        let mut committed = CommittedStream::new(live, meta, dep.price, resume);
                        committed.probe = probe;
                        return Outcome::Stream(Box::new(committed));
                    }
                    AttemptOutcome::Failed(error) => {
                        if limited {
                            self.health.settle(dep, &reservation, None);
                        }
                        if forced {
                            // The failed probe re-opened it for at least another cooldown.
                            let cooldown = dep
                                .breaker
                                .config
                                .cooldown_ms
                                .max(error.retry_after_ms.unwrap_or(0));
                            for skip in open_skips.iter_mut().filter(|(i, _)| *i == step_index) {
                                skip.1 = end.saturating_add(cooldown);
                            }
                        }
                        self.report_attempt_failure(dep, &error, probe);
                        meta.waiting_ms += record.duration_ms;
                        record.class = Some(error.class);
                        record.status = error.status;
                        meta.attempts.push(record);
                        let decision = Decision {
                            error: &error,
                            attempts_here: starts.len() as u32,
                            retry: &step.retry,
                            fallback_on_content_policy: route.fallback_on_content_policy,
                        };
                        let mut action = decide(&decision, &mut jitter);
                        if probe && matches!(action, Action::RetrySame { .. }) {
                            // A failed probe re-opened the breaker: no second try here.
                            action = Action::NextDeployment;
                        }
                        match action {
                            Action::RetrySame { delay_ms } => {
                                let now = self.clock.now_ms();
                                let at = (now + delay_ms).max(earliest_next_start(&starts));
                                last_error = Some(error);
                                if at >= request_deadline {
                                    continue 'chain;
                                }
                                self.clock.sleep(at - now).await;
                                meta.waiting_ms += at - now;
                            }
                            Action::NextDeployment => {
                                last_error = Some(error);
                                continue 'chain;
                            }
                            Action::NextLargerContext => {
                                min_context = Some(
                                    min_context
                                        .map_or(dep.context_window, |m| m.max(dep.context_window)),
                                );
                                last_error = Some(error);
                                continue 'chain;
                            }
                            Action::Fail => {
                                meta.subrequests = budget.used();
                                let api = failure::client_fault(&error);
                                return failed(meta, api);
                            }
                        }
                    }
                }
            }
        }
        meta.subrequests = budget.used();
        let api = match unserved {
            _ if budget_stop => {
                failure::budget_exhausted(route, &meta, last_error.as_ref(), &budget)
            }
            _ if !deadline_hit && meta.attempts.is_empty() && !limit_skips.is_empty() => {
                let now = self.clock.now_ms();
                let at = limit_skips.iter().copied().min().unwrap_or(now);
                failure::deployments_limited(route, at.saturating_sub(now))
            }
            _ if !deadline_hit && all_open_failed(&meta, plan.iter().any(|(_, f)| *f)) => {
                let now = self.clock.now_ms();
                // None when every deployment is kill-switched: nothing reopens by itself.
                let reopens = open_skips.iter().map(|(_, at)| *at).min();
                failure::all_open(
                    route,
                    &meta,
                    last_error.as_ref(),
                    reopens.map(|at| at.saturating_sub(now)),
                )
            }
            Some(cap) if meta.attempts.is_empty() => failure::unsupported(route, cap),
            _ => failure::exhausted(route, &meta, last_error.as_ref(), deadline_hit),
        };
        failed(meta, api)
    }
}
