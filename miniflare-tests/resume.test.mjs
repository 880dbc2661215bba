// Mid-stream resume: a stream that breaks after the commit (cut, idle stall, malformed event,
// in-band overloaded error) is continued — by prefill (trailing assistant message holding the
// delivered text) or by replay-and-verify (the original request again, output swallowed until it
// reproduced the delivered text) — so the client receives the provider's whole canonical answer
// exactly once. When it cannot be (divergent replay, budget exhausted, half-sent tool call,
// native Anthropic passthrough) the stream ends with the in-band error of the failure; those
// cases are in resume-limits.test.mjs, except the passthrough (with the /v1/messages ingress here).

import { test } from "node:test";
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { steps, words, prefillText, FIXTURE_ERRORS } from "./helpers/fake-openai.mjs";
import { anthropicSteps as A } from "./helpers/fake-anthropic.mjs";
import { chatStream, chatOnce, readStream, FAKE_SECRET, USER_MSG } from "./helpers/worker.mjs";
import { collectSdkStream } from "./helpers/sdk.mjs";
import {
  fakeO,
  fakeA,
  w,
  oai,
  anth,
  FULL,
  K,
  DELIVERED,
  assertSeamless,
  assertInBandError,
  logLine,
  assertResumes,
  body,
  withoutMessages,
  PRIMARY,
  table,
  FAULTS,
  useResumeGateway,
} from "./helpers/resume-suite.mjs";

useResumeGateway();

// ---------------------------------------------------------------- default table (first: no KV table yet)

test("default table: openai SDK streaming mock-resume-demo gets the whole mock answer (= the non-streaming answer)", async () => {
  const res = await w.fetch("/healthz");
  assert.equal((await res.json()).config.source, "embedded-default");

  const whole = await oai.chat.completions.create({ model: "mock-resume-demo", messages: USER_MSG });
  const expected = whole.choices[0].message.content;
  assert.ok(words(expected).length > 5, `the mock answer is longer than the cut (5 words): ${expected}`);

  const { data: stream, response } = await oai.chat.completions
    .create({ model: "mock-resume-demo", messages: USER_MSG, stream: true, stream_options: { include_usage: true } })
    .withResponse();
  const { content, finish, usage, ids } = await collectSdkStream(stream);
  assert.equal(content, expected, "streamed text = non-streaming text");
  assert.equal(finish, "stop");
  assert.equal(ids.size, 1, "one id");
  assert.ok(usage && usage.completion_tokens > 0, "usage chunk");
  assert.equal(response.headers.get("x-router-deployment"), "mock-cutting");
  const line = await assertResumes(response, ["mock-cutting:prefill"]);
  assert.equal(line.error, null);

  // Raw: one clean stream ending with [DONE].
  const r = await chatStream(w, { model: "mock-resume-demo", messages: USER_MSG });
  assertSeamless(r, expected);
});

// ---------------------------------------------------------------- the matrix: fault × method

for (const [method, primary] of Object.entries(PRIMARY)) {
  const isAnthropic = method.startsWith("anthropic");
  const isPrefill = method.includes("prefill (") || isAnthropic;
  for (const [faultName, fault] of Object.entries(FAULTS)) {
    // A stall is resumed on the next deployment, never on the silent one: recovery.test.mjs.
    if (faultName === "stall") continue;
    test(`${method}: ${faultName} after ${K} of ${words(FULL).length} chunks -> the client gets the full answer exactly once`, async () => {
      const t = await table(primary());
      const faultStep = { ...fault.step, ...(isAnthropic ? {} : fault.openai ?? {}) };
      t.script("primary", [
        { ok: FULL, ...faultStep, continuePrefill: true, model: "first-model" },
        { ok: FULL, continuePrefill: true, model: "second-model" },
      ]);
      t.script("backup", [steps.ok("must not be used")]);
      const r = await chatStream(w, body(), { timeoutMs: 5000 });
      assertSeamless(r, FULL, { model: "first-model" });
      assert.deepEqual(t.allHits(), { primary: 2, backup: 0 });
      if (faultName === "stall") assert.ok(r.elapsedMs >= 450 && r.elapsedMs < 4000, `took ${r.elapsedMs} ms (idle_ms 500)`);
      else assert.ok(r.elapsedMs < 4000, `took ${r.elapsedMs} ms`);

      const [first, second] = t.requests("primary").map((q) => q.body);
      assert.equal(second.stream, true);
      if (isPrefill) {
        // The original messages, plus the delivered text as a trailing assistant message.
        assert.deepEqual(second.messages.slice(0, -1), first.messages, "original messages kept");
        const last = second.messages.at(-1);
        assert.equal(last.role, "assistant");
        assert.equal(prefillText(second), DELIVERED, "the prefill holds exactly the delivered text");
        if (!isAnthropic) assert.deepEqual(last, { role: "assistant", content: DELIVERED }, "plain assistant turn, no prefix flag");
        assert.deepEqual(withoutMessages(second), withoutMessages(first), "the rest of the request unchanged");
      } else {
        assert.deepEqual(second, first, "replay = the original request again");
      }
      await assertResumes(r.res, [`primary:${isPrefill ? "prefill" : "replay"}`]);
    });
  }
}

// ---------------------------------------------------------------- prefill details

test("openai prefix_flag: the prefill turn carries \"prefix\": true", async () => {
  const t = await table({ fake: fakeO, provider: { prefill: "prefix_flag" } });
  t.script("primary", [{ ok: FULL, cutAfterChunks: K, continuePrefill: true }, { ok: FULL, continuePrefill: true }]);
  const r = await chatStream(w, body());
  assertSeamless(r, FULL);
  const [first, second] = t.requests("primary").map((q) => q.body);
  assert.deepEqual(second.messages, [...first.messages, { role: "assistant", content: DELIVERED, prefix: true }]);
  await assertResumes(r.res, ["primary:prefill"]);
});

test("prefill: trailing whitespace of the delivered text is trimmed, the continuation's leading space dropped", async () => {
  const pieces = ["The ", "quick ", "brown ", "fox ", "jumps ", "over ", "the ", "lazy ", "dog."];
  const text = pieces.join("");
  const t = await table({ fake: fakeO, provider: { prefill: "assistant" } });
  t.script("primary", [{ ok: text, pieces, cutAfterChunks: 3, continuePrefill: true }, { ok: text, continuePrefill: true }]);
  const r = await chatStream(w, body());
  assertSeamless(r, text);
  const second = t.requests("primary")[1].body;
  assert.deepEqual(second.messages.at(-1), { role: "assistant", content: "The quick brown" }, "trimmed prefill");
});

test("replay: whitespace-ending chunks are verified exactly and the rest streamed once", async () => {
  const pieces = ["The ", "quick ", "brown ", "fox ", "jumps ", "over ", "the ", "lazy ", "dog."];
  const text = pieces.join("");
  const t = await table({ fake: fakeO });
  t.script("primary", [{ ok: text, pieces, cutAfterChunks: 3 }, { ok: text }]);
  const r = await chatStream(w, body());
  assertSeamless(r, text);
  await assertResumes(r.res, ["primary:replay"]);
});

test("route resume \"replay\" on an Anthropic deployment: the original request again, not a prefill", async () => {
  const t = await table(PRIMARY["anthropic prefill"](), { route: { resume: "replay" } });
  t.script("primary", [A.ok(FULL, { cutAfterChunks: K, continuePrefill: true }), A.ok(FULL, { continuePrefill: true })]);
  const r = await chatStream(w, body());
  assertSeamless(r, FULL);
  const [first, second] = t.requests("primary").map((q) => q.body);
  assert.deepEqual(second, first);
  await assertResumes(r.res, ["primary:replay"]);
});

test("usage after a resume sums the attempts (client asked for it); one usage chunk with the first id", async () => {
  const t = await table({ fake: fakeO, provider: { prefill: "assistant" } });
  const lastUsage = { prompt_tokens: 10, completion_tokens: 9, total_tokens: 19 };
  t.script("primary", [{ ok: FULL, cutAfterChunks: K, continuePrefill: true }, { ok: FULL, continuePrefill: true, usage: lastUsage }]);
  const r = await chatStream(w, body({ stream_options: { include_usage: true } }));
  assertSeamless(r, FULL);
  const usageChunks = r.events.filter((e) => Array.isArray(e.json?.choices) && e.json.choices.length === 0 && e.json.usage);
  assert.equal(usageChunks.length, 1, "one usage chunk");
  const u = usageChunks[0].json.usage;
  assert.ok(u.prompt_tokens > lastUsage.prompt_tokens, `prompt tokens of the broken attempt added: ${JSON.stringify(u)}`);
  assert.ok(u.completion_tokens > lastUsage.completion_tokens, `completion tokens of the broken attempt added: ${JSON.stringify(u)}`);
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  const line = await logLine(r.res);
  assert.ok(line, "log line");
  assert.equal(line.usage.prompt_tokens, u.prompt_tokens, "log line usage = client usage");
  assert.equal(line.usage.completion_tokens, u.completion_tokens);
});

// ---------------------------------------------------------------- prefill refused (400)

const PREFILL_REFUSED = {
  status: 400,
  body: { error: { message: "Assistant message prefill is not supported (fake-prefill-refused).", type: "invalid_request_error", param: "messages", code: null } },
};

test("the deployment refuses the prefill (400) -> replayed there; the 400 never reaches the caller", async () => {
  const t = await table({ fake: fakeO, provider: { prefill: "assistant" } });
  t.script("primary", [{ ok: FULL, cutAfterChunks: K, continuePrefill: true }, PREFILL_REFUSED, { ok: FULL }]);
  t.script("backup", [steps.ok("must not be used")]);
  const r = await chatStream(w, body());
  assertSeamless(r, FULL);
  assert.ok(!r.text.includes("fake-prefill-refused"));
  assert.deepEqual(t.allHits(), { primary: 3, backup: 0 });
  const [first, refused, replay] = t.requests("primary").map((q) => q.body);
  assert.equal(prefillText(refused), DELIVERED, "asked with a prefill first");
  assert.deepEqual(replay, first, "then replayed: the original request");
  await assertResumes(r.res, ["primary:replay"]);
});

test("fallback (Anthropic) rejects the prefill -> replay-and-verify on it; the client gets the whole answer, never the 400", async () => {
  const t = await table({ fake: fakeO }, { backup: { fake: fakeA, provider: { anthropic_version: "2023-06-01" } } });
  // primary: cut after K; its own resume (replay) fails before any byte (connection reset).
  t.script("primary", [{ ok: FULL, cutAfterChunks: K }, steps.reset()]);
  t.script("backup", [A.invalid(), A.ok(FULL)]);
  const r = await chatStream(w, body());
  assertSeamless(r, FULL);
  assert.ok(!r.text.includes("fake-anthropic-invalid"), "the refusal is not shown");
  assert.deepEqual(t.allHits(), { primary: 2, backup: 2 });
  const [prefilled, replayed] = t.requests("backup").map((q) => q.body);
  assert.equal(prefillText(prefilled), DELIVERED, "the fallback was asked with a native prefill");
  assert.deepEqual(replayed.messages, prefilled.messages.slice(0, -1), "then replayed without it");
  assert.equal(replayed.messages.at(-1).role, "user");
  await assertResumes(r.res, ["backup:replay"]);
});

test("route resume \"prefill\": the fallback refuses it -> clean in-band error naming the cut (not the 400)", async () => {
  const t = await table({ fake: fakeO, provider: { prefill: "assistant" } }, { route: { resume: "prefill" }, backup: { fake: fakeA } });
  t.script("primary", [{ ok: FULL, cutAfterChunks: K, continuePrefill: true }, steps.reset()]);
  t.script("backup", [A.invalid(), A.ok(FULL)]);
  const t0 = Date.now();
  const r = await chatStream(w, body());
  assertInBandError(r, DELIVERED, "stream_cut");
  assert.ok(!r.text.includes("fake-anthropic-invalid"));
  assert.ok(Date.now() - t0 < 4000);
  assert.deepEqual(t.allHits(), { primary: 2, backup: 1 }, "no replay in prefill mode");
  assert.equal(prefillText(t.requests("backup")[0].body), DELIVERED);
});

// ---------------------------------------------------------------- /v1/messages ingress

test("Anthropic SDK on /v1/messages, OpenAI-compatible deployment cuts -> one complete message (prefill)", async () => {
  const t = await table({ fake: fakeO, provider: { prefill: "assistant" } });
  t.script("primary", [{ ok: FULL, cutAfterChunks: K, continuePrefill: true }, { ok: FULL, continuePrefill: true }]);
  t.script("backup", [steps.ok("must not be used")]);
  const stream = anth.messages.stream({ model: "r", max_tokens: 200, messages: USER_MSG });
  let text = "";
  stream.on("text", (d) => (text += d));
  const msg = await stream.finalMessage();
  assert.equal(text, FULL);
  assert.deepEqual(msg.content.map((b) => [b.type, b.text]), [["text", FULL]]);
  assert.equal(msg.stop_reason, "end_turn");
  assert.deepEqual(t.allHits(), { primary: 2, backup: 0 });
  assert.equal(prefillText(t.requests("primary")[1].body), DELIVERED);
});

test("raw /v1/messages stream, OpenAI-compatible deployment stalls -> replay; one message_start … message_stop, no error event", async () => {
  const t = await table({ fake: fakeO });
  t.script("primary", [{ ok: FULL, stallAfterChunks: K }, { ok: FULL }]);
  t.script("backup", [{ ok: FULL }]);
  const res = await w.fetch("/v1/messages", {
    method: "POST",
    headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "unused" },
    body: JSON.stringify({ model: "r", max_tokens: 200, stream: true, messages: USER_MSG }),
  });
  const r = await readStream(res, { timeoutMs: 6000 });
  assert.equal(res.status, 200);
  const events = [...r.text.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]).filter((e) => e !== "ping");
  assert.equal(events[0], "message_start");
  assert.equal(events.at(-1), "message_stop");
  assert.equal(events.filter((e) => e === "message_start").length, 1);
  assert.equal(events.filter((e) => e === "message_stop").length, 1);
  assert.ok(!events.includes("error"), r.text);
  const text = r.events.filter((e) => e.json?.delta?.type === "text_delta").map((e) => e.json.delta.text).join("");
  assert.equal(text, FULL);
  // The stalled primary is not asked again: the backup replays the same request.
  assert.deepEqual(t.allHits(), { primary: 1, backup: 1 });
  const first = t.requests("primary")[0].body;
  const second = t.requests("backup")[0].body;
  assert.deepEqual({ ...second, model: first.model }, first);
});

test("limit: native Anthropic → Anthropic passthrough is not resumed (event: error after content)", async () => {
  const t = await table(PRIMARY["anthropic prefill"]());
  t.script("primary", [A.ok(FULL, { errorAfterChunks: K, continuePrefill: true }), A.ok(FULL, { continuePrefill: true })]);
  t.script("backup", [steps.ok("must not be used")]);
  const stream = anth.messages.stream({ model: "r", max_tokens: 200, messages: USER_MSG });
  let text = "";
  stream.on("text", (d) => (text += d));
  stream.on("error", () => {});
  await assert.rejects(stream.finalMessage(), (err) => err instanceof Anthropic.APIError);
  assert.equal(text, DELIVERED);
  assert.deepEqual(t.allHits(), { primary: 1, backup: 0 });
});

// ---------------------------------------------------------------- unchanged paths

test("non-streaming requests are unchanged: a cut body before anything was delivered is retried", async () => {
  const t = await table({ fake: fakeO, provider: { prefill: "assistant" } });
  t.script("primary", [steps.reset(), { ok: FULL }]);
  const r = await chatOnce(w, body());
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, FULL);
  assert.deepEqual(t.allHits(), { primary: 2, backup: 0 });
  assert.ok(!t.requests("primary").some((q) => prefillText(q.body) !== null), "no prefill for non-streaming requests");
});

test("openai SDK streaming through a resume: one complete answer, no SDK error", async () => {
  const t = await table({ fake: fakeO });
  t.script("primary", [{ ok: FULL, errorAfterChunks: K, inBandError: FIXTURE_ERRORS.overloaded.error }, { ok: FULL }]);
  const stream = await oai.chat.completions.create({ model: "r", messages: USER_MSG, stream: true });
  let content = "";
  for await (const chunk of stream) for (const c of chunk.choices) content += c.delta?.content ?? "";
  assert.equal(content, FULL);
  assert.deepEqual(t.allHits(), { primary: 2, backup: 0 });
});

test("the provider secret never appears in any response header or body", async () => {
  const seen = await w.allSeen();
  assert.ok(seen.length >= 10, `responses recorded: ${seen.length}`);
  for (const e of seen) {
    assert.ok(!JSON.stringify(e.headers).includes(FAKE_SECRET), `secret in headers of ${e.url}`);
    assert.ok(!e.body.includes(FAKE_SECRET), `secret in body of ${e.url}`);
  }
});
