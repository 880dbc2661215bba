// `POST /v1/responses`: the OpenAI Responses API, with the official `openai` SDK as the client
// (`client.responses.create`, `client.responses.stream`, `create({stream: true})`), translated to
// the pivot and routed through the same engine to OpenAI-compatible, Anthropic, Gemini and mock
// deployments. Non-streaming answers are `response` objects (message and function_call items,
// usage, status); streams are the typed events with sequence numbers. Faults after the commit
// (cut, stall, malformed event) end with `response.failed` and an `error` event, never
// `response.completed`, and the SDK raises; a fault before the commit falls back invisibly.
// Stateful features (`previous_response_id`, `store: true`, `background: true`) are 400s.

import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startFake, steps } from "./helpers/fake-openai.mjs";
import { startFakeAnthropic, anthropicSteps as A } from "./helpers/fake-anthropic.mjs";
import { startFakeGemini, geminiSteps as G } from "./helpers/fake-gemini.mjs";
import { mixedTable, reasons, readStream, errorShape, logOf, FAKE_SECRET, answerOf } from "./helpers/worker.mjs";
import { useGateway } from "./helpers/harness.mjs";
import { openaiClient } from "./helpers/sdk.mjs";

const ADMIN = "responses-admin-token";
let fakeO, fakeA, fakeG, w, client;
useGateway(
  { fakes: { fakeO: startFake, fakeA: startFakeAnthropic, fakeG: startFakeGemini }, worker: { bindings: { ADMIN_TOKEN: ADMIN } } },
  (g) => {
    ({ fakeO, fakeA, fakeG, w } = g);
    client = openaiClient(w);
  },
);

const WEATHER_TOOL = {
  type: "function",
  name: "get_weather",
  description: "Get the current weather in a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false },
  strict: true,
};

/** One route `r` over every provider kind's deployment, each alone (`r-openai`, …) and a fallback pair. */
async function table(extraRoute = {}) {
  return mixedTable(w, {
    deployments: {
      openai: { fake: fakeO, model: "gpt-up" },
      openai2: { fake: fakeO, model: "gpt-up-2" },
      claude: { fake: fakeA, model: "claude-up", provider: { anthropic_version: "2023-06-01" } },
      gemini: { fake: fakeG, model: "gemini-up" },
      mock: { kind: "mock", model: "mock-up" },
    },
    routes: {
      "r-openai": { chain: ["openai"], ...extraRoute },
      "r-claude": { chain: ["claude"], ...extraRoute },
      "r-gemini": { chain: ["gemini"], ...extraRoute },
      "r-mock": { chain: ["mock"], ...extraRoute },
      "r-fallback": { chain: ["openai", "openai2"], ...extraRoute },
    },
  });
}

/** POST /v1/responses (raw), the whole body read. */
async function responsesOnce(body, init = {}) {
  const res = await w.fetch("/v1/responses", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...init,
  });
  return answerOf(res);
}

/** POST a streaming /v1/responses request (raw) and read it into named events. */
async function responsesStream(body, { timeoutMs = 10_000 } = {}) {
  const res = await w.fetch("/v1/responses", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ stream: true, ...body }),
  });
  const r = await readStream(res, { timeoutMs });
  return { res, status: res.status, ...r, named: namedEvents(r.text) };
}

/** SSE blocks `event: <name>\ndata: <json>` → [{event, json}]. */
function namedEvents(text) {
  const out = [];
  for (const block of text.split(/\n\n/)) {
    let event = null;
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (event === null && data.length === 0) continue;
    let json;
    try {
      json = JSON.parse(data.join("\n"));
    } catch {}
    out.push({ event, json });
  }
  return out;
}

/** Every event named as its data's type, sequence numbers 0, 1, 2, …; returns the names. */
function assertFraming(named) {
  named.forEach((e, i) => {
    assert.equal(e.json?.type, e.event, `event name = data type at ${i}`);
    assert.equal(e.json.sequence_number, i, `sequence_number at ${i}`);
  });
  return named.map((e) => e.event);
}

const streamedText = (named) =>
  named.filter((e) => e.event === "response.output_text.delta").map((e) => e.json.delta).join("");

/** A complete text stream: created, in_progress, one message item, its deltas, completed. */
function assertCompleteTextStream(r, text) {
  assert.equal(r.status, 200, r.text);
  assert.match(r.res.headers.get("content-type") ?? "", /text\/event-stream/);
  assert.equal(r.error, null);
  assert.equal(r.timedOut, false);
  const names = assertFraming(r.named);
  const deltas = names.filter((n) => n === "response.output_text.delta").length;
  assert.deepEqual(names, [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    ...Array(deltas).fill("response.output_text.delta"),
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
  ]);
  assert.equal(streamedText(r.named), text);
  const done = r.named.at(-1).json.response;
  assert.equal(done.status, "completed");
  assert.equal(done.output[0].content[0].text, text);
  assert.equal(done.output_text, text);
  assert.equal(r.named.find((e) => e.event === "response.output_text.done").json.text, text);
  assert.equal(r.named[0].json.response.id, done.id);
  return done;
}

/** A stream broken after the commit: no completed, ends with response.failed then error. */
function assertFailedStream(r, code) {
  assert.equal(r.status, 200, r.text);
  assert.equal(r.timedOut, false, "the gateway ends the stream itself");
  const names = assertFraming(r.named);
  assert.ok(!names.includes("response.completed"), `no response.completed: ${names}`);
  assert.ok(!names.includes("response.incomplete"), `no response.incomplete: ${names}`);
  assert.deepEqual(names.slice(-2), ["response.failed", "error"]);
  const failed = r.named.at(-2).json.response;
  assert.equal(failed.status, "failed");
  assert.match(failed.error.message, /incomplete/);
  assert.equal(r.named.at(-1).json.code, code);
  assert.equal(r.named.at(-1).json.error.code, code);
  assert.ok(names.includes("response.output_text.delta"), "the stream had committed");
  return failed;
}

// ---------------------------------------------------------------- every provider kind

test("responses.create → OpenAI-compatible: the pivot body upstream, a response object back", async () => {
  const t = await table();
  t.script("openai", [steps.ok("Hello from the gateway.", { usage: { prompt_tokens: 21, completion_tokens: 5, total_tokens: 26,
    prompt_tokens_details: { cached_tokens: 8 }, completion_tokens_details: { reasoning_tokens: 2 } } })]);
  const { data: r, response } = await client.responses
    .create({
      model: "r-openai",
      instructions: "Be brief.",
      input: [{ role: "user", content: [{ type: "input_text", text: "Say hello." }] }],
      max_output_tokens: 100,
      temperature: 0.3,
      metadata: { team: "search" },
      user: "u-1",
      store: false,
    })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(r.object, "response");
  assert.match(r.id, /^resp_/);
  assert.equal(r.status, "completed");
  assert.equal(r.output_text, "Hello from the gateway.");
  assert.equal(r.output.length, 1);
  assert.equal(r.output[0].type, "message");
  assert.equal(r.output[0].role, "assistant");
  assert.equal(r.model, `fake-${t.scenario("openai")}`, "the model that answered");
  assert.deepEqual(r.usage, { input_tokens: 21, input_tokens_details: { cached_tokens: 8 }, output_tokens: 5,
    output_tokens_details: { reasoning_tokens: 2 }, total_tokens: 26 });
  assert.equal(response.headers.get("x-router-route"), "r-openai");
  assert.equal(response.headers.get("x-router-deployment"), "openai");
  assert.equal(response.headers.get("x-router-attempts"), "1");
  assert.ok(Number(response.headers.get("x-router-cost-usd")) > 0, "cost from the usage");

  const [up] = t.requests("openai");
  assert.match(up.url, /\/v1\/chat\/completions$/);
  assert.equal(up.headers.authorization, `Bearer ${FAKE_SECRET}`);
  assert.deepEqual(up.body.messages, [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Say hello." },
  ]);
  assert.equal(up.body.model, "gpt-up");
  assert.equal(up.body.max_tokens, 100);
  assert.equal(up.body.temperature, 0.3);
  assert.deepEqual(up.body.metadata, { team: "search" });
  assert.equal(up.body.user, "u-1");
  for (const k of ["input", "instructions", "max_output_tokens", "store"]) assert.equal(up.body[k], undefined, k);

  const log = await logOf(w, response.headers.get("x-router-request-id"));
  assert.equal(log.route, "r-openai");
  assert.equal(log.deployment, "openai");
});

test("function tools over OpenAI-compatible: tool_calls → function_call items, function_call_output back", async () => {
  const t = await table();
  const completion = {
    id: "chatcmpl-tools1", object: "chat.completion", created: 1700000000, model: "gpt-up",
    choices: [{ index: 0, finish_reason: "tool_calls", message: { role: "assistant", content: null,
      tool_calls: [{ id: "call_w1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] } }],
    usage: { prompt_tokens: 30, completion_tokens: 12, total_tokens: 42 },
  };
  t.script("openai", [{ status: 200, body: completion }, steps.ok("It is sunny in Paris.")]);
  const first = await client.responses.create({
    model: "r-openai", input: "Weather in Paris?", tools: [WEATHER_TOOL], tool_choice: "auto", parallel_tool_calls: false,
  });
  assert.equal(first.status, "completed");
  assert.equal(first.output.length, 1);
  const call = first.output[0];
  assert.deepEqual(
    { type: call.type, call_id: call.call_id, name: call.name, arguments: call.arguments, status: call.status },
    { type: "function_call", call_id: "call_w1", name: "get_weather", arguments: '{"city":"Paris"}', status: "completed" },
  );
  assert.equal(first.output_text, "");

  const second = await client.responses.create({
    model: "r-openai",
    tools: [WEATHER_TOOL],
    input: [
      { role: "user", content: "Weather in Paris?" },
      ...first.output,
      { type: "function_call_output", call_id: call.call_id, output: '{"sky":"sunny"}' },
    ],
  });
  assert.equal(second.output_text, "It is sunny in Paris.");
  const [up1, up2] = t.requests("openai");
  assert.deepEqual(up1.body.tools, [{ type: "function", function: { name: "get_weather", description: WEATHER_TOOL.description,
    parameters: WEATHER_TOOL.parameters, strict: true } }]);
  assert.equal(up1.body.tool_choice, "auto");
  assert.equal(up1.body.parallel_tool_calls, false);
  assert.deepEqual(up2.body.messages.slice(1), [
    { role: "assistant", content: null, tool_calls: [{ id: "call_w1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] },
    { role: "tool", tool_call_id: "call_w1", content: '{"sky":"sunny"}' },
  ]);
});

test("responses.stream → OpenAI-compatible: typed events, sequence numbers, usage in response.completed", async () => {
  const t = await table();
  t.script("openai", [steps.ok("Streaming through the gateway works.")]);
  const r = await responsesStream({ model: "r-openai", input: "Hi" });
  const done = assertCompleteTextStream(r, "Streaming through the gateway works.");
  assert.equal(done.usage.output_tokens, 5);
  assert.equal(done.usage.total_tokens, done.usage.input_tokens + 5);
  assert.equal(r.res.headers.get("x-router-deployment"), "openai");
  const [up] = t.requests("openai");
  assert.equal(up.body.stream, true);
  assert.equal(up.body.stream_options?.include_usage, true);

  // The SDK's stream helper accumulates the same answer.
  const stream = client.responses.stream({ model: "r-openai", input: "Hi" });
  const deltas = [];
  stream.on("response.output_text.delta", (e) => deltas.push(e.delta));
  const final = await stream.finalResponse();
  assert.equal(final.status, "completed");
  assert.equal(final.output_text, "Streaming through the gateway works.");
  assert.equal(deltas.join(""), "Streaming through the gateway works.");
});

test("streamed tool call from OpenAI-compatible: function_call item, argument deltas, done events", async () => {
  const t = await table();
  const chunk = (delta, finish = null, extra = {}) =>
    `data: ${JSON.stringify({ id: "chatcmpl-st1", object: "chat.completion.chunk", created: 1700000000, model: "gpt-up",
      choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`;
  const sse =
    chunk({ role: "assistant", content: null }) +
    chunk({ tool_calls: [{ index: 0, id: "call_s1", type: "function", function: { name: "get_weather", arguments: "" } }] }) +
    chunk({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }) +
    chunk({ tool_calls: [{ index: 0, function: { arguments: '"Rome"}' } }] }) +
    chunk({}, "tool_calls") +
    `data: ${JSON.stringify({ id: "chatcmpl-st1", object: "chat.completion.chunk", model: "gpt-up", choices: [],
      usage: { prompt_tokens: 40, completion_tokens: 9, total_tokens: 49 } })}\n\n` +
    "data: [DONE]\n\n";
  t.script("openai", [{ status: 200, headers: { "content-type": "text/event-stream" }, body: sse }]);
  const events = [];
  const stream = await client.responses.create({ model: "r-openai", input: "Weather in Rome?", tools: [WEATHER_TOOL], stream: true });
  for await (const e of stream) events.push(e);
  const names = events.map((e) => e.type);
  assert.deepEqual(names, [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
    "response.completed",
  ]);
  events.forEach((e, i) => assert.equal(e.sequence_number, i));
  assert.equal(events[2].item.type, "function_call");
  assert.equal(events[2].item.call_id, "call_s1");
  assert.equal(events[5].arguments, '{"city":"Rome"}');
  assert.equal(events[5].name, "get_weather");
  const done = events.at(-1).response;
  assert.equal(done.output[0].arguments, '{"city":"Rome"}');
  assert.deepEqual(done.usage, { input_tokens: 40, input_tokens_details: { cached_tokens: 0 }, output_tokens: 9,
    output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 49 });
});

test("Anthropic deployment: Messages upstream, text and tool_use back as output items, streamed too", async () => {
  const t = await table();
  t.script("claude", [
    A.ok("Let me check.", { toolUse: { id: "toolu_1", name: "get_weather", input: { city: "Oslo" } }, usage: { input_tokens: 50, output_tokens: 20 } }),
    A.ok("Claude streams here."),
  ]);
  const r = await client.responses.create({
    model: "r-claude", instructions: "You are terse.", input: "Weather in Oslo?", tools: [WEATHER_TOOL], max_output_tokens: 200,
  });
  assert.equal(r.status, "completed");
  assert.deepEqual(r.output.map((o) => o.type), ["message", "function_call"]);
  assert.equal(r.output_text, "Let me check.");
  assert.equal(r.output[1].call_id, "toolu_1");
  assert.deepEqual(JSON.parse(r.output[1].arguments), { city: "Oslo" });
  assert.equal(r.usage.input_tokens, 50);
  assert.equal(r.usage.output_tokens, 20);
  const [up] = t.requests("claude");
  assert.match(up.url, /\/v1\/messages$/);
  assert.equal(up.headers["x-api-key"], FAKE_SECRET);
  assert.equal(up.body.system, "You are terse.");
  assert.equal(up.body.max_tokens, 200);
  assert.equal(up.body.tools[0].name, "get_weather");
  assert.deepEqual(up.body.tools[0].input_schema, WEATHER_TOOL.parameters);

  const s = await responsesStream({ model: "r-claude", input: "Hi" });
  assertCompleteTextStream(s, "Claude streams here.");
});

test("Gemini deployment: generateContent upstream, functionCall → function_call item, streamed text", async () => {
  const t = await table();
  t.script("gemini", [
    G.ok("", { functionCalls: [{ name: "get_weather", args: { city: "Lima" } }] }),
    G.ok("Gemini streams here."),
  ]);
  const r = await client.responses.create({ model: "r-gemini", input: "Weather in Lima?", tools: [WEATHER_TOOL] });
  assert.equal(r.status, "completed");
  const calls = r.output.filter((o) => o.type === "function_call");
  assert.equal(calls.length, 1);
  assert.equal(calls[0].name, "get_weather");
  assert.deepEqual(JSON.parse(calls[0].arguments), { city: "Lima" });
  const [up] = t.requests("gemini");
  assert.match(up.url, /:generateContent/);
  assert.equal(up.body.tools[0].functionDeclarations[0].name, "get_weather");

  const s = await responsesStream({ model: "r-gemini", input: "Hi" });
  assertCompleteTextStream(s, "Gemini streams here.");
  assert.match(t.requests("gemini")[1].url, /:streamGenerateContent\?alt=sse/);
});

test("built-in mock deployment: create and stream", async () => {
  await table();
  const r = await client.responses.create({ model: "r-mock", input: "Hello mock" });
  assert.equal(r.status, "completed");
  assert.match(r.output_text, /You said: "Hello mock"/);
  assert.ok(r.usage.output_tokens > 0);
  const s = await responsesStream({ model: "r-mock", input: "Hello mock" });
  const done = assertCompleteTextStream(s, r.output_text);
  assert.ok(done.usage.output_tokens > 0);
});

test("max_output_tokens reached: status incomplete (max_output_tokens), never completed", async () => {
  const t = await table();
  t.script("openai", [steps.ok("one two three four five six", { honourMaxTokens: true })]);
  const r = await client.responses.create({ model: "r-openai", input: "Count", max_output_tokens: 3 });
  assert.equal(r.status, "incomplete");
  assert.deepEqual(r.incomplete_details, { reason: "max_output_tokens" });
  assert.equal(r.output_text, "one two three");
  const s = await responsesStream({ model: "r-openai", input: "Count", max_output_tokens: 3 });
  const names = assertFraming(s.named);
  assert.equal(names.at(-1), "response.incomplete");
  assert.ok(!names.includes("response.completed"));
  assert.equal(s.named.at(-1).json.response.incomplete_details.reason, "max_output_tokens");
  assert.equal(streamedText(s.named), "one two three");
});

// ---------------------------------------------------------------- fallback and faults

test("fallback before the commit: the first deployment's 500 is invisible, the second answers", async () => {
  const t = await table();
  t.script("openai", [steps.r500()]);
  t.script("openai2", [steps.ok("Second deployment answers.")]);
  const { data: r, response } = await client.responses.create({ model: "r-fallback", input: "Hi" }).withResponse();
  assert.equal(r.output_text, "Second deployment answers.");
  assert.equal(response.headers.get("x-router-deployment"), "openai2");
  assert.ok(reasons(response).some((x) => x.startsWith("openai:server_error")), reasons(response).join());
  const s = await responsesStream({ model: "r-fallback", input: "Hi" });
  assertCompleteTextStream(s, "Second deployment answers.");
  assert.equal(s.res.headers.get("x-router-deployment"), "openai2");
  assert.equal(t.hits("openai") >= 2, true);
});

for (const [fault, step, code] of [
  ["cut", { cutAfterChunks: 2 }, "stream_cut"],
  ["stall", { stallAfterChunks: 2 }, "timeout_idle"],
  ["malformed event", { malformedAfterChunks: 2 }, "malformed_response"],
]) {
  test(`a ${fault} after the commit ends with response.failed and error; the SDK raises`, async () => {
    const t = await table({ resume: "off" });
    t.script("openai", [steps.ok("one two three four five six seven", step)]);
    const r = await responsesStream({ model: "r-openai", input: "Count" });
    const failed = assertFailedStream(r, code);
    assert.equal(streamedText(r.named), "one two");
    assert.equal(failed.output[0].status, "incomplete");
    assert.equal(failed.output[0].content[0].text, "one two");

    const stream = client.responses.stream({ model: "r-openai", input: "Count" });
    const seen = [];
    stream.on("event", (e) => seen.push(e.type));
    await assert.rejects(stream.finalResponse(), (err) => {
      assert.ok(err instanceof OpenAI.APIError, `${err?.constructor?.name}: ${err?.message}`);
      assert.match(err.message, /incomplete/);
      return true;
    });
    assert.ok(seen.includes("response.failed"), seen.join());
    assert.ok(!seen.includes("response.completed"), seen.join());

    const created = await client.responses.create({ model: "r-openai", input: "Count", stream: true });
    const types = [];
    await assert.rejects(async () => {
      for await (const e of created) types.push(e.type);
    }, OpenAI.APIError);
    assert.equal(types.at(-1), "response.failed");
  });
}

test("an Anthropic in-stream overloaded_error after the commit: response.failed and error (resume off)", async () => {
  const t = await table({ resume: "off" });
  t.script("claude", [A.ok("one two three four five", { errorAfterChunks: 2 })]);
  const r = await responsesStream({ model: "r-claude", input: "Count" });
  assertFailedStream(r, "overloaded");
  assert.equal(streamedText(r.named), "one two");
});

test("classification applies: metadata.task picks the route, the answer says which", async () => {
  const t = await table();
  await w.putTable({ ...t.table, tasks: { default: "chat", routes: { chat: "r-openai", cheap: "r-mock" } } });
  const { data: r, response } = await client.responses
    .create({ model: "auto", input: "Hello router", metadata: { task: "cheap" } })
    .withResponse();
  assert.equal(response.headers.get("x-router-route"), "r-mock");
  assert.equal(response.headers.get("x-router-task"), "cheap");
  assert.match(r.output_text, /You said: "Hello router"/);
});

test("admin explain with path /v1/responses reads a Responses body and applies its rules", async () => {
  const t = await table();
  await w.putTable({ ...t.table, tasks: { default: "chat", routes: { chat: "r-openai", tools: "r-claude" },
    rules: [{ name: "responses-tools", when: { path: "/v1/responses", tools: true }, task: "tools" }] } });
  const explain = async (body, path) => {
    const res = await w.fetch("/admin/api/explain", {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify({ body, path }),
    });
    return { status: res.status, json: await res.json() };
  };
  const withTools = await explain({ model: "auto", input: "Weather?", tools: [WEATHER_TOOL] }, "/v1/responses");
  assert.equal(withTools.status, 200, JSON.stringify(withTools.json));
  assert.match(JSON.stringify(withTools.json), /r-claude/);
  assert.match(JSON.stringify(withTools.json), /responses-tools/);
  const refused = await explain({ model: "auto", input: "x", store: true }, "/v1/responses");
  assert.equal(refused.status, 400);
  assert.equal(refused.json.error.param, "store");
  // The live request takes the same rule.
  const { response } = await client.responses.create({ model: "auto", input: "Weather?", tools: [WEATHER_TOOL] }).withResponse();
  assert.equal(response.headers.get("x-router-route"), "r-claude");
});

test("a cut after the commit with resume on: the answer arrives whole, once, as response.completed", async () => {
  const t = await table();
  t.script("openai", [steps.ok("alpha beta gamma delta epsilon", { cutAfterChunks: 2 }), steps.ok("alpha beta gamma delta epsilon")]);
  const r = await responsesStream({ model: "r-openai", input: "Greek" });
  assertCompleteTextStream(r, "alpha beta gamma delta epsilon");
  assert.equal(t.hits("openai"), 2);
});

test("a budgeted key's answer stops at its reservation: incomplete, and a stream ends with response.failed budget_exceeded", async () => {
  const t = await table();
  await w.putTable({ ...t.table, defaults: { ...t.table.defaults, estimated_output_tokens: 3 } });
  t.script("openai", [steps.ok("w0 w1 w2 w3 w4 w5 w6 w7 w8 w9", { honourMaxTokens: true })]);
  const created = await w.fetch("/admin/api/keys", {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "responses-budget", budget_day_usd: "1" }),
  });
  assert.equal(created.status, 201);
  const { key } = await created.json();
  const keyed = openaiClient(w, { apiKey: key });
  const r = await keyed.responses.create({ model: "r-openai", input: "Count" });
  assert.equal(r.status, "incomplete");
  assert.equal(r.incomplete_details.reason, "max_output_tokens");
  assert.equal(r.output_text, "w0 w1 w2");
  assert.equal(t.requests("openai")[0].body.max_tokens, 3, "capped at the reservation");

  const res = await w.fetch("/v1/responses", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ model: "r-openai", input: "Count", stream: true }),
  });
  const s = await readStream(res);
  const named = namedEvents(s.text);
  const names = assertFraming(named);
  assert.deepEqual(names.slice(-2), ["response.failed", "error"], names.join());
  assert.ok(!names.includes("response.completed"));
  assert.equal(named.at(-1).json.code, "budget_exceeded");
  assert.match(named.at(-1).json.message, /reserved/);
  assert.equal(streamedText(named), "w0 w1 w2");
});

test("text.format json_schema (strict) is checked: off-schema falls back, a stream off it ends with response.failed invalid_output", async () => {
  const t = await table();
  const format = { type: "json_schema", name: "rating", strict: true, schema: { type: "object", additionalProperties: false,
    required: ["title", "rating"], properties: { title: { type: "string" }, rating: { type: "number" } } } };
  t.script("openai", [steps.ok('{"title": "Dune", "rating": "4.5"}')]);
  t.script("openai2", [steps.ok('{"title": "Dune", "rating": 4.5}')]);
  const { data: r, response } = await client.responses
    .create({ model: "r-fallback", input: "Rate Dune.", text: { format } })
    .withResponse();
  assert.deepEqual(JSON.parse(r.output_text), { title: "Dune", rating: 4.5 });
  assert.equal(response.headers.get("x-router-deployment"), "openai2");
  assert.ok(reasons(response).includes("openai:invalid_output"), reasons(response).join());
  assert.deepEqual(t.requests("openai")[0].body.response_format, { type: "json_schema", json_schema: { name: "rating",
    schema: format.schema, strict: true } });

  const s = await responsesStream({ model: "r-openai", input: "Rate Dune.", text: { format } });
  const names = assertFraming(s.named);
  assert.deepEqual(names.slice(-2), ["response.failed", "error"], names.join());
  assert.ok(!names.includes("response.completed"));
  assert.equal(s.named.at(-1).json.code, "invalid_output");
  assert.match(s.named.at(-1).json.message, /rating/);
});

test("response cache: a Responses request is stored once and served again as a response object or a replayed event stream", async () => {
  const t = await table({ cache: { ttl_s: 60 } });
  t.script("openai", [steps.ok("Cached answer.")]);
  const ask = { model: "r-openai", input: "Cache me, please.", temperature: 0 };
  const miss = await responsesOnce(ask);
  assert.equal(miss.status, 200, miss.text);
  assert.equal(miss.res.headers.get("x-router-cache"), "miss");
  assert.equal(miss.json.output_text, "Cached answer.");
  const hit = await responsesOnce(ask);
  assert.equal(hit.res.headers.get("x-router-cache"), "hit");
  assert.equal(hit.json.object, "response");
  assert.equal(hit.json.status, "completed");
  assert.equal(hit.json.output_text, "Cached answer.");
  const s = await responsesStream(ask);
  assert.equal(s.res.headers.get("x-router-cache"), "hit");
  assertCompleteTextStream(s, "Cached answer.");
  assert.equal(t.hits("openai"), 1, "one upstream request for all three");
});

// ---------------------------------------------------------------- refusals and errors

test("stateful features get a clear 400 in OpenAI's error shape", async () => {
  const t = await table();
  for (const [extra, param] of [
    [{ previous_response_id: "resp_123" }, "previous_response_id"],
    [{ store: true }, "store"],
    [{ background: true }, "background"],
  ]) {
    await assert.rejects(client.responses.create({ model: "r-openai", input: "Hi", ...extra }), (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, `${err?.constructor?.name}: ${err?.message}`);
      assert.equal(err.status, 400);
      assert.equal(err.code, "unsupported_parameter");
      assert.equal(err.param, param);
      assert.match(err.message, /not supported/);
      return true;
    });
    const raw = await responsesOnce({ model: "r-openai", input: "Hi", ...extra });
    assert.equal(raw.status, 400);
    const e = errorShape(raw.json);
    assert.equal(e.type, "invalid_request_error");
    assert.equal(e.param, param);
  }
  assert.deepEqual(t.allHits(), { openai: 0, openai2: 0, claude: 0, gemini: 0 }, "nothing went upstream");
});

test("other errors: bad input, unknown model, every deployment failing, methods and stored paths", async () => {
  const t = await table();
  const bad = await responsesOnce({ model: "r-openai", input: [{ type: "input_file", file_id: "file-1" }] });
  assert.equal(bad.status, 400);
  assert.equal(errorShape(bad.json).param, "input[0].type");
  const noInput = await responsesOnce({ model: "r-openai" });
  assert.equal(errorShape(noInput.json).code, "missing_required_parameter");
  const hosted = await responsesOnce({ model: "r-openai", input: "x", tools: [{ type: "web_search" }] });
  assert.equal(errorShape(hosted.json).param, "tools[0].type");

  await assert.rejects(client.responses.create({ model: "no-such-route", input: "Hi" }), (err) => {
    assert.ok(err instanceof OpenAI.NotFoundError);
    assert.equal(err.code, "model_not_found");
    return true;
  });

  t.script("openai", [steps.r503()]);
  const down = await responsesOnce({ model: "r-openai", input: "Hi" });
  assert.equal(down.status, 502);
  assert.equal(errorShape(down.json).type, "upstream_error");

  const get = await w.fetch("/v1/responses");
  assert.equal(get.status, 405);
  assert.equal(get.headers.get("allow"), "POST");
  errorShape(await get.json());
  await assert.rejects(client.responses.retrieve("resp_123"), (err) => {
    assert.equal(err.status, 404);
    assert.match(err.message, /stateless/);
    return true;
  });
});

test("the provider secret never appears in any response header or body", async () => {
  const seen = await w.allSeen();
  assert.ok(seen.length >= 40, `responses recorded: ${seen.length}`);
  for (const e of seen) {
    assert.ok(!JSON.stringify(e.headers).includes(FAKE_SECRET), `secret in headers of ${e.url}`);
    assert.ok(!e.body.includes(FAKE_SECRET), `secret in body of ${e.url}`);
  }
});
