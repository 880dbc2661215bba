// Issue 18, item 11: the per-request subrequest budget (`limits.subrequests`, default 50 =
// Workers Free). Cloudflare fails every subrequest past the limit (fetch throws); the gateway
// would take that for the upstream's connection failure and charge it to a healthy deployment's
// breaker. workerd does not enforce the limit, so the fake stands in for the platform:
// `fake.platformLimit(n)` refuses (resets) every upstream request after the n-th, as the
// platform would even if the gateway made no other subrequest.
//
// Cost model (src/resilience/subrequests.rs): 6 reserved per request; 1 per breaker gate (+1
// when it may ask for a probe lease: breaker enabled); 2 per deployment with an attempt (its
// reports); 1 per upstream request. Numbers in the comments below follow from it.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startFake, steps } from "./helpers/fake-openai.mjs";
import { fakeTable, chatOnce, chatStream, errorShape, sseContent, USER_MSG } from "./helpers/worker.mjs";
import { useGateway } from "./helpers/harness.mjs";

const ADMIN = "admin-token-for-budget-tests";
let fake, w;
let seq = 0;

useGateway({ fakes: { fake: startFake }, worker: { bindings: { ADMIN_TOKEN: ADMIN } } }, (g) => ({ fake, w } = g));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Breakers on, never tripping: failures are counted (and visible) but nothing is skipped. */
const COUNTING_BREAKER = { enabled: true, consecutive_failures: 0, failure_rate_bps: 0 };

/**
 * A table over the fake with deployment names unique to this call (each deployment's object,
 * and so its breaker, is new). `deployments` maps a short name to fakeTable's options; the
 * route is `chain` in that order. Returns helpers keyed by the short names.
 */
async function budgetTable({ deployments, route = {}, limits, breaker = COUNTING_BREAKER, requestTimeoutMs }) {
  const prefix = `sb${++seq}`;
  const full = (d) => `${prefix}-${d}`;
  const deps = {};
  for (const [d, opts] of Object.entries(deployments)) deps[full(d)] = { ...opts, scenario: full(d) };
  const table = fakeTable(fake, {
    deployments: deps,
    routes: { [prefix]: { chain: Object.keys(deployments).map(full), ...route } },
    defaults: { breaker, ...(requestTimeoutMs ? { request_timeout_ms: requestTimeoutMs } : {}) },
  });
  if (limits !== undefined) table.limits = limits;
  await w.putTable(table);
  return {
    model: prefix,
    name: full,
    script: (d, s) => fake.script(full(d), s),
    hits: (d) => fake.hits(full(d)),
    total: () => Object.keys(deployments).reduce((n, d) => n + fake.hits(full(d)), 0),
  };
}

async function admin(p) {
  const res = await fetch(w.url + p.replace(/^\//, ""), {
    headers: { authorization: `Bearer ${ADMIN}` },
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text);
}

/** The breaker as the deployment's Durable Object holds it. */
async function breakerOf(name) {
  return (await admin(`/admin/api/deployments/${encodeURIComponent(name)}`)).state.breaker;
}

/** Reports go out after the response (waitUntil): wait until `name` has counted `n` failures. */
async function untilFailures(name, n, ms = 4000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await breakerOf(name);
    if (last.consecutive_failures >= n) return last;
    await sleep(25);
  }
  assert.fail(`${name}: ${n} failure(s) never arrived: ${JSON.stringify(last)}`);
}

/** The JSON log line of one request (by x-router-request-id). */
async function logOf(requestId) {
  for (let i = 0; i < 100; i++) {
    const line = w.logs.join("").split("\n").find((l) => l.includes(`"request_id":"${requestId}"`));
    if (line) return JSON.parse(line.slice(line.indexOf("{")));
    await sleep(20);
  }
  throw new Error(`no log line for ${requestId}`);
}

test("default budget (Workers Free, 50): a long failing chain stops inside it; the healthy deployment past it is never called and its breaker charged nothing", async () => {
  // 7 deployments with 2 attempts, then 12 with 3, make exactly 50 upstream requests (the
  // chain's longest is 20); the platform refuses the 51st, which would go to `healthy`. No
  // `limits` in the table. (Pacing, at most two attempts a second on a deployment, makes every
  // third attempt wait: the unfixed gateway needs ≈ 13 s to get there.)
  const deployments = {};
  for (let i = 0; i < 19; i++) deployments[`f${i}`] = { retry: { max_attempts: i < 7 ? 2 : 3 } };
  deployments.healthy = {};
  const t = await budgetTable({ deployments, requestTimeoutMs: 30_000 });
  for (let i = 0; i < 19; i++) t.script(`f${i}`, [steps.r500()]);
  t.script("healthy", [steps.ok("from healthy")]);
  fake.platformLimit(50);

  const r = await chatOnce(w, { model: t.model, messages: USER_MSG });
  // 6 + 7 × (gate 1 + reports 2 + 2 attempts) = 41; f7: 1 + 2 + 3 = 47; f8 needs up to 5.
  assert.equal(t.total(), 17, "upstream requests stop at the budget");
  assert.equal(fake.refused(), 0, "the platform refused nothing");
  assert.equal(t.hits("healthy"), 0);
  assert.equal(r.status, 503, r.text);
  const e = errorShape(r.json);
  assert.equal(e.type, "service_unavailable");
  assert.equal(e.code, "subrequest_budget_exhausted");
  assert.match(e.message, /limits\.subrequests = 50/);
  assert.match(e.message, /stopped after 17 upstream attempt\(s\)/);
  assert.match(r.res.headers.get("x-router-fallback-reasons") ?? "", new RegExp(`${t.name("f8")}:skipped_subrequest_budget`));

  // What the failures cost is charged where it happened; the stop is charged nowhere.
  await untilFailures(t.name("f7"), 3);
  assert.equal((await breakerOf(t.name("f0"))).consecutive_failures, 2);
  for (const d of ["f8", "f18", "healthy"]) {
    const b = await breakerOf(t.name(d));
    assert.equal(b.consecutive_failures, 0, `${d}: ${JSON.stringify(b)}`);
    assert.deepEqual(b.window?.buckets ?? [], [], `${d}: no outcome in its window: ${JSON.stringify(b)}`);
  }

  const log = await logOf(r.res.headers.get("x-router-request-id"));
  assert.equal(log.subrequests, 47);
  assert.ok(log.subrequests <= 50);
  const real = log.do_calls.waited + log.do_calls.background + t.total();
  assert.ok(real <= 50, `object calls and upstream requests: ${real}`);
});

test("limits.subrequests = 20: streamed or not, OpenAI or Anthropic client, the stop is a clean 503 naming the limit", async () => {
  const deployments = {};
  for (let i = 0; i < 10; i++) deployments[`f${i}`] = {};
  deployments.healthy = {};
  const t = await budgetTable({ deployments, limits: { subrequests: 20 } });
  for (let i = 0; i < 10; i++) t.script(`f${i}`, [steps.r500()]);
  t.script("healthy", [steps.ok("from healthy")]);
  // 6 + 2 deployments × (gate 1 + reports 2 + 2 attempts) = 16; the third needs up to 5.
  for (const kind of ["json", "stream", "messages"]) {
    fake.platformLimit(20);
    let status, body;
    if (kind === "json") {
      const r = await chatOnce(w, { model: t.model, messages: USER_MSG });
      ({ status, json: body } = r);
    } else if (kind === "stream") {
      const r = await chatStream(w, { model: t.model, messages: USER_MSG });
      status = r.status;
      body = JSON.parse(r.text);
      assert.equal(sseContent(r.events), "");
    } else {
      const res = await w.fetch("/v1/messages", {
        method: "POST",
        headers: { "content-type": "application/json", "anthropic-version": "2023-06-01" },
        body: JSON.stringify({ model: t.model, max_tokens: 50, messages: USER_MSG }),
      });
      status = res.status;
      body = JSON.parse(await res.text());
    }
    assert.equal(status, 503, `${kind}: ${JSON.stringify(body)}`);
    if (kind === "messages") {
      assert.equal(body.type, "error");
      assert.equal(body.error.type, "api_error");
      assert.match(body.error.message, /limits\.subrequests = 20/);
    } else {
      const e = errorShape(body);
      assert.equal(e.code, "subrequest_budget_exhausted", kind);
      assert.match(e.message, /limits\.subrequests = 20/);
    }
    assert.equal(fake.refused(), 0, kind);
  }
  // Three requests, 2 + 2 attempts each on f0 and f1; nothing past them.
  assert.equal(t.hits("f0"), 6);
  assert.equal(t.hits("f1"), 6);
  assert.equal(t.total(), 12);
  await untilFailures(t.name("f1"), 6);
  for (const d of ["f2", "healthy"]) assert.equal((await breakerOf(t.name(d))).consecutive_failures, 0, d);
});

test("after the commit: a resume the budget cannot pay for is not tried; the stream ends with the in-band error naming the limit", async () => {
  const FULL = "one two three four five six";
  const t = await budgetTable({
    deployments: { a: {}, b: {} },
    route: { resume: "replay", max_resumes: 2 },
    limits: { subrequests: 12 },
    breaker: { enabled: false },
  });
  // 6 + gate 1 + (1 + reports 2) = 10 at the commit; resuming on `a` costs 2 (12); on `b`
  // it would cost 4 more.
  t.script("a", [{ ok: FULL, cutAfterChunks: 2 }, steps.r500()]);
  t.script("b", [steps.ok(FULL)]);
  const r = await chatStream(w, { model: t.model, messages: USER_MSG });
  assert.equal(r.status, 200);
  assert.equal(sseContent(r.events), "one two");
  const errors = r.events.filter((e) => e.json?.error);
  assert.equal(errors.length, 1, r.text);
  assert.equal(errors[0].json.error.code, "stream_cut");
  assert.match(errors[0].json.error.message, /not resumed: the request reached its subrequest budget \(limits\.subrequests = 12/);
  assert.ok(!r.text.includes("[DONE]"), "no [DONE] after an in-band error");
  assert.deepEqual({ a: t.hits("a"), b: t.hits("b") }, { a: 2, b: 0 });
  const log = await logOf(r.res.headers.get("x-router-request-id"));
  assert.equal(log.subrequests, 12);
  assert.match(log.error, /limits\.subrequests = 12/);
});

test("a hedge is paid from the budget: one that does not fit is not started", async () => {
  for (const [limit, hedged] of [
    [13, false],
    [14, true],
  ]) {
    const t = await budgetTable({
      deployments: { slow: {}, quick: {} },
      route: { hedge: { after_ms: 200 } },
      limits: { subrequests: limit },
      breaker: { enabled: false },
    });
    // 6 + gate 1 + (1 + reports 2) = 10 for the first attempt; the hedge costs up to 4 more.
    t.script("slow", [steps.ok("from slow", { delayMs: 1000 })]);
    t.script("quick", [steps.ok("from quick")]);
    const r = await chatOnce(w, { model: t.model, messages: USER_MSG });
    assert.equal(r.status, 200, r.text);
    if (hedged) {
      assert.equal(r.json.choices[0].message.content, "from quick", `limit ${limit}`);
      assert.match(r.res.headers.get("x-router-hedge") ?? "", /:won/);
    } else {
      assert.equal(r.json.choices[0].message.content, "from slow", `limit ${limit}`);
      assert.equal(t.hits("quick"), 0, `limit ${limit}: no hedge`);
      assert.equal(r.res.headers.get("x-router-hedge"), null);
    }
  }
});

test("limits.subrequests below one attempt's worth is refused by validation, with its path", async () => {
  const res = await fetch(w.url + "admin/api/table/validate", {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify({
      version: 1,
      providers: { m: { kind: "mock" } },
      deployments: { d: { provider: "m", model: "m", context_window: 1000 } },
      routes: { r: { chain: ["d"] } },
      limits: { subrequests: 5 },
    }),
    signal: AbortSignal.timeout(10_000),
  });
  const body = await res.json();
  assert.equal(body.valid, false, JSON.stringify(body));
  assert.ok(
    (body.errors ?? []).some((p) => p.path === "limits.subrequests" && /at least 12/.test(p.message)),
    JSON.stringify(body),
  );
});
