// Issue 15, parts 1 and 2, in workerd:
// - a stream that stalls after the commit is resumed on the next deployment at once, never on
//   the silent one (idle_ms plus one healthy attempt, not two idle windows);
// - with the built-in breaker defaults, a deployment that fails for a while and then heals gets
//   its traffic back within 30 s, is probed at most once per 30 s while down (cron ticks
//   included), and no user request fails meanwhile. Longer outages (up to 1 h) are covered by
//   the clock-driven native tests (tests/breaker_recovery.rs).

import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startFake, steps, words, prefillText } from "./helpers/fake-openai.mjs";
import { startFakeAnthropic } from "./helpers/fake-anthropic.mjs";
import { startWorker, mixedTable, chatStream, chatOnce, sseContent, USER_MSG } from "./helpers/worker.mjs";

const ADMIN = "admin-token-for-recovery-tests";
let fakeO, fakeA, w;

before(async () => {
  fakeO = await startFake();
  fakeA = await startFakeAnthropic();
  w = await startWorker({ bindings: { ADMIN_TOKEN: ADMIN } });
});
after(async () => {
  await w?.dispose();
  await fakeO?.close();
  await fakeA?.close();
});
beforeEach(() => {
  fakeO.reset();
  fakeA.reset();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const FULL = "The quick brown fox jumps over the lazy dog beside the quiet river bank today.";
const K = 5;

/** The per-request JSON log line (written when the stream ends). */
async function logLine(res, timeoutMs = 3000) {
  const id = res.headers.get("x-router-request-id");
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
    await sleep(50);
  }
}

// ---------------------------------------------------------------- part 1: a stall is resumed elsewhere

const METHODS = {
  "openai prefill": { kind: () => ({ fake: fakeO, provider: { prefill: "assistant" } }), method: "prefill" },
  "openai replay": { kind: () => ({ fake: fakeO }), method: "replay" },
  "anthropic prefill": { kind: () => ({ fake: fakeA, provider: { anthropic_version: "2023-06-01" } }), method: "prefill" },
};

for (const [name, { kind, method }] of Object.entries(METHODS)) {
  test(`${name}: a stall after ${K} chunks is resumed on the next deployment at once, never on the silent one`, async () => {
    const t = await mixedTable(w, {
      deployments: { primary: kind(), backup: kind() },
      routes: { r: { chain: ["primary", "backup"] } },
    });
    // Asked again, the primary would answer: only the rule keeps the resume off it.
    t.script("primary", [
      { ok: FULL, stallAfterChunks: K, continuePrefill: true, model: "first-model" },
      { ok: FULL, continuePrefill: true },
    ]);
    t.script("backup", [{ ok: FULL, continuePrefill: true, model: "second-model" }]);
    const r = await chatStream(w, { model: "r", messages: USER_MSG }, { timeoutMs: 6000 });
    assert.equal(r.status, 200);
    assert.equal(r.timedOut, false);
    assert.deepEqual(r.events.filter((e) => e.json?.error).map((e) => e.data), [], "no error event");
    assert.equal(sseContent(r.events), FULL, "the whole answer, each word once");
    assert.equal(r.events.at(-1)?.data, "[DONE]");
    assert.deepEqual([...new Set(r.events.filter((e) => e.json?.model).map((e) => e.json.model))], ["first-model"]);
    assert.deepEqual(t.allHits(), { primary: 1, backup: 1 }, "the stalled primary is not asked again");
    // idle_ms is 500: one idle window and one healthy attempt, not two windows.
    assert.ok(r.elapsedMs >= 450 && r.elapsedMs < 2500, `took ${r.elapsedMs} ms (idle_ms 500)`);
    if (method === "prefill") {
      assert.equal(prefillText(t.requests("backup")[0].body), words(FULL).slice(0, K).join(""));
    }
    const line = await logLine(r.res);
    assert.ok(line, "log line");
    assert.deepEqual(line.resumes, [`backup:${method}`]);
  });
}

// ---------------------------------------------------------------- part 2: breaker recovery with the defaults

async function breakerOf(dep) {
  const res = await fetch(w.url + `admin/api/deployments/${dep}`, {
    headers: { authorization: `Bearer ${ADMIN}` },
    signal: AbortSignal.timeout(10_000),
  });
  assert.equal(res.status, 200);
  return (await res.json()).state;
}

/** One table (a table replaces the last one) with a chain [primary, secondary] per outage, whose
 *  breakers have every built-in default (`breaker: {}`: on, 5 failures in a row, cooldown 30 s);
 *  each primary answers 503 until it heals. */
async function outages(prefix, outageMs) {
  const names = outageMs.map((_, i) => `${prefix}-${i}`);
  const deployments = {};
  const routes = {};
  for (const name of names) {
    deployments[`${name}-primary`] = { fake: fakeO };
    deployments[`${name}-secondary`] = { fake: fakeO };
    routes[name] = { chain: [`${name}-primary`, `${name}-secondary`] };
  }
  const t = await mixedTable(w, { deployments, routes, defaults: { breaker: {} } });
  return names.map((name, i) => {
    const p = `${name}-primary`;
    t.script(p, [steps.r503()]);
    t.script(`${name}-secondary`, [{ ok: "from secondary" }]);
    return { name, p, t, outageMs: outageMs[i], hits: [], healedAt: null, backAfterMs: null, failed: [] };
  });
}

test("built-in breaker defaults: down 3 s or 35 s, then healed -> every request answered, probes 30 s apart, traffic back within 30 s", async () => {
  const n = Date.now();
  // 35 s: the first probe (≈ 30 s) finds it still down. The old defaults doubled the next
  // cooldown to 60 s: traffic came back ≈ 55 s after healing.
  const cases = await outages(`rec${n}`, [3000, 35_000]);
  const cron = await w.mf.getWorker();
  const started = Date.now();
  const seen = (c) => c.t.hits(c.p) + (c.rescripted ?? 0);
  for (let i = 0; cases.some((c) => c.backAfterMs === null) && Date.now() - started < 35_000 + 33_000; i++) {
    for (const c of cases) {
      const before = seen(c);
      if (c.healedAt === null && Date.now() - started >= c.outageMs) {
        c.rescripted = c.t.hits(c.p); // (re-scripting resets the fake's hit count)
        c.t.script(c.p, [{ ok: "primary is back" }]);
        c.healedAt = Date.now();
      }
      if (c.backAfterMs !== null) continue;
      const r = await chatOnce(w, { model: c.name, messages: USER_MSG });
      if (r.status !== 200) c.failed.push(`${r.status} ${r.text}`);
      const now = Date.now();
      for (let k = before; k < seen(c); k++) c.hits.push({ at: now - started, down: c.healedAt === null });
      if (c.healedAt !== null && r.res.headers.get("x-router-deployment") === c.p) c.backAfterMs = now - c.healedAt;
    }
    // The cron every ≈ 5 s: it adds no probe while a cooldown runs.
    if (i % 10 === 0) {
      const before = cases.map(seen);
      await cron.scheduled({ cron: "* * * * *" });
      cases.forEach((c, j) => {
        for (let k = before[j]; k < seen(c); k++) c.hits.push({ at: Date.now() - started, down: c.healedAt === null, cron: true });
      });
    }
    await sleep(500);
  }
  for (const c of cases) {
    const down = c.hits.filter((h) => h.down);
    console.log(`# ${c.outageMs / 1000} s outage: attempts on the primary while down at ${down.map((h) => (h.at / 1000).toFixed(1)).join(", ")} s; traffic back ${c.backAfterMs} ms after healing`);
    assert.deepEqual(c.failed, [], "every request answered (a failed probe falls back)");
    // 5 failures in a row trip it, in the first requests (2 attempts each; an isolate learns of
    // the trip from the reply to its report, so one more request may start first).
    const trip = down.filter((h) => h.at < 5000);
    assert.ok(trip.length >= 5 && trip.length <= 8, `trip: ${trip.length} attempts`);
    // Then only probes, at least 30 s apart (measured per request, hence the slack).
    const probes = down.filter((h) => h.at >= 5000);
    if (c.outageMs > 31_000) assert.equal(probes.length, 1, "one probe, ≈ 30 s after the trip");
    for (let k = 1; k < probes.length; k++) assert.ok(probes[k].at - probes[k - 1].at >= 29_000, `probes at ${probes.map((h) => h.at)}`);
    assert.ok(c.backAfterMs !== null && c.backAfterMs <= 30_000, `traffic back after ${c.backAfterMs} ms`);
    assert.equal((await breakerOf(c.p)).view.state, "closed");
  }
});
