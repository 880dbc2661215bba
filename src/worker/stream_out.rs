//! Sends a committed stream to the client from a task of its own, registered with
//! `waitUntil`, through a native `IdentityTransformStream`, instead of letting the runtime
//! pull it. While the live attempt reads the network, `pump.js` moves the bytes (see
//! `pump`); the engine's async code runs only for what it must decide.
//!
//! Invariant: every streamed request is finished exactly once (usage, reservation settle,
//! breaker reports, log line), however it ends. Why this shape: a body pulled by the runtime
//! is simply abandoned when the client disconnects (workerd neither cancels the Rust stream
//! nor polls it again), so nothing after the last pull ever ran. A pushing task learns of the
//! disconnect from the writer (a failed write, or `closed` settling while it waits for the
//! upstream), drops the upstream fetch (which aborts it) and finishes the request.

use super::finish::Finish;
use super::ports::Ports;
use super::pump::{new_pipe, Pump, Settled};
use super::respond::raw_stream_response;
use super::transport::FetchBody;
use crate::cache::entry::pivot_of_stream;
use crate::cache::Decision;
use crate::engine::CommittedStream;
use futures_util::future::{select, Either};
use std::rc::Rc;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use web_sys::WritableStreamDefaultWriter;
use worker::Result;

fn js(e: JsValue) -> worker::Error {
    worker::Error::JsError(format!("{e:?}"))
}

/// The streaming response; the task that fills it runs until the stream ends. A clean answer
/// is then stored in the response cache when `cache` says so.
pub fn respond(
    stream: Box<CommittedStream<FetchBody>>,
    ports: Ports,
    finish: Finish,
    headers: &[(&str, String)],
    cache: Option<Decision>,
) -> Result<web_sys::Response> {
    let pipe = new_pipe().map_err(js)?;
    let writer = pipe.writable().get_writer().map_err(js)?;
    let ctx = Rc::clone(&finish.ctx);
    ctx.spawn(Box::pin(pump(stream, ports, finish, writer, cache)));
    raw_stream_response(200, &pipe.readable(), headers)
}

async fn pump(
    stream: Box<CommittedStream<FetchBody>>,
    ports: Ports,
    mut finish: Finish,
    writer: WritableStreamDefaultWriter,
    cache: Option<Decision>,
) {
    let pump = Pump::new(stream);
    let disconnected = {
        // The engine again, for resuming the stream on another attempt if it breaks.
        let engine = ports.engine(&finish.health);
        // Settles (rejects) when the client goes away; it never settles otherwise before
        // this task closes the writer.
        let mut closed = JsFuture::from(writer.closed());
        loop {
            // The fast path: JS reads the live attempt and calls the stream machine per read,
            // until it stops (end, failure: decided below) or the client leaves.
            if pump.run(&writer).await == Some(Settled::Disconnected) {
                break true;
            }
            let next = {
                // Not borrowed by JS: `run` has returned (see `pump`).
                #[allow(clippy::await_holding_refcell_ref)]
                let pull = Box::pin(async { pump.stream().borrow_mut().next(&engine).await });
                match select(pull, &mut closed).await {
                    Either::Left((next, _)) => next,
                    Either::Right(_) => break true,
                }
            };
            match next {
                Some(bytes) => {
                    let chunk = js_sys::Uint8Array::from(bytes.as_slice());
                    if JsFuture::from(writer.write_with_chunk(&chunk))
                        .await
                        .is_err()
                    {
                        break true;
                    }
                }
                None => {
                    let _ = JsFuture::from(writer.close()).await;
                    break false;
                }
            }
        }
    };
    let (mut meta, pivot) = {
        let mut stream = pump.stream().borrow_mut();
        if disconnected {
            stream.abandon();
        }
        let meta = stream.meta().clone();
        // Only a caching route's clean answer is rebuilt for the cache.
        let pivot = match (&cache, meta.usage) {
            (Some(Decision::Use { .. }), Some(usage)) if !disconnected => {
                pivot_of_stream(stream.delivered(), &usage)
            }
            _ => None,
        };
        (meta, pivot)
    };
    if disconnected {
        meta.error =
            Some("client_disconnected: the client closed the stream before it ended".into());
        meta.status = 499;
    }
    let clean_end = meta.error.is_none();
    finish.done(&mut meta);
    if let Some(pivot) = pivot {
        super::cache::store(&finish.ctx, cache.as_ref(), &meta, &pivot, false);
    }
    // The client has its answer and the request is booked; reading the upstream's last bytes
    // lets its connection be reused. Dropping the stream aborts the fetch if it is still open.
    if clean_end {
        pump.drain_upstream().await;
    }
    drop(pump);
}
