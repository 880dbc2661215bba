//! `fetch`-based transport and clock. Timeouts race the fetch (or the next body read) against
//! a timer and abort the request when the timer wins, so a silent upstream never holds a
//! connection past its deadline. Dropping a body aborts its fetch as well.

use super::pump::{body_reader, read_at_most, read_once};
use crate::engine::ports::READ_HEADERS;
use crate::engine::{Clock, ResponseBody, ResponseHead, Transport, TransportError};
use crate::providers::HttpRequest;
use futures_util::future::{select, Either};
use std::pin::pin;
use std::time::Duration;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::Delay;

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

/// A response body: read whole (`arrayBuffer`, or `readAtMost` when its size is not known
/// beforehand) or as a stream, whichever is asked first.
///
/// Read from Rust, each read races a fresh timer; that is only done before the commit point
/// (a few reads). A committed stream is read by `pump.js` from the same reader.
pub struct FetchBody {
    resp: Option<web_sys::Response>,
    /// The body's `ReadableStreamDefaultReader` once reading started (undefined: no body).
    reader: Option<JsValue>,
    controller: Option<web_sys::AbortController>,
    /// Read to its end: nothing left to cancel.
    complete: bool,
}

impl Drop for FetchBody {
    fn drop(&mut self) {
        self.reader = None;
        if let Some(c) = self.controller.take().filter(|_| !self.complete) {
            c.abort();
        }
    }
}

fn js_error(e: JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

impl Transport for FetchTransport {
    type Body = FetchBody;

    /// Calls the runtime's `fetch` directly (not through `worker::Fetch`), so the body stays a
    /// `web_sys::Response` whose `arrayBuffer()` is read natively.
    async fn send(
        &self,
        req: HttpRequest,
        timeout_ms: u64,
    ) -> Result<ResponseHead<FetchBody>, TransportError> {
        let headers = web_sys::Headers::new().map_err(|e| TransportError::Connect(js_error(e)))?;
        for (k, v) in &req.headers {
            headers
                .set(k, v)
                .map_err(|e| TransportError::Connect(format!("bad header {k}: {}", js_error(e))))?;
        }
        let controller =
            web_sys::AbortController::new().map_err(|e| TransportError::Connect(js_error(e)))?;
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_headers(&headers);
        init.set_body(&js_sys::Uint8Array::from(req.body.as_slice()));
        init.set_signal(Some(&controller.signal()));
        // Never follow a redirect: it would carry the prompt and the key to another host.
        init.set_redirect(web_sys::RequestRedirect::Manual);
        let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        let sent = pin!(JsFuture::from(
            global.fetch_with_str_and_init(&req.url, &init)
        ));
        let timer = pin!(Delay::from(Duration::from_millis(timeout_ms)));
        match select(sent, timer).await {
            Either::Left((Ok(value), _)) => {
                let resp: web_sys::Response = value
                    .dyn_into()
                    .map_err(|e| TransportError::Connect(js_error(e)))?;
                // Only the headers the engine reads: one lookup each, not every header.
                let headers = resp.headers();
                let head = READ_HEADERS
                    .iter()
                    .filter_map(|name| {
                        let value = headers.get(name).ok().flatten()?;
                        Some((name.to_string(), value))
                    })
                    .collect();
                let status = resp.status();
                let body = FetchBody {
                    resp: Some(resp),
                    reader: None,
                    controller: Some(controller),
                    complete: false,
                };
                Ok(ResponseHead {
                    status,
                    headers: head,
                    body,
                })
            }
            Either::Left((Err(e), _)) => Err(TransportError::Connect(js_error(e))),
            Either::Right(_) => {
                controller.abort();
                Err(TransportError::Timeout)
            }
        }
    }
}

impl FetchBody {
    /// The body's reader (made on first use); None when the response has no body.
    pub fn js_reader(&mut self) -> Option<JsValue> {
        if let Some(resp) = self.resp.take() {
            self.reader = Some(body_reader(&resp));
        }
        self.reader.clone().filter(|r| !r.is_undefined())
    }

    /// Reads to the body's end, for at most `timeout_ms` per read and `max_bytes` in all; a
    /// body read to its end is not aborted when dropped, so its connection can be reused.
    pub async fn drain(&mut self, timeout_ms: u64, max_bytes: usize) {
        let mut seen = 0;
        while !self.complete && seen <= max_bytes {
            match self.next_chunk(timeout_ms).await {
                Ok(Some(bytes)) => seen += bytes.len(),
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// Read to its end by someone else (`pump.js`): nothing left to abort.
    pub fn mark_complete(&mut self) {
        self.complete = true;
    }
}

impl ResponseBody for FetchBody {
    async fn next_chunk(&mut self, timeout_ms: u64) -> Result<Option<Vec<u8>>, TransportError> {
        let Some(reader) = self.js_reader() else {
            return Ok(None);
        };
        let next = pin!(JsFuture::from(read_once(&reader)));
        let timer = pin!(Delay::from(Duration::from_millis(timeout_ms)));
        match select(next, timer).await {
            Either::Left((Ok(chunk), _)) if chunk.is_undefined() => {
                self.complete = true;
                Ok(None)
            }
            Either::Left((Ok(chunk), _)) => Ok(Some(js_sys::Uint8Array::new(&chunk).to_vec())),
            Either::Left((Err(e), _)) => Err(TransportError::Reset(js_error(e))),
            Either::Right(_) => Err(TransportError::Timeout),
        }
    }

    /// The whole body, never more than `limit` bytes read. A body whose `content-length` is
    /// within the limit (and not compressed, which would make it longer once decoded) takes one
    /// native `arrayBuffer()` read: far fewer JS round trips for most answers and error
    /// bodies. Any other body (chunked, or compressed) is read by `readAtMost`, which stops and
    /// cancels it past the limit, so an endless or bomb-sized body costs at most `limit`.
    async fn read_whole(
        &mut self,
        limit: usize,
        timeout_ms: u64,
    ) -> Option<Result<Option<Vec<u8>>, TransportError>> {
        let headers = self.resp.as_ref()?.headers();
        let header = |name: &str| headers.get(name).ok().flatten();
        let declared = header("content-length").and_then(|v| v.trim().parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Some(Ok(None));
        }
        let encoded = header("content-encoding")
            .is_some_and(|e| !e.trim().is_empty() && !e.trim().eq_ignore_ascii_case("identity"));
        let read = if declared.is_some() && !encoded {
            let resp = self.resp.take()?;
            match resp.array_buffer() {
                Ok(p) => p,
                Err(e) => return Some(Err(TransportError::Reset(js_error(e)))),
            }
        } else {
            match self.js_reader() {
                Some(reader) => read_at_most(&reader, limit as f64),
                None => {
                    self.complete = true;
                    return Some(Ok(Some(Vec::new())));
                }
            }
        };
        let read = pin!(JsFuture::from(read));
        let timer = pin!(Delay::from(Duration::from_millis(timeout_ms)));
        Some(match select(read, timer).await {
            // `readAtMost` stopped past the limit (and cancelled the body).
            Either::Left((Ok(buf), _)) if buf.is_undefined() => Ok(None),
            Either::Left((Ok(buf), _)) => {
                self.complete = true;
                // An ArrayBuffer (`arrayBuffer()`) or a Uint8Array (`readAtMost`), viewed
                // without a copy on the JS side.
                let bytes = buf
                    .dyn_into::<js_sys::Uint8Array>()
                    .unwrap_or_else(|buf| js_sys::Uint8Array::new(&buf));
                Ok((bytes.length() as usize <= limit).then(|| bytes.to_vec()))
            }
            Either::Left((Err(e), _)) => Err(TransportError::Reset(js_error(e))),
            Either::Right(_) => Err(TransportError::Timeout),
        })
    }
}
