// The routing-table admin API (docs/admin-api.md) in workerd with real KV and the TableLog
// Durable Object: auth on every route, validation errors with paths, If-Match (428 / 412, also
// for two writers racing), versions, diff, rollback, a bad table written straight to KV (the
// last good table keeps serving and the API says so), PATCH and listing of gateway keys (past
// KV's 1,000-key list page), and the dashboard's static files. A version log ahead of KV:
// admin-table-log.test.mjs.
//
// Each test starts its own worker (fresh KV and objects), so versions start at 1 every time.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chatOnce, USER_MSG, KV_BINDING } from "./helpers/worker.mjs";
import { ADMIN, table, withWorker, api, put, pretty, servedBy } from "./helpers/admin-table-suite.mjs";

test("every admin route refuses a missing or wrong token with 401 in the OpenAI error shape", async () => {
  await withWorker(async (w) => {
    const routes = [
      ["GET", "table"],
      ["PUT", "table"],
      ["POST", "table/validate"],
      ["GET", "table/versions"],
      ["GET", "table/versions/1"],
      ["POST", "table/diff"],
      ["POST", "table/rollback"],
      ["GET", "deployments"],
      ["POST", "deployments/small/force-open"],
      ["GET", "keys"],
      ["POST", "keys"],
      ["PATCH", "keys/abc"],
      ["POST", "keys/abc/revoke"],
      ["POST", "explain"],
    ];
    for (const [method, path] of routes) {
      for (const headers of [{}, { authorization: "Bearer wrong" }, { authorization: ADMIN }, { authorization: `Bearer ${ADMIN}x` }]) {
        const res = await w.fetch(`/admin/api/${path}`, { method, headers, body: method === "GET" ? undefined : "{}" });
        const body = await res.json();
        assert.equal(res.status, 401, `${method} ${path} with ${JSON.stringify(headers)}`);
        assert.equal(body.error.type, "authentication_error");
        assert.ok(!JSON.stringify(body).includes(ADMIN));
      }
    }
    // Nothing was changed by the refused writes.
    const t = await api(w, "GET", "table");
    assert.equal(t.json.origin, "embedded-default");
    assert.equal((await api(w, "GET", "table/versions")).json.versions.length, 0);
  });
});

test("without KV the API shows the embedded default; a first save needs If-Match and a valid table", async () => {
  await withWorker(async (w) => {
    const t = await api(w, "GET", "table");
    assert.equal(t.status, 200);
    assert.equal(t.json.origin, "embedded-default");
    assert.equal(t.json.version, null);
    assert.equal(t.json.valid, true);
    assert.equal(t.json.serving, "embedded-default");
    assert.equal(t.json.external_change, false);
    assert.equal(t.headers.get("etag"), t.json.etag);
    assert.match(t.json.etag, /^"[0-9a-f]{16}"$/);
    assert.ok(t.json.table.routes["mock-small"]);

    const noMatch = await put(w, table(["small"]));
    assert.equal(noMatch.status, 428);
    assert.equal(noMatch.json.error.code, "precondition_required");

    // Invalid: every problem with its path; nothing saved.
    const bad = table(["small", "gone"]);
    bad.deployments.small.provider = "nope";
    const invalid = await put(w, bad, t.json.etag);
    assert.equal(invalid.status, 400);
    assert.equal(invalid.json.error.code, "invalid_routing_table");
    const paths = invalid.json.error.errors.map((e) => e.path).sort();
    assert.deepEqual(paths, ["deployments.small.provider", "routes.chat.chain[1]"]);
    assert.ok(invalid.json.error.errors.every((e) => e.message.length > 0));
    const syntax = await put(w, '{"version": 1,\n "routes": }', t.json.etag);
    assert.equal(syntax.status, 400);
    assert.equal(syntax.json.error.errors[0].path, "");
    assert.match(syntax.json.error.errors[0].message, /line 2/);
    assert.equal((await api(w, "GET", "table")).json.etag, t.json.etag);

    // Valid: saved as version 1 (the default is not logged), served at once by this isolate.
    const ok = await put(w, table(["large", "small"]), t.json.etag, encodeURIComponent("chat on large → été"));
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.version, 1);
    assert.equal(ok.headers.get("etag"), ok.json.etag);
    assert.equal(await servedBy(w), "large");
    const after = await api(w, "GET", "table");
    assert.equal(after.json.version, 1);
    assert.equal(after.json.origin, "kv");
    assert.equal(after.json.message, "chat on large → été", "percent-encoded UTF-8 is decoded");
    assert.equal(after.json.etag, ok.json.etag);
    assert.equal(after.json.text, JSON.stringify(table(["large", "small"]), null, 2), "the exact text is kept");
  });
});

test("validate reports problems with paths and a summary without saving anything", async () => {
  await withWorker(async (w) => {
    const good = await api(w, "POST", "table/validate", { body: table(["small"]) });
    assert.deepEqual(good.json, { valid: true, errors: [], summary: { routes: 1, deployments: 2, providers: 1 } });
    const bad = table(["small"], { other: { chain: [] } });
    bad.deployments.large.context_window = 0;
    const res = await api(w, "POST", "table/validate", { body: bad });
    assert.equal(res.status, 200);
    assert.equal(res.json.valid, false);
    const paths = res.json.errors.map((e) => e.path);
    assert.ok(paths.includes("deployments.large.context_window"), JSON.stringify(res.json));
    assert.ok(paths.some((p) => p.startsWith("routes.other")), JSON.stringify(res.json));
    assert.equal((await api(w, "GET", "table/versions")).json.versions.length, 0);
  });
});

test("two operators saving over the same version: exactly one wins, the other gets 412", async () => {
  await withWorker(async (w) => {
    const t0 = await api(w, "GET", "table");
    const first = await put(w, table(["small"]), t0.json.etag, "base");
    assert.equal(first.status, 200);
    for (let round = 0; round < 5; round++) {
      const base = (await api(w, "GET", "table")).json.etag;
      const results = await Promise.all([
        put(w, table(["large"], { [`a${round}`]: { chain: ["small"] } }), base, `A${round}`),
        put(w, table(["small", "large"], { [`b${round}`]: { chain: ["large"] } }), base, `B${round}`),
      ]);
      const statuses = results.map((r) => r.status).sort();
      assert.deepEqual(statuses, [200, 412], JSON.stringify(results.map((r) => r.json)));
      const loser = results.find((r) => r.status === 412);
      const winner = results.find((r) => r.status === 200);
      assert.equal(loser.json.error.code, "version_conflict");
      assert.equal(loser.json.error.current_etag, winner.json.etag);
      assert.equal(loser.json.error.current_version, winner.json.version);
      // What KV serves is the winner's table.
      assert.equal((await api(w, "GET", "table")).json.etag, winner.json.etag);
    }
    // A save based on an old version is refused too; `*` overwrites.
    assert.equal((await put(w, table(["large"]), first.json.etag)).status, 412);
    assert.equal((await put(w, table(["large"]), "*", "forced")).status, 200);
    assert.equal(await servedBy(w), "large");
  });
});

test("versions, diff between versions and against a draft, and rollback", async () => {
  await withWorker(async (w) => {
    let etag = (await api(w, "GET", "table")).json.etag;
    const texts = [table(["small"]), table(["large", "small"]), table(["large"], { extra: { chain: ["small"] } })];
    for (const [i, t] of texts.entries()) {
      const r = await put(w, t, etag, `step ${i + 1}`);
      assert.equal(r.status, 200);
      etag = r.json.etag;
    }
    const list = await api(w, "GET", "table/versions");
    assert.equal(list.json.current, 3);
    assert.deepEqual(list.json.versions.map((v) => [v.version, v.origin, v.message]), [
      [3, "api", "step 3"],
      [2, "api", "step 2"],
      [1, "api", "step 1"],
    ]);
    assert.ok(list.json.versions.every((v) => v.bytes > 0 && v.created_ms > 0 && /^"[0-9a-f]{16}"$/.test(v.etag)));
    const v1 = await api(w, "GET", "table/versions/1");
    assert.deepEqual(v1.json.table, texts[0]);
    assert.equal((await api(w, "GET", "table/versions/99")).status, 404);

    const d = await api(w, "POST", "table/diff", { body: { from: 1, to: "current" } });
    assert.equal(d.status, 200);
    assert.deepEqual(
      d.json.changes.map((c) => [c.path, c.kind]),
      [["routes.chat.chain[0]", "changed"], ["routes.extra", "added"]],
    );
    assert.deepEqual(d.json.changes[0].before, "small");
    assert.deepEqual(d.json.changes[0].after, "large");
    // The line diff holds both sides, pretty-printed with sorted keys.
    const side = (drop) => d.json.lines.filter((l) => l.op !== drop).map((l) => l.text);
    assert.deepEqual(side("+"), pretty(texts[0]));
    assert.deepEqual(side("-"), pretty(texts[2]));
    assert.ok(d.json.lines.some((l) => l.op === "+" && l.text.includes('"extra"')));
    const draft = await api(w, "POST", "table/diff", {
      body: { from: "current", text: JSON.stringify(table(["small"], { extra: { chain: ["small"] } })) },
    });
    assert.deepEqual(draft.json.changes.map((c) => c.path), ["routes.chat.chain[0]"]);
    const notJson = await api(w, "POST", "table/diff", { body: { from: "current", text: "{oops" } });
    assert.equal(notJson.status, 400);
    assert.equal(notJson.json.error.code, "invalid_json");

    assert.equal(await servedBy(w), "large");
    assert.equal((await api(w, "POST", "table/rollback", { body: { version: 1 } })).status, 428);
    const rb = await api(w, "POST", "table/rollback", { body: { version: 1 }, headers: { "if-match": etag } });
    assert.equal(rb.status, 200, rb.text);
    assert.equal(rb.json.version, 4);
    assert.equal(rb.json.rolled_back_to, 1);
    assert.equal(await servedBy(w), "small");
    const now = await api(w, "GET", "table");
    assert.deepEqual(now.json.table, texts[0]);
    assert.equal(now.json.version, 4);
    const top = (await api(w, "GET", "table/versions")).json.versions[0];
    assert.deepEqual([top.version, top.origin, top.rolled_back_to], [4, "rollback", 1]);
    // A rollback with a stale ETag is refused like any write.
    const stale = await api(w, "POST", "table/rollback", { body: { version: 2 }, headers: { "if-match": etag } });
    assert.equal(stale.status, 412);
    assert.equal((await api(w, "POST", "table/rollback", { body: { version: 42 }, headers: { "if-match": "*" } })).status, 404);
  });
});

test("a bad table written straight to KV: the last good keeps serving, the API says so, and the next save logs it", async () => {
  await withWorker(async (w) => {
    const e0 = (await api(w, "GET", "table")).json.etag;
    const saved = await put(w, table(["large"]), e0, "good");
    assert.equal(saved.status, 200);
    assert.equal(await servedBy(w), "large");

    const badText = JSON.stringify(table(["nowhere"]));
    await w.putRaw(badText); // wrangler kv key put, behind the API's back
    await new Promise((r) => setTimeout(r, 50));
    // The gateway keeps serving the last good table (the harness's cache TTL is short).
    const t = await api(w, "GET", "table");
    assert.equal(t.json.text, badText);
    assert.equal(t.json.valid, false);
    assert.deepEqual(t.json.errors.map((e) => e.path), ["routes.chat.chain[0]"]);
    assert.equal(t.json.serving, "last-good");
    assert.match(t.json.serving_error, /invalid/);
    assert.equal(t.json.external_change, true);
    assert.equal(t.json.version, null);
    assert.equal(await servedBy(w), "large");

    // A save based on the version the operator last saw is stale now.
    const stale = await put(w, table(["small"]), saved.json.etag);
    assert.equal(stale.status, 412);
    assert.equal(stale.json.error.current_etag, t.json.etag);
    // Based on what KV holds, it is accepted, and the external text is kept as a version.
    const fixed = await put(w, table(["small"]), t.json.etag, "fix");
    assert.equal(fixed.status, 200, fixed.text);
    assert.equal(fixed.json.external_logged, 2);
    assert.equal(fixed.json.version, 3);
    assert.equal(await servedBy(w), "small");
    const versions = (await api(w, "GET", "table/versions")).json.versions;
    assert.deepEqual(versions.map((v) => [v.version, v.origin]), [[3, "api"], [2, "external"], [1, "api"]]);
    assert.equal((await api(w, "GET", "table/versions/2")).json.text, badText);
    // Rolling back to the invalid external version is refused with its errors.
    const rb = await api(w, "POST", "table/rollback", { body: { version: 2 }, headers: { "if-match": fixed.json.etag } });
    assert.equal(rb.status, 409);
    assert.equal(rb.json.error.errors[0].path, "routes.chat.chain[0]");
    assert.equal(await servedBy(w), "small");
  });
});

test("a table seeded in KV before any API write becomes version 1 (external) on the first save", async () => {
  await withWorker(
    async (w) => {
      const t = await api(w, "GET", "table");
      assert.equal(t.json.origin, "kv");
      assert.equal(t.json.external_change, false, "an empty log is not a conflict");
      const r = await put(w, table(["small"]), t.json.etag, "first");
      assert.equal(r.status, 200);
      assert.deepEqual([r.json.external_logged, r.json.version], [1, 2]);
      const v1 = await api(w, "GET", "table/versions/1");
      assert.deepEqual(v1.json.table, table(["large"]));
    },
    { table: table(["large"]) },
  );
});

test("GET /admin/api/keys lists every key, past KV's 1,000 keys per list page", async () => {
  await withWorker(async (w) => {
    const created = await api(w, "POST", "keys", { body: { name: "template", rpm: 7 } });
    assert.equal(created.status, 201);
    const kv = await w.mf.getKVNamespace(KV_BINDING);
    const record = JSON.parse(await kv.get(`gateway-key:${created.json.id}`));
    const names = new Map([[created.json.id, "template"]]);
    const total = 1050;
    for (let i = 1; i < total; i += 50) {
      const batch = [];
      for (let j = i; j < Math.min(i + 50, total); j++) {
        const id = createHash("sha256").update(`seeded-key-${j}`).digest("hex");
        names.set(id, `seeded-${j}`);
        batch.push(kv.put(`gateway-key:${id}`, JSON.stringify({ ...record, name: `seeded-${j}` })));
      }
      await Promise.all(batch);
    }
    assert.equal(names.size, total);
    const list = await api(w, "GET", "keys");
    assert.equal(list.status, 200);
    assert.equal(list.json.keys.length, total);
    assert.deepEqual(new Map(list.json.keys.map((k) => [k.id, k.name])), names);
    assert.ok(list.json.keys.every((k) => k.rpm === 7 && k.created_ms > 0));
  });
});

test("PATCH a gateway key: limits change, unknown fields and bad values are refused", async () => {
  await withWorker(async (w) => {
    const created = await api(w, "POST", "keys", { body: { name: "app", rpm: 10 } });
    assert.equal(created.status, 201);
    const id = created.json.id;
    const patched = await api(w, "PATCH", `keys/${id}`, { body: { rpm: 2, budget_day_usd: "1.50", name: "app-2" } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.json.record.rpm, 2);
    assert.equal(patched.json.record.name, "app-2");
    const removed = await api(w, "PATCH", `keys/${id}`, { body: { budget_day_usd: null } });
    assert.equal(removed.json.record.budget_day_usd, undefined);
    assert.equal((await api(w, "PATCH", `keys/${id}`, { body: { revoked: false } })).status, 400);
    assert.equal((await api(w, "PATCH", `keys/${id}`, { body: { rpm: "lots" } })).status, 400);
    assert.equal((await api(w, "PATCH", "keys/0000", { body: { rpm: 1 } })).status, 404);
    const record = (await api(w, "GET", `keys/${id}`)).json.record;
    assert.deepEqual([record.name, record.rpm, record.budget_day_usd], ["app-2", 2, undefined]);
    // The new limit is enforced: 2 requests per minute, the third is refused.
    const key = created.json.key;
    const codes = [];
    for (let i = 0; i < 3; i++) {
      const res = await chatOnce(w, { model: "mock-small", messages: USER_MSG }, { headers: { authorization: `Bearer ${key}` } });
      codes.push(res.status);
    }
    assert.deepEqual(codes, [200, 200, 429]);
  });
});

test("the dashboard's files are served with a strict CSP and no secret in them", async () => {
  await withWorker(async (w) => {
    for (const [path, type] of [
      ["/admin", "text/html"],
      ["/admin/", "text/html"],
      ["/admin/app.js", "text/javascript"],
      ["/admin/app.css", "text/css"],
    ]) {
      const res = await w.fetch(path);
      const body = await res.text();
      assert.equal(res.status, 200, path);
      assert.ok(res.headers.get("content-type").startsWith(type), path);
      assert.match(res.headers.get("content-security-policy"), /default-src 'none'; script-src 'self'/);
      assert.equal(res.headers.get("x-content-type-options"), "nosniff");
      assert.ok(!body.includes(ADMIN));
      assert.ok(!/https?:\/\/(?!127\.0\.0\.1|localhost)[a-z]/i.test(body.replace(/http:\/\/www\.w3\.org\/2000\/svg/g, "")), `${path} loads nothing from another origin`);
    }
    assert.equal((await w.fetch("/admin/nope.js")).status, 404);
  });
});
