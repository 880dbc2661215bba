//! The attempt loop: route → chain → attempt → classify → retry / fall back / answer.
//! It owns the deadlines and the streaming contract; all I/O goes through the ports.

mod answer;
mod attempt;
mod body;
mod book;
mod deadlines;
pub mod failure;
mod gate;
mod hedge;
mod meta;
mod once;
mod outcome;
mod output;
pub mod ports;
pub mod resume;
mod resuming;
mod stream;
mod stream_resume;
mod walk;

pub use body::AttemptBody;
pub use meta::{AttemptRecord, CacheStatus, Hedge, Meta, Skip};
pub use outcome::{CommittedStream, Outcome};
pub use ports::{
    AlwaysClosed, Clock, Health, ReadAhead, ResponseBody, ResponseHead, Transport, TransportError,
};
pub use stream::{Piece, Step};

use crate::api::ChatRequest;
use crate::config::{Route, RoutingTable};
use crate::providers::Secrets;
use crate::redact::Redactor;
use crate::usage::estimate;
use answer::{split, Answered, Visit};
use book::failed;
use gate::gate;
use std::rc::Rc;
use walk::ChainWalk;

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
    /// Subrequests the request spends outside the engine besides the fixed reserve (the
    /// response cache's lookup and store, `resilience::subrequests::CACHE_CALLS`): charged to
    /// its budget before the first attempt.
    pub outside_calls: u32,
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
    /// The chain walk (`walk::ChainWalk`) decides; this runs its gates and attempts. The
    /// prompts of failed attempts the providers bill are part of the request's cost.
    pub async fn run(
        &self,
        route: &Route,
        req: &Rc<ChatRequest>,
        ctx: RequestContext,
    ) -> Outcome<T::Body> {
        let mut outcome = self.walk_chain(route, req, ctx).await;
        // A stream adds them to the answer's cost when it ends (`CommittedStream::finalise`).
        if let Outcome::Complete { meta, .. } | Outcome::Failed { meta, .. } = &mut outcome {
            let billed = meta.failed_prompts_nanos();
            if billed > 0 {
                meta.cost_nanos = Some(meta.cost_nanos.unwrap_or(0).saturating_add(billed));
            }
        }
        outcome
    }

    async fn walk_chain(
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
        let order = ctx.order.unwrap_or_else(|| chain_order(route));
        let deadline = ctx.started_ms + route.request_timeout_ms;
        let mut walk = ChainWalk::new(
            self.table,
            route,
            req.needs(),
            order,
            deadline,
            ctx.jitter_seed,
        );
        walk.spend_up_front(ctx.outside_calls);
        let est_tokens = {
            let u = estimate::at_most(req, self.table.estimated_output_tokens);
            u.prompt_tokens.saturating_add(u.completion_tokens)
        };
        while let Some(c) = walk.next_candidate(&mut meta) {
            let now = self.clock.now_ms();
            let probe = if c.forced {
                let granted = self.health.acquire_probe(c.dep, true, now).await;
                if !walk.on_forced_probe(granted) {
                    break;
                }
                true
            } else {
                let g = gate(self.health, c.dep, now).await;
                match walk.on_gate(&c, g, &mut meta) {
                    Some(probe) => probe,
                    None => continue,
                }
            };
            let visit = Visit {
                route,
                c,
                probe,
                est_tokens,
            };
            if let Some(outcome) = self.visit(&mut walk, &visit, req, &mut meta).await {
                return outcome;
            }
        }
        meta.subrequests = walk.budget().used();
        let api = walk.final_error(&meta, self.clock.now_ms());
        failed(meta, api)
    }

    /// Attempts on one candidate until it answers (Some: the request's outcome) or the walk
    /// moves on (None).
    async fn visit(
        &self,
        walk: &mut ChainWalk<'_>,
        v: &Visit<'_>,
        req: &Rc<ChatRequest>,
        meta: &mut Meta,
    ) -> Option<Outcome<T::Body>> {
        let c = &v.c;
        loop {
            let now = self.clock.now_ms();
            if !walk.may_start(c, now) {
                return None;
            }
            let reservation = format!("{}:{}", meta.request_id, meta.attempts.len());
            if c.limited {
                let admitted = self
                    .health
                    .admit(c.dep, &reservation, v.est_tokens, now)
                    .await;
                if let Err(retry_ms) = admitted {
                    walk.on_limited(c, now, retry_ms, meta);
                    return None;
                }
            }
            let tried = self.first_or_hedged(walk, v, req, meta).await;
            // A hedge that answered first: its answer is checked, and refused, as its own.
            let hedge = tried.hedge_won.and_then(|(step, started)| {
                let d = v.route.chain.steps().get(step)?;
                Some((self.table.deployment(d.deployment)?, step, started))
            });
            let answering = hedge.map_or(c.dep, |(d, _, _)| d);
            // Its cost, all of it billed by the provider, is kept in `meta.failed_prompts`.
            let checked = match answer::refusal(&tried.outcome, answering, req) {
                Some((e, billed)) => {
                    meta.failed_prompts.push((answering.name.clone(), billed));
                    Err(e)
                }
                None => split(tried.outcome),
            };
            let error = match checked {
                Err(error) => error,
                Ok(answer) => {
                    let a = Answered {
                        answer,
                        hedge_won: tried.hedge_won,
                        started_ms: now,
                        reservation,
                    };
                    return Some(self.answered(walk, v, a, req, meta));
                }
            };
            if c.limited {
                self.health.settle(c.dep, &reservation, None);
            }
            // Booked to the deployment whose answer failed: the hedge's, when it answered
            // first (the first attempt was then cancelled and billed as a loser).
            let (failed_dep, started, probe) = match hedge {
                Some((d, step, started)) => {
                    walk.on_hedge_failed(step);
                    (d, started, false)
                }
                None => (c.dep, now, v.probe),
            };
            self.report_attempt_failure(failed_dep, &error, probe, Some(started));
            let end = self.clock.now_ms();
            meta.waiting_ms += end.saturating_sub(now);
            meta.attempts.push(AttemptRecord {
                deployment: failed_dep.name.clone(),
                class: Some(error.class),
                status: error.status,
                started_ms: started,
                duration_ms: end.saturating_sub(started),
            });
            self.bill_failed(meta, failed_dep, req, Some(error.class));
            match walk.on_failure(c, v.probe, error, end) {
                walk::AfterFailure::RetryAt(at) => {
                    let wait = at.saturating_sub(end);
                    self.clock.sleep(wait).await;
                    meta.waiting_ms += wait;
                }
                walk::AfterFailure::Next => return None,
                walk::AfterFailure::Fail(api) => {
                    meta.subrequests = walk.budget().used();
                    return Some(failed(std::mem::take(meta), api));
                }
            }
        }
    }
}
