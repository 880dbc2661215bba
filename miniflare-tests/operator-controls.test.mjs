// Operators' controls and what the gateway shows (issue 18, items 7, 12 and 13): the kill switch
// holds for a deployment whose breaker is disabled in the table; an upstream's `model` with
// CR/LF or non-Latin-1 characters never breaks (or injects into) the response headers; in
// `AUTH_MODE = "keys"` the model list, the 404's list of paths and `/healthz`'s table details
// need a gateway key.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startFake } from "./helpers/fake-openai.mjs";
import {
  startWorker,
  scenarioTable,
  chatOnce,
  chatStream,
  sseContent,
  errorShape,
  reasons,
  USER_MSG,
} from "./helpers/worker.mjs";
import { useGateway } from "./helpers/harness.mjs";

const ADMIN = "admin-token-operator-controls";
let fake, w;

useGateway({ fakes: { fake: startFake }, worker: { bindings: { ADMIN_TOKEN: ADMIN } } }, (g) => ({ fake, w } = g));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function admin(worker, method, p, body) {
  const res = await fetch(worker.url + p.replace(/^\//, ""), {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body ? { "content-type": "application/json" } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

async function until(fn, what, ms = 5000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await fn();
    if (v) return v;
    await sleep(25);
  }
  assert.fail(`timed out waiting for ${what}`);
}

/**
 * The JSON log line of one request (by x-router-request-id). workerd's stdout arrives in chunks
 * that the harness prefixes with "[out] ", so a long line is glued back together first.
 */
async function logOf(worker, requestId) {
  for (let i = 0; i < 100; i++) {
    const out = worker.logs.filter((c) => c.startsWith("[out] ")).map((c) => c.slice(6)).join("");
    const line = out.split("\n").find((l) => l.includes(`"request_id":"${requestId}"`));
    if (line) return JSON.parse(line.slice(line.indexOf("{")));
    await sleep(20);
  }
  throw new Error(`no log line for ${requestId}`);
}

// ---------------------------------------------------------------------------------------------
// Item 7: the kill switch of a deployment whose breaker is disabled

test("kill switch: a deployment with `breaker: {enabled: false}` in the table is skipped while forced open; reset brings it back", async () => {
  const retry = { max_attempts: 1 };
  // The harness turns breakers off in every test table anyway; say it for this deployment too.
  const t = await scenarioTable(w, fake, {
    deployments: { killed: { retry, breaker: { enabled: false } }, backup: { retry } },
    routes: { kill: { chain: ["killed", "backup"] } },
  });
  assert.equal(t.table.deployments.killed.breaker.enabled, false);
  t.script("killed", [{ ok: "from killed" }]);
  t.script("backup", [{ ok: "from backup" }]);
  const body = { model: "kill", messages: USER_MSG };
  const servedBy = async () => (await chatOnce(w, body)).res.headers.get("x-router-deployment");

  assert.equal(await servedBy(), "killed");
  const forced = await admin(w, "POST", "/admin/api/deployments/killed/force-open");
  assert.equal(forced.status, 200, JSON.stringify(forced.json));
  assert.equal(forced.json.view.state, "forced_open");
  // The isolate learns it from its snapshot (refreshed within 2 s), as for enabled breakers.
  await until(async () => (await servedBy()) === "backup", "traffic moved off the killed deployment");
  const hits = t.hits("killed");
  for (let i = 0; i < 5; i++) {
    const r = await chatOnce(w, body);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.choices[0].message.content, "from backup");
    assert.deepEqual(reasons(r.res), ["killed:skipped_breaker_forced_open"]);
  }
  assert.equal(t.hits("killed"), hits, "nothing is sent through the kill switch");

  assert.equal((await admin(w, "POST", "/admin/api/deployments/killed/reset")).status, 200);
  await until(async () => (await servedBy()) === "killed", "traffic back after reset");
});

// ---------------------------------------------------------------------------------------------
// Item 12: upstream values in response headers

test("an upstream `model` with CR/LF, non-Latin-1 characters or 5,000 bytes: 200 with the answer, a sane x-router-model, no injected header, a log line", async () => {
  const t = await scenarioTable(w, fake, {
    deployments: { odd: {} },
    routes: { odd: { chain: ["odd"] } },
  });
  const models = ["evil\r\nx-injected: 1", "modèle-日本", "m".repeat(5000)];
  for (const model of models) {
    for (const stream of [false, true]) {
      const what = `${JSON.stringify(model.slice(0, 30))} ${stream ? "stream" : "json"}`;
      t.script("odd", [{ ok: "Hello from odd", model }]);
      const body = { model: "odd", messages: USER_MSG };
      const r = stream ? await chatStream(w, body) : await chatOnce(w, body);
      assert.equal(r.status, 200, `${what}: ${r.text.slice(0, 300)}`);
      const content = stream ? sseContent(r.events) : r.json.choices[0].message.content;
      assert.equal(content, "Hello from odd", what);
      if (stream) assert.ok(r.text.includes("data: [DONE]"), `${what}: a finished stream`);

      const h = r.res.headers.get("x-router-model");
      assert.ok(h, `${what}: x-router-model present`);
      assert.match(h, /^[\x20-\x7e]+$/, `${what}: printable ASCII only`);
      assert.ok(Buffer.byteLength(h) <= 200, `${what}: capped (${h.length} bytes)`);
      assert.equal(r.res.headers.get("x-injected"), null, `${what}: no injected header`);
      if (model.length < 100) assert.equal(decodeURIComponent(h), model, `${what}: percent-escaped, decodable`);
      else assert.ok(model.startsWith(decodeURIComponent(h)), `${what}: a prefix of the model`);
      assert.equal(r.res.headers.get("x-router-deployment"), "odd");

      // The request was finished and logged (for a stream, after its end), with the real name.
      const log = await logOf(w, r.res.headers.get("x-router-request-id"));
      assert.equal(log.status, 200, what);
      assert.equal(log.model, model, `${what}: the log line keeps the model as the upstream named it`);
      assert.equal(log.deployment, "odd");
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Item 13: what a caller without a key sees in keys mode

test("keys mode: /v1/models needs a key (401), the 404 lists no paths and /healthz says only its status without one", async () => {
  const wk = await startWorker({ bindings: { AUTH_MODE: "keys", ADMIN_TOKEN: ADMIN } });
  try {
    await scenarioTable(wk, fake, {
      deployments: { hidden: {} },
      routes: { "internal-route-name": { chain: ["hidden"] } },
    });
    const created = await admin(wk, "POST", "/admin/api/keys", { name: "operator-controls" });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const auth = { authorization: `Bearer ${created.json.key}` };
    const get = async (p, headers = {}) => {
      const res = await wk.fetch(p, { headers });
      const text = await res.text();
      return { status: res.status, text, json: JSON.parse(text) };
    };

    // /v1/models: 401 without a key or with a wrong one, the list with a key.
    for (const headers of [{}, { authorization: "Bearer sk-wrong-key-000" }, { "x-api-key": "sk-wrong-key-000" }]) {
      const r = await get("/v1/models", headers);
      assert.equal(r.status, 401, `${JSON.stringify(headers)}: ${r.text}`);
      assert.equal(errorShape(r.json).code, "invalid_api_key");
      assert.ok(!r.text.includes("internal-route-name"), r.text);
    }
    const listed = await get("/v1/models", auth);
    assert.equal(listed.status, 200, listed.text);
    assert.deepEqual(listed.json.data.map((m) => m.id), ["internal-route-name"]);

    // Unknown path: a 404 either way; only an authenticated caller is told the paths.
    const anon404 = await get("/v2/secret-probe");
    assert.equal(anon404.status, 404, anon404.text);
    assert.equal(errorShape(anon404.json).code, "not_found");
    for (const p of ["/v1/chat/completions", "/v1/messages", "/v1/models", "/healthz", "internal-route-name"]) {
      assert.ok(!anon404.text.includes(p), `unauthenticated 404 mentions ${p}: ${anon404.text}`);
    }
    const keyed404 = await get("/v2/secret-probe", auth);
    assert.equal(keyed404.status, 404);
    assert.ok(keyed404.json.error.message.includes("/v1/chat/completions"), keyed404.text);

    // /healthz: the status only without a key; the whole body with one.
    const anon = await get("/healthz");
    assert.equal(anon.status, 200);
    assert.deepEqual(anon.json, { status: "ok" });
    const keyed = await get("/healthz", auth);
    assert.equal(keyed.json.status, "ok");
    assert.equal(keyed.json.config.source, "kv");
    assert.equal(keyed.json.config.routes, 1);

    // A bad table in KV: a caller without a key learns "degraded", not the parse error.
    await wk.putRaw('{"version": 1, "routes": {"leaky-route": ');
    const anonBad = await get("/healthz");
    assert.deepEqual(anonBad.json, { status: "degraded" });
    const keyedBad = await get("/healthz", auth);
    assert.equal(keyedBad.json.status, "degraded");
    assert.equal(keyedBad.json.config.source, "last-good");
    assert.ok(keyedBad.json.config.error, keyedBad.text);
  } finally {
    await wk.dispose();
  }
});
