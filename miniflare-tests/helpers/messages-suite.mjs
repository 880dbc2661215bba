// Shared by messages-ingress.test.mjs, messages-failures.test.mjs and count-tokens.test.mjs
// (`POST /v1/messages` with the `@anthropic-ai/sdk` client): the fakes, the worker and the
// client, raw requests and named-event streams, the checks of a complete Messages stream and
// of Anthropic error bodies, and the two routes most tests use.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { startFake } from "./fake-openai.mjs";
import { startFakeAnthropic } from "./fake-anthropic.mjs";
import { startFakeGemini } from "./fake-gemini.mjs";
import { mixedTable, readStream, REPO_ROOT, answerOf } from "./worker.mjs";
import { useGateway } from "./harness.mjs";
import { anthropicClient } from "./sdk.mjs";

export let fakeO, fakeA, fakeG, w, client;
export const defaultTable = JSON.parse(readFileSync(path.join(REPO_ROOT, "config", "default-routing-table.json"), "utf8"));

export function useMessagesGateway() {
  useGateway({ fakes: { fakeO: startFake, fakeA: startFakeAnthropic, fakeG: startFakeGemini } }, (g) => {
    ({ fakeO, fakeA, fakeG, w } = g);
    client = anthropicClient(w);
  });
}

export const PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mP4//8/AAX+Av4zEpUUAAAAAElFTkSuQmCC";
export const WEATHER_TOOL = {
  name: "get_weather",
  description: "Get the current weather in a given location",
  input_schema: {
    type: "object",
    properties: { location: { type: "string", description: "The city and state, e.g. San Francisco, CA" } },
    required: ["location"],
  },
};
export const USER = [{ role: "user", content: "Say hello." }];

// ---------------------------------------------------------------- helpers

/** POST /v1/messages (raw), read the whole body. */
export async function messagesOnce(body, headers = {}) {
  const res = await w.fetch("/v1/messages", {
    method: "POST",
    headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "unused", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return answerOf(res);
}

/** POST a streaming /v1/messages request and read the stream into named events. */
export async function messagesStream(body, { timeoutMs = 10_000 } = {}) {
  const res = await w.fetch("/v1/messages", {
    method: "POST",
    headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "unused" },
    body: JSON.stringify({ stream: true, ...body }),
  });
  const r = await readStream(res, { timeoutMs });
  return { res, status: res.status, ...r, named: parseNamedSse(r.text) };
}

/** SSE with `event:` names: [{event, data, json}]. */
export function parseNamedSse(text) {
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
export const streamedText = (named) =>
  named.filter((e) => e.json?.type === "content_block_delta" && e.json.delta?.type === "text_delta").map((e) => e.json.delta.text).join("");

/** A well-formed, complete Messages stream: event names match data types, canonical order. */
export function assertCompleteStream(r) {
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
export function assertAnthropicError(r, status, type) {
  assert.equal(r.status, status, r.text);
  assert.equal(r.json?.type, "error", `Anthropic error envelope: ${r.text}`);
  assert.equal(r.json.error?.type, type);
  assert.equal(typeof r.json.error.message, "string");
  assert.ok(r.json.error.message.length > 0);
  return r.json.error;
}

/** Route "claude" = [claude (Anthropic), gpt (OpenAI-compatible)]. */
export function claudeTable() {
  return mixedTable(w, {
    deployments: {
      // attempt_ms: room for the split-write streams below on a loaded machine.
      claude: { fake: fakeA, model: "claude-up-1", provider: { anthropic_version: "2023-06-01" }, timeouts: { attempt_ms: 20000 } },
      gpt: { fake: fakeO, model: "gpt-up-1" },
    },
    routes: { claude: { chain: ["claude", "gpt"] } },
  });
}

/** Route "gpt" = [gpt, gpt2], both OpenAI-compatible. */
export function gptTable(route = {}) {
  return mixedTable(w, {
    deployments: { gpt: { fake: fakeO, model: "gpt-up-1" }, gpt2: { fake: fakeO, model: "gpt-up-2" } },
    routes: { gpt: { chain: ["gpt", "gpt2"], ...route } },
  });
}
