// Alerts (#15 part 5): the table names the secret holding the operator's webhook URL; the
// deployment and key objects queue an alert when a breaker opens or closes, a deployment turns
// degraded or recovers, or a key passes 50/80/100 % of a budget, and send it from their
// Durable Object alarm (never on the request path), once per event, subject and window,
// retried with backoff when the receiver fails or hangs.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startFake, steps } from "./helpers/fake-openai.mjs";
import { startWebhook } from "./helpers/fake-webhook.mjs";
import { scenarioTable, chatOnce, USER_MSG } from "./helpers/worker.mjs";
import { useGateway } from "./helpers/harness.mjs";

const ADMIN = "admin-token-for-tests";
// The webhook URL is a secret: its binding's name says so, so the secret scan checks that it
// never appears in a log line or a response.
const hook = await startWebhook();
const SECRETS = { ADMIN_TOKEN: ADMIN, ALERT_WEBHOOK_SECRET: hook.url };
let fake, w, wk;
useGateway(
  {
    fakes: { fake: startFake },
    workers: { w: { bindings: SECRETS }, wk: { bindings: { ...SECRETS, AUTH_MODE: "keys" } } },
  },
  (g) => ({ fake, w, wk } = g),
);
after(() => hook.close());

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ALERTS = { webhook_url_secret: "ALERT_WEBHOOK_SECRET" };

let seq = 0;
/** Route `al<n>` over `al<n>-p` then `al<n>-s`, breakers on (3 failures, 1 s cooldown), alerts on. */
async function chain(worker, { alerts = ALERTS, defaults = {} } = {}) {
  const n = ++seq;
  const p = `al${n}-p`;
  const s = `al${n}-s`;
  const route = `al${n}`;
  const retry = { max_attempts: 1 };
  const t = await scenarioTable(worker, fake, {
    deployments: { [p]: { retry }, [s]: { retry } },
    routes: { [route]: { chain: [p, s] } },
    defaults: {
      breaker: { consecutive_failures: 3, failure_rate_bps: 0, cooldown_ms: 1000, cooldown_max_ms: 1000 },
      ...defaults,
    },
  });
  if (alerts) t.table.alerts = alerts;
  await worker.putTable(t.table);
  return { t, p, s, route };
}

async function ask(worker, route, headers = {}) {
  const started = Date.now();
  const r = await chatOnce(worker, { model: route, messages: USER_MSG }, { headers });
  assert.equal(r.status, 200, r.text);
  return { dep: r.res.headers.get("x-router-deployment"), ms: Date.now() - started };
}

/** The alerts received about deployment `dep`, as "event" strings in order. */
const about = (dep) => hook.received().filter((a) => a.body?.deployment === dep);
const events = (dep) => about(dep).map((a) => `${a.body.event}:${a.mode}`);

/** Three failures open the primary's breaker (the secondary answers). */
async function trip(t, p, route, worker = w) {
  t.script(p, [steps.r500()]);
  for (let i = 0; i < 3; i++) await ask(worker, route);
}

test("a breaker opening and closing sends one alert each, with text and structured fields", async () => {
  const { t, p, route } = await chain(w);
  await trip(t, p, route);
  const opened = await hook.waitFor(() => about(p).length >= 1, 5000);
  assert.deepEqual(events(p), ["breaker_opened:200"], JSON.stringify(opened));
  const a = about(p)[0];
  assert.equal(a.method, "POST");
  assert.equal(a.path, `/hook/${hook.token}`);
  assert.equal(a.body.event, "breaker_opened");
  assert.equal(a.body.deployment, p);
  assert.match(a.body.text, new RegExp(`${p}.*breaker opened`));
  assert.match(a.body.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.ok(!JSON.stringify(a.body).includes("sk-"), "no provider key in the alert");

  // Healed: after the cooldown the probe succeeds and the breaker closes.
  t.script(p, [{ ok: "healed" }]);
  await sleep(1100);
  let dep;
  for (let i = 0; i < 20 && dep !== p; i++) {
    dep = (await ask(w, route)).dep;
    if (dep !== p) await sleep(200);
  }
  assert.equal(dep, p, "traffic never came back");
  await hook.waitFor(() => about(p).length >= 2, 5000);
  assert.deepEqual(events(p), ["breaker_opened:200", "breaker_closed:200"]);
});

test("a flapping deployment gives one alert per event in a window, not one per flap", async () => {
  const { t, p, route } = await chain(w);
  for (let flap = 0; flap < 3; flap++) {
    await trip(t, p, route);
    t.script(p, [{ ok: "healed for now" }]);
    await sleep(1100);
    let dep;
    for (let i = 0; i < 20 && dep !== p; i++) {
      dep = (await ask(w, route)).dep;
      if (dep !== p) await sleep(200);
    }
    assert.equal(dep, p, `flap ${flap}: never closed`);
  }
  // Time for any further delivery to arrive.
  await sleep(1500);
  // Windows are fixed (epoch-aligned, 300 s): a test that runs across a boundary may see each
  // event once in each of the two windows, never more.
  const perWindow = {};
  for (const a of about(p)) {
    const k = `${a.body.event}@${Math.floor(Date.parse(a.body.at) / 300_000)}`;
    perWindow[k] = (perWindow[k] ?? 0) + 1;
  }
  assert.ok(Object.values(perWindow).every((n) => n === 1), JSON.stringify(perWindow));
  const windows = new Set(Object.keys(perWindow).map((k) => k.split("@")[1])).size;
  assert.ok(windows <= 2, `${windows} windows in a few seconds`);
  if (windows === 1) assert.deepEqual(events(p), ["breaker_opened:200", "breaker_closed:200"]);
  assert.deepEqual(events(p).slice(0, 2), ["breaker_opened:200", "breaker_closed:200"]);
});

test("switched-off events are not sent", async () => {
  const { t, p, route } = await chain(w, { alerts: { ...ALERTS, events: { breaker_opened: false } } });
  await trip(t, p, route);
  await sleep(1500);
  assert.deepEqual(events(p), []);
});

test("a receiver answering 500 is retried after a backoff, then the alert is delivered", async () => {
  hook.script([500, 200]);
  const { t, p, route } = await chain(w);
  await trip(t, p, route);
  await hook.waitFor(() => about(p).length >= 2, 6000);
  assert.deepEqual(events(p), ["breaker_opened:500", "breaker_opened:200"]);
  const [first, second] = about(p);
  const gap = second.at - first.at;
  assert.ok(gap >= 900 && gap < 4000, `retried ${gap} ms after the failure (backoff 1 s)`);
  assert.deepEqual(second.body, first.body, "the same alert");
  await sleep(1500);
  assert.equal(about(p).length, 2, "nothing more once delivered");
});

test("a receiver that hangs never holds up requests; the alert is timed out and retried", async () => {
  hook.script(["hang", 200]);
  const { t, p, route } = await chain(w);
  await trip(t, p, route);
  await hook.waitFor(() => about(p).length >= 1, 5000);
  assert.deepEqual(events(p), ["breaker_opened:hang"]);
  // While the webhook hangs, requests on the same deployments answer at once.
  for (let i = 0; i < 5; i++) {
    const r = await ask(w, route);
    assert.ok(r.ms < 1000, `request took ${r.ms} ms while the webhook hung`);
  }
  // Timed out after 3 s, retried 1 s later.
  await hook.waitFor(() => about(p).length >= 2, 8000);
  assert.deepEqual(events(p), ["breaker_opened:hang", "breaker_opened:200"]);
  const gap = about(p)[1].at - about(p)[0].at;
  assert.ok(gap >= 3500 && gap < 7000, `retry ${gap} ms after the hung try (3 s timeout + 1 s backoff)`);
});

test("a key passing 50, 80 and 100 % of its day budget gets one alert for each", async () => {
  const n = ++seq;
  const route = `al${n}`;
  const dep = `al${n}-d`;
  const t = await scenarioTable(wk, fake, { deployments: { [dep]: {} }, routes: { [route]: { chain: [dep] } } });
  t.table.alerts = ALERTS;
  await wk.putTable(t.table);
  t.script(dep, [{ ok: "a budgeted answer", usage: { prompt_tokens: 2, completion_tokens: 100, total_tokens: 102 } }]);
  // Each request costs exactly 2 × 150 + 100 × 600 = 60 300 nano-USD; the budget holds five.
  const created = await wk.fetch("/admin/api/keys", {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify({ name: `alerts-${n}`, budget_day_usd: "0.0003015" }),
  });
  assert.equal(created.status, 201);
  const { id, key } = await created.json();
  const forKey = () => hook.received().filter((a) => a.body?.key === id);
  const body = { model: route, messages: [{ role: "user", content: "abcdefgh" }], max_tokens: 100 };
  const expected = [[], [], ["50"], ["50", "80"], ["50", "80", "100"]];
  for (let i = 0; i < 5; i++) {
    const r = await chatOnce(wk, body, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(r.status, 200, r.text);
    const want = expected[i];
    await hook.waitFor(() => forKey().length >= want.length, 4000);
    if (i === 0) await sleep(500);
    const got = forKey().map((a) => /^(\d+)%/.exec(a.body.detail)?.[1]);
    assert.deepEqual(got, want, `after request ${i + 1}: ${JSON.stringify(forKey().map((a) => a.body))}`);
  }
  for (const a of forKey()) {
    assert.equal(a.body.event, "budget");
    assert.match(a.body.detail, /of the day budget/);
    assert.ok(!JSON.stringify(a.body).includes(key), "the key's secret is never sent");
  }
  // Spent: refused now, and no more alerts.
  const refused = await chatOnce(wk, body, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(refused.status, 429);
  await sleep(800);
  assert.equal(forKey().length, 3);
});

test("a deployment turning degraded and recovering sends degraded, then recovered", async () => {
  const DEGRADATION = { recent_ms: 3000, baseline_ms: 60000, min_recent: 6, min_baseline: 12, recovery_share: 0.25 };
  const { t, p, route } = await chain(w, { defaults: { breaker: { enabled: false }, degradation: DEGRADATION } });
  t.table.defaults.degradation = DEGRADATION;
  await w.putTable(t.table);
  t.script(p, [{ ok: "primary answers" }]);
  for (let i = 0; i < 20; i++) await ask(w, route);
  await sleep(3700);
  const flaky = [];
  for (let i = 0; i < 400; i++) flaky.push(i % 4 === 3 ? steps.r500() : { ok: "primary answers" });
  t.script(p, flaky);
  const end = Date.now() + 20_000;
  while (Date.now() < end && !about(p).some((a) => a.body.event === "degraded")) {
    await ask(w, route);
    await sleep(25);
  }
  const degraded = about(p).find((a) => a.body.event === "degraded");
  assert.ok(degraded, `no degraded alert: ${JSON.stringify(events(p))}`);
  assert.equal(degraded.body.detail, "degraded_errors");

  t.script(p, [{ ok: "primary answers" }]);
  const back = Date.now() + 40_000;
  while (Date.now() < back && !about(p).some((a) => a.body.event === "recovered")) {
    await ask(w, route);
    await sleep(25);
  }
  const st = await (await fetch(`${w.url}admin/api/deployments/${p}`, { headers: { authorization: `Bearer ${ADMIN}` } })).json();
  assert.deepEqual(events(p), ["degraded:200", "recovered:200"], JSON.stringify(st.state.degradation));
});

test("a route whose fallback ratio passes the threshold sends one alert per window", async () => {
  const { t, p, s, route } = await chain(w, {
    alerts: { ...ALERTS, fallback_ratio: 0.2 },
    defaults: { breaker: { enabled: false } },
  });
  t.script(s, [{ ok: "from the secondary" }]);
  // 10 requests, 1 falls back: 10 % is under the 20 % threshold.
  t.script(p, [steps.r500(), { ok: "from the primary" }]);
  for (let i = 0; i < 10; i++) await ask(w, route);
  await sleep(2000);
  const forRoute = () => hook.received().filter((a) => a.body?.route === route);
  assert.deepEqual(forRoute(), [], "under the threshold: no alert");
  // Now every request falls back: 3 of 12 (25 %) passes it, and later ones are deduplicated.
  t.script(p, [steps.r500()]);
  for (let i = 0; i < 12; i++) await ask(w, route);
  await hook.waitFor(() => forRoute().length >= 1, 4000);
  await sleep(1500);
  // One per (epoch-aligned) window: two only if the test ran across a window boundary.
  const windows = forRoute().map((a) => Math.floor(Date.parse(a.body.at) / 300_000));
  assert.ok(forRoute().length >= 1 && new Set(windows).size === windows.length && windows.length <= 2, JSON.stringify(forRoute().map((a) => a.body)));
  const a = forRoute()[0].body;
  assert.equal(a.event, "fallback_ratio");
  assert.match(a.detail, /of \d+ requests fell back in the last 300 s \(threshold 20%\)/);
  assert.equal(hook.received().filter((x) => x.body?.deployment === s).length, 0);
});
