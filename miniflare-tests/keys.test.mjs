// Gateway keys: authentication in "keys" and "open" mode (Authorization: Bearer and x-api-key,
// OpenAI and Anthropic error shapes), the admin API (`/admin/api/*` behind ADMIN_TOKEN), route
// restrictions, the key object's limits (RPM, TPM, day and month budgets, enforced exactly under
// concurrency by reserve-then-settle), usage and spend recorded for plain, streamed and cut
// streams, revocation, and per-deployment usage.
//
// Two workers: `wk` requires keys (AUTH_MODE=keys, ADMIN_TOKEN set), `wo` is open (the test
// default, no ADMIN_TOKEN). Each test makes its own keys (fresh secrets), so the key objects and
// their counters never carry over between tests.

import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { startFake, steps } from "./helpers/fake-openai.mjs";
import {
  startWorker,
  scenarioTable,
  chatOnce,
  chatStream,
  sseContent,
  errorShape,
  FAKE_SECRET,
  KV_BINDING,
  USER_MSG,
} from "./helpers/worker.mjs";

const ADMIN_TOKEN = "admin-secret-1";
const KEY_PREFIX = "gateway-key:";
/** Price of the test tables (fakeTable default), nano-USD per token. */
const IN_NANOS = 150n; // 0.15 USD / Mtok
const OUT_NANOS = 600n; // 0.6 USD / Mtok

let fake, wk, wo;
/** Every gateway-key secret a test made, to check that none leaks into a response. */
const secrets = new Set();

before(async () => {
  fake = await startFake();
  [wk, wo] = await Promise.all([
    startWorker({ bindings: { AUTH_MODE: "keys", ADMIN_TOKEN } }),
    startWorker(), // open mode, no ADMIN_TOKEN: the admin API is off
  ]);
});
after(async () => {
  await wk?.dispose();
  await wo?.dispose();
  await fake?.close();
});
beforeEach(() => fake.reset());

// ---------------------------------------------------------------------------------------------
// helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha256hex = (s) => createHash("sha256").update(s, "utf8").digest("hex");

/** Writes a key record straight to KV; returns {key, id}. */
async function putKey(w, record) {
  const key = `sk-test-${randomBytes(16).toString("hex")}`;
  secrets.add(key);
  const id = sha256hex(key);
  const kv = await w.mf.getKVNamespace(KV_BINDING);
  await kv.put(KEY_PREFIX + id, JSON.stringify(record));
  return { key, id };
}

/** Any admin API call; returns {res, status, json}. */
async function admin(w, method, p, { body, token = ADMIN_TOKEN, headers = {} } = {}) {
  const res = await w.fetch(`/admin/api/${p.replace(/^\//, "")}`, {
    method,
    headers: {
      ...(token != null ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {}
  return { res, status: res.status, text, json };
}

/** POST /admin/api/keys; returns {id, key, record}. */
async function createKey(w, fields) {
  const r = await admin(w, "POST", "keys", { body: fields });
  assert.equal(r.status, 201, `create key: ${r.text}`);
  secrets.add(r.json.key);
  return r.json;
}

/** GET /admin/api/keys/{id} → {id, record, state: {revoked, spend, usage}}. */
async function keyInfo(w, id) {
  const r = await admin(w, "GET", `keys/${id}`);
  assert.equal(r.status, 200, `key info: ${r.text}`);
  return r.json;
}

/** Polls `read` until `done(value)` holds or `timeoutMs` passes; returns the last value. */
async function poll(read, done, { timeoutMs = 3000, intervalMs = 40 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (done(v) || Date.now() >= deadline) return v;
    await sleep(intervalMs);
  }
}

/** The key's state once `done(state)` holds (settles run in the background via waitUntil). */
function settledKey(w, id, done) {
  return poll(async () => (await keyInfo(w, id)).state, done);
}

/** Exact decimal USD string → nano-USD (BigInt), no floats. */
function usdToNanos(s) {
  const m = /^(\d+)(?:\.(\d{1,9}))?$/.exec(String(s));
  assert.ok(m, `not a decimal USD amount: ${s}`);
  return BigInt(m[1]) * 1_000_000_000n + BigInt((m[2] ?? "").padEnd(9, "0"));
}

const auth = (key) => ({ authorization: `Bearer ${key}` });

/** Asserts an OpenAI-shaped error body of `status`, `code` (and `type`); returns the error. */
function assertError(r, status, code, type) {
  assert.equal(r.status, status, `status ${status}, got ${r.status}: ${r.text}`);
  const e = errorShape(r.json);
  assert.equal(e.code, code, r.text);
  if (type) assert.equal(e.type, type, r.text);
  return e;
}

/** POST /v1/messages (Anthropic ingress), raw. */
async function messagesOnce(w, body, headers = {}) {
  const res = await w.fetch("/v1/messages", {
    method: "POST",
    headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {}
  return { res, status: res.status, text, json };
}

/** One route `gw` over one fresh deployment `d` (unique scenario per test). */
function oneRoute(w, { route = "gw", dep = {}, routeExtra = {} } = {}) {
  return scenarioTable(w, fake, {
    deployments: { d: dep },
    routes: { [route]: { chain: ["d"], ...routeExtra } },
  });
}

const body = (extra = {}) => ({ model: "gw", messages: USER_MSG, ...extra });

// Budget arithmetic. Prompt "abcdefgh" = 8 chars → ceil(8/4) = 2 prompt tokens; max_tokens 100.
// Estimate at 0.15 / 0.6 USD per Mtok: 2 × 150 + 100 × 600 = 60 300 nano-USD, exactly.
const BUDGET_MSG = [{ role: "user", content: "abcdefgh" }];
const BUDGET_MAX_TOKENS = 100;
const E = 2n * IN_NANOS + 100n * OUT_NANOS; // 60_300n
const EXACT_USAGE = { prompt_tokens: 2, completion_tokens: 100, total_tokens: 102 };

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
// RPM / TPM

test("rpm 5: 20 concurrent requests -> exactly 5 answered, 15 x 429 rate_limit_exceeded with retry-after", async () => {
  const t = await oneRoute(wk);
  t.script("d", [{ ok: "within the rate", delayMs: 100 }]);
  const { key } = await putKey(wk, { name: "rpm-5", rpm: 5 });

  const results = await Promise.all(Array.from({ length: 20 }, () => chatOnce(wk, body(), { headers: auth(key) })));
  const ok = results.filter((r) => r.status === 200);
  const limited = results.filter((r) => r.status === 429);
  assert.equal(ok.length, 5, `statuses: ${results.map((r) => r.status).join(",")}`);
  assert.equal(limited.length, 15);

  for (const r of limited) {
    const e = assertError(r, 429, "rate_limit_exceeded", "rate_limit_error");
    assert.match(e.message, /requests per minute/);
    const ra = r.res.headers.get("retry-after");
    assert.match(ra ?? "", /^\d+$/, "retry-after is integer seconds");
    assert.ok(Number(ra) >= 1 && Number(ra) <= 60, `retry-after ${ra}`);
    assert.equal(r.res.headers.get("x-ratelimit-limit-requests"), "5");
    assert.equal(r.res.headers.get("x-ratelimit-remaining-requests"), "0");
    assert.match(r.res.headers.get("x-ratelimit-reset-requests") ?? "", /^\d+s$/);
  }
  for (const r of ok) {
    assert.equal(r.json.choices[0].message.content, "within the rate");
    assert.equal(r.res.headers.get("x-ratelimit-limit-requests"), "5");
  }
  // Admission is sequential on the key's object: the answers saw 4, 3, 2, 1, 0 requests left.
  const remaining = ok.map((r) => Number(r.res.headers.get("x-ratelimit-remaining-requests"))).sort();
  assert.deepEqual(remaining, [0, 1, 2, 3, 4]);
  assert.equal(t.hits("d"), 5, "refused requests never reached the provider");
});

test("tpm: the token window admits requests until their estimates no longer fit", async () => {
  const t = await oneRoute(wk);
  t.script("d", [{ ok: "tokens", usage: EXACT_USAGE }]);
  // Each request: 2 prompt + 100 output = 102 tokens. 250 holds two of them.
  const { key } = await putKey(wk, { name: "tpm-250", tpm: 250 });
  const req = body({ messages: BUDGET_MSG, max_tokens: BUDGET_MAX_TOKENS });
  const first = await chatOnce(wk, req, { headers: auth(key) });
  assert.equal(first.status, 200, first.text);
  assert.equal(first.res.headers.get("x-ratelimit-limit-tokens"), "250");
  assert.equal(first.res.headers.get("x-ratelimit-remaining-tokens"), "148");
  const second = await chatOnce(wk, req, { headers: auth(key) });
  assert.equal(second.status, 200, second.text);
  assert.equal(second.res.headers.get("x-ratelimit-remaining-tokens"), "46");
  const third = await chatOnce(wk, req, { headers: auth(key) });
  const e = assertError(third, 429, "rate_limit_exceeded", "rate_limit_error");
  assert.match(e.message, /tokens per minute/);
  assert.match(third.res.headers.get("retry-after") ?? "", /^\d+$/);
  assert.equal(third.res.headers.get("x-ratelimit-limit-tokens"), "250");
  // A smaller request still fits: 2 prompt + 40 output = 42 <= 46.
  const small = await chatOnce(wk, { ...req, max_tokens: 40 }, { headers: auth(key) });
  assert.equal(small.status, 200, small.text);
  assert.equal(t.hits("d"), 3);
});

// ---------------------------------------------------------------------------------------------
// budgets

test("day budget of 10 estimates: 50 concurrent requests -> exactly 10 answered; spend = budget = sum of costs", async () => {
  const t = await oneRoute(wk);
  // The provider bills exactly the estimate (2 prompt + 100 completion tokens).
  t.script("d", [{ ok: "a budgeted answer", usage: EXACT_USAGE, delayMs: 200 }]);
  const budget = 10n * E; // 603_000 nano-USD
  assert.equal(budget, 603_000n);
  const { id, key } = await createKey(wk, { name: "budget-10", budget_day_usd: "0.000603" });

  const req = body({ messages: BUDGET_MSG, max_tokens: BUDGET_MAX_TOKENS });
  const results = await Promise.all(Array.from({ length: 50 }, () => chatOnce(wk, req, { headers: auth(key) })));
  const ok = results.filter((r) => r.status === 200);
  const denied = results.filter((r) => r.status !== 200);
  assert.equal(ok.length, 10, `statuses: ${results.map((r) => r.status).join(",")}`);
  for (const r of denied) {
    const e = assertError(r, 429, "budget_exceeded", "insufficient_quota");
    assert.match(e.message, /daily budget/);
    const ra = r.res.headers.get("retry-after");
    assert.match(ra ?? "", /^\d+$/, "retry-after is integer seconds");
    assert.ok(Number(ra) >= 1 && Number(ra) <= 86_400, `retry-after ${ra} is until the end of the UTC day`);
  }
  let sum = 0n;
  for (const r of ok) {
    const c = r.res.headers.get("x-router-cost-usd");
    assert.equal(c, "0.0000603", "cost of 2 prompt + 100 completion tokens");
    sum += usdToNanos(c);
  }
  assert.equal(t.hits("d"), 10, "denied requests never reached the provider");

  const state = await settledKey(wk, id, (s) => s.spend.reservations === 0 && s.usage.total.requests === 10);
  assert.equal(state.spend.reservations, 0, `all reservations settled: ${JSON.stringify(state.spend)}`);
  assert.equal(state.spend.reserved_nanos, 0);
  assert.ok(BigInt(state.spend.day_nanos) <= budget, `spend ${state.spend.day_nanos} <= budget ${budget}`);
  assert.equal(BigInt(state.spend.day_nanos), sum, "spend = sum of x-router-cost-usd");
  assert.equal(BigInt(state.spend.day_nanos), budget);
  assert.equal(BigInt(state.spend.month_nanos), sum);
  assert.equal(state.usage.total.ok, 10);
  assert.equal(BigInt(state.usage.total.cost_nanos), sum);
  assert.equal(state.usage.total.input_tokens, 20);
  assert.equal(state.usage.total.output_tokens, 1000);
  // Stable: nothing more arrives later.
  await sleep(200);
  const again = (await keyInfo(wk, id)).state;
  assert.deepEqual(again.spend, state.spend);

  // The budget is spent: even a tiny request is refused now.
  const after = await chatOnce(wk, body({ messages: BUDGET_MSG, max_tokens: 1 }), { headers: auth(key) });
  assertError(after, 429, "budget_exceeded", "insufficient_quota");
});

test("month budget: the estimate is priced at the dearest deployment of the chain", async () => {
  const t = await scenarioTable(wk, fake, {
    deployments: {
      cheap: {}, // 0.15 / 0.6
      dear: { price: { input_per_mtok_usd: 0.3, output_per_mtok_usd: 1.2 } },
    },
    routes: { gw: { chain: ["cheap", "dear"] } },
  });
  t.script("cheap", [{ ok: "cheap answer", usage: EXACT_USAGE }]);
  // Estimate at the dear price: 2 × 300 + 100 × 1200 = 120 600 nano-USD; the budget holds one.
  // The cheap deployment answers and costs 60 300, which leaves 60 300: enough for a second
  // request estimated at the cheap price, not for one estimated at the dear price.
  const { key, id } = await putKey(wk, { name: "month-1", budget_month_usd: 0.0001206 });
  const req = body({ messages: BUDGET_MSG, max_tokens: BUDGET_MAX_TOKENS });
  const first = await chatOnce(wk, req, { headers: auth(key) });
  assert.equal(first.status, 200, first.text);
  assert.equal(first.res.headers.get("x-router-deployment"), "cheap");
  assert.equal(first.res.headers.get("x-router-cost-usd"), "0.0000603");
  const state = await settledKey(wk, id, (s) => s.spend.reservations === 0 && s.spend.month_nanos > 0);
  assert.equal(state.spend.month_nanos, 60_300);
  assert.equal(state.spend.reservations, 0);

  const second = await chatOnce(wk, req, { headers: auth(key) });
  const e = assertError(second, 429, "budget_exceeded", "insufficient_quota");
  assert.match(e.message, /monthly budget/);
  const ra = Number(second.res.headers.get("retry-after"));
  assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 31 * 86_400, `retry-after ${ra} is until next month`);
  assert.deepEqual(t.allHits(), { cheap: 1, dear: 0 });
});

// ---------------------------------------------------------------------------------------------
// usage of streams

test("streamed request: usage and cost are recorded on the key after the stream ends", async () => {
  const t = await oneRoute(wk);
  t.script("d", [{ ok: "one two three" }]);
  const { id, key } = await createKey(wk, { name: "streamer" }); // no limits: usage is still recorded
  const r = await chatStream(wk, body({ stream_options: { include_usage: true } }), { headers: auth(key) });
  assert.equal(r.status, 200);
  assert.equal(r.error, null);
  assert.equal(sseContent(r.events), "one two three");
  const usageEvent = r.events.find((e) => e.json?.usage);
  assert.ok(usageEvent, "usage chunk passed through");
  // The fake reports 4 + ceil(10/4) = 7 prompt tokens and 3 completion tokens.
  assert.equal(usageEvent.json.usage.prompt_tokens, 7);
  assert.equal(usageEvent.json.usage.completion_tokens, 3);
  const cost = 7n * IN_NANOS + 3n * OUT_NANOS; // 2850

  const state = await settledKey(wk, id, (s) => s.usage.total.requests >= 1);
  assert.equal(state.usage.total.requests, 1);
  assert.equal(state.usage.total.ok, 1);
  assert.equal(state.usage.total.errors, 0);
  assert.equal(state.usage.total.input_tokens, 7);
  assert.equal(state.usage.total.output_tokens, 3);
  assert.equal(BigInt(state.usage.total.cost_nanos), cost);
  assert.equal(BigInt(state.spend.day_nanos), cost, "spend of an unlimited key is counted too");
  assert.equal(t.hits("d"), 1);
});

test("stream cut after the first chunk (resume off): estimated non-zero cost recorded, counted as an error", async () => {
  const t = await oneRoute(wk, { routeExtra: { resume: "off" } });
  t.script("d", [{ ok: "alpha beta gamma" }, { ok: "alpha beta gamma delta", cutAfterChunks: 1 }]);
  const { id, key } = await createKey(wk, { name: "cut", rpm: 100, budget_day_usd: "1" }); // limited: a reservation is made

  const full = await chatStream(wk, body({ stream_options: { include_usage: true } }), { headers: auth(key) });
  assert.equal(full.status, 200);
  assert.equal(sseContent(full.events), "alpha beta gamma");
  const s1 = await settledKey(wk, id, (s) => s.usage.total.requests >= 1 && s.spend.reservations === 0);
  assert.equal(s1.usage.total.requests, 1);
  assert.ok(s1.usage.total.cost_nanos > 0);

  const cut = await chatStream(wk, body({ stream_options: { include_usage: true } }), { headers: auth(key) });
  assert.equal(cut.status, 200);
  assert.equal(sseContent(cut.events), "alpha", "only the first chunk was delivered");
  assert.ok(cut.events.some((e) => e.json?.error), "the stream ends with an in-band error");
  assert.ok(!cut.events.some((e) => e.data === "[DONE]"), "no [DONE] after the cut");
  assert.equal(t.hits("d"), 2, "not resumed");

  const s2 = await settledKey(wk, id, (s) => s.usage.total.requests >= 2 && s.spend.reservations === 0);
  assert.equal(s2.usage.total.requests, 2);
  assert.equal(s2.usage.total.ok, 1);
  assert.equal(s2.usage.total.errors, 1, "the cut request counts as an error");
  assert.ok(s2.usage.total.cost_nanos > s1.usage.total.cost_nanos, `cost grew: ${s1.usage.total.cost_nanos} -> ${s2.usage.total.cost_nanos}`);
  assert.ok(s2.usage.total.output_tokens > s1.usage.total.output_tokens, "delivered text was counted as output");
  assert.ok(s2.spend.day_nanos > s1.spend.day_nanos, "the cut request's estimated cost was spent");
  assert.equal(s2.spend.reservations, 0, "the reservation was settled, not left hanging");
  assert.equal(s2.spend.reserved_nanos, 0);
});

test(
  "client aborts a stream mid-way: the key's reservation is settled and the request recorded as an error",
  async () => {
    const t = await oneRoute(wk, { routeExtra: { resume: "off" } });
    const words = Array.from({ length: 20 }, (_, i) => `w${i}`).join(" ");
    t.script("d", [{ ok: words, chunkDelayMs: 100 }]);
    const { id, key } = await createKey(wk, { name: "aborter", rpm: 100, budget_day_usd: "1" });
    const ac = new AbortController();
    const res = await wk.chat(body({ stream: true, stream_options: { include_usage: true } }), {
      headers: auth(key),
      signal: ac.signal,
    });
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let text = "";
    while (!text.includes("w2")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
    }
    ac.abort(); // the client goes away after a few chunks
    const s = await settledKey(wk, id, (s) => s.spend.reservations === 0 && s.usage.total.requests >= 1);
    assert.equal(s.spend.reservations, 0, `reservation left hanging: ${JSON.stringify(s.spend)}`);
    assert.equal(s.spend.reserved_nanos, 0);
    assert.equal(s.usage.total.requests, 1, "the aborted request is recorded");
    assert.equal(s.usage.total.errors, 1, "as an error (client_disconnected)");
  },
);

test("a budgeted key's requests without max_tokens are capped at what was reserved: long answers cannot overshoot the budget", async () => {
  for (const stream of [false, true]) {
    // estimated_output_tokens 20: each request reserves 2 prompt + 20 output tokens.
    const t = await scenarioTable(wk, fake, {
      deployments: { d: {} },
      routes: { gw: { chain: ["d"] } },
      defaults: { estimated_output_tokens: 20 },
    });
    const long = Array.from({ length: 200 }, (_, i) => `w${i}`).join(" ");
    t.script("d", [{ ok: long, honourMaxTokens: true, delayMs: 100 }]);
    const reserved = 2n * IN_NANOS + 20n * OUT_NANOS; // 12_300 nano-USD
    const budget = 5n * reserved;
    const { id, key } = await createKey(wk, { name: `capped-${stream}`, budget_day_usd: (Number(budget) / 1e9).toFixed(9) });
    const req = body({ messages: BUDGET_MSG, stream, ...(stream ? { stream_options: { include_usage: true } } : {}) });
    const send = () => (stream ? chatStream(wk, req, { headers: auth(key) }) : chatOnce(wk, req, { headers: auth(key) }));
    const results = await Promise.all(Array.from({ length: 10 }, send));
    const ok = results.filter((r) => r.status === 200);
    assert.equal(ok.length, 5, `statuses: ${results.map((r) => r.status).join(",")}`);
    for (const up of t.requests("d")) assert.equal(up.body.max_tokens, 20, "the upstream was asked for at most the reserved output");
    const state = await settledKey(wk, id, (s) => s.spend.reservations === 0 && s.usage.total.requests === 10);
    assert.equal(state.usage.total.output_tokens, 5 * 20, "each answer stopped at the reserved 20 tokens");
    // The prompt is estimated at 4 characters per token (2) where this fake counts 6: that
    // estimate's error (4 prompt tokens a request) is the only overshoot left.
    const slack = 5n * 4n * IN_NANOS;
    assert.ok(BigInt(state.spend.day_nanos) <= budget + slack, `spend ${state.spend.day_nanos} <= budget ${budget} + ${slack}`);
  }
});

test(
  "a budget written as a small JSON number (0.000009 USD) is read exactly",
  async () => {
    const t = await oneRoute(wk);
    t.script("d", [{ ok: "tiny", usage: { prompt_tokens: 2, completion_tokens: 10, total_tokens: 12 } }]);
    // Raw JSON text, exactly as a client would send it (no exponent).
    const r = await admin(wk, "POST", "keys", { body: '{"name":"tiny-budget","budget_day_usd":0.000009}' });
    assert.equal(r.status, 201, r.text);
    secrets.add(r.json.key);
    // One request: 2 prompt + 10 output tokens = 300 + 6000 = 6300 nano-USD; 9000 holds one.
    const req = body({ messages: BUDGET_MSG, max_tokens: 10 });
    const first = await chatOnce(wk, req, { headers: auth(r.json.key) });
    assert.equal(first.status, 200, first.text);
    await settledKey(wk, r.json.id, (s) => s.spend.reservations === 0 && s.spend.day_nanos > 0);
    assertError(await chatOnce(wk, req, { headers: auth(r.json.key) }), 429, "budget_exceeded");
  },
);

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
