//! The error taxonomy. Every upstream failure is reduced to one `ErrorClass`, and the class
//! alone decides what the engine does next (see `policy`).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    RateLimited,
    Overloaded,
    ServerError,
    ConnectError,
    TimeoutConnect,
    TimeoutFirstToken,
    TimeoutIdle,
    TimeoutAttempt,
    StreamCut,
    MalformedResponse,
    ContextLengthExceeded,
    ContentPolicy,
    InvalidRequest,
    AuthError,
    NotFound,
    /// The upstream answered with a 3xx redirect. An LLM API never needs one, and following
    /// it would send the prompt (and the key) to another host: the attempt fails instead.
    Redirect,
    /// The answer does not follow the strict JSON schema the request asked for.
    InvalidOutput,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 17] = [
        ErrorClass::RateLimited,
        ErrorClass::Overloaded,
        ErrorClass::ServerError,
        ErrorClass::ConnectError,
        ErrorClass::TimeoutConnect,
        ErrorClass::TimeoutFirstToken,
        ErrorClass::TimeoutIdle,
        ErrorClass::TimeoutAttempt,
        ErrorClass::StreamCut,
        ErrorClass::MalformedResponse,
        ErrorClass::ContextLengthExceeded,
        ErrorClass::ContentPolicy,
        ErrorClass::InvalidRequest,
        ErrorClass::AuthError,
        ErrorClass::NotFound,
        ErrorClass::Redirect,
        ErrorClass::InvalidOutput,
    ];

    pub fn from_name(name: &str) -> Option<ErrorClass> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Overloaded => "overloaded",
            ErrorClass::ServerError => "server_error",
            ErrorClass::ConnectError => "connect_error",
            ErrorClass::TimeoutConnect => "timeout_connect",
            ErrorClass::TimeoutFirstToken => "timeout_first_token",
            ErrorClass::TimeoutIdle => "timeout_idle",
            ErrorClass::TimeoutAttempt => "timeout_attempt",
            ErrorClass::StreamCut => "stream_cut",
            ErrorClass::MalformedResponse => "malformed_response",
            ErrorClass::ContextLengthExceeded => "context_length_exceeded",
            ErrorClass::ContentPolicy => "content_policy",
            ErrorClass::InvalidRequest => "invalid_request",
            ErrorClass::AuthError => "auth_error",
            ErrorClass::NotFound => "not_found",
            ErrorClass::Redirect => "upstream_redirect",
            ErrorClass::InvalidOutput => "invalid_output",
        }
    }

    pub fn is_timeout(self) -> bool {
        matches!(
            self,
            ErrorClass::TimeoutConnect
                | ErrorClass::TimeoutFirstToken
                | ErrorClass::TimeoutIdle
                | ErrorClass::TimeoutAttempt
        )
    }

    /// The attempt failed after the provider accepted it and its model started on the prompt
    /// (a cut, stalled or malformed stream, a deadline while generating), so the provider
    /// bills the prompt: OpenAI, Anthropic and Google bill the input of a request whose
    /// stream is cut or cancelled once generation began. HTTP errors and failed connections
    /// are not billed.
    pub fn billed_by_provider(self) -> bool {
        matches!(
            self,
            ErrorClass::StreamCut
                | ErrorClass::MalformedResponse
                | ErrorClass::TimeoutFirstToken
                | ErrorClass::TimeoutIdle
                | ErrorClass::TimeoutAttempt
        )
    }

    /// The caller's request itself is at fault: the same request fails everywhere.
    pub fn is_client_fault(self) -> bool {
        matches!(
            self,
            ErrorClass::InvalidRequest
                | ErrorClass::ContentPolicy
                | ErrorClass::ContextLengthExceeded
        )
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One classified upstream failure, carrying what the caller may need to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    pub class: ErrorClass,
    /// HTTP status from the upstream, when there was one.
    pub status: Option<u16>,
    /// The provider's own reason (its error message), or what the gateway observed.
    pub message: String,
    /// Retry-After hint in ms, when the upstream gave one.
    pub retry_after_ms: Option<u64>,
    /// The upstream's error body, kept for errors returned to the caller unchanged.
    pub body: Option<Vec<u8>>,
    /// A replayed answer contradicted the text already delivered (`engine::resume`):
    /// resuming stops, whatever the class says.
    pub diverged: bool,
}

/// What to say about an error response whose body carries no parsable message: the status
/// and the start of the body (at most 300 characters).
pub fn http_body_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return format!("upstream answered HTTP {status}");
    }
    let cut = text.char_indices().nth(300).map_or(text.len(), |(i, _)| i);
    format!(
        "upstream answered HTTP {status}: {}",
        text.get(..cut).unwrap_or(text)
    )
}

impl UpstreamError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        UpstreamError {
            class,
            status: None,
            message: message.into(),
            retry_after_ms: None,
            body: None,
            diverged: false,
        }
    }
}
