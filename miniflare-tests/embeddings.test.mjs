// POST /v1/embeddings in workerd, through the official `openai` SDK (which asks for base64 by
// default and decodes it) and raw fetch: an OpenAI-compatible upstream, a Gemini upstream (one
// input → embedContent, several → batchEmbedContents), the built-in mock (deterministic), a
// fallback on 500 to a deployment of the same family, a key's budget, and the 400s.

import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { useGateway } from "./helpers/harness.mjs";
import { startFake } from "./helpers/fake-openai.mjs";
import { startFakeGemini } from "./helpers/fake-gemini.mjs";
import { FAST_RETRY, FAST_TIMEOUTS, logOf, answerOf } from "./helpers/worker.mjs";
import { ADMIN_TOKEN, createKey, settledKey, usdToNanos, auth } from "./helpers/keys-suite.mjs";

let fake, gem, w, wk;
useGateway(
  {
    fakes: { fake: startFake, gem: startFakeGemini },
    workers: { w: {}, wk: { bindings: { AUTH_MODE: "keys", ADMIN_TOKEN } } },
  },
  (g) => ({ fake, gem, w, wk } = g),
);

let seq = 0;
/**
 * An embeddings table: `deps` maps a deployment name to { kind: "openai" | "gemini" | "mock",
 * family?, dimensions?, mock?, price? }; every route in `routes` is an embeddings route unless
 * it says otherwise. Returns scenario helpers for the fakes.
 */
async function embedTable(worker, deps, routes) {
  const prefix = `e${++seq}`;
  const providers = {};
  const deployments = {};
  for (const [name, d] of Object.entries(deps)) {
    const kind = d.kind ?? "openai";
    const f = kind === "gemini" ? gem : fake;
    providers[`p-${name}`] =
      kind === "mock"
        ? { kind: "mock", ...(d.mock ? { mock: d.mock } : {}) }
        : { kind, base_url: f.baseUrl(`${prefix}-${name}`), api_key_secret: "FAKE_API_KEY" };
    deployments[name] = {
      provider: `p-${name}`,
      model: d.model ?? `up-${name}`,
      context_window: 8191,
      price: d.price ?? { input_per_mtok_usd: 1, output_per_mtok_usd: 0 },
      embedding: { family: d.family ?? "fam", dimensions: d.dimensions ?? 8 },
      ...(d.retry ? { retry: d.retry } : {}),
    };
  }
  const table = {
    version: 1,
    defaults: { retry: FAST_RETRY, timeouts: FAST_TIMEOUTS, request_timeout_ms: 15000, breaker: { enabled: false } },
    providers,
    deployments,
    routes: Object.fromEntries(Object.entries(routes).map(([n, r]) => [n, { kind: "embeddings", ...r }])),
  };
  await worker.putTable(table);
  const fakeOf = (dep) => ((deps[dep].kind ?? "openai") === "gemini" ? gem : fake);
  return {
    script: (dep, steps) => fakeOf(dep).script(`${prefix}-${dep}`, steps),
    hits: (dep) => fakeOf(dep).hits(`${prefix}-${dep}`),
    requests: (dep) => fakeOf(dep).requests(`${prefix}-${dep}`),
  };
}

const client = (worker, apiKey = "unused") =>
  new OpenAI({ baseURL: worker.v1, apiKey, maxRetries: 0, timeout: 10_000, fetch: worker.recordingFetch });

async function embedRaw(worker, body, headers = {}) {
  const res = await worker.fetch("/v1/embeddings", {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return answerOf(res);
}

const expected = (i, d) => Array.from({ length: d }, (_, j) => Math.fround((i + 1) / (j + 2)));

test("OpenAI-compatible upstream through the SDK: base64 by default, decoded to the upstream's vectors", async () => {
  const t = await embedTable(w, { oa: { dimensions: 8 } }, { emb: { chain: ["oa"] } });
  const out = await client(w).embeddings.create({ model: "emb", input: ["first text", "second"] });
  assert.equal(out.object, "list");
  assert.equal(out.model, "emb", "the route's name");
  assert.equal(out.data.length, 2);
  assert.deepEqual(out.data.map((d) => d.index), [0, 1]);
  assert.deepEqual(out.data[0].embedding, expected(0, 8));
  assert.deepEqual(out.data[1].embedding, expected(1, 8));
  assert.deepEqual(out.usage, { prompt_tokens: 5, total_tokens: 5 }, "the upstream's count");
  const [req] = t.requests("oa");
  assert.equal(req.url.endsWith("/embeddings"), true);
  assert.equal(req.headers.authorization, "Bearer sk-fake-secret-123");
  assert.deepEqual(req.body, { model: "up-oa", input: ["first text", "second"], encoding_format: "float" });

  // The same request as floats, raw; base64 decodes to exactly the same f32 values.
  const raw = await embedRaw(w, { model: "emb", input: "first text", encoding_format: "float", dimensions: 4, user: "u-1" });
  assert.equal(raw.status, 200, raw.text);
  assert.deepEqual(raw.json.data[0].embedding.map(Math.fround), expected(0, 4));
  assert.equal(raw.res.headers.get("x-router-deployment"), "oa");
  assert.equal(raw.res.headers.get("x-router-route"), "emb");
  assert.equal(raw.res.headers.get("x-router-attempts"), "1");
  assert.equal(raw.res.headers.get("x-router-cost-usd"), "0.000003", "3 tokens at $1/Mtok");
  assert.deepEqual(t.requests("oa")[1].body, { model: "up-oa", input: ["first text"], encoding_format: "float", dimensions: 4, user: "u-1" });
  const b64 = await embedRaw(w, { model: "emb", input: "first text", encoding_format: "base64", dimensions: 4 });
  const bytes = Buffer.from(b64.json.data[0].embedding, "base64");
  assert.equal(bytes.length, 16, "4 little-endian f32");
  const floats = Array.from({ length: 4 }, (_, j) => bytes.readFloatLE(j * 4));
  assert.deepEqual(floats, expected(0, 4));
});

test("Gemini upstream: one input → embedContent, several → batchEmbedContents; estimated usage, marked", async () => {
  const t = await embedTable(w, { g: { kind: "gemini", model: "gemini-embedding-001", dimensions: 6, family: "gem" } }, { gemb: { chain: ["g"] } });
  const one = await embedRaw(w, { model: "gemb", input: "twelve chars" });
  assert.equal(one.status, 200, one.text);
  assert.deepEqual(one.json.data[0].embedding.map(Math.fround), expected(0, 6));
  assert.deepEqual(one.json.usage, { prompt_tokens: 3, total_tokens: 3 }, "≈ 4 characters per token");
  assert.equal(one.res.headers.get("x-router-estimated"), "true");
  const log = await logOf(w, one.res.headers.get("x-router-request-id"));
  assert.equal(log.usage.estimated, true, JSON.stringify(log));
  const [r1] = t.requests("g");
  assert.match(r1.url, /\/models\/gemini-embedding-001:embedContent$/);
  assert.equal(r1.headers["x-goog-api-key"], "sk-fake-secret-123");
  assert.deepEqual(r1.body, { content: { parts: [{ text: "twelve chars" }] }, outputDimensionality: 6 });

  const out = await client(w).embeddings.create({ model: "gemb", input: ["a", "b", "c"], dimensions: 3 });
  assert.equal(out.data.length, 3);
  out.data.forEach((d, i) => assert.deepEqual(d.embedding, expected(i, 3)));
  const r2 = t.requests("g")[1];
  assert.match(r2.url, /:batchEmbedContents$/);
  assert.deepEqual(r2.body.requests[2], { model: "models/gemini-embedding-001", content: { parts: [{ text: "c" }] }, outputDimensionality: 3 });
});

test("the mock (default table's mock-embed): same input, same unit vector; another input, another vector", async () => {
  await w.putTable(JSON.parse((await import("node:fs")).readFileSync(new URL("../config/default-routing-table.json", import.meta.url), "utf8")));
  const c = client(w);
  const a = await c.embeddings.create({ model: "mock-embed", input: ["hello", "world"] });
  const b = await c.embeddings.create({ model: "mock-embed", input: "hello" });
  assert.equal(a.data[0].embedding.length, 256, "the declared dimension");
  assert.deepEqual(b.data[0].embedding, a.data[0].embedding, "deterministic");
  assert.notDeepEqual(a.data[1].embedding, a.data[0].embedding);
  const norm = Math.sqrt(a.data[0].embedding.reduce((s, x) => s + x * x, 0));
  assert.ok(Math.abs(norm - 1) < 1e-5, `L2 norm ${norm}`);
  const small = await c.embeddings.create({ model: "mock-embed", input: "hello", dimensions: 32 });
  assert.equal(small.data[0].embedding.length, 32);

  const models = await (await w.fetch("/v1/models")).json();
  const caps = (id) => models.data.find((m) => m.id === id).capabilities;
  assert.deepEqual([caps("mock-embed").embeddings, caps("mock-embed").chat], [true, false]);
  assert.deepEqual([caps("mock-small").embeddings, caps("mock-small").chat], [false, true]);
});

test("a 500 falls back to the next deployment of the same family and dimension", async () => {
  const t = await embedTable(
    w,
    { first: { retry: { max_attempts: 1 } }, second: {} },
    { emb: { chain: ["first", "second"] } },
  );
  t.script("first", [{ status: 500, body: { error: { message: "boom", type: "server_error", param: null, code: null } } }]);
  const r = await embedRaw(w, { model: "emb", input: "fall back please" });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.res.headers.get("x-router-deployment"), "second");
  assert.equal(r.res.headers.get("x-router-attempts"), "2");
  assert.equal(r.res.headers.get("x-router-fallback-reasons"), "first:server_error:500");
  assert.deepEqual([t.hits("first"), t.hits("second")], [1, 1]);

  // Every deployment failing: 502 naming the last reason, never a vector.
  t.script("second", [{ status: 503, body: { error: { message: "down", type: "server_error" } } }]);
  const bad = await embedRaw(w, { model: "emb", input: "x" });
  assert.equal(bad.status, 502, bad.text);
  assert.equal(bad.json.error.type, "upstream_error");
});

test("a key's budget applies: admitted while it lasts, then 429 budget_exceeded; spend settled", async () => {
  const t = await embedTable(wk, { oa: {} }, { emb: { chain: ["oa"] } });
  // "abcdefgh" = 2 tokens (estimate and fake) at $1/Mtok = 2000 nano-USD a request.
  const { id, key } = await createKey(wk, { name: "emb-budget", budget_day_usd: "0.000004" });
  const statuses = [];
  for (let i = 0; i < 3; i++) {
    const r = await embedRaw(wk, { model: "emb", input: "abcdefgh" }, auth(key));
    statuses.push(r.status);
    if (r.status === 200) assert.equal(usdToNanos(r.res.headers.get("x-router-cost-usd")), 2000n);
    else {
      assert.equal(r.json.error.code, "budget_exceeded", r.text);
      assert.equal(r.json.error.type, "insufficient_quota");
    }
  }
  assert.deepEqual(statuses, [200, 200, 429]);
  assert.equal(t.hits("oa"), 2, "the denied request never reached the provider");
  const state = await settledKey(wk, id, (s) => s.spend.reservations === 0 && s.usage.total.requests === 2);
  assert.equal(BigInt(state.spend.day_nanos), 4000n, JSON.stringify(state.spend));
  assert.equal(state.usage.total.input_tokens, 4);

  const noKey = await embedRaw(wk, { model: "emb", input: "x" });
  assert.equal(noKey.status, 401);
});

test("400s: empty, too many, token arrays, non-strings, bad dimensions, wrong route kind", async () => {
  await embedTable(w, { oa: { dimensions: 8 } }, { emb: { chain: ["oa"] } });
  const cases = [
    [{ model: "emb", input: "" }, "invalid_value", "input"],
    [{ model: "emb", input: [] }, "invalid_value", "input"],
    [{ model: "emb" }, "missing_required_parameter", "input"],
    [{ model: "emb", input: Array.from({ length: 2049 }, () => "x") }, "invalid_value", "input"],
    [{ model: "emb", input: [1, 2, 3] }, "unsupported_value", "input[0]"],
    [{ model: "emb", input: ["ok", 7] }, "unsupported_value", "input[1]"],
    [{ model: "emb", input: ["ok", null] }, "invalid_type", "input[1]"],
    [{ model: "emb", input: "x", dimensions: 0 }, "invalid_value", "dimensions"],
    [{ model: "emb", input: "x", dimensions: 9 }, "invalid_value", "dimensions"],
    [{ model: "emb", input: "x", encoding_format: "hex" }, "invalid_value", "encoding_format"],
  ];
  for (const [body, code, param] of cases) {
    const r = await embedRaw(w, body);
    assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 80)}: ${r.text}`);
    assert.equal(r.json.error.type, "invalid_request_error");
    assert.equal(r.json.error.code, code, r.text);
    assert.equal(r.json.error.param, param, r.text);
  }
  // The SDK sees a BadRequestError.
  await assert.rejects(client(w).embeddings.create({ model: "emb", input: "" }), (e) => e instanceof OpenAI.BadRequestError);

  // A chat request to an embeddings route, and an embeddings request to a chat route.
  const chat = await w.fetch("/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "emb", messages: [{ role: "user", content: "hi" }] }),
  });
  assert.equal(chat.status, 400);
  const cj = await chat.json();
  assert.equal(cj.error.code, "model_not_supported");
  assert.match(cj.error.message, /\/v1\/embeddings/);

  await w.putTable(JSON.parse((await import("node:fs")).readFileSync(new URL("../config/default-routing-table.json", import.meta.url), "utf8")));
  const wrong = await embedRaw(w, { model: "mock-small", input: "x" });
  assert.equal(wrong.status, 400, wrong.text);
  assert.equal(wrong.json.error.code, "model_not_supported");
  const unknown = await embedRaw(w, { model: "nope", input: "x" });
  assert.equal(unknown.status, 404);
  const get = await w.fetch("/v1/embeddings");
  assert.equal(get.status, 405);
  await get.text();
});
