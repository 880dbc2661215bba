//! One attempt on one deployment, the same for the chain walk's attempts, a hedge and a
//! resume: build the upstream request, then send it under the attempt's deadlines
//! (`attempt::run_attempt`). The only place an `AttemptInput` is made.

use super::attempt::{run_attempt, AttemptInput, AttemptOutcome};
use super::ports::{Clock, Health, Transport};
use super::resume::{Delivered, Filter};
use super::Engine;
use crate::api::{ChatRequest, ClientFormat};
use crate::config::Deployment;
use crate::egress::StreamEgress;
use crate::providers::build_target;
use crate::resilience::UpstreamError;

/// What a resumed attempt continues from: how to filter its chunks, what the client already
/// has, and the client-side encoder to continue with.
pub(super) type Resume = (Filter, Delivered, StreamEgress);

impl<T: Transport, C: Clock, H: Health> Engine<'_, T, C, H> {
    /// The attempt's input: the upstream request for `dep` and the client's expectations.
    /// Err when the request cannot be built for it (a missing secret, say).
    pub(super) fn prepare<'s>(
        &'s self,
        dep: &'s Deployment,
        req: &ChatRequest,
        request_deadline_ms: u64,
        resume: Option<Resume>,
    ) -> Result<AttemptInput<'s>, UpstreamError> {
        let target = build_target(self.table, dep, req, self.secrets, self.clock.now_ms())?;
        Ok(AttemptInput {
            deployment: dep,
            target,
            stream: req.stream || resume.is_some(),
            client_wants_usage: req.include_usage || req.client == ClientFormat::Anthropic,
            client: req.client,
            request_deadline_ms,
            resume,
            output_cap: req.output_cap,
            output_schema: req.output_schema.clone(),
            redactor: self.redactor,
        })
    }

    /// Sends a prepared attempt.
    pub(super) async fn send(&self, input: AttemptInput<'_>) -> AttemptOutcome<T::Body> {
        run_attempt(input, self.transport, self.clock).await
    }

    /// One attempt of `req` on `dep`: prepared and sent, or failed if it cannot be built.
    pub(super) async fn attempt_once(
        &self,
        dep: &Deployment,
        req: &ChatRequest,
        request_deadline_ms: u64,
        resume: Option<Resume>,
    ) -> AttemptOutcome<T::Body> {
        match self.prepare(dep, req, request_deadline_ms, resume) {
            Ok(input) => self.send(input).await,
            Err(e) => AttemptOutcome::Failed(e),
        }
    }
}
