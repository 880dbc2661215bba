// The upstream side of an attempt, in JS: each function is one call from Rust and one
// promise, with its own timer, where Rust would make a call per header, a promise per step
// and a `Delay` (a Rust closure and a timer) per wait.
//
// Invariant: a timer set here is always cleared or has fired by the time the promise
// settles, and a timeout aborts the request (`controller`), so a silent upstream never holds
// a connection past its deadline.

/** What a helper resolves to when its deadline passed first (a value no read can return). */
export const TIMEOUT = "timeout";

/** Headers from "name\nvalue\n…" (see `respond::header_lines`), as the plain record that
 *  `fetch` and `Response` take: names lower-cased, a later value replacing an earlier one, as
 *  `Headers.set` would (cheaper than a `Headers` object and a call per header). */
export function headersOf(text) {
  const headers = Object.create(null);
  const parts = text.split("\n");
  for (let i = 0; i + 1 < parts.length; i += 2) headers[parts[i].toLowerCase()] = parts[i + 1];
  return headers;
}

/** Settles as `work` does, or resolves TIMEOUT (and aborts) after `ms`. */
function within(work, ms, controller) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      controller.abort();
      resolve(TIMEOUT);
    }, ms);
    work.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/**
 * POSTs `body` (a view of wasm memory, copied here) to `url`; never follows a redirect (it
 * would carry the prompt and the key to another host). Resolves to the Response, or TIMEOUT
 * when no response head arrived within `timeoutMs`; rejects when the connection fails.
 * Throws synchronously on an invalid header.
 */
export function send(url, headerText, body, timeoutMs, controller) {
  const init = {
    method: "POST",
    headers: headersOf(headerText),
    body: body.slice(),
    signal: controller.signal,
    redirect: "manual",
  };
  return within(fetch(url, init), timeoutMs, controller);
}

/**
 * The whole body, never more than `limit` bytes read, within `timeoutMs`: a Uint8Array;
 * undefined as soon as it is known to be longer than `limit` (a longer body is cancelled,
 * not read); TIMEOUT. A body whose content-length is within the limit and that is not
 * content-encoded (decoding could make it longer) takes one native arrayBuffer() read; any
 * other is read in a loop that counts what arrived.
 */
export function readWhole(response, limit, timeoutMs, controller) {
  const declaredText = response.headers.get("content-length");
  const declared = declaredText !== null && /^\s*\d+\s*$/.test(declaredText) ? Number(declaredText) : null;
  if (declared !== null && declared > limit) return Promise.resolve(undefined);
  const encoding = (response.headers.get("content-encoding") ?? "").trim().toLowerCase();
  const encoded = encoding !== "" && encoding !== "identity";
  if (response.body === null) return Promise.resolve(new Uint8Array(0));
  const work =
    declared !== null && !encoded
      ? response.arrayBuffer().then((b) => new Uint8Array(b))
      : readAtMost(response.body.getReader(), limit);
  return within(work, timeoutMs, controller);
}

/** A body's bytes read to its end, or undefined (and the body cancelled) as soon as more
 *  than `limit` bytes arrived. */
export async function readAtMost(reader, limit) {
  const parts = [];
  let total = 0;
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    total += r.value.byteLength;
    if (total > limit) {
      parts.length = 0;
      reader.cancel().catch(() => {});
      return undefined;
    }
    parts.push(r.value);
  }
  if (parts.length === 1) return parts[0];
  const all = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.byteLength;
  }
  return all;
}

/**
 * One read of a body's reader within `timeoutMs`: the chunk (Uint8Array), undefined at the
 * end, or TIMEOUT (the request is then aborted); rejects when the connection broke.
 */
export function readWithin(reader, timeoutMs, controller) {
  return within(
    reader.read().then((r) => (r.done ? undefined : r.value)),
    timeoutMs,
    controller,
  );
}

/**
 * `send`, then (but for a redirect, which is never read) `readWhole` of the body with the
 * limit for its status, until `deadline` (ms since the epoch): both in one promise. Resolves
 * to TIMEOUT (no head in time), or to [response, whole] where `whole` is what `readWhole`
 * gave, an Error (the read broke), or null (not read).
 */
export async function sendReading(url, headerText, body, timeoutMs, controller, answerLimit, errorLimit, deadline) {
  const response = await send(url, headerText, body, timeoutMs, controller);
  if (response === TIMEOUT) return TIMEOUT;
  const status = response.status;
  if (status >= 300 && status < 400) return [response, null];
  const limit = status >= 200 && status < 300 ? answerLimit : errorLimit;
  let whole;
  try {
    whole = await readWhole(response, limit, Math.max(0, deadline - Date.now()), controller);
  } catch (e) {
    whole = e instanceof Error ? e : new Error(String(e));
  }
  return [response, whole];
}

/** A response's status and the headers named in `names` ("a\nb") that it has, as
 *  "status\nname\nvalue\n…": the head the engine reads, in one call. */
export function headOf(response, names) {
  let s = String(response.status) + "\n";
  const headers = response.headers;
  for (const name of names.split("\n")) {
    const v = headers.get(name);
    if (v !== null) s += name + "\n" + v + "\n";
  }
  return s;
}

/** The upstream body's reader, or undefined when it has no body. */
export function bodyReader(response) {
  const body = response.body;
  return body ? body.getReader() : undefined;
}
