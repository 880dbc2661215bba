// Gateway keys: authentication in "keys" and "open" mode (Authorization: Bearer and x-api-key,
// OpenAI and Anthropic error shapes), the admin API (`/admin/api/*` behind ADMIN_TOKEN), route
// restrictions, revocation, and per-deployment usage. Limits, budgets and the usage of streams:
// keys-limits.test.mjs.
//
// Two workers: `wk` requires keys (AUTH_MODE=keys, ADMIN_TOKEN set), `wo` is open (the test
// default, no ADMIN_TOKEN). Each test makes its own keys (fresh secrets), so the key objects and
// their counters never carry over between tests.

import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { steps } from "./helpers/fake-openai.mjs";
import { scenarioTable, chatOnce, errorShape, FAKE_SECRET, KV_BINDING, USER_MSG } from "./helpers/worker.mjs";
import {
  ADMIN_TOKEN,
  KEY_PREFIX,
  fake,
  wk,
  wo,
  secrets,
  sha256hex,
  putKey,
  admin,
  createKey,
  keyInfo,
  poll,
  auth,
  assertError,
  messagesOnce,
  oneRoute,
  body,
  E,
  EXACT_USAGE,
  useKeysGateway,
} from "./helpers/keys-suite.mjs";

useKeysGateway();

// ---------------------------------------------------------------------------------------------
// keys mode: who may call

test("keys mode: no key -> 401 invalid_api_key (OpenAI shape), upstream never called", async () => {
  const t = await oneRoute(wk);
  const r = await chatOnce(wk, body());
  const e = assertError(r, 401, "invalid_api_key");
  assert.match(e.message, /key/i);
  // Empty bearer and empty x-api-key count as absent.
  const empty = await chatOnce(wk, body(), { headers: { authorization: "Bearer ", "x-api-key": "" } });
  assertError(empty, 401, "invalid_api_key");
  assert.equal(t.hits("d"), 0);
});

test("keys mode: unknown key -> 401 via Authorization: Bearer and via x-api-key", async () => {
  const t = await oneRoute(wk);
  const bogus = `sk-unknown-${randomBytes(8).toString("hex")}`;
  const viaBearer = await chatOnce(wk, body(), { headers: auth(bogus) });
  assertError(viaBearer, 401, "invalid_api_key");
  const viaHeader = await chatOnce(wk, body(), { headers: { "x-api-key": bogus } });
  assertError(viaHeader, 401, "invalid_api_key");
  assert.ok(!viaBearer.text.includes(bogus), "the presented key is not echoed");
  assert.equal(t.hits("d"), 0);
});

test("keys mode: a known key works via Bearer, via x-api-key, and through the openai SDK", async () => {
  const t = await oneRoute(wk);
  t.script("d", [{ ok: "hello key holder" }]);
  const { key } = await putKey(wk, { name: "kv-written" });

  const viaBearer = await chatOnce(wk, body(), { headers: auth(key) });
  assert.equal(viaBearer.status, 200, viaBearer.text);
  assert.equal(viaBearer.json.choices[0].message.content, "hello key holder");

  const viaHeader = await chatOnce(wk, body(), { headers: { "x-api-key": key } });
  assert.equal(viaHeader.status, 200, viaHeader.text);

  // A non-bearer Authorization is ignored; x-api-key is used.
  const basic = await chatOnce(wk, body(), { headers: { authorization: "Basic Zm9vOmJhcg==", "x-api-key": key } });
  assert.equal(basic.status, 200, basic.text);
  // A bearer key wins over x-api-key.
  const bearerWins = await chatOnce(wk, body(), { headers: { authorization: "Bearer sk-nope", "x-api-key": key } });
  assertError(bearerWins, 401, "invalid_api_key");

  const client = new OpenAI({ baseURL: wk.v1, apiKey: key, maxRetries: 0, timeout: 10_000, fetch: wk.recordingFetch });
  const c = await client.chat.completions.create({ model: "gw", messages: USER_MSG });
  assert.equal(c.choices[0].message.content, "hello key holder");

  const bad = new OpenAI({ baseURL: wk.v1, apiKey: "sk-wrong", maxRetries: 0, timeout: 10_000, fetch: wk.recordingFetch });
  await assert.rejects(bad.chat.completions.create({ model: "gw", messages: USER_MSG }), (err) => {
    assert.ok(err instanceof OpenAI.AuthenticationError, `AuthenticationError, got ${err?.constructor?.name}`);
    assert.equal(err.status, 401);
    assert.equal(err.code, "invalid_api_key");
    return true;
  });
  assert.equal(t.hits("d"), 4);
});

test("keys mode: /v1/messages answers 401 in Anthropic's shape (raw and @anthropic-ai/sdk); x-api-key works", async () => {
  const t = await oneRoute(wk);
  t.script("d", [{ ok: "hi from messages" }]);
  const mbody = { model: "gw", max_tokens: 50, messages: [{ role: "user", content: "Say hello." }] };

  for (const headers of [{}, { "x-api-key": "sk-not-a-key" }, auth("sk-not-a-key")]) {
    const r = await messagesOnce(wk, mbody, headers);
    assert.equal(r.status, 401, r.text);
    assert.equal(r.json?.type, "error", r.text);
    assert.equal(r.json.error.type, "authentication_error", r.text);
    assert.equal(typeof r.json.error.message, "string");
  }

  const { key } = await putKey(wk, { name: "anthropic-client" });
  const ok = await messagesOnce(wk, mbody, { "x-api-key": key });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.type, "message");
  assert.equal(ok.json.content[0].text, "hi from messages");

  const baseURL = wk.url.replace(/\/$/, "");
  const good = new Anthropic({ baseURL, apiKey: key, maxRetries: 0, timeout: 10_000, fetch: wk.recordingFetch });
  const m = await good.messages.create(mbody);
  assert.equal(m.content[0].text, "hi from messages");

  const bad = new Anthropic({ baseURL, apiKey: "sk-not-a-key", maxRetries: 0, timeout: 10_000, fetch: wk.recordingFetch });
  await assert.rejects(bad.messages.create(mbody), (err) => {
    assert.ok(err instanceof Anthropic.AuthenticationError, `AuthenticationError, got ${err?.constructor?.name}`);
    assert.equal(err.status, 401);
    assert.equal(err.error?.error?.type, "authentication_error");
    return true;
  });
  assert.equal(t.hits("d"), 2);
});

test("keys mode: a record marked revoked in KV -> 401", async () => {
  const t = await oneRoute(wk);
  const { key } = await putKey(wk, { name: "revoked-in-kv", revoked: true });
  const r = await chatOnce(wk, body(), { headers: auth(key) });
  const e = assertError(r, 401, "invalid_api_key");
  assert.match(e.message, /revoked/i);
  assert.equal(t.hits("d"), 0);
});

// ---------------------------------------------------------------------------------------------
// admin API

test("admin API: missing, wrong or malformed token -> 401; no ADMIN_TOKEN -> admin API off", async () => {
  for (const opts of [{ token: null }, { token: "wrong" }, { token: ADMIN_TOKEN + "x" }, { token: null, headers: { authorization: ADMIN_TOKEN } }]) {
    for (const [method, p, b] of [["GET", "keys"], ["POST", "keys", { name: "nope" }], ["GET", "deployments/x"]]) {
      const r = await admin(wk, method, p, { ...opts, body: b });
      assertError(r, 401, "unauthorized", "authentication_error");
    }
  }
  // The open worker has no ADMIN_TOKEN at all: nobody gets in, whatever they send.
  for (const token of [null, "", ADMIN_TOKEN]) {
    const r = await admin(wo, "GET", "keys", { token });
    assertError(r, 401, "unauthorized", "authentication_error");
  }
  // Nothing was created by the refused POSTs.
  const list = await admin(wk, "GET", "keys");
  assert.equal(list.status, 200);
  assert.ok(!list.json.keys.some((k) => k.name === "nope"), "refused create left no key behind");
});

test("admin API: create a key (201 {id,key,record}), it is stored hashed, listed, readable and usable", async () => {
  const t = await oneRoute(wk);
  t.script("d", [{ ok: "created key works" }]);
  const name = `created-${randomBytes(4).toString("hex")}`;
  const r = await admin(wk, "POST", "keys", { body: { name, rpm: 100, budget_day_usd: "1.5", revoked: true } });
  assert.equal(r.status, 201, r.text);
  const { id, key, record } = r.json;
  secrets.add(key);
  assert.match(key, /^sk-gw-[0-9a-f]{48}$/);
  assert.equal(id, sha256hex(key), "id is the SHA-256 hex of the key");
  assert.equal(record.name, name);
  assert.equal(record.rpm, 100);
  assert.equal(record.budget_day_usd, "1.5");
  assert.ok(!("revoked" in record), "a new key cannot be created revoked");
  assert.equal(typeof record.created_ms, "number");

  // Stored in KV under gateway-key:<sha256>, without the secret.
  const kv = await wk.mf.getKVNamespace(KV_BINDING);
  const stored = await kv.get(KEY_PREFIX + id);
  assert.ok(stored, "record in KV");
  assert.deepEqual(JSON.parse(stored), record);
  assert.ok(!stored.includes(key), "the secret is not stored");

  const list = await admin(wk, "GET", "keys");
  assert.equal(list.status, 200, list.text);
  const listed = list.json.keys.find((k) => k.id === id);
  assert.ok(listed, "the new key is listed");
  assert.equal(listed.name, name);
  assert.ok(!list.text.includes(key), "the list never shows secrets");

  const info = await keyInfo(wk, id);
  assert.equal(info.id, id);
  assert.deepEqual(info.record, record);
  assert.equal(info.state.revoked, false);
  assert.equal(info.state.spend.day_nanos, 0);
  assert.equal(info.state.usage.total.requests, 0);

  const c = await chatOnce(wk, body(), { headers: auth(key) });
  assert.equal(c.status, 200, c.text);
  assert.equal(c.json.choices[0].message.content, "created key works");
  assert.equal(c.res.headers.get("x-ratelimit-limit-requests"), "100");
  assert.equal(c.res.headers.get("x-ratelimit-remaining-requests"), "99");
});

test("admin API: invalid key bodies -> 400; unknown key id -> 404; unknown admin route -> 404", async () => {
  for (const b of ["not json", "[1,2]", { rpm: 5 }, { name: "x", rmp: 1 }, { name: "x", budget_day_usd: "-1" }, { name: "x", budget_month_usd: "1e3" }]) {
    const r = await admin(wk, "POST", "keys", { body: b });
    assert.equal(r.status, 400, `body ${JSON.stringify(b)}: ${r.text}`);
    const e = errorShape(r.json);
    assert.match(e.code, /^invalid_(body|key_record)$/);
  }
  const unknown = "0".repeat(64);
  assertError(await admin(wk, "GET", `keys/${unknown}`), 404, "key_not_found");
  assertError(await admin(wk, "POST", `keys/${unknown}/revoke`), 404, "key_not_found");
  assertError(await admin(wk, "GET", "nothing-here"), 404, "not_found");
});

// ---------------------------------------------------------------------------------------------
// route restriction

test("route restriction: a key limited to route a gets 403 model_not_allowed on route b", async () => {
  const t = await scenarioTable(wk, fake, {
    deployments: { d: {} },
    routes: { a: { chain: ["d"] }, b: { chain: ["d"] } },
  });
  t.script("d", [{ ok: "route a ok" }]);
  const { key } = await putKey(wk, { name: "only-a", routes: ["a"] });

  const ok = await chatOnce(wk, { model: "a", messages: USER_MSG }, { headers: auth(key) });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.choices[0].message.content, "route a ok");

  const denied = await chatOnce(wk, { model: "b", messages: USER_MSG }, { headers: auth(key) });
  const e = assertError(denied, 403, "model_not_allowed", "permission_error");
  assert.equal(e.param, "model");
  assert.match(e.message, /only-a/);

  // The same through /v1/messages: Anthropic's permission_error.
  const m = await messagesOnce(wk, { model: "b", max_tokens: 10, messages: USER_MSG }, { "x-api-key": key });
  assert.equal(m.status, 403, m.text);
  assert.equal(m.json.type, "error");
  assert.equal(m.json.error.type, "permission_error");

  // An unknown model is still a 404, not a 403; its list of models names only route a.
  const unknown = assertError(await chatOnce(wk, { model: "zzz", messages: USER_MSG }, { headers: auth(key) }), 404, "model_not_found");
  assert.match(unknown.message, /Available models: a$/);
  assert.equal(t.hits("d"), 1);

  // The model list shows the key the routes it may use, and only those.
  const listed = await wk.fetch("/v1/models", { headers: auth(key) });
  assert.equal(listed.status, 200);
  assert.deepEqual((await listed.json()).data.map((m) => m.id), ["a"]);
  const { key: all } = await putKey(wk, { name: "all-routes" });
  const full = await (await wk.fetch("/v1/models", { headers: auth(all) })).json();
  assert.deepEqual(full.data.map((m) => m.id).sort(), ["a", "b"]);
});

// ---------------------------------------------------------------------------------------------
// revocation

test("revocation: a limited key is refused at once (key object), even while KV still says not revoked", async () => {
  const t = await oneRoute(wk);
  t.script("d", [{ ok: "before revocation" }]);
  const { id, key, record } = await createKey(wk, { name: "to-revoke", rpm: 100 });
  const before = await chatOnce(wk, body(), { headers: auth(key) });
  assert.equal(before.status, 200, before.text);

  const rv = await admin(wk, "POST", `keys/${id}/revoke`);
  assert.equal(rv.status, 200, rv.text);
  assert.deepEqual(rv.json, { id, revoked: true });

  const afterRevoke = await chatOnce(wk, body(), { headers: auth(key) });
  const e = assertError(afterRevoke, 401, "invalid_api_key");
  assert.match(e.message, /revoked/i);
  const viaHeader = await chatOnce(wk, body(), { headers: { "x-api-key": key } });
  assertError(viaHeader, 401, "invalid_api_key");

  const info = await keyInfo(wk, id);
  assert.equal(info.record.revoked, true);
  assert.equal(info.state.revoked, true);

  // An isolate holding the old record (stale cache, slow KV propagation) must not let it in:
  // put the unrevoked record back in KV; the key's object still refuses.
  const kv = await wk.mf.getKVNamespace(KV_BINDING);
  await kv.put(KEY_PREFIX + id, JSON.stringify(record));
  const stale = await chatOnce(wk, body(), { headers: auth(key) });
  const e2 = assertError(stale, 401, "invalid_api_key");
  assert.match(e2.message, /revoked/i);
  assert.equal(t.hits("d"), 1);
});

test("revocation: a key without limits is refused on the next request, even while KV still says not revoked", async () => {
  const t = await oneRoute(wk);
  const { id, key, record } = await createKey(wk, { name: "unlimited-revoke" });
  assert.equal((await chatOnce(wk, body(), { headers: auth(key) })).status, 200);
  assert.equal((await admin(wk, "POST", `keys/${id}/revoke`)).status, 200);
  assertError(await chatOnce(wk, body(), { headers: auth(key) }), 401, "invalid_api_key");
  // Another isolate's cache, or a KV location not yet caught up, still holds the record from
  // before the revoke: the key's object, asked on every request, refuses it.
  const kv = await wk.mf.getKVNamespace(KV_BINDING);
  await kv.put(KEY_PREFIX + id, JSON.stringify(record));
  const stale = await chatOnce(wk, body(), { headers: auth(key) });
  assert.match(assertError(stale, 401, "invalid_api_key").message, /revoked/i);
  assert.equal(t.hits("d"), 1);
});

test("revocation: a PATCH made from a copy read before the revoke cannot lift it", async () => {
  const t = await oneRoute(wk);
  const { id, key, record } = await createKey(wk, { name: "patch-after-revoke" });
  assert.equal((await admin(wk, "POST", `keys/${id}/revoke`)).status, 200);
  // The PATCH reads the record from KV as it was before the revoke (stale read).
  const kv = await wk.mf.getKVNamespace(KV_BINDING);
  await kv.put(KEY_PREFIX + id, JSON.stringify(record));
  const patched = await admin(wk, "PATCH", `keys/${id}`, { body: { rpm: 50, name: "renamed" } });
  assert.equal(patched.status, 200, patched.text);
  assert.equal(patched.json.record.revoked, true, "the edit keeps the revocation");
  assert.equal(patched.json.record.rpm, 50);
  const mirrored = JSON.parse(await kv.get(KEY_PREFIX + id));
  assert.equal(mirrored.revoked, true, "KV's copy is revoked again");
  assert.equal(mirrored.name, "renamed");
  const info = await keyInfo(wk, id);
  assert.equal(info.record.revoked, true);
  assert.equal(info.state.revoked, true);
  assertError(await chatOnce(wk, body(), { headers: auth(key) }), 401, "invalid_api_key");
  assert.equal(t.hits("d"), 0);
});

test("PATCH is compare-and-set with If-Match: <rev>; every edit and revoke counts a revision", async () => {
  const { id, record } = await createKey(wk, { name: "cas", rpm: 10 });
  assert.equal(record.rev, 1);
  assert.equal((await keyInfo(wk, id)).rev, 1);
  const first = await admin(wk, "PATCH", `keys/${id}`, { body: { rpm: 20 }, headers: { "if-match": "1" } });
  assert.equal(first.status, 200, first.text);
  assert.equal(first.json.rev, 2);
  // A second editor who read rev 1 is refused, and its change is not applied.
  const late = await admin(wk, "PATCH", `keys/${id}`, { body: { rpm: 30 }, headers: { "if-match": '"1"' } });
  assertError(late, 412, "key_changed");
  assert.equal((await keyInfo(wk, id)).record.rpm, 20);
  // A revoke is a revision too: an edit based on the record before it is refused.
  assert.equal((await admin(wk, "POST", `keys/${id}/revoke`)).status, 200);
  const info = await keyInfo(wk, id);
  assert.equal(info.rev, 3);
  assert.equal(info.record.revoked, true);
  assertError(await admin(wk, "PATCH", `keys/${id}`, { body: { rpm: 40 }, headers: { "if-match": "2" } }), 412, "key_changed");
  assertError(await admin(wk, "PATCH", `keys/${id}`, { body: { rpm: 40 }, headers: { "if-match": "two" } }), 400, "invalid_if_match");
  // Without If-Match a PATCH still merges on the object's copy (it cannot undo the revoke).
  const blind = await admin(wk, "PATCH", `keys/${id}`, { body: { rpm: 40 } });
  assert.equal(blind.status, 200, blind.text);
  assert.equal(blind.json.rev, 4);
  assert.equal(blind.json.record.revoked, true);
});

test("limits set by PATCH apply on the next request, even where KV still has the old record", async () => {
  const t = await oneRoute(wk);
  t.script("d", [{ ok: "one" }, { ok: "two" }]);
  const { id, key, record } = await createKey(wk, { name: "limit-later" });
  assert.equal((await admin(wk, "PATCH", `keys/${id}`, { body: { rpm: 1 } })).status, 200);
  const kv = await wk.mf.getKVNamespace(KV_BINDING);
  await kv.put(KEY_PREFIX + id, JSON.stringify(record)); // stale: no rpm
  assert.equal((await chatOnce(wk, body(), { headers: auth(key) })).status, 200);
  assertError(await chatOnce(wk, body(), { headers: auth(key) }), 429, "rate_limit_exceeded");
  assert.equal(t.hits("d"), 1);
});

// ---------------------------------------------------------------------------------------------
// open mode

test("open mode: no key and unknown keys pass; a known key's limits and routes still apply", async () => {
  const t = await scenarioTable(wo, fake, {
    deployments: { d: {} },
    routes: { gw: { chain: ["d"] }, other: { chain: ["d"] } },
  });
  t.script("d", [{ ok: "open door" }]);
  const anon = await chatOnce(wo, body());
  assert.equal(anon.status, 200, anon.text);
  assert.equal(anon.json.choices[0].message.content, "open door");
  assert.equal(anon.res.headers.get("x-ratelimit-limit-requests"), null, "no key, no rate-limit headers");
  const unknown = await chatOnce(wo, body(), { headers: auth("sk-whatever") });
  assert.equal(unknown.status, 200, unknown.text);

  const { key } = await putKey(wo, { name: "open-rpm-1", rpm: 1, routes: ["gw"] });
  const first = await chatOnce(wo, body(), { headers: auth(key) });
  assert.equal(first.status, 200, first.text);
  assert.equal(first.res.headers.get("x-ratelimit-remaining-requests"), "0");
  const second = await chatOnce(wo, body(), { headers: { "x-api-key": key } });
  assertError(second, 429, "rate_limit_exceeded", "rate_limit_error");
  assert.match(second.res.headers.get("retry-after") ?? "", /^\d+$/);
  assertError(await chatOnce(wo, { model: "other", messages: USER_MSG }, { headers: auth(key) }), 403, "model_not_allowed");

  const { key: revoked } = await putKey(wo, { name: "open-revoked", revoked: true });
  assertError(await chatOnce(wo, body(), { headers: auth(revoked) }), 401, "invalid_api_key");
  // Anonymous callers are not affected by the key's limit.
  assert.equal((await chatOnce(wo, body())).status, 200);
  assert.equal(t.hits("d"), 4);
});

// ---------------------------------------------------------------------------------------------
// deployment usage

test("deployment usage: GET /admin/api/deployments/{name} counts every attempt", async () => {
  const dep = `usage-${randomBytes(4).toString("hex")}`;
  const t = await scenarioTable(wk, fake, { deployments: { [dep]: {} }, routes: { gw: { chain: [dep] } } });
  t.script(dep, [steps.r500(), { ok: "second attempt", usage: EXACT_USAGE }]);
  const { key } = await putKey(wk, { name: "dep-usage" });
  const r = await chatOnce(wk, body(), { headers: auth(key) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.res.headers.get("x-router-attempts"), "2");
  assert.equal(t.hits(dep), 2);

  const read = async () => {
    const res = await admin(wk, "GET", `deployments/${encodeURIComponent(dep)}`);
    assert.equal(res.status, 200, res.text);
    return res.json;
  };
  const s = await poll(read, (j) => j.state?.usage?.total?.requests >= 2);
  assert.equal(s.name, dep);
  assert.equal(s.state.usage.total.requests, 2, JSON.stringify(s.state.usage.total));
  assert.equal(s.state.usage.total.ok, 1);
  assert.equal(s.state.usage.total.errors, 1);
  assert.equal(s.state.usage.total.input_tokens, 2);
  assert.equal(s.state.usage.total.output_tokens, 100);
  assert.equal(BigInt(s.state.usage.total.cost_nanos), E);

  // Also listed with the others.
  const all = await admin(wk, "GET", "deployments");
  assert.equal(all.status, 200, all.text);
  const mine = all.json.deployments.find((d) => d.name === dep);
  assert.ok(mine, "listed");
  assert.equal(mine.state.usage.total.requests, 2);
});

// ---------------------------------------------------------------------------------------------

test("no response leaks the provider secret; gateway key secrets appear only in the create reply", async () => {
  for (const w of [wk, wo]) {
    const seen = await w.allSeen();
    assert.ok(seen.length > 0);
    for (const e of seen) {
      const all = JSON.stringify(e.headers) + e.body;
      assert.ok(!all.includes(FAKE_SECRET), `provider secret in ${e.url} (${e.status})`);
      const isCreate = /\/admin\/api\/keys$/.test(e.url) && e.status === 201;
      if (isCreate) continue;
      for (const s of secrets) assert.ok(!all.includes(s), `gateway key secret in ${e.url} (${e.status})`);
    }
  }
});
