// `POST /v1/messages`: Anthropic Messages API ingress, with the official `@anthropic-ai/sdk` as the
// client, routed by `model` through the same tables to any provider: Anthropic (original body
// passed through except `model`), OpenAI-compatible and Gemini (translated both ways, tools
// included), and the built-in mock. Answers and errors in Anthropic's shapes; stream events
// message_start … message_stop; a failure after the commit is an `event: error` with no
// message_stop.

import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import { startFake, steps } from "./helpers/fake-openai.mjs";
import { startFakeAnthropic, anthropicSteps as A, ANTHROPIC_SIGNATURE } from "./helpers/fake-anthropic.mjs";
import { startFakeGemini, geminiSteps as G } from "./helpers/fake-gemini.mjs";
import { startWorker, mixedTable, reasons, readStream, REPO_ROOT, FAKE_SECRET } from "./helpers/worker.mjs";

let fakeO, fakeA, fakeG, w, client;
const defaultTable = JSON.parse(readFileSync(path.join(REPO_ROOT, "config", "default-routing-table.json"), "utf8"));

before(async () => {
  fakeO = await startFake();
  fakeA = await startFakeAnthropic();
  fakeG = await startFakeGemini();
  w = await startWorker();
  client = new Anthropic({ baseURL: w.url.replace(/\/$/, ""), apiKey: "unused", maxRetries: 0, timeout: 10_000, fetch: w.recordingFetch });
});
after(async () => {
  await w?.dispose();
  await fakeO?.close();
  await fakeA?.close();
  await fakeG?.close();
});
beforeEach(() => {
  fakeO.reset();
  fakeA.reset();
  fakeG.reset();
});

const PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mP4//8/AAX+Av4zEpUUAAAAAElFTkSuQmCC";
const WEATHER_TOOL = {
  name: "get_weather",
  description: "Get the current weather in a given location",
  input_schema: {
    type: "object",
    properties: { location: { type: "string", description: "The city and state, e.g. San Francisco, CA" } },
    required: ["location"],
  },
};
const USER = [{ role: "user", content: "Say hello." }];

// ---------------------------------------------------------------- helpers

/** POST /v1/messages (raw), read the whole body. */
async function messagesOnce(body, headers = {}) {
  const res = await w.fetch("/v1/messages", {
    method: "POST",
    headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "unused", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {}
  return { res, status: res.status, text, json };
}

/** POST a streaming /v1/messages request and read the stream into named events. */
async function messagesStream(body, { timeoutMs = 10_000 } = {}) {
  const res = await w.fetch("/v1/messages", {
    method: "POST",
    headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "unused" },
    body: JSON.stringify({ stream: true, ...body }),
  });
  const r = await readStream(res, { timeoutMs });
  return { res, status: res.status, ...r, named: parseNamedSse(r.text) };
}

/** SSE with `event:` names: [{event, data, json}]. */
function parseNamedSse(text) {
  const out = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    let event = null;
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (event === null && data.length === 0) continue;
    let json;
    try {
      json = JSON.parse(data.join("\n"));
    } catch {}
    out.push({ event, data: data.join("\n"), json });
  }
  return out;
}

/** Text of the text_delta events. */
const streamedText = (named) =>
  named.filter((e) => e.json?.type === "content_block_delta" && e.json.delta?.type === "text_delta").map((e) => e.json.delta.text).join("");

/** A well-formed, complete Messages stream: event names match data types, canonical order. */
function assertCompleteStream(r) {
  assert.equal(r.status, 200, r.text);
  assert.match(r.res.headers.get("content-type") ?? "", /text\/event-stream/);
  assert.equal(r.error, null);
  assert.equal(r.timedOut, false);
  const ev = r.named.filter((e) => e.event !== "ping");
  for (const e of ev) assert.equal(e.json?.type, e.event, `event name = data type: ${e.event} / ${e.data}`);
  assert.equal(ev[0]?.event, "message_start");
  assert.equal(ev.at(-1)?.event, "message_stop");
  assert.equal(ev.at(-2)?.event, "message_delta");
  assert.equal(ev.filter((e) => e.event === "message_start").length, 1, "one message_start");
  assert.equal(ev.filter((e) => e.event === "message_stop").length, 1, "one message_stop");
  assert.ok(!ev.some((e) => e.event === "error"), "no error event");
  // Blocks: start, deltas of that index, stop; indexes 0, 1, …
  let open = null;
  let next = 0;
  for (const e of ev.slice(1, -2)) {
    if (e.event === "content_block_start") {
      assert.equal(open, null, "blocks do not overlap");
      assert.equal(e.json.index, next++);
      open = e.json.index;
    } else if (e.event === "content_block_delta") {
      assert.equal(e.json.index, open);
    } else if (e.event === "content_block_stop") {
      assert.equal(e.json.index, open);
      open = null;
    } else assert.fail(`unexpected event inside the message: ${e.event}`);
  }
  assert.equal(open, null, "every block closed");
  const start = ev[0].json.message;
  assert.equal(start.type, "message");
  assert.equal(start.role, "assistant");
  assert.deepEqual(start.content, []);
  return { start, delta: ev.at(-2).json };
}

/** An Anthropic error body {"type":"error","error":{"type","message"}}. */
function assertAnthropicError(r, status, type) {
  assert.equal(r.status, status, r.text);
  assert.equal(r.json?.type, "error", `Anthropic error envelope: ${r.text}`);
  assert.equal(r.json.error?.type, type);
  assert.equal(typeof r.json.error.message, "string");
  assert.ok(r.json.error.message.length > 0);
  return r.json.error;
}

// ---------------------------------------------------------------- (a) Anthropic deployment

function claudeTable() {
  return mixedTable(w, {
    deployments: {
      // attempt_ms: room for the split-write streams below on a loaded machine.
      claude: { fake: fakeA, model: "claude-up-1", provider: { anthropic_version: "2023-06-01" }, timeouts: { attempt_ms: 20000 } },
      gpt: { fake: fakeO, model: "gpt-up-1" },
    },
    routes: { claude: { chain: ["claude", "gpt"] } },
  });
}

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

function gptTable(route = {}) {
  return mixedTable(w, {
    deployments: { gpt: { fake: fakeO, model: "gpt-up-1" }, gpt2: { fake: fakeO, model: "gpt-up-2" } },
    routes: { gpt: { chain: ["gpt", "gpt2"], ...route } },
  });
}

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

// ---------------------------------------------------------------- secrets

// ---------------------------------------------------------------- count_tokens (Claude Code)

test("count_tokens: an Anthropic deployment counts (its own endpoint, its key); the SDK reads it", async () => {
  const t = await claudeTable();
  const body = {
    model: "claude",
    system: [{ type: "text", text: "You are terse.", cache_control: { type: "ephemeral" } }],
    messages: USER,
    tools: [WEATHER_TOOL],
  };
  const counted = await client.messages.countTokens(body);
  const [up] = fakeA.counted(t.scenario("claude"));
  assert.ok(up, "the Anthropic upstream was asked");
  assert.equal(up.url.endsWith("/v1/messages/count_tokens"), true);
  assert.equal(up.headers["x-api-key"], FAKE_SECRET, "with the deployment's key");
  assert.equal(up.body.model, "claude-up-1", "the deployment's model");
  assert.deepEqual(up.body.tools, [WEATHER_TOOL]);
  assert.equal(up.body.max_tokens, undefined, "count_tokens takes no max_tokens");
  assert.equal(up.body.stream, undefined);
  const expected = 3 + Math.ceil((JSON.stringify(up.body.messages) + JSON.stringify(up.body.system)).length / 4);
  assert.equal(counted.input_tokens, expected, "the upstream's own count");
  assert.deepEqual(t.allHits(), { claude: 0, gpt: 0 }, "counting sends no message");
});

test("count_tokens: a route without an Anthropic deployment gets an estimate, marked as one", async () => {
  await gptTable();
  const res = await w.fetch("/v1/messages/count_tokens", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt", messages: [{ role: "user", content: "x".repeat(400) }] }),
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("x-router-estimated"), "true");
  assert.deepEqual(await res.json(), { input_tokens: 100 }, "≈ 4 characters per token, never 0");
});

test("count_tokens: unknown model and bad bodies are Anthropic-shaped errors", async () => {
  const unknown = await w.fetch("/v1/messages/count_tokens", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "nope", messages: USER }),
  });
  assert.equal(unknown.status, 404);
  const e = await unknown.json();
  assert.equal(e.type, "error");
  assert.equal(e.error.type, "not_found_error");
  const bad = await w.fetch("/v1/messages/count_tokens", { method: "POST", headers: { "content-type": "application/json" }, body: "{" });
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).type, "error");
  const get = await w.fetch("/v1/messages/count_tokens");
  assert.equal(get.status, 405);
});

test("the provider secret never appears in any response header or body", async () => {
  const seen = await w.allSeen();
  assert.ok(seen.length >= 10, `responses recorded: ${seen.length}`);
  for (const e of seen) {
    assert.ok(!JSON.stringify(e.headers).includes(FAKE_SECRET), `secret in headers of ${e.url}`);
    assert.ok(!e.body.includes(FAKE_SECRET), `secret in body of ${e.url}`);
  }
});
