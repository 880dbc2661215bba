// OpenAI clients (`/v1/chat/completions`, official `openai` SDK) served by Gemini deployments
// (generativelanguage v1beta): the wire format the gateway sends (`:generateContent`,
// `:streamGenerateContent?alt=sse`, x-goog-api-key, contents/systemInstruction/generationConfig/
// tools) and the translation back (text, CRLF streams that end by closing, finish reasons, usage,
// functionCall <-> tool_calls, functionResponse names, images). Gemini's failures:
// gemini-failures.test.mjs.

import { test } from "node:test";
import assert from "node:assert/strict";
import { geminiSteps as G, SAFETY_RATINGS_NEGLIGIBLE } from "./helpers/fake-gemini.mjs";
import { chatOnce, chatStream, sseContent, reasons, FAKE_SECRET, USER_MSG } from "./helpers/worker.mjs";
import { collectSdkStream } from "./helpers/sdk.mjs";
import {
  w,
  client,
  PNG_B64,
  tool,
  WEATHER_TOOL,
  TIME_TOOL,
  field,
  partsText,
  geminiTable,
  assertGeminiWire,
  useGeminiGateway,
} from "./helpers/gemini-suite.mjs";

useGeminiGateway();

// ---------------------------------------------------------------- text

test("non-streaming via the openai SDK, served by Gemini: OpenAI answer, generateContent wire format", async () => {
  const t = await geminiTable();
  t.script("gem", [G.ok("The capital of Wyoming is Cheyenne.", { modelVersion: "gemini-2.0-flash-001", usage: { promptTokenCount: 7, candidatesTokenCount: 10 } })]);
  const { data, response } = await client.chat.completions
    .create({
      model: "gem",
      messages: [
        { role: "system", content: "You are a geography bot." },
        { role: "user", content: "Capital of Wyoming?" },
      ],
      temperature: 0.3,
      max_tokens: 50,
    })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(data.object, "chat.completion");
  assert.equal(data.choices[0].message.role, "assistant");
  assert.equal(data.choices[0].message.content, "The capital of Wyoming is Cheyenne.");
  assert.equal(data.choices[0].finish_reason, "stop", "STOP -> stop");
  assert.equal(data.model, "gemini-2.0-flash-001", "model = modelVersion");
  assert.equal(data.usage.prompt_tokens, 7);
  assert.equal(data.usage.completion_tokens, 10);
  assert.equal(data.usage.total_tokens, 17);
  assert.equal(response.headers.get("x-router-deployment"), "gem");
  assert.equal(response.headers.get("x-router-provider"), "p-gem");
  assert.equal(response.headers.get("x-router-model"), "gemini-2.0-flash-001");
  assert.equal(response.headers.get("x-router-attempts"), "1");
  const cost = Number(response.headers.get("x-router-cost-usd"));
  assert.ok(Math.abs(cost - (7 * 0.15 + 10 * 0.6) / 1e6) < 1e-9, `x-router-cost-usd ${response.headers.get("x-router-cost-usd")}`);
  assert.deepEqual(t.allHits(), { gem: 1, backup: 0 });

  const [up] = t.requests("gem");
  assertGeminiWire(t, up);
  assert.deepEqual(up.body.contents, [{ role: "user", parts: [{ text: "Capital of Wyoming?" }] }]);
  assert.equal(partsText(field(up.body, "systemInstruction")?.parts), "You are a geography bot.", "system -> systemInstruction");
  const gc = field(up.body, "generationConfig");
  assert.equal(gc?.temperature, 0.3);
  assert.equal(field(gc, "maxOutputTokens"), 50);
});

test("streaming via the openai SDK with include_usage: CRLF alt=sse stream that ends by closing", async () => {
  const t = await geminiTable();
  t.script("gem", [G.ok("The capital of Wyoming is **Cheyenne**.\n", { modelVersion: "gemini-2.0-flash", usage: { promptTokenCount: 7, candidatesTokenCount: 10 } })]);
  const { data: stream, response } = await client.chat.completions
    .create({ model: "gem", messages: USER_MSG, stream: true, stream_options: { include_usage: true } })
    .withResponse();
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /text\/event-stream/);
  const s = await collectSdkStream(stream);
  assert.equal(s.content, "The capital of Wyoming is **Cheyenne**.\n");
  assert.equal(s.finish, "stop");
  assert.deepEqual([...s.models], ["gemini-2.0-flash"]);
  assert.ok(s.usage, "usage chunk");
  assert.equal(s.usage.prompt_tokens, 7);
  assert.equal(s.usage.completion_tokens, 10);
  assert.equal(s.usage.total_tokens, 17);
  assert.deepEqual(t.allHits(), { gem: 1, backup: 0 });
  assertGeminiWire(t, t.requests("gem")[0], { stream: true });
});

test("streaming without include_usage: one [DONE] at the end (Gemini sends none), promptly", async () => {
  const t = await geminiTable();
  t.script("gem", [G.ok("Five little words right here.", { chunkDelayMs: 20 })]);
  const r = await chatStream(w, { model: "gem", messages: USER_MSG });
  assert.equal(r.status, 200);
  assert.equal(r.error, null);
  assert.equal(r.timedOut, false);
  assert.equal(sseContent(r.events), "Five little words right here.");
  assert.equal(r.events.at(-1)?.data, "[DONE]");
  assert.equal(r.events.filter((e) => e.data === "[DONE]").length, 1);
  const jsons = r.events.filter((e) => e.json).map((e) => e.json);
  assert.ok(jsons.every((j) => j.object === "chat.completion.chunk"));
  assert.ok(jsons.every((j) => !j.usage), "no usage when not asked");
  assert.equal(jsons.filter((j) => j.choices?.some((c) => c.finish_reason === "stop")).length, 1, "one finish chunk");
  assert.ok(!r.text.includes("\r"), "the client gets plain LF SSE");
  assert.ok(r.elapsedMs < 1500, `finished in ${r.elapsedMs} ms`);
});

test("finish reasons: MAX_TOKENS -> length, SAFETY -> content_filter (stream and not)", async () => {
  const t = await geminiTable();
  t.script("gem", [
    G.ok("Truncated answer", { finishReason: "MAX_TOKENS" }),
    G.ok("Safety error incoming in 5, 4, 3, 2...", { finishReason: "SAFETY", safetyRatings: SAFETY_RATINGS_NEGLIGIBLE }),
    G.ok("Truncated stream", { finishReason: "MAX_TOKENS" }),
    G.ok("Streamed until filtered", { finishReason: "SAFETY", safetyRatings: SAFETY_RATINGS_NEGLIGIBLE }),
  ]);
  const a = await chatOnce(w, { model: "gem", messages: USER_MSG });
  assert.equal(a.status, 200, a.text);
  assert.equal(a.json.choices[0].message.content, "Truncated answer");
  assert.equal(a.json.choices[0].finish_reason, "length");
  const b = await chatOnce(w, { model: "gem", messages: USER_MSG });
  assert.equal(b.status, 200, b.text);
  assert.equal(b.json.choices[0].message.content, "Safety error incoming in 5, 4, 3, 2...");
  assert.equal(b.json.choices[0].finish_reason, "content_filter");
  const c = await chatStream(w, { model: "gem", messages: USER_MSG });
  assert.equal(sseContent(c.events), "Truncated stream");
  assert.equal(c.events.find((e) => e.json?.choices?.[0]?.finish_reason)?.json.choices[0].finish_reason, "length");
  assert.equal(c.events.at(-1)?.data, "[DONE]");
  const d = await chatStream(w, { model: "gem", messages: USER_MSG });
  assert.equal(sseContent(d.events), "Streamed until filtered");
  assert.equal(d.events.find((e) => e.json?.choices?.[0]?.finish_reason)?.json.choices[0].finish_reason, "content_filter");
  assert.equal(d.events.at(-1)?.data, "[DONE]");
  assert.deepEqual(t.allHits(), { gem: 4, backup: 0 });
});

test("thought summaries (thought: true parts) are not content; stop and json_object mapped", async () => {
  const t = await geminiTable();
  const step = G.ok('{"city":"Cheyenne"}', { thoughts: "**Considering the question** I should answer in JSON.", usage: { promptTokenCount: 7, candidatesTokenCount: 6, thoughtsTokenCount: 30 } });
  t.script("gem", [step, step]);
  const a = await chatOnce(w, { model: "gem", messages: USER_MSG, stop: ["END"], response_format: { type: "json_object" } });
  assert.equal(a.status, 200, a.text);
  assert.equal(a.json.choices[0].message.content, '{"city":"Cheyenne"}', "no thought text in content");
  const gc = field(t.requests("gem")[0].body, "generationConfig");
  assert.deepEqual(field(gc, "stopSequences"), ["END"]);
  assert.equal(field(gc, "responseMimeType"), "application/json");
  const b = await chatStream(w, { model: "gem", messages: USER_MSG });
  assert.equal(sseContent(b.events), '{"city":"Cheyenne"}', "no thought text in streamed content");
  assert.equal(b.events.at(-1)?.data, "[DONE]");
});

test("CRLF stream written in 3-byte pieces (CR and LF split apart) -> the same clean stream", async () => {
  // Hundreds of 1 ms-apart writes: give the whole attempt room on a loaded machine (the
  // gaps stay far below idle_ms, which is what this test is about).
  const t = await geminiTable({ gem: { timeouts: { attempt_ms: 20000 } } });
  t.script("gem", [G.ok("Ünïcödé spans — and ☕ too.", { splitBytes: 3 })]);
  const r = await chatStream(w, { model: "gem", messages: USER_MSG });
  assert.equal(r.status, 200);
  assert.equal(sseContent(r.events), "Ünïcödé spans — and ☕ too.");
  assert.equal(r.events.at(-1)?.data, "[DONE]");
  assert.ok(!r.events.some((e) => e.json?.error));
  assert.deepEqual(t.allHits(), { gem: 1, backup: 0 });
});

// ---------------------------------------------------------------- tools

test("tool call round trip: functionCall -> tool_calls; tool results -> functionResponse with the right names", async () => {
  const t = await geminiTable();
  t.script("gem", [
    G.ok("", {
      functionCalls: [
        { name: "get_weather", args: { location: "Paris" } },
        { name: "get_time", args: { city: "Tokyo" } },
      ],
    }),
    G.ok("Paris is 18C; it is 9pm in Tokyo."),
  ]);
  const first = await client.chat.completions.create({
    model: "gem",
    messages: [{ role: "user", content: "Weather in Paris and time in Tokyo?" }],
    tools: [WEATHER_TOOL, TIME_TOOL],
  });
  const msg = first.choices[0].message;
  assert.equal(first.choices[0].finish_reason, "tool_calls", "a functionCall answer -> tool_calls");
  assert.equal(msg.tool_calls?.length, 2, `tool_calls: ${JSON.stringify(msg)}`);
  const [c1, c2] = msg.tool_calls;
  for (const c of [c1, c2]) {
    assert.equal(c.type, "function");
    assert.equal(typeof c.id, "string");
    assert.ok(c.id.length > 0, "the gateway gives every call an id");
    assert.equal(typeof c.function.arguments, "string");
  }
  assert.notEqual(c1.id, c2.id, "distinct ids");
  assert.equal(c1.function.name, "get_weather");
  assert.deepEqual(JSON.parse(c1.function.arguments), { location: "Paris" });
  assert.equal(c2.function.name, "get_time");
  assert.deepEqual(JSON.parse(c2.function.arguments), { city: "Tokyo" });
  assert.ok(msg.content === null || msg.content === "", `no text content: ${JSON.stringify(msg.content)}`);

  const [up1] = t.requests("gem");
  assertGeminiWire(t, up1);
  const decls = (up1.body.tools ?? []).flatMap((x) => field(x, "functionDeclarations") ?? []);
  assert.deepEqual(decls.map((d) => d.name), ["get_weather", "get_time"]);
  assert.equal(decls[0].description, "Get the current weather in a given location");
  assert.ok(decls[0].parameters?.properties?.location, `parameters kept: ${JSON.stringify(decls[0])}`);
  assert.deepEqual(decls[0].parameters.required, ["location"]);

  // Second turn: the tool messages carry only tool_call_id; Gemini needs the function name.
  const second = await client.chat.completions.create({
    model: "gem",
    messages: [
      { role: "user", content: "Weather in Paris and time in Tokyo?" },
      msg,
      { role: "tool", tool_call_id: c1.id, content: '{"temperature_c":18}' },
      { role: "tool", tool_call_id: c2.id, content: '{"time":"21:00"}' },
    ],
    tools: [WEATHER_TOOL, TIME_TOOL],
  });
  assert.equal(second.choices[0].message.content, "Paris is 18C; it is 9pm in Tokyo.");
  assert.equal(second.choices[0].finish_reason, "stop");
  assert.deepEqual(t.allHits(), { gem: 2, backup: 0 });

  const up2 = t.requests("gem")[1];
  assertGeminiWire(t, up2);
  const contents = up2.body.contents;
  assert.equal(contents[0].role, "user");
  assert.equal(contents[1].role, "model");
  const calls = contents[1].parts.map((p) => field(p, "functionCall")).filter(Boolean);
  assert.deepEqual(calls.map((c) => [c.name, c.args]), [["get_weather", { location: "Paris" }], ["get_time", { city: "Tokyo" }]], "args as objects");
  // Gemini wants as many functionResponse parts as the call turn had functionCall parts, in one turn.
  assert.equal(contents.length, 3, `one turn for both results: ${JSON.stringify(contents)}`);
  assert.match(contents[2].role, /^(user|function)$/);
  const responses = contents[2].parts.map((p) => field(p, "functionResponse")).filter(Boolean);
  assert.equal(responses.length, 2, `functionResponse parts: ${JSON.stringify(contents[2])}`);
  assert.deepEqual(responses.map((r) => r.name), ["get_weather", "get_time"], "names looked up from the tool_call_id");
  for (const r of responses) assert.ok(r.response && typeof r.response === "object" && !Array.isArray(r.response), "response is an object (Struct)");
  assert.ok(JSON.stringify(responses[0].response).includes("18"), JSON.stringify(responses[0]));
  assert.ok(JSON.stringify(responses[1].response).includes("21:00"), JSON.stringify(responses[1]));
});

test("tool call streaming: functionCall chunk -> tool_calls delta with id, name and JSON arguments", async () => {
  const t = await geminiTable();
  t.script("gem", [G.ok("Let me look.", { functionCalls: [{ name: "get_weather", args: { location: "Oslo" } }] })]);
  const stream = await client.chat.completions.create({
    model: "gem",
    messages: [{ role: "user", content: "Oslo weather?" }],
    tools: [WEATHER_TOOL],
    stream: true,
  });
  const s = await collectSdkStream(stream);
  assert.equal(s.content, "Let me look.");
  assert.equal(s.finish, "tool_calls");
  assert.equal(s.tools.length, 1, JSON.stringify(s.tools));
  assert.ok(s.tools[0].id, "id");
  assert.equal(s.tools[0].type, "function");
  assert.equal(s.tools[0].name, "get_weather");
  assert.deepEqual(JSON.parse(s.tools[0].arguments), { location: "Oslo" });
  assertGeminiWire(t, t.requests("gem")[0], { stream: true });
});

test("tool parameters: JSON-Schema keys Gemini rejects ($schema, additionalProperties) are not sent", async () => {
  const t = await geminiTable();
  t.script("gem", [G.ok("ok")]);
  const strictTool = {
    type: "function",
    function: {
      name: "lookup",
      description: "Look a city up",
      strict: true,
      parameters: {
        $schema: "http://json-schema.org/draft-07/schema#",
        type: "object",
        properties: { city: { type: "string", description: "City name" } },
        required: ["city"],
        additionalProperties: false,
      },
    },
  };
  const r = await chatOnce(w, { model: "gem", messages: USER_MSG, tools: [strictTool] });
  assert.equal(r.status, 200, r.text);
  const decl = (t.requests("gem")[0].body.tools ?? []).flatMap((x) => field(x, "functionDeclarations") ?? [])[0];
  assert.equal(decl?.name, "lookup");
  const params = decl.parameters ?? field(decl, "parametersJsonSchema");
  assert.ok(params?.properties?.city, JSON.stringify(decl));
  if (decl.parameters) {
    assert.equal(decl.parameters.$schema, undefined);
    assert.equal(decl.parameters.additionalProperties, undefined);
  }
  assert.equal(decl.strict, undefined);
});

// ---------------------------------------------------------------- images

test("image input: a data: URL becomes an inlineData part", async () => {
  const t = await geminiTable();
  t.script("gem", [G.ok("A white pixel.")]);
  const data = await client.chat.completions.create({
    model: "gem",
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
  const [up] = t.requests("gem");
  assertGeminiWire(t, up);
  const parts = up.body.contents[0].parts;
  assert.equal(parts.length, 2, JSON.stringify(parts));
  assert.equal(parts[0].text, "What is in this image?");
  const inline = field(parts[1], "inlineData");
  assert.ok(inline, `inlineData part: ${JSON.stringify(parts[1])}`);
  assert.equal(field(inline, "mimeType"), "image/png");
  assert.equal(inline.data, PNG_B64);
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
