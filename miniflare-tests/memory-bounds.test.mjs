// Per-isolate memory is bounded whatever clients and upstreams send (#18, item 10): a long
// session id (`x-session-id`, or the body's `user`) is remembered as a short key and still
// routes stickily; an SSE event whose `data:` lines add up past 1 MiB fails the attempt; a
// non-streaming body without content-length (chunked, or compressed) is read at most to its
// limit and then cancelled; a stream that delivered more than the 1 MiB kept for a resume is
// not resumed. Memory is checked as in soak.test.mjs: the RSS of this file's workerd, now
// (VmRSS) and at its peak (VmHWM, which also sees what was held for a moment).

import { test } from "node:test";
import assert from "node:assert/strict";
import { startBulky } from "./helpers/fake-bulky.mjs";
import { startFake } from "./helpers/fake-openai.mjs";
import { chatOnce, chatStream, reasons, sseContent, workerdRssMb, USER_MSG, FAKE_SECRET } from "./helpers/worker.mjs";
import { useGateway } from "./helpers/harness.mjs";

const ADMIN = "admin-token-memory-5e7f";
const TIMEOUTS = { connect_ms: 2000, first_token_ms: 3000, idle_ms: 3000, attempt_ms: 10000 };
const MiB = 1 << 20;
let bulky, fake, w;

useGateway({ fakes: { bulky: startBulky, fake: startFake }, worker: { bindings: { ADMIN_TOKEN: ADMIN } }, reset: false }, async (g) => {
  ({ bulky, fake, w } = g);
  const providers = { backup: { kind: "mock" } };
  const deployments = { backup: { provider: "backup", model: "mock-backup", context_window: 128000 } };
  const add = (name, base_url) => {
    providers[`p-${name}`] = { kind: "openai", base_url, api_key_secret: "FAKE_API_KEY" };
    deployments[name] = { provider: `p-${name}`, model: `up-${name}`, context_window: 128000 };
  };
  for (const tag of ["a", "b", "c", "d"]) add(`ok-${tag}`, bulky.baseUrl("ok", tag));
  const bulkyModes = ["json-endless", "error-endless", "gzip-bomb", "data-lines"];
  for (const mode of bulkyModes) add(mode, bulky.baseUrl(mode));
  for (const name of ["long", "long-b"]) add(name, fake.baseUrl(name));
  const routes = {
    sticky: { chain: ["ok-a", "ok-b", "ok-c", "ok-d"], sticky: { ttl_ms: 600000 } },
    long: { chain: ["long", "long-b"] },
  };
  for (const mode of bulkyModes) routes[mode] = { chain: [mode, "backup"] };
  await w.putTable({
    version: 1,
    defaults: { retry: { max_attempts: 1 }, timeouts: TIMEOUTS, request_timeout_ms: 20000, breaker: { enabled: false } },
    providers,
    deployments,
    routes,
  });
});

/** Runs `f()` `n` times with `width` in flight. */
async function pool(n, width, f) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        next++;
        await f();
      }
    }),
  );
}

/** The fake's record of the request to `mode`, once its answer has ended (bounded wait). */
async function ended(mode) {
  for (let i = 0; i < 100; i++) {
    const e = bulky.seen().find((s) => s.mode === mode && s.ended);
    if (e) return e;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`fake-bulky never finished answering ${mode}: ${JSON.stringify(bulky.seen())}`);
}

async function explain(body, headers = {}) {
  const res = await w.fetch("/admin/api/explain", {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify({ body, headers }),
  });
  assert.equal(res.status, 200);
  return res.json();
}

test("non-streaming bodies without a usable content-length are read at most to their limit, then cancelled", async () => {
  bulky.reset();
  // Peak RSS since this test started (first in the file: little has been held yet).
  const rss0 = workerdRssMb();
  const peakGrowth = (what) => {
    const g = workerdRssMb().peakMb - rss0.peakMb;
    console.log(`# ${what}: workerd peak RSS +${g} MB`);
    assert.ok(g <= 96, `${what}: workerd's peak RSS grew by ${g} MB, reading bodies limited to 32 MiB (bound 96 MB)`);
  };

  // An endless chunked answer: cut at 32 MiB, malformed_response, the next deployment answers.
  const r = await chatOnce(w, { model: "json-endless", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.res.headers.get("x-router-deployment"), "backup");
  assert.deepEqual(reasons(r.res), ["json-endless:malformed_response"]);
  const answer = await ended("json-endless");
  assert.ok(answer.hungUp, "the gateway hung up on the endless answer");
  assert.ok(answer.written < 64 * MiB, `the fake wrote ${(answer.written / MiB).toFixed(1)} MiB of a 32 MiB limit`);
  peakGrowth(`endless answer (the fake wrote ${(answer.written / MiB).toFixed(1)} MiB)`);

  // An endless chunked error body: cut at 64 KiB, still classified by its status.
  const er = await chatOnce(w, { model: "error-endless", messages: USER_MSG });
  assert.equal(er.status, 200, er.text);
  assert.deepEqual(reasons(er.res), ["error-endless:server_error:500"]);
  const error = await ended("error-endless");
  assert.ok(error.hungUp, "the gateway hung up on the endless error body");
  assert.ok(error.written < 32 * MiB, `the fake wrote ${(error.written / MiB).toFixed(1)} MiB of a 64 KiB limit`);
  peakGrowth(`endless error body (the fake wrote ${(error.written / MiB).toFixed(1)} MiB)`);

  // 64 KB of gzip that workerd decodes to 64 MiB: its content-length does not bound what is
  // read. Read whole, it takes ≈ 190 MB at its peak; cut at 32 MiB, ≈ 55 MB.
  const g = await chatOnce(w, { model: "gzip-bomb", messages: USER_MSG });
  assert.equal(g.status, 200, g.text);
  assert.deepEqual(reasons(g.res), ["gzip-bomb:malformed_response"]);
  peakGrowth("gzip bomb");
});

test("an SSE event whose data: lines add up past 1 MiB fails the attempt before the commit: the chain falls back at once", async () => {
  bulky.reset();
  const rss0 = workerdRssMb();
  const r = await chatStream(w, { model: "data-lines", messages: USER_MSG }, { timeoutMs: 15_000 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.res.headers.get("x-router-deployment"), "backup");
  assert.deepEqual(reasons(r.res), ["data-lines:malformed_response"]);
  assert.ok(r.text.endsWith("data: [DONE]\n\n"), "the backup's whole answer");
  assert.ok(sseContent(r.events).length > 0);
  const e = await ended("data-lines");
  assert.ok(e.hungUp, "the gateway hung up on the endless event");
  assert.ok(e.written < 32 * MiB, `the fake wrote ${(e.written / MiB).toFixed(1)} MiB before the gateway hung up`);
  const rss1 = workerdRssMb();
  console.log(`# endless SSE event: fake wrote ${(e.written / MiB).toFixed(1)} MiB; workerd peak RSS ${rss0.peakMb} → ${rss1.peakMb} MB`);
  assert.ok(rss1.peakMb - rss0.peakMb <= 64, `workerd's peak RSS grew by ${rss1.peakMb - rss0.peakMb} MB`);
});

test("a 1 MiB user or a long x-session-id is remembered as a short key: still sticky, and memory stays flat", async () => {
  const filler = "u".repeat(MiB);
  const ask = (user, headers) => chatOnce(w, { model: "sticky", messages: USER_MSG, user }, { headers });

  // The session the router keeps for a long id is short, and the same for the header and `user`.
  const viaUser = (await explain({ model: "sticky", messages: USER_MSG, user: filler })).session;
  const long = "s".repeat(16 << 10);
  const viaHeader = (await explain({ model: "sticky", messages: USER_MSG }, { "x-session-id": long })).session;
  assert.ok(viaUser.length <= 256, `a 1 MiB user is kept as ${viaUser.length} characters`);
  assert.ok(viaHeader.length <= 256, `a 16 KiB x-session-id is kept as ${viaHeader.length} characters`);
  assert.equal((await explain({ model: "sticky", messages: USER_MSG, user: long })).session, viaHeader);
  assert.equal((await explain({ model: "sticky", messages: USER_MSG, user: "short-id" })).session, "short-id");

  // Still sticky: the same long id goes to the same deployment every time; long ids that differ
  // only at their end are not merged into one session (they spread over the deployments).
  const homes = new Set();
  for (let i = 0; i < 12; i++) {
    const user = `${filler}${i}`;
    const first = await ask(user);
    assert.equal(first.status, 200, first.text);
    const dep = first.res.headers.get("x-router-deployment");
    for (let k = 0; k < 2; k++) assert.equal((await ask(user)).res.headers.get("x-router-deployment"), dep);
    homes.add(dep);
  }
  assert.ok(homes.size >= 2, `12 long users sharing a 1 MiB prefix all went to ${[...homes]}`);
  const byHeader = await ask(undefined, { "x-session-id": long });
  for (let k = 0; k < 3; k++) {
    const again = await ask(undefined, { "x-session-id": long });
    assert.equal(again.res.headers.get("x-router-deployment"), byHeader.res.headers.get("x-router-deployment"));
  }

  // Memory: 150 more sessions of 1 MiB each. Kept whole they would hold 150 MiB of wasm memory
  // (which never shrinks); as keys they hold nothing to speak of. Measured (2 cores, 4 in
  // flight): workerd's RSS climbs while its wasm memory and V8 heap reach the high-water mark of
  // 4 such requests in flight (≈ +150 MB over the first 100, then flat: +7 MB over the next
  // 200); with ids kept whole it grows by ≈ 1 MB per request (+300 MB over 300). So: a warm-up
  // to 100 requests of this shape, then growth over 150 more ≤ 48 MB.
  let i = 0;
  const another = async () => {
    const r = await ask(`${i++}-${filler}`);
    assert.equal(r.status, 200, r.text);
  };
  await pool(64, 4, another);
  const rss0 = workerdRssMb();
  await pool(150, 4, another);
  const rss1 = workerdRssMb();
  const growth = rss1.mb - rss0.mb;
  console.log(`# 150 requests with a 1 MiB user: workerd RSS ${rss0.mb} → ${rss1.mb} MB`);
  assert.ok(rss0.processes >= 1, "found the workerd process");
  assert.ok(growth <= 48, `workerd RSS grew by ${growth} MB over 150 sessions of 1 MiB (bound 48 MB)`);
});

test("a stream that delivered more than the 1 MiB kept for a resume is not resumed: it ends with the in-band error", async () => {
  // 17 pieces of 64 KiB, then the connection is cut; asked again, either deployment would
  // answer the whole text and more.
  const pieces = Array.from({ length: 17 }, (_, i) => String.fromCharCode(97 + i).repeat(64 << 10));
  const text = pieces.join("");
  fake.script("long", [{ ok: text, pieces, cutAfterChunks: 17 }, { ok: `${text} end.`, pieces: [...pieces, " end."] }]);
  fake.script("long-b", [{ ok: `${text} end.`, pieces: [...pieces, " end."] }]);
  const r = await chatStream(w, { model: "long", messages: USER_MSG }, { timeoutMs: 15_000 });
  assert.equal(r.status, 200);
  const got = sseContent(r.events);
  assert.ok(got === text, `the client got ${got.length} characters ending in ${JSON.stringify(got.slice(-12))}, not the ${text.length} delivered`);
  assert.ok(!r.text.includes("[DONE]"), "no clean end for a cut answer");
  const last = r.events.at(-1)?.json;
  assert.equal(last?.error?.code, "stream_cut", JSON.stringify(last));
  assert.deepEqual([fake.hits("long"), fake.hits("long-b")], [1, 0], "no upstream was asked to resume");
  assert.ok(!r.text.includes(FAKE_SECRET));
});
