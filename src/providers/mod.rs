//! Upstream adapters, one folder per wire format. An adapter builds an HTTP request *value*,
//! classifies error responses, and translates answers into the pivot format (OpenAI chat
//! completions: a `chat.completion` body, or `chat.completion.chunk` SSE events); no adapter
//! does I/O. Egress encoders turn the pivot into whatever format the client speaks.

pub mod anthropic;
mod facts;
pub mod framing;
pub mod gemini;
pub mod mock;
pub mod openai;

use crate::api::ChatRequest;
use crate::config::{Deployment, HttpProvider, ProviderKind, RoutingTable};
use crate::resilience::{ErrorClass, UpstreamError};
use crate::usage::Usage;
pub use facts::ChunkFacts;

/// An upstream wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenAi,
    Anthropic,
    Gemini,
}

/// An outbound HTTP POST, as a value. The transport sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Looks up Worker secrets by name.
pub trait Secrets {
    fn get(&self, name: &str) -> Option<String>;
    /// Secret values outside the routing table that upstream text must never echo (the
    /// admin token); provider keys are found through the table.
    fn extra_values(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The provider's API key from the Worker secret it names, if it names one. A missing,
/// empty or multi-line secret is an auth error of this deployment (the chain moves on).
pub fn api_key(
    http: &HttpProvider,
    deployment: &Deployment,
    secrets: &dyn Secrets,
) -> Result<Option<String>, UpstreamError> {
    let Some(secret) = &http.api_key_secret else {
        return Ok(None);
    };
    let key = secrets
        .get(secret)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            UpstreamError::new(
                ErrorClass::AuthError,
                format!(
                    "Worker secret {secret:?} for deployment {:?} is not set",
                    deployment.name
                ),
            )
        })?;
    if key.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Err(UpstreamError::new(
            ErrorClass::AuthError,
            format!("Worker secret {secret:?} contains a line break"),
        ));
    }
    Ok(Some(key))
}

/// Where an attempt goes: over the network in some format, or to the built-in mock (which
/// speaks the OpenAI format).
#[derive(Debug, Clone)]
pub enum Target {
    Http(HttpRequest, Format),
    Mock(mock::MockPlan),
}

/// A complete non-streaming answer in the pivot format.
#[derive(Debug)]
pub struct ParsedResponse {
    /// An OpenAI `chat.completion` JSON body.
    pub body: Vec<u8>,
    pub usage: Option<Usage>,
    /// The model that answered, as the upstream named it.
    pub model: Option<String>,
    /// The upstream's own body, for a client that speaks the same format (Anthropic → Anthropic
    /// keeps thinking signatures and other fields the pivot has no place for).
    pub native: Option<Vec<u8>>,
}

/// What a stream translator reports for each piece of upstream data.
#[derive(Debug, PartialEq)]
pub enum StreamEvent {
    /// One OpenAI `chat.completion.chunk` SSE event (`data: {...}\n\n`). `content` marks a
    /// chunk carrying answer content or a finish: the commit point.
    Chunk {
        bytes: Vec<u8>,
        content: bool,
        /// What the chunk says of choice 0, when the translator read it anyway (OpenAI);
        /// None: the engine reads it from `bytes`.
        facts: Option<Box<ChunkFacts>>,
    },
    /// Every choice has finished: the answer is complete.
    Finish,
    Usage(Usage),
    /// The upstream said the stream is over (`[DONE]`, `message_stop`).
    Done,
    /// The stream failed (malformed data, in-band error event, cut); nothing follows.
    Error(UpstreamError),
    /// One upstream event as it arrived, for a client that speaks the upstream's format
    /// (emitted only by translators created in native mode, before the event's pivot chunks).
    Native(Vec<u8>),
}

/// Builds the upstream call for one deployment, at `now_ms` (the built-in mock's answer
/// carries it, as a real provider's `created` does).
pub fn build_target(
    table: &RoutingTable,
    deployment: &Deployment,
    req: &ChatRequest,
    secrets: &dyn Secrets,
    now_ms: u64,
) -> Result<Target, UpstreamError> {
    let provider = table.provider_of(deployment).ok_or_else(|| {
        UpstreamError::new(
            ErrorClass::NotFound,
            "deployment refers to a missing provider",
        )
    })?;
    match &provider.kind {
        ProviderKind::OpenAi(p) => openai::build_request(p, deployment, req, secrets)
            .map(|r| Target::Http(r, Format::OpenAi)),
        ProviderKind::Anthropic(p) => anthropic::build_request(p, deployment, req, secrets)
            .map(|r| Target::Http(r, Format::Anthropic)),
        ProviderKind::Gemini(p) => gemini::build_request(p, deployment, req, secrets)
            .map(|r| Target::Http(r, Format::Gemini)),
        ProviderKind::Mock(m) => Ok(Target::Mock(mock::plan(m, deployment, req, now_ms))),
    }
}

/// Classifies an error response (non-2xx status) of an upstream in `format`.
pub fn classify_error(
    format: Format,
    status: u16,
    body: &[u8],
    retry_after_ms: Option<u64>,
) -> UpstreamError {
    match format {
        Format::OpenAi => openai::classify_error(status, body, retry_after_ms),
        Format::Anthropic => anthropic::classify_error(status, body, retry_after_ms),
        Format::Gemini => gemini::classify_error(status, body, retry_after_ms),
    }
}

/// Checks a complete 2xx answer and converts it to the pivot format.
pub fn parse_response(format: Format, body: Vec<u8>) -> Result<ParsedResponse, UpstreamError> {
    match format {
        Format::OpenAi => openai::parse_response(body),
        Format::Anthropic => anthropic::parse_response(body),
        Format::Gemini => gemini::parse_response(body),
    }
}

/// A stream translator for one upstream format, producing pivot chunks.
pub enum Translator {
    OpenAi(openai::StreamTranslator),
    Anthropic(anthropic::StreamTranslator),
    Gemini(gemini::StreamTranslator),
}

impl Translator {
    /// `client_wants_usage`: pass usage-only chunks on to the client. `native`: also emit the
    /// upstream's own events (the client speaks the upstream's format; Anthropic only).
    pub fn new(format: Format, client_wants_usage: bool, native: bool) -> Self {
        match format {
            Format::OpenAi => Translator::OpenAi(openai::StreamTranslator::new(client_wants_usage)),
            Format::Anthropic => Translator::Anthropic(
                anthropic::StreamTranslator::new(client_wants_usage).with_native(native),
            ),
            Format::Gemini => Translator::Gemini(gemini::StreamTranslator::new(client_wants_usage)),
        }
    }

    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        match self {
            Translator::OpenAi(t) => t.feed(bytes, out),
            Translator::Anthropic(t) => t.feed(bytes, out),
            Translator::Gemini(t) => t.feed(bytes, out),
        }
    }

    /// The upstream body ended; reports a cut unless the answer was complete.
    pub fn end(&mut self, out: &mut Vec<StreamEvent>) {
        match self {
            Translator::OpenAi(t) => t.end(out),
            Translator::Anthropic(t) => t.end(out),
            Translator::Gemini(t) => t.end(out),
        }
    }

    pub fn model(&self) -> Option<&str> {
        match self {
            Translator::OpenAi(t) => t.model(),
            Translator::Anthropic(t) => t.model(),
            Translator::Gemini(t) => t.model(),
        }
    }
}
