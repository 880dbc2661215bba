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

use super::resume::{Delivered, Filter, Method};
use crate::api::ChatRequest;
use crate::config::{PrefillSupport, ResumeMode, Route};
use crate::resilience::subrequests::SubrequestBudget;
use crate::resilience::{ErrorClass, UpstreamError};
use crate::usage::{estimate, Usage};
use serde_json::{json, Value};
use std::rc::Rc;

pub struct ResumeState {
    /// Shared with the glue: no copy of the (possibly large) request per stream.
    pub(super) req: Rc<ChatRequest>,
    pub(super) route: Route,
    /// The request's plan (chain step indices in order) and the position in it of the next
    /// deployment to resume on.
    pub(super) order: Vec<usize>,
    pub(super) cursor: usize,
    pub(super) used: u32,
    pub(super) request_deadline_ms: u64,
    pub(super) prefill_refused: Vec<usize>,
    /// Deployments (table indices) that timed out in this request: a silent deployment is
    /// not asked again, resume included.
    pub(super) timed_out: Vec<usize>,
    /// Usage of the attempts that broke (estimated) and what it cost.
    pub(super) prior: Usage,
    pub(super) prior_cost_nanos: u64,
    /// Delivered characters already counted in `prior`.
    pub(super) counted_chars: usize,
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
    pub(super) fn count_broken(&mut self, delivered: &Delivered, price: &crate::config::Price) {
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
pub(super) enum After {
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
    pub(super) fn note_failure(&mut self, deployment: usize, class: ErrorClass) {
        if class.is_timeout() && !self.timed_out.contains(&deployment) {
            self.timed_out.push(deployment);
        }
    }

    /// Whether a resume may go to `deployment` at all (it did not time out in this request).
    pub(super) fn may_ask(&self, deployment: usize) -> bool {
        !self.timed_out.contains(&deployment)
    }

    /// How to resume on `deployment` (a table index) whose provider supports `prefill`, by
    /// the route's mode; None when the mode allows no method there.
    pub(super) fn method(&self, deployment: usize, prefill: PrefillSupport) -> Option<Method> {
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
    pub(super) fn on_failure(
        &mut self,
        deployment: usize,
        method: Method,
        e: &UpstreamError,
    ) -> After {
        self.note_failure(deployment, e.class);
        if method == Method::Prefill && e.class == ErrorClass::InvalidRequest {
            self.prefill_refused.push(deployment);
            self.used = self.used.saturating_sub(1);
            if self.route.resume.mode != ResumeMode::Prefill {
                return After::Replay;
            }
        } else if e.diverged {
            return After::Stop;
        }
        self.cursor += 1;
        After::Next
    }

    /// The request and chunk filter of a resume by `method`, after `delivered`.
    pub(super) fn request(
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

#[cfg(test)]
#[path = "resuming_tests.rs"]
mod tests;
