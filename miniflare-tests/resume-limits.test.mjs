// Mid-stream resume when it cannot complete the answer: a replay that diverges or finishes
// short, a resume budget (max_resumes, request_timeout_ms) exhausted, and the limits (a
// half-sent tool call, content_policy in-band): the stream ends with the in-band error of the
// original failure, never a contradiction. The resumes that succeed: resume.test.mjs.

import { test } from "node:test";
import assert from "node:assert/strict";
import { steps, prefillText, FIXTURE_ERRORS } from "./helpers/fake-openai.mjs";
import { anthropicSteps as A } from "./helpers/fake-anthropic.mjs";
import { chatStream, sseContent } from "./helpers/worker.mjs";
import {
  fakeO,
  w,
  FULL,
  K,
  DELIVERED,
  firstWords,
  assertSeamless,
  assertInBandError,
  logLine,
  assertResumes,
  body,
  PRIMARY,
  table,
  useResumeGateway,
} from "./helpers/resume-suite.mjs";

useResumeGateway();

// ---------------------------------------------------------------- divergent replay

test("divergent replay -> in-band error of the original cut; nothing contradictory emitted; resuming stops", async () => {
  const t = await table({ fake: fakeO });
  const other = "The quick brown fox sleeps under the old oak tree all afternoon long.";
  t.script("primary", [{ ok: FULL, cutAfterChunks: K }, { ok: other }]);
  t.script("backup", [steps.ok(FULL)]);
  const r = await chatStream(w, body());
  assertInBandError(r, DELIVERED, "stream_cut");
  assert.ok(!r.text.includes("sleeps") && !r.text.includes("oak"), "no text of the divergent replay");
  assert.deepEqual(t.allHits(), { primary: 2, backup: 0 });
  const line = await logLine(r.res);
  assert.ok(line);
  assert.deepEqual(line.resumes, []);
  assert.match(String(line.error), /stream_cut/);
});

test("replay that finishes before reaching the delivered text -> in-band error of the original failure", async () => {
  const t = await table({ fake: fakeO });
  t.script("primary", [{ ok: FULL, cutAfterChunks: K }, { ok: firstWords(3) }]);
  t.script("backup", [steps.ok(FULL)]);
  const r = await chatStream(w, body());
  assertInBandError(r, DELIVERED, "stream_cut");
  assert.deepEqual(t.allHits(), { primary: 2, backup: 0 });
});

test("replay that finishes exactly at the delivered text: that was the whole answer -> completed, nothing added", async () => {
  const t = await table({ fake: fakeO });
  t.script("primary", [{ ok: FULL, malformedAfterChunks: K }, { ok: DELIVERED }]);
  t.script("backup", [steps.ok(FULL)]);
  const r = await chatStream(w, body());
  assertSeamless(r, DELIVERED);
  assert.deepEqual(t.allHits(), { primary: 2, backup: 0 });
});

// ---------------------------------------------------------------- budget

test("budget exhausted (max_resumes 2, every attempt cuts) -> clean in-band stream_cut, consistent text, bounded time", async () => {
  const prefillOpenai = { fake: fakeO, provider: { prefill: "assistant" } };
  const t = await table(prefillOpenai, { backup: prefillOpenai, more: { third: { fake: fakeO } }, chain: ["primary", "backup", "third"] });
  const cutting = { ok: FULL, cutAfterChunks: 2, continuePrefill: true };
  t.script("primary", [cutting]);
  t.script("backup", [cutting]);
  t.script("third", [steps.ok(FULL)]);
  const r = await chatStream(w, body());
  assertInBandError(r, firstWords(6), "stream_cut");
  assert.ok(r.elapsedMs < 3000, `took ${r.elapsedMs} ms`);
  assert.deepEqual(t.allHits(), { primary: 2, backup: 1, third: 0 }, "the same deployment once, then the next; no third resume");
  assert.equal(prefillText(t.requests("primary")[1].body), firstWords(2));
  assert.equal(prefillText(t.requests("backup")[0].body), firstWords(4));
  await assertResumes(r.res, ["primary:prefill", "backup:prefill"]);
});

test("budget exhausted by stalls (max_resumes 1) -> in-band timeout_idle after ~2 idle windows", async () => {
  const t = await table({ fake: fakeO, provider: { prefill: "assistant" } }, { route: { max_resumes: 1 } });
  t.script("primary", [{ ok: FULL, stallAfterChunks: 2, continuePrefill: true }]);
  // The silent primary is not asked again: the backup replays, adds two words and stalls too.
  t.script("backup", [{ ok: FULL, stallAfterChunks: 4 }]);
  const r = await chatStream(w, body(), { timeoutMs: 6000 });
  assertInBandError(r, firstWords(4), "timeout_idle");
  assert.ok(r.elapsedMs >= 900 && r.elapsedMs < 3500, `took ${r.elapsedMs} ms (2 × idle_ms 500)`);
  assert.deepEqual(t.allHits(), { primary: 1, backup: 1 });
});

test("max_resumes 0 behaves like resume off", async () => {
  const t = await table({ fake: fakeO, provider: { prefill: "assistant" } }, { route: { max_resumes: 0 } });
  t.script("primary", [{ ok: FULL, cutAfterChunks: K, continuePrefill: true }, { ok: FULL, continuePrefill: true }]);
  const r = await chatStream(w, body());
  assertInBandError(r, DELIVERED, "stream_cut");
  assert.deepEqual(t.allHits(), { primary: 1, backup: 0 });
});

test("resumes stay inside request_timeout_ms (stalling everywhere, max_resumes 5)", async () => {
  const t = await table(
    { fake: fakeO, provider: { prefill: "assistant" } },
    { route: { max_resumes: 5, request_timeout_ms: 1800 }, backup: { fake: fakeO, provider: { prefill: "assistant" } } },
  );
  const stalling = { ok: FULL, stallAfterChunks: 1, continuePrefill: true };
  t.script("primary", [stalling]);
  t.script("backup", [stalling]);
  const r = await chatStream(w, body(), { timeoutMs: 8000 });
  assert.equal(r.timedOut, false);
  assert.ok(r.elapsedMs < 3000, `ended after ${r.elapsedMs} ms (request_timeout_ms 1800)`);
  const text = sseContent(r.events);
  assert.ok(FULL.startsWith(text), `delivered text is a prefix of the answer: ${text}`);
  assert.ok(!r.events.some((e) => e.data === "[DONE]"));
  assert.ok(r.events.at(-1)?.json?.error, `ends with an in-band error: ${r.events.at(-1)?.data}`);
  assert.equal(r.events.filter((e) => e.json?.error).length, 1);
});

// ---------------------------------------------------------------- limits

test("a stream with a half-sent tool call is not resumed (Anthropic upstream, openai client)", async () => {
  const t = await table(PRIMARY["anthropic prefill"]());
  const tool = { id: "toolu_x", name: "get_weather", input: { location: "San Francisco, CA", unit: "celsius" } };
  // "Checking." is 1 text delta; tool fragments count too: cut inside the arguments.
  t.script("primary", [A.ok("Checking.", { toolUse: tool, cutAfterChunks: 3 }), A.ok("Checking.", { toolUse: tool })]);
  t.script("backup", [steps.ok("must not be used")]);
  const r = await chatStream(w, body({ tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { location: { type: "string" } } } } }] }));
  assert.equal(r.status, 200);
  assert.ok(r.events.some((e) => e.json?.choices?.some((c) => c.delta?.tool_calls)), "a tool call was started");
  assert.ok(!r.events.some((e) => e.data === "[DONE]"));
  assert.equal(r.events.at(-1)?.json?.error?.code, "stream_cut", r.events.at(-1)?.data);
  assert.deepEqual(t.allHits(), { primary: 1, backup: 0 });
});

test("content_policy in-band after content is not resumed", async () => {
  const t = await table({ fake: fakeO, provider: { prefill: "assistant" } });
  t.script("primary", [
    { ok: FULL, errorAfterChunks: K, inBandError: FIXTURE_ERRORS.content_policy.error, continuePrefill: true },
    { ok: FULL, continuePrefill: true },
  ]);
  const r = await chatStream(w, body());
  assertInBandError(r, DELIVERED, "content_policy");
  assert.deepEqual(t.allHits(), { primary: 1, backup: 0 });
});
