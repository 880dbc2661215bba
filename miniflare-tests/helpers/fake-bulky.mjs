// An upstream that sends too much, for memory-bounds.test.mjs: a real node:http server on
// 127.0.0.1 that answers OpenAI-compatible chat completions according to the mode in its URL,
//   base URL = http://127.0.0.1:PORT/b/<mode>/<tag>/v1   (tag names the deployment)
// Modes:
//   ok             a small non-streaming completion ("ok from <tag>"); the request body is not kept
//   json-endless   200 application/json without content-length (chunked), that never ends
//   error-endless  500 text/plain without content-length (chunked), that never ends
//   gzip-bomb      200 application/json, `content-encoding: gzip` with a content-length of about
//                  64 KB that decodes to 64 MiB
//   data-lines     200 text/event-stream: a role chunk, then `data:` lines of 1 KiB without end,
//                  never the blank line that would end the event
// "Without end" means until the gateway hangs up or CAP_BYTES were written; the writes respect
// back-pressure, so `written` (bytes the fake handed to its socket) exceeds what the gateway
// read by at most the loopback socket buffers (a few MiB). Each request is recorded as
// {mode, tag, written, hungUp, ended}: hungUp = the gateway closed the connection before the
// end; ended = the fake is done with the request (the other fields are final).

import { createFakeServer } from "./fake-server.mjs";
import { gzipSync } from "node:zlib";

export const CAP_BYTES = 256 << 20;
const PIECE = Buffer.alloc(64 << 10, "x");
const DATA_LINE = Buffer.from(`data: ${"x".repeat(1018)}\n`); // 1 KiB with its newline

let bomb;
function gzipBomb() {
  // A JSON object whose one string holds 64 MiB: valid JSON once decoded, far over 32 MiB.
  bomb ??= gzipSync(Buffer.concat([Buffer.from('{"pad":"'), Buffer.alloc(64 << 20, "x"), Buffer.from('"}')]));
  return bomb;
}

/** Writes `piece` again and again (after `head`) until `cap` bytes or the peer hangs up. */
async function flood(res, head, piece, cap) {
  let written = 0;
  let hungUp = false;
  const closed = new Promise((resolve) => res.once("close", resolve)).then(() => (hungUp = !res.writableFinished));
  res.write(head);
  written += head.length;
  while (written < cap && !hungUp && !res.destroyed) {
    written += piece.length;
    if (!res.write(piece)) await Promise.race([new Promise((r) => res.once("drain", r)), closed]);
  }
  if (!hungUp && !res.destroyed) res.end();
  await closed;
  return { written, hungUp };
}

export async function startBulky({ host = "127.0.0.1" } = {}) {
  const seen = [];
  const srv = createFakeServer("fake-bulky", async (req, res) => {
    const m = /^\/b\/([^/]+)\/([^/]+)\//.exec(req.url);
    const mode = m ? decodeURIComponent(m[1]) : "";
    const tag = m ? decodeURIComponent(m[2]) : "";
    const entry = { mode, tag, written: 0, hungUp: false, ended: false };
    seen.push(entry);
    const done = (r) => Object.assign(entry, r, { ended: true });
    if (mode === "ok") {
      const body = JSON.stringify({
        id: `chatcmpl-${tag}`,
        object: "chat.completion",
        created: 0,
        model: `up-${tag}`,
        choices: [{ index: 0, message: { role: "assistant", content: `ok from ${tag}` }, finish_reason: "stop" }],
        usage: { prompt_tokens: 1, completion_tokens: 3, total_tokens: 4 },
      });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
      return done({ written: body.length });
    }
    if (mode === "json-endless") {
      res.writeHead(200, { "content-type": "application/json" });
      const head = Buffer.from('{"id":"chatcmpl-endless","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"');
      return done(await flood(res, head, PIECE, CAP_BYTES));
    }
    if (mode === "error-endless") {
      res.writeHead(500, { "content-type": "text/plain" });
      return done(await flood(res, Buffer.from("upstream error: "), PIECE, CAP_BYTES));
    }
    if (mode === "gzip-bomb") {
      const body = gzipBomb();
      res.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip", "content-length": body.length });
      res.end(body);
      return done({ written: body.length });
    }
    if (mode === "data-lines") {
      res.writeHead(200, { "content-type": "text/event-stream" });
      const role = { id: "chatcmpl-lines", object: "chat.completion.chunk", created: 0, model: "up-lines", choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }] };
      return done(await flood(res, Buffer.from(`data: ${JSON.stringify(role)}\n\n`), DATA_LINE, CAP_BYTES));
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end(`fake-bulky: unknown mode ${mode}`);
  });
  const { origin } = await srv.listen(host);
  return {
    origin,
    baseUrl: (mode, tag = mode) => `${origin}/b/${encodeURIComponent(mode)}/${encodeURIComponent(tag)}/v1`,
    /** Requests recorded so far (filled in as each answer ends). */
    seen: () => seen,
    reset() {
      seen.length = 0;
    },
    async close() {
      await srv.close();
    },
  };
}
