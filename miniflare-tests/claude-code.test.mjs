// A Claude Code–like session through `@anthropic-ai/sdk` against a gateway that requires keys
// (#16 part 2): the gateway key in `x-api-key` (as Claude Code sends it), `count_tokens`,
// then a streamed turn with cache_control system blocks, tools, extended thinking and betas
// that ends in a tool call, then the tool result with the signed thinking block sent back.
// The Anthropic upstream sees its own key, the client's betas and version, and the original
// bodies; the key's usage is booked.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { startFakeAnthropic, anthropicSteps as A, ANTHROPIC_SIGNATURE } from "./helpers/fake-anthropic.mjs";
import { mixedTable, FAKE_SECRET } from "./helpers/worker.mjs";
import { useGateway } from "./helpers/harness.mjs";
import { anthropicClient } from "./helpers/sdk.mjs";

const ADMIN_TOKEN = "admin-secret-claude-code";
let fakeA, w;
useGateway({ fakes: { fakeA: startFakeAnthropic }, worker: { bindings: { AUTH_MODE: "keys", ADMIN_TOKEN } } }, (g) => ({ fakeA, w } = g));

async function admin(method, p, body) {
  const res = await w.fetch(`/admin/api/${p}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body ? { "content-type": "application/json" } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: await res.json() };
}

const SYSTEM = [
  { type: "text", text: "You are Claude Code, Anthropic's official CLI for Claude.", cache_control: { type: "ephemeral" } },
  { type: "text", text: "Repository conventions: small files, one concern each.", cache_control: { type: "ephemeral" } },
];
const READ_TOOL = {
  name: "Read",
  description: "Reads a file from the local filesystem.",
  input_schema: { type: "object", properties: { file_path: { type: "string" } }, required: ["file_path"] },
};
const BETAS = ["interleaved-thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14"];

test("a Claude Code-like session: x-api-key gateway key, count_tokens, a streamed tool call with thinking, the tool result", async () => {
  const t = await mixedTable(w, {
    deployments: { sonnet: { fake: fakeA, model: "claude-sonnet-up", provider: { anthropic_version: "2023-06-01" } } },
    routes: { "claude-sonnet": { chain: ["sonnet"] } },
  });
  const created = await admin("POST", "keys", { name: "claude-code", routes: ["claude-sonnet"] });
  assert.equal(created.status, 201);
  const client = anthropicClient(w, { apiKey: created.json.key });

  // Without the key: refused, in Anthropic's shape.
  await assert.rejects(anthropicClient(w, { apiKey: "sk-not-a-key" }).messages.countTokens({ model: "claude-sonnet", messages: [{ role: "user", content: "hi" }] }), (e) => e.status === 401);

  const first = [{ role: "user", content: [{ type: "text", text: "Read src/lib.rs and summarise it.", cache_control: { type: "ephemeral" } }] }];
  const counted = await client.messages.countTokens({ model: "claude-sonnet", system: SYSTEM, tools: [READ_TOOL], messages: first });
  assert.ok(counted.input_tokens > 0);
  const [countUp] = fakeA.counted(t.scenario("sonnet"));
  assert.equal(countUp.headers["x-api-key"], FAKE_SECRET, "the provider's key, never the gateway key");
  assert.deepEqual(countUp.body.system, SYSTEM);

  // Turn 1, streamed: thinking, then a tool call.
  t.script("sonnet", [
    A.ok("I'll read the file.", {
      thinking: "The user wants a summary; read the file first.",
      toolUse: { id: "toolu_01", name: "Read", input: { file_path: "src/lib.rs" } },
      usage: { input_tokens: 900, output_tokens: 60, cache_read_input_tokens: 800 },
    }),
    A.ok("It declares the gateway's modules.", { usage: { input_tokens: 1000, output_tokens: 12, cache_read_input_tokens: 900 } }),
  ]);
  const request = {
    model: "claude-sonnet",
    max_tokens: 4096,
    system: SYSTEM,
    tools: [READ_TOOL],
    thinking: { type: "enabled", budget_tokens: 2048 },
    messages: first,
    betas: BETAS,
  };
  const stream = client.beta.messages.stream(request);
  const turn1 = await stream.finalMessage();
  assert.equal(turn1.stop_reason, "tool_use");
  assert.deepEqual(turn1.content.map((b) => b.type), ["thinking", "text", "tool_use"]);
  assert.equal(turn1.content[0].signature, ANTHROPIC_SIGNATURE, "the signature arrives unchanged");
  assert.deepEqual(turn1.content[2].input, { file_path: "src/lib.rs" });
  assert.equal(turn1.usage.cache_read_input_tokens, 800);

  // Turn 2: the tool result, with the thinking block sent back as it came.
  const second = [
    ...first,
    { role: "assistant", content: turn1.content },
    { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_01", content: "pub mod api;\npub mod config;" }] },
  ];
  const turn2 = await client.beta.messages.create({ ...request, messages: second });
  assert.equal(turn2.content.at(-1).text, "It declares the gateway's modules.");

  const ups = t.requests("sonnet");
  assert.equal(ups.length, 2);
  for (const up of ups) {
    assert.equal(up.headers["x-api-key"], FAKE_SECRET);
    assert.equal(up.headers["anthropic-beta"], BETAS.join(","));
    assert.equal(up.headers.authorization, undefined);
  }
  const { stream: _s, ...body1 } = ups[0].body;
  const { betas: _b, ...sent } = request;
  assert.deepEqual(body1, { ...sent, model: "claude-sonnet-up" }, "turn 1 passed through, only model replaced");
  assert.deepEqual(ups[1].body.messages[1].content[0], { type: "thinking", thinking: "The user wants a summary; read the file first.", signature: ANTHROPIC_SIGNATURE });

  // The key's usage is booked (both turns), once its settles arrive.
  const id = createHash("sha256").update(created.json.key).digest("hex");
  let usage;
  for (let i = 0; i < 50; i++) {
    usage = (await admin("GET", `keys/${id}`)).json.state?.usage?.total;
    if (usage?.requests >= 2) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(usage.requests, 2);
  // Prompt tokens are every prompt token: Anthropic's input_tokens plus its cache reads.
  assert.equal(usage.input_tokens, 900 + 800 + 1000 + 900);
  assert.equal(usage.output_tokens, 72);
});
