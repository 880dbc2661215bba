//! The attempt loop: route → chain → attempt → classify → retry / fall back / answer.
//! It owns the deadlines and the streaming contract; all I/O goes through the ports.

mod attempt;
mod body;
mod failure;
mod meta;
mod outcome;
pub mod ports;
pub mod resume;
mod resuming;
mod stream;

pub use meta::{AttemptRecord, Meta};
pub use outcome::{CommittedStream, Outcome};
pub use ports::{Clock, ResponseBody, ResponseHead, Transport, TransportError};
use resuming::ResumeState;

use crate::api::chat::Needs;
use crate::api::{ApiError, ChatRequest, ClientFormat};
use crate::config::{Capabilities, Route, RoutingTable};
use crate::providers::{build_target, Secrets};
use crate::resilience::backoff::{earliest_next_start, Jitter};
use crate::resilience::policy::{decide, Action, Decision};
use crate::resilience::UpstreamError;
use attempt::{run_attempt, AttemptInput, AttemptOutcome};
use std::rc::Rc;

pub struct Engine<'a, T, C> {
    pub table: &'a RoutingTable,
    pub transport: &'a T,
    pub clock: &'a C,
    pub secrets: &'a dyn Secrets,
}

/// Per-request facts the glue supplies.
pub struct RequestContext {
    pub request_id: String,
    pub started_ms: u64,
    pub jitter_seed: u64,
}

impl<T: Transport, C: Clock> Engine<'_, T, C> {
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

        'chain: for (step_index, step) in route.chain.steps().iter().enumerate() {
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
            let provider_name = self.table.provider_of(dep).map(|p| p.name.clone());
            let mut starts: Vec<u64> = Vec::new();
            loop {
                let now = self.clock.now_ms();
                if now >= request_deadline {
                    deadline_hit = true;
                    break 'chain;
                }
                starts.push(now);
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
                        };
                        run_attempt(input, self.transport, self.clock).await
                    }
                    Err(e) => AttemptOutcome::Failed(e),
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
                        meta.waiting_ms += record.duration_ms;
                        record.status = Some(200);
                        meta.attempts.push(record);
                        meta.deployment = Some(dep.name.clone());
                        meta.provider = provider_name;
                        meta.model = model.or_else(|| Some(dep.model.clone()));
                        meta.usage = usage;
                        meta.cost_nanos = usage.map(|u| u.cost_nanos(&dep.price));
                        return Outcome::Complete {
                            body,
                            client_ready,
                            meta,
                        };
                    }
                    AttemptOutcome::Committed(live) => {
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
                        let resume = ResumeState::new(req, route, step_index, request_deadline);
                        return Outcome::Stream(Box::new(CommittedStream::new(
                            live, meta, dep.price, resume,
                        )));
                    }
                    AttemptOutcome::Failed(error) => {
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
                        let action = decide(&decision, &mut jitter);
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
                                let api = failure::client_fault(&error);
                                return failed(meta, api);
                            }
                        }
                    }
                }
            }
        }
        let api = match unserved {
            Some(cap) if meta.attempts.is_empty() => failure::unsupported(route, cap),
            _ => failure::exhausted(route, &meta, last_error.as_ref(), deadline_hit),
        };
        failed(meta, api)
    }
}

/// The first capability the request needs that the deployment lacks.
fn missing_capability(needs: &Needs, has: &Capabilities) -> Option<&'static str> {
    [
        (needs.tools && !has.tools, "tools"),
        (needs.vision && !has.vision, "vision"),
        (needs.json && !has.json, "json"),
        (needs.streaming && !has.streaming, "streaming"),
    ]
    .into_iter()
    .find_map(|(missing, name)| missing.then_some(name))
}

fn failed<B>(mut meta: Meta, error: ApiError) -> Outcome<B> {
    meta.status = error.status;
    meta.error = Some(format!("{}: {}", error.code, error.message));
    Outcome::Failed { error, meta }
}
