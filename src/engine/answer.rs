//! A visit's attempt (alone or hedged) and what the engine does with an answer: report it,
//! settle the deployment's admission, fill `Meta`, and hand back the whole answer or the
//! committed stream (which carries the walk's order and budget on to its resumes).

use super::attempt::AttemptOutcome;
use super::hedge::Hedged;
use super::meta::{AttemptRecord, Hedge, Meta};
use super::outcome::{CommittedStream, Outcome};
use super::output::completion_off_schema;
use super::ports::{Clock, Health, Transport};
use super::resuming::ResumeState;
use super::stream::LiveStream;
use super::walk::{Candidate, ChainWalk};
use super::Engine;
use crate::api::ChatRequest;
use crate::config::{Deployment, Route};
use crate::resilience::UpstreamError;
use crate::usage::Usage;
use std::rc::Rc;

/// One visit of the walk: the candidate, whether it holds the probe lease, and the request's
/// estimated tokens (for a deployment's own rate limit).
pub(super) struct Visit<'r> {
    pub route: &'r Route,
    pub c: Candidate<'r>,
    pub probe: bool,
    pub est_tokens: u64,
}

/// An attempt's outcome, and who gave it when a hedge answered.
pub(super) struct Tried<B> {
    pub outcome: AttemptOutcome<B>,
    /// The hedge's chain step and start, when the hedge answered.
    pub hedge_won: Option<(usize, u64)>,
}

/// An attempt that answered: the whole answer, or a stream past its commit point.
pub(super) enum Answer<B> {
    Complete {
        body: Vec<u8>,
        client_ready: bool,
        usage: Option<Usage>,
        model: Option<String>,
    },
    Committed(Box<LiveStream<B>>),
}

/// An answer and the facts of its attempt.
pub(super) struct Answered<B> {
    pub answer: Answer<B>,
    pub hedge_won: Option<(usize, u64)>,
    pub started_ms: u64,
    /// The deployment-limit reservation the attempt holds (settled here).
    pub reservation: String,
}

/// An attempt's answer, or its failure.
pub(super) fn split<B>(outcome: AttemptOutcome<B>) -> Result<Answer<B>, UpstreamError> {
    match outcome {
        AttemptOutcome::Complete {
            body,
            client_ready,
            usage,
            model,
        } => Ok(Answer::Complete {
            body,
            client_ready,
            usage,
            model,
        }),
        AttemptOutcome::Committed(live) => Ok(Answer::Committed(live)),
        AttemptOutcome::Failed(e) => Err(e),
    }
}

/// Why a complete answer is refused: it is off the strict schema its request asked for (an
/// `invalid_output` failure of `dep`), with what its provider billed for it. Streams are
/// checked when they end (`LiveStream`).
pub(super) fn refusal<B>(
    o: &AttemptOutcome<B>,
    dep: &Deployment,
    req: &ChatRequest,
) -> Option<(UpstreamError, u64)> {
    let schema = req.output_schema.as_ref()?;
    let AttemptOutcome::Complete {
        body,
        client_ready: false,
        usage,
        ..
    } = o
    else {
        return None;
    };
    let e = completion_off_schema(schema, body)?;
    Some((e, usage.map_or(0, |u| u.cost_nanos(&dep.price))))
}

/// The deadline of the visit's first attempt: a half-open probe may use at most half of the
/// time the request has left, so that a probe that hangs still leaves time to fall back (a
/// user request is never failed by a probe). A forced probe (every deployment open) has
/// nothing to fall back to and keeps it all.
fn probe_deadline(v: &Visit<'_>, now: u64, request_deadline: u64) -> u64 {
    if v.probe && !v.c.forced {
        now.saturating_add(request_deadline.saturating_sub(now) / 2)
    } else {
        request_deadline
    }
}

impl<T: Transport, C: Clock, H: Health> Engine<'_, T, C, H> {
    /// The visit's attempt, hedged when the walk says so. A hedge that failed is booked
    /// and not visited again; one that answered is named in `meta.hedges`.
    pub(super) async fn first_or_hedged(
        &self,
        walk: &mut ChainWalk<'_>,
        v: &Visit<'_>,
        req: &Rc<ChatRequest>,
        meta: &mut Meta,
    ) -> Tried<T::Body> {
        let deadline = probe_deadline(v, self.clock.now_ms(), walk.request_deadline_ms());
        let primary = self.attempt_once(v.c.dep, req, deadline, None);
        let p95 = self.health.hedge_p95_ms(v.c.dep, req.stream);
        let Some((after, hp)) = walk.hedge(&v.c, v.probe, req, meta, p95) else {
            return Tried {
                outcome: primary.await,
                hedge_won: None,
            };
        };
        match self.hedged_attempt(primary, after, hp).await {
            Hedged::Primary { outcome, loser } => {
                if let Some(step) = loser.and_then(|l| self.note_loser(v.route, req, meta, l)) {
                    walk.on_hedge_failed(step);
                }
                Tried {
                    outcome,
                    hedge_won: None,
                }
            }
            Hedged::Hedge {
                outcome,
                step_index,
                started_ms,
                loser,
            } => {
                // The first attempt was hedged and lost: how long it waited is a lower bound
                // of its time to commit, which its p95 must still see.
                if loser.error.is_none() {
                    let waited = loser.ended_ms.saturating_sub(loser.started_ms);
                    meta.hedge_waits.push((v.c.dep.name.clone(), waited));
                }
                let _ = self.note_loser(v.route, req, meta, loser);
                Tried {
                    outcome,
                    hedge_won: Some((step_index, started_ms)),
                }
            }
        }
    }

    /// An attempt answered (whole or committed): the request's outcome.
    pub(super) fn answered(
        &self,
        walk: &ChainWalk<'_>,
        v: &Visit<'_>,
        a: Answered<T::Body>,
        req: &Rc<ChatRequest>,
        meta: &mut Meta,
    ) -> Outcome<T::Body> {
        // A hedge that answered: the rest is about its deployment.
        let hedge = a.hedge_won.and_then(|(b, at)| {
            let d = v.route.chain.steps().get(b)?;
            Some((self.table.deployment(d.deployment)?, b, at))
        });
        let (dep, step_index, started) = match hedge {
            Some((d, b, at)) => {
                meta.hedges.push((d.name.clone(), Hedge::Won));
                (d, b, at)
            }
            None => (v.c.dep, v.c.step_index, a.started_ms),
        };
        let duration_ms = self.clock.now_ms().saturating_sub(started);
        meta.waiting_ms += duration_ms;
        meta.attempts.push(AttemptRecord {
            deployment: dep.name.clone(),
            class: None,
            status: Some(200),
            started_ms: started,
            duration_ms,
        });
        meta.deployment = Some(dep.name.clone());
        meta.provider = self.table.provider_of(dep).map(|p| p.name.clone());
        meta.subrequests = walk.budget().used();
        let mut meta = std::mem::take(meta);
        match a.answer {
            Answer::Complete {
                body,
                client_ready,
                usage,
                model,
            } => {
                self.report(dep, true, v.probe, None, None);
                if v.c.limited {
                    let used = usage.map_or(v.est_tokens, |u| {
                        u.prompt_tokens.saturating_add(u.completion_tokens)
                    });
                    self.health.settle(dep, &a.reservation, Some(used));
                }
                meta.model = model.or_else(|| Some(dep.model.clone()));
                meta.usage = usage;
                meta.cost_nanos = usage.map(|u| u.cost_nanos(&dep.price));
                Outcome::Complete {
                    body,
                    client_ready,
                    meta,
                }
            }
            Answer::Committed(mut live) => {
                // The breaker hears of this attempt when the stream ends: a stream that
                // breaks after commit is a failure, not a success then a failure.
                if v.c.limited {
                    // The stream's usage is not known yet: the estimate stands.
                    self.health.settle(dep, &a.reservation, Some(v.est_tokens));
                }
                meta.model = live
                    .model()
                    .map(str::to_string)
                    .or_else(|| Some(dep.model.clone()));
                live.waiting_ms = 0;
                let resume = ResumeState::new(
                    req,
                    v.route,
                    walk.order(),
                    step_index,
                    walk.request_deadline_ms(),
                    walk.budget().clone(),
                );
                let mut committed = CommittedStream::new(live, meta, dep.price, resume);
                committed.probe = v.probe;
                Outcome::Stream(Box::new(committed))
            }
        }
    }
}
