// Errors that are the request's fault: provider 400s (context length, content policy, other) and
// the gateway's own validation (bad JSON, missing fields, unknown model, size, method, path).

import { test } from "node:test";
import assert from "node:assert/strict";
import { startFake, steps, FIXTURE_ERRORS } from "./helpers/fake-openai.mjs";
import { scenarioTable, chatOnce, chatStream, errorShape, reasons, FAKE_SECRET, USER_MSG } from "./helpers/worker.mjs";
import { useGateway } from "./helpers/harness.mjs";

const MAX_BODY_BYTES = 64 * 1024;
let fake, w;

useGateway({ fakes: { fake: startFake }, worker: { bindings: { MAX_BODY_BYTES: String(MAX_BODY_BYTES) } } }, (g) => ({ fake, w } = g));

const ROUTE = "gw";
const body = (extra = {}) => ({ model: ROUTE, messages: USER_MSG, ...extra });

// ---------------------------------------------------------------- context length

test("400 context_length_exceeded -> skips smaller/equal-context deployments, larger one answers", async () => {
  const t = await scenarioTable(w, fake, {
    deployments: {
      medium: { context_window: 32000 },
      tiny: { context_window: 8000 },
      same: { context_window: 32000 },
      large: { context_window: 200000 },
    },
    routes: { [ROUTE]: { chain: ["medium", "tiny", "same", "large"] } },
  });
  t.script("medium", [steps.contextLength()]);
  t.script("tiny", [{ ok: "tiny must not be asked" }]);
  t.script("same", [{ ok: "same must not be asked" }]);
  t.script("large", [{ ok: "large context answer", model: "large-model" }]);
  const r = await chatOnce(w, body());
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, "large context answer");
  assert.equal(r.json.model, "large-model");
  assert.equal(r.res.headers.get("x-router-deployment"), "large");
  assert.equal(r.res.headers.get("x-router-attempts"), "2");
  assert.deepEqual(reasons(r.res), ["medium:context_length_exceeded:400", "tiny:skipped_context_window", "same:skipped_context_window"]);
  assert.deepEqual(t.allHits(), { medium: 1, tiny: 0, same: 0, large: 1 });
});

test("400 context_length_exceeded with no larger deployment -> 400 with the provider's error", async () => {
  const t = await scenarioTable(w, fake, {
    deployments: { big: { context_window: 128000 }, small: { context_window: 16000 } },
    routes: { [ROUTE]: { chain: ["big", "small"] } },
  });
  t.script("big", [steps.contextLength()]);
  t.script("small", [{ ok: "small must not be asked" }]);
  const r = await chatOnce(w, body());
  assert.equal(r.status, 400, r.text);
  const e = errorShape(r.json);
  assert.equal(e.code, "context_length_exceeded");
  assert.ok(
    e.message.includes(FIXTURE_ERRORS.context_length_exceeded.error.message),
    `the provider's message is passed on: ${e.message}`,
  );
  assert.deepEqual(t.allHits(), { big: 1, small: 0 });
});

test("streaming: context_length_exceeded also falls to a larger deployment invisibly", async () => {
  const t = await scenarioTable(w, fake, {
    deployments: { small: { context_window: 16000 }, large: { context_window: 128000 } },
    routes: { [ROUTE]: { chain: ["small", "large"] } },
  });
  t.script("small", [steps.contextLength()]);
  t.script("large", [{ ok: "streamed from large" }]);
  const r = await chatStream(w, body());
  assert.equal(r.status, 200);
  assert.equal(r.events.at(-1)?.data, "[DONE]");
  assert.equal(r.events.map((e) => e.json?.choices?.[0]?.delta?.content ?? "").join(""), "streamed from large");
  assert.deepEqual(t.allHits(), { small: 1, large: 1 });
});

// ---------------------------------------------------------------- content policy

test("400 content_policy_violation -> no retry, no fallback, 400 with the provider's message", async () => {
  const t = await scenarioTable(w, fake, {
    deployments: { primary: {}, secondary: {} },
    routes: { [ROUTE]: { chain: ["primary", "secondary"] } },
  });
  t.script("primary", [steps.contentPolicy()]);
  t.script("secondary", [{ ok: "must not be used" }]);
  const r = await chatOnce(w, body());
  assert.equal(r.status, 400, r.text);
  const e = errorShape(r.json);
  assert.ok(e.message.includes("fake-policy-42"), `provider's message passed on: ${e.message}`);
  assert.match(String(e.code), /^content_policy(_violation)?$/);
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 0 });
});

test("400 content_filter code is also a content-policy failure (no fallback)", async () => {
  const t = await scenarioTable(w, fake, {
    deployments: { primary: {}, secondary: {} },
    routes: { [ROUTE]: { chain: ["primary", "secondary"] } },
  });
  t.script("primary", [
    { status: 400, body: { error: { message: "Filtered by the content filter (fake-filter-9).", type: "invalid_request_error", param: "prompt", code: "content_filter" } } },
  ]);
  t.script("secondary", [{ ok: "must not be used" }]);
  const r = await chatOnce(w, body());
  assert.equal(r.status, 400, r.text);
  assert.ok(errorShape(r.json).message.includes("fake-filter-9"));
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 0 });
});

test("content policy with fallback_on_content_policy: true -> falls back", async () => {
  const t = await scenarioTable(w, fake, {
    deployments: { primary: {}, secondary: {} },
    routes: { [ROUTE]: { chain: ["primary", "secondary"], fallback_on_content_policy: true } },
  });
  t.script("primary", [steps.contentPolicy()]);
  t.script("secondary", [{ ok: "the lenient one answers" }]);
  const r = await chatOnce(w, body());
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, "the lenient one answers");
  assert.equal(r.res.headers.get("x-router-deployment"), "secondary");
  assert.equal(r.res.headers.get("x-router-attempts"), "2");
  assert.deepEqual(reasons(r.res), ["primary:content_policy:400"]);
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 1 });
});

// ---------------------------------------------------------------- other 4xx

test("other 400 -> no retry, no fallback, the provider's error with its status", async () => {
  const t = await scenarioTable(w, fake, {
    deployments: { primary: {}, secondary: {} },
    routes: { [ROUTE]: { chain: ["primary", "secondary"] } },
  });
  t.script("primary", [steps.invalid()]);
  t.script("secondary", [{ ok: "must not be used" }]);
  const r = await chatOnce(w, body({ temperature: 5 }));
  assert.equal(r.status, 400, r.text);
  const e = errorShape(r.json);
  assert.ok(e.message.includes("fake-invalid-7"), e.message);
  assert.equal(e.param, "temperature");
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 0 });
});

test("422 -> no retry, no fallback, status 422 passed on", async () => {
  const t = await scenarioTable(w, fake, {
    deployments: { primary: {}, secondary: {} },
    routes: { [ROUTE]: { chain: ["primary", "secondary"] } },
  });
  t.script("primary", [
    { status: 422, body: { error: { message: "Unprocessable thing (fake-422).", type: "invalid_request_error", param: "tools", code: null } } },
  ]);
  t.script("secondary", [{ ok: "must not be used" }]);
  const r = await chatOnce(w, body());
  assert.equal(r.status, 422, r.text);
  assert.ok(errorShape(r.json).message.includes("fake-422"));
  assert.deepEqual(t.allHits(), { primary: 1, secondary: 0 });
});

// ---------------------------------------------------------------- local validation

async function localTable() {
  return scenarioTable(w, fake, {
    deployments: { only: {} },
    routes: { [ROUTE]: { chain: ["only"] }, "other-model": { chain: ["only"] } },
  });
}

test("body is not JSON -> 400", async () => {
  const t = await localTable();
  const r = await chatOnce(w, "{this is not json");
  assert.equal(r.status, 400, r.text);
  const e = errorShape(r.json);
  assert.equal(e.type, "invalid_request_error");
  assert.equal(t.hits("only"), 0);
});

test("missing messages -> 400 naming messages", async () => {
  const t = await localTable();
  const r = await chatOnce(w, { model: ROUTE });
  assert.equal(r.status, 400, r.text);
  assert.equal(errorShape(r.json).param, "messages");
  assert.equal(t.hits("only"), 0);
});

test("messages not an array -> 400 naming messages", async () => {
  const t = await localTable();
  const r = await chatOnce(w, { model: ROUTE, messages: "hello" });
  assert.equal(r.status, 400, r.text);
  assert.equal(errorShape(r.json).param, "messages");
  assert.equal(t.hits("only"), 0);
});

test("missing model -> 400 naming model", async () => {
  const t = await localTable();
  const r = await chatOnce(w, { messages: USER_MSG });
  assert.equal(r.status, 400, r.text);
  assert.equal(errorShape(r.json).param, "model");
  assert.equal(t.hits("only"), 0);
});

test("model not a string -> 400 naming model", async () => {
  const t = await localTable();
  const r = await chatOnce(w, { model: 42, messages: USER_MSG });
  assert.equal(r.status, 400, r.text);
  assert.equal(errorShape(r.json).param, "model");
  assert.equal(t.hits("only"), 0);
});

test("unknown model -> 404 model_not_found listing the available models", async () => {
  const t = await localTable();
  const r = await chatOnce(w, { model: "gpt-nonexistent", messages: USER_MSG });
  assert.equal(r.status, 404, r.text);
  const e = errorShape(r.json);
  assert.equal(e.code, "model_not_found");
  assert.ok(e.message.includes(ROUTE) && e.message.includes("other-model"), `lists the routes: ${e.message}`);
  assert.equal(t.hits("only"), 0);
});

test("body over MAX_BODY_BYTES -> 413", async () => {
  const t = await localTable();
  const big = "x".repeat(MAX_BODY_BYTES + 1024);
  const r = await chatOnce(w, { model: ROUTE, messages: [{ role: "user", content: big }] });
  assert.equal(r.status, 413, r.text.slice(0, 300));
  errorShape(r.json);
  assert.equal(t.hits("only"), 0);
});

test("a chunked body (no content-length) is read up to MAX_BODY_BYTES: over -> 413, within -> answered", async () => {
  const t = await localTable();
  t.script("only", [{ ok: "chunked fits" }]);
  const chunked = (text) => {
    const bytes = new TextEncoder().encode(text);
    const stream = new ReadableStream({
      start(c) {
        for (let i = 0; i < bytes.length; i += 64 << 10) c.enqueue(bytes.subarray(i, i + (64 << 10)));
        c.close();
      },
    });
    return w.fetch("/v1/chat/completions", { method: "POST", headers: { "content-type": "application/json" }, body: stream, duplex: "half" });
  };
  const over = await chunked(JSON.stringify({ model: ROUTE, messages: [{ role: "user", content: "x".repeat(MAX_BODY_BYTES + 1024) }] }));
  assert.equal(over.status, 413);
  errorShape(await over.json());
  const within = await chunked(JSON.stringify({ model: ROUTE, messages: [{ role: "user", content: "small" }] }));
  assert.equal(within.status, 200, await within.clone().text());
  assert.equal((await within.json()).choices[0].message.content, "chunked fits");
  assert.equal(t.hits("only"), 1);
});

test("body under MAX_BODY_BYTES is accepted", async () => {
  const t = await localTable();
  t.script("only", [{ ok: "fits" }]);
  const r = await chatOnce(w, { model: ROUTE, messages: [{ role: "user", content: "y".repeat(MAX_BODY_BYTES - 1024) }] });
  assert.equal(r.status, 200, r.text.slice(0, 300));
  assert.equal(t.hits("only"), 1);
});

test("GET /v1/chat/completions -> 405", async () => {
  const t = await localTable();
  const res = await w.fetch("/v1/chat/completions");
  assert.equal(res.status, 405);
  assert.equal(res.headers.get("allow"), "POST");
  errorShape(await res.json());
  assert.equal(t.hits("only"), 0);
  const models = await w.fetch("/v1/models", { method: "DELETE" });
  assert.equal(models.status, 405);
  assert.equal(models.headers.get("allow"), "GET");
});

test("unknown path -> 404", async () => {
  const res = await w.fetch("/v1/does-not-exist", { method: "POST", body: "{}", headers: { "content-type": "application/json" } });
  assert.equal(res.status, 404);
  errorShape(await res.json());
  const res2 = await w.fetch("/nope");
  assert.equal(res2.status, 404);
  await res2.arrayBuffer();
});

test("the provider secret never appears in any response header or body", async () => {
  const seen = await w.allSeen();
  assert.ok(seen.length >= 10);
  for (const e of seen) {
    assert.ok(!JSON.stringify(e.headers).includes(FAKE_SECRET), `secret in headers of ${e.url}`);
    assert.ok(!e.body.includes(FAKE_SECRET), `secret in body of ${e.url}`);
  }
});
