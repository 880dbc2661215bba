// What a caller cannot do through the request: choose the upstream URL, replace or read the
// provider's credentials, or smuggle headers upstream; and hostile bodies get a clean 400.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startFake } from "./helpers/fake-openai.mjs";
import { scenarioTable, chatOnce, FAKE_SECRET, USER_MSG } from "./helpers/worker.mjs";
import { useGateway } from "./helpers/harness.mjs";

let fake, w;

useGateway({ fakes: { fake: startFake } }, (g) => ({ fake, w } = g));

test("a client cannot redirect the upstream or override the provider's auth through headers or body", async () => {
  const t = await scenarioTable(w, fake, {
    deployments: { only: {} },
    routes: { sec: { chain: ["only"] } },
  });
  t.script("only", [{ ok: "answered by the configured upstream" }]);
  const r = await chatOnce(
    w,
    {
      model: "sec",
      messages: USER_MSG,
      base_url: "http://127.0.0.1:1/evil",
      api_base: "http://127.0.0.1:1/evil",
      api_key: "sk-client-override",
      headers: { authorization: "Bearer sk-client-override" },
    },
    {
      headers: {
        authorization: "Bearer sk-client-override",
        "x-api-key": "sk-client-override",
        "x-forwarded-host": "evil.example",
        "x-upstream-url": "http://127.0.0.1:1/evil",
        "x-injected": "value",
      },
    },
  );
  assert.equal(r.status, 200, r.text);
  assert.equal(t.hits("only"), 1, "the configured upstream got the request");
  const up = t.requests("only")[0];
  assert.equal(up.headers.authorization, `Bearer ${FAKE_SECRET}`, "the provider key from the Worker secret");
  for (const [k, v] of Object.entries(up.headers)) {
    assert.ok(!String(v).includes("sk-client-override"), `client credential reached upstream in ${k}`);
  }
  for (const k of ["x-api-key", "x-forwarded-host", "x-upstream-url", "x-injected"]) {
    assert.equal(up.headers[k], undefined, `client header ${k} was forwarded upstream`);
  }
  // The answer never shows the provider key either.
  assert.ok(!r.text.includes(FAKE_SECRET));
  assert.ok(![...r.res.headers.values()].some((v) => v.includes(FAKE_SECRET)));
});

test("deeply nested JSON, a huge array of messages and non-JSON get a clean 400, never a crash", async () => {
  await scenarioTable(w, fake, { deployments: { only: {} }, routes: { sec: { chain: ["only"] } } });
  const deep = "[".repeat(10_000) + "]".repeat(10_000);
  const cases = [
    `{"model":"sec","messages":[{"role":"user","content":${deep}}]}`,
    `{"model":"sec","messages":${deep}}`,
    `{"model":"sec","messages":[${Array.from({ length: 20_000 }, () => "null").join(",")}]}`,
    // Valid messages, but more than the 100,000 accepted (3.3 MB, under the body limit).
    `{"model":"sec","messages":[${Array.from({ length: 100_001 }, () => '{"role":"user","content":"x"}').join(",")}]}`,
    `{"model":"sec","messages":[{"role":"user","content":"\u0000\ud800"}]`,
    "not json at all",
  ];
  for (const body of cases) {
    const r = await chatOnce(w, body);
    assert.equal(r.status, 400, `${body.slice(0, 60)}… → ${r.status} ${r.text.slice(0, 200)}`);
    assert.equal(typeof r.json?.error?.message, "string");
  }
  // The gateway is still healthy afterwards.
  const ok = await chatOnce(w, { model: "sec", messages: USER_MSG });
  assert.equal(ok.status, 200);
});
