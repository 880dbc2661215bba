// Each route's strategy deciding which deployments are tried and in which order, end to end:
// cheapest, weighted, canary, sticky sessions and fastest (with their fallbacks).

import { test } from "node:test";
import assert from "node:assert/strict";
import { steps } from "./helpers/fake-openai.mjs";
import { chatOnce, reasons, USER_MSG } from "./helpers/worker.mjs";
import { w, setup, h, many, useRoutingGateway } from "./helpers/routing-suite.mjs";

useRoutingGateway();

// ---------------------------------------------------------------- strategies

test("cheapest: the cheapest deployment answers even when listed last; its failure falls back to the next cheapest", async () => {
  const t = await setup({
    deployments: {
      "chp-dear": { price: { in: 10, out: 30 } },
      "chp-mid": { price: { in: 1, out: 3 } },
      "chp-cheap": { price: { in: 0.1, out: 0.3 } },
    },
    routes: { "chp-route": { strategy: "cheapest", chain: ["chp-dear", "chp-mid", "chp-cheap"] } },
  });
  for (let i = 0; i < 3; i++) {
    const r = await chatOnce(w, { model: "chp-route", messages: USER_MSG });
    assert.equal(r.status, 200, r.text);
    assert.equal(h(r, "x-router-deployment"), "chp-cheap");
  }
  assert.deepEqual(t.allHits(), { "chp-dear": 0, "chp-mid": 0, "chp-cheap": 3 });
  t.script("chp-cheap", [steps.r503()]);
  const r = await chatOnce(w, { model: "chp-route", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(h(r, "x-router-deployment"), "chp-mid");
  assert.equal(t.hits("chp-dear"), 0);
});

test("weighted 1:3 over 200 requests: the heavy deployment's share is 0.75 ± 0.12 (≈3.9 sd)", async () => {
  const t = await setup({
    deployments: { "wt-light": {}, "wt-heavy": {} },
    routes: {
      "wt-route": {
        strategy: "weighted",
        chain: [
          { deployment: "wt-light", weight: 1 },
          { deployment: "wt-heavy", weight: 3 },
        ],
      },
    },
  });
  const N = 200;
  const rs = await many(N, () => ({ model: "wt-route", messages: USER_MSG }));
  assert.ok(rs.every((r) => r.status === 200), `statuses: ${rs.map((r) => r.status)}`);
  const heavy = rs.filter((r) => h(r, "x-router-deployment") === "wt-heavy").length;
  const light = rs.filter((r) => h(r, "x-router-deployment") === "wt-light").length;
  assert.equal(heavy + light, N);
  assert.deepEqual(t.allHits(), { "wt-light": light, "wt-heavy": heavy }, "one provider call per request");
  const share = heavy / N;
  assert.ok(Math.abs(share - 0.75) <= 0.12, `heavy share ${share} (${heavy}/${N})`);
});

test("weighted: a weight-0 entry is never picked first but still serves as a fallback", async () => {
  const t = await setup({
    deployments: { "w0-main": {}, "w0-spare": {} },
    routes: {
      "w0-route": {
        strategy: "weighted",
        chain: [
          { deployment: "w0-spare", weight: 0 },
          { deployment: "w0-main", weight: 5 },
        ],
      },
    },
  });
  const rs = await many(20, () => ({ model: "w0-route", messages: USER_MSG }));
  assert.ok(rs.every((r) => h(r, "x-router-deployment") === "w0-main"), rs.map((r) => h(r, "x-router-deployment")).join());
  assert.equal(t.hits("w0-spare"), 0);
  t.script("w0-main", [steps.r503()]);
  const r = await chatOnce(w, { model: "w0-route", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(h(r, "x-router-deployment"), "w0-spare");
});

test("canary 2000 bps over 200 requests: share 0.20 ± 0.09 (≈3.2 sd), x-router-canary exactly on canary-served answers; never a fallback for the rest", async () => {
  const t = await setup({
    deployments: { "can-primary": {}, "can-new": {} },
    routes: { "can-route": { chain: ["can-primary"], canary: { deployment: "can-new", percent_bps: 2000 } } },
  });
  const N = 200;
  const rs = await many(N, () => ({ model: "can-route", messages: USER_MSG }));
  assert.ok(rs.every((r) => r.status === 200), `statuses: ${rs.map((r) => r.status)}`);
  const canary = rs.filter((r) => h(r, "x-router-deployment") === "can-new");
  for (const r of rs) {
    const served = h(r, "x-router-deployment");
    assert.equal(h(r, "x-router-canary"), served === "can-new" ? "true" : null, `served by ${served}, x-router-canary ${h(r, "x-router-canary")}`);
  }
  assert.deepEqual(t.allHits(), { "can-primary": N - canary.length, "can-new": canary.length });
  const share = canary.length / N;
  assert.ok(Math.abs(share - 0.2) <= 0.09, `canary share ${share} (${canary.length}/${N})`);

  // The primary fails: requests outside the canary slice fail rather than fall back to the canary.
  t.script("can-primary", [steps.r503()]);
  t.script("can-new", [{ ok: "answer from can-new" }]);
  const M = 40;
  const fs = await many(M, () => ({ model: "can-route", messages: USER_MSG }));
  const flagged = fs.filter((r) => h(r, "x-router-canary") === "true");
  const unflagged = fs.filter((r) => h(r, "x-router-canary") !== "true");
  assert.equal(t.hits("can-new"), flagged.length, "the canary saw exactly the canary-slice requests");
  for (const r of flagged) {
    assert.equal(r.status, 200, r.text);
    assert.equal(h(r, "x-router-deployment"), "can-new");
  }
  assert.ok(unflagged.length >= 1, "some requests outside the canary slice");
  for (const r of unflagged) {
    assert.ok(r.status >= 500, `outside the canary slice with the primary down: ${r.status} ${r.text}`);
    assert.ok(!reasons(r.res).some((x) => x.startsWith("can-new")), `reasons: ${reasons(r.res)}`);
  }
});

test("canary drawn but failing: the chain is the fallback and the answer is still marked as canary traffic", async () => {
  const t = await setup({
    deployments: { "cf-primary": {}, "cf-new": {} },
    routes: { "cf-route": { chain: ["cf-primary"], canary: { deployment: "cf-new", percent_bps: 10000 } } },
  });
  t.script("cf-new", [steps.r503()]);
  const r = await chatOnce(w, { model: "cf-route", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(h(r, "x-router-deployment"), "cf-primary");
  assert.equal(h(r, "x-router-canary"), "true");
  assert.ok(t.hits("cf-new") >= 1);
  assert.ok(reasons(r.res).some((x) => x.startsWith("cf-new:")), `reasons: ${reasons(r.res)}`);
});

test("sticky sessions: same session same deployment, sessions spread, failover moves the session until its ttl, body `user` is a session id", async () => {
  const deps = ["stk-a", "stk-b", "stk-c", "stk-d"];
  const t = await setup({
    deployments: Object.fromEntries(deps.map((d) => [d, {}])),
    routes: {
      "stk-route": { chain: deps, sticky: { ttl_ms: 60000 } },
      "stk-short": { chain: deps, sticky: { ttl_ms: 400 } },
      "stk-none": { chain: deps },
    },
  });
  const ask = (model, session, extra = {}) =>
    chatOnce(w, { model, messages: USER_MSG, ...extra }, { headers: session ? { "x-session-id": session } : {} });

  // Same session → same deployment, every time.
  const first = await ask("stk-route", "sess-A");
  const homeA = h(first, "x-router-deployment");
  assert.ok(deps.includes(homeA), homeA);
  assert.equal(h(first, "x-router-sticky"), "true");
  for (let i = 0; i < 9; i++) {
    const r = await ask("stk-route", "sess-A");
    assert.equal(r.status, 200, r.text);
    assert.equal(h(r, "x-router-deployment"), homeA, `request ${i + 2} of session A`);
    assert.equal(h(r, "x-router-sticky"), "true");
  }
  assert.equal(t.hits(homeA), 10);

  // Different sessions spread over the deployments.
  const homes = new Map();
  for (let i = 0; i < 20; i++) {
    const r = await ask("stk-route", `sess-spread-${i}`);
    homes.set(`sess-spread-${i}`, h(r, "x-router-deployment"));
  }
  const used = new Set(homes.values());
  assert.ok(used.size >= 2, `20 sessions used ${[...used]}`);
  // Without sticky on the route, sessions are ignored: chain order.
  const plain = await ask("stk-none", "sess-spread-0");
  assert.equal(h(plain, "x-router-deployment"), "stk-a");
  assert.equal(h(plain, "x-router-sticky"), null);

  // x-session-id wins over the body's user.
  const other = [...homes.entries()].find(([, d]) => d !== homeA);
  assert.ok(other, "some session lives elsewhere than session A");
  const both = await ask("stk-route", "sess-A", { user: other[0] });
  assert.equal(h(both, "x-router-deployment"), homeA);

  // `user` alone is the session id: the same deployment as x-session-id with that value.
  for (let i = 0; i < 3; i++) {
    const r = await chatOnce(w, { model: "stk-route", messages: USER_MSG, user: other[0] });
    assert.equal(h(r, "x-router-deployment"), other[1], `user=${other[0]}`);
    assert.equal(h(r, "x-router-sticky"), "true");
  }

  // The session's deployment fails: fallback, and the session stays on its new deployment
  // after the original recovers.
  t.script(homeA, [steps.r503()]);
  const moved = await ask("stk-route", "sess-A");
  assert.equal(moved.status, 200, moved.text);
  const newHome = h(moved, "x-router-deployment");
  assert.notEqual(newHome, homeA);
  assert.ok(reasons(moved.res).some((x) => x.startsWith(`${homeA}:`)), `reasons: ${reasons(moved.res)}`);
  t.script(homeA, [{ ok: `answer from ${homeA}` }]); // recovered (resets its hit count)
  for (let i = 0; i < 5; i++) {
    const r = await ask("stk-route", "sess-A");
    assert.equal(h(r, "x-router-deployment"), newHome, `after failover, request ${i + 1}`);
    assert.equal(h(r, "x-router-sticky"), "true");
  }
  assert.equal(t.hits(homeA), 0, "the recovered original is not used while the session is remembered elsewhere");

  // Same on a route with a short ttl: once it expires, the session returns to its hash home.
  const s1 = await ask("stk-short", "sess-B");
  const homeB = h(s1, "x-router-deployment");
  t.script(homeB, [steps.r503()]);
  const m = await ask("stk-short", "sess-B");
  const movedB = h(m, "x-router-deployment");
  assert.notEqual(movedB, homeB);
  t.script(homeB, [{ ok: `answer from ${homeB}` }]);
  assert.equal(h(await ask("stk-short", "sess-B"), "x-router-deployment"), movedB, "within the ttl: stays moved");
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(h(await ask("stk-short", "sess-B"), "x-router-deployment"), homeB, "after the ttl: back to its hash home");
});

test(
  "sticky: a session stays on the deployment that answered it when a hot reload adds an unrelated deployment",
  async () => {
    const deps = ["stk2-b", "stk2-c", "stk2-d", "stk2-e"];
    const t = await setup({
      deployments: Object.fromEntries(deps.map((d) => [d, {}])),
      routes: { "stk2-route": { chain: deps, sticky: { ttl_ms: 60000 } } },
    });
    const ask = async (s) => {
      const r = await chatOnce(w, { model: "stk2-route", messages: USER_MSG }, { headers: { "x-session-id": s } });
      assert.equal(r.status, 200, r.text);
      return h(r, "x-router-deployment");
    };
    const before = {};
    for (let i = 0; i < 12; i++) before[`reload-${i}`] = await ask(`reload-${i}`);
    // Same table plus one deployment that no route uses, named so that it sorts first.
    t.table.deployments["stk2-a"] = { ...t.table.deployments["stk2-b"], model: "up-stk2-a" };
    await w.putTable(t.table);
    const hz = await (await w.fetch("/healthz")).json();
    assert.equal(hz.config.error, null);
    const after = {};
    for (const s of Object.keys(before)) after[s] = await ask(s);
    assert.deepEqual(after, before, "sessions kept their deployments across an unrelated config change");
  },
);

test("fastest: after both deployments are measured, traffic goes to the faster one", async () => {
  const t = await setup({
    deployments: { "fst-slow": {}, "fst-quick": {} },
    routes: {
      "fst-route": { strategy: "fastest", chain: ["fst-slow", "fst-quick"] },
      "fst-only-slow": { chain: ["fst-slow"] },
      "fst-only-quick": { chain: ["fst-quick"] },
    },
  });
  t.script("fst-slow", [{ ok: "answer from fst-slow", delayMs: 150 }]);
  // The explore share (5 % of requests) tries the other deployment first, and says so.
  const expected = (r, usual, other) => (h(r, "x-router-explore") === "true" ? other : usual);
  // Unmeasured: chain order.
  const cold = await chatOnce(w, { model: "fst-route", messages: USER_MSG });
  assert.equal(h(cold, "x-router-deployment"), expected(cold, "fst-slow", "fst-quick"));
  for (let i = 0; i < 3; i++) {
    assert.equal((await chatOnce(w, { model: "fst-only-slow", messages: USER_MSG })).status, 200);
    assert.equal((await chatOnce(w, { model: "fst-only-quick", messages: USER_MSG })).status, 200);
  }
  // Speeds reach the isolate with the deployment objects' replies (batched, within ~1 s).
  const t0 = Date.now();
  let r;
  for (;;) {
    r = await chatOnce(w, { model: "fst-route", messages: USER_MSG });
    assert.equal(r.status, 200, r.text);
    const explored = h(r, "x-router-explore") === "true";
    if ((h(r, "x-router-deployment") === "fst-quick" && !explored) || Date.now() - t0 > 5000) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  assert.equal(h(r, "x-router-deployment"), "fst-quick", `switched after ${Date.now() - t0} ms`);
  for (let i = 0; i < 5; i++) {
    const again = await chatOnce(w, { model: "fst-route", messages: USER_MSG });
    assert.equal(h(again, "x-router-deployment"), expected(again, "fst-quick", "fst-slow"), `request ${i + 1} after the switch`);
  }
  // The slow one is still the fallback.
  t.script("fst-quick", [steps.r503()]);
  const fb = await chatOnce(w, { model: "fst-route", messages: USER_MSG });
  assert.equal(fb.status, 200, fb.text);
  assert.equal(h(fb, "x-router-deployment"), "fst-slow");
});

test("fastest: a deployment without a measured speed is explored, and once measured faster it goes first", async () => {
  const t = await setup({
    deployments: { "fx-known": {}, "fx-new": {} },
    routes: {
      "fx-route": { strategy: "fastest", chain: ["fx-known", "fx-new"] },
      "fx-only-known": { chain: ["fx-known"] },
    },
  });
  t.script("fx-known", [{ ok: "answer from fx-known", delayMs: 60 }]);
  for (let i = 0; i < 3; i++) {
    assert.equal((await chatOnce(w, { model: "fx-only-known", messages: USER_MSG })).status, 200);
  }
  await new Promise((res) => setTimeout(res, 1_200));
  // Measured known first; the new one only when the explore share (5 %) draws it.
  let explored;
  let sent = 0;
  for (; sent < 300 && !explored; sent++) {
    const r = await chatOnce(w, { model: "fx-route", messages: USER_MSG });
    assert.equal(r.status, 200, r.text);
    if (h(r, "x-router-explore") === "true") explored = r;
    else assert.equal(h(r, "x-router-deployment"), "fx-known", `request ${sent + 1}`);
  }
  assert.ok(explored, `explored within ${sent} requests`);
  assert.equal(h(explored, "x-router-deployment"), "fx-new");
  // Its speed reaches the isolate with the object's reply; then it is the fastest.
  await new Promise((res) => setTimeout(res, 1_200));
  for (let i = 0; i < 5; i++) {
    const r = await chatOnce(w, { model: "fx-route", messages: USER_MSG });
    assert.equal(h(r, "x-router-deployment"), h(r, "x-router-explore") === "true" ? "fx-known" : "fx-new", `request ${i + 1}`);
  }
});
