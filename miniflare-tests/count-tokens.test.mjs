// `POST /v1/messages/count_tokens` (Claude Code): counted by an Anthropic deployment (its
// endpoint, key and model; no message sent), estimated and marked for other kinds, and
// Anthropic-shaped errors.

import { test } from "node:test";
import assert from "node:assert/strict";
import { FAKE_SECRET } from "./helpers/worker.mjs";
import { fakeA, w, client, WEATHER_TOOL, USER, claudeTable, gptTable, useMessagesGateway } from "./helpers/messages-suite.mjs";

useMessagesGateway();

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
