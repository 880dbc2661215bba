// Gateway keys' limits, enforced exactly under concurrency by reserve-then-settle in the key
// object: RPM, TPM, day and month budgets, and the usage and spend recorded for plain, streamed
// and cut streams (a budgeted key's answers capped at what was reserved).
//
// Each test makes its own keys (fresh secrets), so the key objects and their counters never
// carry over between tests.

import { test } from "node:test";
import assert from "node:assert/strict";
import { scenarioTable, chatOnce, chatStream, sseContent } from "./helpers/worker.mjs";
import {
  IN_NANOS,
  OUT_NANOS,
  fake,
  wk,
  secrets,
  sleep,
  putKey,
  admin,
  createKey,
  keyInfo,
  settledKey,
  usdToNanos,
  auth,
  assertError,
  oneRoute,
  body,
  BUDGET_MSG,
  BUDGET_MAX_TOKENS,
  E,
  EXACT_USAGE,
  useKeysGateway,
} from "./helpers/keys-suite.mjs";

useKeysGateway();

// ---------------------------------------------------------------------------------------------
// RPM / TPM

test("rpm 5: 20 concurrent requests -> exactly 5 answered, 15 x 429 rate_limit_exceeded with retry-after", async () => {
  const t = await oneRoute(wk);
  t.script("d", [{ ok: "within the rate", delayMs: 100 }]);
  const { key } = await putKey(wk, { name: "rpm-5", rpm: 5 });

  const results = await Promise.all(Array.from({ length: 20 }, () => chatOnce(wk, body(), { headers: auth(key) })));
  const ok = results.filter((r) => r.status === 200);
  const limited = results.filter((r) => r.status === 429);
  assert.equal(ok.length, 5, `statuses: ${results.map((r) => r.status).join(",")}`);
  assert.equal(limited.length, 15);

  for (const r of limited) {
    const e = assertError(r, 429, "rate_limit_exceeded", "rate_limit_error");
    assert.match(e.message, /requests per minute/);
    const ra = r.res.headers.get("retry-after");
    assert.match(ra ?? "", /^\d+$/, "retry-after is integer seconds");
    assert.ok(Number(ra) >= 1 && Number(ra) <= 60, `retry-after ${ra}`);
    assert.equal(r.res.headers.get("x-ratelimit-limit-requests"), "5");
    assert.equal(r.res.headers.get("x-ratelimit-remaining-requests"), "0");
    assert.match(r.res.headers.get("x-ratelimit-reset-requests") ?? "", /^\d+s$/);
  }
  for (const r of ok) {
    assert.equal(r.json.choices[0].message.content, "within the rate");
    assert.equal(r.res.headers.get("x-ratelimit-limit-requests"), "5");
  }
  // Admission is sequential on the key's object: the answers saw 4, 3, 2, 1, 0 requests left.
  const remaining = ok.map((r) => Number(r.res.headers.get("x-ratelimit-remaining-requests"))).sort();
  assert.deepEqual(remaining, [0, 1, 2, 3, 4]);
  assert.equal(t.hits("d"), 5, "refused requests never reached the provider");
});

test("tpm: the token window admits requests until their estimates no longer fit", async () => {
  const t = await oneRoute(wk);
  t.script("d", [{ ok: "tokens", usage: EXACT_USAGE }]);
  // Each request: 2 prompt + 100 output = 102 tokens. 250 holds two of them.
  const { key } = await putKey(wk, { name: "tpm-250", tpm: 250 });
  const req = body({ messages: BUDGET_MSG, max_tokens: BUDGET_MAX_TOKENS });
  const first = await chatOnce(wk, req, { headers: auth(key) });
  assert.equal(first.status, 200, first.text);
  assert.equal(first.res.headers.get("x-ratelimit-limit-tokens"), "250");
  assert.equal(first.res.headers.get("x-ratelimit-remaining-tokens"), "148");
  const second = await chatOnce(wk, req, { headers: auth(key) });
  assert.equal(second.status, 200, second.text);
  assert.equal(second.res.headers.get("x-ratelimit-remaining-tokens"), "46");
  const third = await chatOnce(wk, req, { headers: auth(key) });
  const e = assertError(third, 429, "rate_limit_exceeded", "rate_limit_error");
  assert.match(e.message, /tokens per minute/);
  assert.match(third.res.headers.get("retry-after") ?? "", /^\d+$/);
  assert.equal(third.res.headers.get("x-ratelimit-limit-tokens"), "250");
  // A smaller request still fits: 2 prompt + 40 output = 42 <= 46.
  const small = await chatOnce(wk, { ...req, max_tokens: 40 }, { headers: auth(key) });
  assert.equal(small.status, 200, small.text);
  assert.equal(t.hits("d"), 3);
});

// ---------------------------------------------------------------------------------------------
// budgets

test("day budget of 10 estimates: 50 concurrent requests -> exactly 10 answered; spend = budget = sum of costs", async () => {
  const t = await oneRoute(wk);
  // The provider bills exactly the estimate (2 prompt + 100 completion tokens).
  t.script("d", [{ ok: "a budgeted answer", usage: EXACT_USAGE, delayMs: 200 }]);
  const budget = 10n * E; // 603_000 nano-USD
  assert.equal(budget, 603_000n);
  const { id, key } = await createKey(wk, { name: "budget-10", budget_day_usd: "0.000603" });

  const req = body({ messages: BUDGET_MSG, max_tokens: BUDGET_MAX_TOKENS });
  const results = await Promise.all(Array.from({ length: 50 }, () => chatOnce(wk, req, { headers: auth(key) })));
  const ok = results.filter((r) => r.status === 200);
  const denied = results.filter((r) => r.status !== 200);
  assert.equal(ok.length, 10, `statuses: ${results.map((r) => r.status).join(",")}`);
  for (const r of denied) {
    const e = assertError(r, 429, "budget_exceeded", "insufficient_quota");
    assert.match(e.message, /daily budget/);
    const ra = r.res.headers.get("retry-after");
    assert.match(ra ?? "", /^\d+$/, "retry-after is integer seconds");
    assert.ok(Number(ra) >= 1 && Number(ra) <= 86_400, `retry-after ${ra} is until the end of the UTC day`);
  }
  let sum = 0n;
  for (const r of ok) {
    const c = r.res.headers.get("x-router-cost-usd");
    assert.equal(c, "0.0000603", "cost of 2 prompt + 100 completion tokens");
    sum += usdToNanos(c);
  }
  assert.equal(t.hits("d"), 10, "denied requests never reached the provider");

  const state = await settledKey(wk, id, (s) => s.spend.reservations === 0 && s.usage.total.requests === 10);
  assert.equal(state.spend.reservations, 0, `all reservations settled: ${JSON.stringify(state.spend)}`);
  assert.equal(state.spend.reserved_nanos, 0);
  assert.ok(BigInt(state.spend.day_nanos) <= budget, `spend ${state.spend.day_nanos} <= budget ${budget}`);
  assert.equal(BigInt(state.spend.day_nanos), sum, "spend = sum of x-router-cost-usd");
  assert.equal(BigInt(state.spend.day_nanos), budget);
  assert.equal(BigInt(state.spend.month_nanos), sum);
  assert.equal(state.usage.total.ok, 10);
  assert.equal(BigInt(state.usage.total.cost_nanos), sum);
  assert.equal(state.usage.total.input_tokens, 20);
  assert.equal(state.usage.total.output_tokens, 1000);
  // Stable: nothing more arrives later.
  await sleep(200);
  const again = (await keyInfo(wk, id)).state;
  assert.deepEqual(again.spend, state.spend);

  // The budget is spent: even a tiny request is refused now.
  const after = await chatOnce(wk, body({ messages: BUDGET_MSG, max_tokens: 1 }), { headers: auth(key) });
  assertError(after, 429, "budget_exceeded", "insufficient_quota");
});

test("month budget: the estimate is priced at the dearest deployment of the chain", async () => {
  const t = await scenarioTable(wk, fake, {
    deployments: {
      cheap: {}, // 0.15 / 0.6
      dear: { price: { input_per_mtok_usd: 0.3, output_per_mtok_usd: 1.2 } },
    },
    routes: { gw: { chain: ["cheap", "dear"] } },
  });
  t.script("cheap", [{ ok: "cheap answer", usage: EXACT_USAGE }]);
  // Estimate at the dear price: 2 × 300 + 100 × 1200 = 120 600 nano-USD; the budget holds one.
  // The cheap deployment answers and costs 60 300, which leaves 60 300: enough for a second
  // request estimated at the cheap price, not for one estimated at the dear price.
  const { key, id } = await putKey(wk, { name: "month-1", budget_month_usd: 0.0001206 });
  const req = body({ messages: BUDGET_MSG, max_tokens: BUDGET_MAX_TOKENS });
  const first = await chatOnce(wk, req, { headers: auth(key) });
  assert.equal(first.status, 200, first.text);
  assert.equal(first.res.headers.get("x-router-deployment"), "cheap");
  assert.equal(first.res.headers.get("x-router-cost-usd"), "0.0000603");
  const state = await settledKey(wk, id, (s) => s.spend.reservations === 0 && s.spend.month_nanos > 0);
  assert.equal(state.spend.month_nanos, 60_300);
  assert.equal(state.spend.reservations, 0);

  const second = await chatOnce(wk, req, { headers: auth(key) });
  const e = assertError(second, 429, "budget_exceeded", "insufficient_quota");
  assert.match(e.message, /monthly budget/);
  const ra = Number(second.res.headers.get("retry-after"));
  assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 31 * 86_400, `retry-after ${ra} is until next month`);
  assert.deepEqual(t.allHits(), { cheap: 1, dear: 0 });
});

// ---------------------------------------------------------------------------------------------
// usage of streams

test("streamed request: usage and cost are recorded on the key after the stream ends", async () => {
  const t = await oneRoute(wk);
  t.script("d", [{ ok: "one two three" }]);
  const { id, key } = await createKey(wk, { name: "streamer" }); // no limits: usage is still recorded
  const r = await chatStream(wk, body({ stream_options: { include_usage: true } }), { headers: auth(key) });
  assert.equal(r.status, 200);
  assert.equal(r.error, null);
  assert.equal(sseContent(r.events), "one two three");
  const usageEvent = r.events.find((e) => e.json?.usage);
  assert.ok(usageEvent, "usage chunk passed through");
  // The fake reports 4 + ceil(10/4) = 7 prompt tokens and 3 completion tokens.
  assert.equal(usageEvent.json.usage.prompt_tokens, 7);
  assert.equal(usageEvent.json.usage.completion_tokens, 3);
  const cost = 7n * IN_NANOS + 3n * OUT_NANOS; // 2850

  const state = await settledKey(wk, id, (s) => s.usage.total.requests >= 1);
  assert.equal(state.usage.total.requests, 1);
  assert.equal(state.usage.total.ok, 1);
  assert.equal(state.usage.total.errors, 0);
  assert.equal(state.usage.total.input_tokens, 7);
  assert.equal(state.usage.total.output_tokens, 3);
  assert.equal(BigInt(state.usage.total.cost_nanos), cost);
  assert.equal(BigInt(state.spend.day_nanos), cost, "spend of an unlimited key is counted too");
  assert.equal(t.hits("d"), 1);
});

test("stream cut after the first chunk (resume off): estimated non-zero cost recorded, counted as an error", async () => {
  const t = await oneRoute(wk, { routeExtra: { resume: "off" } });
  t.script("d", [{ ok: "alpha beta gamma" }, { ok: "alpha beta gamma delta", cutAfterChunks: 1 }]);
  const { id, key } = await createKey(wk, { name: "cut", rpm: 100, budget_day_usd: "1" }); // limited: a reservation is made

  const full = await chatStream(wk, body({ stream_options: { include_usage: true } }), { headers: auth(key) });
  assert.equal(full.status, 200);
  assert.equal(sseContent(full.events), "alpha beta gamma");
  const s1 = await settledKey(wk, id, (s) => s.usage.total.requests >= 1 && s.spend.reservations === 0);
  assert.equal(s1.usage.total.requests, 1);
  assert.ok(s1.usage.total.cost_nanos > 0);

  const cut = await chatStream(wk, body({ stream_options: { include_usage: true } }), { headers: auth(key) });
  assert.equal(cut.status, 200);
  assert.equal(sseContent(cut.events), "alpha", "only the first chunk was delivered");
  assert.ok(cut.events.some((e) => e.json?.error), "the stream ends with an in-band error");
  assert.ok(!cut.events.some((e) => e.data === "[DONE]"), "no [DONE] after the cut");
  assert.equal(t.hits("d"), 2, "not resumed");

  const s2 = await settledKey(wk, id, (s) => s.usage.total.requests >= 2 && s.spend.reservations === 0);
  assert.equal(s2.usage.total.requests, 2);
  assert.equal(s2.usage.total.ok, 1);
  assert.equal(s2.usage.total.errors, 1, "the cut request counts as an error");
  assert.ok(s2.usage.total.cost_nanos > s1.usage.total.cost_nanos, `cost grew: ${s1.usage.total.cost_nanos} -> ${s2.usage.total.cost_nanos}`);
  assert.ok(s2.usage.total.output_tokens > s1.usage.total.output_tokens, "delivered text was counted as output");
  assert.ok(s2.spend.day_nanos > s1.spend.day_nanos, "the cut request's estimated cost was spent");
  assert.equal(s2.spend.reservations, 0, "the reservation was settled, not left hanging");
  assert.equal(s2.spend.reserved_nanos, 0);
});

test(
  "client aborts a stream mid-way: the key's reservation is settled and the request recorded as an error",
  async () => {
    const t = await oneRoute(wk, { routeExtra: { resume: "off" } });
    const words = Array.from({ length: 20 }, (_, i) => `w${i}`).join(" ");
    t.script("d", [{ ok: words, chunkDelayMs: 100 }]);
    const { id, key } = await createKey(wk, { name: "aborter", rpm: 100, budget_day_usd: "1" });
    const ac = new AbortController();
    const res = await wk.chat(body({ stream: true, stream_options: { include_usage: true } }), {
      headers: auth(key),
      signal: ac.signal,
    });
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let text = "";
    while (!text.includes("w2")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
    }
    ac.abort(); // the client goes away after a few chunks
    const s = await settledKey(wk, id, (s) => s.spend.reservations === 0 && s.usage.total.requests >= 1);
    assert.equal(s.spend.reservations, 0, `reservation left hanging: ${JSON.stringify(s.spend)}`);
    assert.equal(s.spend.reserved_nanos, 0);
    assert.equal(s.usage.total.requests, 1, "the aborted request is recorded");
    assert.equal(s.usage.total.errors, 1, "as an error (client_disconnected)");
  },
);

test("a budgeted key's requests without max_tokens are capped at what was reserved: long answers cannot overshoot the budget", async () => {
  for (const stream of [false, true]) {
    // estimated_output_tokens 20: each request reserves 2 prompt + 20 output tokens.
    const t = await scenarioTable(wk, fake, {
      deployments: { d: {} },
      routes: { gw: { chain: ["d"] } },
      defaults: { estimated_output_tokens: 20 },
    });
    const long = Array.from({ length: 200 }, (_, i) => `w${i}`).join(" ");
    t.script("d", [{ ok: long, honourMaxTokens: true, delayMs: 100 }]);
    const reserved = 2n * IN_NANOS + 20n * OUT_NANOS; // 12_300 nano-USD
    const budget = 5n * reserved;
    const { id, key } = await createKey(wk, { name: `capped-${stream}`, budget_day_usd: (Number(budget) / 1e9).toFixed(9) });
    const req = body({ messages: BUDGET_MSG, stream, ...(stream ? { stream_options: { include_usage: true } } : {}) });
    const send = () => (stream ? chatStream(wk, req, { headers: auth(key) }) : chatOnce(wk, req, { headers: auth(key) }));
    const results = await Promise.all(Array.from({ length: 10 }, send));
    const ok = results.filter((r) => r.status === 200);
    assert.equal(ok.length, 5, `statuses: ${results.map((r) => r.status).join(",")}`);
    for (const up of t.requests("d")) assert.equal(up.body.max_tokens, 20, "the upstream was asked for at most the reserved output");
    for (const r of ok) {
      if (stream) {
        // Cut at the reservation: an in-band budget_exceeded after the content, never [DONE].
        assert.ok(!r.text.includes("[DONE]"), r.text);
        const last = r.events.at(-1)?.json;
        assert.equal(last?.error?.code, "budget_exceeded", r.text.slice(-400));
      } else {
        assert.equal(r.json.choices[0].finish_reason, "length");
      }
    }
    const state = await settledKey(wk, id, (s) => s.spend.reservations === 0 && s.usage.total.requests === 10);
    assert.equal(state.usage.total.output_tokens, 5 * 20, "each answer stopped at the reserved 20 tokens");
    // The prompt is estimated at 4 characters per token (2) where this fake counts 6: that
    // estimate's error (4 prompt tokens a request) is the only overshoot left.
    const slack = 5n * 4n * IN_NANOS;
    assert.ok(BigInt(state.spend.day_nanos) <= budget + slack, `spend ${state.spend.day_nanos} <= budget ${budget} + ${slack}`);
  }
});

test(
  "a budget written as a small JSON number (0.000009 USD) is read exactly",
  async () => {
    const t = await oneRoute(wk);
    t.script("d", [{ ok: "tiny", usage: { prompt_tokens: 2, completion_tokens: 10, total_tokens: 12 } }]);
    // Raw JSON text, exactly as a client would send it (no exponent).
    const r = await admin(wk, "POST", "keys", { body: '{"name":"tiny-budget","budget_day_usd":0.000009}' });
    assert.equal(r.status, 201, r.text);
    secrets.add(r.json.key);
    // One request: 2 prompt + 10 output tokens = 300 + 6000 = 6300 nano-USD; 9000 holds one.
    const req = body({ messages: BUDGET_MSG, max_tokens: 10 });
    const first = await chatOnce(wk, req, { headers: auth(r.json.key) });
    assert.equal(first.status, 200, first.text);
    await settledKey(wk, r.json.id, (s) => s.spend.reservations === 0 && s.spend.day_nanos > 0);
    assertError(await chatOnce(wk, req, { headers: auth(r.json.key) }), 429, "budget_exceeded");
  },
);
