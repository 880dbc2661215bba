// Browsers and WebViews (CORS, issue 16 part 5): opt-in by origin in the routing table
// (`cors.allow_origins`). A listed origin's preflight is answered without a key and its
// answers expose the x-router-* headers; any other origin gets no CORS header at all; with no
// `cors` in the table, nobody does.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startFake } from "./helpers/fake-openai.mjs";
import { fakeTable, USER_MSG } from "./helpers/worker.mjs";
import { useGateway } from "./helpers/harness.mjs";

const APP = "https://app.example";
let fake, w, wk;

function table(cors) {
  const t = fakeTable(fake, { deployments: { d: { scenario: "cors-d" } }, routes: { gw: { chain: ["d"] } } });
  return cors ? { ...t, cors } : t;
}

const chat = (worker, origin, headers = {}) =>
  worker.fetch("/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json", ...(origin ? { origin } : {}), ...headers },
    body: JSON.stringify({ model: "gw", messages: USER_MSG }),
  });

const preflight = (worker, origin) =>
  worker.fetch("/v1/chat/completions", {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
  });

useGateway({ fakes: { fake: startFake }, workers: { w: {}, wk: { bindings: { AUTH_MODE: "keys" } } }, reset: false }, (g) => {
  ({ fake, w, wk } = g);
  fake.script("cors-d", [{ ok: "hello browser" }]);
});

test("a listed origin: the preflight allows it, and the answer exposes the router's headers", async () => {
  await w.putTable(table({ allow_origins: [APP] }));
  const pre = await preflight(w, APP);
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), APP);
  assert.match(pre.headers.get("access-control-allow-methods") ?? "", /POST/);
  assert.equal(pre.headers.get("access-control-allow-headers"), "authorization, content-type");
  assert.ok(Number(pre.headers.get("access-control-max-age")) > 0);

  const res = await chat(w, APP);
  assert.equal(res.status, 200);
  assert.equal((await res.json()).choices[0].message.content, "hello browser");
  assert.equal(res.headers.get("access-control-allow-origin"), APP);
  assert.match(res.headers.get("vary") ?? "", /Origin/);
  const exposed = res.headers.get("access-control-expose-headers") ?? "";
  for (const h of ["x-router-request-id", "x-router-deployment", "x-router-cost-usd", "retry-after"]) {
    assert.ok(exposed.includes(h), `${h} exposed: ${exposed}`);
  }
  // Errors carry them too (a page must be able to read a 404).
  const err = await w.fetch("/v1/nope", { headers: { origin: APP } });
  assert.equal(err.status, 404);
  assert.equal(err.headers.get("access-control-allow-origin"), APP);
});

test("an origin that is not listed, or a table without cors: no CORS header at all", async () => {
  await w.putTable(table({ allow_origins: [APP] }));
  for (const res of [await preflight(w, "https://evil.example"), await chat(w, "https://evil.example")]) {
    for (const h of res.headers.keys()) assert.ok(!h.startsWith("access-control-"), `${h} sent to an unlisted origin`);
  }
  await w.putTable(table(undefined));
  for (const res of [await preflight(w, APP), await chat(w, APP)]) {
    for (const h of res.headers.keys()) assert.ok(!h.startsWith("access-control-"), `${h} sent without cors in the table`);
  }
  // Non-browser callers (no Origin) are unaffected.
  const plain = await chat(w, null);
  assert.equal(plain.status, 200);
  assert.equal(plain.headers.get("access-control-allow-origin"), null);
});

test("keys mode: the preflight needs no key; the request itself does", async () => {
  await wk.putTable(table({ allow_origins: ["*"] }));
  const pre = await preflight(wk, "http://localhost:5173");
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), "http://localhost:5173");
  const res = await chat(wk, "http://localhost:5173");
  assert.equal(res.status, 401, "no key");
  assert.equal(res.headers.get("access-control-allow-origin"), "http://localhost:5173", "so the page can read the 401");
});

test("an origin that is not an origin is a validation error naming its path", async () => {
  await w.putTable(table({ allow_origins: ["https://app.example/"] }));
  const health = await (await w.fetch("/healthz")).json();
  assert.equal(health.status, "degraded");
  assert.match(JSON.stringify(health.config.error), /cors\.allow_origins\[0\]/);
});
