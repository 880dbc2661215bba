//! `Fetch`-based transport and clock. Timeouts race the fetch (or the next body read) against
//! a timer and abort the request when the timer wins, so a silent upstream never holds a
//! connection past its deadline. Dropping a body aborts its fetch as well.

use crate::engine::{Clock, ResponseBody, ResponseHead, Transport, TransportError};
use crate::providers::HttpRequest;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use std::pin::pin;
use std::time::Duration;
use worker::{AbortController, ByteStream, Delay, Fetch, Headers, Method, Request, RequestInit};

pub struct WorkerClock;

impl Clock for WorkerClock {
    fn now_ms(&self) -> u64 {
        js_sys::Date::now() as u64
    }
    async fn sleep(&self, ms: u64) {
        Delay::from(Duration::from_millis(ms)).await;
    }
}

pub struct FetchTransport;

/// A response body: read whole (`arrayBuffer`) or as a stream, whichever is asked first.
///
/// Timeouts between stream reads reuse one armed timer: a chunk that arrives in time leaves
/// the timer running, and a timer that fires early (its deadline was set by an earlier read)
/// is re-armed for what is left. So a steady stream costs about one timer per idle window
/// instead of a setTimeout/clearTimeout pair per chunk.
pub struct FetchBody {
    resp: Option<worker::Response>,
    stream: Option<ByteStream>,
    controller: Option<AbortController>,
    /// Read to its end: nothing left to cancel.
    complete: bool,
    /// The armed timer and when it fires (ms since the epoch).
    timer: Option<(u64, std::pin::Pin<Box<Delay>>)>,
}

impl Drop for FetchBody {
    fn drop(&mut self) {
        self.stream = None;
        if let Some(c) = self.controller.take().filter(|_| !self.complete) {
            c.abort();
        }
    }
}

impl Transport for FetchTransport {
    type Body = FetchBody;

    async fn send(
        &self,
        req: HttpRequest,
        timeout_ms: u64,
    ) -> Result<ResponseHead<FetchBody>, TransportError> {
        let headers = Headers::new();
        for (k, v) in &req.headers {
            headers
                .set(k, v)
                .map_err(|e| TransportError::Connect(format!("bad header {k}: {e}")))?;
        }
        let body = js_sys::Uint8Array::from(req.body.as_slice());
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        let request = Request::new_with_init(&req.url, &init)
            .map_err(|e| TransportError::Connect(e.to_string()))?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let fetch = Fetch::Request(request);
        let sent = pin!(fetch.send_with_signal(&signal));
        let timer = pin!(Delay::from(Duration::from_millis(timeout_ms)));
        match select(sent, timer).await {
            Either::Left((Ok(resp), _)) => {
                let status = resp.status_code();
                let headers = resp
                    .headers()
                    .entries()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect();
                let body = FetchBody {
                    resp: Some(resp),
                    stream: None,
                    controller: Some(controller),
                    complete: false,
                    timer: None,
                };
                Ok(ResponseHead {
                    status,
                    headers,
                    body,
                })
            }
            Either::Left((Err(e), _)) => Err(TransportError::Connect(e.to_string())),
            Either::Right(_) => {
                controller.abort();
                Err(TransportError::Timeout)
            }
        }
    }
}

impl ResponseBody for FetchBody {
    async fn next_chunk(&mut self, timeout_ms: u64) -> Result<Option<Vec<u8>>, TransportError> {
        if let Some(mut resp) = self.resp.take() {
            self.stream = resp.stream().ok();
        }
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        let deadline = WorkerClock.now_ms() + timeout_ms;
        loop {
            let now = WorkerClock.now_ms();
            if now >= deadline {
                return Err(TransportError::Timeout);
            }
            // A timer firing after our deadline cannot serve: arm one for this read.
            if self
                .timer
                .as_ref()
                .is_none_or(|(fires_at, _)| *fires_at > deadline)
            {
                let timer = Box::pin(Delay::from(Duration::from_millis(deadline - now)));
                self.timer = Some((deadline, timer));
            }
            let Some((_, timer)) = self.timer.as_mut() else {
                return Err(TransportError::Timeout);
            };
            let next = pin!(stream.next());
            match select(next, timer.as_mut()).await {
                Either::Left((Some(Ok(bytes)), _)) => return Ok(Some(bytes)),
                Either::Left((Some(Err(e)), _)) => {
                    return Err(TransportError::Reset(e.to_string()))
                }
                Either::Left((None, _)) => {
                    self.complete = true;
                    self.timer = None;
                    return Ok(None);
                }
                // Fired: either our deadline passed, or it was an earlier, shorter one.
                Either::Right(_) => self.timer = None,
            }
        }
    }

    /// One `arrayBuffer()` call instead of a reader loop: far fewer JS round trips for
    /// non-streaming answers and error bodies.
    async fn read_whole(
        &mut self,
        limit: usize,
        timeout_ms: u64,
    ) -> Option<Result<Option<Vec<u8>>, TransportError>> {
        let mut resp = self.resp.take()?;
        let declared = resp
            .headers()
            .get("content-length")
            .ok()
            .flatten()
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Some(Ok(None));
        }
        let read = pin!(resp.bytes());
        let timer = pin!(Delay::from(Duration::from_millis(timeout_ms)));
        Some(match select(read, timer).await {
            Either::Left((Ok(bytes), _)) => {
                self.complete = true;
                Ok((bytes.len() <= limit).then_some(bytes))
            }
            Either::Left((Err(e), _)) => Err(TransportError::Reset(e.to_string())),
            Either::Right(_) => Err(TransportError::Timeout),
        })
    }
}
