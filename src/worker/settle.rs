//! Awaiting a JS promise from Rust for less than `JsFuture`: `JsFuture` makes two Rust
//! closures per await (each a JS function registered for finalization, then unregistered),
//! which the hot path pays on every upstream send and read. Here one callback, made once per
//! isolate, receives every outcome with the number of its slot (`settle.js`).
//!
//! Invariant: a slot is reused only after its promise settled and its outcome was taken or
//! its future was dropped, so a late outcome never reaches another await; a future dropped
//! before its promise settles leaves its slot abandoned until the outcome arrives, then free.
//! A promise that never settled would keep its slot (a few bytes) for the isolate's life;
//! every promise awaited here settles: an upstream step carries its own timeout and is
//! aborted when its future is dropped (`transport`), the pump ends with its stream, and the
//! request body's read ends when the body does or the client goes.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/worker/settle.js")]
extern "C" {
    #[wasm_bindgen(js_name = settle)]
    fn settle_js(promise: &js_sys::Promise, id: u32, done: &JsValue);
}

enum Slot {
    Free,
    Waiting(Option<Waker>),
    Settled(Result<JsValue, JsValue>),
    /// Its future was dropped; the outcome, when it comes, is let go.
    Abandoned,
}

#[derive(Default)]
struct Slots {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

impl Slots {
    fn open(&mut self) -> u32 {
        while let Some(id) = self.free.pop() {
            if let Some(slot) = self.slots.get_mut(id as usize) {
                *slot = Slot::Waiting(None);
                return id;
            }
        }
        self.slots.push(Slot::Waiting(None));
        (self.slots.len() - 1) as u32
    }

    fn release(&mut self, id: u32) {
        if let Some(s) = self.slots.get_mut(id as usize) {
            *s = Slot::Free;
            self.free.push(id);
        }
    }
}

thread_local! {
    static SLOTS: RefCell<Slots> = RefCell::new(Slots::default());
    static DONE: Closure<dyn FnMut(u32, bool, JsValue)> =
        Closure::new(|id: u32, ok: bool, value: JsValue| settled(id, if ok { Ok(value) } else { Err(value) }));
}

fn settled(id: u32, outcome: Result<JsValue, JsValue>) {
    let waker = SLOTS.with(|s| {
        let mut s = s.borrow_mut();
        let slot = s.slots.get_mut(id as usize)?;
        match slot {
            Slot::Waiting(waker) => {
                let waker = waker.take();
                *slot = Slot::Settled(outcome);
                waker
            }
            // Its future was dropped: nobody waits for it.
            Slot::Abandoned => {
                s.release(id);
                None
            }
            // Never: a promise settles once, and only a waiting slot has one.
            Slot::Free | Slot::Settled(_) => None,
        }
    });
    // Woken outside the borrow: the waker may poll at once.
    if let Some(w) = waker {
        w.wake();
    }
}

/// The promise's outcome, as `JsFuture` gives it.
pub struct Settled {
    id: u32,
    done: bool,
}

/// Awaits `promise`.
pub fn settle(promise: &js_sys::Promise) -> Settled {
    let id = SLOTS.with(|s| s.borrow_mut().open());
    DONE.with(|done| settle_js(promise, id, done.as_ref()));
    Settled { id, done: false }
}

impl Future for Settled {
    type Output = Result<JsValue, JsValue>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.done {
            // Polled again after it was ready (futures are not): its slot may be reused.
            return Poll::Pending;
        }
        let id = self.id;
        let outcome = SLOTS.with(|s| {
            let mut s = s.borrow_mut();
            let slot = s.slots.get_mut(id as usize)?;
            match std::mem::replace(slot, Slot::Free) {
                Slot::Settled(outcome) => {
                    s.free.push(id);
                    Some(outcome)
                }
                _ => {
                    *slot = Slot::Waiting(Some(cx.waker().clone()));
                    None
                }
            }
        });
        match outcome {
            Some(o) => {
                self.done = true;
                Poll::Ready(o)
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for Settled {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let id = self.id;
        SLOTS.with(|s| {
            let mut s = s.borrow_mut();
            let Some(slot) = s.slots.get_mut(id as usize) else {
                return;
            };
            match slot {
                // Settled but never polled after: the slot is free now.
                Slot::Settled(_) => s.release(id),
                _ => *slot = Slot::Abandoned,
            }
        });
    }
}
