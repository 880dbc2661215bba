// Awaiting a promise from Rust without a Rust closure per await (see `settle.rs`): the
// promise's outcome is handed to one callback that lives as long as the isolate, with the
// number of the Rust future waiting for it.

/** Calls `done(id, true, value)` or `done(id, false, error)` once `promise` settles. */
export function settle(promise, id, done) {
  promise.then(
    (v) => done(id, true, v),
    (e) => done(id, false, e),
  );
}

// js-sys wakes Rust's tasks with the global `queueMicrotask`, once per wake. In workerd that
// is a C++ API, and each call wraps its callback for C++; a resolved promise's `then` queues
// the same microtask, in the same queue and order, without leaving V8. (A callback that
// throws then surfaces as an unhandled rejection instead of an uncaught error; js-sys's
// callback does not throw.)
const resolved = Promise.resolve();
globalThis.queueMicrotask = (callback) => {
  resolved.then(callback);
};
