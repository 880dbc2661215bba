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
//   the last one, the client's text; a response followed only by replays is taken to have
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
//      600·output nano-USD (every deployment costs $0.15 / $0.60 per Mtok).
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
import { startWorker, mixedTable, parseSse, workerdRssMb, FAST_TIMEOUTS, FAST_RETRY, FAKE_SECRET } from "./helpers/worker.mjs";
import { startChaosFake, createLedger, answerFor, rngFor, randInt, weighted, charCount } from "./helpers/fake-chaos.mjs";

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
  rec.verdict = judge(rec);
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
// Judging one answer

/** Why `text` differs from `expected`: truncated, duplicated or corrupt. */
function textFault(text, expected) {
  if (expected.startsWith(text)) return "truncated";
  if (text.length > expected.length && (text.startsWith(expected) || hasRepeat(text, expected))) return "duplicated";
  return "corrupt";
}
/** Some piece of the expected text (≥ 2 words) appears twice in `text`. */
function hasRepeat(text, expected) {
  const ws = expected.match(/\s*\S+/g) ?? [];
  for (let a = 0; a + 1 < ws.length; a++) {
    const piece = ws[a] + ws[a + 1];
    const first = text.indexOf(piece);
    if (first >= 0 && text.indexOf(piece, first + 1) >= 0 && expected.indexOf(piece, expected.indexOf(piece) + 1) < 0) return true;
  }
  return false;
}

/**
 * Classifies one response: {outcome: "ok" | "error" | "inband" | <failure>, key, text, usage, detail}.
 * Failures: hang, transport, truncated, duplicated, corrupt, bad_framing, bad_error.
 */
function judge(rec) {
  const { spec } = rec;
  const fail = (outcome, detail, text) => ({ outcome, detail, text });
  if (rec.hang) return fail("hang", `no end after ${CLIENT_TIMEOUT_MS} ms`);
  if (rec.transportError) return fail("transport", rec.transportError);
  const everything = rec.text + JSON.stringify(rec.headers);
  if (everything.includes(FAKE_SECRET) || everything.includes(ADMIN)) return fail("bad_framing", "a secret in the response");
  const ct = rec.headers["content-type"] ?? "";
  if (rec.status >= 400 && rec.status <= 599) {
    let json;
    try {
      json = JSON.parse(rec.text);
    } catch {
      return fail("bad_error", `status ${rec.status} with a non-JSON body: ${rec.text.slice(0, 200)}`);
    }
    if (spec.format === "openai") {
      const e = json?.error;
      const ok = e && typeof e.message === "string" && e.message && typeof e.type === "string" && "code" in e && "param" in e;
      if (!ok) return fail("bad_error", `not an OpenAI error body: ${rec.text.slice(0, 300)}`);
      return { outcome: "error", key: `${rec.status}:${e.code}` };
    }
    const ok = json?.type === "error" && typeof json.error?.type === "string" && typeof json.error?.message === "string" && json.error.message;
    if (!ok) return fail("bad_error", `not an Anthropic error body: ${rec.text.slice(0, 300)}`);
    return { outcome: "error", key: `${rec.status}:${json.error.type}` };
  }
  if (rec.status !== 200) return fail("bad_framing", `status ${rec.status}`);

  if (!spec.stream) {
    let json;
    try {
      json = JSON.parse(rec.text);
    } catch {
      return fail("bad_framing", `200 with a non-JSON body: ${rec.text.slice(0, 200)}`);
    }
    if (spec.format === "openai") {
      const c = json?.choices?.[0];
      const text = c?.message?.content;
      if (json?.object !== "chat.completion" || json.choices.length !== 1 || typeof text !== "string") return fail("bad_framing", rec.text.slice(0, 300));
      if (text !== spec.expected) return fail(textFault(text, spec.expected), `body text differs`, text);
      if (c.finish_reason !== "stop") return fail("truncated", `finish_reason ${c.finish_reason}`, text);
      if (!json.usage) return fail("bad_framing", "no usage");
      return { outcome: "ok", text, usage: { prompt: json.usage.prompt_tokens, completion: json.usage.completion_tokens } };
    }
    if (json?.type !== "message" || json.role !== "assistant" || !Array.isArray(json.content)) return fail("bad_framing", rec.text.slice(0, 300));
    if (json.content.some((b) => b.type !== "text")) return fail("bad_framing", "non-text block");
    const text = json.content.map((b) => b.text).join("");
    if (text !== spec.expected) return fail(textFault(text, spec.expected), "body text differs", text);
    if (json.stop_reason !== "end_turn") return fail("truncated", `stop_reason ${json.stop_reason}`, text);
    if (!json.usage) return fail("bad_framing", "no usage");
    return { outcome: "ok", text, usage: { prompt: json.usage.input_tokens + (json.usage.cache_read_input_tokens ?? 0), completion: json.usage.output_tokens } };
  }

  if (!ct.startsWith("text/event-stream")) return fail("bad_framing", `stream answered with ${ct}: ${rec.text.slice(0, 200)}`);
  return spec.format === "openai" ? judgeOpenAiStream(rec) : judgeAnthropicStream(rec);
}

function judgeOpenAiStream(rec) {
  const { spec } = rec;
  const fail = (outcome, detail, text) => ({ outcome, detail, text });
  const events = parseSse(rec.text);
  let text = "";
  const ids = new Set();
  let finishes = 0;
  let dones = 0;
  let usageChunks = [];
  let errors = [];
  let unparsable = 0;
  for (const e of events) {
    if (e.data === "[DONE]") {
      dones++;
      continue;
    }
    if (!e.json) {
      unparsable++;
      continue;
    }
    if (e.json.error) {
      errors.push(e.json.error);
      continue;
    }
    ids.add(e.json.id);
    if (Array.isArray(e.json.choices) && e.json.choices.length === 0 && e.json.usage) usageChunks.push(e.json.usage);
    for (const c of e.json.choices ?? []) {
      text += c.delta?.content ?? "";
      if (c.finish_reason) finishes++;
    }
  }
  if (unparsable) return fail("bad_framing", `${unparsable} unparsable events`, text);
  if (ids.size > 1) return fail("bad_framing", `chunk ids differ: ${[...ids].join(",")}`, text);
  const last = events.at(-1);
  if (errors.length) {
    const e = errors[0];
    if (errors.length !== 1 || !last?.json?.error) return fail("bad_framing", "error event not the one last event", text);
    if (dones) return fail("bad_framing", "[DONE] with an error event", text);
    if (!e.message || !e.type || !("code" in e)) return fail("bad_framing", `in-band error shape ${JSON.stringify(e)}`, text);
    if (!spec.expected.startsWith(text)) return fail(textFault(text, spec.expected), "text before the in-band error is not a prefix", text);
    return { outcome: "inband", key: `${e.type}:${e.code}`, text, timeout: /^timeout_(idle|attempt)$/.test(String(e.code)) };
  }
  if (dones === 0) return fail("truncated", "stream ended without [DONE] or error", text);
  if (dones !== 1 || last.data !== "[DONE]") return fail("bad_framing", `${dones} [DONE], last event ${last?.data?.slice(0, 80)}`, text);
  if (text !== spec.expected) return fail(textFault(text, spec.expected), "stream text differs", text);
  if (finishes !== 1) return fail("bad_framing", `${finishes} finish chunks`, text);
  const finish = events.flatMap((e) => e.json?.choices ?? []).find((c) => c.finish_reason)?.finish_reason;
  if (finish !== "stop") return fail("truncated", `finish_reason ${finish}`, text);
  if (usageChunks.length > 1 || (!spec.includeUsage && usageChunks.length)) return fail("bad_framing", `${usageChunks.length} usage chunks (asked: ${spec.includeUsage})`, text);
  const u = usageChunks[0];
  return { outcome: "ok", text, usage: u ? { prompt: u.prompt_tokens, completion: u.completion_tokens } : null };
}

function judgeAnthropicStream(rec) {
  const { spec } = rec;
  const fail = (outcome, detail, text) => ({ outcome, detail, text });
  // Anthropic SSE: `event: <type>` + `data: <json>` whose `type` matches.
  const events = [];
  for (const block of rec.text.split(/\r?\n\r?\n/)) {
    if (!block.trim()) continue;
    const ev = /^event: (.*)$/m.exec(block)?.[1];
    const data = block
      .split(/\r?\n/)
      .filter((l) => l.startsWith("data:"))
      .map((l) => l.slice(5).replace(/^ /, ""))
      .join("\n");
    let json;
    try {
      json = JSON.parse(data);
    } catch {
      return fail("bad_framing", `unparsable event: ${block.slice(0, 120)}`);
    }
    if (ev !== json.type) return fail("bad_framing", `event ${ev} carries type ${json.type}`);
    events.push(json);
  }
  let text = "";
  const open = new Set();
  let starts = 0;
  let deltas = [];
  let stops = 0;
  let errors = [];
  for (const e of events) {
    if (e.type === "message_start") starts++;
    else if (e.type === "content_block_start") {
      if (open.has(e.index)) return fail("bad_framing", `block ${e.index} opened twice`, text);
      open.add(e.index);
      if (e.content_block?.type !== "text") return fail("bad_framing", `block type ${e.content_block?.type}`, text);
    } else if (e.type === "content_block_delta") {
      if (!open.has(e.index)) return fail("bad_framing", `delta for block ${e.index} that is not open`, text);
      if (e.delta?.type !== "text_delta") return fail("bad_framing", `delta type ${e.delta?.type}`, text);
      text += e.delta.text;
    } else if (e.type === "content_block_stop") {
      if (!open.delete(e.index)) return fail("bad_framing", `stop for block ${e.index} that is not open`, text);
    } else if (e.type === "message_delta") deltas.push(e);
    else if (e.type === "message_stop") stops++;
    else if (e.type === "error") errors.push(e);
    else if (e.type !== "ping") return fail("bad_framing", `unknown event ${e.type}`, text);
  }
  if (starts !== 1 || events[0]?.type !== "message_start") return fail("bad_framing", `${starts} message_start, first ${events[0]?.type}`, text);
  const last = events.at(-1);
  if (errors.length) {
    if (errors.length !== 1 || last.type !== "error") return fail("bad_framing", "error event not the one last event", text);
    if (stops) return fail("bad_framing", "message_stop with an error event", text);
    if (!errors[0].error?.type || !errors[0].error?.message) return fail("bad_framing", `error shape ${JSON.stringify(errors[0])}`, text);
    if (!spec.expected.startsWith(text)) return fail(textFault(text, spec.expected), "text before the error event is not a prefix", text);
    return { outcome: "inband", key: `anthropic:${errors[0].error.type}`, text, timeout: errors[0].error.type === "timeout_error" };
  }
  if (stops === 0) return fail("truncated", "stream ended without message_stop or error", text);
  if (stops !== 1 || last.type !== "message_stop") return fail("bad_framing", `${stops} message_stop, last ${last.type}`, text);
  if (text !== spec.expected) return fail(textFault(text, spec.expected), "stream text differs", text);
  if (open.size) return fail("bad_framing", `blocks left open: ${[...open]}`, text);
  if (deltas.length !== 1 || events.at(-2)?.type !== "message_delta") return fail("bad_framing", `${deltas.length} message_delta, before the stop: ${events.at(-2)?.type}`, text);
  if (deltas[0].delta?.stop_reason !== "end_turn") return fail("truncated", `stop_reason ${deltas[0].delta?.stop_reason}`, text);
  return { outcome: "ok", text, usage: { prompt: null, completion: deltas[0].usage?.output_tokens } };
}

// ---------------------------------------------------------------------------------------------
// Billing model (see the header)

/** Attempt outcomes that mean the gateway stopped waiting (a fake may still have written). */
const TIMEOUTS = new Set(["timeout_connect", "timeout_first_token", "timeout_idle", "timeout_attempt"]);

/**
 * The upstream requests of request `spec` (the fakes' ledger) paired with the attempts of its
 * log line, and what the gateway should bill for them (see the header). An attempt is
 * committed when the log says it did not fail (a stream's first content, a resume that
 * continued it, a non-streamed answer); whether it reported usage comes from the ledger.
 * The characters each committed response delivered come from the gateway's side: the prefill
 * it sent to the next resume, or (for the last one) the text the client got; only a response
 * followed by replays alone is taken to have delivered everything its fake wrote after the
 * text already delivered. `verdict` is the client-side judgement of the answer.
 * Returns {billed, estimated, committed, delivered, live, entries, problems, late (failed
 * attempts whose fake wrote anyway), unreached (attempts no fake saw), races (evidence that the
 * gateway's own deadline ended a response it had not fully read), inexact (such a response was
 * followed by replays only, so what it delivered, hence its estimate, is unknown)}.
 */
function billingOf(spec, line, scenarioOf, verdict) {
  const entries = ledger.byTag.get(spec.i) ?? [];
  const attempts = line.attempts ?? [];
  const P = Math.max(1, Math.ceil(spec.promptChars / 4));
  const billed = { prompt: 0, completion: 0 };
  const estimated = { prompt: 0, completion: 0 };
  const committed = [];
  const problems = [];
  const late = [];
  let unreached = 0;

  // 1. Pair attempts with upstream requests.
  const pairs = [];
  let k = 0;
  for (const a of attempts) {
    const e = entries[k];
    // A connection failure is a fake's `reset`, or an attempt that never reached a fake (a
    // kept-alive connection the fake closed as workerd reused it).
    if (a.outcome === "connect_error" && !(e?.scenario === scenarioOf(a.deployment) && e.fault === "reset")) {
      unreached++;
      continue;
    }
    if (!e || e.scenario !== scenarioOf(a.deployment)) {
      problems.push(`attempt on ${a.deployment} (${a.outcome}) has no upstream request (next: ${e?.scenario ?? "none"})`);
      break;
    }
    pairs.push({ a, e, ok: a.outcome === "ok" });
    k++;
  }
  if (k < entries.length && !problems.length) problems.push(`${entries.length - k} upstream requests not in the log line's attempts`);

  // 2. Walk them in order.
  const clientChars = typeof verdict.text === "string" ? charCount(verdict.text) : null;
  const success = verdict.outcome === "ok";
  const lastOk = pairs.findLastIndex((p) => p.ok);
  const races = []; // evidence that the gateway's own deadline ended a response it had not fully read
  let inexact = false;
  let delivered = 0;
  let live = null;
  for (const [idx, { a, e, ok }] of pairs.entries()) {
    const wrote = charCount(e.contentText);
    // What the fake wrote beyond the text already delivered (a replay regenerates it first).
    const beyond = live === null || e.prefill !== null ? wrote : Math.max(0, wrote - delivered);
    if (!ok) {
      // A failed attempt is never billed. If its fake wrote new content anyway, the gateway
      // had stopped waiting first (a timeout racing the write).
      if ((beyond > 0 && !inexact) || e.usage) {
        if (TIMEOUTS.has(a.outcome)) late.push(e);
        else problems.push(`attempt ${idx} on ${a.deployment} failed (${a.outcome}) but its fake wrote ${wrote} chars${e.usage ? " and usage" : ""}`);
      }
      continue;
    }
    const last = idx === lastOk;
    // Characters this response delivered to the client: known from the client's text (the
    // last one) or from the prefill the gateway sent next; after replays only, assumed.
    let fresh;
    let known = true;
    const nextPrefill = pairs.slice(idx + 1).find((p) => p.e.prefill !== null)?.e;
    if (last && clientChars !== null) fresh = clientChars - delivered;
    else if (nextPrefill) fresh = charCount(nextPrefill.prefill) - delivered;
    else {
      fresh = beyond;
      known = false;
    }
    // (After an inexact response the text delivered so far is unknown: nothing to check.)
    if (fresh <= 0 && !inexact) problems.push(`attempt ${idx} on ${a.deployment} committed without delivering new text (fault ${e.fault})`);
    if (fresh > beyond && !inexact) problems.push(`attempt ${idx} on ${a.deployment} delivered ${fresh} chars, its fake wrote only ${beyond} new`);
    // A response ended by the gateway (a resume followed, or the answer ended in an error) although
    // its fake completed it, or one that delivered less than its fake wrote: only the gateway's
    // idle/attempt deadline, firing on a starved machine with data still unread, explains it.
    const broken = !(last && success);
    if (broken && e.finished) {
      races.push(`attempt ${idx} (${e.kind}, fault ${e.fault}) ended by the gateway although its fake completed it`);
      if (!known) inexact = true;
    } else if (known && fresh < beyond && !inexact) {
      if (last && success) problems.push(`the answering response (attempt ${idx}) delivered ${fresh} of the ${beyond} new chars its fake wrote`);
      else if (last && !verdict.timeout) problems.push(`the last committed response (attempt ${idx}, fault ${e.fault}) delivered ${fresh} of the ${beyond} new chars its fake wrote, and the answer ended ${verdict.outcome}${verdict.key ? ` (${verdict.key})` : ""}`);
      else races.push(`attempt ${idx} (${e.kind}, fault ${e.fault}) delivered ${fresh} of ${beyond} chars`);
    }
    // Usage counts when the gateway read it: only the answering response of a success can have
    // been read (a broken one never got to its usage report), and the log says whether it was.
    const received = last && success && e.usage !== null && !line.usage?.estimated;
    if (last && success && e.usage && line.usage?.estimated) races.push(`attempt ${idx} (${e.kind}) usage written but the answer was finalised without it`);
    committed.push(e);
    if (received) {
      billed.prompt += e.usage.prompt;
      billed.completion += e.usage.completion;
    } else {
      const c = Math.ceil(fresh / 4);
      billed.prompt += P;
      billed.completion += c;
      estimated.prompt += P;
      estimated.completion += c;
    }
    delivered += fresh;
    live = e;
  }
  return { billed, estimated, committed, delivered, live, entries, problems, late, unreached, races, inexact };
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
    const m = billingOf(spec, line, table.scenario, j);
    for (const e of m.committed) usedEntries.add(e);
    for (const e of m.late) lateEntries.add(e);
    unreached += m.unreached;
    const got = line.usage ? { prompt: line.usage.prompt_tokens, completion: line.usage.completion_tokens } : { prompt: 0, completion: 0 };
    const cost = line.cost_usd == null ? 0 : Math.round(Number(line.cost_usd) * 1e9);
    if (line.usage && line.deployment) {
      const d = dep(line.deployment);
      d.input_tokens += got.prompt;
      d.output_tokens += got.completion;
      d.cost_nanos += cost;
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
    if (cost !== PRICE_IN * got.prompt + PRICE_OUT * got.completion) {
      billingErrors.push({ ...where, why: "U1: cost is not 150·input + 600·output nano-USD", cost, usage: got });
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
