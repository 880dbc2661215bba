// `POST /v1/messages` when things fail, answered in Anthropic's shapes to the `@anthropic-ai/sdk`
// client: errors before the answer (404, 400, 429 with Retry-After, 502, 504, provider 400s,
// missing capabilities, 529 with fallback) and stream failures (invisible before the commit;
// after it an `event: error` with no message_stop).

import { test } from "node:test";
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { steps } from "./helpers/fake-openai.mjs";
import { anthropicSteps as A } from "./helpers/fake-anthropic.mjs";
import { geminiSteps as G } from "./helpers/fake-gemini.mjs";
import { mixedTable, reasons } from "./helpers/worker.mjs";
import {
  fakeA,
  fakeG,
  w,
  client,
  PNG_B64,
  USER,
  messagesOnce,
  messagesStream,
  streamedText,
  assertCompleteStream,
  assertAnthropicError,
  claudeTable,
  gptTable,
  useMessagesGateway,
} from "./helpers/messages-suite.mjs";

useMessagesGateway();

// ---------------------------------------------------------------- errors

test("unknown model -> 404 not_found_error (SDK NotFoundError)", async () => {
  await claudeTable();
  await assert.rejects(
    client.messages.create({ model: "no-such-model", max_tokens: 10, messages: USER }),
    (err) => err instanceof Anthropic.NotFoundError && err.status === 404 && err.error?.error?.type === "not_found_error",
  );
  const r = await messagesOnce({ model: "no-such-model", max_tokens: 10, messages: USER });
  const e = assertAnthropicError(r, 404, "not_found_error");
  assert.match(e.message, /no-such-model/);
});

test("missing max_tokens / messages, bad JSON -> 400 invalid_request_error (SDK BadRequestError)", async () => {
  const t = await claudeTable();
  await assert.rejects(
    client.messages.create({ model: "claude", messages: USER }),
    (err) => err instanceof Anthropic.BadRequestError && err.status === 400 && err.error?.error?.type === "invalid_request_error",
  );
  const noMax = await messagesOnce({ model: "claude", messages: USER });
  assert.match(assertAnthropicError(noMax, 400, "invalid_request_error").message, /max_tokens/);
  const noMessages = await messagesOnce({ model: "claude", max_tokens: 10 });
  assert.match(assertAnthropicError(noMessages, 400, "invalid_request_error").message, /messages/);
  assertAnthropicError(await messagesOnce("{not json"), 400, "invalid_request_error");
  assert.deepEqual(t.allHits(), { claude: 0, gpt: 0 }, "nothing sent upstream");
});

test("every attempt 429 -> 429 rate_limit_error with Retry-After (SDK RateLimitError)", async () => {
  const t = await claudeTable();
  t.script("claude", [A.r429()]);
  t.script("gpt", [steps.r429(null)]);
  await assert.rejects(client.messages.create({ model: "claude", max_tokens: 10, messages: USER }), (err) => err instanceof Anthropic.RateLimitError);
  const r = await messagesOnce({ model: "claude", max_tokens: 10, messages: USER });
  assertAnthropicError(r, 429, "rate_limit_error");
  assert.match(r.res.headers.get("retry-after") ?? "", /^\d+$/);
  assert.deepEqual(t.allHits(), { claude: 4, gpt: 4 });
});

test("every deployment fails with 5xx -> 502 api_error", async () => {
  const t = await claudeTable();
  t.script("claude", [A.r500()]);
  t.script("gpt", [steps.r500()]);
  const r = await messagesOnce({ model: "claude", max_tokens: 10, messages: USER });
  assertAnthropicError(r, 502, "api_error");
  assert.equal(reasons(r.res).length, 4);
  assert.deepEqual(t.allHits(), { claude: 2, gpt: 2 });
});

test("every deployment times out -> 504 timeout_error", async () => {
  const t = await mixedTable(w, {
    deployments: { slow: { fake: fakeA, timeouts: { attempt_ms: 500 } } },
    routes: { slow: { chain: ["slow"] } },
  });
  t.script("slow", [A.hang()]);
  const r = await messagesOnce({ model: "slow", max_tokens: 10, messages: USER });
  assertAnthropicError(r, 504, "timeout_error");
  assert.deepEqual(t.allHits(), { slow: 1 });
});

test("provider 400s reach the Anthropic client as 400 invalid_request_error with the provider's message", async () => {
  const t = await mixedTable(w, {
    deployments: { claude: { fake: fakeA, context_window: 200000 }, gem: { fake: fakeG, context_window: 100000 } },
    routes: { long: { chain: ["claude", "gem"] }, blocked: { chain: ["gem", "claude"] } },
  });
  t.script("claude", [A.promptTooLong()]);
  const tooLong = await messagesOnce({ model: "long", max_tokens: 10, messages: USER });
  assert.match(assertAnthropicError(tooLong, 400, "invalid_request_error").message, /prompt is too long/);
  assert.deepEqual(t.allHits(), { claude: 1, gem: 0 }, "no smaller-context fallback");

  t.script("gem", [G.blocked("SAFETY")]);
  const blocked = await messagesOnce({ model: "blocked", max_tokens: 10, messages: USER });
  assert.match(assertAnthropicError(blocked, 400, "invalid_request_error").message, /SAFETY/);
  assert.deepEqual(t.allHits(), { claude: 1, gem: 1 }, "a blocked prompt is not retried elsewhere");
});

test("capability missing everywhere -> 400 invalid_request_error in Anthropic shape", async () => {
  const t = await mixedTable(w, {
    deployments: { blind: { fake: fakeA, capabilities: { vision: false } } },
    routes: { blind: { chain: ["blind"] } },
  });
  const r = await messagesOnce({
    model: "blind",
    max_tokens: 10,
    messages: [{ role: "user", content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: PNG_B64 } }] }],
  });
  assert.match(assertAnthropicError(r, 400, "invalid_request_error").message, /vision|capabilit/i);
  assert.deepEqual(t.allHits(), { blind: 0 });
});

test("529 from Anthropic -> fallback to OpenAI-compatible; thinking reaches Anthropic but not the fallback", async () => {
  const t = await claudeTable();
  t.script("claude", [A.r529()]);
  t.script("gpt", [steps.ok("Fallback answer in Anthropic shape.")]);
  const request = { model: "claude", max_tokens: 50, thinking: { type: "enabled", budget_tokens: 1024 }, messages: USER };
  const { data: msg, response } = await client.messages.create(request).withResponse();
  assert.deepEqual(msg.content.map((b) => [b.type, b.text]), [["text", "Fallback answer in Anthropic shape."]]);
  assert.equal(response.headers.get("x-router-deployment"), "gpt");
  assert.deepEqual(reasons(response), ["claude:overloaded:529", "claude:overloaded:529"]);
  assert.deepEqual(t.allHits(), { claude: 2, gpt: 1 });
  assert.deepEqual(t.requests("claude")[0].body.thinking, request.thinking);
  assert.equal(t.requests("gpt")[0].body.thinking, undefined);
});

// ---------------------------------------------------------------- stream failures

test("stream: overloaded before content -> invisible fallback, one clean Messages stream", async () => {
  const t = await claudeTable();
  t.script("claude", [A.ok("never shown", { errorAfterChunks: 0 })]);
  t.script("gpt", [steps.ok("Clean fallback stream.")]);
  const r = await messagesStream({ model: "claude", max_tokens: 50, messages: USER });
  assertCompleteStream(r);
  assert.equal(streamedText(r.named), "Clean fallback stream.");
  assert.equal(r.res.headers.get("x-router-deployment"), "gpt");
  assert.deepEqual(t.allHits(), { claude: 2, gpt: 1 });
});

test("stream: Anthropic overloaded after content -> event: error overloaded_error, no message_stop (SDK raises)", async () => {
  const t = await claudeTable();
  t.script("claude", [A.ok("One two three four.", { errorAfterChunks: 2 })]);
  const r = await messagesStream({ model: "claude", max_tokens: 50, messages: USER });
  assert.equal(r.status, 200);
  assert.equal(r.timedOut, false, "the gateway ended the stream");
  assert.equal(streamedText(r.named), "One two");
  assert.ok(!r.named.some((e) => e.event === "message_stop"), "no message_stop after a failure");
  const last = r.named.at(-1);
  assert.equal(last?.event, "error", `last event: ${last?.event} ${last?.data}`);
  assert.equal(last.json?.type, "error");
  assert.equal(last.json.error?.type, "overloaded_error");
  assert.equal(r.named.filter((e) => e.event === "error").length, 1);
  assert.deepEqual(t.allHits(), { claude: 1, gpt: 0 });

  t.script("claude", [A.ok("Alpha beta gamma.", { errorAfterChunks: 1 })]);
  const stream = client.messages.stream({ model: "claude", max_tokens: 50, messages: USER });
  let text = "";
  stream.on("text", (d) => (text += d));
  stream.on("error", () => {});
  await assert.rejects(stream.finalMessage(), (err) => err instanceof Anthropic.APIError);
  assert.equal(text, "Alpha");
});

// The bare after-commit contract (no mid-stream resume: resume.test.mjs covers resuming).
test("stream: OpenAI-compatible upstream cut after content -> event: error api_error, no message_stop", async () => {
  const t = await gptTable({ resume: "off" });
  t.script("gpt", [steps.ok("One two three four.", { cutAfterChunks: 2 })]);
  const r = await messagesStream({ model: "gpt", max_tokens: 50, messages: USER });
  assert.equal(r.status, 200);
  assert.equal(streamedText(r.named), "One two");
  assert.ok(!r.named.some((e) => e.event === "message_stop"));
  const last = r.named.at(-1);
  assert.equal(last?.event, "error", `last event: ${last?.event} ${last?.data}`);
  assert.equal(last.json?.error?.type, "api_error");
  assert.deepEqual(t.allHits(), { gpt: 1, gpt2: 0 });
});

test("stream: upstream stalls after content -> event: error timeout_error, no message_stop", async () => {
  const t = await gptTable({ resume: "off" });
  t.script("gpt", [steps.ok("One two three four.", { stallAfterChunks: 2 })]);
  const r = await messagesStream({ model: "gpt", max_tokens: 50, messages: USER }, { timeoutMs: 5000 });
  assert.equal(r.status, 200);
  assert.equal(r.timedOut, false, "the gateway ended the stream after idle_ms");
  assert.equal(streamedText(r.named), "One two");
  assert.ok(!r.named.some((e) => e.event === "message_stop"));
  const last = r.named.at(-1);
  assert.equal(last?.event, "error", `last event: ${last?.event} ${last?.data}`);
  assert.equal(last.json?.error?.type, "timeout_error");
});
