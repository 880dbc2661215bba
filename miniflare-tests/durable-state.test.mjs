// Durable Object state that does not decode (#18, item 3) is never reset to defaults: budgets do
// not restart at 0, a kill switch stays on, the table's version numbers do not restart and
// overwrite the history in KV. Storage is persisted in a folder; between two runs of the real
// worker a small JS worker with the same object classes (same storage, same object ids) writes
// garbage or newer-shaped values through the objects' own storage API, like a corrupted write
// or a rolled-back deployment would leave them.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Miniflare } from "miniflare";
import { startFake } from "./helpers/fake-openai.mjs";
import { startWorker, fakeTable, chatOnce, USER_MSG, KV_BINDING } from "./helpers/worker.mjs";

const ADMIN = "admin-token-durable-9f8e7d";
let fake, dir;

before(async () => {
  fake = await startFake();
  dir = mkdtempSync(path.join(os.tmpdir(), "edge-router-state-"));
});
after(async () => {
  await fake?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// The same classes as the worker's (same names, so the same storage and ids), reading and
// writing one storage key of one object.
const WRITER = `
class Raw {
  constructor(ctx) { this.ctx = ctx; }
  async fetch(req) {
    const key = new URL(req.url).searchParams.get("key");
    if (req.method === "PUT") {
      await this.ctx.storage.put(key, JSON.parse(await req.text()));
      return new Response("ok");
    }
    return Response.json((await this.ctx.storage.get(key)) ?? null);
  }
}
export class DeploymentState extends Raw {}
export class KeyState extends Raw {}
export class TableLog extends Raw {}
export default {
  async fetch(req, env) {
    const u = new URL(req.url);
    const ns = env[u.searchParams.get("ns")];
    return ns.get(ns.idFromName(u.searchParams.get("name"))).fetch(req);
  },
};`;

/** Runs `fn(put, get)` against the persisted objects, with the real worker stopped. */
async function withRawStorage(fn) {
  const mf = new Miniflare({
    host: "127.0.0.1",
    port: 0,
    modules: true,
    script: WRITER,
    compatibilityDate: "2026-04-20",
    cf: false,
    durableObjects: {
      DEPLOYMENTS: { className: "DeploymentState", useSQLite: true },
      KEYS: { className: "KeyState", useSQLite: true },
      TABLE_LOG: { className: "TableLog", useSQLite: true },
    },
    durableObjectsPersist: path.join(dir, "do"),
  });
  try {
    const url = (await mf.ready).toString();
    const at = (ns, name, key) => `${url}?ns=${ns}&name=${encodeURIComponent(name)}&key=${encodeURIComponent(key)}`;
    const put = async (ns, name, key, value) => {
      const r = await fetch(at(ns, name, key), { method: "PUT", body: JSON.stringify(value) });
      assert.equal(r.status, 200, await r.text());
    };
    const get = async (ns, name, key) => (await fetch(at(ns, name, key))).json();
    await fn(put, get);
  } finally {
    await mf.dispose();
  }
}

async function admin(w, method, p, body, headers = {}) {
  const res = await w.fetch(`/admin/api/${p}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers },
    ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, text, json };
}

const start = () => startWorker({ persistDir: dir, bindings: { ADMIN_TOKEN: ADMIN } });

function table() {
  const t = fakeTable(fake, {
    deployments: {
      killed: { scenario: "ds-killed", breaker: { enabled: true } },
      garbled: { scenario: "ds-garbled", breaker: { enabled: true } },
      evolved: { scenario: "ds-evolved", breaker: { enabled: true } },
      backup: { scenario: "ds-backup" },
    },
    routes: {
      killed: { chain: ["killed", "backup"] },
      garbled: { chain: ["garbled", "backup"] },
      evolved: { chain: ["evolved", "backup"] },
      plain: { chain: ["backup"] },
    },
  });
  return t;
}

test("unreadable or newer-shaped object state fails closed and is never overwritten with defaults", async () => {
  fake.script("ds-backup", [{ ok: "from backup" }]);
  for (const s of ["ds-killed", "ds-garbled", "ds-evolved"]) fake.script(s, [{ ok: `from ${s}` }]);

  // ---- Run 1: real state. Two table versions, a key with spend, three kill switches.
  let w = await start();
  let limited, evolvedKey, spentBefore, v2Text;
  try {
    const t1 = table();
    let r = await admin(w, "PUT", "table", JSON.stringify(t1), { "if-match": "*" });
    assert.equal(r.status, 200, r.text);
    const t2 = { ...t1, defaults: { ...t1.defaults, request_timeout_ms: 14000 } };
    v2Text = JSON.stringify(t2);
    r = await admin(w, "PUT", "table", v2Text, { "if-match": r.json.etag });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.version, 2);

    r = await admin(w, "POST", "keys", { name: "limited", rpm: 100, budget_day_usd: "5" });
    assert.equal(r.status, 201, r.text);
    limited = r.json;
    r = await admin(w, "POST", "keys", { name: "evolved", rpm: 100, budget_day_usd: "5" });
    evolvedKey = r.json;
    for (const k of [limited, evolvedKey]) {
      const c = await chatOnce(w, { model: "plain", messages: USER_MSG }, { headers: { authorization: `Bearer ${k.key}` } });
      assert.equal(c.status, 200, c.text);
    }
    // Settles are sent in the background: wait for the spend to show.
    for (let i = 0; i < 50; i++) {
      spentBefore = (await admin(w, "GET", `keys/${evolvedKey.id}`)).json.state.spend;
      if (spentBefore?.day_nanos > 0) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.ok(spentBefore.day_nanos > 0, JSON.stringify(spentBefore));
    for (const d of ["killed", "garbled", "evolved"]) {
      r = await admin(w, "POST", `deployments/${d}/force-open`, {});
      assert.equal(r.status, 200, r.text);
    }
  } finally {
    await w.dispose();
  }

  // ---- Between runs: garbage and newer shapes, written through the objects' storage.
  await withRawStorage(async (put, get) => {
    const killed = await get("DEPLOYMENTS", "killed", "breaker");
    assert.equal(killed?.phase?.state, "forced_open", "the raw writer sees the worker's objects");
    await put("DEPLOYMENTS", "garbled", "breaker", "garbage");
    await put("DEPLOYMENTS", "evolved", "breaker", { ...killed, added_in_v9: { x: 1 }, window: { ...killed.window, extra: true } });
    await put("KEYS", limited.id, "key", { quota: "garbage", stats: 7 });
    const evolved = await get("KEYS", evolvedKey.id, "key");
    await put("KEYS", evolvedKey.id, "key", { ...evolved, tier: "gold", quota: { ...evolved.quota, new_counter: 3 } });
    await put("TABLE_LOG", "routing-table", "log", [1, 2, 3]);
  });

  // ---- Run 2: the real worker reads what is stored.
  w = await start();
  try {
    const kv = await w.mf.getKVNamespace(KV_BINDING);
    const hitsBefore = { killed: fake.hits("ds-killed"), garbled: fake.hits("ds-garbled"), evolved: fake.hits("ds-evolved") };
    for (const d of ["killed", "garbled", "evolved"]) {
      const c = await chatOnce(w, { model: d, messages: USER_MSG });
      assert.equal(c.status, 200, c.text);
      assert.equal(c.res.headers.get("x-router-deployment"), "backup", `${d}: the kill switch still holds`);
    }
    assert.deepEqual(
      { killed: fake.hits("ds-killed"), garbled: fake.hits("ds-garbled"), evolved: fake.hits("ds-evolved") },
      hitsBefore,
      "no traffic reached a killed deployment",
    );
    const deps = (await admin(w, "GET", "deployments")).json.deployments;
    const dep = (n) => deps.find((d) => d.name === n).state;
    assert.equal(dep("killed").view.state, "forced_open");
    assert.equal(dep("evolved").view.state, "forced_open", "a newer shape still reads");
    assert.deepEqual(dep("evolved").state_errors, []);
    assert.equal(dep("garbled").view.state, "forced_open", "unreadable: fails closed");
    assert.equal(dep("garbled").state_errors[0].key, "breaker");
    assert.equal(dep("garbled").state_errors[0].raw, "garbage", "the admin API shows what is stored");

    // A limited key whose state does not decode is refused (503), not admitted with a fresh budget.
    let c = await chatOnce(w, { model: "plain", messages: USER_MSG }, { headers: { authorization: `Bearer ${limited.key}` } });
    assert.equal(c.status, 503, c.text);
    assert.equal(c.json.error.code, "key_state_unreadable");
    let info = (await admin(w, "GET", `keys/${limited.id}`)).json;
    assert.equal(info.state.state_errors[0].key, "key");
    assert.deepEqual(info.state.state_errors[0].raw, { quota: "garbage", stats: 7 });
    // The newer-shaped key keeps its spend and still works.
    info = (await admin(w, "GET", `keys/${evolvedKey.id}`)).json;
    assert.equal(info.state.spend.day_nanos, spentBefore.day_nanos, "the budget did not restart at 0");
    c = await chatOnce(w, { model: "plain", messages: USER_MSG }, { headers: { authorization: `Bearer ${evolvedKey.key}` } });
    assert.equal(c.status, 200, c.text);

    // The table log does not decode: writes are refused, reported, and nothing in KV is overwritten.
    const v1Before = await kv.get("routing-table:v:1");
    const got = await admin(w, "GET", "table");
    assert.equal(got.status, 200, got.text);
    assert.match(got.json.log_error ?? "", /unreadable/);
    const put = await admin(w, "PUT", "table", JSON.stringify(table()), { "if-match": "*" });
    assert.equal(put.status, 503, put.text);
    assert.match(put.json.error.message, /unreadable/);
    assert.equal(await kv.get("routing-table:v:1"), v1Before, "version 1's text is untouched");
    assert.equal(await kv.get("routing-table"), v2Text, "the live table is untouched");
    assert.ok(w.logs.join("").includes("state_unreadable"), "the log says so");

    // An operator's reset replaces the unreadable breaker (keeping a copy) and traffic returns.
    const reset = await admin(w, "POST", "deployments/garbled/reset", {});
    assert.equal(reset.status, 200, reset.text);
    const after = (await admin(w, "GET", "deployments/garbled")).json.state;
    assert.equal(after.view.state, "closed");
    assert.deepEqual(after.state_errors, []);
    // Revoking works over unreadable key state.
    const rev = await admin(w, "POST", `keys/${limited.id}/revoke`, {});
    assert.equal(rev.status, 200, rev.text);
  } finally {
    await w.dispose();
  }
  await withRawStorage(async (_put, get) => {
    // A copy of each replaced value, as JSON text.
    assert.equal(JSON.parse(await get("DEPLOYMENTS", "garbled", "breaker:unreadable")), "garbage", "the unreadable value was kept");
    assert.deepEqual(JSON.parse(await get("KEYS", limited.id, "key:unreadable")), { quota: "garbage", stats: 7 });
  });
});
