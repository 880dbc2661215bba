// Operators' controls and what the gateway shows (issue 18, item 7): the kill switch holds for a
// deployment whose breaker is disabled in the table.

import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startFake } from "./helpers/fake-openai.mjs";
import {
  startWorker,
  scenarioTable,
  chatOnce,
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

