// Retry and fallback policy for failures before any answer: 429, 5xx, resets, refused
// connections, hangs (timeouts), 401/404, and the final errors (429, 502, 504).

import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { startFake, steps } from "./helpers/fake-openai.mjs";
import {
  scenarioTable,
  chatOnce,
  chatStream,
  sseContent,
  errorShape,
  reasons,
  FAKE_SECRET,
  USER_MSG,
} from "./helpers/worker.mjs";
import { useGateway, twoDeployments as twoDeploymentsOf } from "./helpers/harness.mjs";

let fake, w;

useGateway({ fakes: { fake: startFake } }, (g) => ({ fake, w } = g));

const ROUTE = "gw";
const body = (extra = {}) => ({ model: ROUTE, messages: USER_MSG, ...extra });

const twoDeployments = (depExtra, routeExtra, defaults) => twoDeploymentsOf(w, fake, ROUTE, depExtra, routeExtra, defaults);

function assertAnswer(r, { content, deployment, attempts, reasonList }) {
  assert.equal(r.status, 200, `status 200, body: ${r.text}`);
  assert.equal(r.json.choices[0].message.content, content);
  assert.equal(r.res.headers.get("x-router-deployment"), deployment);
  assert.equal(r.res.headers.get("x-router-attempts"), String(attempts));
  if (reasonList instanceof RegExp || Array.isArray(reasonList)) {
    const got = reasons(r.res);
    if (Array.isArray(reasonList)) {
      assert.equal(got.length, reasonList.length, `fallback reasons: ${JSON.stringify(got)}`);
      reasonList.forEach((exp, i) =>
        exp instanceof RegExp ? assert.match(got[i], exp) : assert.equal(got[i], exp),
      );
    }
  }
}

// ---------------------------------------------------------------- 429

test("429 with Retry-After: 1 then success on the same deployment, after >= ~1 s", async () => {
  const t = await twoDeployments();
  t.script("primary", [steps.r429("1"), { ok: "second time lucky", model: "fake-primary-v2" }]);
  t.script("secondary", [{ ok: "should not be used" }]);
  const r = await chatOnce(w, body());
  assertAnswer(r, { content: "second time lucky", deployment: "primary", attempts: 2, reasonList: ["primary:rate_limited:429"] });
  assert.equal(r.json.model, "fake-primary-v2");
  assert.deepEqual(t.allHits(), { primary: 2, secondary: 0 });
  const [a, b] = t.requests("primary");
  assert.ok(b.at - a.at >= 950, `second attempt ${b.at - a.at} ms after the first (Retry-After: 1)`);
  assert.ok(r.elapsedMs >= 950, `caller waited ${r.elapsedMs} ms`);
});

test("persistent 429: max_attempts on the first deployment, then the second answers", async () => {
  const t = await twoDeployments();
  t.script("primary", [steps.r429(null)]);
  t.script("secondary", [{ ok: "from secondary" }]);
  const r = await chatOnce(w, body());
  assertAnswer(r, {
    content: "from secondary",
    deployment: "secondary",
    attempts: 3,
    reasonList: ["primary:rate_limited:429", "primary:rate_limited:429"],
  });
  assert.equal(r.json.model, "fake-" + t.scenario("secondary"));
  assert.deepEqual(t.allHits(), { primary: 2, secondary: 1 });
});

test("429 with a Retry-After above max_retry_after_ms falls back at once", async () => {
  const t = await twoDeployments();
  t.script("primary", [steps.r429("60")]);
  t.script("secondary", [{ ok: "no waiting" }]);
  const r = await chatOnce(w, body());
  assertAnswer(r, { content: "no waiting", deployment: "secondary", attempts: 2, reasonList: ["primary:rate_limited:429"] });
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 1 });
  assert.ok(r.elapsedMs < 2000, `answered in ${r.elapsedMs} ms`);
});

test("every attempt of every deployment 429 -> 429 with Retry-After and rate_limit_error", async () => {
  const t = await twoDeployments();
  t.script("primary", [steps.r429(null)]);
  t.script("secondary", [steps.r429(null)]);
  const r = await chatOnce(w, body());
  assert.equal(r.status, 429, r.text);
  const e = errorShape(r.json);
  assert.equal(e.type, "rate_limit_error");
  assert.equal(e.code, "rate_limited");
  assert.match(r.res.headers.get("retry-after") ?? "", /^\d+$/, "Retry-After header (seconds)");
  assert.equal(r.res.headers.get("x-router-attempts"), "4");
  assert.deepEqual(reasons(r.res), [
    "primary:rate_limited:429",
    "primary:rate_limited:429",
    "secondary:rate_limited:429",
    "secondary:rate_limited:429",
  ]);
  assert.deepEqual(t.allHits(), { primary: 2, secondary: 2 });
});

test("streaming: 429 before the first chunk is retried invisibly", async () => {
  const t = await twoDeployments();
  t.script("primary", [steps.r429(null), { ok: "clean stream" }]);
  const r = await chatStream(w, body());
  assert.equal(r.status, 200);
  assert.equal(sseContent(r.events), "clean stream");
  assert.equal(r.events.at(-1).data, "[DONE]");
  assert.ok(!r.events.some((e) => e.json?.error), "no error event");
  assert.equal(r.res.headers.get("x-router-attempts"), "2");
  assert.deepEqual(t.allHits(), { primary: 2, secondary: 0 });
});

// ---------------------------------------------------------------- 5xx, resets, refused

test("500 once then healthy: retried on the same deployment", async () => {
  const t = await twoDeployments();
  t.script("primary", [steps.r500(), { ok: "healthy again" }]);
  const r = await chatOnce(w, body());
  assertAnswer(r, { content: "healthy again", deployment: "primary", attempts: 2, reasonList: ["primary:server_error:500"] });
  assert.deepEqual(t.allHits(), { primary: 2, secondary: 0 });
});

test("persistent 503 -> fallback to the second deployment after max_attempts", async () => {
  const t = await twoDeployments();
  t.script("primary", [steps.r503()]);
  t.script("secondary", [{ ok: "fallback answer" }]);
  const r = await chatOnce(w, body());
  assertAnswer(r, {
    content: "fallback answer",
    deployment: "secondary",
    attempts: 3,
    reasonList: [/^primary:(overloaded|server_error):503$/, /^primary:(overloaded|server_error):503$/],
  });
  assert.deepEqual(t.allHits(), { primary: 2, secondary: 1 });
});

test("connection reset before headers once: retried on the same deployment", async () => {
  const t = await twoDeployments();
  t.script("primary", [steps.reset(), { ok: "after reset" }]);
  const r = await chatOnce(w, body());
  assertAnswer(r, { content: "after reset", deployment: "primary", attempts: 2, reasonList: [/^primary:[a-z_]+$/] });
  assert.deepEqual(t.allHits(), { primary: 2, secondary: 0 });
});

test("persistent reset before headers -> fallback", async () => {
  const t = await twoDeployments();
  t.script("primary", [steps.reset()]);
  t.script("secondary", [{ ok: "other one" }]);
  const r = await chatOnce(w, body());
  assertAnswer(r, { content: "other one", deployment: "secondary", attempts: 3, reasonList: [/^primary:[a-z_]+$/, /^primary:[a-z_]+$/] });
  assert.deepEqual(t.allHits(), { primary: 2, secondary: 1 });
});

test("connection refused -> connect_error, retried, then fallback", async () => {
  // A port that was free a moment ago and now has no listener.
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const deadPort = srv.address().port;
  await new Promise((r) => srv.close(r));
  const t = await scenarioTable(w, fake, {
    deployments: { dead: {}, alive: {} },
    routes: { [ROUTE]: { chain: ["dead", "alive"] } },
  });
  t.table.providers["p-dead"].base_url = `http://127.0.0.1:${deadPort}/v1`;
  await w.putTable(t.table);
  t.script("alive", [{ ok: "alive here" }]);
  const r = await chatOnce(w, body());
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, "alive here");
  assert.equal(r.res.headers.get("x-router-deployment"), "alive");
  assert.equal(r.res.headers.get("x-router-attempts"), "3");
  assert.deepEqual(reasons(r.res), ["dead:connect_error", "dead:connect_error"]);
  assert.deepEqual(t.allHits(), { dead: 0, alive: 1 });
});

test("all deployments fail with 5xx -> 502 upstream_error with the last failure's class", async () => {
  const t = await twoDeployments();
  t.script("primary", [steps.r500()]);
  t.script("secondary", [steps.r503()]);
  const r = await chatOnce(w, body());
  assert.equal(r.status, 502, r.text);
  const e = errorShape(r.json);
  assert.equal(e.type, "upstream_error");
  assert.match(e.code, /^(overloaded|server_error)$/, "class of the last failure (secondary's 503)");
  assert.match(e.message, /503|overloaded/i, "message includes the last upstream reason");
  assert.equal(r.res.headers.get("x-router-attempts"), "4");
  assert.equal(reasons(r.res).length, 4);
  assert.deepEqual(t.allHits(), { primary: 2, secondary: 2 });
});

// ---------------------------------------------------------------- 401 / 404

test("401 from upstream -> auth_error, no retry, next deployment", async () => {
  const t = await twoDeployments();
  t.script("primary", [steps.r401()]);
  t.script("secondary", [{ ok: "authorised elsewhere" }]);
  const r = await chatOnce(w, body());
  assertAnswer(r, { content: "authorised elsewhere", deployment: "secondary", attempts: 2, reasonList: ["primary:auth_error:401"] });
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 1 });
  assert.ok(!r.text.includes(FAKE_SECRET));
});

test("404 from upstream -> not_found, no retry, next deployment", async () => {
  const t = await twoDeployments();
  t.script("primary", [steps.r404()]);
  t.script("secondary", [{ ok: "found it" }]);
  const r = await chatOnce(w, body());
  assertAnswer(r, { content: "found it", deployment: "secondary", attempts: 2, reasonList: ["primary:not_found:404"] });
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 1 });
});

// ---------------------------------------------------------------- timeouts

test("streaming: no response at all -> timeout_connect, no retry on the hung deployment, next answers", async () => {
  const t = await twoDeployments();
  t.script("primary", [steps.hang()]);
  t.script("secondary", [{ ok: "I answer" }]);
  const r = await chatStream(w, body());
  assert.equal(r.status, 200);
  assert.equal(sseContent(r.events), "I answer");
  assert.equal(r.events.at(-1).data, "[DONE]");
  assert.equal(r.res.headers.get("x-router-deployment"), "secondary");
  assert.equal(r.res.headers.get("x-router-attempts"), "2");
  assert.deepEqual(reasons(r.res), ["primary:timeout_connect"]);
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 1 });
  assert.ok(r.elapsedMs >= 450 && r.elapsedMs < 3000, `took ${r.elapsedMs} ms (connect_ms 500)`);
});

test("non-streaming: no response at all -> timeout, no retry on the hung deployment, next answers", async () => {
  const t = await twoDeployments({ primary: { timeouts: { attempt_ms: 800 } } });
  t.script("primary", [steps.hang()]);
  t.script("secondary", [{ ok: "I answer too" }]);
  const r = await chatOnce(w, body());
  assertAnswer(r, { content: "I answer too", deployment: "secondary", attempts: 2, reasonList: [/^primary:timeout_(connect|attempt)$/] });
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 1 });
  assert.ok(r.elapsedMs >= 450 && r.elapsedMs < 3000, `took ${r.elapsedMs} ms`);
});

test("non-streaming: answer slower than attempt_ms -> timeout_attempt, next deployment", async () => {
  const t = await twoDeployments({ primary: { timeouts: { connect_ms: 2000, attempt_ms: 600 } } });
  t.script("primary", [{ ok: "too late", firstTokenDelayMs: 2500 }]);
  t.script("secondary", [{ ok: "in time" }]);
  const r = await chatOnce(w, body());
  assertAnswer(r, { content: "in time", deployment: "secondary", attempts: 2, reasonList: ["primary:timeout_attempt"] });
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 1 });
  assert.ok(r.elapsedMs < 2000, `took ${r.elapsedMs} ms (attempt_ms 600)`);
});

test("all deployments time out -> 504 timeout_error", async () => {
  const t = await twoDeployments();
  t.script("primary", [steps.hang()]);
  t.script("secondary", [{ ok: "never in time", firstTokenDelayMs: 3000 }]);
  const r = await chatStream(w, body());
  assert.equal(r.status, 504, r.text);
  const e = errorShape(JSON.parse(r.text));
  assert.equal(e.type, "timeout_error");
  assert.match(String(e.code), /^timeout_/);
  assert.deepEqual(reasons(r.res), ["primary:timeout_connect", "secondary:timeout_first_token"]);
  assert.equal(r.res.headers.get("x-router-attempts"), "2");
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 1 });
  assert.ok(r.elapsedMs < 3000, `took ${r.elapsedMs} ms`);
});

test("non-streaming: all deployments hang -> 504", async () => {
  const t = await twoDeployments({ primary: { timeouts: { attempt_ms: 700 } }, secondary: { timeouts: { attempt_ms: 700 } } });
  t.script("primary", [steps.hang()]);
  t.script("secondary", [steps.hang()]);
  const r = await chatOnce(w, body());
  assert.equal(r.status, 504, r.text);
  assert.equal(errorShape(r.json).type, "timeout_error");
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 1 });
});

test("request_timeout_ms bounds the whole request across the chain", async () => {
  const t = await scenarioTable(w, fake, {
    deployments: { a: { timeouts: { attempt_ms: 1000, connect_ms: 1000 } }, b: { timeouts: { attempt_ms: 1000, connect_ms: 1000 } }, c: {} },
    routes: { [ROUTE]: { chain: ["a", "b", "c"], request_timeout_ms: 1300 } },
  });
  t.script("a", [steps.hang()]);
  t.script("b", [steps.hang()]);
  t.script("c", [{ ok: "too far down the chain" }]);
  const r = await chatOnce(w, body());
  assert.equal(r.status, 504, r.text);
  assert.equal(errorShape(r.json).type, "timeout_error");
  assert.ok(r.elapsedMs < 2200, `took ${r.elapsedMs} ms (request_timeout_ms 1300)`);
  assert.deepEqual(t.allHits(), { a: 1, b: 1, c: 0 });
});

test("the provider secret never appears in any response header or body", async () => {
  const seen = await w.allSeen();
  assert.ok(seen.length >= 10);
  for (const e of seen) {
    assert.ok(!JSON.stringify(e.headers).includes(FAKE_SECRET), `secret in headers of ${e.url}`);
    assert.ok(!e.body.includes(FAKE_SECRET), `secret in body of ${e.url}`);
  }
});
