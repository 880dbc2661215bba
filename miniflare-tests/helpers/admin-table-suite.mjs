// Shared by admin-table.test.mjs and admin-table-log.test.mjs (the routing-table admin API):
// tables over the mock provider, a worker per test, admin API calls and `PUT /table`, the
// serde-style pretty printing of a table, and which deployment serves a route.

import assert from "node:assert/strict";
import { startWorker, chatOnce, USER_MSG } from "./worker.mjs";

export const ADMIN = "admin-token-table-tests";
export const auth = { authorization: `Bearer ${ADMIN}` };

/** The embedded default table's shape, with `chat` going to the given chain. */
export function table(chain, extra = {}) {
  return {
    version: 1,
    providers: { mock: { kind: "mock" } },
    deployments: {
      small: { provider: "mock", model: "mock-small-1", context_window: 16000 },
      large: { provider: "mock", model: "mock-large-1", context_window: 128000 },
    },
    routes: { chat: { chain }, ...extra },
  };
}

export async function withWorker(fn, { table: t, bindings = {} } = {}) {
  const w = await startWorker({ table: t, bindings: { ADMIN_TOKEN: ADMIN, ...bindings } });
  try {
    await fn(w);
  } finally {
    await w.dispose();
  }
}

export async function api(w, method, path, { body, headers = {}, raw } = {}) {
  const init = { method, headers: { ...auth, ...headers } };
  if (raw !== undefined) init.body = raw;
  else if (body !== undefined) init.body = JSON.stringify(body);
  const res = await w.fetch(`/admin/api/${path}`, init);
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, json, text };
}

export const put = (w, t, etag, message) =>
  api(w, "PUT", "table", {
    raw: typeof t === "string" ? t : JSON.stringify(t, null, 2),
    headers: { ...(etag ? { "if-match": etag } : {}), ...(message ? { "x-change-message": message } : {}) },
  });

/** Lines of `v` pretty-printed with sorted keys, as serde_json prints them. */
export function pretty(v) {
  const sorted = (x) =>
    Array.isArray(x) ? x.map(sorted) : x && typeof x === "object" ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, sorted(x[k])])) : x;
  return JSON.stringify(sorted(v), null, 2).split("\n");
}

export async function servedBy(w, route = "chat") {
  const r = await chatOnce(w, { model: route, messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  return r.res.headers.get("x-router-deployment");
}
