// `POST /v1/messages`: Anthropic Messages API ingress, with the official `@anthropic-ai/sdk` as the
// client, routed by `model` through the same tables to any provider: Anthropic (original body
// passed through except `model`), OpenAI-compatible and Gemini (translated both ways, tools
// included), and the built-in mock; answers and stream events (message_start … message_stop).
// Failures: messages-failures.test.mjs; count_tokens: count-tokens.test.mjs.

import { test } from "node:test";
import assert from "node:assert/strict";
import { steps } from "./helpers/fake-openai.mjs";
import { anthropicSteps as A, ANTHROPIC_SIGNATURE } from "./helpers/fake-anthropic.mjs";
import { geminiSteps as G } from "./helpers/fake-gemini.mjs";
import { mixedTable, FAKE_SECRET } from "./helpers/worker.mjs";
import {
  fakeG,
  w,
  client,
  defaultTable,
  PNG_B64,
  WEATHER_TOOL,
  USER,
  messagesStream,
  streamedText,
  assertCompleteStream,
  claudeTable,
  gptTable,
  useMessagesGateway,
} from "./helpers/messages-suite.mjs";

useMessagesGateway();

// ---------------------------------------------------------------- (a) Anthropic deployment

test("Anthropic SDK -> Anthropic deployment: body passed through except model, answer passed back", async () => {
  const t = await claudeTable();
  t.script("claude", [A.ok("Hello from upstream Claude.", { model: "claude-up-1-20250929", usage: { input_tokens: 12, output_tokens: 6 } })]);
  const request = {
    model: "claude",
    max_tokens: 300,
    system: "You are terse.",
    messages: USER,
    thinking: { type: "enabled", budget_tokens: 1024 },
    metadata: { user_id: "u-42" },
    top_k: 5,
  };
  const { data: msg, response } = await client.messages.create(request).withResponse();
  assert.equal(response.status, 200);
  assert.equal(msg.type, "message");
  assert.equal(msg.role, "assistant");
  assert.equal(typeof msg.id, "string");
  assert.deepEqual(msg.content.map((b) => [b.type, b.text]), [["text", "Hello from upstream Claude."]]);
  assert.equal(msg.stop_reason, "end_turn");
  assert.equal(msg.model, "claude-up-1-20250929");
  assert.equal(msg.usage.input_tokens, 12);
  assert.equal(msg.usage.output_tokens, 6);
  assert.equal(response.headers.get("x-router-route"), "claude");
  assert.equal(response.headers.get("x-router-deployment"), "claude");
  assert.equal(response.headers.get("x-router-attempts"), "1");
  assert.deepEqual(t.allHits(), { claude: 1, gpt: 0 });

  const [up] = t.requests("claude");
  assert.equal(up.url, `/s/${t.scenario("claude")}/v1/messages`);
  assert.equal(up.headers["x-api-key"], FAKE_SECRET, "the provider's key, not the client's");
  // The SDK's own anthropic-version is forwarded (it wins over the provider's configured one).
  assert.match(up.headers["anthropic-version"] ?? "", /^\d{4}-\d{2}-\d{2}$/);
  const { stream, ...rest } = up.body;
  assert.ok(stream === undefined || stream === false, `stream: ${stream}`);
  assert.deepEqual(rest, { ...request, model: "claude-up-1" }, "original body, only model replaced");
});

test("Claude Code-like request: the client's anthropic-beta and anthropic-version reach Anthropic upstreams, and no other client header does", async () => {
  const t = await claudeTable();
  t.script("claude", [A.ok("Beta features on.")]);
  const betas = ["interleaved-thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14"];
  const msg = await client.beta.messages.create(
    { model: "claude", max_tokens: 64, system: [{ type: "text", text: "You are Claude Code.", cache_control: { type: "ephemeral" } }], messages: USER, betas },
    { headers: { "anthropic-version": "2023-06-01", "x-custom-client-header": "must-not-pass", "x-session-id": "s1" } },
  );
  assert.equal(msg.content[0].text, "Beta features on.");
  const [up] = t.requests("claude");
  assert.equal(up.headers["anthropic-beta"], betas.join(","), "the client's betas");
  assert.equal(up.headers["anthropic-version"], "2023-06-01");
  assert.equal(up.headers["x-api-key"], FAKE_SECRET);
  assert.equal(up.headers["x-custom-client-header"], undefined);
  assert.equal(up.headers["x-session-id"], undefined);

  // Falling back to an OpenAI-compatible deployment: no Anthropic header goes there.
  t.script("claude", [A.r401()]);
  t.script("gpt", [steps.ok("from gpt")]);
  await client.beta.messages.create({ model: "claude", max_tokens: 64, messages: USER, betas });
  const [gptUp] = t.requests("gpt");
  assert.equal(gptUp.headers["anthropic-beta"], undefined);
  assert.equal(gptUp.headers["anthropic-version"], undefined);
});

test("Anthropic SDK stream -> Anthropic deployment, with tools: events passed through, finalMessage has tool_use", async () => {
  const t = await claudeTable();
  t.script("claude", [
    A.ok("I'll check the current weather in Paris for you.", {
      model: "claude-up-1-20250929",
      toolUse: { id: "toolu_01NRLabsLyVHZPKxbKvkfSMn", name: "get_weather", input: { location: "Paris" } },
      usage: { input_tokens: 377, output_tokens: 65 },
    }),
  ]);
  const request = { model: "claude", max_tokens: 1024, tools: [WEATHER_TOOL], tool_choice: { type: "auto" }, messages: [{ role: "user", content: "Weather in Paris?" }] };
  const stream = client.messages.stream(request);
  let text = "";
  stream.on("text", (d) => (text += d));
  const final = await stream.finalMessage();
  assert.equal(text, "I'll check the current weather in Paris for you.");
  assert.equal(final.stop_reason, "tool_use");
  assert.equal(final.model, "claude-up-1-20250929");
  assert.equal(final.content.length, 2);
  assert.equal(final.content[0].type, "text");
  assert.equal(final.content[0].text, "I'll check the current weather in Paris for you.");
  assert.equal(final.content[1].type, "tool_use");
  assert.equal(final.content[1].id, "toolu_01NRLabsLyVHZPKxbKvkfSMn");
  assert.equal(final.content[1].name, "get_weather");
  assert.deepEqual(final.content[1].input, { location: "Paris" });
  assert.equal(final.usage.input_tokens, 377);
  assert.equal(final.usage.output_tokens, 65);
  const [up] = t.requests("claude");
  assert.deepEqual(up.body, { ...request, model: "claude-up-1", stream: true });
  assert.deepEqual(t.allHits(), { claude: 1, gpt: 0 });
});

// A thinking block must go back to Anthropic with its signature on the next turn (tool use with
// extended thinking), so the client needs the upstream's signature unchanged.
const THINKING_REQUEST = { model: "claude", max_tokens: 2048, thinking: { type: "enabled", budget_tokens: 1024 }, messages: USER };

test("thinking block (with signature) from an Anthropic deployment reaches the Anthropic SDK (non-streaming)", async () => {
  const t = await claudeTable();
  t.script("claude", [A.ok("Forty-two.", { thinking: "The user wants the answer." })]);
  const msg = await client.messages.create(THINKING_REQUEST);
  assert.deepEqual(msg.content.map((b) => b.type), ["thinking", "text"]);
  assert.equal(msg.content[0].thinking, "The user wants the answer.");
  assert.equal(msg.content[0].signature, ANTHROPIC_SIGNATURE, "the upstream's signature is kept");
  assert.equal(msg.content[1].text, "Forty-two.");
});

test("thinking block (with signature) from an Anthropic deployment reaches the Anthropic SDK (streaming, split events)", async () => {
  const t = await claudeTable();
  t.script("claude", [A.ok("Forty-two.", { thinking: "The user wants the answer.", splitBytes: 5 })]);
  const final = await client.messages.stream(THINKING_REQUEST).finalMessage();
  assert.deepEqual(final.content.map((b) => b.type), ["thinking", "text"]);
  assert.equal(final.content[0].thinking, "The user wants the answer.");
  assert.equal(final.content[0].signature, ANTHROPIC_SIGNATURE, "signature_delta kept");
  assert.equal(final.content[1].text, "Forty-two.");
});

test("Anthropic deployment: usage with prompt caching and stop_sequence reach the client as the upstream sent them", async () => {
  const t = await claudeTable();
  const step = A.ok("Counting: one two", {
    stopReason: "stop_sequence",
    stopSequence: "three",
    usage: { input_tokens: 20, output_tokens: 7, cache_read_input_tokens: 100, cache_creation_input_tokens: 5 },
  });
  t.script("claude", [step, step]);
  const request = { model: "claude", max_tokens: 50, stop_sequences: ["three"], messages: USER };
  const msg = await client.messages.create(request);
  assert.equal(msg.stop_reason, "stop_sequence");
  assert.equal(msg.stop_sequence, "three");
  assert.equal(msg.usage.input_tokens, 20);
  assert.equal(msg.usage.cache_read_input_tokens, 100);
  assert.equal(msg.usage.cache_creation_input_tokens, 5);
  assert.equal(msg.usage.output_tokens, 7);
  const final = await client.messages.stream(request).finalMessage();
  assert.equal(final.stop_reason, "stop_sequence");
  assert.equal(final.stop_sequence, "three");
  assert.equal(final.usage.input_tokens, 20);
  assert.equal(final.usage.cache_read_input_tokens, 100);
  assert.equal(final.usage.cache_creation_input_tokens, 5);
  assert.equal(final.usage.output_tokens, 7);
});

test("raw stream from an Anthropic deployment: canonical event sequence", async () => {
  const t = await claudeTable();
  t.script("claude", [A.ok("Hello there!", { toolUse: { id: "toolu_x", name: "get_weather", input: { location: "Oslo" } } })]);
  const r = await messagesStream({ model: "claude", max_tokens: 100, messages: USER, tools: [WEATHER_TOOL] });
  const { delta } = assertCompleteStream(r);
  assert.equal(streamedText(r.named), "Hello there!");
  assert.equal(delta.delta.stop_reason, "tool_use");
  const json = r.named.filter((e) => e.json?.delta?.type === "input_json_delta").map((e) => e.json.delta.partial_json).join("");
  assert.deepEqual(JSON.parse(json), { location: "Oslo" });
  assert.equal(r.res.headers.get("x-router-deployment"), "claude");
});

// ---------------------------------------------------------------- (b) OpenAI-compatible deployment

const toolCallCompletion = {
  id: "chatcmpl-tools1",
  object: "chat.completion",
  created: 1758000000,
  model: "gpt-4o-mini-2024-07-18",
  choices: [
    {
      index: 0,
      message: {
        role: "assistant",
        content: "Checking.",
        tool_calls: [{ id: "call_abc123", type: "function", function: { name: "get_weather", arguments: '{"location":"Paris"}' } }],
        refusal: null,
        annotations: [],
      },
      logprobs: null,
      finish_reason: "tool_calls",
    },
  ],
  usage: { prompt_tokens: 30, completion_tokens: 12, total_tokens: 42 },
  service_tier: "default",
  system_fingerprint: "fp_fake",
};

test("Anthropic SDK -> OpenAI-compatible deployment: request and tool_calls translated", async () => {
  const t = await gptTable();
  t.script("gpt", [{ status: 200, body: toolCallCompletion }]);
  const request = {
    model: "gpt",
    max_tokens: 200,
    temperature: 0.2,
    system: "You are terse.",
    thinking: { type: "enabled", budget_tokens: 1024 },
    tools: [WEATHER_TOOL],
    messages: [{ role: "user", content: "Weather in Paris?" }],
  };
  const { data: msg, response } = await client.messages.create(request).withResponse();
  assert.equal(msg.type, "message");
  assert.equal(msg.role, "assistant");
  assert.equal(msg.model, "gpt-4o-mini-2024-07-18");
  assert.equal(msg.stop_reason, "tool_use", "finish_reason tool_calls -> stop_reason tool_use");
  assert.deepEqual(msg.content.map((b) => b.type), ["text", "tool_use"]);
  assert.equal(msg.content[0].text, "Checking.");
  assert.equal(msg.content[1].name, "get_weather");
  assert.equal(typeof msg.content[1].id, "string");
  assert.ok(msg.content[1].id.length > 0);
  assert.deepEqual(msg.content[1].input, { location: "Paris" }, "arguments string -> input object");
  assert.equal(msg.usage.input_tokens, 30);
  assert.equal(msg.usage.output_tokens, 12);
  assert.equal(response.headers.get("x-router-deployment"), "gpt");
  assert.deepEqual(t.allHits(), { gpt: 1, gpt2: 0 });

  const [up] = t.requests("gpt");
  assert.equal(up.url, `/s/${t.scenario("gpt")}/v1/chat/completions`);
  assert.equal(up.headers.authorization, `Bearer ${FAKE_SECRET}`);
  assert.equal(up.body.model, "gpt-up-1");
  assert.equal(up.body.thinking, undefined, "thinking is not sent to an OpenAI-compatible upstream");
  for (const k of ["system", "stop_sequences", "top_k", "anthropic_version"]) assert.equal(up.body[k], undefined, `no Anthropic field ${k}`);
  assert.equal(up.body.messages[0].role, "system");
  assert.equal(typeof up.body.messages[0].content === "string" ? up.body.messages[0].content : up.body.messages[0].content.map((p) => p.text).join(""), "You are terse.");
  assert.equal(up.body.messages[1].role, "user");
  assert.equal(up.body.max_tokens ?? up.body.max_completion_tokens, 200);
  assert.equal(up.body.temperature, 0.2);
  assert.deepEqual(up.body.tools, [
    { type: "function", function: { name: "get_weather", description: WEATHER_TOOL.description, parameters: WEATHER_TOOL.input_schema } },
  ]);
  assert.notEqual(up.body.stream, true);
});

test("tool_choice and stop_sequences translated for an OpenAI-compatible upstream", async () => {
  const t = await gptTable();
  t.script("gpt", [steps.ok("fine"), steps.ok("fine")]);
  await client.messages.create({
    model: "gpt",
    max_tokens: 20,
    stop_sequences: ["END"],
    tools: [WEATHER_TOOL],
    tool_choice: { type: "tool", name: "get_weather" },
    messages: USER,
  });
  await client.messages.create({ model: "gpt", max_tokens: 20, tools: [WEATHER_TOOL], tool_choice: { type: "any" }, messages: USER });
  const [a, b] = t.requests("gpt").map((r) => r.body);
  assert.deepEqual(a.tool_choice, { type: "function", function: { name: "get_weather" } });
  assert.deepEqual([a.stop].flat(), ["END"]);
  assert.equal(b.tool_choice, "required");
});

test("tool_use / tool_result history -> assistant tool_calls + tool messages upstream; images -> data URLs", async () => {
  const t = await gptTable();
  t.script("gpt", [steps.ok("It is 18C in Paris.")]);
  const msg = await client.messages.create({
    model: "gpt",
    max_tokens: 100,
    tools: [WEATHER_TOOL],
    messages: [
      {
        role: "user",
        content: [
          { type: "image", source: { type: "base64", media_type: "image/png", data: PNG_B64 } },
          { type: "text", text: "Weather where this photo was taken (Paris)?" },
        ],
      },
      {
        role: "assistant",
        content: [
          { type: "text", text: "Let me check." },
          { type: "tool_use", id: "toolu_01A", name: "get_weather", input: { location: "Paris" } },
        ],
      },
      { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_01A", content: "18C and sunny" }] },
    ],
  });
  assert.deepEqual(msg.content.map((b) => [b.type, b.text]), [["text", "It is 18C in Paris."]]);
  assert.equal(msg.stop_reason, "end_turn");
  const up = t.requests("gpt")[0].body;
  const roles = up.messages.map((m) => m.role);
  assert.deepEqual(roles, ["user", "assistant", "tool"], JSON.stringify(up.messages));
  const img = up.messages[0].content.find((p) => p.type === "image_url");
  assert.equal(img?.image_url?.url, `data:image/png;base64,${PNG_B64}`);
  assert.equal(up.messages[0].content.find((p) => p.type === "text")?.text, "Weather where this photo was taken (Paris)?");
  const asst = up.messages[1];
  assert.equal(typeof asst.content === "string" ? asst.content : asst.content?.map((p) => p.text).join(""), "Let me check.");
  assert.equal(asst.tool_calls?.length, 1);
  assert.equal(asst.tool_calls[0].id, "toolu_01A");
  assert.equal(asst.tool_calls[0].type, "function");
  assert.equal(asst.tool_calls[0].function.name, "get_weather");
  assert.deepEqual(JSON.parse(asst.tool_calls[0].function.arguments), { location: "Paris" });
  assert.equal(up.messages[2].tool_call_id, "toolu_01A");
  const toolText = typeof up.messages[2].content === "string" ? up.messages[2].content : up.messages[2].content.map((p) => p.text).join("");
  assert.equal(toolText, "18C and sunny");
});

test("Anthropic SDK stream -> OpenAI-compatible deployment: text stream translated to Messages events", async () => {
  const t = await gptTable();
  t.script("gpt", [steps.ok("Streaming through translation works.", { model: "gpt-up-1-2025" })]);
  const stream = client.messages.stream({ model: "gpt", max_tokens: 100, messages: USER });
  let text = "";
  stream.on("text", (d) => (text += d));
  const final = await stream.finalMessage();
  assert.equal(text, "Streaming through translation works.");
  assert.deepEqual(final.content.map((b) => [b.type, b.text]), [["text", "Streaming through translation works."]]);
  assert.equal(final.stop_reason, "end_turn");
  assert.equal(final.model, "gpt-up-1-2025");
  assert.equal(final.usage.output_tokens, 4, "usage from the upstream's usage chunk");
  const [up] = t.requests("gpt");
  assert.equal(up.body.stream, true);
  assert.equal(up.body.stream_options?.include_usage, true);

  // The same at the event level.
  t.script("gpt", [steps.ok("Raw events too.")]);
  const r = await messagesStream({ model: "gpt", max_tokens: 100, messages: USER });
  const { delta } = assertCompleteStream(r);
  assert.equal(streamedText(r.named), "Raw events too.");
  assert.equal(delta.delta.stop_reason, "end_turn");
  assert.equal(typeof delta.usage?.output_tokens, "number");
});

test("Anthropic SDK stream -> OpenAI-compatible tool-call stream: input_json_delta, tool_use in finalMessage", async () => {
  const t = await gptTable();
  const base = { id: "chatcmpl-ts", object: "chat.completion.chunk", created: 1727346166, model: "gpt-4o-2024-08-06", system_fingerprint: "fp_fake" };
  const chunk = (choices, extra = {}) => `data: ${JSON.stringify({ ...base, choices, ...extra })}\n\n`;
  const sse =
    chunk([{ index: 0, delta: { role: "assistant", content: null, tool_calls: [{ index: 0, id: "call_7sX", type: "function", function: { name: "get_weather", arguments: "" } }] }, logprobs: null, finish_reason: null }]) +
    chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{"loc' } }] }, logprobs: null, finish_reason: null }]) +
    chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: 'ation":"' } }] }, logprobs: null, finish_reason: null }]) +
    chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: 'NYC"}' } }] }, logprobs: null, finish_reason: null }]) +
    chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: "tool_calls" }]) +
    chunk([], { usage: { prompt_tokens: 44, completion_tokens: 16, total_tokens: 60 } }) +
    "data: [DONE]\n\n";
  t.script("gpt", [{ status: 200, headers: { "content-type": "text/event-stream; charset=utf-8" }, body: sse }]);
  const stream = client.messages.stream({ model: "gpt", max_tokens: 100, tools: [WEATHER_TOOL], messages: [{ role: "user", content: "NYC weather?" }] });
  const final = await stream.finalMessage();
  assert.equal(final.stop_reason, "tool_use");
  const tu = final.content.find((b) => b.type === "tool_use");
  assert.ok(tu, JSON.stringify(final.content));
  assert.equal(tu.name, "get_weather");
  assert.ok(tu.id);
  assert.deepEqual(tu.input, { location: "NYC" });
  assert.equal(final.usage.output_tokens, 16);
  assert.deepEqual(t.allHits(), { gpt: 1, gpt2: 0 });
});

// ---------------------------------------------------------------- Gemini deployment

test("Anthropic SDK -> Gemini deployment (non-streaming and streaming)", async () => {
  const t = await mixedTable(w, { deployments: { gem: { fake: fakeG, model: "gemini-up-flash" } }, routes: { gem: { chain: ["gem"] } } });
  t.script("gem", [
    G.ok("Gemini says hi.", { modelVersion: "gemini-2.0-flash", usage: { promptTokenCount: 7, candidatesTokenCount: 4 } }),
    G.ok("Gemini streams hi.", { modelVersion: "gemini-2.0-flash", usage: { promptTokenCount: 7, candidatesTokenCount: 4 } }),
  ]);
  const msg = await client.messages.create({ model: "gem", max_tokens: 64, system: "Be nice.", messages: USER });
  assert.deepEqual(msg.content.map((b) => [b.type, b.text]), [["text", "Gemini says hi."]]);
  assert.equal(msg.stop_reason, "end_turn");
  assert.equal(msg.model, "gemini-2.0-flash");
  assert.equal(msg.usage.input_tokens, 7);
  assert.equal(msg.usage.output_tokens, 4);
  const stream = client.messages.stream({ model: "gem", max_tokens: 64, messages: USER });
  const final = await stream.finalMessage();
  assert.deepEqual(final.content.map((b) => [b.type, b.text]), [["text", "Gemini streams hi."]]);
  assert.equal(final.stop_reason, "end_turn");
  const [a, b] = t.requests("gem");
  assert.match(a.path, /\/models\/gemini-up-flash:generateContent$/);
  assert.match(b.path, /\/models\/gemini-up-flash:streamGenerateContent$/);
  assert.equal(b.query.alt, "sse");
  assert.equal(a.headers["x-goog-api-key"], FAKE_SECRET);
  assert.deepEqual(a.body.contents, [{ role: "user", parts: [{ text: "Say hello." }] }]);
  assert.equal(a.body.thinking, undefined);
});

test("Anthropic SDK -> Gemini deployment with tools: functionCall -> tool_use (non-streaming and streaming)", async () => {
  const t = await mixedTable(w, { deployments: { gem: { fake: fakeG, model: "gemini-up-flash" } }, routes: { gem: { chain: ["gem"] } } });
  const step = G.ok("", { functionCalls: [{ name: "get_weather", args: { location: "Lima" } }] });
  t.script("gem", [step, step]);
  const request = { model: "gem", max_tokens: 64, tools: [WEATHER_TOOL], messages: [{ role: "user", content: "Lima weather?" }] };
  const msg = await client.messages.create(request);
  assert.equal(msg.stop_reason, "tool_use");
  const tu = msg.content.find((b) => b.type === "tool_use");
  assert.ok(tu?.id, JSON.stringify(msg.content));
  assert.equal(tu.name, "get_weather");
  assert.deepEqual(tu.input, { location: "Lima" });
  const final = await client.messages.stream(request).finalMessage();
  assert.equal(final.stop_reason, "tool_use");
  const tu2 = final.content.find((b) => b.type === "tool_use");
  assert.equal(tu2?.name, "get_weather");
  assert.deepEqual(tu2.input, { location: "Lima" });
  const decls = (t.requests("gem")[0].body.tools ?? []).flatMap((x) => x.functionDeclarations ?? x.function_declarations ?? []);
  assert.deepEqual(decls.map((d) => d.name), ["get_weather"]);
});

// ---------------------------------------------------------------- (c) built-in mock

test("Anthropic SDK -> built-in mock (default table, route mock-small): non-streaming, streaming, with tools", async () => {
  await w.putTable(defaultTable);
  const { data: msg, response } = await client.messages.create({ model: "mock-small", max_tokens: 100, messages: USER }).withResponse();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("x-router-deployment"), "mock-small");
  assert.equal(msg.type, "message");
  assert.equal(msg.role, "assistant");
  assert.equal(msg.model, defaultTable.deployments["mock-small"].model);
  assert.equal(msg.content.length, 1);
  assert.equal(msg.content[0].type, "text");
  assert.ok(msg.content[0].text.length > 0);
  assert.equal(msg.stop_reason, "end_turn");
  assert.ok(msg.usage.input_tokens > 0 && msg.usage.output_tokens > 0, JSON.stringify(msg.usage));

  const stream = client.messages.stream({ model: "mock-small", max_tokens: 100, messages: USER });
  let deltas = 0;
  stream.on("text", () => deltas++);
  const final = await stream.finalMessage();
  assert.equal(final.content[0].text, msg.content[0].text, "deterministic: same answer streamed");
  assert.ok(deltas >= 3, `several text deltas: ${deltas}`);
  assert.equal(final.stop_reason, "end_turn");

  const withTools = await client.messages.create({ model: "mock-small", max_tokens: 100, tools: [WEATHER_TOOL], messages: USER });
  assert.equal(withTools.type, "message");
  assert.ok(withTools.content.length >= 1);

  const r = await messagesStream({ model: "mock-small", max_tokens: 100, messages: USER });
  assertCompleteStream(r);
});

test("the provider secret never appears in any response header or body", async () => {
  const seen = await w.allSeen();
  assert.ok(seen.length >= 10, `responses recorded: ${seen.length}`);
  for (const e of seen) {
    assert.ok(!JSON.stringify(e.headers).includes(FAKE_SECRET), `secret in headers of ${e.url}`);
    assert.ok(!e.body.includes(FAKE_SECRET), `secret in body of ${e.url}`);
  }
});
