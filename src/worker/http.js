import { headersOf, readAtMost } from "./upstream.js";

// Request and response plumbing of the hot path, in JS: one wasm→JS call each, where the
// worker crate's wrappers make one call per header (and read `request.cf`, which workerd
// builds on demand).

/** Every header as "name\nvalue\n…" (names lower-case, as `Headers` iterates them). HTTP
 *  header values cannot hold a line feed, so the text splits back unambiguously. */
export function headerText(headers) {
  let s = "";
  for (const [k, v] of headers) s += k + "\n" + v + "\n";
  return s;
}

/** A response with a byte body. `bytes` is a view of wasm memory: copied before use. */
export function respondBytes(status, bytes, headerText) {
  return new Response(bytes.slice(), { status, headers: headersOf(headerText) });
}

/** A response whose body is `readable` (the committed stream's pipe). */
export function respondStream(status, readable, headerText) {
  return new Response(readable, { status, headers: headersOf(headerText) });
}

/** The request body, at most `limit` bytes: a Uint8Array, or null when it is longer. A
 *  declared length is checked before anything is read; a chunked body is counted as it
 *  arrives and cancelled once past the limit. */
export async function readBody(request, limit) {
  const declared = request.headers.get("content-length");
  if (declared !== null && /^\d+$/.test(declared.trim())) {
    if (Number(declared) > limit) return null;
    return new Uint8Array(await request.arrayBuffer());
  }
  if (request.body === null) return new Uint8Array(0);
  return (await readAtMost(request.body.getReader(), limit)) ?? null;
}
