//! The committed stream's fast path: `pump.js` reads the upstream body and writes the client's
//! pipe; Rust's stream machine (`CommittedStream::step` / `feed`) is called synchronously for
//! every read and decides what to send, the next read's timeout and when to stop.
//!
//! Invariant: JS calls `feed` only while `run` awaits the JS loop, and Rust borrows the stream
//! only while it does not (the engine's async steps between two runs), so the two never
//! overlap. Everything the engine must decide
//! after a stop (end, in-band error, resume) runs in Rust's async code, outside this module.

use super::settle::settle;
use super::transport::FetchBody;
use crate::engine::{AttemptBody, CommittedStream, Piece, Step};
use js_sys::{Float64Array, Uint8Array};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/worker/pump.js")]
extern "C" {
    /// A native `IdentityTransformStream`.
    #[wasm_bindgen(js_name = newPipe, catch)]
    pub fn new_pipe() -> Result<web_sys::TransformStream, JsValue>;
    #[wasm_bindgen(js_name = pump)]
    fn pump_js(
        reader: &JsValue,
        writer: &web_sys::WritableStreamDefaultWriter,
        feed: &Closure<dyn FnMut(JsValue, u32, f64) -> JsValue>,
        ctl: &Float64Array,
    ) -> js_sys::Promise;
}

/// What JS tells `feed` about a read (`pump.js` uses the same numbers; 0 is no read).
const DATA: u32 = 1;
const END: u32 = 2;
const TIMEOUT: u32 = 3;
const BROKEN: u32 = 4;

/// How long, and how much, `drain_upstream` reads after the answer before giving up (the
/// body is then aborted as before).
const DRAIN_MS: u64 = 1_000;
const DRAIN_BYTES: usize = 64 << 10;

/// How the JS loop settled.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    /// The stream machine said stop: the engine decides what comes next.
    Stopped,
    /// The client went away.
    Disconnected,
}

type Stream = Box<CommittedStream<FetchBody>>;
type Shared = Rc<RefCell<Stream>>;

/// One per streamed response: the `feed` callback and its control array are made once.
pub struct Pump {
    shared: Shared,
    ctl: Float64Array,
    feed: Closure<dyn FnMut(JsValue, u32, f64) -> JsValue>,
}

impl Pump {
    pub fn new(stream: Stream) -> Self {
        let shared: Shared = Rc::new(RefCell::new(stream));
        let ctl = Float64Array::new_with_length(3);
        let feed = {
            let shared = Rc::clone(&shared);
            let ctl = ctl.clone();
            Closure::new(move |chunk: JsValue, kind: u32, now: f64| {
                feed(&mut shared.borrow_mut(), &ctl, chunk, kind, now as u64)
            })
        };
        Pump { shared, ctl, feed }
    }

    /// The stream, for the engine's async steps. Only borrowed while `run` is not awaiting
    /// the JS loop (the only time JS calls `feed`).
    pub fn stream(&self) -> &RefCell<Stream> {
        &self.shared
    }

    /// After a clean end: reads what the upstream still sends after the answer (normally only
    /// the body's end), so that its connection can be reused rather than aborted.
    pub async fn drain_upstream(&self) {
        // Not borrowed by JS: the stream is over.
        #[allow(clippy::await_holding_refcell_ref)]
        let drained = async {
            if let AttemptBody::Net(body) = self.shared.borrow_mut().body_mut() {
                body.drain(DRAIN_MS, DRAIN_BYTES).await;
            }
        };
        drained.await;
    }

    /// Lets JS read the live attempt's upstream into `writer` until the stream machine stops
    /// or the client leaves. `None`: the live body is not a network body (the built-in
    /// mock), so the caller reads it the async way.
    pub async fn run(&self, writer: &web_sys::WritableStreamDefaultWriter) -> Option<Settled> {
        let reader = match self.shared.borrow_mut().body_mut() {
            AttemptBody::Net(body) => body.js_reader()?,
            AttemptBody::Mock(_) => return None,
        };
        self.ctl.set_index(1, 0.0);
        let settled = settle(&pump_js(&reader, writer, &self.feed, &self.ctl)).await;
        match settled {
            Ok(v) if v.as_f64() == Some(0.0) => Some(Settled::Stopped),
            _ => Some(Settled::Disconnected),
        }
    }
}

/// One read's result in, what to write out (`true`: the chunk read, unchanged); the next
/// read's timeout or a stop in `ctl`.
fn feed(stream: &mut Stream, ctl: &Float64Array, chunk: JsValue, kind: u32, now: u64) -> JsValue {
    // The read's bytes, kept to see whether they go out unchanged.
    let mut read = Vec::new();
    match kind {
        DATA => {
            read = Uint8Array::unchecked_from_js(chunk).to_vec();
            stream.feed(Piece::Data(&read), now);
        }
        END => {
            if let AttemptBody::Net(body) = stream.body_mut() {
                body.mark_complete();
            }
            stream.feed(Piece::End, now);
        }
        TIMEOUT => stream.feed(Piece::Timeout, now),
        BROKEN => {
            let message = chunk.as_string().unwrap_or_default();
            stream.feed(Piece::Broken(&message), now);
        }
        // NONE: no read yet, only a step.
        _ => {}
    }
    let mut out: Option<Vec<u8>> = None;
    loop {
        match stream.step(now) {
            Step::Bytes(b) => match out.as_mut() {
                Some(o) => o.extend_from_slice(&b),
                None => out = Some(b),
            },
            Step::Read {
                timeout_ms,
                until_ms,
            } => {
                ctl.set_index(0, timeout_ms as f64);
                ctl.set_index(2, until_ms as f64);
                break;
            }
            Step::Stop => {
                ctl.set_index(1, 1.0);
                break;
            }
        }
    }
    match out {
        // What was read goes out as it came (the common case of a same-format stream):
        // `pump.js` writes its own chunk, and nothing is copied out of wasm memory.
        Some(bytes) if kind == DATA && bytes == read => JsValue::TRUE,
        Some(bytes) => Uint8Array::from(bytes.as_slice()).into(),
        None => JsValue::UNDEFINED,
    }
}
