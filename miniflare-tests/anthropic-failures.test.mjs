// OpenAI clients (`/v1/chat/completions`, official `openai` SDK) served by Anthropic deployments,
// when things fail: Anthropic's error classes (429, 529, prompt too long, 401, in-stream overloaded
// before / after the commit), fallback across formats (OpenAI-compatible <-> Anthropic), and
// deployment capabilities. The answers that succeed: anthropic.test.mjs.

import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { steps } from "./helpers/fake-openai.mjs";
import { anthropicSteps as A, ANTHROPIC_ERRORS } from "./helpers/fake-anthropic.mjs";
import { mixedTable, chatOnce, chatStream, sseContent, errorShape, reasons, FAKE_SECRET, USER_MSG } from "./helpers/worker.mjs";
import { collectSdkStream } from "./helpers/sdk.mjs";
import {
  fakeO,
  fakeA,
  w,
  client,
  PNG_B64,
  WEATHER_TOOL,
  textOf,
  claudeTable,
  assertMessagesWire,
  useAnthropicGateway,
} from "./helpers/anthropic-suite.mjs";

useAnthropicGateway();

// ---------------------------------------------------------------- Anthropic error classes

test("429 rate_limit_error from Anthropic -> rate_limited, retried, then the OpenAI-compatible deployment answers", async () => {
  const t = await claudeTable();
  t.script("claude", [A.r429()]);
  t.script("backup", [steps.ok("OpenAI-compatible backup here.", { model: "gpt-backup-2025" })]);
  const r = await chatOnce(w, { model: "claude", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.object, "chat.completion");
  assert.equal(r.json.choices[0].message.content, "OpenAI-compatible backup here.");
  assert.equal(r.json.model, "gpt-backup-2025");
  assert.equal(r.res.headers.get("x-router-deployment"), "backup");
  assert.equal(r.res.headers.get("x-router-attempts"), "3");
  assert.deepEqual(reasons(r.res), ["claude:rate_limited:429", "claude:rate_limited:429"]);
  assert.deepEqual(t.allHits(), { claude: 2, backup: 1 });
  const up = t.requests("backup")[0];
  assert.equal(up.body.model, "gpt-up-backup");
  assert.equal(up.headers.authorization, `Bearer ${FAKE_SECRET}`);
});

test("429 then success on the same Anthropic deployment (Retry-After honoured)", async () => {
  const t = await claudeTable();
  t.script("claude", [A.r429("1"), A.ok("Second time lucky.")]);
  const r = await chatOnce(w, { model: "claude", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, "Second time lucky.");
  assert.deepEqual(reasons(r.res), ["claude:rate_limited:429"]);
  assert.deepEqual(t.allHits(), { claude: 2, backup: 0 });
  const [a, b] = t.requests("claude");
  assert.ok(b.at - a.at >= 950, `retried ${b.at - a.at} ms later (retry-after: 1)`);
});

test("529 overloaded_error -> overloaded, retried with backoff, then fallback", async () => {
  const t = await claudeTable();
  t.script("claude", [A.r529()]);
  t.script("backup", [steps.ok("Not overloaded here.")]);
  const r = await chatOnce(w, { model: "claude", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, "Not overloaded here.");
  assert.deepEqual(reasons(r.res), ["claude:overloaded:529", "claude:overloaded:529"]);
  assert.deepEqual(t.allHits(), { claude: 2, backup: 1 });
});

test("every deployment Anthropic 529 -> 502 upstream_error (class overloaded)", async () => {
  const t = await mixedTable(w, {
    deployments: { c1: { fake: fakeA }, c2: { fake: fakeA } },
    routes: { claude: { chain: ["c1", "c2"] } },
  });
  t.script("c1", [A.r529()]);
  t.script("c2", [A.r529()]);
  const r = await chatOnce(w, { model: "claude", messages: USER_MSG });
  assert.equal(r.status, 502, r.text);
  const e = errorShape(r.json);
  assert.equal(e.type, "upstream_error");
  assert.equal(e.code, "overloaded");
  assert.deepEqual(t.allHits(), { c1: 2, c2: 2 });
});

test("401 authentication_error -> auth_error, no retry, next deployment", async () => {
  const t = await claudeTable();
  t.script("claude", [A.r401()]);
  t.script("backup", [steps.ok("Authorised elsewhere.")]);
  const r = await chatOnce(w, { model: "claude", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, "Authorised elsewhere.");
  assert.deepEqual(reasons(r.res), ["claude:auth_error:401"]);
  assert.deepEqual(t.allHits(), { claude: 1, backup: 1 });
});

test('400 "prompt is too long" -> context_length_exceeded: skip to a larger context_window', async () => {
  const t = await mixedTable(w, {
    deployments: {
      small: { fake: fakeA, context_window: 100000 },
      same: { fake: fakeO, context_window: 100000 },
      large: { fake: fakeA, context_window: 1000000, model: "claude-up-1m" },
    },
    routes: { long: { chain: ["small", "same", "large"] } },
  });
  t.script("small", [A.promptTooLong()]);
  t.script("same", [steps.ok("same-size must not be asked")]);
  t.script("large", [A.ok("Long context answer.", { model: "claude-1m" })]);
  const r = await chatOnce(w, { model: "long", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, "Long context answer.");
  assert.equal(r.res.headers.get("x-router-deployment"), "large");
  const got = reasons(r.res);
  assert.equal(got[0], "small:context_length_exceeded:400", `reasons: ${got}`);
  // The equal-size deployment is skipped without a request (it may be listed as a skip).
  assert.deepEqual(got.slice(1).filter((x) => x !== "same:skipped_context_window"), [], `reasons: ${got}`);
  assert.equal(r.res.headers.get("x-router-attempts"), "2");
  assert.deepEqual(t.allHits(), { small: 1, same: 0, large: 1 });
});

test('400 "prompt is too long" with no larger deployment -> 400 context_length_exceeded with the message', async () => {
  const t = await claudeTable({ claude: { context_window: 200000 }, backup: { context_window: 100000 } });
  t.script("claude", [A.promptTooLong()]);
  const r = await chatOnce(w, { model: "claude", messages: USER_MSG });
  assert.equal(r.status, 400, r.text);
  const e = errorShape(r.json);
  assert.equal(e.type, "invalid_request_error");
  assert.equal(e.code, "context_length_exceeded");
  assert.ok(e.message.includes(ANTHROPIC_ERRORS.prompt_too_long.error.message), `provider message passed on: ${e.message}`);
  assert.deepEqual(t.allHits(), { claude: 1, backup: 0 });
});

test("other 400 invalid_request_error from Anthropic -> 400 to the caller, no retry, no fallback", async () => {
  const t = await claudeTable();
  t.script("claude", [A.invalid()]);
  const r = await chatOnce(w, { model: "claude", messages: USER_MSG });
  assert.equal(r.status, 400, r.text);
  const e = errorShape(r.json);
  assert.equal(e.type, "invalid_request_error");
  assert.ok(e.message.includes("fake-anthropic-invalid-3"), `provider message passed on: ${e.message}`);
  assert.deepEqual(t.allHits(), { claude: 1, backup: 0 });
});

// ---------------------------------------------------------------- in-stream overloaded

test("stream: in-stream overloaded_error before any content -> retried invisibly on the same deployment", async () => {
  const t = await claudeTable();
  t.script("claude", [A.ok("never shown", { errorAfterChunks: 0 }), A.ok("Clean second attempt.")]);
  const r = await chatStream(w, { model: "claude", messages: USER_MSG });
  assert.equal(r.status, 200);
  assert.equal(sseContent(r.events), "Clean second attempt.");
  assert.equal(r.events.at(-1)?.data, "[DONE]");
  assert.ok(!r.events.some((e) => e.json?.error), "no error event reaches the client");
  assert.equal(r.events.filter((e) => e.json?.choices?.some((c) => c.delta?.role === "assistant")).length, 1, "one role chunk");
  assert.equal(r.res.headers.get("x-router-deployment"), "claude");
  assert.equal(r.res.headers.get("x-router-attempts"), "2");
  assert.equal(reasons(r.res).length, 1, `reasons: ${reasons(r.res)}`);
  assert.match(reasons(r.res)[0], /^claude:overloaded(:200)?$/);
  assert.deepEqual(t.allHits(), { claude: 2, backup: 0 });
});

test("stream: persistent overloaded_error before content -> invisible fallback to the OpenAI-compatible deployment (openai SDK)", async () => {
  const t = await claudeTable();
  t.script("claude", [A.ok("never shown", { errorAfterChunks: 0 })]);
  t.script("backup", [steps.ok("Backup streams instead.", { model: "gpt-backup-2025" })]);
  const { data: stream, response } = await client.chat.completions
    .create({ model: "claude", messages: USER_MSG, stream: true })
    .withResponse();
  assert.equal(response.headers.get("x-router-deployment"), "backup");
  const s = await collectSdkStream(stream);
  assert.equal(s.content, "Backup streams instead.");
  assert.equal(s.finish, "stop");
  assert.deepEqual([...s.models], ["gpt-backup-2025"]);
  assert.equal(reasons(response).length, 2, `reasons: ${reasons(response)}`);
  for (const x of reasons(response)) assert.match(x, /^claude:overloaded(:200)?$/);
  assert.deepEqual(t.allHits(), { claude: 2, backup: 1 });
});

// The bare after-commit contract (no mid-stream resume: resume.test.mjs covers resuming).
test("stream: overloaded_error after content -> in-band error event, no [DONE], no fallback", async () => {
  const t = await claudeTable({ route: { resume: "off" } });
  t.script("claude", [A.ok("One two three four five.", { errorAfterChunks: 2 })]);
  t.script("backup", [steps.ok("must not be used")]);
  const r = await chatStream(w, { model: "claude", messages: USER_MSG });
  assert.equal(r.status, 200);
  assert.equal(r.timedOut, false, "the gateway ended the stream");
  assert.equal(sseContent(r.events), "One two", "the content before the failure was forwarded");
  assert.ok(!r.events.some((e) => e.data === "[DONE]"), "no [DONE] after an in-band error");
  const last = r.events.at(-1);
  assert.ok(last?.json?.error, `last event is an error: ${last?.data}`);
  assert.equal(last.json.error.type, "upstream_error");
  assert.equal(last.json.error.code, "overloaded");
  assert.equal(r.events.filter((e) => e.json?.error).length, 1);
  assert.ok(!r.events.some((e) => e.json?.choices?.some((c) => c.finish_reason)), "no finish_reason on a failed stream");
  assert.deepEqual(t.allHits(), { claude: 1, backup: 0 });
});

test("stream: overloaded after content, openai SDK client -> the SDK raises instead of returning a truncated answer", async () => {
  const t = await claudeTable({ route: { resume: "off" } });
  t.script("claude", [A.ok("Alpha beta gamma delta.", { errorAfterChunks: 1 })]);
  const stream = await client.chat.completions.create({ model: "claude", messages: USER_MSG, stream: true });
  let content = "";
  await assert.rejects(async () => {
    for await (const chunk of stream) for (const c of chunk.choices) content += c.delta?.content ?? "";
  }, (err) => err instanceof OpenAI.APIError);
  assert.equal(content, "Alpha");
  assert.deepEqual(t.allHits(), { claude: 1, backup: 0 });
});

test("stream: 529 before the stream -> invisible fallback", async () => {
  const t = await claudeTable();
  t.script("claude", [A.r529()]);
  t.script("backup", [steps.ok("From the backup.")]);
  const r = await chatStream(w, { model: "claude", messages: USER_MSG });
  assert.equal(r.status, 200);
  assert.equal(sseContent(r.events), "From the backup.");
  assert.equal(r.events.at(-1)?.data, "[DONE]");
  assert.deepEqual(reasons(r.res), ["claude:overloaded:529", "claude:overloaded:529"]);
  assert.deepEqual(t.allHits(), { claude: 2, backup: 1 });
});

// ---------------------------------------------------------------- fallback across formats

function gptFirstTable() {
  return mixedTable(w, {
    deployments: {
      gpt: { fake: fakeO, model: "gpt-up-1" },
      claude: { fake: fakeA, model: "claude-up-1" },
    },
    routes: { mixed: { chain: ["gpt", "claude"] } },
  });
}

test("OpenAI-compatible 503 -> falls over to Anthropic, answer in OpenAI format (non-streaming)", async () => {
  const t = await gptFirstTable();
  t.script("gpt", [steps.r503()]);
  t.script("claude", [A.ok("Claude covers for GPT.", { model: "claude-up-1-20250929", usage: { input_tokens: 9, output_tokens: 4 } })]);
  const { data, response } = await client.chat.completions
    .create({ model: "mixed", messages: [{ role: "system", content: "Be brief." }, ...USER_MSG], temperature: 0.5 })
    .withResponse();
  assert.equal(data.object, "chat.completion");
  assert.equal(data.choices[0].message.content, "Claude covers for GPT.");
  assert.equal(data.choices[0].finish_reason, "stop");
  assert.equal(data.model, "claude-up-1-20250929");
  assert.deepEqual(data.usage, { ...data.usage, prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 });
  assert.equal(response.headers.get("x-router-deployment"), "claude");
  assert.equal(response.headers.get("x-router-provider"), "p-claude");
  assert.equal(response.headers.get("x-router-attempts"), "3");
  assert.equal(reasons(response).length, 2);
  for (const x of reasons(response)) assert.match(x, /^gpt:(overloaded|server_error):503$/);
  assert.deepEqual(t.allHits(), { gpt: 2, claude: 1 });
  const up = t.requests("claude")[0];
  assertMessagesWire(t, up);
  assert.equal(textOf(up.body.system), "Be brief.");
  assert.equal(up.body.temperature, 0.5);
});

test("OpenAI-compatible 503 -> Anthropic, streaming via the openai SDK", async () => {
  const t = await gptFirstTable();
  t.script("gpt", [steps.r503()]);
  t.script("claude", [A.ok("Streamed by Claude instead.", { model: "claude-up-1-20250929" })]);
  const { data: stream, response } = await client.chat.completions
    .create({ model: "mixed", messages: USER_MSG, stream: true, stream_options: { include_usage: true } })
    .withResponse();
  assert.equal(response.headers.get("x-router-deployment"), "claude");
  const s = await collectSdkStream(stream);
  assert.equal(s.content, "Streamed by Claude instead.");
  assert.equal(s.finish, "stop");
  assert.deepEqual([...s.models], ["claude-up-1-20250929"]);
  assert.ok(s.usage, "usage chunk");
  assert.deepEqual(t.allHits(), { gpt: 2, claude: 1 });
  assertMessagesWire(t, t.requests("claude")[0], { stream: true });
});

// ---------------------------------------------------------------- capabilities

const IMAGE_MSG = [
  {
    role: "user",
    content: [
      { type: "text", text: "Describe this." },
      { type: "image_url", image_url: { url: `data:image/png;base64,${PNG_B64}` } },
    ],
  },
];

test("capabilities: an image request skips a vision:false deployment (skip reason header)", async () => {
  const t = await mixedTable(w, {
    deployments: {
      blind: { fake: fakeO, capabilities: { vision: false } },
      claude: { fake: fakeA },
    },
    routes: { see: { chain: ["blind", "claude"] } },
  });
  t.script("blind", [steps.ok("must not be asked")]);
  t.script("claude", [A.ok("I see a pixel.")]);
  const r = await chatOnce(w, { model: "see", messages: IMAGE_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, "I see a pixel.");
  assert.equal(r.res.headers.get("x-router-deployment"), "claude");
  assert.ok(reasons(r.res).includes("blind:skipped_missing_capability_vision"), `reasons: ${reasons(r.res)}`);
  assert.equal(r.res.headers.get("x-router-attempts"), "1", "a skip is not an upstream attempt");
  assert.deepEqual(t.allHits(), { blind: 0, claude: 1 });

  // A text-only request is not affected.
  const plain = await chatOnce(w, { model: "see", messages: USER_MSG });
  assert.equal(plain.status, 200, plain.text);
  assert.equal(plain.res.headers.get("x-router-deployment"), "blind");
  assert.equal(plain.res.headers.get("x-router-fallback-reasons"), null);
});

test("capabilities: no deployment has vision -> 400 capability_unsupported, nothing sent upstream", async () => {
  const t = await mixedTable(w, {
    deployments: {
      blind1: { fake: fakeO, capabilities: { vision: false } },
      blind2: { fake: fakeA, capabilities: { vision: false, tools: true } },
    },
    routes: { see: { chain: ["blind1", "blind2"] } },
  });
  const r = await chatOnce(w, { model: "see", messages: IMAGE_MSG });
  assert.equal(r.status, 400, r.text);
  const e = errorShape(r.json);
  assert.equal(e.type, "invalid_request_error");
  assert.equal(e.code, "capability_unsupported");
  assert.match(e.message, /vision/i);
  assert.deepEqual(t.allHits(), { blind1: 0, blind2: 0 });
});

test("capabilities: tools, json and streaming are required only when the request uses them", async () => {
  const t = await mixedTable(w, {
    deployments: {
      notools: { fake: fakeO, capabilities: { tools: false } },
      nojson: { fake: fakeO, capabilities: { json: false } },
      nostream: { fake: fakeA, capabilities: { streaming: false } },
      all: { fake: fakeA },
    },
    routes: {
      tools: { chain: ["notools", "all"] },
      json: { chain: ["nojson", "all"] },
      stream: { chain: ["nostream", "all"] },
    },
  });
  t.script("all", [A.ok("capable answer")]);
  const withTools = await chatOnce(w, { model: "tools", messages: USER_MSG, tools: [WEATHER_TOOL] });
  assert.equal(withTools.status, 200, withTools.text);
  assert.equal(withTools.res.headers.get("x-router-deployment"), "all");
  assert.ok(reasons(withTools.res).includes("notools:skipped_missing_capability_tools"), `reasons: ${reasons(withTools.res)}`);

  const withJson = await chatOnce(w, { model: "json", messages: USER_MSG, response_format: { type: "json_object" } });
  assert.equal(withJson.status, 200, withJson.text);
  assert.equal(withJson.res.headers.get("x-router-deployment"), "all");
  assert.ok(reasons(withJson.res).includes("nojson:skipped_missing_capability_json"), `reasons: ${reasons(withJson.res)}`);

  const schema = { type: "json_schema", json_schema: { name: "x", schema: { type: "object", properties: {} } } };
  const withSchema = await chatOnce(w, { model: "json", messages: USER_MSG, response_format: schema });
  assert.equal(withSchema.res.headers.get("x-router-deployment"), "all", withSchema.text);
  assert.ok(reasons(withSchema.res).includes("nojson:skipped_missing_capability_json"));

  const streamed = await chatStream(w, { model: "stream", messages: USER_MSG });
  assert.equal(streamed.status, 200);
  assert.equal(sseContent(streamed.events), "capable answer");
  assert.equal(streamed.res.headers.get("x-router-deployment"), "all");
  assert.ok(reasons(streamed.res).includes("nostream:skipped_missing_capability_streaming"), `reasons: ${reasons(streamed.res)}`);

  assert.equal(t.hits("notools") + t.hits("nojson") + t.hits("nostream"), 0, "incapable deployments never called");
  assert.equal(t.hits("all"), 4);

  // Without the feature, the first deployment answers.
  t.script("notools", [steps.ok("plain is fine")]);
  t.script("nostream", [A.ok("non-streamed is fine")]);
  const plain = await chatOnce(w, { model: "tools", messages: USER_MSG });
  assert.equal(plain.res.headers.get("x-router-deployment"), "notools", plain.text);
  const nonStreamed = await chatOnce(w, { model: "stream", messages: USER_MSG });
  assert.equal(nonStreamed.res.headers.get("x-router-deployment"), "nostream", nonStreamed.text);
});

test("capabilities: streaming request with no streaming deployment -> 400 capability_unsupported", async () => {
  const t = await mixedTable(w, {
    deployments: { only: { fake: fakeA, capabilities: { streaming: false } } },
    routes: { s: { chain: ["only"] } },
  });
  const res = await w.chat({ model: "s", messages: USER_MSG, stream: true });
  const text = await res.text();
  assert.equal(res.status, 400, text);
  const e = errorShape(JSON.parse(text));
  assert.equal(e.code, "capability_unsupported");
  assert.deepEqual(t.allHits(), { only: 0 });
});
