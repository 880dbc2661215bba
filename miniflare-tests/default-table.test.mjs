// No routing table in KV: the embedded default table with the built-in `mock` provider (no network).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { chatOnce, chatStream, sseContent, reasons, REPO_ROOT, FAKE_SECRET, USER_MSG } from "./helpers/worker.mjs";
import { useGateway } from "./helpers/harness.mjs";
import { openaiClient, collectSdkStream } from "./helpers/sdk.mjs";

let w, client;
const defaultTable = JSON.parse(readFileSync(path.join(REPO_ROOT, "config", "default-routing-table.json"), "utf8"));

// No `fakes`, and no table: the KV key "routing-table" is never written.
useGateway({}, (g) => {
  ({ w } = g);
  client = openaiClient(w);
});

test("healthz: embedded default in use", async () => {
  const res = await w.fetch("/healthz");
  const json = await res.json();
  assert.equal(res.status, 200);
  assert.equal(json.status, "ok");
  assert.equal(json.config.source, "embedded-default");
  assert.equal(json.config.error, null);
});

test("/v1/models lists the default routes", async () => {
  const res = await w.fetch("/v1/models");
  assert.equal(res.status, 200);
  const ids = (await res.json()).data.map((m) => m.id);
  for (const id of ["mock-small", "mock-large", "mock-fallback-demo"]) assert.ok(ids.includes(id), `${id} listed: ${ids}`);
  assert.deepEqual(ids.sort(), Object.keys(defaultTable.routes).sort());
});

test("mock-small, non-streaming, via the openai SDK: deterministic answer", async () => {
  const a = await client.chat.completions.create({ model: "mock-small", messages: USER_MSG }).withResponse();
  const b = await client.chat.completions.create({ model: "mock-small", messages: USER_MSG }).withResponse();
  assert.equal(a.response.status, 200);
  assert.equal(a.data.object, "chat.completion");
  const content = a.data.choices[0].message.content;
  assert.equal(typeof content, "string");
  assert.ok(content.length > 0);
  assert.equal(b.data.choices[0].message.content, content, "same request, same answer");
  // As a real provider's: `created` is now (seconds), and every answer has an id of its own.
  assert.ok(Math.abs(a.data.created - Date.now() / 1000) < 60, `created ${a.data.created}`);
  await new Promise((r) => setTimeout(r, 2));
  const c = await client.chat.completions.create({ model: "mock-small", messages: USER_MSG });
  assert.notEqual(c.id, a.data.id, "a new answer, a new id");
  assert.equal(a.data.model, defaultTable.deployments["mock-small"].model);
  assert.equal(a.response.headers.get("x-router-deployment"), "mock-small");
  assert.equal(a.response.headers.get("x-router-provider"), "mock");
  assert.equal(a.response.headers.get("x-router-model"), defaultTable.deployments["mock-small"].model);
  assert.equal(a.response.headers.get("x-router-attempts"), "1");
  assert.ok(a.data.usage, "mock reports usage");
});

test("mock-large, streaming, via the openai SDK", async () => {
  const { data: stream, response } = await client.chat.completions
    .create({ model: "mock-large", messages: USER_MSG, stream: true, stream_options: { include_usage: true } })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("x-router-deployment"), "mock-large");
  const { content, chunks, usage, finish } = await collectSdkStream(stream);
  assert.ok(content.length > 0);
  assert.ok(chunks >= 3, `several chunks: ${chunks}`);
  assert.equal(finish, "stop");
  assert.ok(usage, "usage chunk when asked");

  // Same answer as non-streaming (deterministic).
  const nonStream = await client.chat.completions.create({ model: "mock-large", messages: USER_MSG });
  assert.equal(nonStream.choices[0].message.content, content);
});

test("mock streaming over raw fetch ends with [DONE]", async () => {
  const r = await chatStream(w, { model: "mock-small", messages: USER_MSG });
  assert.equal(r.status, 200);
  assert.ok(sseContent(r.events).length > 0);
  assert.equal(r.events.at(-1)?.data, "[DONE]");
  assert.ok(!r.events.some((e) => e.json?.error));
});

function attemptsFor(table, route, dep) {
  const r = table.routes[route].retry?.max_attempts ?? table.deployments[dep].retry?.max_attempts ?? table.defaults?.retry?.max_attempts ?? 2;
  return r;
}

test("mock-fallback-demo: the broken mock answers 503, mock-small answers", async () => {
  const brokenAttempts = attemptsFor(defaultTable, "mock-fallback-demo", "mock-broken");
  const r = await chatOnce(w, { model: "mock-fallback-demo", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.res.headers.get("x-router-deployment"), "mock-small");
  assert.equal(r.res.headers.get("x-router-route"), "mock-fallback-demo");
  const got = reasons(r.res);
  assert.equal(got.length, brokenAttempts);
  for (const g of got) assert.match(g, /^mock-broken:(overloaded|server_error):503$/);
  assert.equal(r.res.headers.get("x-router-attempts"), String(brokenAttempts + 1));
  assert.equal(r.json.model, defaultTable.deployments["mock-small"].model);
});

test("mock-fallback-demo streaming: one clean stream", async () => {
  const r = await chatStream(w, { model: "mock-fallback-demo", messages: USER_MSG });
  assert.equal(r.status, 200);
  assert.equal(r.res.headers.get("x-router-deployment"), "mock-small");
  assert.ok(sseContent(r.events).length > 0);
  assert.equal(r.events.at(-1)?.data, "[DONE]");
  assert.ok(!r.events.some((e) => e.json?.error));
});

test("a bad first table in KV keeps the embedded default serving, healthz degraded", async () => {
  await w.putRaw("not json at all");
  const res = await w.fetch("/healthz");
  const json = await res.json();
  assert.equal(json.status, "degraded");
  assert.match(json.config.source, /^(last-good|embedded-default)$/);
  assert.ok(typeof json.config.error === "string" && json.config.error.length > 0);
  const r = await chatOnce(w, { model: "mock-small", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  await w.deleteTable();
});

test("no secret in any response", async () => {
  for (const e of await w.allSeen()) {
    assert.ok(!JSON.stringify(e.headers).includes(FAKE_SECRET));
    assert.ok(!e.body.includes(FAKE_SECRET));
  }
});
