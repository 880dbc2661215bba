//! The walk along an embeddings route's chain: one non-streaming attempt at a time, in the
//! plan's order, each behind its breaker gate (the `Health` port) and paid from the request's
//! subrequest budget; a failure is classified (`providers::classify_error`) and decided as
//! for chat (`resilience::policy::decide`: retry 429/5xx/cuts with backoff or Retry-After,
//! move on after timeouts and auth errors, stop on the caller's own fault), within the
//! route's request deadline; a deployment with its own `limits` admits each attempt first.
//! The chain holds one vector space only (`config::embedding`), so any deployment's answer
//! is the caller's answer. Unlike chat, a chain whose every breaker is open is not force-probed
//! (503 `circuit_open`): an embeddings request is cheap to retry and the half-open lease of
//! the next request after the cooldown does the probing.

use super::target::{build, parse, EmbedTarget};
use super::Embedded;
use crate::api::embeddings::EmbeddingsRequest;
use crate::api::ApiError;
use crate::config::{Deployment, Route, RoutingTable};
use crate::engine::failure::{
    all_open, budget_exhausted, client_fault, deployments_limited, exhausted,
};
use crate::engine::{AttemptRecord, Clock, Health, Meta, ReadAhead, ResponseBody, Skip};
use crate::engine::{Transport, TransportError};
use crate::providers::{classify_error, Secrets};
use crate::redact::Redactor;
use crate::resilience::backoff::Jitter;
use crate::resilience::policy::{decide, Action, Decision};
use crate::resilience::subrequests::SubrequestBudget;
use crate::resilience::{ErrorClass, UpstreamError};
use crate::state::breaker::{Report, View};
use crate::usage::Usage;

/// Largest upstream answer read (2048 vectors of 3072 floats as JSON text fit).
pub const MAX_ANSWER_BYTES: usize = 128 << 20;
const MAX_ERROR_BYTES: usize = 64 << 10;

pub struct EmbedWalk<'a, T, C, H> {
    pub table: &'a RoutingTable,
    pub transport: &'a T,
    pub clock: &'a C,
    pub secrets: &'a dyn Secrets,
    pub health: &'a H,
    pub redactor: &'a Redactor,
}

pub enum EmbedOutcome {
    Answered { embedded: Embedded, meta: Meta },
    Failed { error: ApiError, meta: Meta },
}

enum Gate {
    Go { probe: bool },
    Skip(Skip),
}

impl<T: Transport, C: Clock, H: Health> EmbedWalk<'_, T, C, H> {
    /// Tries the steps of `route` listed in `order` (indices into its chain).
    pub async fn run(
        &self,
        route: &Route,
        req: &EmbeddingsRequest,
        order: &[usize],
        mut meta: Meta,
        jitter_seed: u64,
    ) -> EmbedOutcome {
        let deadline = meta.started_ms.saturating_add(route.request_timeout_ms);
        let mut budget = SubrequestBudget::new(self.table.limits.subrequests);
        let mut jitter = Jitter::new(jitter_seed);
        let mut last: Option<UpstreamError> = None;
        let mut deadline_hit = false;
        let mut out_of_budget = false;
        let mut limited_retry_ms: Option<u64> = None;
        'steps: for &i in order {
            let Some(step) = route.chain.steps().get(i) else {
                continue;
            };
            let Some(dep) = self.table.deployment(step.deployment) else {
                continue;
            };
            if !budget.affords_visit(step.deployment, dep.breaker.enabled, false) {
                out_of_budget = true;
                break;
            }
            let gate = self.gate(dep).await;
            budget.charge_gate(matches!(
                gate,
                Gate::Go { probe: true } | Gate::Skip(Skip::BreakerHalfOpen)
            ));
            let probe = match gate {
                Gate::Go { probe } => probe,
                Gate::Skip(why) => {
                    meta.skipped.push((dep.name.clone(), why));
                    continue;
                }
            };
            let mut attempts_here = 0;
            loop {
                let now = self.clock.now_ms();
                if now >= deadline {
                    deadline_hit = true;
                    break 'steps;
                }
                let limited = dep.limits.rpm.is_some() || dep.limits.tpm.is_some();
                if !budget.try_attempt(step.deployment, limited) {
                    out_of_budget = true;
                    break 'steps;
                }
                // The deployment's own RPM/TPM (waited on, as for chat): at its limit, the
                // next deployment.
                let reservation = format!("{}:{}", meta.request_id, meta.attempts.len());
                let est = super::target::estimated_tokens(req);
                if limited {
                    if let Err(retry_ms) = self.health.admit(dep, &reservation, est, now).await {
                        meta.skipped.push((dep.name.clone(), Skip::DeploymentLimit));
                        limited_retry_ms =
                            Some(limited_retry_ms.map_or(retry_ms, |r| r.min(retry_ms)));
                        continue 'steps;
                    }
                }
                attempts_here += 1;
                let result = self.attempt(dep, req, deadline).await;
                if limited {
                    let used = result.as_ref().ok().map(|e| e.prompt_tokens);
                    self.health.settle(dep, &reservation, used);
                }
                let ended = self.clock.now_ms();
                meta.waiting_ms += ended.saturating_sub(now);
                meta.attempts.push(AttemptRecord {
                    deployment: dep.name.clone(),
                    class: result.as_ref().err().map(|e| e.class),
                    status: result.as_ref().map_or_else(|e| e.status, |_| Some(200)),
                    started_ms: now,
                    duration_ms: ended.saturating_sub(now),
                });
                match result {
                    Ok(embedded) => {
                        self.health.report(
                            dep,
                            Report {
                                ok: true,
                                probe,
                                retry_after_ms: None,
                                started_ms: Some(now),
                            },
                        );
                        self.answered(&mut meta, dep, &embedded);
                        meta.subrequests = budget.used();
                        return EmbedOutcome::Answered { embedded, meta };
                    }
                    Err(e) => {
                        if dep.breaker.counts(e.class) || probe {
                            self.health.report(
                                dep,
                                Report {
                                    ok: !dep.breaker.counts(e.class),
                                    probe,
                                    retry_after_ms: e.retry_after_ms,
                                    started_ms: Some(now),
                                },
                            );
                        }
                        let action = decide(
                            &Decision {
                                error: &e,
                                // A probe is one attempt only.
                                attempts_here: if probe { u32::MAX } else { attempts_here },
                                retry: &step.retry,
                                fallback_on_content_policy: route.fallback_on_content_policy,
                            },
                            &mut jitter,
                        );
                        match action {
                            Action::Fail => {
                                meta.subrequests = budget.used();
                                return self.failed(meta, client_fault(&e));
                            }
                            Action::RetrySame { delay_ms }
                                if self.clock.now_ms().saturating_add(delay_ms) < deadline =>
                            {
                                last = Some(e);
                                self.clock.sleep(delay_ms).await;
                                meta.waiting_ms += delay_ms;
                            }
                            _ => {
                                last = Some(e);
                                continue 'steps;
                            }
                        }
                    }
                }
            }
        }
        meta.subrequests = budget.used();
        let error = if out_of_budget {
            budget_exhausted(route, &meta, last.as_ref(), &budget)
        } else if let (true, Some(ms)) = (meta.attempts.is_empty(), limited_retry_ms) {
            deployments_limited(route, ms)
        } else if meta.attempts.is_empty() && !meta.skipped.is_empty() {
            all_open(route, &meta, None, None)
        } else {
            exhausted(route, &meta, last.as_ref(), deadline_hit)
        };
        self.failed(meta, error)
    }

    fn failed(&self, mut meta: Meta, error: ApiError) -> EmbedOutcome {
        meta.status = error.status;
        meta.error = Some(format!("{}: {}", error.code, error.message));
        EmbedOutcome::Failed { error, meta }
    }

    fn answered(&self, meta: &mut Meta, dep: &Deployment, e: &Embedded) {
        meta.deployment = Some(dep.name.clone());
        meta.provider = self.table.provider_of(dep).map(|p| p.name.clone());
        meta.model = e.model.clone().or_else(|| Some(dep.model.clone()));
        let usage = Usage {
            prompt_tokens: e.prompt_tokens,
            ..Usage::default()
        };
        meta.usage = Some(usage);
        meta.usage_estimated = e.estimated;
        meta.cost_nanos = Some(usage.cost_nanos(&dep.price));
        meta.status = 200;
    }

    /// The breaker gate (as the chat engine's): closed → go; open until later → skip;
    /// cooldown over or half-open → go only with the probe lease; killed → skip.
    async fn gate(&self, dep: &Deployment) -> Gate {
        let now = self.clock.now_ms();
        let view = self.health.view(dep, now).await;
        match view {
            View::ForcedOpen => Gate::Skip(Skip::BreakerForcedOpen),
            _ if !dep.breaker.enabled => Gate::Go { probe: false },
            View::Closed => Gate::Go { probe: false },
            View::Open { until_ms } if until_ms > now => Gate::Skip(Skip::BreakerOpen),
            View::Open { .. } | View::HalfOpen => {
                if self.health.acquire_probe(dep, false, now).await {
                    Gate::Go { probe: true }
                } else {
                    Gate::Skip(Skip::BreakerHalfOpen)
                }
            }
        }
    }

    /// One attempt, its error scrubbed of secrets.
    async fn attempt(
        &self,
        dep: &Deployment,
        req: &EmbeddingsRequest,
        request_deadline: u64,
    ) -> Result<Embedded, UpstreamError> {
        self.attempt_once(dep, req, request_deadline)
            .await
            .map_err(|e| self.redactor.error(e))
    }

    async fn attempt_once(
        &self,
        dep: &Deployment,
        req: &EmbeddingsRequest,
        request_deadline: u64,
    ) -> Result<Embedded, UpstreamError> {
        let start = self.clock.now_ms();
        let deadline = start
            .saturating_add(dep.timeouts.attempt_ms)
            .min(request_deadline);
        let timeout = || {
            UpstreamError::new(
                ErrorClass::TimeoutAttempt,
                format!(
                    "no complete answer within {} ms",
                    deadline.saturating_sub(start)
                ),
            )
        };
        let (http, format) = match build(self.table, dep, req, self.secrets)? {
            EmbedTarget::Mock { result, latency_ms } => {
                if start.saturating_add(latency_ms) > deadline {
                    self.clock.sleep(deadline.saturating_sub(start)).await;
                    return Err(timeout());
                }
                if latency_ms > 0 {
                    self.clock.sleep(latency_ms).await;
                }
                return result;
            }
            EmbedTarget::Http(http, format) => (http, format),
        };
        let ahead = ReadAhead {
            answer_limit: MAX_ANSWER_BYTES,
            error_limit: MAX_ERROR_BYTES,
            deadline_ms: deadline,
        };
        let connect = dep.timeouts.connect_ms.min(deadline.saturating_sub(start));
        let mut head = match self.transport.send_reading(http, connect, ahead).await {
            Ok(h) => h,
            Err(TransportError::Timeout) => {
                return Err(UpstreamError::new(
                    ErrorClass::TimeoutConnect,
                    format!("no response headers within {connect} ms"),
                ))
            }
            Err(TransportError::Connect(m) | TransportError::Reset(m)) => {
                return Err(UpstreamError::new(
                    ErrorClass::ConnectError,
                    format!("connection failed: {m}"),
                ))
            }
        };
        let status = head.status;
        if (300..400).contains(&status) {
            return Err(UpstreamError {
                status: Some(status),
                ..UpstreamError::new(
                    ErrorClass::Redirect,
                    format!("upstream answered HTTP {status} (a redirect, which the gateway does not follow)"),
                )
            });
        }
        let retry_after = crate::resilience::retry_after::parse_retry_after(
            head.header("retry-after-ms"),
            head.header("retry-after"),
            self.clock.now_ms(),
        );
        let ok = (200..300).contains(&status);
        let limit = if ok {
            MAX_ANSWER_BYTES
        } else {
            MAX_ERROR_BYTES
        };
        let body = read_whole(&mut head.body, limit, deadline, self.clock).await;
        if !ok {
            let bytes = body.unwrap_or_default();
            return Err(classify_error(format, status, &bytes, retry_after));
        }
        let bytes = body.map_err(|e| match e {
            ReadError::Timeout => timeout(),
            ReadError::TooLarge => UpstreamError::new(
                ErrorClass::MalformedResponse,
                format!("answer larger than {limit} bytes"),
            ),
            ReadError::Broken(m) => {
                UpstreamError::new(ErrorClass::StreamCut, format!("answer cut: {m}"))
            }
        })?;
        parse(format, &bytes, dep, req)
    }
}

enum ReadError {
    Timeout,
    TooLarge,
    Broken(String),
}

/// The whole body, at most `limit` bytes, by `deadline`.
async fn read_whole<B: ResponseBody, C: Clock>(
    body: &mut B,
    limit: usize,
    deadline: u64,
    clock: &C,
) -> Result<Vec<u8>, ReadError> {
    let from = |e: TransportError| match e {
        TransportError::Timeout => ReadError::Timeout,
        TransportError::Connect(m) | TransportError::Reset(m) => ReadError::Broken(m),
    };
    let left = deadline.saturating_sub(clock.now_ms());
    match body.read_whole(limit, left).await {
        Some(Ok(Some(bytes))) => return Ok(bytes),
        Some(Ok(None)) => return Err(ReadError::TooLarge),
        Some(Err(e)) => return Err(from(e)),
        None => {}
    }
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_sub(clock.now_ms());
        if left == 0 {
            return Err(ReadError::Timeout);
        }
        match body.next_chunk(left).await.map_err(from)? {
            Some(bytes) if out.len() + bytes.len() > limit => return Err(ReadError::TooLarge),
            Some(bytes) => out.extend_from_slice(&bytes),
            None => return Ok(out),
        }
    }
}
