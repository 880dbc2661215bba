// Hedging (routes with `hedge.after_ms`, or `hedge.after: "p95"`): when the first deployment has not committed after the
// delay, the next one starts in parallel; the first to commit answers, the other is cancelled,
// and the answer is billed, plus the loser's prompt (the provider billed it: bill_failed_prompts).
// A complete answer off the request's schema is its attempt's failure, booked to its own
// deployment: it never wins the race, and the other attempt is awaited.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startFake } from "./helpers/fake-openai.mjs";
import { scenarioTable, chatOnce, chatStream, sseContent, USER_MSG } from "./helpers/worker.mjs";
import { useGateway } from "./helpers/harness.mjs";

let fake, w;
let seq = 0;

useGateway({ fakes: { fake: startFake } }, (g) => ({ fake, w } = g));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function hedged(afterMs = 200) {
  const n = ++seq;
  const slow = `hg${n}-slow`;
  const fast = `hg${n}-fast`;
  const route = `hg${n}`;
  const t = await scenarioTable(w, fake, {
    deployments: { [slow]: {}, [fast]: {} },
    routes: { [route]: { chain: [slow, fast], hedge: { after_ms: afterMs } } },
  });
  return { t, slow, fast, route };
}

test("streaming: a slow first token starts the next deployment; the fast one answers, the slow one is cancelled", async () => {
  const { t, slow, fast, route } = await hedged(200);
  t.script(slow, [{ ok: "slow answer never seen", firstTokenDelayMs: 3000 }]);
  t.script(fast, [{ ok: "fast answer wins" }]);
  const started = Date.now();
  const r = await chatStream(w, { model: route, messages: USER_MSG, stream: true, stream_options: { include_usage: true } });
  const elapsed = Date.now() - started;
  assert.equal(r.status, 200);
  assert.equal(sseContent(r.events), "fast answer wins");
  assert.ok(elapsed < 2000, `answered after ${elapsed} ms, not after the slow first token`);
  assert.equal(r.res.headers.get("x-router-deployment"), fast);
  assert.equal(r.res.headers.get("x-router-hedge"), `${slow}:cancelled,${fast}:won`);
  assert.equal(t.hits(slow), 1);
  assert.equal(t.hits(fast), 1);
  // The slow upstream request was hung up on, not left running.
  for (let i = 0; i < 50 && fake.aborted(t.scenario(slow)) === 0; i++) await sleep(20);
  assert.equal(fake.aborted(t.scenario(slow)), 1, "the losing request was cancelled");
  // Only the answer is billed: the cost is the winner's usage alone.
  const usage = r.events.map((e) => e.json?.usage).find(Boolean);
  assert.ok(usage, "usage chunk present");
  const expected = (usage.prompt_tokens * 150_000_000 + usage.completion_tokens * 600_000_000) / 1_000_000;
  const cost = Number(r.res.headers.get("x-router-cost-usd") ?? "NaN");
  // Headers are sent at commit, before usage is known: the cost header may be absent then.
  if (!Number.isNaN(cost)) assert.ok(Math.abs(cost * 1e9 - expected) < 1, `${cost} vs ${expected} nano`);
});

test("non-streaming: the whole answer is the commit point; a quick first deployment is not hedged", async () => {
  const { t, slow, fast, route } = await hedged(300);
  t.script(slow, [{ ok: "quick enough", delayMs: 20 }]);
  t.script(fast, [{ ok: "not needed" }]);
  const r = await chatOnce(w, { model: route, messages: USER_MSG });
  assert.equal(r.status, 200);
  assert.equal(r.json.choices[0].message.content, "quick enough");
  assert.equal(r.res.headers.get("x-router-hedge"), null);
  assert.equal(t.hits(fast), 0, "no hedge before the delay");

  t.script(slow, [{ ok: "too slow", delayMs: 2000 }]);
  t.script(fast, [{ ok: "hedge answered" }]);
  const h = await chatOnce(w, { model: route, messages: USER_MSG });
  assert.equal(h.json.choices[0].message.content, "hedge answered");
  assert.equal(h.res.headers.get("x-router-deployment"), fast);
  const cost = BigInt(Math.round(Number(h.res.headers.get("x-router-cost-usd")) * 1e9));
  const u = h.json.usage;
  const winner = BigInt(Math.ceil((u.prompt_tokens * 150_000_000 + u.completion_tokens * 600_000_000) / 1_000_000));
  // The cancelled slow attempt's prompt, as the gateway estimates it: "Say hello." is 10
  // characters, 3 tokens at 0.15 USD / Mtok.
  const loser = BigInt(Math.ceil((3 * 150_000_000) / 1_000_000));
  assert.equal(cost, winner + loser, "billed: the winner's usage and the cancelled attempt's prompt");
});

test("the hedge fails, the first deployment still answers; both fail, the caller gets the usual error", async () => {
  const { t, slow, fast, route } = await hedged(100);
  t.script(slow, [{ ok: "slow but sure", delayMs: 600 }]);
  t.script(fast, [{ status: 503, body: { error: { message: "busy", type: "server_error" } } }]);
  const r = await chatOnce(w, { model: route, messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, "slow but sure");
  assert.equal(r.res.headers.get("x-router-deployment"), slow);
  assert.match(r.res.headers.get("x-router-fallback-reasons") ?? "", new RegExp(`${fast}:overloaded:503`));

  t.script(slow, [{ status: 500, body: "boom", delayMs: 400 }]);
  t.script(fast, [{ status: 503, body: { error: { message: "busy", type: "server_error" } } }]);
  const both = await chatOnce(w, { model: route, messages: USER_MSG });
  assert.equal(both.status, 502, both.text);
  // The failed hedge is not tried again after the first deployment's retries.
  assert.equal(t.hits(fast), 1);
});

const RATING = { type: "object", additionalProperties: false, required: ["rating"], properties: { rating: { type: "number" } } };

/** A strict-schema request on a route [first, hedge, third] hedged after 150 ms, each
 *  deployment answering its one scripted answer. */
async function hedgedRating(prefix, [first, hedge, third]) {
  const n = ++seq;
  const names = ["first", "hedge", "third"].map((x) => `${prefix}${n}-${x}`);
  const route = `${prefix}${n}`;
  const t = await scenarioTable(w, fake, {
    deployments: Object.fromEntries(names.map((d) => [d, {}])),
    routes: { [route]: { chain: names, hedge: { after_ms: 150 } } },
  });
  [first, hedge, third].forEach((answer, i) => t.script(names[i], [answer]));
  const r = await chatOnce(w, {
    model: route,
    messages: USER_MSG,
    response_format: { type: "json_schema", json_schema: { name: "rating", strict: true, schema: RATING } },
  });
  const reasons = r.res.headers.get("x-router-fallback-reasons") ?? "";
  const hits = names.map((d) => t.hits(d));
  return { r, names, reasons, hits };
}

test("a hedge whose answer is off the request's schema loses the race: it is booked to its own deployment and the first attempt still answers", async () => {
  const { r, names, reasons, hits } = await hedgedRating("hs", [
    { ok: '{"rating": 3}', delayMs: 1200 },
    { ok: '{"rating": "high"}' },
    { ok: '{"rating": 4}' },
  ]);
  const [slow, fast] = names;
  assert.equal(r.status, 200, r.text);
  // The refused hedge did not cancel the first attempt, whose valid answer is the one served.
  assert.equal(r.json.choices[0].message.content, '{"rating": 3}');
  assert.equal(r.res.headers.get("x-router-deployment"), slow);
  assert.match(reasons, new RegExp(`${fast}:invalid_output`), reasons);
  assert.doesNotMatch(reasons, new RegExp(`${slow}:`), reasons);
  assert.doesNotMatch(r.res.headers.get("x-router-hedge") ?? "", /cancelled/);
  assert.deepEqual(hits, [1, 1, 0], "no third attempt was needed");
});

test("the first attempt's off-schema answer does not end the race: the hedge's valid answer is served", async () => {
  const { r, names, reasons, hits } = await hedgedRating("hr", [
    { ok: '{"rating": "high"}', delayMs: 400 },
    { ok: '{"rating": 5}', delayMs: 800 },
    { ok: '{"rating": 4}' },
  ]);
  const [first, hedge] = names;
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, '{"rating": 5}');
  assert.equal(r.res.headers.get("x-router-deployment"), hedge);
  assert.match(reasons, new RegExp(`${first}:invalid_output`), reasons);
  assert.match(r.res.headers.get("x-router-hedge") ?? "", new RegExp(`${hedge}:won`));
  assert.deepEqual(hits, [1, 1, 0], "the hedge was not sent twice, the third never");
});

/**
 * A p95-hedged route `hg<n>` over [slow, fast] (floor 100 ms, cap 4 s), and `hg<n>-measure`
 * over slow alone (it measures the deployment without hedging). `minSamples`: answers needed
 * for a p95 (the default needs 20 in the recent window).
 */
async function p95Hedged(minSamples) {
  const n = ++seq;
  const slow = `hg${n}-slow`;
  const fast = `hg${n}-fast`;
  const t = await scenarioTable(w, fake, {
    deployments: { [slow]: {}, [fast]: {} },
    routes: {
      [`hg${n}-measure`]: { chain: [slow] },
      [`hg${n}`]: { chain: [slow, fast], hedge: { after: "p95", floor_ms: 100, cap_ms: 4000 } },
    },
  });
  t.table.defaults.degradation = { min_recent: minSamples, min_baseline: minSamples };
  await w.putTable(t.table);
  return { t, slow, fast, route: `hg${n}`, measure: `hg${n}-measure` };
}

test("hedge after the measured p95: a slow first token is hedged at about the deployment's p95 TTFT, not at the floor", async () => {
  const { t, slow, fast, route, measure } = await p95Hedged(5);
  t.script(slow, [{ ok: "measured answer", firstTokenDelayMs: 600 }]);
  for (let i = 0; i < 6; i++) {
    const r = await chatStream(w, { model: measure, messages: USER_MSG, stream: true });
    assert.equal(r.status, 200);
  }
  // The reports reach the deployment's object within a second; its reply carries the p95.
  await sleep(2_000);
  t.script(slow, [{ ok: "slow answer never seen", firstTokenDelayMs: 3000 }]);
  t.script(fast, [{ ok: "fast answer wins" }]);
  const sent = Date.now();
  const r = await chatStream(w, { model: route, messages: USER_MSG, stream: true });
  assert.equal(sseContent(r.events), "fast answer wins");
  assert.equal(r.res.headers.get("x-router-hedge"), `${slow}:cancelled,${fast}:won`);
  // The hedge started after the measured p95 (≈ 600 ms; buckets are within 25 %), not at
  // the 100 ms floor, and long before the slow first token.
  const hedgedAfter = t.requests(fast)[0].at - sent;
  assert.ok(hedgedAfter >= 400 && hedgedAfter < 2000, `hedge started after ${hedgedAfter} ms`);
});

test("hedge after p95: a deployment its hedge always beats is still measured, and is soon no longer hedged", async () => {
  const { t, slow, fast, route } = await p95Hedged(3);
  // A first token at 700 ms, every time; the hedge's comes 150 ms after it starts. Hedged at
  // the 100 ms floor, the slow deployment never answers first, so only the time it waited
  // before being cancelled can measure it.
  t.script(slow, [{ ok: "the slow deployment answers", firstTokenDelayMs: 700 }]);
  t.script(fast, [{ ok: "the hedge answers", firstTokenDelayMs: 150 }]);
  const hedges = [];
  // Each step up needs the previous report at the object (≤ 1 s): 30 requests leave room
  // on a loaded machine (≈ 10 are needed).
  for (let i = 0; i < 30; i++) {
    const r = await chatStream(w, { model: route, messages: USER_MSG, stream: true });
    assert.equal(r.status, 200);
    hedges.push(r.res.headers.get("x-router-hedge"));
    if (hedges.length >= 3 && hedges.slice(-3).every((h) => h === null)) break;
    // Reports reach the deployment's object within a second; its reply carries the p95.
    await sleep(1_100);
  }
  assert.equal(hedges[0], `${slow}:cancelled,${fast}:won`, "hedged at the floor while unmeasured");
  assert.deepEqual(hedges.slice(-3), [null, null, null], `no longer hedged: ${JSON.stringify(hedges)}`);
});

test("hedge after p95, non-streaming: the hedge waits for the whole answer's p95, not the first token's", async () => {
  const { t, slow, fast, route, measure } = await p95Hedged(5);
  // Measured: first tokens at 200 ms, whole answers at 900 ms.
  t.script(slow, [{ ok: "measured answer", firstTokenDelayMs: 200 }]);
  for (let i = 0; i < 6; i++) {
    assert.equal((await chatStream(w, { model: measure, messages: USER_MSG, stream: true })).status, 200);
  }
  t.script(slow, [{ ok: "measured answer", firstTokenDelayMs: 900 }]);
  for (let i = 0; i < 6; i++) {
    assert.equal((await chatOnce(w, { model: measure, messages: USER_MSG })).status, 200);
  }
  await sleep(2_000);
  // An ordinary whole answer (900 ms) is not hedged; a first token at 900 ms would be.
  t.script(fast, [{ ok: "the hedge answers" }]);
  const r = await chatOnce(w, { model: route, messages: USER_MSG });
  assert.equal(r.status, 200);
  assert.equal(r.res.headers.get("x-router-hedge"), null, "not hedged");
  assert.equal(r.json.choices[0].message.content, "measured answer");
  assert.equal(t.hits(fast), 0);
});
