// OpenAI clients (`/v1/chat/completions`, official `openai` SDK) served by Anthropic deployments:
// the Messages wire format the gateway sends (path, x-api-key, anthropic-version, body) and the
// translation back to OpenAI (text, streams with usage, tool calls both ways, images). Failures,
// fallback across formats and capabilities: anthropic-failures.test.mjs.

import { test } from "node:test";
import assert from "node:assert/strict";
import { anthropicSteps as A } from "./helpers/fake-anthropic.mjs";
import { chatOnce, chatStream, logOf, sseContent, reasons, FAKE_SECRET, USER_MSG } from "./helpers/worker.mjs";
import { collectSdkStream } from "./helpers/sdk.mjs";
import {
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

// ---------------------------------------------------------------- secrets

test("the provider secret never appears in any response header or body", async () => {
  const seen = await w.allSeen();
  assert.ok(seen.length >= 10, `responses recorded: ${seen.length}`);
  for (const e of seen) {
    assert.ok(!JSON.stringify(e.headers).includes(FAKE_SECRET), `secret in headers of ${e.url}`);
    assert.ok(!e.body.includes(FAKE_SECRET), `secret in body of ${e.url}`);
  }
});
