// Shared by anthropic.test.mjs and anthropic-failures.test.mjs (OpenAI clients served by
// Anthropic deployments): the fakes, the worker and the `openai` client, the routes, and the
// check of the Messages wire format.

import assert from "node:assert/strict";
import { startFake } from "./fake-openai.mjs";
import { startFakeAnthropic } from "./fake-anthropic.mjs";
import { mixedTable, FAKE_SECRET } from "./worker.mjs";
import { useGateway } from "./harness.mjs";
import { openaiClient } from "./sdk.mjs";

export let fakeO, fakeA, w, client;

export function useAnthropicGateway() {
  useGateway({ fakes: { fakeO: startFake, fakeA: startFakeAnthropic } }, (g) => {
    ({ fakeO, fakeA, w } = g);
    client = openaiClient(w);
  });
}

// The 1x1 white PNG of the fixtures.
export const PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mP4//8/AAX+Av4zEpUUAAAAAElFTkSuQmCC";
export const WEATHER_TOOL = {
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
export function textOf(content) {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return undefined;
  return content.filter((b) => b?.type === "text").map((b) => b.text).join("");
}

/** A route "claude" = [claude (Anthropic), backup (OpenAI-compatible)]; `route` adds route options. */
export function claudeTable({ provider = { anthropic_version: "2023-06-01", max_tokens_default: 777 }, claude = {}, backup = {}, route = {} } = {}) {
  return mixedTable(w, {
    deployments: {
      claude: { fake: fakeA, model: "claude-up-1", provider, ...claude },
      backup: { fake: fakeO, model: "gpt-up-backup", ...backup },
    },
    routes: { claude: { chain: ["claude", "backup"], ...route } },
  });
}

/** The request reached the fake Anthropic server as a Messages API call. */
export function assertMessagesWire(t, up, { dep = "claude", version = "2023-06-01", model = "claude-up-1", stream = false } = {}) {
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
