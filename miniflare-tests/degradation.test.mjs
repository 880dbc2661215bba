// Degradation (#15 part 3): a deployment that turns slow or flaky without going down is moved
// behind the healthy deployments of its chain (a fallback still), reported as
// `<dep>:degraded_<why>` in x-router-fallback-reasons and in the admin API, and restored once
// its recent figures are back. Windows are seconds here (the defaults are 5 min / 1 h).

import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startFake } from "./helpers/fake-openai.mjs";
import { startWorker, scenarioTable, chatOnce, USER_MSG } from "./helpers/worker.mjs";

const ADMIN = "admin-token-for-tests";
let fake, w;

before(async () => {
  fake = await startFake();
  w = await startWorker({ bindings: { ADMIN_TOKEN: ADMIN } });
});
after(async () => {
  await w?.dispose();
  await fake?.close();
});
beforeEach(() => fake.reset());

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Recent window 5 s (slots of 1 s), at least 6 samples in it and 12 in the baseline; a
// degraded deployment keeps first place in a tenth of requests, so its recovery is seen.
// The primary's normal answers take 100 ms, so that a loaded machine's jitter (tens of ms)
// is small beside its baseline; slow is 600 ms.
const DEGRADATION = { recent_ms: 5000, baseline_ms: 60000, min_recent: 6, min_baseline: 12, recovery_share: 0.1 };
const NORMAL = { ok: "primary answers", delayMs: 100 };
const SLOW = { ok: "primary answers", delayMs: 600 };

// Each test has deployments of its own (`<n>-primary`, `<n>-backup`): their objects keep
// figures across tests. Answers name them `primary` / `backup`.
let seq = 0;
let route;

async function twoDeployments({ primary = {} } = {}) {
  const n = ++seq;
  route = `dg${n}`;
  const t = await scenarioTable(w, fake, {
    deployments: { [`${n}-primary`]: primary, [`${n}-backup`]: {} },
    routes: { [route]: { chain: [`${n}-primary`, `${n}-backup`] } },
  });
  t.table.defaults.degradation = DEGRADATION;
  if (primary.degradation) t.table.deployments[`${n}-primary`].degradation = primary.degradation;
  await w.putTable(t.table);
  const name = (d) => `${n}-${d}`;
  return {
    script: (d, steps) => t.script(name(d), steps),
    state: (d) => deploymentState(name(d)),
  };
}

async function ask() {
  const r = await chatOnce(w, { model: route, messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  const short = (s) => s.replace(/(^|, )\d+-/g, "$1");
  return {
    dep: short(r.res.headers.get("x-router-deployment") ?? ""),
    reasons: short(r.res.headers.get("x-router-fallback-reasons") ?? ""),
  };
}

/** Asks until `done(answer)` or `ms` pass; returns the answers. */
async function askUntil(done, ms, pauseMs = 25) {
  const seen = [];
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const a = await ask();
    seen.push(a);
    if (done(a, seen)) return seen;
    await sleep(pauseMs);
  }
  return seen;
}

async function deploymentState(name) {
  const res = await fetch(`${w.url}admin/api/deployments/${name}`, {
    headers: { authorization: `Bearer ${ADMIN}` },
    signal: AbortSignal.timeout(10_000),
  });
  assert.equal(res.status, 200);
  return (await res.json()).state;
}

/** Baseline: `n` quick answers from primary, then let them age out of the recent window. */
async function baseline(t, n = 20) {
  t.script("primary", [NORMAL]);
  t.script("backup", [{ ok: "backup answers" }]);
  for (let i = 0; i < n; i++) assert.equal((await ask()).dep, "primary");
  await sleep(6_200);
}

const lastN = (seen, n, pred) => seen.length >= n && seen.slice(-n).every(pred);

test("latency creeping up moves traffic to the healthy deployment, and it comes back when healed", async () => {
  const t = await twoDeployments();
  await baseline(t);

  // Primary now answers in 600 ms instead of 100: more than twice its baseline p95.
  t.script("primary", [SLOW]);
  const moved = await askUntil((a) => a.dep === "backup" && a.reasons.includes("primary:degraded_latency"), 20_000);
  const last = moved.at(-1);
  assert.equal(last.dep, "backup", `traffic never moved: ${JSON.stringify(moved.slice(-5))}`);
  assert.match(last.reasons, /^primary:degraded_latency/);
  // Degraded is not removed: primary still answers in its share of recovery requests, and
  // most requests now go to backup first.
  // (The recovery share is 10 %: fewer than half of 12 requests to backup happens with
  // probability 5e-6.)
  const after = await askUntil((_, seen) => seen.length >= 12, 20_000);
  const toBackup = after.filter((a) => a.dep === "backup").length;
  assert.ok(toBackup >= after.length / 2, `${toBackup} of ${after.length} went to backup`);
  const state = await t.state("primary");
  assert.equal(state.degradation.degraded, "degraded_latency");
  assert.ok(state.degradation.recent.latency_p95_ms >= 400, JSON.stringify(state.degradation));

  // Healed: within a few recent windows primary is first again, with no fallback reason.
  t.script("primary", [NORMAL]);
  const back = await askUntil((_, seen) => lastN(seen, 10, (a) => a.dep === "primary" && a.reasons === ""), 30_000);
  assert.ok(lastN(back, 10, (a) => a.dep === "primary" && a.reasons === ""), `never restored: ${JSON.stringify(back.slice(-5))}`);
  assert.equal((await t.state("primary")).degradation.degraded, null);
});

test("errors drifting up degrade a deployment that still mostly answers, and it recovers", async () => {
  const t = await twoDeployments();
  await baseline(t);

  // One answer in four is a 500: far over the 2 % error rate, far under a breaker's trip.
  const flaky = [];
  for (let i = 0; i < 400; i++) flaky.push(i % 4 === 3 ? { status: 500, body: { error: { message: "boom", type: "server_error" } } } : NORMAL);
  t.script("primary", flaky);
  const moved = await askUntil((a) => a.reasons.includes("primary:degraded_errors"), 20_000);
  assert.match(moved.at(-1).reasons, /^primary:degraded_errors/, JSON.stringify(moved.slice(-5)));
  assert.equal(moved.at(-1).dep, "backup");
  assert.equal((await t.state("primary")).degradation.degraded, "degraded_errors");

  t.script("primary", [NORMAL]);
  const back = await askUntil((_, seen) => lastN(seen, 10, (a) => a.dep === "primary" && a.reasons === ""), 30_000);
  assert.ok(lastN(back, 10, (a) => a.dep === "primary" && a.reasons === ""), `never restored: ${JSON.stringify(back.slice(-5))}`);
});

test("a deployment with degradation off keeps its place however slow it gets", async () => {
  const t = await twoDeployments({ primary: { degradation: "off" } });
  await baseline(t);
  t.script("primary", [SLOW]);
  const seen = await askUntil(() => false, 7_000);
  assert.ok(seen.length >= 8, `only ${seen.length} requests`);
  assert.ok(seen.every((a) => a.dep === "primary" && a.reasons === ""), JSON.stringify(seen.filter((a) => a.dep !== "primary")));
  assert.equal((await t.state("primary")).degradation.degraded, null);
});
