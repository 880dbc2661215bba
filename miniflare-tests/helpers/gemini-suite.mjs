// Shared by gemini.test.mjs and gemini-failures.test.mjs (OpenAI clients served by Gemini
// deployments): the fakes, the worker and the `openai` client, tools, field access by either
// name, the route and the check of the generateContent wire format.

import assert from "node:assert/strict";
import { startFake } from "./fake-openai.mjs";
import { startFakeGemini } from "./fake-gemini.mjs";
import { mixedTable, FAKE_SECRET } from "./worker.mjs";
import { useGateway } from "./harness.mjs";
import { openaiClient } from "./sdk.mjs";

export let fakeO, fakeG, w, client;

export function useGeminiGateway() {
  useGateway({ fakes: { fakeO: startFake, fakeG: startFakeGemini } }, (g) => {
    ({ fakeO, fakeG, w } = g);
    client = openaiClient(w);
  });
}

export const PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mP4//8/AAX+Av4zEpUUAAAAAElFTkSuQmCC";
export const tool = (name, description, properties = {}, required = []) => ({
  type: "function",
  function: { name, description, parameters: { type: "object", properties, required } },
});
export const WEATHER_TOOL = tool("get_weather", "Get the current weather in a given location", { location: { type: "string", description: "City" } }, ["location"]);
export const TIME_TOOL = tool("get_time", "Get the local time in a given city", { city: { type: "string" } }, ["city"]);

/** A field of a Gemini body under its lowerCamelCase name (what the SDKs send) or its proto name. */
export function field(obj, camel) {
  if (!obj || typeof obj !== "object") return undefined;
  if (camel in obj) return obj[camel];
  const snake = camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return obj[snake];
}
export const partsText = (parts) => (parts ?? []).map((p) => p.text ?? "").join("");

/** A route "gem" = [gem (Gemini), backup (OpenAI-compatible)]; `route` adds route options. */
export function geminiTable({ gem = {}, backup = {}, route = {} } = {}) {
  return mixedTable(w, {
    deployments: {
      gem: { fake: fakeG, model: "gemini-up-2.0-flash", ...gem },
      backup: { fake: fakeO, model: "gpt-up-backup", ...backup },
    },
    routes: { gem: { chain: ["gem", "backup"], ...route } },
  });
}

/** The request reached the fake Gemini server as a generateContent / streamGenerateContent call. */
export function assertGeminiWire(t, up, { dep = "gem", model = "gemini-up-2.0-flash", stream = false } = {}) {
  assert.equal(up.method, "POST");
  assert.equal(up.path, `/s/${t.scenario(dep)}/v1beta/models/${model}:${stream ? "streamGenerateContent" : "generateContent"}`);
  if (stream) assert.equal(up.query.alt, "sse", "streams ask for ?alt=sse");
  assert.ok(!up.url.includes(FAKE_SECRET), "the key is not put in the URL");
  assert.equal(up.headers["x-goog-api-key"], FAKE_SECRET, "x-goog-api-key = the provider secret");
  assert.ok(!String(up.headers.authorization ?? "").includes(FAKE_SECRET), "the key is not also sent as a Bearer token");
  assert.match(up.headers["content-type"] ?? "", /^application\/json/);
  assert.ok(up.body && typeof up.body === "object", `JSON body: ${up.rawBody}`);
  assert.ok(Array.isArray(up.body.contents), "contents[]");
  for (const k of ["messages", "stream", "stream_options", "temperature", "max_tokens"]) {
    assert.equal(up.body[k], undefined, `OpenAI field "${k}" is not sent to Gemini`);
  }
  for (const c of up.body.contents) assert.match(c.role, /^(user|model|function)$/, `Gemini roles only: ${c.role}`);
}
