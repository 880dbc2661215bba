// Circuit breakers kept in Durable Objects (real DO storage in workerd): opening after the
// threshold, probe discipline during a long outage, recovery, all-open chains, the kill
// switch, the cron health probe, survival across a worker restart, and how many Durable
// Object calls a request makes on the hot path.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startFake, steps } from "./helpers/fake-openai.mjs";
import { startWorker, scenarioTable, chatOnce, logOf, USER_MSG } from "./helpers/worker.mjs";
import { useGateway } from "./helpers/harness.mjs";

const ADMIN = "admin-token-for-tests";
let fake, w;
let seq = 0;

useGateway({ fakes: { fake: startFake }, worker: { bindings: { ADMIN_TOKEN: ADMIN } } }, (g) => ({ fake, w } = g));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const body = (route) => ({ model: route, messages: USER_MSG });

/** A two-deployment chain with breakers on; deployment names are unique per call (one object each). */
async function chain(worker, breaker = {}, { retry = { max_attempts: 1 } } = {}) {
  const n = ++seq;
  const p = `br${n}-primary`;
  const s = `br${n}-secondary`;
  const route = `br${n}`;
  const t = await scenarioTable(worker, fake, {
    deployments: { [p]: { retry }, [s]: { retry } },
    routes: { [route]: { chain: [p, s] } },
    defaults: {
      breaker: {
        consecutive_failures: 3,
        failure_rate_bps: 0,
        cooldown_ms: 5000,
        cooldown_max_ms: 20000,
        ...breaker,
      },
    },
  });
  return { t, p, s, route };
}

async function admin(worker, method, p) {
  const res = await fetch(worker.url + p.replace(/^\//, ""), {
    method,
    headers: { authorization: `Bearer ${ADMIN}` },
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

/** The breaker as its Durable Object holds it. */
async function breakerOf(worker, dep) {
  const r = await admin(worker, "GET", `/admin/api/deployments/${dep}`);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.state;
}

/** The JSON log line of one request (by x-router-request-id). */
/** Background reports reach the object after the response: wait until it agrees. */
async function until(fn, what, ms = 3000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await sleep(25);
  }
  assert.fail(`timed out waiting for ${what}`);
}

test("the breaker opens after the threshold; later requests skip the failing deployment without an attempt", async () => {
  const { t, p, s, route } = await chain(w);
  t.script(p, [steps.r500()]);
  t.script(s, [{ ok: "from secondary" }]);
  for (let i = 0; i < 3; i++) {
    const r = await chatOnce(w, body(route));
    assert.equal(r.status, 200);
    assert.equal(r.res.headers.get("x-router-deployment"), s);
  }
  await until(async () => (await breakerOf(w, p)).view.state === "open", "breaker open");
  const state = await breakerOf(w, p);
  assert.equal(state.breaker.total_trips, 1);
  for (let i = 0; i < 10; i++) {
    const r = await chatOnce(w, body(route));
    assert.equal(r.status, 200);
    assert.equal(r.res.headers.get("x-router-deployment"), s);
  }
  // Consistency bound in one isolate: the snapshot learns of the trip from the reply to the
  // third failure's report, which is sent after that response; one more request may start first.
  console.log(`# threshold 3: primary saw ${t.hits(p)} attempts in 13 sequential requests`);
  assert.ok(t.hits(p) <= 4, `primary saw ${t.hits(p)} attempts, expected 3 (at most 1 extra)`);
  const last = await chatOnce(w, body(route));
  assert.match(last.res.headers.get("x-router-fallback-reasons") ?? "", new RegExp(`${p}:skipped_breaker_open`));
});

test("consistency under a burst: requests already started when the breaker trips reach the deployment, none after", async () => {
  const { t, p, s, route } = await chain(w);
  t.script(p, [{ status: 500, body: "down", delayMs: 100 }]);
  t.script(s, [{ ok: "from secondary" }]);
  // 20 concurrent requests: all start before the first failure is even reported.
  const burst = await Promise.all(Array.from({ length: 20 }, () => chatOnce(w, body(route))));
  assert.ok(burst.every((r) => r.status === 200));
  const inFlight = t.hits(p);
  await until(async () => (await breakerOf(w, p)).view.state === "open", "breaker open");
  // Give the isolate the reply to its reports (they are sent after each response).
  await sleep(100);
  const after = await Promise.all(Array.from({ length: 20 }, () => chatOnce(w, body(route))));
  assert.ok(after.every((r) => r.res.headers.get("x-router-deployment") === s));
  console.log(`# burst: ${inFlight} of 20 concurrent requests reached the primary before the trip; ${t.hits(p) - inFlight} of the next 20`);
  assert.equal(t.hits(p), inFlight, "no attempt once the isolate has the object's reply");
});

test("a 60-second outage at one request per second: only probes reach the failing deployment, and traffic returns within one cooldown of recovery", async () => {
  const { t, p, s, route } = await chain(w, { cooldown_ms: 5000, cooldown_max_ms: 20000 });
  t.script(p, [steps.r500()]);
  t.script(s, [{ ok: "from secondary" }]);
  const started = Date.now();
  let ok = 0;
  for (let i = 0; i < 60; i++) {
    const r = await chatOnce(w, body(route));
    if (r.status === 200) ok++;
    const wait = started + (i + 1) * 1000 - Date.now();
    if (wait > 0) await sleep(wait);
  }
  const outageHits = t.hits(p);
  // 3 failures open it; probes follow after 5 s, 10 s, 20 s, 20 s of cooldown (≈ t=8, 18, 38, 58).
  console.log(`# outage: primary saw ${outageHits} attempts in 60 requests (3 to trip + probes)`);
  assert.equal(ok, 60, "every request was answered by the fallback");
  assert.ok(outageHits >= 3 + 2 && outageHits <= 3 + 5, `primary saw ${outageHits} attempts`);
  const st = await breakerOf(w, p);
  assert.ok(st.breaker.total_trips >= 3, `re-opened after failed probes: ${JSON.stringify(st.breaker)}`);

  // Recovery: the primary answers again; within one (maximum) cooldown a probe closes it.
  t.script(p, [{ ok: "primary is back" }]);
  const recovered = Date.now();
  let backAfterMs = null;
  for (let i = 0; i < 25 && backAfterMs === null; i++) {
    const r = await chatOnce(w, body(route));
    assert.equal(r.status, 200);
    if (r.res.headers.get("x-router-deployment") === p) backAfterMs = Date.now() - recovered;
    else await sleep(1000);
  }
  console.log(`# recovery: traffic back on the primary ${backAfterMs} ms after it recovered`);
  assert.ok(backAfterMs !== null && backAfterMs <= 21_000, `back after ${backAfterMs} ms`);
  await until(async () => (await breakerOf(w, p)).view.state === "closed", "breaker closed");
  const r = await chatOnce(w, body(route));
  assert.equal(r.res.headers.get("x-router-deployment"), p);
});

test("half-open admits a single probe: concurrent requests after the cooldown send one request to the deployment", async () => {
  const { t, p, s, route } = await chain(w, { cooldown_ms: 1000, cooldown_max_ms: 1000 });
  t.script(p, [steps.r500()]);
  t.script(s, [{ ok: "from secondary" }]);
  for (let i = 0; i < 3; i++) await chatOnce(w, body(route));
  await until(async () => (await breakerOf(w, p)).view.state === "open", "breaker open");
  await sleep(1100);
  t.script(p, [{ ok: "slow probe answer", delayMs: 300 }]); // (re-scripting resets the hit count)
  const before = t.hits(p);
  const rs = await Promise.all(Array.from({ length: 8 }, () => chatOnce(w, body(route))));
  assert.ok(rs.every((r) => r.status === 200));
  assert.equal(t.hits(p) - before, 1, "exactly one probe");
  assert.equal(rs.filter((r) => r.res.headers.get("x-router-deployment") === p).length, 1);
  await until(async () => (await breakerOf(w, p)).view.state === "closed", "probe success closed it");
});

test("every deployment open: the one reopening first is probed; if it fails the caller gets 503 with Retry-After", async () => {
  const { t, p, s, route } = await chain(w, { consecutive_failures: 1, cooldown_ms: 30_000, cooldown_max_ms: 60_000 });
  t.script(p, [steps.r500()]);
  t.script(s, [steps.r500()]);
  const first = await chatOnce(w, body(route));
  assert.equal(first.status, 502);
  await until(
    async () => (await breakerOf(w, p)).view.state === "open" && (await breakerOf(w, s)).view.state === "open",
    "both open",
  );
  const hits = t.allHits();
  const r = await chatOnce(w, body(route));
  assert.equal(r.status, 503, r.text);
  assert.equal(r.json.error.code, "circuit_open");
  const ra = Number(r.res.headers.get("retry-after"));
  assert.ok(ra >= 1 && ra <= 30, `retry-after ${ra}`);
  // Exactly one forced probe, on the primary (it opened first, so it reopens first).
  assert.equal(t.hits(p) - hits[p], 1);
  assert.equal(t.hits(s) - hits[s], 0);

  // The secondary recovers. The next all-open request probes the deployment reopening first,
  // now the secondary (the primary's failed probe doubled its cooldown), and it answers.
  t.script(s, [{ ok: "probe answered" }]);
  const r2 = await chatOnce(w, body(route));
  assert.equal(r2.status, 200, r2.text);
  assert.equal(r2.res.headers.get("x-router-deployment"), s);
});

test("kill switch: force-open moves traffic off a healthy deployment at once; reset brings it back", async () => {
  const { t, p, s, route } = await chain(w);
  t.script(p, [{ ok: "primary" }]);
  t.script(s, [{ ok: "secondary" }]);
  assert.equal((await chatOnce(w, body(route))).res.headers.get("x-router-deployment"), p);
  const forced = await admin(w, "POST", `/admin/api/deployments/${p}/force-open`);
  assert.equal(forced.status, 200);
  assert.equal(forced.json.view.state, "forced_open");
  // The isolate snapshot is refreshed within SNAPSHOT_TTL_MS (2 s) of the change.
  const moved = await until(async () => {
    const r = await chatOnce(w, body(route));
    return r.res.headers.get("x-router-deployment") === s ? Date.now() : null;
  }, "traffic moved", 5000);
  assert.ok(moved);
  const before = t.hits(p);
  for (let i = 0; i < 5; i++) {
    const r = await chatOnce(w, body(route));
    assert.equal(r.res.headers.get("x-router-deployment"), s);
  }
  assert.equal(t.hits(p), before, "no attempt, not even a probe, through the kill switch");
  assert.equal((await admin(w, "POST", `/admin/api/deployments/${p}/reset`)).status, 200);
  await until(async () => (await chatOnce(w, body(route))).res.headers.get("x-router-deployment") === p, "traffic back", 5000);
});

test("kill switch and reset reach deployments whose names need percent-encoding (p:1, eu/gpt@2)", async () => {
  for (const name of ["p:1", "eu/gpt@2"]) {
    const n = ++seq;
    const backup = `enc${n}-backup`;
    const route = `enc${n}`;
    const retry = { max_attempts: 1 };
    const t = await scenarioTable(w, fake, {
      deployments: { [name]: { retry }, [backup]: { retry } },
      routes: { [route]: { chain: [name, backup] } },
      defaults: { breaker: { consecutive_failures: 3, failure_rate_bps: 0, cooldown_ms: 5000 } },
    });
    t.script(name, [{ ok: "primary" }]);
    t.script(backup, [{ ok: "backup" }]);
    assert.equal((await chatOnce(w, body(route))).res.headers.get("x-router-deployment"), name);
    // As the dashboard sends it: the name encoded as one path segment.
    const seg = encodeURIComponent(name);
    const forced = await admin(w, "POST", `/admin/api/deployments/${seg}/force-open`);
    assert.equal(forced.status, 200, JSON.stringify(forced.json));
    assert.equal(forced.json.name, name, "the decoded name, not the encoded segment");
    assert.equal((await breakerOf(w, seg)).view.state, "forced_open");
    await until(async () => (await chatOnce(w, body(route))).res.headers.get("x-router-deployment") === backup, `${name}: traffic moved`, 5000);
    const hits = t.hits(name);
    for (let i = 0; i < 3; i++) assert.equal((await chatOnce(w, body(route))).res.headers.get("x-router-deployment"), backup);
    assert.equal(t.hits(name), hits, `${name}: nothing goes through the kill switch`);
    const listed = (await admin(w, "GET", "/admin/api/deployments")).json.deployments.find((d) => d.name === name);
    assert.equal(listed.state.view.state, "forced_open", "the listing reads the same object");
    assert.equal((await admin(w, "POST", `/admin/api/deployments/${seg}/reset`)).status, 200);
    await until(async () => (await chatOnce(w, body(route))).res.headers.get("x-router-deployment") === name, `${name}: traffic back`, 5000);
  }
  // A segment that does not decode to UTF-8 is refused, not used as a name.
  const bad = await admin(w, "POST", "/admin/api/deployments/%FF/force-open");
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, "invalid_path");
});

test("admin API for breakers needs the admin token", async () => {
  for (const headers of [{}, { authorization: "Bearer wrong" }, { authorization: ADMIN }]) {
    const res = await fetch(w.url + "admin/api/deployments", { headers });
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error.code, "unauthorized");
  }
});

test("the cron health probe closes an open breaker without user traffic", async () => {
  const { t, p, s, route } = await chain(w, { cooldown_ms: 500, cooldown_max_ms: 500 });
  t.script(p, [steps.r500()]);
  t.script(s, [{ ok: "secondary" }]);
  for (let i = 0; i < 3; i++) await chatOnce(w, body(route));
  await until(async () => (await breakerOf(w, p)).view.state === "open", "breaker open");
  t.script(p, [{ ok: "pong" }]); // (re-scripting resets the hit count)
  await sleep(600);
  const before = t.hits(p);
  const worker = await w.mf.getWorker();
  await worker.scheduled({ cron: "* * * * *" });
  assert.equal(t.hits(p) - before, 1, "one probe request");
  const probe = t.requests(p).at(-1);
  assert.equal(probe.body.max_tokens, 1, "the probe is cheap: one output token");
  await until(async () => (await breakerOf(w, p)).view.state === "closed", "closed by the cron probe");
  // The secondary breaker stayed closed and was not probed.
  assert.equal((await breakerOf(w, s)).view.state, "closed");
});

test("a cron round stays within the invocation's subrequest budget; the next rounds reach the rest", async () => {
  const n = ++seq;
  const names = Array.from({ length: 8 }, (_, i) => `cr${n}-d${i}`);
  const t = await scenarioTable(w, fake, {
    deployments: Object.fromEntries(names.map((d) => [d, { retry: { max_attempts: 1 } }])),
    routes: Object.fromEntries(names.map((d) => [`r-${d}`, { chain: [d] }])),
    defaults: { breaker: { consecutive_failures: 2, failure_rate_bps: 0, cooldown_ms: 500, cooldown_max_ms: 500 } },
  });
  // A cron invocation may make 20 subrequests. The request reserve is 6; reading a breaker
  // costs 1 and a probe at most 6, so a round fits (20 - 6) / (1 + 6) = 2 probes.
  t.table.limits = { subrequests: 20 };
  await w.putTable(t.table);
  for (const d of names) {
    t.script(d, [steps.r500()]);
    for (let i = 0; i < 2; i++) await chatOnce(w, body(`r-${d}`));
  }
  const states = async () => Promise.all(names.map(async (d) => (await breakerOf(w, d)).view.state));
  await until(async () => (await states()).every((s) => s === "open"), "every breaker open");
  for (const d of names) t.script(d, [{ ok: "pong" }]); // (re-scripting resets the hit counts)
  await sleep(600);

  const worker = await w.mf.getWorker();
  const minute = Date.UTC(2026, 0, 1);
  const logsBefore = w.logs.join("").length;
  await worker.scheduled({ cron: "* * * * *", scheduledTime: new Date(minute) });
  const probes = () => Object.values(t.allHits()).reduce((a, b) => a + b, 0);
  assert.equal(probes(), 2, "the first round probes what its budget pays for, no more");
  const deferred = w.logs
    .join("")
    .slice(logsBefore)
    .split("\n")
    .find((l) => l.includes('"event":"health_probe_deferred"'));
  assert.ok(deferred, "the round says it left deployments for later");
  assert.equal(JSON.parse(deferred.slice(deferred.indexOf("{"))).left, 6);

  let rounds = 1;
  for (;;) {
    const sent = probes();
    await until(async () => (await states()).filter((s) => s === "closed").length === sent, "probed breakers closed");
    if (sent === names.length) break;
    assert.ok(rounds < names.length, `every breaker closed within ${names.length} rounds`);
    await worker.scheduled({ cron: "* * * * *", scheduledTime: new Date(minute + rounds * 60_000) });
    rounds++;
  }
  assert.deepEqual(t.allHits(), Object.fromEntries(names.map((d) => [d, 1])), "each deployment probed once");
});

test("breaker state survives a worker restart", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "edge-router-br-"));
  try {
    let w1 = await startWorker({ persistDir: dir, bindings: { ADMIN_TOKEN: ADMIN } });
    const { t, p, s, route } = await chain(w1, { cooldown_ms: 60_000, cooldown_max_ms: 60_000 });
    t.script(p, [steps.r500()]);
    t.script(s, [{ ok: "secondary" }]);
    for (let i = 0; i < 3; i++) await chatOnce(w1, body(route));
    await until(async () => (await breakerOf(w1, p)).view.state === "open", "breaker open");
    const table = t.table;
    await w1.dispose();
    const hits = t.hits(p);

    const w2 = await startWorker({ persistDir: dir, table, bindings: { ADMIN_TOKEN: ADMIN } });
    try {
      const r = await chatOnce(w2, body(route));
      assert.equal(r.status, 200);
      assert.equal(r.res.headers.get("x-router-deployment"), s);
      assert.equal(t.hits(p), hits, "the new isolate read the open breaker before sending anything");
      assert.equal((await breakerOf(w2, p)).view.state, "open");
    } finally {
      await w2.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("Durable Object calls per request on the hot path (from the request log)", async () => {
  const { t, p, s, route } = await chain(w);
  t.script(p, [{ ok: "primary" }]);
  t.script(s, [{ ok: "secondary" }]);
  const id = async (r) => logOf(w, r.res.headers.get("x-router-request-id"));
  // First request ever for this deployment in this isolate: one wait to read its breaker.
  const first = await id(await chatOnce(w, body(route)));
  assert.equal(first.do_calls.waited, 1);
  // Happy path afterwards: nothing waited on; reports are batched per isolate, so 10
  // back-to-back requests make at most a couple of background calls between them.
  const happy = [];
  for (let i = 0; i < 10; i++) happy.push(await id(await chatOnce(w, body(route))));
  assert.ok(happy.every((l) => l.do_calls.waited === 0), JSON.stringify(happy.map((l) => l.do_calls)));
  const background = happy.reduce((n, l) => n + l.do_calls.background, 0);
  assert.ok(background <= 3, `background calls for 10 requests: ${background}`);
  // The batch still arrives within the flush interval (1 s): the object counts all 11.
  await until(async () => (await breakerOf(w, p)).usage.total.requests === 11, "usage flushed", 3000);

  // Failing path (primary fails, fallback answers): nothing waited on, and the failure is
  // sent at once (the object has it before the flush interval).
  t.script(p, [steps.r500()]);
  await chatOnce(w, body(route)); // first sight of the secondary: one wait to read its breaker
  await until(async () => (await breakerOf(w, p)).breaker.consecutive_failures === 1, "failure reported", 500);
  const failing = await id(await chatOnce(w, body(route)));
  assert.equal(failing.do_calls.waited, 0);
  assert.ok(failing.do_calls.background >= 1);
  await until(async () => (await breakerOf(w, p)).breaker.consecutive_failures === 2, "failure reported", 500);

  // A gateway key with limits: one wait for its admission, plus its settle in the background.
  const created = await fetch(w.url + "admin/api/keys", {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify({ name: `calls-${seq}`, rpm: 1000 }),
  });
  assert.equal(created.status, 201);
  const { key } = await created.json();
  t.script(p, [{ ok: "primary" }]);
  const keyed = await id(await chatOnce(w, body(route), { headers: { authorization: `Bearer ${key}` } }));
  assert.equal(keyed.do_calls.waited, 1);
  assert.ok(keyed.do_calls.background >= 1);
  // A key without limits costs the same: its object is asked once (revocation), then settled.
  const plain = await fetch(w.url + "admin/api/keys", {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify({ name: `calls-plain-${seq}` }),
  });
  assert.equal(plain.status, 201);
  t.script(p, [{ ok: "primary" }]);
  const plainKeyed = await id(
    await chatOnce(w, body(route), { headers: { authorization: `Bearer ${(await plain.json()).key}` } }),
  );
  assert.equal(plainKeyed.do_calls.waited, 1);
  assert.ok(plainKeyed.do_calls.background >= 1);
  console.log(
    `# DO calls: first ${JSON.stringify(first.do_calls)}, 10 happy: ${background} background in total, ` +
      `failing ${JSON.stringify(failing.do_calls)}, keyed ${JSON.stringify(keyed.do_calls)}`,
  );
});
