//! Resuming a committed stream that broke: which deployment to ask, by which method, and the
//! bookkeeping that makes the client see one answer (usage summed over every attempt).
//!
//! State: the request and route, the chain position the next resume goes to (the deployment
//! that broke once, unless it timed out, then the ones after it), how many resumes were used, deployments that
//! refused a prefill, deployments that timed out in this request, and the usage of attempts
//! that broke (estimated from delivered text: a cut stream reports none), and the request's
//! subrequest budget. Invariants: at most `route.resume.max` resumes, all inside the request
//! deadline and paid from the budget (a resume it cannot pay for is not tried, and the stream
//! ends with the original failure, its message naming the budget); a prefill refusal is never
//! the caller's error (the original failure is); a deployment that timed out in this request
//! (connect, first token, idle, attempt; before the commit, in a hedge, as the live stream or
//! in a resume) is never asked to resume it, so a stall costs at most one `idle_ms` before the
//! next deployment is asked, as before the commit.

use super::attempt::AttemptOutcome;
use super::gate::{gate, Gate};
use super::meta::{AttemptRecord, Skip};
use super::outcome::CommittedStream;
use super::ports::{Clock, Health, ResponseBody, Transport};
use super::resume::{Delivered, Filter, Method, DIVERGED};
use super::stream::LiveStream;
use super::Engine;
use crate::api::ChatRequest;
use crate::config::{Deployment, PrefillSupport, ResumeMode, Route, RoutingTable};
use crate::resilience::subrequests::SubrequestBudget;
use crate::resilience::{ErrorClass, UpstreamError};
use crate::usage::{estimate, Usage};
use serde_json::{json, Value};
use std::rc::Rc;

pub struct ResumeState {
    /// Shared with the glue: no copy of the (possibly large) request per stream.
    req: Rc<ChatRequest>,
    route: Route,
    /// The request's plan (chain step indices in order) and the position in it of the next
    /// deployment to resume on.
    order: Vec<usize>,
    cursor: usize,
    used: u32,
    request_deadline_ms: u64,
    prefill_refused: Vec<usize>,
    /// Deployments (table indices) that timed out in this request: a silent deployment is
    /// not asked again, resume included.
    timed_out: Vec<usize>,
    /// Usage of the attempts that broke (estimated) and what it cost.
    prior: Usage,
    prior_cost_nanos: u64,
    /// Delivered characters already counted in `prior`.
    counted_chars: usize,
    /// The live attempt's usage is already in `prior` (it broke and was booked).
    pub(crate) live_booked: bool,
    /// What the request may still spend on subrequests (shared with the attempts before the
    /// commit), and whether it stopped a resume.
    pub(crate) budget: SubrequestBudget,
    pub(crate) budget_stop: bool,
}

impl ResumeState {
    pub fn new(
        req: &Rc<ChatRequest>,
        route: &Route,
        order: &[usize],
        step_index: usize,
        request_deadline_ms: u64,
        budget: SubrequestBudget,
    ) -> Self {
        ResumeState {
            req: Rc::clone(req),
            route: route.clone(),
            order: order.to_vec(),
            cursor: order.iter().position(|&i| i == step_index).unwrap_or(0),
            used: 0,
            request_deadline_ms,
            prefill_refused: Vec::new(),
            timed_out: Vec::new(),
            prior: Usage::default(),
            prior_cost_nanos: 0,
            counted_chars: 0,
            live_booked: false,
            budget,
            budget_stop: false,
        }
    }

    /// The failure that ends the stream: `broken`, and when the budget stopped the resume,
    /// saying so.
    pub(crate) fn final_error(&self, mut broken: UpstreamError) -> UpstreamError {
        if self.budget_stop {
            broken.message = format!(
                "{}; not resumed: {}",
                broken.message,
                self.budget.describe()
            );
        }
        broken
    }

    /// Usage of the whole answer: the final attempt's plus every broken attempt's estimate.
    pub fn total_usage(&self, last: Option<Usage>) -> Option<Usage> {
        if self.prior == Usage::default() {
            return last;
        }
        let l = last.unwrap_or_default();
        Some(Usage {
            prompt_tokens: l.prompt_tokens + self.prior.prompt_tokens,
            completion_tokens: l.completion_tokens + self.prior.completion_tokens,
            cached_tokens: l.cached_tokens,
            cache_write_tokens: l.cache_write_tokens,
            reasoning_tokens: l.reasoning_tokens,
        })
    }

    pub fn prior_cost_nanos(&self) -> u64 {
        self.prior_cost_nanos
    }

    /// The final attempt's usage when the provider never reported it (a stream cut or ended
    /// without a usage event): the prompt, and an estimate (`usage::estimate`) of what it
    /// delivered beyond what broken attempts already booked. Never zero for a real answer.
    pub fn estimate_unreported(&self, delivered: &Delivered) -> Usage {
        estimate::unreported(
            &self.req,
            delivered.chars.saturating_sub(self.counted_chars),
        )
    }

    /// Books the broken attempt's tokens: the prompt, and an estimate (`usage::estimate`) of
    /// what it delivered (a cut stream never reports its usage).
    fn count_broken(&mut self, delivered: &Delivered, price: &crate::config::Price) {
        let chars = delivered.chars;
        let new_chars = chars.saturating_sub(self.counted_chars);
        self.counted_chars = chars;
        let u = estimate::unreported(&self.req, new_chars);
        self.prior_cost_nanos += u.cost_nanos(price);
        self.prior.prompt_tokens += u.prompt_tokens;
        self.prior.completion_tokens += u.completion_tokens;
        self.live_booked = true;
    }
}

/// The request that asks a deployment to continue after `text` (a trailing assistant turn).
fn prefill_request(req: &ChatRequest, text: &str, support: PrefillSupport) -> ChatRequest {
    let mut r = req.clone();
    let turn = if support == PrefillSupport::PrefixFlag {
        json!({"role": "assistant", "content": text, "prefix": true})
    } else {
        json!({"role": "assistant", "content": text})
    };
    if let Some(Value::Array(m)) = r.body.get_mut("messages") {
        m.push(turn);
    }
    if let Some(Value::Array(m)) = r
        .native_anthropic
        .as_mut()
        .and_then(|n| n.get_mut("messages"))
    {
        m.push(json!({"role": "assistant", "content": text}));
    }
    r
}

/// What follows a resume attempt that failed.
#[derive(Debug, PartialEq, Eq)]
enum After {
    /// The deployment refused the prefill: replay on it instead (not counted as a resume).
    Replay,
    /// Go on to the next deployment.
    Next,
    /// Resuming is over for this request.
    Stop,
}

impl ResumeState {
    /// `deployment` (a table index) failed with `class` in this request: after a timeout it is
    /// never asked to resume.
    fn note_failure(&mut self, deployment: usize, class: ErrorClass) {
        if class.is_timeout() && !self.timed_out.contains(&deployment) {
            self.timed_out.push(deployment);
        }
    }

    /// Whether a resume may go to `deployment` at all (it did not time out in this request).
    fn may_ask(&self, deployment: usize) -> bool {
        !self.timed_out.contains(&deployment)
    }

    /// How to resume on `deployment` (a table index) whose provider supports `prefill`, by
    /// the route's mode; None when the mode allows no method there.
    fn method(&self, deployment: usize, prefill: PrefillSupport) -> Option<Method> {
        let can_prefill =
            prefill != PrefillSupport::None && !self.prefill_refused.contains(&deployment);
        match self.route.resume.mode {
            ResumeMode::Prefill => can_prefill.then_some(Method::Prefill),
            ResumeMode::Replay => Some(Method::Replay),
            _ if can_prefill => Some(Method::Prefill),
            _ => Some(Method::Replay),
        }
    }

    /// A resume by `method` on `deployment` failed with `e`. A refused prefill is never
    /// tried there again (and does not count as a resume); a replay that contradicted the
    /// delivered text ends resuming.
    fn on_failure(&mut self, deployment: usize, method: Method, e: &UpstreamError) -> After {
        self.note_failure(deployment, e.class);
        if method == Method::Prefill && e.class == ErrorClass::InvalidRequest {
            self.prefill_refused.push(deployment);
            self.used = self.used.saturating_sub(1);
            if self.route.resume.mode != ResumeMode::Prefill {
                return After::Replay;
            }
        } else if e.class == ErrorClass::MalformedResponse && e.message.starts_with(DIVERGED) {
            return After::Stop;
        }
        self.cursor += 1;
        After::Next
    }

    /// The request and chunk filter of a resume by `method`, after `delivered`.
    fn request(
        &self,
        method: Method,
        delivered: &Delivered,
        prefill: PrefillSupport,
    ) -> (Rc<ChatRequest>, Filter) {
        match method {
            Method::Prefill => {
                let text = delivered.text().trim_end();
                (
                    Rc::new(prefill_request(&self.req, text, prefill)),
                    Filter::prefill(delivered, self.prior),
                )
            }
            Method::Replay => (Rc::clone(&self.req), Filter::replay(delivered, self.prior)),
        }
    }
}

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
            if !self
                .resume
                .budget
                .affords_visit(index, dep.breaker.enabled, false)
            {
                self.meta
                    .skipped
                    .push((dep.name.clone(), Skip::SubrequestBudget));
                self.resume.budget_stop = true;
                return false;
            }
            let g = gate(engine.health, dep, now).await;
            self.resume.budget.charge_gate(g.asked_probe());
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
                    engine.report_attempt_failure(dep, &e, probe);
                    record.class = Some(e.class);
                    record.status = e.status;
                    self.meta.attempts.push(record);
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

#[cfg(test)]
#[path = "resuming_tests.rs"]
mod tests;
