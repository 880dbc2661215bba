// Happy paths through the gateway with the official OpenAI SDK as the client, the upstream request
// the gateway builds, /v1/models, and that the provider secret never reaches the caller.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startFake } from "./helpers/fake-openai.mjs";
import { scenarioTable, chatStream, FAKE_SECRET, USER_MSG } from "./helpers/worker.mjs";
import { useGateway } from "./helpers/harness.mjs";
import { openaiClient } from "./helpers/sdk.mjs";

let fake, w, client;

useGateway({ fakes: { fake: startFake } }, (g) => {
  ({ fake, w } = g);
  client = openaiClient(w);
});

function assertRouterHeaders(response, { route, deployment, provider, model, attempts }) {
  const h = response.headers;
  assert.ok(h.get("x-router-request-id"), "x-router-request-id present");
  assert.equal(h.get("x-router-route"), route);
  assert.equal(h.get("x-router-deployment"), deployment);
  assert.equal(h.get("x-router-provider"), provider);
  assert.equal(h.get("x-router-attempts"), String(attempts));
  assert.match(h.get("x-router-overhead-ms") ?? "", /^\d+(\.\d+)?$/, "x-router-overhead-ms is a number");
  if (attempts === 1) assert.equal(h.get("x-router-fallback-reasons"), null, "no fallback reasons on a clean answer");
  // The model that actually answered, as the upstream named it (same as the body's `model`).
  assert.equal(h.get("x-router-model"), model, "x-router-model = the model that answered");
}

async function basicTable() {
  const t = await scenarioTable(w, fake, {
    deployments: { primary: { model: "gpt-up-primary" }, secondary: { model: "gpt-up-secondary" } },
    routes: { "gw-model": { chain: ["primary", "secondary"] } },
    providerHeaders: { "x-extra": "v" },
  });
  return t;
}

test("non-streaming answer via the openai SDK", async () => {
  const t = await basicTable();
  t.script("primary", [{ ok: "Hello there, caller.", model: "gpt-up-primary-2025-01-01" }]);
  const { data, response } = await client.chat.completions
    .create({ model: "gw-model", messages: USER_MSG, temperature: 0.2 })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(data.object, "chat.completion");
  assert.equal(data.choices[0].message.content, "Hello there, caller.");
  assert.equal(data.choices[0].finish_reason, "stop");
  assert.equal(data.model, "gpt-up-primary-2025-01-01", "model = the model that actually answered");
  assert.ok(data.usage && data.usage.completion_tokens === 3, "usage passed through");
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 0 });

  // What the upstream received.
  const [up] = t.requests("primary");
  assert.equal(up.headers.authorization, `Bearer ${FAKE_SECRET}`);
  assert.equal(up.headers["x-extra"], "v", "provider headers are sent");
  assert.equal(up.body.model, "gpt-up-primary", "model = deployment's model");
  assert.deepEqual(up.body.messages, USER_MSG);
  assert.equal(up.body.temperature, 0.2, "other parameters are forwarded");
  assert.notEqual(up.body.stream, true);

  // Last, so that a header mismatch does not hide the checks above.
  assertRouterHeaders(response, { route: "gw-model", deployment: "primary", provider: "p-primary", model: "gpt-up-primary-2025-01-01", attempts: 1 });
});

test("streaming answer via the openai SDK, with include_usage", async () => {
  const t = await basicTable();
  t.script("primary", [{ ok: "One two three four.", model: "gpt-up-primary-2025-01-01" }]);
  const { data: stream, response } = await client.chat.completions
    .create({ model: "gw-model", messages: USER_MSG, stream: true, stream_options: { include_usage: true } })
    .withResponse();
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /text\/event-stream/);
  let content = "";
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, "chat.completion.chunk");
    assert.equal(chunk.model, "gpt-up-primary-2025-01-01");
    for (const c of chunk.choices) {
      content += c.delta?.content ?? "";
      if (c.finish_reason) finish = c.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(content, "One two three four.");
  assert.equal(finish, "stop");
  assert.ok(usage, "usage chunk delivered when asked");
  assert.equal(usage.completion_tokens, 4);
  assert.ok(chunks >= 6, `role + 4 words + finish + usage chunks, got ${chunks}`);
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 0 });
  const [up] = t.requests("primary");
  assert.equal(up.body.stream, true);
  assert.equal(up.body.stream_options?.include_usage, true, "gateway asks upstream for usage");
  assert.equal(up.body.model, "gpt-up-primary");
  assert.equal(up.headers.authorization, `Bearer ${FAKE_SECRET}`);
  assertRouterHeaders(response, { route: "gw-model", deployment: "primary", provider: "p-primary", model: "gpt-up-primary-2025-01-01", attempts: 1 });
});

test("streaming without include_usage: no usage chunk to the client, but upstream is still asked for it", async () => {
  const t = await basicTable();
  t.script("primary", [{ ok: "Just four words here." }]);
  const r = await chatStream(w, { model: "gw-model", messages: USER_MSG });
  assert.equal(r.status, 200);
  assert.equal(r.error, null);
  assert.equal(r.timedOut, false);
  const jsons = r.events.filter((e) => e.json).map((e) => e.json);
  assert.equal(jsons.map((j) => j.choices?.map((c) => c.delta?.content ?? "").join("")).join(""), "Just four words here.");
  assert.equal(
    jsons.filter((j) => Array.isArray(j.choices) && j.choices.length === 0).length,
    0,
    "no usage-only chunk when the client did not ask",
  );
  assert.ok(jsons.every((j) => !j.usage), "no usage values in chunks");
  assert.equal(r.events.at(-1).data, "[DONE]");
  assert.equal(r.events.filter((e) => e.data === "[DONE]").length, 1);
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 0 });
  assert.equal(t.requests("primary")[0].body.stream_options?.include_usage, true);
});

test("SDK stream after an invisible fallback: one clean stream from the second deployment", async () => {
  const t = await basicTable();
  t.script("primary", [{ status: 503, body: { error: { message: "overloaded", type: "server_error", param: null, code: null } } }]);
  t.script("secondary", [{ ok: "Answer from the backup.", model: "backup-model-x" }]);
  const { data: stream, response } = await client.chat.completions
    .create({ model: "gw-model", messages: USER_MSG, stream: true })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("x-router-deployment"), "secondary");
  assert.equal(response.headers.get("x-router-attempts"), "3");
  let content = "";
  for await (const chunk of stream) {
    assert.equal(chunk.model, "backup-model-x");
    for (const c of chunk.choices) content += c.delta?.content ?? "";
  }
  assert.equal(content, "Answer from the backup.");
  assert.deepEqual(t.allHits(), { primary: 2, secondary: 1 });
});

test("GET /v1/models lists the route names in OpenAI list format", async () => {
  await scenarioTable(w, fake, {
    deployments: { a: {}, b: {} },
    routes: { "model-one": { chain: ["a"] }, "model-two": { chain: ["b", "a"], description: "second" } },
  });
  const res = await w.fetch("/v1/models");
  assert.equal(res.status, 200);
  const json = await res.json();
  assert.equal(json.object, "list");
  assert.ok(Array.isArray(json.data));
  assert.deepEqual(json.data.map((m) => m.id).sort(), ["model-one", "model-two"]);
  for (const m of json.data) assert.equal(m.object, "model");
  // Each route says what a client needs to pick it.
  const two = json.data.find((m) => m.id === "model-two");
  assert.equal(two.description, "second");
  assert.equal(two.capabilities.chat, true);
  assert.equal(two.capabilities.streaming, true);
  assert.equal(typeof two.context_window, "number");
  assert.deepEqual(two.pricing.input_per_mtok_usd, { min: "0.15", max: "0.15" });
  assert.deepEqual(two.pricing.output_per_mtok_usd, { min: "0.6", max: "0.6" });

  // The SDK can read it too.
  const list = await client.models.list();
  const ids = [];
  for await (const m of list) ids.push(m.id);
  assert.deepEqual(ids.sort(), ["model-one", "model-two"]);
});

test("the provider secret never appears in any response header or body", async () => {
  const seen = await w.allSeen();
  assert.ok(seen.length >= 5, `responses recorded: ${seen.length}`);
  for (const e of seen) {
    assert.ok(!JSON.stringify(e.headers).includes(FAKE_SECRET), `secret in headers of ${e.url}`);
    assert.ok(!e.body.includes(FAKE_SECRET), `secret in body of ${e.url}`);
  }
});
