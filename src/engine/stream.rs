//! A live upstream stream, before and after the commit point.
//!
//! Invariant (the streaming contract): the caller sees bytes only after the first content
//! chunk; after that the stream ends either with `data: [DONE]` because the upstream finished
//! (finish_reason on every choice, or its own `[DONE]`), or with one in-band error event and
//! no `[DONE]`. A cut, stall, malformed chunk or in-band error never looks like success.

use super::attempt::{timeout_error, translate, Deadlines};
use super::body::AttemptBody;
use super::ports::{Clock, ResponseBody, TransportError};
use super::resume::{Delivered, Filter};
use crate::egress::StreamEgress;
use crate::providers::{StreamEvent, Translator};
use crate::redact::Redactor;
use crate::resilience::{ErrorClass, UpstreamError};
use crate::usage::Usage;
use std::collections::VecDeque;
use std::rc::Rc;

/// After finish_reason, how long to wait for the usage chunk or `[DONE]` before finalising.
const FINISH_GRACE_MS: u64 = 1_000;

pub struct LiveStream<B> {
    body: AttemptBody<B>,
    translator: Translator,
    egress: StreamEgress,
    dl: Deadlines,
    pending: VecDeque<Vec<u8>>,
    committed: bool,
    finished: bool,
    done: bool,
    ended: bool,
    pub usage: Option<Usage>,
    /// Why the stream ended early, once it has.
    pub end_error: Option<UpstreamError>,
    /// Time spent waiting on the upstream.
    pub waiting_ms: u64,
    /// Between the attempt's pivot chunks and the client (resumed attempts filter/rewrite).
    filter: Filter,
    /// What reached the client so far (carried across resumes).
    pub delivered: Delivered,
    /// A failure after commit, reported once the chunks before it are out.
    broken: Option<UpstreamError>,
    /// A replay produced text that contradicts what was delivered: never resume again.
    pub diverged: bool,
    /// Every error leaving the stream (returned or sent in-band) is scrubbed with it.
    redactor: Rc<Redactor>,
}

impl<B: ResponseBody> LiveStream<B> {
    pub fn new(
        body: AttemptBody<B>,
        translator: Translator,
        egress: StreamEgress,
        dl: Deadlines,
        redactor: Rc<Redactor>,
    ) -> Self {
        LiveStream {
            body,
            translator,
            egress,
            dl,
            pending: VecDeque::new(),
            committed: false,
            finished: false,
            done: false,
            ended: false,
            usage: None,
            end_error: None,
            waiting_ms: 0,
            filter: Filter::Pass,
            delivered: Delivered::default(),
            broken: None,
            diverged: false,
            redactor,
        }
    }

    /// A resumed attempt: chunks pass `filter`, and `delivered` continues the client's answer.
    pub fn resumed(mut self, filter: Filter, delivered: Delivered) -> Self {
        self.filter = filter;
        self.delivered = delivered;
        self
    }

    /// A copy of the client-side encoder's state, for an attempt that may take over.
    pub fn egress_clone(&self) -> StreamEgress {
        self.egress.clone()
    }

    /// The client's stream is native passthrough (no resume: the pivot is not what it sees).
    pub fn is_native(&self) -> bool {
        matches!(self.egress, StreamEgress::AnthropicNative { .. })
    }

    /// The model the upstream named in its chunks.
    pub fn model(&self) -> Option<&str> {
        self.translator.model()
    }

    /// Reads until the first content chunk. Any failure before it is returned, not shown.
    pub async fn until_commit<C: Clock>(&mut self, clock: &C) -> Result<(), UpstreamError> {
        loop {
            let now = clock.now_ms();
            let left = self.dl.first_token.0.saturating_sub(now);
            if left == 0 {
                return Err(timeout_error(self.dl.first_token, "first token"));
            }
            let piece = self.body.next_chunk(left, clock).await;
            self.waiting_ms += clock.now_ms().saturating_sub(now);
            let events = match piece {
                Ok(Some(bytes)) => translate(&mut self.translator, Some(&bytes)),
                Ok(None) => translate(&mut self.translator, None),
                Err(TransportError::Timeout) => {
                    return Err(timeout_error(self.dl.first_token, "first token"))
                }
                Err(TransportError::Connect(m) | TransportError::Reset(m)) => {
                    return Err(UpstreamError::new(
                        ErrorClass::StreamCut,
                        format!("connection broke before the first token: {m}"),
                    ))
                }
            };
            if let Some(e) = self.apply(events) {
                if !self.committed {
                    return Err(e);
                }
                self.end_with_error(e);
            }
            if self.committed {
                return Ok(());
            }
            if self.done {
                return Err(UpstreamError::new(
                    ErrorClass::MalformedResponse,
                    "upstream stream ended before any content",
                ));
            }
        }
    }

    /// Next bytes for the client, `Ok(None)` when the stream is over, or `Err` once when it
    /// broke after commit (the caller resumes it or calls `fail`).
    pub async fn next_bytes<C: Clock>(
        &mut self,
        clock: &C,
    ) -> Result<Option<Vec<u8>>, UpstreamError> {
        loop {
            // Everything ready goes out in one piece: fewer hand-overs to the runtime.
            if let Some(first) = self.pending.pop_front() {
                if self.pending.is_empty() {
                    return Ok(Some(first));
                }
                let mut all = first;
                for b in self.pending.drain(..) {
                    all.extend_from_slice(&b);
                }
                return Ok(Some(all));
            }
            if let Some(e) = self.broken.take() {
                return Err(e);
            }
            if self.ended {
                return Ok(None);
            }
            if self.done || (self.finished && self.usage.is_some()) {
                self.finish_ok();
                continue;
            }
            let now = clock.now_ms();
            let attempt_left = self.dl.attempt.0.saturating_sub(now);
            if attempt_left == 0 {
                self.end_with_error(timeout_error(self.dl.attempt, "end of stream"));
                continue;
            }
            let wait = if self.finished {
                FINISH_GRACE_MS.min(self.dl.idle_ms)
            } else {
                self.dl.idle_ms
            };
            let timeout = wait.min(attempt_left);
            let piece = self.body.next_chunk(timeout, clock).await;
            self.waiting_ms += clock.now_ms().saturating_sub(now);
            let result = match piece {
                Ok(Some(bytes)) => {
                    let events = translate(&mut self.translator, Some(&bytes));
                    self.apply(events)
                }
                Ok(None) => {
                    let events = translate(&mut self.translator, None);
                    let error = self.apply(events);
                    if error.is_none() {
                        // The translator reports a cut unless the answer had finished.
                        self.finish_ok();
                    }
                    error
                }
                Err(TransportError::Timeout) if wait <= attempt_left => {
                    let idle = self.dl.idle_ms;
                    Some(UpstreamError::new(
                        ErrorClass::TimeoutIdle,
                        format!("upstream stream stalled: no data for {idle} ms"),
                    ))
                }
                Err(TransportError::Timeout) => {
                    Some(timeout_error(self.dl.attempt, "end of stream"))
                }
                Err(TransportError::Connect(m) | TransportError::Reset(m)) => {
                    Some(UpstreamError::new(
                        ErrorClass::StreamCut,
                        format!("connection broke mid-stream: {m}"),
                    ))
                }
            };
            match result {
                // The answer was already complete: a late failure loses only the usage chunk.
                Some(_) if self.finished => self.finish_ok(),
                Some(e) => {
                    self.ended = true;
                    self.broken = Some(self.redactor.error(e));
                }
                None => {}
            }
        }
    }

    fn apply(&mut self, events: Vec<StreamEvent>) -> Option<UpstreamError> {
        let mut out = Vec::new();
        let mut error = None;
        for ev in events {
            match ev {
                StreamEvent::Chunk { bytes, content } => {
                    match self.filter.apply(bytes, &self.delivered) {
                        Ok(Some(forward)) => {
                            self.committed |= content;
                            self.delivered.observe(&forward);
                            self.egress.chunk(forward, &mut out);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            self.diverged = true;
                            error = Some(e);
                            break;
                        }
                    }
                }
                StreamEvent::Finish => self.finished = true,
                StreamEvent::Usage(u) => self.usage = Some(u),
                StreamEvent::Done => self.done = true,
                StreamEvent::Native(bytes) => self.egress.native(bytes, &mut out),
                StreamEvent::Error(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        self.pending.extend(out);
        error
    }

    fn finish_ok(&mut self) {
        let mut out = Vec::new();
        self.egress.done(&mut out);
        self.pending.extend(out);
        self.ended = true;
    }

    /// Ends the client's stream with an in-band error event (no resume, or resumes failed).
    pub fn fail(&mut self, e: UpstreamError) {
        self.end_with_error(e);
    }

    fn end_with_error(&mut self, e: UpstreamError) {
        let e = self.redactor.error(e);
        let mut out = Vec::new();
        self.egress.error(&e, &mut out);
        self.pending.extend(out);
        self.ended = true;
        self.end_error = Some(e);
    }
}
