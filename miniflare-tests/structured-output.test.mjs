// Structured output (#16 part 7): a strict `json_schema` response format is checked against
// the answer. Off the schema (the fallback model wrote "4.5" where the schema says a number),
// a non-streamed answer falls back to the next deployment, and a streamed one ends with an
// in-band `invalid_output` error instead of [DONE]: no invalid success reaches the caller.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startFake } from "./helpers/fake-openai.mjs";
import { useGateway, twoDeployments } from "./helpers/harness.mjs";
import { openaiClient } from "./helpers/sdk.mjs";

let fake, w;
useGateway({ fakes: { fake: startFake } }, (g) => ({ fake, w } = g));

let seq = 0;
const RATING = {
  type: "json_schema",
  json_schema: {
    name: "rating",
    strict: true,
    schema: { type: "object", additionalProperties: false, required: ["title", "rating"], properties: { title: { type: "string" }, rating: { type: "number" } } },
  },
};
const ask = (model, extra = {}) => ({ model, messages: [{ role: "user", content: "Rate Dune." }], response_format: RATING, ...extra });

test("official SDK, non-streaming: an answer off the schema falls back to the deployment that follows it", async () => {
  const route = `so${++seq}`;
  const t = await twoDeployments(w, fake, route);
  t.script("primary", [{ ok: '{"title": "Dune", "rating": "4.5"}' }]);
  t.script("secondary", [{ ok: '{"title": "Dune", "rating": 4.5}' }]);
  const { data, response } = await openaiClient(w).chat.completions.create(ask(route)).withResponse();
  assert.deepEqual(JSON.parse(data.choices[0].message.content), { title: "Dune", rating: 4.5 });
  assert.equal(response.headers.get("x-router-deployment"), "secondary");
  assert.equal(response.headers.get("x-router-fallback-reasons"), "primary:invalid_output");
});

test("official SDK, non-streaming: when no deployment follows the schema the caller gets a 502 naming the first violation", async () => {
  const route = `so${++seq}`;
  const t = await twoDeployments(w, fake, route);
  t.script("primary", [{ ok: '{"title": "Dune", "rating": "4.5"}' }]);
  t.script("secondary", [{ ok: "Sure! It is a 4.5." }]);
  await assert.rejects(openaiClient(w).chat.completions.create(ask(route)), (e) => {
    assert.equal(e.status, 502);
    assert.equal(e.code, "invalid_output");
    assert.match(e.message, /not JSON/);
    return true;
  });
});

test("official SDK, streaming: a stream off the schema ends with an in-band invalid_output error, never as complete", async () => {
  const route = `so${++seq}`;
  const t = await twoDeployments(w, fake, route);
  t.script("primary", [{ ok: '{"title": "Dune", "rating": "4.5"}' }]);
  const stream = await openaiClient(w).chat.completions.create(ask(route, { stream: true }));
  let text = "";
  await assert.rejects(
    (async () => {
      for await (const c of stream) text += c.choices[0]?.delta?.content ?? "";
    })(),
    (e) => {
      assert.match(String(e.message), /breaks the schema at \/rating/);
      return true;
    },
  );
  assert.equal(text, '{"title": "Dune", "rating": "4.5"}');
});

test("a route with validate_output false, and a request without strict, pass answers through unchecked", async () => {
  const route = `so${++seq}`;
  const t = await twoDeployments(w, fake, route, {}, { validate_output: false });
  t.script("primary", [{ ok: "not json" }]);
  const r = await openaiClient(w).chat.completions.create(ask(route));
  assert.equal(r.choices[0].message.content, "not json");
  const loose = { ...RATING, json_schema: { ...RATING.json_schema, strict: false } };
  const route2 = `so${++seq}`;
  const t2 = await twoDeployments(w, fake, route2);
  t2.script("primary", [{ ok: "not json" }]);
  const r2 = await openaiClient(w).chat.completions.create(ask(route2, { response_format: loose }));
  assert.equal(r2.choices[0].message.content, "not json");
});
