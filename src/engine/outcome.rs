//! The engine's answer: a complete body, a committed live stream, or an error for the caller.

use super::body::AttemptBody;
use super::meta::Meta;
use super::ports::{Clock, Health, ResponseBody, Transport};
use super::resuming::ResumeState;
use super::stream::{LiveStream, Piece, Step};
use super::Engine;
use crate::api::ApiError;
use crate::config::{Deployment, Price, RoutingTable};

pub enum Outcome<B> {
    /// `client_ready`: the body is already in the client's format; otherwise it is the pivot.
    Complete {
        body: Vec<u8>,
        client_ready: bool,
        meta: Meta,
    },
    Stream(Box<CommittedStream<B>>),
    Failed {
        error: ApiError,
        meta: Meta,
    },
}

/// A stream committed to a deployment. Pull bytes with `next`; when the upstream breaks after
/// the commit, `next` resumes it on a deployment (see `resuming`) or ends it with an in-band
/// error. When `next` returns None the meta is final (usage, cost, resumes, error).
pub struct CommittedStream<B> {
    pub(crate) live: Box<LiveStream<B>>,
    pub(crate) meta: Meta,
    pub(crate) price: Price,
    pub(crate) finalised: bool,
    pub(crate) resume: ResumeState,
    /// The live attempt holds its deployment's half-open probe lease.
    pub(crate) probe: bool,
}

impl<B: ResponseBody> CommittedStream<B> {
    pub(crate) fn new(
        live: Box<LiveStream<B>>,
        meta: Meta,
        price: Price,
        resume: ResumeState,
    ) -> Self {
        CommittedStream {
            live,
            meta,
            price,
            finalised: false,
            resume,
            probe: false,
        }
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// What went to the client (choice 0's text, its finish reason, the answer's id).
    pub fn delivered(&self) -> &super::resume::Delivered {
        &self.live.delivered
    }

    /// For the glue's own facts (key, rate-limit headers, state calls).
    pub fn meta_mut(&mut self) -> &mut Meta {
        &mut self.meta
    }

    /// The next bytes for the client; None when the stream is over.
    pub async fn next<T: Transport<Body = B>, C: Clock, H: Health>(
        &mut self,
        engine: &Engine<'_, T, C, H>,
    ) -> Option<Vec<u8>> {
        loop {
            let before = self.live.waiting_ms;
            let pulled = self.live.next_bytes(engine.clock).await;
            self.meta.waiting_ms += self.live.waiting_ms.saturating_sub(before);
            match pulled {
                Ok(Some(bytes)) => return Some(bytes),
                Ok(None) => {
                    if !self.finalised && self.live.end_error.is_none() {
                        if let Some(dep) = self.answering(engine.table) {
                            engine.report(dep, true, self.probe, None, None);
                        }
                    }
                    self.finalise();
                    return None;
                }
                Err(broken) => {
                    if let Some(dep) = self.answering(engine.table) {
                        let started = self.meta.attempts.last().map(|a| a.started_ms);
                        engine.report_attempt_failure(dep, &broken, self.probe, started);
                    }
                    self.probe = false;
                    if !self.resume_after(engine, &broken).await {
                        self.live.fail(self.resume.final_error(broken));
                    }
                }
            }
        }
    }

    /// For a glue that reads the upstream itself, without a future per read: what the live
    /// attempt needs next. After `Step::Stop`, call `next` (it ends, fails or resumes).
    pub fn step(&mut self, now_ms: u64) -> Step {
        self.live.step(now_ms)
    }

    /// The result of the read that `step` asked for.
    pub fn feed(&mut self, piece: Piece<'_>, now_ms: u64) {
        let before = self.live.waiting_ms;
        self.live.feed(piece, now_ms);
        self.meta.waiting_ms += self.live.waiting_ms.saturating_sub(before);
    }

    /// The live attempt's upstream body (it changes when the stream resumes elsewhere).
    pub fn body_mut(&mut self) -> &mut AttemptBody<B> {
        self.live.body_mut()
    }

    fn answering<'t>(&self, table: &'t RoutingTable) -> Option<&'t Deployment> {
        let name = self.meta.deployment.as_deref()?;
        table.deployments.iter().find(|d| d.name == name)
    }

    /// The client went away: book what was delivered (estimated when the provider did not
    /// report usage yet) so the request is billed and logged like any other.
    pub fn abandon(&mut self) {
        self.finalise();
    }

    fn finalise(&mut self) {
        if self.finalised {
            return;
        }
        self.finalised = true;
        let reported = self.live.usage;
        let last_usage = match reported {
            Some(u) => Some(u),
            None if self.resume.live_booked => None,
            None => Some(self.resume.estimate_unreported(&self.live.delivered)),
        };
        self.meta.usage_estimated = reported.is_none();
        self.meta.usage = self.resume.total_usage(last_usage);
        let last = last_usage.map(|u| u.cost_nanos(&self.price));
        let before = self.resume.prior_cost_nanos() + self.meta.failed_prompts_nanos();
        self.meta.cost_nanos = match (last, before) {
            (None, 0) => None,
            (l, before) => Some(l.unwrap_or(0) + before),
        };
        self.meta.subrequests = self.resume.budget.used();
        self.meta.error = match (&self.live.end_error, self.live.capped) {
            (Some(e), _) => Some(format!("{}: {}", e.class, e.message)),
            (None, true) => Some("budget_exceeded: the answer was cut at its reservation".into()),
            (None, false) => None,
        };
    }
}
