//! Hedging, for latency-critical routes (`hedge.after_ms`): when the request's first attempt
//! has not committed (first content chunk of a stream, or the whole answer) after the delay,
//! the next eligible deployment of the plan is started in parallel; whichever commits first
//! with an answer the request can take answers and the other is cancelled (dropping its
//! attempt aborts its fetch), so only one is billed. A complete answer off the request's
//! schema is its attempt's failure, not a win: the race waits for the other. At most two upstream requests are in flight per request, well inside the
//! platform's six connections waiting for headers.
//!
//! Invariant: a hedge never changes what the caller can observe except latency: the loser is
//! cancelled before any of its bytes reach the client, a failed attempt (either one) is
//! recorded and reported like any failure, and when both fail the engine goes on with the
//! first attempt's failure as if there had been no hedge (the hedge's deployment is not tried
//! again). A hedge is paid from the request's subrequest budget like any attempt; when the
//! budget cannot pay for one, the first attempt runs alone.

use super::answer::refusal;
use super::attempt::{AttemptInput, AttemptOutcome};
use super::gate::{paid_gate, Gate};
use super::ports::{Clock, Health, Transport};
use super::Engine;
use crate::api::ChatRequest;
use crate::config::{Deployment, Route};
use crate::resilience::subrequests::SubrequestBudget;
use crate::resilience::UpstreamError;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;

/// The attempt that did not answer.
pub(super) struct Loser {
    pub step_index: usize,
    pub started_ms: u64,
    pub ended_ms: u64,
    /// None: cancelled because the other committed first.
    pub error: Option<UpstreamError>,
    /// What its provider billed for its answer, when that answer was refused (off the
    /// request's schema).
    pub refused_billed: Option<u64>,
}

pub(super) enum Hedged<B> {
    /// The first attempt's outcome decides (it came before the delay, it won, or both failed).
    Primary {
        outcome: AttemptOutcome<B>,
        loser: Option<Loser>,
    },
    /// The hedge committed first.
    Hedge {
        outcome: AttemptOutcome<B>,
        step_index: usize,
        started_ms: u64,
        loser: Loser,
    },
}

enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Polls both; the first ready wins (the left one first on a tie).
async fn race<A: Future, B: Future>(
    mut a: Pin<&mut A>,
    mut b: Pin<&mut B>,
) -> Either<A::Output, B::Output> {
    poll_fn(|cx| {
        if let Poll::Ready(x) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(x));
        }
        if let Poll::Ready(y) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(y));
        }
        Poll::Pending
    })
    .await
}

fn failed<B>(o: &AttemptOutcome<B>) -> Option<UpstreamError> {
    match o {
        AttemptOutcome::Failed(e) => Some(e.clone()),
        _ => None,
    }
}

/// Why an attempt lost the race although it ended: it failed, or its answer is refused
/// (with what its provider billed for that answer).
fn lost<B>(
    o: &AttemptOutcome<B>,
    dep: Option<&Deployment>,
    req: &ChatRequest,
) -> Option<(UpstreamError, Option<u64>)> {
    failed(o)
        .map(|e| (e, None))
        .or_else(|| refusal(o, dep?, req).map(|(e, billed)| (e, Some(billed))))
}

/// What the hedge needs to know about the request and the plan.
pub(super) struct HedgePlan<'p> {
    /// The request's budget: the hedge's gate and attempt are charged to it.
    pub budget: &'p mut SubrequestBudget,
    pub route: &'p Route,
    pub req: &'p ChatRequest,
    pub request_deadline_ms: u64,
    /// The first attempt's chain step.
    pub primary_step: usize,
    /// Chain steps after it, in plan order, that the walk's skip rules let through and that
    /// have no limits of their own to wait on: the hedge is the first of them the breaker and
    /// the budget allow.
    pub rest: Vec<usize>,
}

impl<T: Transport, C: Clock, H: Health> Engine<'_, T, C, H> {
    /// Runs `primary` (the request's first attempt, not yet polled) and, if it has not
    /// answered after `after_ms`, a hedge beside it.
    pub(super) async fn hedged_attempt(
        &self,
        primary: impl Future<Output = AttemptOutcome<T::Body>>,
        after_ms: u64,
        mut hp: HedgePlan<'_>,
    ) -> Hedged<T::Body> {
        let a_started = self.clock.now_ms();
        let mut a = pin!(primary);
        let mut timer = pin!(self.clock.sleep(after_ms));
        if let Either::Left(outcome) = race(a.as_mut(), timer.as_mut()).await {
            return Hedged::Primary {
                outcome,
                loser: None,
            };
        }
        let Some((b_step, b_input)) = self.hedge_partner(&mut hp).await else {
            return Hedged::Primary {
                outcome: a.await,
                loser: None,
            };
        };
        let b_started = self.clock.now_ms();
        let mut b = pin!(self.send(b_input));
        let loser = |step_index, started_ms, error, refused_billed| Loser {
            step_index,
            started_ms,
            ended_ms: self.clock.now_ms(),
            error,
            refused_billed,
        };
        let dep_of = |step: usize| {
            let s = hp.route.chain.steps().get(step)?;
            self.table.deployment(s.deployment)
        };
        let (a_dep, b_dep) = (dep_of(hp.primary_step), dep_of(b_step));
        match race(a.as_mut(), b.as_mut()).await {
            Either::Left(oa) => match lost(&oa, a_dep, hp.req) {
                // The first attempt committed: the hedge is cancelled (dropped on return).
                None => Hedged::Primary {
                    outcome: oa,
                    loser: Some(loser(b_step, b_started, None, None)),
                },
                Some((a_error, a_billed)) => {
                    let ob = b.await;
                    match lost(&ob, b_dep, hp.req) {
                        None => Hedged::Hedge {
                            outcome: ob,
                            step_index: b_step,
                            started_ms: b_started,
                            loser: loser(hp.primary_step, a_started, Some(a_error), a_billed),
                        },
                        // Both lost: the first attempt's outcome goes on as if unhedged.
                        Some((b_error, b_billed)) => Hedged::Primary {
                            outcome: oa,
                            loser: Some(loser(b_step, b_started, Some(b_error), b_billed)),
                        },
                    }
                }
            },
            Either::Right(ob) => match lost(&ob, b_dep, hp.req) {
                None => Hedged::Hedge {
                    outcome: ob,
                    step_index: b_step,
                    started_ms: b_started,
                    loser: loser(hp.primary_step, a_started, None, None),
                },
                Some((b_error, b_billed)) => Hedged::Primary {
                    outcome: a.await,
                    loser: Some(loser(b_step, b_started, Some(b_error), b_billed)),
                },
            },
        }
    }

    /// The first deployment after the primary that could take the request right now: capable,
    /// large enough, breaker closed (a half-open probe is never spent on a hedge), no limits
    /// to wait on, its request buildable, and the budget able to pay for it.
    async fn hedge_partner<'h>(
        &'h self,
        hp: &mut HedgePlan<'_>,
    ) -> Option<(usize, AttemptInput<'h>)> {
        for &step_index in &hp.rest {
            let Some((index, dep)) = hp.route.chain.steps().get(step_index).and_then(|s| {
                self.table
                    .deployment(s.deployment)
                    .map(|d| (s.deployment, d))
            }) else {
                continue;
            };
            let now = self.clock.now_ms();
            let g = paid_gate(self.health, hp.budget, index, dep, now).await?;
            if !matches!(g, Gate::Go { probe: false }) {
                continue;
            }
            let Ok(input) = self.prepare(dep, hp.req, hp.request_deadline_ms, None) else {
                continue;
            };
            if !hp.budget.try_attempt(index, false) {
                return None;
            }
            return Some((step_index, input));
        }
        None
    }
}
