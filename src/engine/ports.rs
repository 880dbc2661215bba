//! Ports: what the engine needs from the outside world. No `Send` bounds: JS futures are not
//! `Send`, and the worker runs one request per task.

use crate::config::Deployment;
use crate::providers::HttpRequest;
use crate::state::breaker::{Report, View};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// The given timeout elapsed first (the transport cancelled the request).
    Timeout,
    /// The connection could not be made or failed before response headers.
    Connect(String),
    /// The connection broke while reading the body.
    Reset(String),
}

/// The upstream response headers the engine reads. A transport may deliver only these (each
/// header carried across from the runtime costs; providers send dozens).
pub const READ_HEADERS: &[&str] = &["retry-after-ms", "retry-after"];

#[derive(Debug)]
pub struct ResponseHead<B> {
    pub status: u16,
    /// Header names in lower case: at least those in `READ_HEADERS` that the response has.
    pub headers: Vec<(String, String)>,
    pub body: B,
}

impl<B> ResponseHead<B> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[allow(async_fn_in_trait)]
pub trait ResponseBody {
    /// The next piece of the body; `Ok(None)` at its end. Gives up after `timeout_ms`.
    async fn next_chunk(&mut self, timeout_ms: u64) -> Result<Option<Vec<u8>>, TransportError>;

    /// The whole body in one read, if the transport can do that more cheaply than piece by
    /// piece (None: read it with `next_chunk`). `Some(Ok(None))` means it is over `limit`.
    async fn read_whole(
        &mut self,
        _limit: usize,
        _timeout_ms: u64,
    ) -> Option<Result<Option<Vec<u8>>, TransportError>> {
        None
    }
}

/// How a non-streaming attempt will read its body: whole, whatever the status (bar a
/// redirect), at most `answer_limit` bytes for a 2xx and `error_limit` otherwise, by
/// `deadline_ms` (ms since the epoch). Given with the request, so that a transport can read
/// the body in the same step as the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadAhead {
    pub answer_limit: usize,
    pub error_limit: usize,
    pub deadline_ms: u64,
}

#[allow(async_fn_in_trait)]
pub trait Transport {
    type Body: ResponseBody;
    /// Sends the request and waits at most `timeout_ms` for the response headers.
    async fn send(
        &self,
        req: HttpRequest,
        timeout_ms: u64,
    ) -> Result<ResponseHead<Self::Body>, TransportError>;

    /// `send`, for an attempt that will then read the whole body as `ahead` says. The body's
    /// `read_whole` must then answer exactly as it would have without the read-ahead.
    async fn send_reading(
        &self,
        req: HttpRequest,
        timeout_ms: u64,
        _ahead: ReadAhead,
    ) -> Result<ResponseHead<Self::Body>, TransportError> {
        self.send(req, timeout_ms).await
    }
}

#[allow(async_fn_in_trait)]
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    async fn sleep(&self, ms: u64);
}

/// Circuit-breaker state shared by every isolate (Durable Objects in the worker). Reading is
/// cheap and local; only a would-be probe waits on the shared store for permission.
#[allow(async_fn_in_trait)]
pub trait Health {
    /// The breaker as this isolate last saw it. Waits on the shared store only when this
    /// isolate has never seen this deployment's breaker.
    async fn view(&self, deployment: &Deployment, now_ms: u64) -> View;
    /// Asks for a probe lease. `force`: even before the cooldown ends (the whole chain is open).
    async fn acquire_probe(&self, deployment: &Deployment, force: bool, now_ms: u64) -> bool;
    /// Reports one attempt's outcome without waiting for the store.
    fn report(&self, deployment: &Deployment, report: Report);
    /// Admits one attempt against the deployment's own RPM/TPM limits (only called for
    /// deployments that have limits: this waits on the shared store). `Err(retry_after_ms)`
    /// when the deployment is at its limit.
    /// The default admits everything (no shared store).
    async fn admit(
        &self,
        _deployment: &Deployment,
        _reservation: &str,
        _tokens: u64,
        _now_ms: u64,
    ) -> Result<(), u64> {
        Ok(())
    }
    /// Settles an admitted attempt to the tokens it used (None: release, nothing was used).
    fn settle(&self, _deployment: &Deployment, _reservation: &str, _tokens: Option<u64>) {}
    /// The deployment's measured p95 time to commit, if known (p95 hedges): to the first
    /// token for a stream, to the whole answer otherwise.
    fn hedge_p95_ms(&self, _deployment: &Deployment, _stream: bool) -> Option<u64> {
        None
    }
}

/// No shared state: every breaker is closed and reports go nowhere (native tools, tests that
/// are not about breakers).
pub struct AlwaysClosed;

impl Health for AlwaysClosed {
    async fn view(&self, _: &Deployment, _: u64) -> View {
        View::Closed
    }
    async fn acquire_probe(&self, _: &Deployment, _: bool, _: u64) -> bool {
        true
    }
    fn report(&self, _: &Deployment, _: Report) {}
}
