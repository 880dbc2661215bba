// A hostile upstream (#18, items 1 and 2): redirects are never followed (the prompt and the
// key never reach another host, and another host's answer is never served), and upstream
// error text that quotes the provider key, the admin token or a key-shaped string reaches
// neither the caller (JSON errors, streamed error events) nor the log.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startHostile } from "./helpers/fake-hostile.mjs";
import { chatOnce, chatStream, FAKE_SECRET, USER_MSG, FAST_RETRY, FAST_TIMEOUTS, reasons } from "./helpers/worker.mjs";
import { useGateway } from "./helpers/harness.mjs";

const ADMIN = "admin-token-hostile-0a1b2c3d";
let h, w;
let seq = 0;

useGateway({ fakes: { h: startHostile }, worker: { bindings: { ADMIN_TOKEN: ADMIN } } }, (g) => ({ h, w } = g));

/** A provider of `kind` whose upstream behaves as `mode`. */
function provider(kind, mode) {
  const tag = `t${++seq}`;
  const suffix = kind === "gemini" ? "v1beta" : "v1";
  return { kind, base_url: h.baseUrl(mode, tag, suffix), api_key_secret: "FAKE_API_KEY" };
}

/** Routes: `<name>` = [the hostile deployment, then a mock that answers]; `<name>-only` = alone. */
async function table(hostile) {
  const providers = { backup: { kind: "mock" } };
  const deployments = { backup: { provider: "backup", model: "mock-backup", context_window: 128000 } };
  const routes = {};
  for (const [name, { kind, mode }] of Object.entries(hostile)) {
    providers[`p-${name}`] = provider(kind, mode);
    deployments[name] = { provider: `p-${name}`, model: `up-${name}`, context_window: 128000 };
    routes[name] = { chain: [name, "backup"] };
    routes[`${name}-only`] = { chain: [name] };
  }
  await w.putTable({
    version: 1,
    defaults: { retry: FAST_RETRY, timeouts: FAST_TIMEOUTS, request_timeout_ms: 10000, breaker: { enabled: false } },
    providers,
    deployments,
    routes,
  });
}

function assertNoSecret(text, where) {
  for (const s of [FAKE_SECRET, ADMIN]) assert.ok(!text.includes(s), `${where} contains ${s.slice(0, 6)}…: ${text.slice(0, 400)}`);
}

test("a 3xx from any provider kind is not followed: the chain falls back and nothing reaches the other host", async () => {
  const cases = [];
  for (const kind of ["openai", "anthropic", "gemini"]) for (const status of [301, 302, 307, 308]) cases.push({ kind, status });
  await table(Object.fromEntries(cases.map(({ kind, status }) => [`${kind}-${status}`, { kind, mode: `redirect-${status}` }])));
  for (const { kind, status } of cases) {
    for (const stream of [false, true]) {
      const body = { model: `${kind}-${status}`, messages: USER_MSG, stream };
      const r = stream ? await chatStream(w, body) : await chatOnce(w, body);
      assert.equal(r.status, 200, `${kind} ${status}: ${r.text}`);
      assert.ok(!r.text.includes("STOLEN"), "the other host's answer was served");
      assert.equal(r.res.headers.get("x-router-deployment"), "backup");
      assert.deepEqual(reasons(r.res), [`${kind}-${status}:upstream_redirect:${status}`], "one attempt, no retry");
    }
  }
  assert.equal(h.hits(), cases.length * 2, "each redirecting upstream was asked once per request");
  assert.equal(h.elsewhereHits(), 0, "the redirect target never saw the prompt or the key");
});

test("a redirect on the only deployment is a 502 naming the redirect, not the other host's answer", async () => {
  await table({ r: { kind: "anthropic", mode: "redirect-307" } });
  const r = await chatOnce(w, { model: "r-only", messages: USER_MSG });
  assert.equal(r.status, 502, r.text);
  assert.equal(r.json.error.code, "upstream_redirect");
  assert.match(r.json.error.message, /307/);
  assert.ok(!r.text.includes("STOLEN"));
  assert.equal(h.elsewhereHits(), 0);
});

test("an upstream 401 quoting the key comes back redacted, in every provider and client format", async () => {
  await table({
    o: { kind: "openai", mode: "echo" },
    a: { kind: "anthropic", mode: "echo" },
    g: { kind: "gemini", mode: "echo" },
    t: { kind: "openai", mode: "echo-text" },
  });
  for (const name of ["o", "a", "g", "t"]) {
    // The OpenAI client, not streamed and streamed (every attempt fails before the commit).
    for (const stream of [false, true]) {
      const r = await chatOnce(w, { model: `${name}-only`, messages: USER_MSG, stream });
      assert.equal(r.status, 502, `${name}: ${r.text}`);
      assertNoSecret(r.text, `${name} stream=${stream} body`);
      assert.match(r.json.error.message, /\[redacted\]/, `${name}: the upstream's reason is still shown, redacted`);
      assertNoSecret(JSON.stringify([...r.res.headers]), `${name} headers`);
    }
    // The Anthropic client.
    const res = await w.fetch("/v1/messages", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: `${name}-only`, max_tokens: 50, messages: USER_MSG }),
    });
    const text = await res.text();
    assert.equal(res.status, 502, text);
    assert.equal(JSON.parse(text).type, "error");
    assertNoSecret(text, `${name} /v1/messages`);
  }
  assert.ok(h.hits() >= 12, "the hostile upstream was really asked");
});

test("an in-band error after the commit that quotes the key ends the stream redacted", async () => {
  await table({ s: { kind: "openai", mode: "echo-stream" } });
  const r = await chatStream(w, { model: "s-only", messages: USER_MSG, resume: "off" });
  assert.equal(r.status, 200);
  const last = r.events.at(-1)?.json;
  assert.ok(last?.error, `ends with an error event: ${r.text}`);
  assert.match(last.error.message, /\[redacted\]/);
  assert.ok(!r.text.includes("[DONE]"));
  assertNoSecret(r.text, "stream");
});

test("the admin token and key-shaped strings in upstream text are redacted, and long text is capped", async () => {
  await table({ l: { kind: "openai", mode: "leak" } });
  h.setLeak(`proxy saw token ${ADMIN}, Authorization: Bearer abc.def.ghi-jkl and sk-live-AbCdEf0123456789XYZ ${"x".repeat(20_000)}`);
  const r = await chatOnce(w, { model: "l-only", messages: USER_MSG });
  assert.equal(r.status, 502, r.text);
  assertNoSecret(r.text, "body");
  assert.ok(!r.text.includes("sk-live-AbCdEf"), r.text.slice(0, 300));
  assert.ok(!r.text.includes("abc.def.ghi-jkl"), r.text.slice(0, 300));
  assert.ok(r.text.length < 4000, `error body is ${r.text.length} bytes`);
});

test("nothing secret reached the worker's log lines", async () => {
  await new Promise((r) => setTimeout(r, 200));
  const logs = w.logs.join("");
  assert.ok(logs.includes("upstream_redirect") || logs.includes("auth_error"), "the log lines were captured");
  assertNoSecret(logs, "log");
  assert.ok(!logs.includes("sk-live-AbCdEf"));
});
