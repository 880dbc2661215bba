// Per-route statistics and money (#17 part 4, #15 part 6): after real requests through the
// gateway with a gateway key, GET /admin/api/routes reports each route's requests, fallbacks,
// cost, prompt-cache savings and response-cache hits, with each tried deployment's attempts,
// failover rate and latency; GET /admin/api/money and /admin/api/keys/{id} report the key's
// spend, savings and cache hits and its budget use. All of it rides on the reports the gateway
// already sends after each request (no extra object call on the request path), so the test
// polls the admin API until the batches have landed.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after } from "node:test";
import { startFake, steps } from "./helpers/fake-openai.mjs";
import { startWebhook } from "./helpers/fake-webhook.mjs";
import { scenarioTable, chatOnce, KV_BINDING } from "./helpers/worker.mjs";
import { useGateway } from "./helpers/harness.mjs";

const ADMIN = "admin-secret-route-stats";
const hook = await startWebhook();
let fake, w;

useGateway(
  { fakes: { fake: startFake }, worker: { bindings: { AUTH_MODE: "keys", ADMIN_TOKEN: ADMIN, ALERT_WEBHOOK_SECRET: hook.url } } },
  (g) => ({ fake, w } = g),
);
after(() => hook.close());

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const MSGS = [{ role: "user", content: "Say hello." }];

async function admin(path) {
  const res = await w.fetch(`/admin/api/${path}`, { headers: { authorization: `Bearer ${ADMIN}` } });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text);
}

/** Polls `read()` until `ok(value)` (the reports are batched for up to a second). */
async function until(read, ok, what) {
  let last;
  for (let i = 0; i < 60; i++) {
    last = await read();
    if (ok(last)) return last;
    await sleep(100);
  }
  assert.fail(`${what} never came: ${JSON.stringify(last)}`);
}

/** "0.000001234" → 1234n nano-USD, exactly. */
function nanos(usd) {
  const [whole, frac = ""] = String(usd).split(".");
  return BigInt(whole) * 1_000_000_000n + BigInt((frac + "000000000").slice(0, 9));
}

async function putKey(record) {
  const secret = `sk-test-${randomBytes(16).toString("hex")}`;
  const id = createHash("sha256").update(secret, "utf8").digest("hex");
  const kv = await w.mf.getKVNamespace(KV_BINDING);
  await kv.put(`gateway-key:${id}`, JSON.stringify({ created_ms: Date.now(), ...record }));
  return { id, headers: { authorization: `Bearer ${secret}` } };
}

test("routes and key money: fallbacks, failover, latency, cost, prompt-cache savings and response-cache hits, per route and per key", async () => {
  // Prices: input $1, cached input $0.10, output $2 per million tokens.
  const price = { input_per_mtok_usd: 1, output_per_mtok_usd: 2, cached_input_per_mtok_usd: "0.10" };
  const t = await scenarioTable(w, fake, {
    deployments: { primary: {}, secondary: {}, solo: { price } },
    routes: {
      failing: { chain: ["primary", "secondary"] },
      cached: { chain: ["solo"], cache: { ttl_s: 60 } },
      idle: { chain: ["secondary"] },
    },
  });
  // The first request to `failing` meets an auth error on primary and falls back to secondary;
  // the second is answered by primary.
  t.script("primary", [steps.r401(), steps.ok("From primary")]);
  t.script("secondary", [steps.ok("From secondary")]);
  // 1,000 prompt tokens of which 800 read from the provider's cache, 10 output tokens:
  // cost 200 × $1 + 800 × $0.10 + 10 × $2 = $0.0003; savings 800 × ($1 − $0.10) = $0.00072.
  t.script("solo", [steps.ok("Cached hello", { usage: { prompt_tokens: 1000, completion_tokens: 10, total_tokens: 1010, prompt_tokens_details: { cached_tokens: 800 } } })]);
  const key = await putKey({ name: "money-key", budget_day_usd: "0.01", budget_month_usd: "1" });

  let costNanos = 0n;
  const send = async (body) => {
    const r = await chatOnce(w, body, { headers: key.headers });
    assert.equal(r.status, 200, r.text);
    costNanos += nanos(r.res.headers.get("x-router-cost-usd"));
    return r;
  };
  const a = await send({ model: "failing", messages: MSGS });
  assert.equal(a.res.headers.get("x-router-deployment"), "secondary");
  const b = await send({ model: "failing", messages: MSGS });
  assert.equal(b.res.headers.get("x-router-deployment"), "primary");
  const failingCost = costNanos;
  assert.ok(failingCost > 0n);

  // The cached route: misses until the stored answer is found (the store runs after the answer).
  let hit;
  let cachedRequests = 0;
  for (let i = 0; i < 20 && !hit; i++) {
    const r = await send({ model: "cached", temperature: 0, messages: MSGS });
    cachedRequests++;
    if (r.res.headers.get("x-router-cache") === "hit") hit = r;
    else await sleep(50);
  }
  assert.ok(hit, "a cache hit");
  assert.equal(hit.res.headers.get("x-router-cost-usd"), "0");
  const upstream = t.hits("solo");
  assert.equal(upstream, cachedRequests - 1, "every request but the hit reached the provider");

  const routes = await until(
    () => admin("routes?hours=6"),
    (v) => v.routes?.find((r) => r.route === "cached")?.requests === cachedRequests && v.routes?.find((r) => r.route === "failing")?.requests === 2,
    "the route figures",
  );
  assert.equal(routes.hours, 6);
  assert.deepEqual(routes.unavailable, []);
  const failing = routes.routes.find((r) => r.route === "failing");
  assert.equal(failing.fallbacks, 1);
  assert.equal(failing.fallback_rate_bps, 5_000);
  assert.equal(failing.failed, 0);
  assert.equal(failing.cache_hits, 0);
  assert.equal(BigInt(failing.cost_nanos), failingCost, "the route's cost is what its answers said they cost");
  const byDep = Object.fromEntries(failing.deployments.map((d) => [d.deployment, d]));
  assert.equal(byDep.primary.attempts, 2);
  assert.equal(byDep.primary.errors, 1);
  assert.equal(byDep.primary.failover_rate_bps, 5_000, "one of primary's two attempts failed over");
  assert.equal(byDep.primary.provider, "p-primary");
  assert.equal(byDep.secondary.attempts, 1);
  assert.equal(byDep.secondary.failover_rate_bps, 0);
  assert.ok(byDep.secondary.latency_p95_ms > 0 && byDep.secondary.latency_p95_ms <= 10_000, JSON.stringify(byDep.secondary));

  const cached = routes.routes.find((r) => r.route === "cached");
  assert.equal(cached.cache_hits, 1);
  assert.equal(cached.fallbacks, 0);
  assert.equal(cached.cached_tokens, 800 * upstream);
  assert.equal(cached.savings_nanos, 720_000 * upstream);
  assert.equal(cached.savings_usd, String(720_000 * upstream / 1e9));
  assert.equal(cached.cost_nanos, 300_000 * upstream, "a cache hit costs nothing");
  assert.equal(cached.deployments.length, 1);
  assert.equal(cached.deployments[0].attempts, upstream, "a hit is no attempt");

  const idle = routes.routes.find((r) => r.route === "idle");
  assert.equal(idle.requests, 0, "a table route without traffic is listed with zeros");
  const primaryProvider = routes.providers.find((p) => p.provider === "p-primary");
  assert.equal(primaryProvider.failover_rate_bps, 5_000);

  // The key: every request spent through it, the savings and the hit; its day budget use.
  const total = costNanos;
  assert.equal(total, failingCost + BigInt(300_000 * upstream));
  const money = await until(
    () => admin("money?hours=24"),
    (v) => v.keys?.find((k) => k.id === key.id)?.money?.requests === 2 + cachedRequests,
    "the key's money figures",
  );
  const row = money.keys.find((k) => k.id === key.id);
  assert.equal(money.hours, 24);
  assert.equal(row.name, "money-key");
  assert.equal(row.money.cache_hits, 1);
  assert.equal(row.money.savings_nanos, 720_000 * upstream);
  assert.equal(BigInt(row.money.cost_nanos), total);
  assert.equal(BigInt(row.budget.day.spent_nanos), total);
  assert.equal(row.budget.day.budget_usd, "0.01");
  assert.equal(row.budget.day.use_bps, Number((total * 10_000n) / 10_000_000n));
  assert.equal(row.budget.month.budget_nanos, 1_000_000_000);
  const one = await admin(`keys/${key.id}`);
  assert.equal(one.state.money.cache_hits, 1);
  assert.equal(one.state.money.hours, 24);
});

test("response-cache hits count as requests that did not fall back, for the route's figures and its fallback-ratio alert", async () => {
  const t = await scenarioTable(w, fake, {
    deployments: { only: {} },
    routes: { hits: { chain: ["only"], cache: { ttl_s: 60 } } },
  });
  t.table.alerts = { webhook_url_secret: "ALERT_WEBHOOK_SECRET", fallback_ratio: 0.2 };
  await w.putTable(t.table);
  t.script("only", [steps.ok("Cached answer")]);
  const key = await putKey({ name: "hits-key" });
  // 12 requests (the alert needs 10), all but the first few answered from the cache.
  for (let i = 0; i < 12; i++) {
    const r = await chatOnce(w, { model: "hits", temperature: 0, messages: MSGS }, { headers: key.headers });
    assert.equal(r.status, 200, r.text);
    await sleep(30);
  }
  const hits = 12 - t.hits("only");
  assert.ok(hits >= 8, `${hits} cache hits`);
  const routes = await until(
    () => admin("routes?hours=1"),
    (v) => v.routes?.find((r) => r.route === "hits")?.requests === 12,
    "the route figures",
  );
  const route = routes.routes.find((r) => r.route === "hits");
  assert.equal(route.cache_hits, hits);
  assert.equal(route.fallbacks, 0);
  assert.equal(route.failed, 0);
  // A hit names no deployment, yet nothing fell back: no fallback-ratio alert.
  await sleep(2000);
  assert.deepEqual(hook.received().filter((a) => a.body?.route === "hits"), []);
});

test("the window is the asked hours (1 to 48; a value that is not a number reads as 24), key money pages by offset, and the admin token is required", async () => {
  const routes = await admin("routes?hours=1");
  assert.equal(routes.hours, 1);
  const fallback = await admin("routes?hours=banana");
  assert.equal(fallback.hours, 24);
  const capped = await admin("routes?hours=500");
  assert.equal(capped.hours, 48);
  // Key money pages: this file made two keys, newest first.
  const all = await admin("money");
  assert.equal(all.total, 2);
  assert.equal(all.next_offset, null);
  assert.deepEqual(all.keys.map((k) => k.name), ["hits-key", "money-key"]);
  const second = await admin("money?offset=1");
  assert.deepEqual(second.keys.map((k) => k.name), ["money-key"]);
  const res = await w.fetch("/admin/api/routes");
  assert.equal(res.status, 401, "the admin token is required");
  await res.text();
});
