// Routing table from KV: /healthz, hot reload, and bad tables (the last good one keeps serving).

import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startFake } from "./helpers/fake-openai.mjs";
import { startWorker, scenarioTable, chatOnce, FAKE_SECRET, USER_MSG } from "./helpers/worker.mjs";
import { useGateway } from "./helpers/harness.mjs";

let fake, w, good;

useGateway({ fakes: { fake: startFake }, reset: false }, (g) => ({ fake, w } = g));
beforeEach(() => fake.script(good?.scenario("primary") ?? "unused", [{ ok: "still served" }]));

async function healthz() {
  const res = await w.fetch("/healthz");
  const json = await res.json();
  return { res, json };
}

async function modelIds() {
  const res = await w.fetch("/v1/models");
  assert.equal(res.status, 200);
  return (await res.json()).data.map((m) => m.id).sort();
}

async function stillServesGoodTable() {
  const r = await chatOnce(w, { model: "good-route", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, "still served");
  assert.deepEqual(await modelIds(), ["good-route"]);
}

test("healthz with a good table in KV: ok, source kv, no error", async () => {
  good = await scenarioTable(w, fake, {
    deployments: { primary: {} },
    routes: { "good-route": { chain: ["primary"] } },
  });
  fake.script(good.scenario("primary"), [{ ok: "still served" }]);
  const { res, json } = await healthz();
  assert.equal(res.status, 200);
  assert.equal(json.status, "ok");
  assert.equal(json.config.source, "kv");
  assert.equal(json.config.error, null);
  const before = good.hits("primary");
  await stillServesGoodTable();
  assert.equal(good.hits("primary"), before + 1);
});

test("invalid JSON in KV -> degraded, last good table keeps serving", async () => {
  await w.putRaw("{ this is : not json");
  const { json } = await healthz();
  assert.equal(json.status, "degraded");
  assert.equal(json.config.source, "last-good");
  assert.equal(typeof json.config.error, "string");
  assert.ok(json.config.error.length > 0);
  const before = good.hits("primary");
  await stillServesGoodTable();
  assert.equal(good.hits("primary"), before + 1);
});

test("schema error (chain names an unknown deployment) -> degraded with the path routes.x.chain[0]", async () => {
  const bad = structuredClone(good.table);
  bad.routes.x = { chain: ["no-such-deployment"] };
  await w.putTable(bad);
  const { json } = await healthz();
  assert.equal(json.status, "degraded");
  assert.equal(json.config.source, "last-good");
  assert.ok(json.config.error.includes("routes.x.chain[0]"), `error names the path: ${json.config.error}`);
  await stillServesGoodTable();
  const r = await chatOnce(w, { model: "x", messages: USER_MSG });
  assert.equal(r.status, 404, "routes of the rejected table are not served");
});

test("unknown field -> rejected, degraded, error names the field", async () => {
  const bad = structuredClone(good.table);
  bad.deployments.primary.surprise_field = true;
  await w.putTable(bad);
  const { json } = await healthz();
  assert.equal(json.status, "degraded");
  assert.ok(/surprise_field/.test(json.config.error), json.config.error);
  await stillServesGoodTable();
  assert.ok(json.config.error.includes("deployments.primary"), `error names the path: ${json.config.error}`);
});

test("schema error: provider kind unknown -> degraded, path names the provider", async () => {
  const bad = structuredClone(good.table);
  bad.providers["p-primary"].kind = "carrier-pigeon";
  await w.putTable(bad);
  const { json } = await healthz();
  assert.equal(json.status, "degraded");
  assert.ok(json.config.error.includes("providers.p-primary"), json.config.error);
  await stillServesGoodTable();
});

test("schema error: deployment names an unknown provider -> degraded", async () => {
  const bad = structuredClone(good.table);
  bad.deployments.primary.provider = "nobody";
  await w.putTable(bad);
  const { json } = await healthz();
  assert.equal(json.status, "degraded");
  assert.ok(json.config.error.includes("deployments.primary"), json.config.error);
  await stillServesGoodTable();
});

test("a good table again -> ok, new routes visible on the next request", async () => {
  const t = await scenarioTable(w, fake, {
    deployments: { fresh: {} },
    routes: { "new-route": { chain: ["fresh"] }, "new-route-2": { chain: ["fresh"] } },
  });
  t.script("fresh", [{ ok: "fresh table" }]);
  const { json } = await healthz();
  assert.equal(json.status, "ok");
  assert.equal(json.config.source, "kv");
  assert.equal(json.config.error, null);
  assert.deepEqual(await modelIds(), ["new-route", "new-route-2"]);
  const r = await chatOnce(w, { model: "new-route", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, "fresh table");
  assert.equal(t.hits("fresh"), 1);
  const old = await chatOnce(w, { model: "good-route", messages: USER_MSG });
  assert.equal(old.status, 404);
});

test("the table key deleted from KV -> the last good table keeps serving, degraded (not the mock default)", async () => {
  const t = await scenarioTable(w, fake, {
    deployments: { prod: {} },
    routes: { "prod-route": { chain: ["prod"] } },
  });
  t.script("prod", [{ ok: "production answer" }, { ok: "production answer" }]);
  assert.equal((await healthz()).json.status, "ok");
  await w.deleteTable();
  const { json } = await healthz();
  assert.equal(json.status, "degraded");
  assert.equal(json.config.source, "last-good");
  assert.match(json.config.error, /holds no routing table/);
  assert.deepEqual(await modelIds(), ["prod-route"]);
  const r = await chatOnce(w, { model: "prod-route", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, "production answer");
});

test("a fresh isolate with no table key but a last-good copy in KV serves last-good, degraded", async () => {
  const t = await scenarioTable(w, fake, {
    deployments: { kept: {} },
    routes: { "kept-route": { chain: ["kept"] } },
  });
  t.script("kept", [{ ok: "kept answer" }]);
  // The worker writes routing-table:last-good in the background when it adopts a table.
  await healthz();
  const kv = await w.mf.getKVNamespace("ROUTER_CONFIG");
  for (let i = 0; i < 50 && !(await kv.get("routing-table:last-good"))?.includes("kept-route"); i++) {
    await new Promise((res) => setTimeout(res, 50));
  }
  await w.deleteTable();
  const dir = mkdtempSync(path.join(os.tmpdir(), "edge-router-kv-"));
  const w2 = await startWorker({ persistDir: dir });
  try {
    const kv2 = await w2.mf.getKVNamespace("ROUTER_CONFIG");
    await kv2.put("routing-table:last-good", await kv.get("routing-table:last-good"));
    const json = await (await w2.fetch("/healthz")).json();
    assert.equal(json.status, "degraded");
    assert.equal(json.config.source, "last-good");
    const r = await chatOnce(w2, { model: "kept-route", messages: USER_MSG });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.choices[0].message.content, "kept answer");
    // A fresh namespace, neither key: the embedded default, said plainly.
    const w3 = await startWorker();
    try {
      const fresh = await (await w3.fetch("/healthz")).json();
      assert.equal(fresh.status, "ok");
      assert.equal(fresh.config.source, "embedded-default");
    } finally {
      await w3.dispose();
    }
  } finally {
    await w2.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("healthz and errors never show the secret", async () => {
  const seen = await w.allSeen();
  for (const e of seen) {
    assert.ok(!JSON.stringify(e.headers).includes(FAKE_SECRET), `secret in headers of ${e.url}`);
    assert.ok(!e.body.includes(FAKE_SECRET), `secret in body of ${e.url}`);
  }
});
