// OpenAI clients (`/v1/chat/completions`, official `openai` SDK) served by Gemini deployments,
// when things fail: 429 RESOURCE_EXHAUSTED (with and without RetryInfo), 400 API_KEY_INVALID and
// other 400s, 503, blocked prompts, streams closed or reset early, and fallback from an
// OpenAI-compatible deployment to Gemini. The answers that succeed: gemini.test.mjs.

import { test } from "node:test";
import assert from "node:assert/strict";
import { steps } from "./helpers/fake-openai.mjs";
import { geminiSteps as G } from "./helpers/fake-gemini.mjs";
import { mixedTable, chatOnce, chatStream, sseContent, errorShape, reasons, USER_MSG } from "./helpers/worker.mjs";
import { fakeO, fakeG, w, geminiTable, assertGeminiWire, useGeminiGateway } from "./helpers/gemini-suite.mjs";

useGeminiGateway();

// ---------------------------------------------------------------- failures

test("429 RESOURCE_EXHAUSTED -> rate_limited, retried, then fallback to the OpenAI-compatible deployment", async () => {
  const t = await geminiTable();
  t.script("gem", [G.r429()]);
  t.script("backup", [steps.ok("Backup answer.", { model: "gpt-backup" })]);
  const r = await chatOnce(w, { model: "gem", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, "Backup answer.");
  assert.equal(r.json.model, "gpt-backup");
  assert.deepEqual(reasons(r.res), ["gem:rate_limited:429", "gem:rate_limited:429"]);
  assert.deepEqual(t.allHits(), { gem: 2, backup: 1 });
});

test("429 with RetryInfo retryDelay 1s -> retried on the same deployment after ~1 s", async () => {
  const t = await geminiTable();
  t.script("gem", [G.r429RetryInfo("1s"), G.ok("Quota is back.")]);
  const r = await chatOnce(w, { model: "gem", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, "Quota is back.");
  assert.deepEqual(reasons(r.res), ["gem:rate_limited:429"]);
  assert.deepEqual(t.allHits(), { gem: 2, backup: 0 });
  const [a, b] = t.requests("gem");
  assert.ok(b.at - a.at >= 950, `retried ${b.at - a.at} ms later (retryDelay 1s)`);
});

test("429 with RetryInfo retryDelay above max_retry_after_ms -> falls back at once", async () => {
  const t = await geminiTable();
  t.script("gem", [G.r429RetryInfo("41s")]);
  t.script("backup", [steps.ok("No waiting.")]);
  const r = await chatOnce(w, { model: "gem", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, "No waiting.");
  assert.deepEqual(reasons(r.res), ["gem:rate_limited:429"]);
  assert.deepEqual(t.allHits(), { gem: 1, backup: 1 });
  assert.ok(r.elapsedMs < 2000, `answered in ${r.elapsedMs} ms`);
});

test("every attempt 429 RESOURCE_EXHAUSTED -> 429 rate_limit_error with Retry-After", async () => {
  const t = await mixedTable(w, { deployments: { g1: { fake: fakeG }, g2: { fake: fakeG } }, routes: { gem: { chain: ["g1", "g2"] } } });
  t.script("g1", [G.r429()]);
  t.script("g2", [G.r429()]);
  const r = await chatOnce(w, { model: "gem", messages: USER_MSG });
  assert.equal(r.status, 429, r.text);
  const e = errorShape(r.json);
  assert.equal(e.type, "rate_limit_error");
  assert.equal(e.code, "rate_limited");
  assert.match(r.res.headers.get("retry-after") ?? "", /^\d+$/);
  assert.deepEqual(t.allHits(), { g1: 2, g2: 2 });
});

test("400 INVALID_ARGUMENT with API_KEY_INVALID -> auth_error, no retry, next deployment", async () => {
  const t = await geminiTable();
  t.script("gem", [G.apiKeyInvalid()]);
  t.script("backup", [steps.ok("Good key here.")]);
  const r = await chatOnce(w, { model: "gem", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, "Good key here.");
  assert.deepEqual(reasons(r.res), ["gem:auth_error:400"]);
  assert.deepEqual(t.allHits(), { gem: 1, backup: 1 });
  assert.ok(!r.text.includes("key1234"));
});

test("other 400 INVALID_ARGUMENT -> 400 invalid_request_error to the caller, no fallback", async () => {
  const t = await geminiTable();
  t.script("gem", [G.invalid()]);
  const r = await chatOnce(w, { model: "gem", messages: USER_MSG });
  assert.equal(r.status, 400, r.text);
  const e = errorShape(r.json);
  assert.equal(e.type, "invalid_request_error");
  assert.ok(e.message.includes("fake-gemini-invalid-5"), `provider message passed on: ${e.message}`);
  assert.deepEqual(t.allHits(), { gem: 1, backup: 0 });
});

test("503 UNAVAILABLE -> retried, then fallback (streaming, invisible)", async () => {
  const t = await geminiTable();
  t.script("gem", [G.r503()]);
  t.script("backup", [steps.ok("Streaming from backup.")]);
  const r = await chatStream(w, { model: "gem", messages: USER_MSG });
  assert.equal(r.status, 200);
  assert.equal(sseContent(r.events), "Streaming from backup.");
  assert.equal(r.events.at(-1)?.data, "[DONE]");
  assert.equal(reasons(r.res).length, 2);
  for (const x of reasons(r.res)) assert.match(x, /^gem:(overloaded|server_error):503$/);
  assert.deepEqual(t.allHits(), { gem: 2, backup: 1 });
});

test("prompt blocked (200 with promptFeedback.blockReason) -> 400 with the block reason, no fallback", async () => {
  const t = await geminiTable();
  t.script("gem", [G.blocked("SAFETY")]);
  t.script("backup", [steps.ok("must not be used")]);
  const r = await chatOnce(w, { model: "gem", messages: USER_MSG });
  assert.equal(r.status, 400, r.text);
  const e = errorShape(r.json);
  assert.equal(e.type, "invalid_request_error");
  assert.match(e.message, /SAFETY/, "the block reason is in the message");
  assert.match(String(e.code), /^content_(policy(_violation)?|filter)$/);
  assert.deepEqual(t.allHits(), { gem: 1, backup: 0 });
});

test("prompt blocked in a stream (before any content) -> 400 JSON error, no fallback", async () => {
  const t = await geminiTable();
  t.script("gem", [G.blocked("PROHIBITED_CONTENT")]);
  t.script("backup", [steps.ok("must not be used")]);
  const res = await w.chat({ model: "gem", messages: USER_MSG, stream: true });
  const text = await res.text();
  assert.equal(res.status, 400, text);
  const e = errorShape(JSON.parse(text));
  assert.match(e.message, /PROHIBITED_CONTENT/);
  assert.deepEqual(t.allHits(), { gem: 1, backup: 0 });
});

test("stream closed before any content -> invisible retry", async () => {
  const t = await geminiTable();
  t.script("gem", [G.ok("never", { closeAfterChunks: 0 }), G.ok("Second try streams fine.")]);
  const r = await chatStream(w, { model: "gem", messages: USER_MSG });
  assert.equal(r.status, 200);
  assert.equal(sseContent(r.events), "Second try streams fine.");
  assert.equal(r.events.at(-1)?.data, "[DONE]");
  assert.ok(!r.events.some((e) => e.json?.error));
  assert.equal(reasons(r.res).length, 1, `reasons: ${reasons(r.res)}`);
  assert.deepEqual(t.allHits(), { gem: 2, backup: 0 });
});

// The bare after-commit contract (no mid-stream resume: resume.test.mjs covers resuming).
test("stream ends (connection closed) without finishReason after content -> in-band error, no [DONE]", async () => {
  const t = await geminiTable({ route: { resume: "off" } });
  t.script("gem", [G.ok("One two three four.", { closeAfterChunks: 2 })]);
  const r = await chatStream(w, { model: "gem", messages: USER_MSG });
  assert.equal(r.status, 200);
  assert.equal(r.timedOut, false);
  assert.equal(sseContent(r.events), "One two");
  assert.ok(!r.events.some((e) => e.data === "[DONE]"), "a truncated Gemini stream is not passed off as complete");
  const last = r.events.at(-1);
  assert.ok(last?.json?.error, `last event is an error: ${last?.data}`);
  assert.equal(last.json.error.type, "upstream_error");
  assert.equal(last.json.error.code, "stream_cut");
  assert.deepEqual(t.allHits(), { gem: 1, backup: 0 });
});

test("stream reset after content -> in-band error, no [DONE]", async () => {
  const t = await geminiTable({ route: { resume: "off" } });
  t.script("gem", [G.ok("Alpha beta gamma delta.", { cutAfterChunks: 1 })]);
  const r = await chatStream(w, { model: "gem", messages: USER_MSG });
  assert.equal(sseContent(r.events), "Alpha");
  assert.ok(!r.events.some((e) => e.data === "[DONE]"));
  assert.ok(r.events.at(-1)?.json?.error, `last event: ${r.events.at(-1)?.data}`);
  assert.deepEqual(t.allHits(), { gem: 1, backup: 0 });
});

test("OpenAI-compatible 500 -> falls over to Gemini, answer in OpenAI format", async () => {
  const t = await mixedTable(w, {
    deployments: { gpt: { fake: fakeO }, gem: { fake: fakeG, model: "gemini-up-pro" } },
    routes: { mixed: { chain: ["gpt", "gem"] } },
  });
  t.script("gpt", [steps.r500()]);
  t.script("gem", [G.ok("Gemini to the rescue.", { modelVersion: "gemini-pro-002" })]);
  const r = await chatOnce(w, { model: "mixed", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.object, "chat.completion");
  assert.equal(r.json.choices[0].message.content, "Gemini to the rescue.");
  assert.equal(r.json.model, "gemini-pro-002");
  assert.deepEqual(reasons(r.res), ["gpt:server_error:500", "gpt:server_error:500"]);
  assert.deepEqual(t.allHits(), { gpt: 2, gem: 1 });
  assertGeminiWire(t, t.requests("gem")[0], { model: "gemini-up-pro" });
});
