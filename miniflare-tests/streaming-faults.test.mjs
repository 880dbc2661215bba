// Streaming faults: before the commit (first content chunk) they are invisible to the caller;
// after it (with mid-stream resume off: resume.test.mjs covers resuming), the stream ends with an
// in-band error event and no [DONE]. Streams that finish without [DONE] are finalised at once.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startFake } from "./helpers/fake-openai.mjs";
import { chatStream, sseContent, parseSse, reasons, FAKE_SECRET, USER_MSG } from "./helpers/worker.mjs";
import { useGateway, twoDeployments as twoDeploymentsOf } from "./helpers/harness.mjs";

let fake, w;

useGateway({ fakes: { fake: startFake } }, (g) => ({ fake, w } = g));

const ROUTE = "gw-stream";
const body = (extra = {}) => ({ model: ROUTE, messages: USER_MSG, ...extra });

const twoDeployments = (depExtra, route) => twoDeploymentsOf(w, fake, ROUTE, depExtra, route);

/** The bare after-commit contract: mid-stream resume off (resume.test.mjs covers resuming). */
const NO_RESUME = { resume: "off" };

/** The stream ended with an in-band error event of `code` and no [DONE]. */
function assertInBandError(r, code) {
  assert.equal(r.timedOut, false, "the gateway ended the stream (client did not have to give up)");
  assert.ok(!r.events.some((e) => e.data === "[DONE]"), "no [DONE] after an in-band error");
  const last = r.events.at(-1);
  assert.ok(last?.json?.error, `last event is an error event, got: ${last?.data}`);
  assert.equal(last.json.error.type, "upstream_error");
  if (code instanceof RegExp) assert.match(String(last.json.error.code), code);
  else assert.equal(last.json.error.code, code);
  assert.equal(typeof last.json.error.message, "string");
  assert.ok(last.json.error.message.length > 0);
  assert.equal(r.events.filter((e) => e.json?.error).length, 1, "exactly one error event");
}

function assertCleanStream(r, content) {
  assert.equal(r.status, 200);
  assert.equal(r.error, null, `stream error: ${r.error}`);
  assert.equal(r.timedOut, false);
  assert.equal(sseContent(r.events), content);
  assert.ok(!r.events.some((e) => e.json?.error), "no error events");
  assert.equal(r.events.at(-1)?.data, "[DONE]");
  assert.equal(r.events.filter((e) => e.data === "[DONE]").length, 1);
  assert.equal(r.events.filter((e) => e.json?.choices?.some((c) => c.delta?.role === "assistant")).length, 1, "one role chunk");
  assert.equal(r.events.filter((e) => e.json?.choices?.some((c) => c.finish_reason === "stop")).length, 1, "one finish chunk");
}

// ---------------------------------------------------------------- before commit: invisible

test("slow first token (> first_token_ms) -> invisible fallback to the next deployment", async () => {
  const t = await twoDeployments();
  t.script("primary", [{ ok: "way too slow", firstTokenDelayMs: 3000, model: "slow-model" }]);
  t.script("secondary", [{ ok: "quick answer here", model: "quick-model" }]);
  const r = await chatStream(w, body());
  assertCleanStream(r, "quick answer here");
  for (const e of r.events) if (e.json) assert.equal(e.json.model, "quick-model", "no chunk from the slow deployment");
  assert.equal(r.res.headers.get("x-router-deployment"), "secondary");
  assert.equal(r.res.headers.get("x-router-attempts"), "2");
  assert.deepEqual(reasons(r.res), ["primary:timeout_first_token"]);
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 1 });
  assert.ok(r.elapsedMs >= 700 && r.elapsedMs < 2500, `took ${r.elapsedMs} ms (first_token_ms 800)`);
});

test("first token just within first_token_ms is accepted", async () => {
  const t = await twoDeployments();
  t.script("primary", [{ ok: "made it", firstTokenDelayMs: 300 }]);
  const r = await chatStream(w, body());
  assertCleanStream(r, "made it");
  assert.equal(r.res.headers.get("x-router-attempts"), "1");
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 0 });
});

test("stream cut before the first content chunk -> retried invisibly on the same deployment", async () => {
  const t = await twoDeployments();
  t.script("primary", [{ ok: "lost", cutAfterChunks: 0 }, { ok: "second try works" }]);
  const r = await chatStream(w, body());
  assertCleanStream(r, "second try works");
  assert.equal(r.res.headers.get("x-router-deployment"), "primary");
  assert.equal(r.res.headers.get("x-router-attempts"), "2");
  assert.deepEqual(reasons(r.res), ["primary:stream_cut"]);
  assert.deepEqual(t.allHits(), { primary: 2, secondary: 0 });
});

test("malformed chunk before the first content chunk -> retried invisibly", async () => {
  const t = await twoDeployments();
  t.script("primary", [{ ok: "garbage", malformedAfterChunks: 0 }, { ok: "proper answer" }]);
  const r = await chatStream(w, body());
  assertCleanStream(r, "proper answer");
  assert.equal(r.res.headers.get("x-router-attempts"), "2");
  assert.deepEqual(reasons(r.res), ["primary:malformed_response"]);
  assert.deepEqual(t.allHits(), { primary: 2, secondary: 0 });
});

test("stall before the first content chunk (headers, role chunk, then nothing) -> timeout_first_token, next deployment", async () => {
  const t = await twoDeployments();
  t.script("primary", [{ ok: "never", stallAfterChunks: 0 }]);
  t.script("secondary", [{ ok: "backup speaking" }]);
  const r = await chatStream(w, body());
  assertCleanStream(r, "backup speaking");
  assert.deepEqual(reasons(r.res), ["primary:timeout_first_token"]);
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 1 });
});

// ---------------------------------------------------------------- after commit: in-band error

test("stream cut mid-answer (after commit) -> in-band stream_cut error, no [DONE], no fallback", async () => {
  const t = await twoDeployments({}, NO_RESUME);
  t.script("primary", [{ ok: "one two three four five six", cutAfterChunks: 2 }]);
  t.script("secondary", [{ ok: "must not be used" }]);
  const r = await chatStream(w, body());
  assert.equal(r.status, 200);
  assert.equal(sseContent(r.events), "one two");
  assertInBandError(r, "stream_cut");
  assert.equal(r.res.headers.get("x-router-deployment"), "primary");
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 0 });
});

test("stream stall after commit -> in-band timeout_idle error after ~idle_ms, no [DONE]", async () => {
  const t = await twoDeployments({}, NO_RESUME);
  t.script("primary", [{ ok: "alpha beta gamma delta", stallAfterChunks: 2 }]);
  t.script("secondary", [{ ok: "must not be used" }]);
  const r = await chatStream(w, body(), { timeoutMs: 5000 });
  assert.equal(r.status, 200);
  assert.equal(sseContent(r.events), "alpha beta");
  assertInBandError(r, "timeout_idle");
  assert.ok(r.elapsedMs >= 450 && r.elapsedMs < 3000, `ended after ${r.elapsedMs} ms (idle_ms 500)`);
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 0 });
});

test("slow but steady chunks (each gap < idle_ms) are not an idle timeout", async () => {
  const t = await twoDeployments();
  t.script("primary", [{ ok: "tick tock tick tock", chunkDelayMs: 250 }]);
  const r = await chatStream(w, body(), { timeoutMs: 5000 });
  assertCleanStream(r, "tick tock tick tock");
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 0 });
});

test("a client that stops reading for longer than idle_ms is not an upstream stall", async () => {
  // The upstream sends its whole (large) answer at once; the client reads a little, then
  // nothing for 3x idle_ms, so the gateway's writes wait on the client (socket buffers full).
  const timeouts = { connect_ms: 500, first_token_ms: 800, idle_ms: 500, attempt_ms: 30_000 };
  const t = await twoDeployments({ primary: { timeouts }, secondary: { timeouts } }, NO_RESUME);
  const pieces = Array.from({ length: 60 }, (_, i) => String(i % 10).repeat(300_000));
  t.script("primary", [{ ok: pieces.join(""), pieces }]);
  t.script("secondary", [{ ok: "must not be used" }]);
  const res = await fetch(w.url + "v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body({ stream: true })),
    signal: AbortSignal.timeout(30_000),
  });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const first = await reader.read();
  text += decoder.decode(first.value, { stream: true });
  await new Promise((r) => setTimeout(r, 1500));
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  const events = parseSse(text);
  assert.ok(!events.some((e) => e.json?.error), `no error event: ${events.find((e) => e.json?.error)?.data}`);
  assert.equal(sseContent(events), pieces.join(""), "the whole answer");
  assert.equal(events.at(-1)?.data, "[DONE]");
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 0 });
});

test("malformed chunk after commit -> in-band malformed_response error, no [DONE]", async () => {
  const t = await twoDeployments({}, NO_RESUME);
  t.script("primary", [{ ok: "first second third", malformedAfterChunks: 2 }]);
  t.script("secondary", [{ ok: "must not be used" }]);
  const r = await chatStream(w, body());
  assert.equal(r.status, 200);
  assert.equal(sseContent(r.events), "first second");
  assertInBandError(r, "malformed_response");
  assert.ok(!r.text.includes("{not json"), "the malformed line is not forwarded");
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 0 });
});

test("in-band upstream error after commit -> in-band upstream_error event, no [DONE]", async () => {
  const t = await twoDeployments({}, NO_RESUME);
  t.script("primary", [{ ok: "partial answer then boom", errorAfterChunks: 2 }]);
  t.script("secondary", [{ ok: "must not be used" }]);
  const r = await chatStream(w, body());
  assert.equal(r.status, 200);
  assert.equal(sseContent(r.events), "partial answer");
  assertInBandError(r, /^[a-z_]+$/);
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 0 });
});

// ---------------------------------------------------------------- no [DONE]

test("finish_reason + usage but no [DONE], connection left open -> finalised at once with [DONE]", async () => {
  const t = await twoDeployments({ primary: { timeouts: { idle_ms: 3000 } } });
  t.script("primary", [{ ok: "complete but unterminated", noDone: true }]);
  const r = await chatStream(w, body({ stream_options: { include_usage: true } }), { timeoutMs: 6000 });
  assertCleanStream(r, "complete but unterminated");
  assert.ok(r.events.some((e) => Array.isArray(e.json?.choices) && e.json.choices.length === 0 && e.json.usage), "usage chunk delivered");
  assert.ok(r.doneAt !== null && r.doneAt < 1500, `[DONE] after ${r.doneAt} ms (idle_ms is 3000)`);
  assert.ok(r.elapsedMs < 1500, `stream closed after ${r.elapsedMs} ms (idle_ms is 3000)`);
  assert.equal(r.res.headers.get("x-router-attempts"), "1");
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 0 });
});

test("finish_reason but no [DONE], client did not ask for usage, connection left open -> finalised at once", async () => {
  const t = await twoDeployments({ primary: { timeouts: { idle_ms: 3000 } } });
  t.script("primary", [{ ok: "also unterminated", noDone: true }]);
  const r = await chatStream(w, body(), { timeoutMs: 6000 });
  assertCleanStream(r, "also unterminated");
  assert.ok(!r.events.some((e) => Array.isArray(e.json?.choices) && e.json.choices.length === 0), "no usage chunk");
  assert.ok(r.doneAt !== null && r.doneAt < 1500, `[DONE] after ${r.doneAt} ms (idle_ms is 3000)`);
  assert.ok(r.elapsedMs < 1500, `stream closed after ${r.elapsedMs} ms`);
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 0 });
});

test("finish_reason, no usage chunk (upstream ignores include_usage), no [DONE], connection open -> finalised promptly", async () => {
  const t = await twoDeployments({ primary: { timeouts: { idle_ms: 3000 } } });
  t.script("primary", [{ ok: "no usage from me", noDone: true, noUsage: true }]);
  const r = await chatStream(w, body(), { timeoutMs: 6000 });
  assertCleanStream(r, "no usage from me");
  assert.ok(r.doneAt !== null && r.doneAt < 1500, `[DONE] after ${r.doneAt} ms (idle_ms is 3000)`);
  assert.ok(r.elapsedMs < 1500, `stream closed after ${r.elapsedMs} ms`);
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 0 });
});

test("finish_reason but no [DONE], connection closed -> [DONE] added, no error", async () => {
  const t = await twoDeployments();
  t.script("primary", [{ ok: "closed without done", noDone: "close" }]);
  const r = await chatStream(w, body({ stream_options: { include_usage: true } }));
  assertCleanStream(r, "closed without done");
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 0 });
});

test("the provider secret never appears in any response header or body", async () => {
  const seen = await w.allSeen();
  assert.ok(seen.length >= 8);
  for (const e of seen) {
    assert.ok(!JSON.stringify(e.headers).includes(FAKE_SECRET), `secret in headers of ${e.url}`);
    assert.ok(!e.body.includes(FAKE_SECRET), `secret in body of ${e.url}`);
  }
});
