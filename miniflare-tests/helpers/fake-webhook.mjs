// A fake alert receiver (the operator's webhook) on 127.0.0.1:<free port>. It records every
// POST (time, path, JSON body) and answers each by a script of modes, one per request in order
// (the last repeats): 200, any other status (e.g. 500), or "hang" (never answers; reset() and
// close() end it).
//
//   const hook = await startWebhook();
//   hook.url            // http://127.0.0.1:PORT/hook/<random token>: bind it as the secret
//   hook.script([500, 200]); hook.received(); hook.waitFor((alerts) => ..., ms)

import { randomBytes } from "node:crypto";
import { createFakeServer } from "./fake-server.mjs";

export async function startWebhook() {
  let modes = [200];
  let received = [];
  const open = new Set();
  const srv = createFakeServer("fake-webhook", async (req, res, raw) => {
    let body = null;
    try {
      body = JSON.parse(raw);
    } catch {}
    const mode = modes[Math.min(received.length, modes.length - 1)];
    received.push({ at: Date.now(), path: req.url, method: req.method, body, mode });
    if (mode === "hang") {
      open.add(res);
      res.on("close", () => open.delete(res));
      return;
    }
    res.writeHead(mode, { "content-type": "text/plain" });
    res.end(mode === 200 ? "ok" : "receiver failed");
  });
  const { origin } = await srv.listen("127.0.0.1");
  const token = randomBytes(12).toString("hex");
  return {
    url: `${origin}/hook/${token}`,
    token,
    /** Modes for the next requests in order (the last repeats). */
    script(list) {
      modes = list;
      received = [];
    },
    /** Every POST so far: {at, path, method, body, mode}. */
    received: () => received,
    /** Polls until `done(received)` holds (returns it) or `ms` passes (returns the last). */
    async waitFor(done, ms = 5000) {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if (done(received)) return received;
        await new Promise((r) => setTimeout(r, 50));
      }
      return received;
    },
    reset() {
      modes = [200];
      received = [];
      for (const r of open) r.destroy();
      open.clear();
      srv.clearTimers();
    },
    close: () => srv.close(),
  };
}
