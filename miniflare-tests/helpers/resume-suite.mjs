// Shared by resume.test.mjs and resume-limits.test.mjs (mid-stream resume): the fakes, the
// worker and both SDK clients, the canonical answer and its first K chunks, the checks of a
// seamless stream and of an in-band error, the log line's resumes, and the route `r`.

import assert from "node:assert/strict";
import { startFake, words, FIXTURE_ERRORS } from "./fake-openai.mjs";
import { startFakeAnthropic } from "./fake-anthropic.mjs";
import { mixedTable, sseContent, USER_MSG } from "./worker.mjs";
import { useGateway } from "./harness.mjs";
import { openaiClient, anthropicClient } from "./sdk.mjs";

export let fakeO, fakeA, w, oai, anth;

// No table yet: the first test uses the embedded default.
export function useResumeGateway() {
  useGateway({ fakes: { fakeO: startFake, fakeA: startFakeAnthropic } }, (g) => {
    ({ fakeO, fakeA, w } = g);
    oai = openaiClient(w);
    anth = anthropicClient(w);
  });
}

/** The provider's canonical answer: 15 one-word chunks. */
export const FULL = "The quick brown fox jumps over the lazy dog beside the quiet river bank today.";
export const K = 5;
/** What the client has after K chunks (no trailing whitespace: chunks carry their leading space). */
export const DELIVERED = words(FULL).slice(0, K).join("");
export const firstWords = (n, text = FULL) => words(text).slice(0, n).join("");

// ---------------------------------------------------------------- helpers

/** A complete, seamless OpenAI stream with exactly `content`: one id/model/created throughout. */
export function assertSeamless(r, content, { model } = {}) {
  assert.equal(r.status, 200, r.text);
  assert.equal(r.error, null, `stream error: ${r.error}`);
  assert.equal(r.timedOut, false, "the stream ended");
  const errors = r.events.filter((e) => e.json?.error);
  assert.deepEqual(errors.map((e) => e.data), [], "no error event");
  assert.equal(sseContent(r.events), content, "the whole answer, each word exactly once");
  assert.equal(r.events.at(-1)?.data, "[DONE]");
  assert.equal(r.events.filter((e) => e.data === "[DONE]").length, 1, "one [DONE]");
  const chunks = r.events.filter((e) => e.json);
  assert.equal(chunks.filter((e) => e.json.choices?.some((c) => c.delta?.role === "assistant")).length, 1, "one role chunk");
  const finishes = chunks.flatMap((e) => (e.json.choices ?? []).map((c) => c.finish_reason).filter(Boolean));
  assert.deepEqual(finishes, ["stop"], "one finish");
  assert.deepEqual([...new Set(chunks.map((e) => e.json.id))].length, 1, `one id: ${[...new Set(chunks.map((e) => e.json.id))]}`);
  assert.deepEqual([...new Set(chunks.map((e) => e.json.created))].length, 1, "one created");
  const models = [...new Set(chunks.map((e) => e.json.model))];
  assert.equal(models.length, 1, `one model: ${models}`);
  if (model) assert.equal(models[0], model, "the first attempt's model");
  for (const e of chunks) assert.equal(e.json.object, "chat.completion.chunk");
}

/** The stream ended with exactly `content`, then one in-band error of `code`; nothing after it. */
export function assertInBandError(r, content, code) {
  assert.equal(r.status, 200);
  assert.equal(r.timedOut, false, "the gateway ended the stream");
  assert.equal(sseContent(r.events), content, "only text consistent with what was delivered");
  assert.ok(!r.events.some((e) => e.data === "[DONE]"), "no [DONE] after an in-band error");
  assert.ok(!r.events.some((e) => e.json?.choices?.some((c) => c.finish_reason)), "no finish_reason on a failed stream");
  const last = r.events.at(-1);
  assert.ok(last?.json?.error, `last event is an error: ${last?.data}`);
  assert.equal(last.json.error.type, "upstream_error");
  assert.equal(last.json.error.code, code, `error names the failure: ${last.data}`);
  assert.equal(r.events.filter((e) => e.json?.error).length, 1, "exactly one error event");
  assert.ok(!r.text.includes("invalid_request"), "no prefill refusal leaks into the stream");
}

/** The per-request JSON log line (waits briefly: it is written when the stream ends). */
export async function logLine(res, timeoutMs = 3000) {
  const id = res.headers.get("x-router-request-id");
  assert.ok(id, "x-router-request-id header");
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
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The request's log line lists these resumes (`deployment:method`). */
export async function assertResumes(res, expected) {
  const line = await logLine(res);
  assert.ok(line, "the request's log line was written");
  assert.deepEqual(line.resumes, expected, `log line: ${JSON.stringify(line)}`);
  return line;
}

export const body = (extra = {}) => ({ model: "r", messages: USER_MSG, ...extra });

/** Strip `messages` so the rest of two upstream bodies can be compared. */
export const withoutMessages = (b) => {
  const { messages, ...rest } = b;
  return rest;
};

/** Which provider config a primary deployment gets per method. */
export const PRIMARY = {
  "openai prefill (assistant)": () => ({ fake: fakeO, provider: { prefill: "assistant" } }),
  "openai replay (prefill none)": () => ({ fake: fakeO }),
  "anthropic prefill": () => ({ fake: fakeA, provider: { anthropic_version: "2023-06-01" } }),
};

/** Route "r" = [primary, backup (OpenAI-compatible; must not be used unless the test says so)]. */
export async function table(primary, { route = {}, backup = { fake: fakeO }, more = {}, chain, defaults } = {}) {
  const t = await mixedTable(w, {
    deployments: { primary, backup, ...more },
    routes: { r: { chain: chain ?? ["primary", "backup"], ...route } },
    defaults,
  });
  return t;
}

/** The fault at chunk K, per upstream kind, and the class code it is reported as. */
export const FAULTS = {
  cut: { step: { cutAfterChunks: K }, code: "stream_cut" },
  stall: { step: { stallAfterChunks: K }, code: "timeout_idle" },
  malformed: { step: { malformedAfterChunks: K }, code: "malformed_response" },
  overloaded: {
    step: { errorAfterChunks: K },
    openai: { inBandError: FIXTURE_ERRORS.overloaded.error },
    code: "overloaded",
  },
};
