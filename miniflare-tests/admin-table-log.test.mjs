// The routing-table admin API when its version log (the TableLog Durable Object) is ahead of
// KV, after a KV write was lost or reordered once the log had committed: `GET` offers the
// newest version and its ETag, a save succeeds (never a 412 loop) and KV catches up, saving the
// same text again or a reload after TABLE_REPAIR_AFTER_MS repairs KV, and a deleted table or a
// lost version text still leaves the editor able to save.
//
// Each test starts its own worker (fresh KV and objects), so versions start at 1 every time.

import { test } from "node:test";
import assert from "node:assert/strict";
import { KV_BINDING, TABLE_KEY } from "./helpers/worker.mjs";
import { table, withWorker, api, put, servedBy } from "./helpers/admin-table-suite.mjs";

/** The text `put` sends for a table object (what the API stores, byte for byte). */
const textOf = (t) => JSON.stringify(t, null, 2);

/**
 * Two saves through the API (v1 chat → small, v2 chat → large), then v1's text put back into
 * `routing-table` directly: as if the KV write after v2's log commit had been lost (KV takes
 * one write per second per key) or two saves' KV writes had landed in the opposite order.
 */
async function logAheadOfKv(w) {
  const e0 = (await api(w, "GET", "table")).json.etag;
  const v1 = await put(w, table(["small"]), e0, "first");
  assert.equal(v1.status, 200, v1.text);
  const v2 = await put(w, table(["large"]), v1.json.etag, "second");
  assert.equal(v2.status, 200, v2.text);
  const kv = await w.mf.getKVNamespace(KV_BINDING);
  await kv.put(TABLE_KEY, textOf(table(["small"])));
  assert.equal(await servedBy(w), "small", "the gateway serves what KV holds");
  return { kv, v1, v2 };
}

test("a version log ahead of KV: GET offers the newest version, a save with its ETag succeeds, log and KV agree", async () => {
  await withWorker(async (w) => {
    const { kv, v1, v2 } = await logAheadOfKv(w);
    const t = await api(w, "GET", "table");
    assert.equal(t.status, 200);
    assert.equal(t.json.version, 2, JSON.stringify(t.json));
    assert.equal(t.json.etag, v2.json.etag);
    assert.equal(t.headers.get("etag"), v2.json.etag);
    assert.equal(t.json.text, textOf(table(["large"])), "the editor gets the newest saved text");
    assert.equal(t.json.origin, "log");
    assert.equal(t.json.external_change, false);
    assert.equal(t.json.kv_behind.kv_version, 1);
    assert.equal(t.json.kv_behind.kv_etag, v1.json.etag);
    assert.equal(t.json.kv_behind.repaired, false, "no KV write while the newest save may still be propagating");
    assert.equal(await kv.get(TABLE_KEY), textOf(table(["small"])));
    assert.equal((await api(w, "GET", "table/versions")).json.current, 1, "the version list says what KV serves");
    // The review diff is against the newest version, like the editor.
    const d = await api(w, "POST", "table/diff", { body: { from: "current", text: textOf(table(["large", "small"])) } });
    assert.deepEqual(d.json.changes.map((c) => [c.path, c.kind]), [["routes.chat.chain[1]", "added"]]);

    // The dashboard's Reload-then-save: accepted, and KV catches up with the log.
    const saved = await put(w, table(["large", "small"]), t.json.etag, "third");
    assert.equal(saved.status, 200, saved.text);
    assert.equal(saved.json.version, 3);
    const after = await api(w, "GET", "table");
    assert.equal(after.json.version, 3);
    assert.equal(after.json.etag, saved.json.etag);
    assert.equal(after.json.text, textOf(table(["large", "small"])));
    assert.equal(after.json.kv_behind, null);
    assert.equal(after.json.origin, "kv");
    assert.equal(await kv.get(TABLE_KEY), textOf(table(["large", "small"])));
    assert.equal(await servedBy(w), "large");
    const versions = (await api(w, "GET", "table/versions")).json;
    assert.equal(versions.current, 3);
    assert.deepEqual(versions.versions.map((v) => [v.version, v.origin]), [[3, "api"], [2, "api"], [1, "api"]]);
    // The ETag of the text KV held (v1) is stale, as before: the one-writer-wins check stands.
    assert.equal((await put(w, table(["small"]), v1.json.etag)).status, 412);
  });
});

test("a version log ahead of KV: saving the newest text again, or a reload after TABLE_REPAIR_AFTER_MS, rewrites KV", async () => {
  await withWorker(async (w) => {
    const { kv } = await logAheadOfKv(w);
    const t = await api(w, "GET", "table");
    const same = await put(w, t.json.text, t.json.etag, "apply");
    assert.equal(same.status, 200, same.text);
    assert.deepEqual([same.json.version, same.json.unchanged], [2, true]);
    assert.equal(await kv.get(TABLE_KEY), textOf(table(["large"])));
    assert.equal(await servedBy(w), "large");
  });
  await withWorker(
    async (w) => {
      const { kv, v2 } = await logAheadOfKv(w);
      const t = await api(w, "GET", "table");
      assert.equal(t.json.version, 2);
      assert.equal(t.json.kv_behind.repaired, true, JSON.stringify(t.json.kv_behind));
      assert.equal(await kv.get(TABLE_KEY), textOf(table(["large"])), "the reload repaired KV from routing-table:v:2");
      assert.equal(await servedBy(w), "large");
      const again = await api(w, "GET", "table");
      assert.deepEqual([again.json.version, again.json.etag, again.json.kv_behind], [2, v2.json.etag, null]);
      const saved = await put(w, table(["small", "large"]), again.json.etag, "next");
      assert.equal(saved.status, 200, saved.text);
      assert.equal(saved.json.version, 3);
    },
    { bindings: { TABLE_REPAIR_AFTER_MS: "0" } },
  );
});

test("a version log ahead of KV: a deleted table or a lost version text still leaves the editor able to save", async () => {
  await withWorker(
    async (w) => {
      const { kv, v2 } = await logAheadOfKv(w);
      // The newest version's text is gone too: GET shows what KV holds, with the ETag a save needs.
      await kv.delete("routing-table:v:2");
      const t = await api(w, "GET", "table");
      assert.equal(t.json.text, textOf(table(["small"])));
      assert.equal(t.json.etag, v2.json.etag);
      assert.deepEqual([t.json.version, t.json.kv_behind.kv_version, t.json.kv_behind.text_missing], [1, 1, true]);
      const saved = await put(w, table(["large", "small"]), t.json.etag, "over the lost text");
      assert.equal(saved.status, 200, saved.text);
      assert.equal(saved.json.version, 3);
      assert.equal(await servedBy(w), "large");

      // Someone deletes `routing-table`: the last good table keeps serving; the editor gets the
      // newest version and can save over it, and a reload does not re-create the key.
      await kv.delete(TABLE_KEY);
      const d = await api(w, "GET", "table");
      assert.equal(d.json.version, 3);
      assert.equal(d.json.etag, saved.json.etag);
      assert.equal(d.json.text, textOf(table(["large", "small"])));
      assert.deepEqual([d.json.kv_behind.kv_version, d.json.kv_behind.repaired], [null, false]);
      assert.equal(await kv.get(TABLE_KEY), null);
      const again = await put(w, table(["small"]), d.json.etag, "after the delete");
      assert.equal(again.status, 200, again.text);
      assert.equal(await servedBy(w), "small");
      assert.equal((await api(w, "GET", "table")).json.kv_behind, null);
    },
    { bindings: { TABLE_REPAIR_AFTER_MS: "0" } },
  );
});
