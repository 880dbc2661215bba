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
pub struct FetchBody {
    resp: Option<worker::Response>,
    stream: Option<ByteStream>,
    controller: Option<AbortController>,
    /// Read to its end: nothing left to cancel.
    complete: bool,
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
        let next = pin!(stream.next());
        let timer = pin!(Delay::from(Duration::from_millis(timeout_ms)));
        match select(next, timer).await {
            Either::Left((Some(Ok(bytes)), _)) => Ok(Some(bytes)),
            Either::Left((Some(Err(e)), _)) => Err(TransportError::Reset(e.to_string())),
            Either::Left((None, _)) => {
                self.complete = true;
                Ok(None)
            }
            Either::Right(_) => Err(TransportError::Timeout),
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
