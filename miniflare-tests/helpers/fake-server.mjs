// The HTTP plumbing every fake provider shares: a node:http server on 127.0.0.1:<free port>
// that reads each request body and hands it to the fake's `handle(req, res, rawBody)`, tracks
// sockets and timers so that reset()/close() end everything a fake left hanging, and never
// lets a fake's own exception go unanswered (599 with the stack, unless headers were sent).

import http from "node:http";

/**
 * @param {string} name  used in the 599 error body
 * @param {(req, res, rawBody: string) => Promise<void>} handle
 */
export function createFakeServer(name, handle) {
  const sockets = new Set();
  const timers = new Set();
  let closed = false;

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("error", () => {});
    req.on("end", () => {
      handle(req, res, Buffer.concat(chunks).toString("utf8")).catch((err) => {
        // The client went away or the fake was closed mid-answer: nothing to do.
        if (!closed && !res.headersSent) {
          try {
            res.writeHead(599, { "content-type": "text/plain" });
            res.end(`${name} internal error: ${err?.stack ?? err}`);
          } catch {}
        }
      });
    });
  });
  server.keepAliveTimeout = 1000;
  server.on("connection", (sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
  });
  server.on("clientError", (_err, sock) => sock.destroy());

  return {
    /** True once close() was called. */
    get closed() {
      return closed;
    },
    /** Connections currently open. */
    openSockets: () => sockets.size,
    /** A delay that close() and clearTimers() cancel (it then never resolves). */
    sleep: (ms) =>
      new Promise((resolve) => {
        if (!ms || ms <= 0) return resolve();
        const t = setTimeout(() => {
          timers.delete(t);
          resolve();
        }, ms);
        timers.add(t);
      }),
    clearTimers() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
    /** Listens on a free port; returns {port, origin}. */
    async listen(host) {
      await new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, host, resolve);
      });
      const port = server.address().port;
      return { port, origin: `http://${host}:${port}` };
    },
    async close() {
      closed = true;
      this.clearTimers();
      for (const s of sockets) s.destroy();
      sockets.clear();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * What the scripted fakes (OpenAI, Anthropic, Gemini) share: per scenario, a list of steps
 * (step i answers request i, the last repeats) and the requests received; the responses still
 * open, so that reset() can end what an earlier test left hanging.
 *
 * A fake's handler calls `track(res)` for every request and `record(scenario, entry)` for each
 * scripted one (it keeps `entry`, returns `{index, step}`); the fake returns `{...api, ...its own}`.
 * @param {object} srv  the fake's createFakeServer()
 */
export function createScriptRegistry(srv) {
  const scripts = new Map(); // scenario -> steps[]
  const received = new Map(); // scenario -> [entry]
  const pendingResponses = new Set();

  function stepFor(scenario, index) {
    const s = scripts.get(scenario);
    if (!s || s.length === 0) return { ok: `default answer from ${scenario}` };
    return s[Math.min(index, s.length - 1)];
  }

  return {
    /** Tracks `res` until it closes (reset() destroys it if it is still open). */
    track(res) {
      pendingResponses.add(res);
      res.on("close", () => pendingResponses.delete(res));
    },
    /** Records a request of `scenario`; returns its index and the step that answers it. */
    record(scenario, entry) {
      const list = received.get(scenario) ?? [];
      received.set(scenario, list);
      const index = list.length;
      list.push(entry);
      return { index, step: stepFor(scenario, index) };
    },
    /** Forgets the scripts and recorded requests; destroys the responses left open. */
    reset() {
      scripts.clear();
      received.clear();
      srv.clearTimers();
      for (const r of pendingResponses) r.destroy();
      pendingResponses.clear();
    },
    /** The methods every scripted fake offers. */
    api: {
      script(scenario, stepList) {
        if (!Array.isArray(stepList) || stepList.length === 0) throw new Error("script needs a non-empty array of steps");
        scripts.set(scenario, stepList);
        received.set(scenario, []);
      },
      hits: (scenario) => (received.get(scenario) ?? []).length,
      requests: (scenario) => received.get(scenario) ?? [],
    },
  };
}
