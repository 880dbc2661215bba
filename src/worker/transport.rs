//! `fetch`-based transport and clock. Each step of an attempt (send, read the whole body, one
//! read) is one call into `upstream.js` and one promise, which carries its own timer: when the
//! timer wins, the request is aborted, so a silent upstream never holds a connection past its
//! deadline. Dropping a body, or a send still in flight (a hedge's loser), aborts its fetch.

use super::respond::header_lines;
use super::settle::settle;
use crate::engine::ports::READ_HEADERS;
use crate::engine::{Clock, ReadAhead, ResponseBody, ResponseHead, Transport, TransportError};
use crate::providers::HttpRequest;
use std::time::Duration;
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};
use worker::Delay;

#[wasm_bindgen(module = "/src/worker/upstream.js")]
extern "C" {
    #[wasm_bindgen(js_name = send, catch)]
    fn send_js(
        url: &str,
        headers: &str,
        body: &[u8],
        timeout_ms: f64,
        controller: &web_sys::AbortController,
    ) -> Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(js_name = sendReading)]
    #[allow(clippy::too_many_arguments)]
    fn send_reading_js(
        url: &str,
        headers: &str,
        body: &[u8],
        timeout_ms: f64,
        controller: &web_sys::AbortController,
        answer_limit: f64,
        error_limit: f64,
        deadline_ms: f64,
    ) -> js_sys::Promise;
    #[wasm_bindgen(js_name = readWhole)]
    fn read_whole_js(
        response: &web_sys::Response,
        limit: f64,
        timeout_ms: f64,
        controller: &web_sys::AbortController,
    ) -> js_sys::Promise;
    #[wasm_bindgen(js_name = readWithin)]
    fn read_within_js(
        reader: &JsValue,
        timeout_ms: f64,
        controller: &web_sys::AbortController,
    ) -> js_sys::Promise;
    #[wasm_bindgen(js_name = headOf)]
    fn head_of(response: &web_sys::Response, names: &str) -> String;
    #[wasm_bindgen(js_name = bodyReader)]
    fn body_reader(response: &web_sys::Response) -> JsValue;
}

/// What `upstream.js` resolves to when the deadline passed first.
const TIMEOUT: &str = "timeout";

fn timed_out(v: &JsValue) -> bool {
    v.as_string().is_some_and(|s| s == TIMEOUT)
}

/// Aborts its request when dropped, unless disarmed (the response arrived, and its body now
/// owns the controller).
struct AbortOnDrop(Option<web_sys::AbortController>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.abort();
        }
    }
}

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

/// A response body: read whole (`readWhole`) or as a stream, whichever is asked first.
///
/// Read from Rust (`readWithin`) only before the commit point (a few reads); a committed
/// stream is read by `pump.js` from the same reader.
pub struct FetchBody {
    resp: Option<web_sys::Response>,
    /// The body's `ReadableStreamDefaultReader` once reading started (undefined: no body).
    reader: Option<JsValue>,
    controller: Option<web_sys::AbortController>,
    /// Read to its end: nothing left to cancel.
    complete: bool,
    /// What `sendReading` read of the whole body, for `read_whole` (see `whole_from_js`).
    ahead: Option<JsValue>,
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
    /// `web_sys::Response` that `upstream.js` reads natively.
    async fn send(
        &self,
        req: HttpRequest,
        timeout_ms: u64,
    ) -> Result<ResponseHead<FetchBody>, TransportError> {
        let headers = header_lines(&req.headers).map_err(TransportError::Connect)?;
        let controller = new_controller()?;
        let sent = send_js(
            &req.url,
            &headers,
            &req.body,
            timeout_ms as f64,
            &controller,
        )
        .map_err(|e| TransportError::Connect(format!("bad request: {}", js_error(e))))?;
        let guard = AbortOnDrop(Some(controller));
        let value = settle(&sent).await;
        head(value, guard, None)
    }

    /// The head and the whole body in one promise (`sendReading`): a non-streaming attempt
    /// makes one wait instead of two.
    async fn send_reading(
        &self,
        req: HttpRequest,
        timeout_ms: u64,
        ahead: ReadAhead,
    ) -> Result<ResponseHead<FetchBody>, TransportError> {
        let headers = header_lines(&req.headers).map_err(TransportError::Connect)?;
        let controller = new_controller()?;
        let sent = send_reading_js(
            &req.url,
            &headers,
            &req.body,
            timeout_ms as f64,
            &controller,
            ahead.answer_limit as f64,
            ahead.error_limit as f64,
            ahead.deadline_ms as f64,
        );
        let guard = AbortOnDrop(Some(controller));
        let value = match settle(&sent).await {
            Ok(v) if !timed_out(&v) => {
                let pair: js_sys::Array = v.unchecked_into();
                return head(Ok(pair.get(0)), guard, Some(pair.get(1)));
            }
            other => other,
        };
        head(value, guard, None)
    }
}

fn new_controller() -> Result<web_sys::AbortController, TransportError> {
    web_sys::AbortController::new().map_err(|e| TransportError::Connect(js_error(e)))
}

/// The response head from what `send` resolved to; `ahead` is what `sendReading` read of
/// the body (None: nothing read ahead).
fn head(
    value: Result<JsValue, JsValue>,
    mut guard: AbortOnDrop,
    ahead: Option<JsValue>,
) -> Result<ResponseHead<FetchBody>, TransportError> {
    let value = value.map_err(|e| TransportError::Connect(js_error(e)))?;
    if timed_out(&value) {
        // `upstream.js` aborted it already.
        guard.0 = None;
        return Err(TransportError::Timeout);
    }
    // `upstream.js` resolves to nothing else than TIMEOUT or the Response.
    let resp: web_sys::Response = value.unchecked_into();
    // The status and only the headers the engine reads, in one call.
    let text = head_of(&resp, &READ_HEADERS.join("\n"));
    let mut lines = text.split('\n');
    let status = lines.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut head = Vec::new();
    while let (Some(k), Some(v)) = (lines.next(), lines.next()) {
        head.push((k.to_string(), v.to_string()));
    }
    // `null`: the body was not read ahead (a redirect).
    let ahead = ahead.filter(|v| !v.is_null());
    let body = FetchBody {
        resp: Some(resp),
        reader: None,
        controller: guard.0.take(),
        complete: false,
        ahead,
    };
    Ok(ResponseHead {
        status,
        headers: head,
        body,
    })
}

/// What `readWhole` resolved to (or the Error a broken read gave), as `read_whole` answers.
fn whole_from_js(
    value: Result<JsValue, JsValue>,
    limit: usize,
) -> Result<Option<Vec<u8>>, TransportError> {
    match value {
        // Longer than its limit (and cancelled, if it was being read).
        Ok(buf) if buf.is_undefined() => Ok(None),
        Ok(buf) if timed_out(&buf) => Err(TransportError::Timeout),
        Ok(buf) if buf.is_instance_of::<js_sys::Error>() => {
            Err(TransportError::Reset(js_error(buf)))
        }
        Ok(buf) => {
            // A Uint8Array (`readWhole` returns nothing else here): viewed, not copied.
            let bytes = buf.unchecked_into::<js_sys::Uint8Array>();
            Ok((bytes.length() as usize <= limit).then(|| bytes.to_vec()))
        }
        Err(e) => Err(TransportError::Reset(js_error(e))),
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

    fn controller(&mut self) -> Result<web_sys::AbortController, TransportError> {
        if let Some(c) = &self.controller {
            return Ok(c.clone());
        }
        // Read after its end was seen: a fresh controller aborts nothing that matters.
        web_sys::AbortController::new().map_err(|e| TransportError::Reset(js_error(e)))
    }
}

impl ResponseBody for FetchBody {
    async fn next_chunk(&mut self, timeout_ms: u64) -> Result<Option<Vec<u8>>, TransportError> {
        let Some(reader) = self.js_reader() else {
            return Ok(None);
        };
        let controller = self.controller()?;
        let read = read_within_js(&reader, timeout_ms as f64, &controller);
        match settle(&read).await {
            Ok(chunk) if chunk.is_undefined() => {
                self.complete = true;
                Ok(None)
            }
            Ok(chunk) if timed_out(&chunk) => Err(TransportError::Timeout),
            // A Uint8Array (`upstream.js` returns nothing else here).
            Ok(chunk) => Ok(Some(chunk.unchecked_into::<js_sys::Uint8Array>().to_vec())),
            Err(e) => Err(TransportError::Reset(js_error(e))),
        }
    }

    /// The whole body, never more than `limit` bytes read (`readWhole` in `upstream.js`: one
    /// native `arrayBuffer()` when the declared length is within the limit and the body is
    /// not content-encoded, else a loop that counts and cancels past the limit), so an
    /// endless or bomb-sized body costs at most `limit`.
    async fn read_whole(
        &mut self,
        limit: usize,
        timeout_ms: u64,
    ) -> Option<Result<Option<Vec<u8>>, TransportError>> {
        let resp = self.resp.take()?;
        if let Some(ahead) = self.ahead.take() {
            let whole = whole_from_js(Ok(ahead), limit);
            if matches!(whole, Ok(Some(_))) {
                self.complete = true;
            }
            return Some(whole);
        }
        let controller = match self.controller() {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        let read = read_whole_js(&resp, limit as f64, timeout_ms as f64, &controller);
        let whole = whole_from_js(settle(&read).await, limit);
        if matches!(whole, Ok(Some(_))) {
            self.complete = true;
        }
        Some(whole)
    }
}
