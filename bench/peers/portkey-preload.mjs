// Preloaded into the Portkey gateway (node --import ./portkey-preload.mjs). Two shims, both
// outside Portkey's own code:
//
// 1. Its server calls listen(port) with no host, i.e. on every interface. Pin it to 127.0.0.1.
//
// 2. Streaming: Portkey 1.15.2 wraps the upstream's fetch Response with `new Response(stream,
//    upstreamResponse)` and then appends its x-portkey-* headers. On node, @hono/node-server
//    replaces the global Response with a class that keeps the init's Headers object as is, and
//    a fetch Response's headers are immutable, so every streamed request fails with HTTP 500
//    "immutable" (TypeError in ru.updateHeaders). Giving Portkey fetch Responses whose headers
//    are a mutable copy (undici's own Response, captured before hono swaps the global) makes
//    streaming work; it costs one extra Response object per upstream call.
import net from "node:net";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number" && typeof args[1] !== "string") {
    args.splice(1, args[1] === undefined ? 1 : 0, "127.0.0.1");
  } else if (args[0] && typeof args[0] === "object" && !args[0].path) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  }
  return listen.apply(this, args);
};

const UndiciResponse = globalThis.Response;
const fetch0 = globalThis.fetch;
globalThis.fetch = async function (...args) {
  const r = await fetch0.apply(this, args);
  return new UndiciResponse(r.body, { status: r.status, statusText: r.statusText, headers: r.headers });
};
