// Operators' controls and what the gateway shows (issue 18, items 7 and 12): the kill switch
// holds for a deployment whose breaker is disabled in the table; an upstream's `model` with
// CR/LF or non-Latin-1 characters never breaks (or injects into) the response headers.

import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startFake } from "./helpers/fake-openai.mjs";
import {
  startWorker,
  scenarioTable,
  chatOnce,
  chatStream,
  sseContent,
  reasons,
  USER_MSG,
} from "./helpers/worker.mjs";

const ADMIN = "admin-token-operator-controls";
let fake, w;

before(async () => {
  fake = await startFake();
  w = await startWorker({ bindings: { ADMIN_TOKEN: ADMIN } });
});
after(async () => {
  await w?.dispose();
  await fake?.close();
});
beforeEach(() => fake.reset());

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

