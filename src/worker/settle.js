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
