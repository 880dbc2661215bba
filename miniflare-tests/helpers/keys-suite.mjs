// Shared by keys.test.mjs and keys-limits.test.mjs (gateway keys): the fake and two workers,
// `wk` requiring keys (AUTH_MODE=keys, ADMIN_TOKEN set) and `wo` open (the test default, no
// ADMIN_TOKEN); admin API calls, keys written to KV or made through the API, their settled
// state, and the budget arithmetic. `secrets` holds every gateway-key secret a file's tests made.

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { startFake } from "./fake-openai.mjs";
import { scenarioTable, errorShape, KV_BINDING, USER_MSG, answerOf } from "./worker.mjs";
export { messagesOnce } from "./worker.mjs";
import { useGateway } from "./harness.mjs";

export const ADMIN_TOKEN = "admin-secret-1";
export const KEY_PREFIX = "gateway-key:";
/** Price of the test tables (fakeTable default), nano-USD per token. */
export const IN_NANOS = 150n; // 0.15 USD / Mtok
export const OUT_NANOS = 600n; // 0.6 USD / Mtok

export let fake, wk, wo;
/** Every gateway-key secret a test made, to check that none leaks into a response. */
export const secrets = new Set();

export function useKeysGateway() {
  useGateway(
    {
      fakes: { fake: startFake },
      workers: {
        wk: { bindings: { AUTH_MODE: "keys", ADMIN_TOKEN } },
        wo: {}, // open mode, no ADMIN_TOKEN: the admin API is off
      },
    },
    (g) => ({ fake, wk, wo } = g),
  );
}

// ---------------------------------------------------------------------------------------------
// helpers

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const sha256hex = (s) => createHash("sha256").update(s, "utf8").digest("hex");

/** Writes a key record straight to KV; returns {key, id}. */
export async function putKey(w, record) {
  const key = `sk-test-${randomBytes(16).toString("hex")}`;
  secrets.add(key);
  const id = sha256hex(key);
  const kv = await w.mf.getKVNamespace(KV_BINDING);
  await kv.put(KEY_PREFIX + id, JSON.stringify(record));
  return { key, id };
}

/** Any admin API call; returns {res, status, json}. */
export async function admin(w, method, p, { body, token = ADMIN_TOKEN, headers = {} } = {}) {
  const res = await w.fetch(`/admin/api/${p.replace(/^\//, "")}`, {
    method,
    headers: {
      ...(token != null ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
  });
  return answerOf(res);
}

/** POST /admin/api/keys; returns {id, key, record}. */
export async function createKey(w, fields) {
  const r = await admin(w, "POST", "keys", { body: fields });
  assert.equal(r.status, 201, `create key: ${r.text}`);
  secrets.add(r.json.key);
  return r.json;
}

/** GET /admin/api/keys/{id} → {id, record, state: {revoked, spend, usage}}. */
export async function keyInfo(w, id) {
  const r = await admin(w, "GET", `keys/${id}`);
  assert.equal(r.status, 200, `key info: ${r.text}`);
  return r.json;
}

/** Polls `read` until `done(value)` holds or `timeoutMs` passes; returns the last value. */
export async function poll(read, done, { timeoutMs = 3000, intervalMs = 40 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (done(v) || Date.now() >= deadline) return v;
    await sleep(intervalMs);
  }
}

/** The key's state once `done(state)` holds (settles run in the background via waitUntil). */
export function settledKey(w, id, done) {
  return poll(async () => (await keyInfo(w, id)).state, done);
}

/** Exact decimal USD string → nano-USD (BigInt), no floats. */
export function usdToNanos(s) {
  const m = /^(\d+)(?:\.(\d{1,9}))?$/.exec(String(s));
  assert.ok(m, `not a decimal USD amount: ${s}`);
  return BigInt(m[1]) * 1_000_000_000n + BigInt((m[2] ?? "").padEnd(9, "0"));
}

export const auth = (key) => ({ authorization: `Bearer ${key}` });

/** Asserts an OpenAI-shaped error body of `status`, `code` (and `type`); returns the error. */
export function assertError(r, status, code, type) {
  assert.equal(r.status, status, `status ${status}, got ${r.status}: ${r.text}`);
  const e = errorShape(r.json);
  assert.equal(e.code, code, r.text);
  if (type) assert.equal(e.type, type, r.text);
  return e;
}

/** One route `gw` over one fresh deployment `d` (unique scenario per test). */
export function oneRoute(w, { route = "gw", dep = {}, routeExtra = {} } = {}) {
  return scenarioTable(w, fake, {
    deployments: { d: dep },
    routes: { [route]: { chain: ["d"], ...routeExtra } },
  });
}

export const body = (extra = {}) => ({ model: "gw", messages: USER_MSG, ...extra });

// Budget arithmetic. Prompt "abcdefgh" = 8 chars → ceil(8/4) = 2 prompt tokens; max_tokens 100.
// Estimate at 0.15 / 0.6 USD per Mtok: 2 × 150 + 100 × 600 = 60 300 nano-USD, exactly.
export const BUDGET_MSG = [{ role: "user", content: "abcdefgh" }];
export const BUDGET_MAX_TOKENS = 100;
export const E = 2n * IN_NANOS + 100n * OUT_NANOS; // 60_300n
export const EXACT_USAGE = { prompt_tokens: 2, completion_tokens: 100, total_tokens: 102 };
