//! One attempt on one deployment: send, wait under the attempt's deadlines, classify. For
//! streams it reads until the first content chunk (the commit point) and hands the live
//! stream back; everything before that point is buffered and invisible to the caller.

use super::body::{AttemptBody, MockBody, ReadAllError};
use super::deadlines::{timeout_error, Deadlines};
use super::ports::{Clock, ReadAhead, Transport, TransportError};
use super::resume::{Delivered, Filter};
use super::stream::LiveStream;
use crate::api::ClientFormat;
use crate::config::Deployment;
use crate::egress::StreamEgress;
use crate::providers::Target;
use crate::providers::{classify_error, parse_response, Format, Translator};
use crate::redact::Redactor;
use crate::resilience::retry_after::parse_retry_after;
use crate::resilience::{ErrorClass, UpstreamError};
use crate::usage::Usage;
use std::rc::Rc;

/// Largest non-streaming answer accepted from an upstream.
const MAX_ANSWER_BYTES: usize = 32 << 20;
/// Largest error body read from an upstream.
const MAX_ERROR_BYTES: usize = 64 << 10;

pub enum AttemptOutcome<B> {
    Complete {
        body: Vec<u8>,
        /// `body` is already in the client's format (a same-format native answer).
        client_ready: bool,
        usage: Option<Usage>,
        model: Option<String>,
    },
    Committed(Box<LiveStream<B>>),
    Failed(UpstreamError),
}

pub struct AttemptInput<'a> {
    pub deployment: &'a Deployment,
    pub target: Target,
    pub stream: bool,
    pub client_wants_usage: bool,
    pub client: ClientFormat,
    /// The whole request must be over by then.
    pub request_deadline_ms: u64,
    /// Set when this attempt resumes a broken stream: how to filter its chunks, what the
    /// client already has, and the client-side encoder to continue with.
    pub resume: Option<(Filter, Delivered, StreamEgress)>,
    /// The output limit the gateway imposed (see `ChatRequest::output_cap`).
    pub output_cap: Option<u64>,
    /// The strict schema the answer must follow (see `ChatRequest::output_schema`).
    pub output_schema: Option<serde_json::Value>,
    /// Scrubs secrets from every upstream error before it reaches the caller or a log line.
    pub redactor: &'a Rc<Redactor>,
}

/// One attempt; whatever upstream text its failure carries is scrubbed of secrets.
pub async fn run_attempt<T: Transport, C: Clock>(
    input: AttemptInput<'_>,
    transport: &T,
    clock: &C,
) -> AttemptOutcome<T::Body> {
    let redactor = Rc::clone(input.redactor);
    match attempt_once(input, transport, clock).await {
        AttemptOutcome::Failed(e) => AttemptOutcome::Failed(redactor.error(e)),
        other => other,
    }
}

async fn attempt_once<T: Transport, C: Clock>(
    input: AttemptInput<'_>,
    transport: &T,
    clock: &C,
) -> AttemptOutcome<T::Body> {
    let start = clock.now_ms();
    let mut dl = Deadlines::new(
        input.deployment,
        input.stream,
        start,
        input.request_deadline_ms,
    );
    if matches!(input.resume, Some((Filter::Replay { .. }, _, _))) {
        // A replay must regenerate the delivered text before its first new token.
        dl.first_token = dl.attempt;
    }
    let format = match &input.target {
        Target::Http(_, f) => *f,
        Target::Mock(_) => Format::OpenAi,
    };
    // The client speaks the upstream's format: pass its own answer through, not the pivot.
    let native = input.client == ClientFormat::Anthropic && format == Format::Anthropic;
    // A non-streaming attempt reads its whole body: say so, so the transport may read it
    // together with the head (one step instead of two).
    let ahead = (!input.stream).then_some(ReadAhead {
        answer_limit: MAX_ANSWER_BYTES,
        error_limit: MAX_ERROR_BYTES,
        deadline_ms: dl.attempt.0,
    });
    let head = match send(
        input.target,
        dl.headers.0.saturating_sub(start),
        ahead,
        transport,
        clock,
    )
    .await
    {
        Ok(h) => h,
        Err(TransportError::Timeout) => {
            return AttemptOutcome::Failed(timeout_error(dl.headers, "response headers"))
        }
        Err(TransportError::Connect(m) | TransportError::Reset(m)) => {
            return AttemptOutcome::Failed(UpstreamError::new(
                ErrorClass::ConnectError,
                format!("connection failed: {m}"),
            ))
        }
    };
    let (status, retry_after, mut body) = head;
    if (300..400).contains(&status) {
        // The transport never follows redirects; a 3xx is this deployment's failure.
        return AttemptOutcome::Failed(UpstreamError {
            status: Some(status),
            ..UpstreamError::new(
                ErrorClass::Redirect,
                format!("upstream answered HTTP {status} (a redirect, which the gateway does not follow)"),
            )
        });
    }
    if !(200..300).contains(&status) {
        let bytes = match body.read_all(MAX_ERROR_BYTES, dl.attempt.0, clock).await {
            Ok(b) | Err(ReadAllError::Transport(_, b)) => b,
            Err(ReadAllError::TooLarge) => Vec::new(),
        };
        let hint = parse_retry_after(
            retry_after.0.as_deref(),
            retry_after.1.as_deref(),
            clock.now_ms(),
        );
        return AttemptOutcome::Failed(classify_error(format, status, &bytes, hint));
    }
    if !input.stream {
        let read = body.read_all(MAX_ANSWER_BYTES, dl.attempt.0, clock).await;
        return answer(read, format, native, &dl);
    }
    let translator = Translator::new(format, input.client_wants_usage, native);
    let mut live = match input.resume {
        None => LiveStream::new(
            body,
            translator,
            StreamEgress::new(input.client, native),
            dl,
            Rc::clone(input.redactor),
        ),
        Some((filter, delivered, egress)) => {
            LiveStream::new(body, translator, egress, dl, Rc::clone(input.redactor))
                .resumed(filter, delivered)
        }
    };
    live.cap_output(input.output_cap);
    live.check_output(input.output_schema);
    match live.until_commit(clock).await {
        Ok(()) => AttemptOutcome::Committed(Box::new(live)),
        Err(e) => AttemptOutcome::Failed(e),
    }
}

/// A non-streaming attempt's whole answer, parsed (or why it is not one).
fn answer<B>(
    read: Result<Vec<u8>, ReadAllError>,
    format: Format,
    native: bool,
    dl: &Deadlines,
) -> AttemptOutcome<B> {
    match read {
        Ok(bytes) => match parse_response(format, bytes) {
            Ok(p) => AttemptOutcome::Complete {
                client_ready: native && p.native.is_some(),
                body: match p.native {
                    Some(n) if native => n,
                    _ => p.body,
                },
                usage: p.usage,
                model: p.model,
            },
            Err(e) => AttemptOutcome::Failed(e),
        },
        Err(ReadAllError::TooLarge) => AttemptOutcome::Failed(UpstreamError::new(
            ErrorClass::MalformedResponse,
            format!("upstream answer is larger than {MAX_ANSWER_BYTES} bytes"),
        )),
        Err(ReadAllError::Transport(TransportError::Timeout, _)) => {
            AttemptOutcome::Failed(timeout_error(dl.attempt, "the answer"))
        }
        Err(ReadAllError::Transport(e, _)) => AttemptOutcome::Failed(UpstreamError::new(
            ErrorClass::StreamCut,
            format!(
                "connection broke while reading the answer: {}",
                describe(&e)
            ),
        )),
    }
}

type Head<B> = (u16, (Option<String>, Option<String>), AttemptBody<B>);

async fn send<T: Transport, C: Clock>(
    target: Target,
    timeout_ms: u64,
    ahead: Option<ReadAhead>,
    transport: &T,
    clock: &C,
) -> Result<Head<T::Body>, TransportError> {
    match target {
        Target::Http(req, _) => {
            let head = match ahead {
                Some(ahead) => transport.send_reading(req, timeout_ms, ahead).await?,
                None => transport.send(req, timeout_ms).await?,
            };
            let ra = (
                head.header("retry-after-ms").map(str::to_string),
                head.header("retry-after").map(str::to_string),
            );
            Ok((head.status, ra, AttemptBody::Net(head.body)))
        }
        Target::Mock(plan) => {
            if plan.latency_ms > timeout_ms {
                clock.sleep(timeout_ms).await;
                return Err(TransportError::Timeout);
            }
            if plan.latency_ms > 0 {
                clock.sleep(plan.latency_ms).await;
            }
            let find = |name: &str| {
                plan.headers
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            let ra = (find("retry-after-ms"), find("retry-after"));
            Ok((
                plan.status,
                ra,
                AttemptBody::Mock(MockBody::new(plan.chunks, plan.chunk_delay_ms)),
            ))
        }
    }
}

pub fn describe(e: &TransportError) -> String {
    match e {
        TransportError::Timeout => "timeout".into(),
        TransportError::Connect(m) | TransportError::Reset(m) => m.clone(),
    }
}
