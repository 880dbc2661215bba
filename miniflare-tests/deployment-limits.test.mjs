// A deployment's own requests/tokens-per-minute limits, kept in its Durable Object: traffic is
// steered to the next deployment when one is at its limit, and the caller gets 429 with
// Retry-After only when every deployment of the route is.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startFake } from "./helpers/fake-openai.mjs";
import { scenarioTable, chatOnce, USER_MSG } from "./helpers/worker.mjs";
import { useGateway } from "./helpers/harness.mjs";

let fake, w;
let seq = 0;

useGateway({ fakes: { fake: startFake } }, (g) => ({ fake, w } = g));

async function limitedChain(limits) {
  const n = ++seq;
  const p = `lim${n}-primary`;
  const s = `lim${n}-secondary`;
  const route = `lim${n}`;
  const t = await scenarioTable(w, fake, {
    deployments: { [p]: { limits: limits.primary }, [s]: { limits: limits.secondary } },
    routes: { [route]: { chain: [p, s] } },
  });
  t.script(p, [{ ok: "from primary" }]);
  t.script(s, [{ ok: "from secondary" }]);
  return { t, p, s, route };
}

test("a deployment at its RPM limit is skipped for the next one; with every deployment at its limit the caller gets 429 and Retry-After", async () => {
  const { t, p, s, route } = await limitedChain({ primary: { rpm: 3 }, secondary: { rpm: 2 } });
  const rs = [];
  for (let i = 0; i < 7; i++) rs.push(await chatOnce(w, { model: route, messages: USER_MSG }));
  const by = rs.map((r) => (r.status === 200 ? r.res.headers.get("x-router-deployment") : r.status));
  assert.deepEqual(by, [p, p, p, s, s, 429, 429]);
  assert.equal(t.hits(p), 3, "the provider never saw a request over its limit");
  assert.equal(t.hits(s), 2);
  const limited = rs[5];
  assert.equal(limited.json.error.code, "deployment_rate_limited");
  const ra = Number(limited.res.headers.get("retry-after"));
  assert.ok(ra >= 1 && ra <= 60, `retry-after ${ra}`);
  assert.match(rs[3].res.headers.get("x-router-fallback-reasons"), new RegExp(`${p}:skipped_deployment_limit`));
});

test("concurrent requests cannot push a deployment over its RPM limit", async () => {
  const { t, p, route } = await limitedChain({ primary: { rpm: 4 }, secondary: { rpm: 1 } });
  const rs = await Promise.all(Array.from({ length: 12 }, () => chatOnce(w, { model: route, messages: USER_MSG })));
  assert.equal(rs.filter((r) => r.status === 200).length, 5);
  assert.equal(rs.filter((r) => r.status === 429).length, 7);
  assert.equal(t.hits(p), 4);
});

test("TPM: a deployment's token window counts the estimate, then the actual usage", async () => {
  // The fake reports usage {prompt, completion} of a few dozen tokens; max_tokens makes the
  // estimate 1000 + prompt, so with tpm 1500 one request fits at a time until it settles.
  const { t, p, s, route } = await limitedChain({ primary: { tpm: 1500 }, secondary: {} });
  const first = await chatOnce(w, { model: route, messages: USER_MSG, max_tokens: 1000 });
  assert.equal(first.res.headers.get("x-router-deployment"), p);
  // Settled to the small actual usage (in the background): soon there is room again.
  let again;
  for (let i = 0; i < 40; i++) {
    again = await chatOnce(w, { model: route, messages: USER_MSG, max_tokens: 1000 });
    if (again.res.headers.get("x-router-deployment") === p) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(again.res.headers.get("x-router-deployment"), p, "after settling, the window had room");
  // A request whose estimate no longer fits goes to the secondary.
  const big = await chatOnce(w, { model: route, messages: USER_MSG, max_tokens: 1490 });
  assert.equal(big.res.headers.get("x-router-deployment"), s);
  assert.ok(t.hits(s) >= 1);
});
