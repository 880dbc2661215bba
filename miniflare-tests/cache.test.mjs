// Response caching (exact match), issue #17 part 3: a route's `cache` answers a repeated
// deterministic request from the Workers Cache API (`caches.default`, Miniflare's in-memory
// cache here) without calling any provider, streamed or not, for OpenAI and Anthropic clients;
// the client can bypass it; gateway keys never read each other's entries unless the route says
// `shared`; entries expire after `ttl_s`; errors, sampled requests (temperature unset or > 0,
// tools) and streams that did not end cleanly (cut, resumed, without the provider's usage) are
// never stored; a clean stream's answer is, and serves later requests streamed or not.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { startFake, steps } from "./helpers/fake-openai.mjs";
import { startFakeAnthropic } from "./helpers/fake-anthropic.mjs";
import { scenarioTable, mixedTable, chatOnce, chatStream, messagesOnce, sseContent, parseSse, logOf, KV_BINDING } from "./helpers/worker.mjs";
import { useGateway } from "./helpers/harness.mjs";

let fake, fakeA, w, wk;
let seq = 0;

useGateway(
  {
    fakes: { fake: startFake, fakeA: startFakeAnthropic },
    workers: { w: {}, wk: { bindings: { AUTH_MODE: "keys", ADMIN_TOKEN: "admin-secret-cache" } } },
  },
  (g) => ({ fake, fakeA, w, wk } = g),
);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const MSGS = [{ role: "user", content: "Say hello." }];

/** A fresh route `c<n>` over one fake deployment answering `text`, with `cache` (if any). */
async function cachingRoute(worker, cache, text = "Hello from the provider") {
  const route = `c${++seq}`;
  const t = await scenarioTable(worker, fake, {
    deployments: { d: {} },
    routes: { [route]: { chain: ["d"], ...(cache ? { cache } : {}) } },
  });
  t.script("d", [steps.ok(text)]);
  return { t, route };
}

const cacheOf = (r) => r.res.headers.get("x-router-cache");

/** Sends `send()` until it is a hit (a store runs in the background after the answer went
 * out); returns the hit and how many sends were misses (each of them reached the provider). */
async function untilHit(send) {
  for (let misses = 0; misses < 20; misses++) {
    const r = await send();
    if (cacheOf(r) === "hit") return { r, misses };
    assert.equal(cacheOf(r), "miss");
    await sleep(50);
  }
  throw new Error("never a hit");
}

async function putKey(worker, record) {
  const key = `sk-test-${randomBytes(16).toString("hex")}`;
  const id = createHash("sha256").update(key, "utf8").digest("hex");
  const kv = await worker.mf.getKVNamespace(KV_BINDING);
  await kv.put(`gateway-key:${id}`, JSON.stringify(record));
  return { authorization: `Bearer ${key}` };
}

test("miss, then hit: the same request (fields in another order) is answered from the cache at no cost, without the provider", async () => {
  const { t, route } = await cachingRoute(w, { ttl_s: 60 });
  const first = await chatOnce(w, { model: route, temperature: 0, messages: MSGS });
  assert.equal(first.status, 200);
  assert.equal(cacheOf(first), "miss");
  assert.equal(first.res.headers.get("x-router-deployment"), "d");
  const reordered = JSON.stringify({ messages: MSGS, temperature: 0.0, model: route, user: "someone-else" });
  const { r: hit, misses } = await untilHit(() => chatOnce(w, reordered));
  assert.equal(hit.status, 200);
  assert.equal(t.hits("d"), 1 + misses, "a hit never reaches the provider");
  assert.equal(hit.json.choices[0].message.content, "Hello from the provider");
  assert.deepEqual(hit.json.choices, first.json.choices);
  assert.deepEqual(hit.json.usage, first.json.usage, "the answer keeps the usage it was made with");
  assert.equal(hit.res.headers.get("x-router-cost-usd"), "0");
  assert.equal(hit.res.headers.get("x-router-attempts"), "0");
  assert.equal(hit.res.headers.get("x-router-deployment"), null, "no deployment answered");
  const log = await logOf(w, hit.res.headers.get("x-router-request-id"));
  assert.equal(log.cache, "hit");
  assert.equal(log.cost_usd, "0");
  assert.deepEqual(log.attempts, []);
  const missLog = await logOf(w, first.res.headers.get("x-router-request-id"));
  assert.equal(missLog.cache, "miss");
});

test("a route without cache never caches and sends no x-router-cache header", async () => {
  const { t, route } = await cachingRoute(w, null);
  const a = await chatOnce(w, { model: route, temperature: 0, messages: MSGS });
  await sleep(100);
  const b = await chatOnce(w, { model: route, temperature: 0, messages: MSGS });
  assert.equal(cacheOf(a), null);
  assert.equal(cacheOf(b), null);
  assert.equal(t.hits("d"), 2);
});

test("a stream is served from a cached non-streamed answer, with usage when asked and [DONE]", async () => {
  const { t, route } = await cachingRoute(w, { ttl_s: 60 }, "Streamed back from the cache");
  await untilHit(() => chatOnce(w, { model: route, temperature: 0, messages: MSGS }));
  const before = t.hits("d");
  const s = await chatStream(w, { model: route, temperature: 0, messages: MSGS, stream_options: { include_usage: true } });
  assert.equal(s.status, 200);
  assert.equal(s.res.headers.get("x-router-cache"), "hit");
  assert.match(s.res.headers.get("content-type"), /text\/event-stream/);
  assert.equal(t.hits("d"), before);
  assert.equal(sseContent(s.events), "Streamed back from the cache");
  assert.equal(s.events.at(-1).data, "[DONE]");
  const usage = s.events.find((e) => e.json?.usage);
  assert.ok(usage && usage.json.usage.completion_tokens > 0, s.text);
  assert.ok(s.events.some((e) => e.json?.choices?.[0]?.finish_reason === "stop"));
  const noUsage = await chatStream(w, { model: route, temperature: 0, messages: MSGS });
  assert.equal(noUsage.res.headers.get("x-router-cache"), "hit");
  assert.ok(!noUsage.events.some((e) => e.json?.usage), "no usage chunk unless asked");
  assert.equal(sseContent(noUsage.events), "Streamed back from the cache");
});

test("a streamed answer is stored: a later non-streamed request and a stream are served from it, with its text and usage", async () => {
  const { t, route } = await cachingRoute(w, { ttl_s: 60 }, "Stored from a stream");
  const body = { model: route, temperature: 0, messages: MSGS, stream: true, stream_options: { include_usage: true } };
  const first = await chatStream(w, body);
  assert.equal(first.res.headers.get("x-router-cache"), "miss");
  assert.equal(sseContent(first.events), "Stored from a stream");
  const streamedUsage = first.events.find((e) => e.json?.usage).json.usage;
  const { r: hit, misses } = await untilHit(() => chatOnce(w, { model: route, temperature: 0, messages: MSGS }));
  assert.equal(t.hits("d"), 1 + misses, "every miss reached the provider, the hit did not");
  assert.equal(hit.json.choices[0].message.content, "Stored from a stream");
  assert.equal(hit.json.choices[0].finish_reason, "stop");
  assert.equal(hit.json.usage.completion_tokens, streamedUsage.completion_tokens);
  assert.equal(hit.json.usage.prompt_tokens, streamedUsage.prompt_tokens);
  const before = t.hits("d");
  const again = await chatStream(w, body);
  assert.equal(again.res.headers.get("x-router-cache"), "hit");
  assert.equal(sseContent(again.events), "Stored from a stream");
  assert.equal(again.events.at(-1).data, "[DONE]");
  assert.equal(t.hits("d"), before);
});

test("a stream that did not end cleanly is never stored: cut mid-answer, or without the provider's usage", async () => {
  for (const step of [{ cutAfterChunks: 2 }, { noUsage: true }]) {
    const { t, route } = await cachingRoute(w, { ttl_s: 60 });
    t.script("d", [steps.ok("Hello from the provider, in several words", step)]);
    const s = await chatStream(w, { model: route, temperature: 0, messages: MSGS });
    assert.equal(s.res.headers.get("x-router-cache"), "miss");
    await sleep(300);
    const after = t.hits("d");
    const r = await chatOnce(w, { model: route, temperature: 0, messages: MSGS });
    assert.equal(r.res.headers.get("x-router-cache"), "miss", JSON.stringify(step));
    assert.equal(t.hits("d"), after + 1);
  }
});

test("Anthropic clients: a cached answer serves a Messages body and a Messages stream", async () => {
  const { t, route } = await cachingRoute(w, { ttl_s: 60 }, "Hello Anthropic client");
  const body = { model: route, max_tokens: 100, temperature: 0, messages: MSGS };
  const { misses } = await untilHit(() => messagesOnce(w, body));
  const hit = await messagesOnce(w, body);
  assert.equal(hit.res.headers.get("x-router-cache"), "hit");
  assert.equal(hit.json.type, "message");
  assert.equal(hit.json.content[0].text, "Hello Anthropic client");
  assert.equal(hit.json.stop_reason, "end_turn");
  assert.ok(hit.json.usage.output_tokens > 0);
  const s = await messagesOnce(w, { ...body, stream: true });
  assert.equal(s.res.headers.get("x-router-cache"), "hit");
  const events = s.text.split("\n\n").filter(Boolean).map((e) => e.split("\n")[0].replace("event: ", ""));
  assert.equal(events[0], "message_start");
  assert.equal(events.at(-1), "message_stop");
  assert.ok(events.includes("content_block_delta") && events.includes("message_delta"), s.text);
  const text = parseSse(s.text)
    .map((e) => e.json?.delta?.text ?? "")
    .join("");
  assert.equal(text, "Hello Anthropic client");
  assert.equal(t.hits("d"), misses);
});

test("an Anthropic deployment's own answer to an Anthropic client is cached when it is text only; one with a signed thinking block is not stored", async () => {
  const route = `c${++seq}`;
  const t = await mixedTable(w, { deployments: { claude: { fake: fakeA } }, routes: { [route]: { chain: ["claude"], cache: { ttl_s: 60 } } } });
  t.script("claude", [{ ok: "Native hello" }]);
  const body = { model: route, max_tokens: 100, temperature: 0, messages: MSGS };
  const { r: hit, misses } = await untilHit(() => messagesOnce(w, body));
  assert.equal(hit.json.content[0].text, "Native hello");
  assert.equal(hit.json.stop_reason, "end_turn");
  assert.equal(t.hits("claude"), misses);
  // A thinking block's signature has no place in the stored pivot: such answers are not stored.
  const thinkingRoute = `c${++seq}`;
  const t2 = await mixedTable(w, { deployments: { claude: { fake: fakeA } }, routes: { [thinkingRoute]: { chain: ["claude"], cache: { ttl_s: 60 } } } });
  t2.script("claude", [{ ok: "Thought about it", thinking: "hmm" }]);
  const tb = { model: thinkingRoute, max_tokens: 100, temperature: 0, messages: MSGS };
  const a = await messagesOnce(w, tb);
  assert.equal(a.status, 200);
  await sleep(200);
  const b = await messagesOnce(w, tb);
  assert.equal(b.res.headers.get("x-router-cache"), "miss");
  assert.ok(b.json.content.some((c) => c.type === "thinking" && c.signature), b.text);
  assert.equal(t2.hits("claude"), 2);
});

test("the client bypasses the cache with cache-control no-cache / no-store or x-router-cache: bypass", async () => {
  const { t, route } = await cachingRoute(w, { ttl_s: 60 });
  const body = { model: route, temperature: 0, messages: MSGS };
  const { misses } = await untilHit(() => chatOnce(w, body));
  const base = misses;
  for (const [i, headers] of [{ "cache-control": "no-cache" }, { "cache-control": "no-store" }, { "x-router-cache": "bypass" }].entries()) {
    const r = await chatOnce(w, body, { headers });
    assert.equal(r.status, 200);
    assert.equal(cacheOf(r), "bypass", JSON.stringify(headers));
    assert.equal(r.res.headers.get("x-router-deployment"), "d");
    assert.equal(t.hits("d"), base + i + 1, "a bypass reaches the provider");
  }
  const again = await chatOnce(w, body);
  assert.equal(cacheOf(again), "hit");
});

test("sampled requests (temperature unset or > 0, or tools) are not cached unless the route says cache_sampled", async () => {
  const { t, route } = await cachingRoute(w, { ttl_s: 60 });
  const tools = [{ type: "function", function: { name: "lookup", parameters: { type: "object", properties: {} } } }];
  for (const body of [
    { model: route, messages: MSGS },
    { model: route, temperature: 0.7, messages: MSGS },
    { model: route, temperature: 0, tools, messages: MSGS },
  ]) {
    const before = t.hits("d");
    const a = await chatOnce(w, body);
    await sleep(100);
    const b = await chatOnce(w, body);
    assert.equal(cacheOf(a), "bypass", JSON.stringify(body));
    assert.equal(cacheOf(b), "bypass", JSON.stringify(body));
    assert.equal(t.hits("d"), before + 2);
  }
  const sampled = await cachingRoute(w, { ttl_s: 60, cache_sampled: true });
  const { misses } = await untilHit(() => chatOnce(w, { model: sampled.route, temperature: 0.7, messages: MSGS }));
  assert.equal(sampled.t.hits("d"), misses);
});

test("an error is never cached: the next identical request goes to the provider", async () => {
  const { t, route } = await cachingRoute(w, { ttl_s: 60 });
  t.script("d", [steps.invalid(), steps.ok("Fine now")]);
  const body = { model: route, temperature: 0, messages: MSGS };
  const err = await chatOnce(w, body);
  assert.equal(err.status, 400);
  assert.equal(cacheOf(err), "miss");
  await sleep(200);
  const ok = await chatOnce(w, body);
  assert.equal(ok.status, 200);
  assert.equal(cacheOf(ok), "miss");
  assert.equal(ok.json.choices[0].message.content, "Fine now");
  const { r } = await untilHit(() => chatOnce(w, body));
  assert.equal(r.json.choices[0].message.content, "Fine now");
});

test("an entry expires after ttl_s", async () => {
  const { t, route } = await cachingRoute(w, { ttl_s: 1 });
  const body = { model: route, temperature: 0, messages: MSGS };
  const { misses } = await untilHit(() => chatOnce(w, body));
  await sleep(2200);
  const after = await chatOnce(w, body);
  assert.equal(cacheOf(after), "miss");
  assert.equal(t.hits("d"), 1 + misses);
});

test("scope: with scope key another gateway key never reads the entry; with shared it does; a key not allowed on the route is refused before the cache", async () => {
  const a = await putKey(wk, { name: "cache-a" });
  const b = await putKey(wk, { name: "cache-b" });
  const own = await cachingRoute(wk, { ttl_s: 60, scope: "key" });
  const body = { model: own.route, temperature: 0, messages: MSGS };
  const { misses } = await untilHit(() => chatOnce(wk, body, { headers: a }));
  const otherKey = await chatOnce(wk, body, { headers: b });
  assert.equal(otherKey.status, 200);
  assert.equal(cacheOf(otherKey), "miss", "key B never reads key A's entry");
  assert.equal(own.t.hits("d"), 1 + misses);

  const shared = await cachingRoute(wk, { ttl_s: 60, scope: "shared" });
  const sbody = { model: shared.route, temperature: 0, messages: MSGS };
  const warm = await untilHit(() => chatOnce(wk, sbody, { headers: a }));
  const fromB = await chatOnce(wk, sbody, { headers: b });
  assert.equal(cacheOf(fromB), "hit", "a shared entry serves every key");
  assert.equal(shared.t.hits("d"), warm.misses);
  const log = await logOf(wk, fromB.res.headers.get("x-router-request-id"));
  assert.equal(log.key, "cache-b");
  assert.equal(log.cache, "hit");

  const elsewhere = await putKey(wk, { name: "cache-c", routes: [own.route] });
  const refused = await chatOnce(wk, sbody, { headers: elsewhere });
  assert.equal(refused.status, 403);
  assert.equal(cacheOf(refused), null, "refused before the cache is looked at");
  const noKey = await chatOnce(wk, sbody);
  assert.equal(noKey.status, 401);
});
