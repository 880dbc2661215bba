// Chaos fake providers for the fault soak (miniflare-tests/soak.test.mjs).
//
// One node:http server per wire format (`kind`: "openai", "anthropic", "gemini") on
// 127.0.0.1:<free port>, speaking the same wire formats as helpers/fake-openai.mjs,
// fake-anthropic.mjs and fake-gemini.mjs (whose error fixtures it reuses). Unlike those, it is
// not scripted step by step: it answers any request and injects faults at random, reproducibly.
//
// - The answer is a function of the request: the client puts a tag `soak#<n>` in its prompt and
//   every deployment answers `answerFor(seed, n)`, the same text everywhere (like the same
//   weights behind several providers), so a fallback, a prefill continuation or a
//   replay-and-verify resume can all be checked against one expected text.
// - A prefill (the request's last message is an assistant turn whose text is a prefix of the
//   answer) is answered with the rest of the answer only.
// - Faults are decided per upstream request by a PRNG seeded from (seed, scenario, tag, k), k =
//   how many requests with this tag this scenario saw before. Concurrency does not change any
//   decision: the attempts of one client request are sequential (no hedging in the soak).
// - Every upstream request is appended to a shared `ledger` (createLedger()) with what was
//   decided and what was actually written: content characters and words sent, whether the
//   finish marker and the usage report went out (and the usage numbers), whether the gateway
//   hung up first. The soak reconciles the gateway's billing against it.
//
// Fault kinds (`FAULTS`; each applies to some of kind × stream):
//   before any header: r429 (Retry-After 1 s), r429_long (Retry-After 30 s, beyond
//     max_retry_after_ms), r500, r503 (Anthropic: 529 overloaded), reset, hang,
//     slow_headers (benign: 50–200 ms, then a normal answer)
//   streams: stall_first (headers and preamble, then silence), slow_first_ok (benign: first
//     token after 100–300 ms), slow_first_timeout (first token after 2.5 s), cut / stall /
//     malformed / inband_error after K content chunks (K = 0 is before the commit), close_early
//     (Gemini: the response ends normally after K chunks, no finishReason), cut_after_finish
//     (finish marker written, then the socket is destroyed: OpenAI before the usage chunk,
//     Anthropic after message_delta before message_stop, Gemini after the last chunk),
//     no_terminator (benign: the whole answer but no [DONE] / message_stop, connection left open)
//   non-streams: truncated_body (half the JSON, then the socket is destroyed), malformed_body
// Independently, 20 % of streamed answers are written in small byte pieces (`split`, benign).

import { createFakeServer } from "./fake-server.mjs";
import { FIXTURE_ERRORS, words } from "./fake-openai.mjs";
import { ANTHROPIC_ERRORS } from "./fake-anthropic.mjs";
import { GEMINI_ERRORS } from "./fake-gemini.mjs";

// ---------------------------------------------------------------------------------------------
// Seeded randomness

/** 32-bit FNV-1a over the parts, then a murmur3 finaliser. */
export function hashSeed(...parts) {
  let h = 0x811c9dc5;
  const s = parts.map(String).join("\u241f");
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** mulberry32: a small, fast, seedable PRNG returning floats in [0, 1). */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A PRNG seeded from any parts (seed, names, numbers). */
export const rngFor = (...parts) => mulberry32(hashSeed(...parts));
/** Integer in [lo, hi]. */
export const randInt = (rng, lo, hi) => lo + Math.floor(rng() * (hi - lo + 1));
/** One key of `weights` ({name: weight}), drawn by weight. */
export function weighted(rng, weights) {
  const entries = Object.entries(weights).filter(([, w]) => w > 0);
  const total = entries.reduce((s, [, w]) => s + w, 0);
  let x = rng() * total;
  for (const [k, w] of entries) {
    if ((x -= w) < 0) return k;
  }
  return entries.at(-1)[0];
}

// ---------------------------------------------------------------------------------------------
// Answers

// Multi-byte characters (2, 3 and 4 bytes in UTF-8), quotes and backslashes, so split writes
// and JSON escaping are exercised; no whitespace inside a word.
const VOCAB = [
  "the", "gateway", "answers", "every", "request", "once", "stream", "token", "résumé", "naïve",
  "café", "Zürich", "漢字", "データ", "ключ", "🚀", "👩‍💻", "\"quoted\"", "back\\slash", "a/b",
  "x<y>z", "100%", "{brace}", "[bracket]", "done.", "fallback", "resume", "chunk", "déjà-vu", "über",
];

/** The one answer every deployment gives to the request tagged `tag`. Starts and ends with a word. */
export function answerFor(seed, tag) {
  const rng = rngFor(seed, "answer", tag);
  const n = randInt(rng, 3, 30);
  let s = "";
  for (let i = 0; i < n; i++) {
    if (i > 0) s += rng() < 0.1 ? "\n" : rng() < 0.05 ? "  " : " ";
    s += VOCAB[Math.floor(rng() * VOCAB.length)];
  }
  return s;
}

const TAG_RE = /soak#(\d+)/;
/** Unicode scalar values, as Rust's `chars().count()`. */
export const charCount = (s) => [...s].length;

// ---------------------------------------------------------------------------------------------
// Faults

/** Fault kinds, the formats and modes they apply to, and whether they are benign. */
export const FAULTS = {
  r429: { weight: 3, applies: () => true },
  r429_long: { weight: 2, applies: () => true },
  r500: { weight: 4, applies: () => true },
  r503: { weight: 4, applies: () => true },
  reset: { weight: 4, applies: () => true },
  hang: { weight: 1, applies: () => true },
  slow_headers: { weight: 3, benign: true, applies: () => true },
  stall_first: { weight: 2, applies: (k, stream) => stream },
  slow_first_ok: { weight: 3, benign: true, applies: (k, stream) => stream },
  slow_first_timeout: { weight: 1, applies: (k, stream) => stream },
  cut: { weight: 5, applies: (k, stream) => stream },
  stall: { weight: 3, applies: (k, stream) => stream },
  malformed: { weight: 4, applies: (k, stream) => stream },
  inband_error: { weight: 4, applies: (k, stream) => stream },
  close_early: { weight: 3, applies: (k, stream) => stream && k === "gemini" },
  cut_after_finish: { weight: 2, applies: (k, stream) => stream },
  no_terminator: { weight: 2, benign: true, applies: (k, stream) => stream },
  truncated_body: { weight: 3, applies: (k, stream) => !stream },
  malformed_body: { weight: 3, applies: (k, stream) => !stream },
};

/** What the fake does with one upstream request: {fault, k?, delayMs?, split?}. */
export function decide({ seed, scenario, tag, n, kind, stream, faultRate, words: nWords }) {
  const rng = rngFor(seed, "fault", scenario, tag, n);
  const split = stream && rng() < 0.2 ? randInt(rng, 3, 40) : 0;
  if (rng() >= faultRate) return { fault: "none", split };
  const weights = {};
  for (const [name, f] of Object.entries(FAULTS)) if (f.applies(kind, stream)) weights[name] = f.weight;
  const fault = weighted(rng, weights);
  const d = { fault, split };
  if (["cut", "malformed", "inband_error", "close_early"].includes(fault)) d.k = randInt(rng, 0, Math.max(0, nWords - 1));
  if (fault === "stall") d.k = nWords > 1 ? randInt(rng, 1, nWords - 1) : 0;
  if (fault === "slow_headers") d.delayMs = randInt(rng, 50, 200);
  if (fault === "slow_first_ok") d.delayMs = randInt(rng, 100, 300);
  if (fault === "slow_first_timeout") d.delayMs = 2500;
  return d;
}

/** The shared record of every upstream request, in arrival order across all chaos fakes. */
export function createLedger() {
  return { entries: [], byTag: new Map() };
}

// ---------------------------------------------------------------------------------------------
// Wire formats

function promptText(kind, body) {
  if (kind === "gemini") return JSON.stringify(body?.contents ?? "") + JSON.stringify(body?.systemInstruction ?? "");
  return JSON.stringify(body?.messages ?? "") + JSON.stringify(body?.system ?? "");
}

/** Text of a trailing assistant turn (a prefill), or null. */
function prefillOf(kind, body) {
  if (kind === "gemini") {
    const last = body?.contents?.at?.(-1);
    if (last?.role !== "model") return null;
    return (last.parts ?? []).map((p) => p.text ?? "").join("");
  }
  const last = Array.isArray(body?.messages) ? body.messages.at(-1) : undefined;
  if (!last || last.role !== "assistant") return null;
  if (typeof last.content === "string") return last.content;
  if (Array.isArray(last.content)) return last.content.map((p) => (typeof p === "string" ? p : p?.text ?? "")).join("");
  return null;
}

function errorAnswer(kind, fault, stream) {
  // [status, headers, body]
  if (kind === "openai") {
    if (fault === "r429") return [429, { "retry-after": "1", "x-ratelimit-reset-requests": "1s" }, FIXTURE_ERRORS.rate_limited];
    if (fault === "r429_long") return [429, { "retry-after": "30" }, FIXTURE_ERRORS.rate_limited];
    if (fault === "r500") return [500, {}, FIXTURE_ERRORS.server_error];
    return [503, {}, FIXTURE_ERRORS.overloaded];
  }
  if (kind === "anthropic") {
    if (fault === "r429") return [429, { "retry-after": "1", "x-should-retry": "true" }, ANTHROPIC_ERRORS.rate_limit_error];
    if (fault === "r429_long") return [429, { "retry-after": "30", "x-should-retry": "true" }, ANTHROPIC_ERRORS.rate_limit_error];
    if (fault === "r500") return [500, { "x-should-retry": "true" }, ANTHROPIC_ERRORS.api_error];
    return [529, { "x-should-retry": "true" }, ANTHROPIC_ERRORS.overloaded_error];
  }
  // Gemini: RetryInfo in the body is its retry hint; a failing alt=sse stream answers with the
  // SSE content type and a plain JSON body.
  const ct = stream ? "text/event-stream" : "application/json; charset=UTF-8";
  if (fault === "r429" || fault === "r429_long") {
    const body = structuredClone(GEMINI_ERRORS.resource_exhausted);
    body.error.details.push({ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: fault === "r429" ? "1s" : "30s" });
    return [429, { "content-type": ct }, body];
  }
  if (fault === "r500") return [500, { "content-type": ct }, GEMINI_ERRORS.internal];
  return [503, { "content-type": ct }, GEMINI_ERRORS.unavailable];
}

function usageFor(kind, body, completion) {
  const prompt = 5 + Math.ceil(promptText(kind, body).length / 6);
  return { prompt, completion };
}

// ---------------------------------------------------------------------------------------------
// The server

/**
 * @param {object} o
 * @param {"openai"|"anthropic"|"gemini"} o.kind
 * @param {number} o.seed
 * @param {number} o.faultRate  share of upstream requests that get a fault (benign kinds included)
 * @param {object} o.ledger     from createLedger(), shared by all fakes of a run
 */
export async function startChaosFake({ kind, seed, faultRate, ledger, host = "127.0.0.1" }) {
  const seen = new Map(); // `${scenario} ${tag}` -> count
  let idSeq = 0;

  const srv = createFakeServer("fake-chaos", (req, res, rawBody) => handle(req, res, rawBody));
  const sleep = srv.sleep;

  function route(req) {
    const [p, query = ""] = req.url.split("?", 2);
    if (kind === "openai") {
      const m = /^\/s\/([^/]+)\/v1\/chat\/completions$/.exec(p);
      return m && { scenario: decodeURIComponent(m[1]) };
    }
    if (kind === "anthropic") {
      const m = /^\/s\/([^/]+)\/v1\/messages$/.exec(p);
      return m && { scenario: decodeURIComponent(m[1]) };
    }
    const m = /^\/s\/([^/]+)\/v1beta\/models\/([^/]+?)(?::|%3A)(generateContent|streamGenerateContent)$/i.exec(p);
    return m && { scenario: decodeURIComponent(m[1]), model: decodeURIComponent(m[2]), geminiStream: m[3] === "streamGenerateContent", query };
  }

  async function handle(req, res, rawBody) {
    const r = route(req);
    if (!r || req.method !== "POST") {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: `fake-chaos(${kind}): unknown path ${req.method} ${req.url}`, type: "not_found" } }));
      return;
    }
    let body;
    try {
      body = JSON.parse(rawBody);
    } catch {
      body = undefined;
    }
    const stream = kind === "gemini" ? r.geminiStream : body?.stream === true;
    const tagMatch = TAG_RE.exec(promptText(kind, body));
    const tag = tagMatch ? Number(tagMatch[1]) : null;
    const full = tag === null ? `untagged answer from ${r.scenario}` : answerFor(seed, tag);
    const prefill = prefillOf(kind, body);
    const continues = prefill !== null && full.startsWith(prefill);
    const text = continues ? full.slice(prefill.length) : full;
    const tokens = text === "" ? [] : words(text);
    const key = `${r.scenario} ${tag}`;
    const n = seen.get(key) ?? 0;
    seen.set(key, n + 1);
    const d =
      prefill !== null && !continues
        ? { fault: "bad_prefill", split: 0 } // never expected: the soak flags it
        : decide({ seed, scenario: r.scenario, tag, n, kind, stream, faultRate, words: tokens.length });
    const usage = usageFor(kind, body, tokens.length);
    const entry = {
      seq: ledger.entries.length,
      kind,
      scenario: r.scenario,
      tag,
      n,
      stream,
      prefill: continues ? prefill : null,
      prefixFlag: kind === "openai" && body?.messages?.at?.(-1)?.prefix === true,
      fault: d.fault,
      k: d.k,
      split: d.split,
      words: tokens.length,
      contentText: "", // content written (continuation only, for a prefill)
      contentWords: 0,
      finished: false, // finish marker written (finish_reason / message_delta / last Gemini chunk / whole body)
      usage: null, // {prompt, completion} once the usage report was written
      aborted: false, // the gateway hung up before the response ended
      at: Date.now(),
    };
    ledger.entries.push(entry);
    if (tag !== null) {
      const list = ledger.byTag.get(tag) ?? [];
      list.push(entry);
      ledger.byTag.set(tag, list);
    }
    res.on("close", () => {
      if (!res.writableEnded && !srv.closed) entry.aborted = true;
    });
    const alive = () => !(srv.closed || res.destroyed || res.writableEnded);

    if (d.fault === "bad_prefill") {
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: "fake-chaos: prefill is not a prefix of the answer", type: "invalid_request_error" } }));
      return;
    }
    if (d.fault === "hang") return; // the gateway's timeout closes it (or close())
    if (d.fault === "slow_headers") await sleep(d.delayMs);
    if (!alive()) return;
    if (d.fault === "reset") {
      req.socket.destroy();
      return;
    }
    if (["r429", "r429_long", "r500", "r503"].includes(d.fault)) {
      const [status, headers, errBody] = errorAnswer(kind, d.fault, stream);
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify(errBody));
      return;
    }

    const id = `${kind}-${++idSeq}`;
    const model = kind === "gemini" ? `gemini-chaos-${r.scenario}` : `${kind}-chaos-${r.scenario}`;

    // ------------------------------------------------------------------ non-streaming
    if (!stream) {
      const payload = JSON.stringify(nonStreamBody(kind, id, model, text, usage));
      if (d.fault === "malformed_body") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(payload.slice(0, Math.floor(payload.length / 2)) + "#not json");
        return;
      }
      if (d.fault === "truncated_body") {
        res.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(payload)) });
        res.write(payload.slice(0, Math.floor(payload.length / 2)));
        await sleep(20);
        req.socket.destroy();
        return;
      }
      if (!alive()) return;
      res.writeHead(200, { "content-type": kind === "gemini" ? "application/json; charset=UTF-8" : "application/json" });
      res.end(payload);
      entry.contentText = text;
      entry.contentWords = tokens.length;
      entry.finished = true;
      entry.usage = usage;
      return;
    }

    // ------------------------------------------------------------------ streaming
    const write = async (s) => {
      if (!alive()) return false;
      if (!d.split) {
        res.write(s);
        return true;
      }
      const buf = Buffer.from(s, "utf8"); // pieces may split a multi-byte character
      for (let i = 0; i < buf.length; i += d.split) {
        if (!alive()) return false;
        res.write(buf.subarray(i, i + d.split));
        if (i + d.split < buf.length) await new Promise((r2) => setImmediate(r2));
      }
      return true;
    };
    const enc = encoder(kind, id, model, usage);
    res.writeHead(200, {
      "content-type": kind === "gemini" ? "text/event-stream" : "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
    });
    res.flushHeaders();
    if (!(await write(enc.preamble()))) return;
    if (d.fault === "stall_first") return; // silence until the gateway gives up
    if (d.fault === "slow_first_ok" || d.fault === "slow_first_timeout") await sleep(d.delayMs);

    const limit = d.k !== undefined ? Math.min(d.k, tokens.length) : tokens.length;
    for (let i = 0; i < limit; i++) {
      const last = i === tokens.length - 1;
      // Gemini's last text chunk carries finishReason and the full usage.
      if (!(await write(enc.content(tokens[i], last)))) return;
      entry.contentText += tokens[i];
      entry.contentWords++;
      if (last && kind === "gemini") {
        entry.finished = true;
        entry.usage = usage;
      }
    }
    const brokeEarly = d.k !== undefined && d.k < tokens.length;
    if (brokeEarly || (d.fault === "stall" && tokens.length <= 1)) {
      if (d.fault === "cut") {
        await sleep(20);
        req.socket.destroy();
      } else if (d.fault === "malformed") {
        await write(enc.malformed());
        await sleep(20);
        if (alive()) res.end();
      } else if (d.fault === "inband_error") {
        await write(enc.inbandError());
        if (alive()) res.end();
      } else if (d.fault === "close_early") {
        if (alive()) res.end();
      } // stall: silence until the gateway gives up
      return;
    }
    if (tokens.length === 0 && kind === "gemini") {
      // Nothing to continue (cannot happen for a prefix shorter than the answer).
      if (!(await write(enc.content("", true)))) return;
      entry.finished = true;
      entry.usage = usage;
    }
    // The end of the answer: finish marker, usage, terminator, per format.
    if (kind === "openai") {
      if (!(await write(enc.finish()))) return;
      entry.finished = true;
      if (d.fault === "cut_after_finish") {
        await sleep(20);
        req.socket.destroy();
        return;
      }
      if (body?.stream_options?.include_usage === true) {
        if (!(await write(enc.usage()))) return;
        entry.usage = usage;
      }
      if (d.fault === "no_terminator") return; // connection left open
      if (!(await write("data: [DONE]\n\n"))) return;
    } else if (kind === "anthropic") {
      if (!(await write(enc.finish()))) return; // content_block_stop + message_delta (with usage)
      entry.finished = true;
      entry.usage = usage;
      if (d.fault === "cut_after_finish") {
        await sleep(20);
        req.socket.destroy();
        return;
      }
      if (d.fault === "no_terminator") return;
      if (!(await write(enc.stop()))) return;
    } else {
      if (d.fault === "cut_after_finish") {
        await sleep(20);
        req.socket.destroy();
        return;
      }
      if (d.fault === "no_terminator") return;
    }
    if (alive()) res.end();
  }

  const { port, origin } = await srv.listen(host);
  return {
    kind,
    port,
    origin,
    baseUrl: (scenario) => `${origin}/s/${encodeURIComponent(scenario)}/${kind === "gemini" ? "v1beta" : "v1"}`,
    /** Connections currently open to this fake. */
    openSockets: srv.openSockets,
    close: () => srv.close(),
  };
}

function nonStreamBody(kind, id, model, text, usage) {
  if (kind === "openai") {
    return {
      id,
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model,
      choices: [{ index: 0, message: { role: "assistant", content: text, refusal: null, annotations: [] }, logprobs: null, finish_reason: "stop" }],
      usage: { prompt_tokens: usage.prompt, completion_tokens: usage.completion, total_tokens: usage.prompt + usage.completion },
      system_fingerprint: "fp_chaos",
    };
  }
  if (kind === "anthropic") {
    return {
      model,
      id,
      type: "message",
      role: "assistant",
      content: text === "" ? [] : [{ type: "text", text }],
      stop_reason: "end_turn",
      stop_sequence: null,
      usage: { input_tokens: usage.prompt, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: usage.completion, service_tier: "standard" },
    };
  }
  return {
    candidates: [{ content: { parts: [{ text }], role: "model" }, finishReason: "STOP", avgLogprobs: -0.01 }],
    usageMetadata: geminiUsage(usage, true),
    modelVersion: model,
    responseId: id,
  };
}

function geminiUsage(usage, full) {
  const details = [{ modality: "TEXT", tokenCount: usage.prompt }];
  if (!full) return { promptTokenCount: usage.prompt, totalTokenCount: usage.prompt, promptTokensDetails: details };
  return {
    promptTokenCount: usage.prompt,
    candidatesTokenCount: usage.completion,
    totalTokenCount: usage.prompt + usage.completion,
    promptTokensDetails: details,
    candidatesTokensDetails: [{ modality: "TEXT", tokenCount: usage.completion }],
  };
}

/** Stream event encoders per wire format. */
function encoder(kind, id, model, usage) {
  const created = Math.floor(Date.now() / 1000);
  if (kind === "openai") {
    const chunk = (choices, extra = {}) =>
      `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, system_fingerprint: "fp_chaos", choices, usage: null, ...extra })}\n\n`;
    return {
      preamble: () => chunk([{ index: 0, delta: { role: "assistant", content: "", refusal: null }, logprobs: null, finish_reason: null }]),
      content: (t) => chunk([{ index: 0, delta: { content: t }, logprobs: null, finish_reason: null }]),
      finish: () => chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }]),
      usage: () =>
        chunk([], { usage: { prompt_tokens: usage.prompt, completion_tokens: usage.completion, total_tokens: usage.prompt + usage.completion } }),
      malformed: () => "data: {not json\n\n",
      inbandError: () => `data: ${JSON.stringify({ error: { message: "fake-chaos in-band failure", type: "server_error", param: null, code: null } })}\n\n`,
    };
  }
  if (kind === "anthropic") {
    const ev = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    return {
      preamble: () =>
        ev("message_start", {
          message: { id, type: "message", role: "assistant", model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: usage.prompt, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 } },
        }) +
        ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } }) +
        ev("ping", {}),
      content: (t) => ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: t } }),
      finish: () =>
        ev("content_block_stop", { index: 0 }) +
        ev("message_delta", { delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: usage.completion } }),
      stop: () => ev("message_stop", {}),
      malformed: () => "event: content_block_delta\ndata: {not json\n\n",
      inbandError: () => `event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n`,
    };
  }
  const data = (obj) => `data: ${JSON.stringify(obj)}\r\n\r\n`;
  return {
    preamble: () => "",
    content: (t, last) =>
      data({
        candidates: [{ content: { parts: [{ text: t }], role: "model" }, ...(last ? { finishReason: "STOP" } : {}) }],
        usageMetadata: geminiUsage(usage, last),
        modelVersion: model,
      }),
    malformed: () => "data: {not json\r\n\r\n",
    inbandError: () => data({ error: { code: 503, message: "The model is overloaded. Please try again later.", status: "UNAVAILABLE" } }),
  };
}
