//! How a committed stream resumes when it breaks: the deployment `ResumeState` names is gated,
//! asked to continue (prefill) or replay, and its stream takes over the client's answer.
//! The decisions are `ResumeState`'s (`resuming`); this runs them.

use super::attempt::AttemptOutcome;
use super::gate::{paid_gate, Gate};
use super::meta::{AttemptRecord, Skip};
use super::outcome::CommittedStream;
use super::ports::{Clock, Health, ResponseBody, Transport};
use super::resume::Method;
use super::resuming::After;
use super::stream::LiveStream;
use super::Engine;
use crate::config::{Deployment, ResumeMode, RoutingTable};
use crate::resilience::{ErrorClass, UpstreamError};

impl<B: ResponseBody> CommittedStream<B> {
    /// Whether the break may be resumed at all: resume on, the stream not native, nor past
    /// what is kept for a resume (`MAX_DELIVERED_BYTES`), nor after a half-sent tool call or
    /// a divergence, and not a refusal mid-answer (the provider's decision, not a fault).
    fn may_resume(&self, broken: &UpstreamError) -> bool {
        self.resume.route.resume.mode != ResumeMode::Off
            && !self.live.diverged
            && !self.live.is_native()
            && self.live.delivered.resumable()
            && broken.class != ErrorClass::ContentPolicy
    }

    /// Tries to continue the answer elsewhere after `broken`. True when a resumed attempt
    /// took over the stream.
    pub(crate) async fn resume_after<T: Transport<Body = B>, C: Clock, H: Health>(
        &mut self,
        engine: &Engine<'_, T, C, H>,
        broken: &UpstreamError,
    ) -> bool {
        if !self.may_resume(broken) {
            return false;
        }
        let delivered = self.live.delivered.clone();
        self.resume.count_broken(&delivered, &self.price);
        self.note_timeouts(engine.table, broken);
        let mut forced: Option<Method> = None;
        while self.resume.used < self.resume.route.resume.max {
            let Some(&index) = self
                .resume
                .order
                .get(self.resume.cursor)
                .and_then(|&i| self.resume.route.chain.steps().get(i))
                .map(|step| &step.deployment)
            else {
                return false;
            };
            let now = engine.clock.now_ms();
            let dep = engine.table.deployment(index);
            let provider = dep.and_then(|d| engine.table.provider_of(d));
            let (Some(dep), Some(provider)) = (dep, provider) else {
                return false;
            };
            if now >= self.resume.request_deadline_ms {
                return false;
            }
            if !self.resume.may_ask(index) {
                self.resume.cursor += 1;
                continue;
            }
            let method = forced
                .take()
                .or_else(|| self.resume.method(index, provider.prefill));
            let Some(method) = method else {
                self.resume.cursor += 1;
                continue;
            };
            let paid = paid_gate(engine.health, &mut self.resume.budget, index, dep, now).await;
            let Some(g) = paid else {
                self.meta
                    .skipped
                    .push((dep.name.clone(), Skip::SubrequestBudget));
                self.resume.budget_stop = true;
                return false;
            };
            let probe = match g {
                Gate::Go { probe } => probe,
                Gate::Skip { why, .. } => {
                    self.meta.skipped.push((dep.name.clone(), why));
                    self.resume.cursor += 1;
                    continue;
                }
            };
            if !self.resume.budget.try_attempt(index, false) {
                self.resume.budget_stop = true;
                return false;
            }
            self.resume.used += 1;
            let (req, filter) = self.resume.request(method, &delivered, provider.prefill);
            let started = engine.clock.now_ms();
            let from = (filter, delivered.clone(), self.live.egress_clone());
            let deadline = self.resume.request_deadline_ms;
            let outcome = engine.attempt_once(dep, &req, deadline, Some(from)).await;
            let duration_ms = engine.clock.now_ms().saturating_sub(started);
            self.meta.waiting_ms += duration_ms;
            let mut record = AttemptRecord {
                deployment: dep.name.clone(),
                class: None,
                status: Some(200),
                started_ms: started,
                duration_ms,
            };
            match outcome {
                AttemptOutcome::Committed(live) => {
                    self.meta.attempts.push(record);
                    self.took_over(live, dep, method, probe);
                    return true;
                }
                AttemptOutcome::Failed(e) => {
                    engine.report_attempt_failure(dep, &e, probe, Some(started));
                    record.class = Some(e.class);
                    record.status = e.status;
                    self.meta.attempts.push(record);
                    engine.bill_failed(&mut self.meta, dep, &req, Some(e.class));
                    match self.resume.on_failure(index, method, &e) {
                        After::Replay => forced = Some(Method::Replay),
                        After::Next => {}
                        After::Stop => return false,
                    }
                }
                AttemptOutcome::Complete { .. } => self.resume.cursor += 1,
            }
        }
        false
    }

    /// Books every deployment that timed out in this request: the live one, if `broken` is a
    /// timeout (a stall after the commit), and every failed attempt so far (before the commit,
    /// hedges, earlier resumes), so that none of them is asked to resume.
    fn note_timeouts(&mut self, table: &RoutingTable, broken: &UpstreamError) {
        let index_of = |name: &str| table.deployments.iter().position(|d| d.name == name);
        if let Some(live) = self.meta.deployment.as_deref().and_then(index_of) {
            self.resume.note_failure(live, broken.class);
        }
        for a in &self.meta.attempts {
            if let (Some(class), Some(i)) = (a.class, index_of(&a.deployment)) {
                self.resume.note_failure(i, class);
            }
        }
    }

    /// A resumed attempt committed: it is the stream now; the next resume, if any, goes to
    /// the deployment after it.
    fn took_over(
        &mut self,
        mut live: Box<LiveStream<B>>,
        dep: &Deployment,
        method: Method,
        probe: bool,
    ) {
        live.waiting_ms = 0;
        self.meta.resumes.push((dep.name.clone(), method));
        self.meta.deployment = Some(dep.name.clone());
        self.live = live;
        self.resume.live_booked = false;
        self.price = dep.price;
        self.probe = probe;
        self.resume.cursor += 1;
    }
}
