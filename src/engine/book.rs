//! What the engine tells the breakers about each attempt, and the small judgements its loop
//! makes about skipped deployments and hedge losers.

use super::hedge::Loser;
use super::meta::{AttemptRecord, Capability, Hedge, Meta};
use super::outcome::Outcome;
use super::ports::Health;
use super::Engine;
use crate::api::chat::Needs;
use crate::api::ApiError;
use crate::api::ChatRequest;
use crate::config::{Capabilities, Deployment, Route};
use crate::resilience::{ErrorClass, UpstreamError};
use crate::state::breaker::Report;
use crate::usage::{estimate, Usage};

impl<T, C, H: Health> Engine<'_, T, C, H> {
    /// A failed attempt (before or after commit): a failure if its class counts; a probe
    /// answered with a client error proves the deployment up; a probe that failed for a class
    /// the operator excluded says nothing (its lease expires).
    pub(crate) fn report_attempt_failure(
        &self,
        dep: &crate::config::Deployment,
        error: &UpstreamError,
        probe: bool,
        started_ms: Option<u64>,
    ) {
        if dep.breaker.counts(error.class) {
            self.report(dep, false, probe, error.retry_after_ms, started_ms);
        } else if probe && error.class.is_client_fault() {
            self.report(dep, true, probe, None, started_ms);
        }
    }

    /// `started_ms`: when the attempt started (a failure's start dates the breaker's trip).
    pub(crate) fn report(
        &self,
        dep: &crate::config::Deployment,
        ok: bool,
        probe: bool,
        retry_after_ms: Option<u64>,
        started_ms: Option<u64>,
    ) {
        if dep.breaker.enabled {
            self.health.report(
                dep,
                Report {
                    ok,
                    probe,
                    retry_after_ms,
                    started_ms,
                },
            );
        }
    }
}

impl<T, C, H> Engine<'_, T, C, H> {
    /// The prompt of an attempt that failed after reaching the model (`class`; None: a hedge
    /// cancelled because the other attempt won), when its provider bills such prompts
    /// (`bill_failed_prompts`): estimated, at the deployment's input price, in
    /// `meta.failed_prompts` (part of the request's cost).
    pub(super) fn bill_failed(
        &self,
        meta: &mut Meta,
        dep: &Deployment,
        req: &ChatRequest,
        class: Option<ErrorClass>,
    ) {
        let reached = class.is_none_or(ErrorClass::billed_by_provider);
        let bills = self
            .table
            .provider_of(dep)
            .is_some_and(|p| p.bill_failed_prompts);
        if reached && bills {
            let prompt = Usage {
                prompt_tokens: estimate::prompt_tokens(req),
                ..Usage::default()
            };
            meta.failed_prompts
                .push((dep.name.clone(), prompt.cost_nanos(&dep.price)));
        }
    }
}

impl<T, C, H: Health> Engine<'_, T, C, H> {
    /// Books the hedge race's loser: a cancelled attempt is noted (it never answered; its
    /// prompt is billed if its provider bills such prompts); a failed one is an attempt like
    /// any other. Returns the chain step of a failed loser.
    pub(super) fn note_loser(
        &self,
        route: &Route,
        req: &ChatRequest,
        meta: &mut Meta,
        l: Loser,
    ) -> Option<usize> {
        let dep = route
            .chain
            .steps()
            .get(l.step_index)
            .and_then(|s| self.table.deployment(s.deployment))?;
        match l.error {
            None => {
                meta.hedges.push((dep.name.clone(), Hedge::Cancelled));
                self.bill_failed(meta, dep, req, None);
                None
            }
            Some(e) => {
                self.report_attempt_failure(dep, &e, false, Some(l.started_ms));
                meta.attempts.push(AttemptRecord {
                    deployment: dep.name.clone(),
                    class: Some(e.class),
                    status: e.status,
                    started_ms: l.started_ms,
                    duration_ms: l.ended_ms.saturating_sub(l.started_ms),
                });
                if let Some(billed) = l.refused_billed {
                    meta.failed_prompts.push((dep.name.clone(), billed));
                }
                self.bill_failed(meta, dep, req, Some(e.class));
                Some(l.step_index)
            }
        }
    }
}

/// Every deployment was skipped for an open breaker (or a kill switch); the only attempt, if
/// any, was the forced probe (which is planned only when nothing else was tried).
pub(super) fn all_open_failed(meta: &Meta, forced_planned: bool) -> bool {
    !meta.skipped.is_empty()
        && (meta.attempts.is_empty() || forced_planned)
        && meta.skipped.iter().all(|(_, why)| why.is_breaker())
}

/// The first capability the request needs that the deployment lacks.
pub(super) fn missing_capability(needs: &Needs, has: &Capabilities) -> Option<Capability> {
    [
        (needs.tools && !has.tools, Capability::Tools),
        (needs.vision && !has.vision, Capability::Vision),
        (needs.json && !has.json, Capability::Json),
        (needs.streaming && !has.streaming, Capability::Streaming),
    ]
    .into_iter()
    .find_map(|(missing, name)| missing.then_some(name))
}

pub(super) fn failed<B>(mut meta: Meta, error: ApiError) -> Outcome<B> {
    meta.status = error.status;
    meta.error = Some(format!("{}: {}", error.code, error.message));
    Outcome::Failed { error, meta }
}
