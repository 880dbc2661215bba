// Shared by routing.test.mjs and routing-strategies.test.mjs: the fake and the worker (admin
// token "t"), per-test tables with fresh scenario names, the request log line, raw
// /v1/messages requests, batches of chat requests and the admin explain call.

import assert from "node:assert/strict";
import { startFake } from "./fake-openai.mjs";
import { fakeTable, chatOnce, answerOf } from "./worker.mjs";
import { useGateway } from "./harness.mjs";

export const ADMIN_TOKEN = "t";
export let fake, w;

export function useRoutingGateway() {
  useGateway({ fakes: { fake: startFake }, worker: { bindings: { ADMIN_TOKEN } } }, (g) => ({ fake, w } = g));
}

// ---------------------------------------------------------------- helpers

let seq = 0;
/**
 * Writes a table whose deployments are fake scenarios named `rt<N>-<deployment>` (unique per
 * call, so a late request of an earlier test is never counted). Deployment entries may add
 * `tags` and `price` ({in, out} USD per million tokens); `tasks` becomes the top-level block.
 * Checks through /healthz that the worker adopted the table (a rejected table would leave the
 * previous one serving and make every assertion below meaningless).
 */
export async function setup({ deployments, routes, tasks }) {
  const prefix = `rt${++seq}`;
  const deps = {};
  for (const [name, d] of Object.entries(deployments)) {
    deps[name] = {
      scenario: `${prefix}-${name}`,
      ...(d.price ? { price: { input_per_mtok_usd: d.price.in, output_per_mtok_usd: d.price.out } } : {}),
    };
  }
  const table = fakeTable(fake, { deployments: deps, routes });
  for (const [name, d] of Object.entries(deployments)) if (d.tags) table.deployments[name].tags = d.tags;
  if (tasks) table.tasks = tasks;
  await w.putTable(table);
  const hz = await w.fetch("/healthz");
  const hzJson = await hz.json();
  assert.equal(hzJson.config.error, null, `table rejected: ${hzJson.config.error}`);
  assert.equal(hzJson.config.source, "kv");
  for (const name of Object.keys(deployments)) fake.script(`${prefix}-${name}`, [{ ok: `answer from ${name}` }]);
  const scenario = (dep) => `${prefix}-${dep}`;
  return {
    table,
    scenario,
    script: (dep, list) => fake.script(scenario(dep), list),
    hits: (dep) => fake.hits(scenario(dep)),
    allHits: () => Object.fromEntries(Object.keys(deployments).map((d) => [d, fake.hits(scenario(d))])),
  };
}

/** Which deployments' fakes were called between two allHits() snapshots: {dep: n}. */
export function delta(before, after) {
  const out = {};
  for (const [d, n] of Object.entries(after)) if (n !== before[d]) out[d] = n - before[d];
  return out;
}

export const h = (r, name) => r.res.headers.get(name);

/** The per-request JSON log line (it is written after the answer; wait briefly). */
export async function logLine(res, timeoutMs = 3000) {
  const id = res.headers.get("x-router-request-id");
  assert.ok(id, "x-router-request-id header");
  const t0 = Date.now();
  for (;;) {
    for (const line of w.logs.join("").split("\n")) {
      const i = line.indexOf("{");
      if (i < 0 || !line.includes(id)) continue;
      try {
        const j = JSON.parse(line.slice(i));
        if (j.msg === "request" && j.request_id === id) return j;
      } catch {}
    }
    if (Date.now() - t0 > timeoutMs) return null;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** POST /v1/messages (Anthropic format). */
export async function messagesOnce(body, headers = {}) {
  const res = await w.fetch("/v1/messages", {
    method: "POST",
    headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "unused", ...headers },
    body: JSON.stringify(body),
  });
  return answerOf(res);
}

/** `n` chat requests, `parallel` at a time. */
export async function many(n, makeBody, { headers = {}, parallel = 10 } = {}) {
  const out = [];
  for (let i = 0; i < n; i += parallel) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + parallel); j++) batch.push(chatOnce(w, makeBody(j), { headers }));
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

export function explainReq(payload, token = ADMIN_TOKEN) {
  return w.fetch("/admin/api/explain", {
    method: "POST",
    headers: { "content-type": "application/json", ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(payload),
  });
}
