// The committed stream's read loop, in JS: it reads the upstream body, hands every read to
// the Rust stream machine (`feed`, synchronous) and writes what it returns into the client's
// native IdentityTransformStream. Rust decides everything (what to send, the next read's
// timeout, when to stop); this loop only does I/O, so a chunk costs one wasm call and no
// Rust future, closure, timer or promise.
//
// Invariant: `pump` settles exactly once, after its last call to `feed`, and never leaves a
// timer behind. One timer serves the whole loop: it is re-armed from a deadline that each
// read moves forward, never re-created per read. It only counts while a read is pending: the
// time a write waits for a slow client is never an upstream stall.

// What `feed` is told about a read (same numbers as `worker::pump::Kind`).
const NONE = 0; // no read: only step (the loop's first call)
const DATA = 1;
const END = 2;
const TIMEOUT = 3;
const BROKEN = 4;

// How `pump` settles (same numbers as `worker::pump::Settled`).
const STOPPED = 0; // Rust has a decision to make: call the engine
const DISCONNECTED = 1; // the client went away

/** A byte pipe implemented natively by workerd (no JS transform per chunk). */
export function newPipe() {
  return new IdentityTransformStream();
}

/**
 * @param reader ReadableStreamDefaultReader of the upstream body
 * @param writer WritableStreamDefaultWriter of the client's pipe
 * @param feed (chunk: Uint8Array|string|undefined, kind: number, now: number) =>
 *   Uint8Array|undefined|true (true: write the chunk just read, unchanged)
 * @param ctl Float64Array(3): [0] the next read's timeout in ms, [1] 1 once Rust says stop,
 *   [2] the latest the read may end (the attempt's deadline, ms since the epoch)
 */
export async function pump(reader, writer, feed, ctl) {
  let disconnected = false;
  let timedOut = false;
  let timer = null;
  let timerAt = 0;
  let deadline = 0;
  let reading = false;
  const stopReading = () => {
    reader.cancel().catch(() => {});
  };
  const setTimer = (now) => {
    timerAt = deadline;
    timer = setTimeout(onTimer, deadline - now);
  };
  const onTimer = () => {
    timer = null;
    if (!reading) return;
    const now = Date.now();
    if (deadline > now) return setTimer(now);
    timedOut = true;
    stopReading();
  };
  // The timer is only re-created when the new deadline is earlier than the one it waits for.
  const arm = (now) => {
    deadline = Math.min(now + ctl[0], ctl[2]);
    reading = true;
    if (timer !== null && deadline < timerAt) {
      clearTimeout(timer);
      timer = null;
    }
    if (timer === null) setTimer(now);
  };
  const gone = () => {
    disconnected = true;
    stopReading();
  };
  writer.closed.catch(gone);
  try {
    let now = Date.now();
    let out = feed(undefined, NONE, now);
    for (;;) {
      if (out !== undefined) {
        try {
          await writer.write(out);
        } catch {
          gone();
        }
        // The read's timeout counts from now, after the client took the bytes.
        now = Date.now();
      }
      if (disconnected) return DISCONNECTED;
      if (ctl[1] !== 0) return STOPPED;
      arm(now);
      let read;
      try {
        read = await reader.read();
      } catch (e) {
        reading = false;
        if (disconnected) return DISCONNECTED;
        now = Date.now();
        out = timedOut ? feed(undefined, TIMEOUT, now) : feed(String(e?.message ?? e), BROKEN, now);
        continue;
      }
      reading = false;
      if (disconnected) return DISCONNECTED;
      now = Date.now();
      if (timedOut) out = feed(undefined, TIMEOUT, now);
      else if (read.done) out = feed(undefined, END, now);
      else {
        out = feed(read.value, DATA, now);
        // Rust forwards the chunk unchanged: it is written as read (no copy out of wasm).
        if (out === true) out = read.value;
      }
    }
  } finally {
    if (timer !== null) clearTimeout(timer);
  }
}
