// Fault soak (issue #9): thousands of requests through the built worker against chaos fakes
// (helpers/fake-chaos.mjs: OpenAI-compatible, Anthropic and Gemini wire formats) that inject
// random faults into a set share of upstream requests, reproducibly from a seed.
//
//   SOAK_REQUESTS     requests in total (default 2500, of which 5 % are warm-up)
//   SOAK_SEED         PRNG seed (default: random; always printed, rerun with it to reproduce)
//   SOAK_CONCURRENCY  requests in flight (default 16)
//   SOAK_FAULT_RATE   share of upstream requests that get a fault (default 0.3)
//   SOAK_PHASES       measured phases after the warm-up; RSS is sampled after each (default 4)
//
// Long on-demand run: SOAK_REQUESTS=50000 SOAK_CONCURRENCY=32 SOAK_SEED=123 node --test \
//   --test-concurrency=1 miniflare-tests/soak.test.mjs
//
// What every request must end in (client side, checked on the wire, no SDK):
//   - a complete correct answer: the full expected text exactly once, with the format's proper
//     ending (OpenAI: finish_reason "stop" and, for streams, exactly one `data: [DONE]` as the
//     last event, one finish chunk, one usage chunk iff asked, one id; Anthropic: stop_reason
//     "end_turn" and, for streams, message_start … message_delta, message_stop last, every
//     content block closed), or
//   - a clean error in the client's format: a 4xx/5xx with `{"error":{message,type,code,param}}`
//     (OpenAI) or `{"type":"error","error":{type,message}}` (Anthropic); or, for a stream that
//     was already committed, one in-band error event as the last event (OpenAI
//     `data: {"error":…}` and no [DONE]; Anthropic `event: error` and no message_stop) after a
//     prefix of the expected text.
//   Anything else fails the soak: a hang past the client deadline (route deadline + 6 s), a
//   stream ending without its terminal event, text that is not (a prefix of) the expected
//   text, text delivered twice.
//
// Usage and cost (what must add up), for every request R, with P(R) = ⌈prompt chars / 4⌉ (≥ 1):
//   R's upstream requests (the fakes' ledger, in order) pair one to one with the attempts of R's
//   log line (an attempt may be missing from the ledger only if it failed to connect). The
//   answer is made of R's *committed* attempts, those the log does not mark as failed: the
//   stream's first response that sent content, then each resume that continued it (a prefill
//   continuation, or a replay once past the text already delivered), or the non-streamed answer.
//   billed(R) = Σ over them of: the usage that response reported, when its usage report went out
//   (OpenAI usage chunk / body, Anthropic message_delta / body, Gemini last chunk / body);
//   otherwise the gateway's estimate {prompt: P(R), completion: ⌈chars it delivered / 4⌉}
//   (a cut stream reports no usage; README "Mid-stream resume"). The chars a response
//   delivered are read from the gateway's side: the prefill it sent to the next resume, or, for
//   the last one, the client's text (a prefill sent after a replay took over also holds that
//   replay's text, so it speaks only for the committed response just before it); a response
//   followed only by replays is taken to have
//   delivered all its fake wrote. Failed attempts are never billed, and their fakes wrote no
//   new content, unless the gateway had already stopped waiting (a timeout racing the fake's
//   write: counted as `late_writes`).
//   Timing races: on a starved machine the gateway's own idle or attempt deadline can fire on a
//   response whose data has arrived but is not read yet (it then resumes or ends the answer,
//   correctly). A request shows it when a response its fake completed was ended by the
//   gateway, delivered less than its fake wrote, or its usage report was written but the answer
//   was finalised without it. Such responses are billed by estimate like any broken one; when
//   one was followed by replays only, what it delivered is unknown and the request's usage is
//   not compared (`inexact`). At most 1 % of requests may show races (they are printed).
//   U1 per request: the log line's usage equals billed(R), and its cost is 150·input +
//      600·output nano-USD (every deployment costs $0.15 / $0.60 per Mtok) plus its
//      `failed_prompts`: one estimated prompt for each attempt that failed after reaching the
//      model (cut, malformed, a deadline while generating), booked to that deployment.
//   U2 per request: no committed response delivered more than its fake wrote beyond the text
//      already delivered, and the last one delivered all of it unless the answer ended in an
//      in-band idle/attempt timeout (the gateway's own deadline, with data in flight);
//      a success ends on a response that finished, an in-band error on one that did not (or a
//      timeout); a successful answer shows the client the usage billed when it was reported,
//      not estimated (OpenAI body / usage chunk when asked; Anthropic output_tokens).
//   U3 per deployment (admin API, after the batched reports settle): usage.total.requests =
//      attempts made on it, ok = attempts that did not fail, input/output tokens and cost =
//      Σ billed(R) over the requests it answered (the log line's `deployment`). Summed:
//      recorded output tokens = tokens the fakes reported in the answers the gateway used +
//      the estimates for cut streams, and every response whose usage report went out was used
//      (late writes aside).
//
// Memory: the RSS of the workerd processes this test started (children of this node process,
// found in /proc) is sampled after the warm-up and after each phase; growth must stay under
// RSS_BOUND_MB (see there).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, mixedTable, workerdRssMb, FAST_TIMEOUTS, FAST_RETRY } from "./helpers/worker.mjs";
import { startChaosFake, createLedger, answerFor, rngFor, randInt, weighted, charCount } from "./helpers/fake-chaos.mjs";
import { judge, billingOf } from "./helpers/soak-judge.mjs";

const envInt = (name, dflt) => (process.env[name] ? Number.parseInt(process.env[name], 10) : dflt);
const REQUESTS = envInt("SOAK_REQUESTS", 2500);
const SEED = process.env.SOAK_SEED ? Number.parseInt(process.env.SOAK_SEED, 10) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
const CONCURRENCY = envInt("SOAK_CONCURRENCY", 16);
const FAULT_RATE = process.env.SOAK_FAULT_RATE ? Number(process.env.SOAK_FAULT_RATE) : 0.3;
const PHASES = Math.max(1, envInt("SOAK_PHASES", 4));
const WARMUP = Math.max(50, Math.floor(REQUESTS * 0.05));

const ADMIN = "admin-token-soak-8d1f";
const REQUEST_TIMEOUT_MS = 6000; // the routes' total deadline
const CLIENT_TIMEOUT_MS = REQUEST_TIMEOUT_MS + 6000; // a request still open after this is a hang
// Memory bound. Measured (2 cores, concurrency 16): workerd's RSS is ≈ 140–200 MB after the
// warm-up and climbs while V8 grows its heap target and the wasm linear memory (which never
// shrinks) reaches the high-water mark of 16 concurrent requests: ≈ +130 MB over the default
// 2,500 requests, then flat at ≈ 300 MB from about 5,000 to 12,000 requests (seed 3:
// 218, 275, 272, 286, 296, 306, 320, 309, 303, 303, 298, 308 MB after each 950 requests).
// So: growth after the warm-up ≤ 192 MB (the plateau plus 30 MB of GC noise; on top of the
// ≈ 130 MB measured, a leak of ≥ 30 KB per request, such as a kept request body or stream
// buffer, exceeds it in the default run) and, for runs of ≥ 10,000 requests, ≤ 64 MB over the
// second half of the phases (the plateau: a leak of ≥ 15 KB per request exceeds it).
const RSS_BOUND_MB = 192;
const RSS_PLATEAU_BOUND_MB = 64;
const RECORD_LIMIT = 5000; // longer runs do not keep every response for the secret scan (memory)
const PRICE_IN = 150; // nano-USD per input token ($0.15 / Mtok, mixedTable's price)
/** Attempt outcomes whose prompt the provider bills (`ErrorClass::billed_by_provider`). */
const BILLED_FAILURES = new Set(["stream_cut", "malformed_response", "timeout_first_token", "timeout_idle", "timeout_attempt"]);
const PRICE_OUT = 600; // nano-USD per output token ($0.60 / Mtok)

let w, fakes, ledger, table;
const logLines = new Map(); // request_id -> parsed log line

before(async () => {
  ledger = createLedger();
  fakes = {};
  for (const kind of ["openai", "anthropic", "gemini"]) fakes[kind] = await startChaosFake({ kind, seed: SEED, faultRate: FAULT_RATE, ledger });
  w = await startWorker({ bindings: { ADMIN_TOKEN: ADMIN } });
  captureLogLines(w);
  table = await mixedTable(w, {
    deployments: {
      "oa-prefill": { fake: fakes.openai, provider: { prefill: "assistant" } },
      "oa-prefix": { fake: fakes.openai, provider: { prefill: "prefix_flag" } },
      "oa-replay": { fake: fakes.openai },
      "an-1": { fake: fakes.anthropic },
      "an-2": { fake: fakes.anthropic },
      "ge-1": { fake: fakes.gemini },
      "ge-2": { fake: fakes.gemini },
    },
    routes: ROUTES,
    defaults: { timeouts: FAST_TIMEOUTS, retry: FAST_RETRY, request_timeout_ms: REQUEST_TIMEOUT_MS },
  });
});

after(async () => {
  await w?.dispose();
  for (const f of Object.values(fakes ?? {})) await f.close();
});

// Chains mixing the three formats; prefill (OpenAI `assistant` and `prefix_flag`, Anthropic)
// and replay resumes; one route without resume (in-band errors), one with a single deployment
// (clean errors).
const ROUTES = {
  "soak-openai": { chain: ["oa-prefill", "an-1", "ge-1"] },
  "soak-anthropic": { chain: ["an-2", "oa-prefix"] },
  "soak-gemini": { chain: ["ge-2", "oa-replay", "an-1"] },
  "soak-replay": { chain: ["oa-prefill", "ge-2"], resume: "replay" },
  "soak-noresume": { chain: ["an-1", "ge-1"], resume: "off" },
  "soak-solo": { chain: ["oa-replay"] },
};
const ROUTE_WEIGHTS = { "soak-openai": 3, "soak-anthropic": 3, "soak-gemini": 3, "soak-replay": 1, "soak-noresume": 1, "soak-solo": 1 };

const FILLER = ["please", "answer", "briefly", "about", "gateways", "and", "faults", "résumé", "数据", "🙂"];

/** The i-th request: route, client format, streaming, usage option, prompt. Deterministic. */
function specFor(i) {
  const rng = rngFor(SEED, "request", i);
  const route = weighted(rng, ROUTE_WEIGHTS);
  const format = rng() < 0.55 ? "openai" : "anthropic";
  const stream = rng() < 0.6;
  const includeUsage = format === "openai" && stream && rng() < 0.7;
  const system = rng() < 0.3 ? `You are soak helper ${randInt(rng, 1, 999)}.` : null;
  const filler = Array.from({ length: randInt(rng, 0, 30) }, () => FILLER[Math.floor(rng() * FILLER.length)]).join(" ");
  const user = `soak#${i} ${filler}`.trim();
  const promptChars = charCount(user) + (system ? charCount(system) : 0);
  let path, body;
  if (format === "openai") {
    path = "/v1/chat/completions";
    body = {
      model: route,
      messages: [...(system ? [{ role: "system", content: system }] : []), { role: "user", content: user }],
      ...(stream ? { stream: true } : {}),
      ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
    };
  } else {
    path = "/v1/messages";
    body = { model: route, max_tokens: 512, ...(system ? { system } : {}), messages: [{ role: "user", content: user }], ...(stream ? { stream: true } : {}) };
  }
  return { i, route, format, stream, includeUsage, path, body, promptChars, expected: answerFor(SEED, i) };
}

// ---------------------------------------------------------------------------------------------
// Running requests

async function runOne(spec) {
  const t0 = Date.now();
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), CLIENT_TIMEOUT_MS);
  const rec = { spec, status: 0, headers: {}, text: "", elapsedMs: 0, hang: false, transportError: null };
  try {
    const headers = { "content-type": "application/json", ...(spec.format === "anthropic" ? { "anthropic-version": "2023-06-01" } : {}) };
    // Responses go to the suite's secret scan (zz-secret-scan.test.mjs) unless the run is long.
    const doFetch = REQUESTS <= RECORD_LIMIT ? w.recordingFetch : fetch;
    const res = await doFetch(w.url + spec.path.slice(1), { method: "POST", headers, body: JSON.stringify(spec.body), signal: ac.signal });
    rec.status = res.status;
    res.headers.forEach((v, k) => (rec.headers[k] = v));
    rec.text = await res.text();
  } catch (err) {
    if (ac.signal.aborted) rec.hang = true;
    else rec.transportError = String(err?.cause?.code ?? err?.message ?? err);
  } finally {
    clearTimeout(timer);
  }
  rec.elapsedMs = Date.now() - t0;
  // Judge at once and keep only the verdict (and the answer text), not the raw body.
  rec.verdict = judge(rec, { hangAfterMs: CLIENT_TIMEOUT_MS, admin: ADMIN });
  rec.text = undefined;
  return rec;
}

async function runRange(from, to, results) {
  let next = from;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (;;) {
        const i = next++;
        if (i >= to) return;
        results[i] = await runOne(specFor(i));
      }
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Observation helpers

/** Keeps every request log line of the worker (w.logs keeps only the recent ones). */
function captureLogLines(worker) {
  const bufs = { out: "", err: "" };
  const push = worker.logs.push.bind(worker.logs);
  worker.logs.push = (...items) => {
    for (const item of items) {
      const m = /^\[(out|err)\] ([\s\S]*)$/.exec(String(item));
      if (!m) continue;
      bufs[m[1]] += m[2];
      let nl;
      while ((nl = bufs[m[1]].indexOf("\n")) >= 0) {
        const line = bufs[m[1]].slice(0, nl);
        bufs[m[1]] = bufs[m[1]].slice(nl + 1);
        const at = line.indexOf('{"');
        if (at < 0 || !line.includes('"msg":"request"')) continue;
        try {
          const j = JSON.parse(line.slice(at));
          if (j.msg === "request") logLines.set(j.request_id, j);
        } catch {}
      }
    }
    return push(...items);
  };
}

async function adminDeployments() {
  const res = await fetch(w.url + "admin/api/deployments", { headers: { authorization: `Bearer ${ADMIN}` }, signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200);
  const json = await res.json();
  return Object.fromEntries(json.deployments.map((d) => [d.name, d.state?.usage?.total ?? null]));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const inc = (obj, key, by = 1) => (obj[key] = (obj[key] ?? 0) + by);
const fmt = (obj) =>
  Object.entries(obj)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");

// ---------------------------------------------------------------------------------------------

test(`fault soak: ${REQUESTS} requests, concurrency ${CONCURRENCY}, fault rate ${FAULT_RATE}, seed ${SEED}`, { timeout: Math.max(30 * 60_000, REQUESTS * 300) }, async () => {
  console.log(`# soak seed=${SEED} requests=${REQUESTS} concurrency=${CONCURRENCY} fault_rate=${FAULT_RATE} phases=${PHASES} (rerun: SOAK_SEED=${SEED})`);
  const t0 = Date.now();
  const results = new Array(REQUESTS);
  const rss = [];

  await runRange(0, WARMUP, results);
  rss.push({ after: "warm-up", requests: WARMUP, ...workerdRssMb() });
  const per = Math.ceil((REQUESTS - WARMUP) / PHASES);
  for (let p = 0; p < PHASES; p++) {
    const from = WARMUP + p * per;
    const to = Math.min(REQUESTS, from + per);
    if (from >= to) break;
    const ts = Date.now();
    await runRange(from, to, results);
    rss.push({ after: `phase ${p + 1}`, requests: to, ...workerdRssMb() });
    console.log(`# phase ${p + 1}: requests ${from}..${to - 1} in ${((Date.now() - ts) / 1000).toFixed(1)} s; workerd RSS ${rss.at(-1).mb} MB`);
  }
  const runMs = Date.now() - t0;

  // ---- every answer on the wire
  const outcomes = {};
  const okKinds = {};
  const errorKeys = {};
  const inbandKeys = {};
  const failures = [];
  let fallbacks = 0;
  let attemptsSum = 0;
  const judged = results.map((rec) => {
    const j = rec.verdict;
    inc(outcomes, j.outcome);
    const kind = `${rec.spec.format}-${rec.spec.stream ? "stream" : "json"}`;
    if (j.outcome === "ok") inc(okKinds, kind);
    else if (j.outcome === "error") inc(errorKeys, j.key);
    else if (j.outcome === "inband") inc(inbandKeys, j.key);
    else failures.push({ i: rec.spec.i, route: rec.spec.route, kind, status: rec.status, outcome: j.outcome, detail: j.detail, text: j.text, expected: rec.spec.expected, ms: rec.elapsedMs });
    const attempts = Number(rec.headers["x-router-attempts"] ?? 0);
    attemptsSum += attempts;
    if (attempts > 1 || rec.headers["x-router-fallback-reasons"]) fallbacks++;
    return j;
  });

  // ---- per-request log lines (printed when each request is finished; wait for stragglers)
  const ids = results.map((r) => r.headers["x-router-request-id"]);
  for (let waited = 0; waited < 10_000 && ids.some((id) => id && !logLines.has(id)); waited += 100) await sleep(100);

  const faults = {};
  for (const e of ledger.entries) inc(faults, e.fault);
  const splitWrites = ledger.entries.filter((e) => e.split).length;

  // ---- billing: log line vs the fakes' ledger (U1), client-visible usage (U2)
  const billingErrors = [];
  const perDeployment = {}; // name -> {requests, ok, input, output, cost}
  const dep = (name) => (perDeployment[name] ??= { requests: 0, ok: 0, input_tokens: 0, output_tokens: 0, cost_nanos: 0 });
  let resumedRequests = 0;
  let resumes = 0;
  let servedOutput = 0;
  const lateEntries = new Set();
  const raced = [];
  let unreached = 0;
  let estimatedOutput = 0;
  const usedEntries = new Set();
  for (const [idx, rec] of results.entries()) {
    const { spec } = rec;
    const j = judged[idx];
    const id = ids[idx];
    const line = id ? logLines.get(id) : undefined;
    if (!line) {
      if (!rec.hang && !rec.transportError) billingErrors.push({ i: spec.i, why: `no log line for request ${id}` });
      continue;
    }
    for (const a of line.attempts ?? []) {
      dep(a.deployment).requests++;
      if (a.outcome === "ok") dep(a.deployment).ok++;
    }
    if (line.resumes?.length) {
      resumedRequests++;
      resumes += line.resumes.length;
    }
    const m = billingOf(ledger, spec, line, table.scenario, j);
    for (const e of m.committed) usedEntries.add(e);
    for (const e of m.late) lateEntries.add(e);
    unreached += m.unreached;
    const got = line.usage ? { prompt: line.usage.prompt_tokens, completion: line.usage.completion_tokens } : { prompt: 0, completion: 0 };
    const cost = line.cost_usd == null ? 0 : Math.round(Number(line.cost_usd) * 1e9);
    // Prompts the providers billed for failed attempts (bill_failed_prompts): one entry per
    // attempt that failed after reaching the model, booked to its own deployment.
    const failedPrompts = (line.failed_prompts ?? []).map(([d, usd]) => [d, Math.round(Number(usd) * 1e9)]);
    const failedCost = failedPrompts.reduce((sum, [, n]) => sum + n, 0);
    const billedAttempts = (line.attempts ?? []).filter((a) => BILLED_FAILURES.has(a.outcome)).map((a) => a.deployment);
    if (JSON.stringify(failedPrompts.map(([d]) => d)) !== JSON.stringify(billedAttempts) || failedPrompts.some(([, n]) => n <= 0 || n % PRICE_IN !== 0)) {
      billingErrors.push({ i: spec.i, why: "U1: failed prompts are not one positive prompt per attempt that failed after reaching the model", failedPrompts, attempts: line.attempts });
    }
    for (const [d, n] of failedPrompts) dep(d).cost_nanos += n;
    if (line.usage && line.deployment) {
      const d = dep(line.deployment);
      d.input_tokens += got.prompt;
      d.output_tokens += got.completion;
      d.cost_nanos += cost - failedCost;
    } else if (line.usage) billingErrors.push({ i: spec.i, why: `usage billed without an answering deployment`, line });
    const reportedPart = m.billed.completion - m.estimated.completion;
    servedOutput += reportedPart;
    // An inexact request's estimate is unknown to the model: count the gateway's.
    estimatedOutput += m.inexact ? got.completion - reportedPart : m.estimated.completion;
    const where = { i: spec.i, route: spec.route, format: spec.format, stream: spec.stream, outcome: j.outcome, resumes: line.resumes, attempts: line.attempts };
    for (const why of m.problems) billingErrors.push({ ...where, why: `ledger: ${why}`, ledger: m.entries.map(brief) });
    if (m.races.length) raced.push({ ...where, races: m.races, inexact: m.inexact });
    if (!m.inexact && (got.prompt !== m.billed.prompt || got.completion !== m.billed.completion)) {
      billingErrors.push({ ...where, why: "U1: log usage differs from the fakes' ledger", logged: got, expected: m.billed, estimatedPart: m.estimated, ledger: m.entries.map(brief) });
    }
    if (cost !== PRICE_IN * got.prompt + PRICE_OUT * got.completion + failedCost) {
      billingErrors.push({ ...where, why: "U1: cost is not 150·input + 600·output nano-USD plus the failed prompts", cost, usage: got, failedPrompts });
    }
    // The answer must be made of what the committed responses sent (checked in billingOf).
    if (j.outcome === "ok" || j.outcome === "inband") {
      if (!m.live) billingErrors.push({ ...where, why: `U2: the client got text, but no attempt committed`, ledger: m.entries.map(brief) });
      if (j.outcome === "ok" && !m.live?.finished) billingErrors.push({ ...where, why: "U2: success, but no committed response finished", ledger: m.entries.map(brief) });
      if (j.outcome === "inband" && m.live?.finished && !j.timeout) billingErrors.push({ ...where, why: "U2: in-band error, but the last committed response finished", ledger: m.entries.map(brief) });
    } else if (m.committed.length && j.outcome === "error") {
      billingErrors.push({ ...where, why: "U2: clean error after an attempt that did not fail", ledger: m.entries.map(brief) });
    }
    if (j.outcome === "ok" && j.usage && !line.usage?.estimated) {
      if (j.usage.completion !== got.completion || (j.usage.prompt !== null && j.usage.prompt !== got.prompt)) {
        billingErrors.push({ ...where, why: "U2: usage shown to the client differs from the usage billed", client: j.usage, logged: got });
      }
    }
  }
  // Every upstream response whose usage report went out was part of an answer, unless the
  // gateway had already given up on it (a late write).
  for (const e of ledger.entries) {
    if (e.usage && !usedEntries.has(e) && !lateEntries.has(e)) billingErrors.push({ i: e.tag, why: "U3: a response reported usage but no answer used it", entry: brief(e) });
    if (e.fault === "bad_prefill") billingErrors.push({ i: e.tag, why: "the gateway sent a prefill that is not a prefix of the answer", entry: brief(e) });
  }

  // ---- U3: the deployments' recorded usage (admin API) once the batched reports settle
  let recorded;
  let stableSince = 0;
  let previous = "";
  for (const end = Date.now() + 20_000; Date.now() < end; ) {
    recorded = await adminDeployments();
    const snap = JSON.stringify(recorded);
    const matches = Object.entries(perDeployment).every(([n, e]) => recorded[n]?.requests === e.requests);
    if (snap === previous) {
      if (matches && Date.now() - stableSince >= 1500) break;
    } else {
      previous = snap;
      stableSince = Date.now();
    }
    await sleep(250);
  }
  const recordedMismatch = [];
  let recordedOutput = 0;
  for (const name of new Set([...Object.keys(perDeployment), ...Object.keys(recorded)])) {
    const want = perDeployment[name] ?? { requests: 0, ok: 0, input_tokens: 0, output_tokens: 0, cost_nanos: 0 };
    const got = recorded[name] ?? {};
    recordedOutput += got.output_tokens ?? 0;
    for (const k of ["requests", "ok", "input_tokens", "output_tokens", "cost_nanos"]) {
      if ((got[k] ?? 0) !== want[k]) recordedMismatch.push(`${name}.${k}: recorded ${got[k]}, expected ${want[k]}`);
    }
  }

  // ---- summary
  const rssGrowth = rss.at(-1).mb - rss[0].mb;
  const summary =
    `SOAK seed=${SEED} requests=${REQUESTS} concurrency=${CONCURRENCY} fault_rate=${FAULT_RATE} duration=${(runMs / 1000).toFixed(1)}s | ` +
    `ok=${outcomes.ok ?? 0} (${fmt(okKinds)}) | clean_errors=${outcomes.error ?? 0} (${fmt(errorKeys)}) | inband_errors=${outcomes.inband ?? 0} (${fmt(inbandKeys)}) | ` +
    `hangs=${outcomes.hang ?? 0} truncated=${outcomes.truncated ?? 0} duplicated=${outcomes.duplicated ?? 0} corrupt=${outcomes.corrupt ?? 0} bad_framing=${outcomes.bad_framing ?? 0} bad_error=${outcomes.bad_error ?? 0} transport=${outcomes.transport ?? 0} | ` +
    `upstream_requests=${ledger.entries.length} attempts=${attemptsSum} late_writes=${lateEntries.size} timing_races=${raced.length} (inexact ${raced.filter((r) => r.inexact).length}) unreached=${unreached} fallbacks=${fallbacks} resumed_requests=${resumedRequests} resumes=${resumes} | ` +
    `faults: ${fmt(faults)} split_writes=${splitWrites} | ` +
    `output_tokens: recorded=${recordedOutput} = served ${servedOutput} + estimated ${estimatedOutput} (expected ${servedOutput + estimatedOutput}); billing_mismatches=${billingErrors.length} recorded_mismatches=${recordedMismatch.length} | ` +
    `workerd_rss_mb (${rss[0].processes} process): ${rss.map((r) => `${r.after}=${r.mb}`).join(" ")} growth=${rssGrowth} (bound ${RSS_BOUND_MB})`;
  console.log(`# ${summary}`);
  for (const f of failures.slice(0, 15)) console.log(`# FAILURE ${JSON.stringify(f)}`);
  const billingKinds = {};
  for (const b of billingErrors) inc(billingKinds, b.why.replace(/\b\d+\b/g, "N"));
  for (const [why, n] of Object.entries(billingKinds)) console.log(`# BILLING ${n}× ${why}`);
  for (const b of billingErrors.slice(0, 15)) console.log(`# BILLING ${JSON.stringify(b)}`);
  for (const r of recordedMismatch.slice(0, 30)) console.log(`# RECORDED ${r}`);
  for (const r of raced.slice(0, 10)) console.log(`# RACE ${JSON.stringify(r)}`);

  assert.equal(results.filter(Boolean).length, REQUESTS, "every request ran");
  assert.deepEqual(failures, [], `${failures.length} requests ended neither in a complete answer nor in a clean error (seed ${SEED})`);
  assert.deepEqual(billingErrors, [], `${billingErrors.length} billing mismatches against the fakes' ledger (seed ${SEED})`);
  assert.deepEqual(recordedMismatch, [], `deployments' recorded usage differs from the billed requests (seed ${SEED})`);
  // Timing races need a starved machine; a gateway that misread complete streams would show
  // them in bulk (they are printed above).
  assert.ok(raced.length <= Math.max(3, REQUESTS * 0.01), `${raced.length} requests with timing races (bound 1 %)`);
  assert.equal(recordedOutput, servedOutput + estimatedOutput, "recorded output tokens = served + estimated");
  assert.ok(rss[0].processes >= 1, "found the workerd process");
  assert.ok(rssGrowth <= RSS_BOUND_MB, `workerd RSS grew by ${rssGrowth} MB (bound ${RSS_BOUND_MB} MB): ${JSON.stringify(rss)}`);
  if (REQUESTS >= 10_000 && rss.length >= 5) {
    const mid = rss[Math.floor((rss.length - 1) / 2)];
    const late = rss.at(-1).mb - mid.mb;
    assert.ok(late <= RSS_PLATEAU_BOUND_MB, `workerd RSS grew by ${late} MB after ${mid.after} (plateau bound ${RSS_PLATEAU_BOUND_MB} MB): ${JSON.stringify(rss)}`);
  }
  // The soak must have exercised what it claims to.
  assert.ok((outcomes.ok ?? 0) > REQUESTS * 0.5, "most requests succeed");
  assert.ok(fallbacks > 0 && resumes > 0, "fallbacks and resumes happened");
});

/** A ledger entry, short, for failure reports. */
function brief(e) {
  return {
    seq: e.seq,
    kind: e.kind,
    scenario: e.scenario,
    n: e.n,
    stream: e.stream,
    fault: e.fault,
    k: e.k,
    prefill: e.prefill === null ? null : charCount(e.prefill),
    wrote: charCount(e.contentText),
    words: `${e.contentWords}/${e.words}`,
    finished: e.finished,
    usage: e.usage,
    aborted: e.aborted,
  };
}
