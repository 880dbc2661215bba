//! A live upstream stream, before and after the commit point.
//!
//! Invariant (the streaming contract): the caller sees bytes only after the first content
//! chunk; after that the stream ends either with `data: [DONE]` because the upstream finished
//! (finish_reason on every choice, or its own `[DONE]`), or with one in-band error event and
//! no `[DONE]`. A cut, stall, malformed chunk or in-band error never looks like success.

use super::body::AttemptBody;
use super::deadlines::{timeout_error, Deadlines};
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
    /// The read `step` asked for last.
    armed: Armed,
    /// The output limit the gateway imposed, and whether the answer was cut there.
    output_cap: Option<u64>,
    pub capped: bool,
    /// The strict schema the answer must follow: checked when it ends.
    output_schema: Option<serde_json::Value>,
}

/// What a committed stream needs next (see `LiveStream::step`).
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes to the client.
    Bytes(Vec<u8>),
    /// Read the upstream, giving up after `timeout_ms` (and never after `until_ms`, the
    /// attempt's end, however late the read starts), and `feed` the result.
    Read { timeout_ms: u64, until_ms: u64 },
    /// Over, or broken: `take_end` says which.
    Stop,
}

/// The result of one read of the upstream body.
#[derive(Debug, Clone, Copy)]
pub enum Piece<'a> {
    Data(&'a [u8]),
    /// The body ended.
    End,
    /// The read's timeout elapsed first.
    Timeout,
    /// The connection broke (the runtime's message).
    Broken(&'a str),
}

/// The read in flight: when it was asked for, and whether its timeout is the idle wait (not
/// the attempt's end), so that a timeout is classified as the deadline that set it.
#[derive(Debug, Clone, Copy, Default)]
struct Armed {
    at_ms: u64,
    idle_wait: bool,
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
            armed: Armed::default(),
            output_cap: None,
            capped: false,
            output_schema: None,
        }
    }

    /// The answer must follow `schema` (a strict `json_schema` response format): one that
    /// ends off it ends with an in-band `invalid_output` error instead of the normal end.
    pub fn check_output(&mut self, schema: Option<serde_json::Value>) {
        self.output_schema = schema;
    }

    /// The gateway set the answer's output limit to `cap` (a reservation): an answer that
    /// reaches it is cut with an in-band error instead of ending normally.
    pub fn cap_output(&mut self, cap: Option<u64>) {
        self.output_cap = cap;
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
            match self.step(clock.now_ms()) {
                Step::Bytes(bytes) => return Ok(Some(bytes)),
                Step::Stop => return self.take_end(),
                Step::Read {
                    timeout_ms: timeout,
                    ..
                } => {
                    let piece = self.body.next_chunk(timeout, clock).await;
                    let now = clock.now_ms();
                    match piece {
                        Ok(Some(bytes)) => self.feed(Piece::Data(&bytes), now),
                        Ok(None) => self.feed(Piece::End, now),
                        Err(TransportError::Timeout) => self.feed(Piece::Timeout, now),
                        Err(TransportError::Connect(m) | TransportError::Reset(m)) => {
                            self.feed(Piece::Broken(&m), now)
                        }
                    }
                }
            }
        }
    }

    /// What the stream needs next, without waiting: bytes ready for the client, a read of the
    /// upstream under the given timeout (then `feed` its result), or a stop (`take_end`).
    pub fn step(&mut self, now: u64) -> Step {
        loop {
            // Everything ready goes out in one piece: fewer hand-overs to the runtime.
            if let Some(first) = self.pending.pop_front() {
                if self.pending.is_empty() {
                    return Step::Bytes(first);
                }
                let mut all = first;
                for b in self.pending.drain(..) {
                    all.extend_from_slice(&b);
                }
                return Step::Bytes(all);
            }
            if self.broken.is_some() || self.ended {
                return Step::Stop;
            }
            if self.done || (self.finished && self.usage.is_some()) {
                self.finish_ok();
                continue;
            }
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
            self.armed = Armed {
                at_ms: now,
                idle_wait: wait <= attempt_left,
            };
            return Step::Read {
                timeout_ms: wait.min(attempt_left),
                until_ms: self.dl.attempt.0,
            };
        }
    }

    /// After `step` said `Stop`: the failure after commit (once), or the end.
    pub fn take_end(&mut self) -> Result<Option<Vec<u8>>, UpstreamError> {
        match self.broken.take() {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    /// The result of the read that `step` asked for, at `now`.
    pub fn feed(&mut self, piece: Piece<'_>, now: u64) {
        self.waiting_ms += now.saturating_sub(self.armed.at_ms);
        let result = match piece {
            Piece::Data(bytes) => {
                let events = translate(&mut self.translator, Some(bytes));
                self.apply(events)
            }
            Piece::End => {
                let events = translate(&mut self.translator, None);
                let error = self.apply(events);
                if error.is_none() {
                    // The translator reports a cut unless the answer had finished.
                    self.finish_ok();
                }
                error
            }
            // The idle wait set it, unless the read started late (after a slow client write)
            // and ran into the attempt's end instead.
            Piece::Timeout if self.armed.idle_wait && now <= self.dl.attempt.0 => {
                let idle = self.dl.idle_ms;
                Some(UpstreamError::new(
                    ErrorClass::TimeoutIdle,
                    format!("upstream stream stalled: no data for {idle} ms"),
                ))
            }
            Piece::Timeout => Some(timeout_error(self.dl.attempt, "end of stream")),
            Piece::Broken(m) => Some(UpstreamError::new(
                ErrorClass::StreamCut,
                format!("connection broke mid-stream: {m}"),
            )),
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

    /// The upstream body, for a glue that reads it itself (then `step`/`feed` per read).
    pub fn body_mut(&mut self) -> &mut AttemptBody<B> {
        &mut self.body
    }

    fn apply(&mut self, events: Vec<StreamEvent>) -> Option<UpstreamError> {
        let mut out = Vec::new();
        let mut error = None;
        for ev in events {
            match ev {
                StreamEvent::Chunk {
                    bytes,
                    content,
                    facts,
                } => {
                    // Unfiltered, the chunk goes out as the translator read it.
                    let facts = facts.filter(|_| matches!(self.filter, Filter::Pass));
                    match self.filter.apply(bytes, &self.delivered) {
                        Ok(Some(forward)) => {
                            self.committed |= content;
                            match facts {
                                Some(f) => self.delivered.record(*f),
                                None => self.delivered.observe(&forward),
                            }
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
        if let Some(e) = self.off_schema() {
            self.end_with_error(e);
            return;
        }
        let mut out = Vec::new();
        match self.cap_reached() {
            Some(cap) => {
                self.egress.budget_cut(cap, &mut out);
                self.capped = true;
            }
            None => self.egress.done(&mut out),
        }
        self.pending.extend(out);
        self.ended = true;
    }

    /// Why the finished answer is off its schema, if it is (an answer without text, such as a
    /// tool call, or past what is kept of it, `MAX_DELIVERED_BYTES`, is not checked).
    fn off_schema(&self) -> Option<UpstreamError> {
        let schema = self.output_schema.as_ref()?;
        let unchecked = self.delivered.overflowed || self.delivered.text().is_empty();
        if unchecked || self.delivered.tool_partial || self.is_native() {
            return None;
        }
        super::output::text_off_schema(schema, self.delivered.text())
    }

    /// The imposed output limit, when the answer reached it (by the provider's count, else by
    /// the delivered text's estimate).
    fn cap_reached(&self) -> Option<u64> {
        let cap = self.output_cap?;
        let used = match self.usage {
            Some(u) => u.completion_tokens,
            None => crate::usage::estimate::tokens(self.delivered.chars),
        };
        (used >= cap).then_some(cap)
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

/// Feeds one upstream piece through the translator (shared by pre- and post-commit reading).
pub fn translate(translator: &mut Translator, bytes: Option<&[u8]>) -> Vec<StreamEvent> {
    let mut out = Vec::new();
    match bytes {
        Some(b) => translator.feed(b, &mut out),
        None => translator.end(&mut out),
    }
    out
}
