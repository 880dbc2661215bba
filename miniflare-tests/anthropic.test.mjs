// OpenAI clients (`/v1/chat/completions`, official `openai` SDK) served by Anthropic deployments:
// the Messages wire format the gateway sends (path, x-api-key, anthropic-version, body), the
// translation back to OpenAI (text, streams with usage, tool calls both ways, images), Anthropic's
// error classes (429, 529, prompt too long, 401, in-stream overloaded before / after the commit),
// fallback across formats (OpenAI-compatible <-> Anthropic), and deployment capabilities.

import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startFake, steps } from "./helpers/fake-openai.mjs";
import { startFakeAnthropic, anthropicSteps as A, ANTHROPIC_ERRORS } from "./helpers/fake-anthropic.mjs";
import {
  startWorker,
  mixedTable,
  chatOnce,
  chatStream,
  logOf,
  sseContent,
  errorShape,
  reasons,
  FAKE_SECRET,
  USER_MSG,
} from "./helpers/worker.mjs";

let fakeO, fakeA, w, client;

before(async () => {
  fakeO = await startFake();
  fakeA = await startFakeAnthropic();
  w = await startWorker();
  client = new OpenAI({ baseURL: w.v1, apiKey: "unused", maxRetries: 0, timeout: 10_000, fetch: w.recordingFetch });
});
after(async () => {
  await w?.dispose();
  await fakeO?.close();
  await fakeA?.close();
});
beforeEach(() => {
  fakeO.reset();
  fakeA.reset();
});

// The 1x1 white PNG of the fixtures.
const PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mP4//8/AAX+Av4zEpUUAAAAAElFTkSuQmCC";
const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the current weather in a given location",
    parameters: {
      type: "object",
      properties: { location: { type: "string", description: "The city and state, e.g. San Francisco, CA" } },
      required: ["location"],
    },
  },
};

/** Text of an Anthropic `content` / `system` (a string or an array of blocks). */
function textOf(content) {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return undefined;
  return content.filter((b) => b?.type === "text").map((b) => b.text).join("");
}

/** A route "claude" = [claude (Anthropic), backup (OpenAI-compatible)]; `route` adds route options. */
function claudeTable({ provider = { anthropic_version: "2023-06-01", max_tokens_default: 777 }, claude = {}, backup = {}, route = {} } = {}) {
  return mixedTable(w, {
    deployments: {
      claude: { fake: fakeA, model: "claude-up-1", provider, ...claude },
      backup: { fake: fakeO, model: "gpt-up-backup", ...backup },
    },
    routes: { claude: { chain: ["claude", "backup"], ...route } },
  });
}

/** The request reached the fake Anthropic server as a Messages API call. */
function assertMessagesWire(t, up, { dep = "claude", version = "2023-06-01", model = "claude-up-1", stream = false } = {}) {
  assert.equal(up.method, "POST");
  assert.equal(up.url, `/s/${t.scenario(dep)}/v1/messages`, "POST <base_url>/messages");
  assert.equal(up.headers["x-api-key"], FAKE_SECRET, "x-api-key = the provider secret");
  assert.equal(up.headers["anthropic-version"], version);
  assert.match(up.headers["content-type"] ?? "", /^application\/json/);
  assert.ok(!String(up.headers.authorization ?? "").includes(FAKE_SECRET), "the key is not also sent as a Bearer token");
  assert.ok(up.body && typeof up.body === "object", `JSON body: ${up.rawBody}`);
  assert.equal(up.body.model, model, "model = the deployment's model");
  assert.equal(typeof up.body.max_tokens, "number", "max_tokens is always sent (required by Anthropic)");
  if (stream) assert.equal(up.body.stream, true);
  else assert.notEqual(up.body.stream, true);
  // Anthropic rejects unknown fields: no OpenAI-only fields may leak through.
  for (const k of ["stream_options", "n", "logprobs", "response_format", "max_completion_tokens"]) {
    assert.equal(up.body[k], undefined, `OpenAI-only field "${k}" not sent to Anthropic`);
  }
  for (const m of up.body.messages) assert.match(m.role, /^(user|assistant)$/, "only user/assistant roles in Messages");
}

/** Accumulate an SDK chat stream: content, finish_reason, usage, tool calls by index. */
async function collectSdkStream(stream) {
  const out = { content: "", finish: null, usage: null, chunks: 0, models: new Set(), objects: new Set(), tools: [], toolDeltas: [] };
  for await (const chunk of stream) {
    out.chunks++;
    out.models.add(chunk.model);
    out.objects.add(chunk.object);
    if (chunk.usage) out.usage = chunk.usage;
    for (const c of chunk.choices) {
      out.content += c.delta?.content ?? "";
      if (c.finish_reason) out.finish = c.finish_reason;
      for (const tc of c.delta?.tool_calls ?? []) {
        out.toolDeltas.push(tc);
        const slot = (out.tools[tc.index] ??= { id: null, type: null, name: "", arguments: "" });
        if (tc.id) slot.id = tc.id;
        if (tc.type) slot.type = tc.type;
        if (tc.function?.name) slot.name += tc.function.name;
        if (tc.function?.arguments) slot.arguments += tc.function.arguments;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- text

test("non-streaming via the openai SDK, served by Anthropic: OpenAI answer, Messages wire format", async () => {
  const t = await claudeTable();
  t.script("claude", [A.ok("Hello from Claude.", { model: "claude-up-1-20250929", usage: { input_tokens: 21, output_tokens: 5 } })]);
  const { data, response } = await client.chat.completions
    .create({
      model: "claude",
      messages: [
        { role: "system", content: "You are terse." },
        { role: "user", content: "Say hello." },
      ],
      temperature: 0.3,
    })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(data.object, "chat.completion");
  assert.equal(typeof data.id, "string");
  assert.equal(data.choices.length, 1);
  assert.equal(data.choices[0].index, 0);
  assert.equal(data.choices[0].message.role, "assistant");
  assert.equal(data.choices[0].message.content, "Hello from Claude.");
  assert.equal(data.choices[0].finish_reason, "stop", "end_turn -> stop");
  assert.equal(data.model, "claude-up-1-20250929", "model = the model that answered");
  assert.equal(data.usage.prompt_tokens, 21);
  assert.equal(data.usage.completion_tokens, 5);
  assert.equal(data.usage.total_tokens, 26);
  assert.deepEqual(t.allHits(), { claude: 1, backup: 0 });

  const [up] = t.requests("claude");
  assertMessagesWire(t, up);
  assert.equal(textOf(up.body.system), "You are terse.", "system message -> top-level system");
  assert.equal(up.body.messages.length, 1);
  assert.equal(up.body.messages[0].role, "user");
  assert.equal(textOf(up.body.messages[0].content), "Say hello.");
  assert.equal(up.body.max_tokens, 777, "max_tokens_default when the caller sets none");
  assert.equal(up.body.temperature, 0.3);

  const h = response.headers;
  assert.equal(h.get("x-router-route"), "claude");
  assert.equal(h.get("x-router-deployment"), "claude");
  assert.equal(h.get("x-router-provider"), "p-claude");
  assert.equal(h.get("x-router-model"), "claude-up-1-20250929");
  assert.equal(h.get("x-router-attempts"), "1");
  assert.equal(h.get("x-router-fallback-reasons"), null);
  // Price 0.15 / 0.6 USD per Mtok (mixedTable) on the mapped usage.
  const cost = Number(h.get("x-router-cost-usd"));
  assert.ok(Math.abs(cost - (21 * 0.15 + 5 * 0.6) / 1e6) < 1e-9, `x-router-cost-usd ${h.get("x-router-cost-usd")}`);
});

test("max_tokens from the request; stop_reason max_tokens -> finish_reason length", async () => {
  const t = await claudeTable();
  t.script("claude", [A.ok("Cut short", { stopReason: "max_tokens" })]);
  const data = await client.chat.completions.create({ model: "claude", messages: USER_MSG, max_tokens: 5 });
  assert.equal(data.choices[0].message.content, "Cut short");
  assert.equal(data.choices[0].finish_reason, "length");
  const [up] = t.requests("claude");
  assertMessagesWire(t, up);
  assert.equal(up.body.max_tokens, 5);
  assert.equal(up.body.system, undefined, "no system field without a system message");
});

test("provider defaults: anthropic-version 2023-06-01 and max_tokens 4096 when the table sets neither", async () => {
  const t = await claudeTable({ provider: {} });
  t.script("claude", [A.ok("Defaults work.")]);
  const r = await chatOnce(w, { model: "claude", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, "Defaults work.");
  const [up] = t.requests("claude");
  assertMessagesWire(t, up, { version: "2023-06-01" });
  assert.equal(up.body.max_tokens, 4096);
});

test("streaming via the openai SDK with include_usage, served by Anthropic", async () => {
  const t = await claudeTable();
  t.script("claude", [A.ok("Hello there, streaming world.", { model: "claude-up-1-20250929", usage: { input_tokens: 13, output_tokens: 6 } })]);
  const { data: stream, response } = await client.chat.completions
    .create({ model: "claude", messages: USER_MSG, stream: true, stream_options: { include_usage: true } })
    .withResponse();
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /text\/event-stream/);
  assert.equal(response.headers.get("x-router-deployment"), "claude");
  const s = await collectSdkStream(stream);
  assert.equal(s.content, "Hello there, streaming world.");
  assert.equal(s.finish, "stop");
  assert.deepEqual([...s.objects], ["chat.completion.chunk"]);
  assert.deepEqual([...s.models], ["claude-up-1-20250929"]);
  assert.ok(s.usage, "usage chunk delivered when asked");
  assert.equal(s.usage.prompt_tokens, 13, "input_tokens of message_start");
  assert.equal(s.usage.completion_tokens, 6, "output_tokens of message_delta");
  assert.equal(s.usage.total_tokens, 19);
  assert.ok(s.chunks >= 5, `several chunks: ${s.chunks}`);
  assert.deepEqual(t.allHits(), { claude: 1, backup: 0 });
  assertMessagesWire(t, t.requests("claude")[0], { stream: true });
});

test("streaming without include_usage: clean OpenAI SSE ending in one [DONE], no usage chunk", async () => {
  const t = await claudeTable();
  t.script("claude", [A.ok("Four words right here.")]);
  const r = await chatStream(w, { model: "claude", messages: USER_MSG });
  assert.equal(r.status, 200);
  assert.equal(r.error, null);
  assert.equal(r.timedOut, false);
  assert.equal(sseContent(r.events), "Four words right here.");
  assert.equal(r.events.at(-1)?.data, "[DONE]");
  assert.equal(r.events.filter((e) => e.data === "[DONE]").length, 1);
  const jsons = r.events.filter((e) => e.json).map((e) => e.json);
  assert.ok(jsons.every((j) => j.object === "chat.completion.chunk"), "every event is a chat.completion.chunk");
  assert.ok(jsons.every((j) => !j.usage), "no usage when not asked");
  assert.equal(jsons.filter((j) => j.choices?.some((c) => c.delta?.role === "assistant")).length, 1, "one role chunk");
  assert.equal(jsons.filter((j) => j.choices?.some((c) => c.finish_reason === "stop")).length, 1, "one finish chunk");
  assert.ok(!r.text.includes("event:"), "no Anthropic event names leak into the OpenAI stream");
  assert.ok(r.elapsedMs < 2000, `finished in ${r.elapsedMs} ms`);
});

test("developer/system roles -> system; stop -> stop_sequences; tool_choice required -> any", async () => {
  const t = await claudeTable();
  t.script("claude", [A.ok("Done.", { stopReason: "stop_sequence" })]);
  const data = await client.chat.completions.create({
    model: "claude",
    messages: [{ role: "developer", content: "Answer in French." }, ...USER_MSG],
    stop: ["END"],
    tools: [WEATHER_TOOL],
    tool_choice: "required",
  });
  assert.equal(data.choices[0].message.content, "Done.");
  assert.equal(data.choices[0].finish_reason, "stop", "stop_sequence -> stop");
  const [up] = t.requests("claude");
  assertMessagesWire(t, up);
  assert.equal(textOf(up.body.system), "Answer in French.", "developer message -> system");
  assert.deepEqual(up.body.stop_sequences, ["END"]);
  assert.deepEqual(up.body.tool_choice, { type: "any" });
});

test("extended thinking and prompt caching: thinking kept out of content, cached tokens counted in usage", async () => {
  const t = await claudeTable();
  const usage = { input_tokens: 20, output_tokens: 7, cache_read_input_tokens: 100, cache_creation_input_tokens: 5 };
  t.script("claude", [
    A.ok("The answer is 42.", { thinking: "Let me think about this carefully.", usage }),
    A.ok("The answer is 42.", { thinking: "Let me think about this carefully.", usage }),
  ]);
  const data = await client.chat.completions.create({ model: "claude", messages: USER_MSG });
  assert.equal(data.choices[0].message.content, "The answer is 42.", "no thinking text in content");
  assert.equal(data.usage.prompt_tokens, 125, "prompt_tokens = input + cache read + cache write");
  assert.equal(data.usage.completion_tokens, 7);
  assert.equal(data.usage.total_tokens, 132);
  assert.equal(data.usage.prompt_tokens_details?.cached_tokens, 100);

  const stream = await client.chat.completions.create({ model: "claude", messages: USER_MSG, stream: true, stream_options: { include_usage: true } });
  const s = await collectSdkStream(stream);
  assert.equal(s.content, "The answer is 42.", "no thinking deltas in content");
  assert.equal(s.finish, "stop");
  assert.equal(s.usage?.prompt_tokens, 125);
  assert.equal(s.usage?.completion_tokens, 7);
});

test("prompt caching is priced per token class: cache reads and writes at their own prices, streamed and not", async () => {
  // Sonnet-like prices: input $3, output $15, cache read $0.30, cache write $3.75 per Mtok.
  const price = { input_per_mtok_usd: 3, output_per_mtok_usd: 15, cached_input_per_mtok_usd: "0.30", cache_write_per_mtok_usd: 3.75 };
  const t = await claudeTable({ claude: { price } });
  const usage = { input_tokens: 20, output_tokens: 7, cache_read_input_tokens: 100, cache_creation_input_tokens: 5 };
  t.script("claude", [A.ok("Cached.", { usage })]);
  // 20 × 3 + 100 × 0.30 + 5 × 3.75 + 7 × 15 = 60 + 30 + 18.75 + 105 = 213.75 µUSD. Priced as
  // plain input (before cache prices existed) the same answer cost 480 µUSD.
  const plain = await chatOnce(w, { model: "claude", messages: USER_MSG });
  assert.equal(plain.status, 200, plain.text);
  assert.equal(plain.res.headers.get("x-router-cost-usd"), "0.00021375");
  const streamed = await chatStream(w, { model: "claude", messages: USER_MSG, stream_options: { include_usage: true } });
  assert.equal(streamed.status, 200);
  const logged = await logOf(w, streamed.res.headers.get("x-router-request-id"));
  assert.equal(logged.cost_usd, "0.00021375");
});

test("stream written in 3-byte pieces (events split anywhere) -> the same clean stream", async () => {
  // Hundreds of 1 ms-apart writes: room for the whole attempt on a loaded machine.
  const t = await claudeTable({ claude: { timeouts: { attempt_ms: 20000 } } });
  t.script("claude", [A.ok("Zürich — naïve café ☕ works.", { splitBytes: 3, toolUse: { name: "get_weather", input: { location: "Zürich" } } })]);
  const stream = await client.chat.completions.create({ model: "claude", messages: USER_MSG, tools: [WEATHER_TOOL], stream: true });
  const s = await collectSdkStream(stream);
  assert.equal(s.content, "Zürich — naïve café ☕ works.");
  assert.equal(s.finish, "tool_calls");
  assert.deepEqual(JSON.parse(s.tools[0].arguments), { location: "Zürich" });
  assert.deepEqual(t.allHits(), { claude: 1, backup: 0 });
});

// ---------------------------------------------------------------- tools

test("tool call round trip (non-streaming): tools -> Anthropic tools, tool_use -> tool_calls, tool results back as blocks", async () => {
  const t = await claudeTable();
  t.script("claude", [
    A.ok("I'll check the weather.", { toolUse: { id: "toolu_01NRLabsLyVHZPKxbKvkfSMn", name: "get_weather", input: { location: "Paris, FR" } } }),
    A.ok("It is 18 degrees in Paris."),
  ]);
  const first = await client.chat.completions.create({
    model: "claude",
    messages: [{ role: "user", content: "What is the weather in Paris?" }],
    tools: [WEATHER_TOOL],
  });
  const msg = first.choices[0].message;
  assert.equal(first.choices[0].finish_reason, "tool_calls", "tool_use -> tool_calls");
  assert.equal(msg.role, "assistant");
  assert.equal(msg.content, "I'll check the weather.");
  assert.equal(msg.tool_calls?.length, 1, `tool_calls: ${JSON.stringify(msg)}`);
  const call = msg.tool_calls[0];
  assert.equal(call.type, "function");
  assert.equal(typeof call.id, "string");
  assert.ok(call.id.length > 0);
  assert.equal(call.function.name, "get_weather");
  assert.equal(typeof call.function.arguments, "string", "arguments is a JSON string");
  assert.deepEqual(JSON.parse(call.function.arguments), { location: "Paris, FR" });

  const [up1] = t.requests("claude");
  assertMessagesWire(t, up1);
  assert.deepEqual(up1.body.tools, [
    { name: "get_weather", description: "Get the current weather in a given location", input_schema: WEATHER_TOOL.function.parameters },
  ]);

  // Second turn: the assistant's tool_calls and the tool's answer go back.
  const second = await client.chat.completions.create({
    model: "claude",
    messages: [
      { role: "user", content: "What is the weather in Paris?" },
      msg,
      { role: "tool", tool_call_id: call.id, content: '{"temperature_c":18}' },
    ],
    tools: [WEATHER_TOOL],
  });
  assert.equal(second.choices[0].message.content, "It is 18 degrees in Paris.");
  assert.equal(second.choices[0].finish_reason, "stop");
  assert.deepEqual(t.allHits(), { claude: 2, backup: 0 });

  const up2 = t.requests("claude")[1];
  assertMessagesWire(t, up2);
  const msgs = up2.body.messages;
  assert.deepEqual(msgs.map((m) => m.role), ["user", "assistant", "user"], `roles: ${JSON.stringify(msgs)}`);
  const asst = msgs[1].content;
  assert.ok(Array.isArray(asst), "assistant content as blocks");
  const toolUse = asst.find((b) => b.type === "tool_use");
  assert.ok(toolUse, `tool_use block in ${JSON.stringify(asst)}`);
  assert.equal(toolUse.id, call.id);
  assert.equal(toolUse.name, "get_weather");
  assert.deepEqual(toolUse.input, { location: "Paris, FR" }, "input is an object, not a string");
  assert.equal(textOf(asst), "I'll check the weather.", "the assistant's text goes back too");
  const result = (Array.isArray(msgs[2].content) ? msgs[2].content : []).find((b) => b.type === "tool_result");
  assert.ok(result, `tool_result block in ${JSON.stringify(msgs[2])}`);
  assert.equal(result.tool_use_id, call.id);
  assert.equal(textOf(result.content), '{"temperature_c":18}');
});

test("parallel tool calls: two tool messages -> one user message with both tool_result blocks", async () => {
  const t = await claudeTable();
  t.script("claude", [
    A.ok("", {
      toolUse: [
        { id: "toolu_A", name: "get_weather", input: { location: "Paris" } },
        { id: "toolu_B", name: "get_weather", input: { location: "Rome" } },
      ],
    }),
    A.ok("Paris 18C, Rome 24C."),
  ]);
  const first = await client.chat.completions.create({ model: "claude", messages: [{ role: "user", content: "Paris and Rome?" }], tools: [WEATHER_TOOL] });
  const msg = first.choices[0].message;
  assert.equal(msg.tool_calls?.length, 2, JSON.stringify(msg));
  assert.ok(msg.content === null || msg.content === "", `no text: ${JSON.stringify(msg.content)}`);
  assert.deepEqual(msg.tool_calls.map((c) => JSON.parse(c.function.arguments).location), ["Paris", "Rome"]);
  const second = await client.chat.completions.create({
    model: "claude",
    tools: [WEATHER_TOOL],
    messages: [
      { role: "user", content: "Paris and Rome?" },
      msg,
      { role: "tool", tool_call_id: msg.tool_calls[0].id, content: "18C" },
      { role: "tool", tool_call_id: msg.tool_calls[1].id, content: "24C" },
    ],
  });
  assert.equal(second.choices[0].message.content, "Paris 18C, Rome 24C.");
  const msgs = t.requests("claude")[1].body.messages;
  // Anthropic wants every tool_result of a tool_use turn in the very next (user) message.
  assert.deepEqual(msgs.map((m) => m.role), ["user", "assistant", "user"], JSON.stringify(msgs));
  assert.deepEqual(msgs[1].content.filter((b) => b.type === "tool_use").map((b) => b.id), msg.tool_calls.map((c) => c.id));
  const results = msgs[2].content.filter((b) => b.type === "tool_result");
  assert.deepEqual(results.map((b) => [b.tool_use_id, textOf(b.content)]), [
    [msg.tool_calls[0].id, "18C"],
    [msg.tool_calls[1].id, "24C"],
  ]);
});

test("tool call streaming: input_json_delta fragments -> tool_calls deltas with JSON-string arguments", async () => {
  const t = await claudeTable();
  t.script("claude", [
    A.ok("I'll check the current weather in Paris for you.", {
      toolUse: { id: "toolu_01Stream", name: "get_weather", input: { location: "Paris, FR", unit: "celsius" } },
      usage: { input_tokens: 377, output_tokens: 65 },
    }),
  ]);
  const stream = await client.chat.completions.create({
    model: "claude",
    messages: [{ role: "user", content: "Weather in Paris?" }],
    tools: [WEATHER_TOOL],
    stream: true,
    stream_options: { include_usage: true },
  });
  const s = await collectSdkStream(stream);
  assert.equal(s.content, "I'll check the current weather in Paris for you.");
  assert.equal(s.finish, "tool_calls");
  assert.equal(s.tools.length, 1, `tool calls: ${JSON.stringify(s.tools)}`);
  assert.equal(typeof s.tools[0].id, "string");
  assert.ok(s.tools[0].id.length > 0);
  assert.equal(s.tools[0].type, "function");
  assert.equal(s.tools[0].name, "get_weather");
  assert.deepEqual(JSON.parse(s.tools[0].arguments), { location: "Paris, FR", unit: "celsius" });
  const firstDelta = s.toolDeltas[0];
  assert.ok(firstDelta.id && firstDelta.function?.name === "get_weather", "the first tool-call delta carries id and name");
  assert.ok(s.toolDeltas.length >= 2, `arguments arrive in pieces: ${s.toolDeltas.length} deltas`);
  assert.equal(s.usage?.prompt_tokens, 377);
  assert.equal(s.usage?.completion_tokens, 65);
  assertMessagesWire(t, t.requests("claude")[0], { stream: true });
  assert.equal(t.requests("claude")[0].body.tools[0].name, "get_weather");
});

// ---------------------------------------------------------------- images

test("image input: a data: URL becomes an Anthropic base64 image block", async () => {
  const t = await claudeTable();
  t.script("claude", [A.ok("A white pixel.")]);
  const data = await client.chat.completions.create({
    model: "claude",
    messages: [
      {
        role: "user",
        content: [
          { type: "text", text: "What is in this image?" },
          { type: "image_url", image_url: { url: `data:image/png;base64,${PNG_B64}` } },
        ],
      },
    ],
  });
  assert.equal(data.choices[0].message.content, "A white pixel.");
  const [up] = t.requests("claude");
  assertMessagesWire(t, up);
  const blocks = up.body.messages[0].content;
  assert.ok(Array.isArray(blocks), `content blocks: ${JSON.stringify(up.body.messages[0])}`);
  assert.deepEqual(
    blocks.map((b) => b.type),
    ["text", "image"],
    "order kept",
  );
  assert.equal(blocks[0].text, "What is in this image?");
  assert.deepEqual(blocks[1].source, { type: "base64", media_type: "image/png", data: PNG_B64 });
});

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

// ---------------------------------------------------------------- secrets

test("the provider secret never appears in any response header or body", async () => {
  const seen = await w.allSeen();
  assert.ok(seen.length >= 10, `responses recorded: ${seen.length}`);
  for (const e of seen) {
    assert.ok(!JSON.stringify(e.headers).includes(FAKE_SECRET), `secret in headers of ${e.url}`);
    assert.ok(!e.body.includes(FAKE_SECRET), `secret in body of ${e.url}`);
  }
});
