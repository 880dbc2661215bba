// Fault-injecting fake OpenAI-compatible provider for the workerd integration tests.
//
// A real node:http server on 127.0.0.1:<free port>. Every deployment of a test routing table
// points at `fake.baseUrl(scenario)` = http://127.0.0.1:PORT/s/<scenario>/v1, so the URL path
// selects the scenario. `fake.script(scenario, steps)` decides how the i-th request to that
// scenario is answered (the last step repeats).
//
// Step shapes:
//   { ok: "answer text", model?, id?, usage?, chunkDelayMs?, delayMs?, headers?,
//     firstTokenDelayMs?,        // stream: headers at once, first content chunk after N ms
//                                // non-stream: the whole answer after N ms
//     cutAfterChunks?,           // stream: N content chunks, then the socket is destroyed
//     stallAfterChunks?,         // stream: N content chunks, then silence until close()
//     malformedAfterChunks?,     // stream: N content chunks, then `data: {not json`, then end
//     errorAfterChunks?,         // stream: N content chunks, then an in-band `data: {"error":...}`, then end
//     noDone?: true | "close",   // stream: full stream (finish + usage if asked) without [DONE];
//                                //   true = connection stays open, "close" = response ends
//     noUsage?: true,            // stream: ignore stream_options.include_usage (no usage chunk)
//     inBandError?: {...},       // with errorAfterChunks: the `error` object sent in-band
//                                //   (default a server_error; e.g. FIXTURE_ERRORS.overloaded.error)
//     pieces?: ["Hel", "lo "],   // stream: explicit content chunks (joined = ok) instead of words
//     honourMaxTokens?: true,    // as a real model: at most the request's max_completion_tokens
//                                //   (else max_tokens) content chunks, then finish_reason "length"
//     continuePrefill?: true,    // when the request's last message is an assistant message (a
//                                //   prefill, with or without "prefix": true) whose text is a
//                                //   prefix of `ok`, answer only the rest: ok.slice(prefill.length);
//                                //   the fault options then count chunks of that rest
//   }
//   { status: 429, headers?: {...}, body?: object | string, delayMs? }   any HTTP error answer
//   { reset: true, delayMs? }    destroy the socket before sending any header
//   { hang: true }               never answer (until close())
//
// `fake.platformLimit(n)` stands in for the Workers platform's per-request subrequest limit:
// after n requests in all (every scenario, since the last reset()), each further request is
// refused by destroying its socket before anything is read or recorded, which is how a
// Worker's fetch fails past the limit (it throws). `fake.refused()` counts those.
//
// Every content chunk is one word (split before whitespace, like the real API: "Hello", " world").
// The "role" chunk (delta {role:"assistant", content:""}) is not a content chunk and is sent
// together with the headers.

import { createFakeServer, createScriptRegistry } from "./fake-server.mjs";

export const FIXTURE_ERRORS = {
  rate_limited: {
    error: {
      message:
        "Rate limit reached for gpt-4o-mini in organization org-fake on tokens per min. Limit: 10000 / min.",
      type: "requests",
      param: null,
      code: "rate_limit_exceeded",
    },
  },
  server_error: {
    error: {
      message: "The server had an error processing your request.",
      type: "server_error",
      param: null,
      code: null,
    },
  },
  overloaded: {
    error: {
      message: "Our servers are currently overloaded. Please try again later.",
      type: "service_unavailable_error",
      param: null,
      code: "server_is_overloaded",
    },
  },
  context_length_exceeded: {
    error: {
      message:
        "This model's maximum context length is 16385 tokens. However, your messages resulted in 20000 tokens. Please reduce the length of the messages.",
      type: "invalid_request_error",
      param: "messages",
      code: "context_length_exceeded",
    },
  },
  content_policy: {
    error: {
      message: "Your request was rejected as a result of our safety system (fake-policy-42).",
      type: "invalid_request_error",
      param: null,
      code: "content_policy_violation",
    },
  },
  invalid_request: {
    error: {
      message: "Invalid value for 'temperature': must be between 0 and 2 (fake-invalid-7).",
      type: "invalid_request_error",
      param: "temperature",
      code: "invalid_value",
    },
  },
  auth_error: {
    error: {
      message: "Incorrect API key provided: sk-fa**********. You can find your API key at https://platform.openai.com/account/api-keys.",
      type: "invalid_request_error",
      param: null,
      code: "invalid_api_key",
    },
  },
  not_found: {
    error: {
      message: "The model `nope` does not exist or you do not have access to it.",
      type: "invalid_request_error",
      param: null,
      code: "model_not_found",
    },
  },
};

/** Common steps. */
export const steps = {
  ok: (text, extra = {}) => ({ ok: text, ...extra }),
  r429: (retryAfter = "1", extra = {}) => ({
    status: 429,
    headers: retryAfter == null ? {} : { "retry-after": String(retryAfter) },
    body: FIXTURE_ERRORS.rate_limited,
    ...extra,
  }),
  r500: () => ({ status: 500, body: FIXTURE_ERRORS.server_error }),
  r503: () => ({ status: 503, body: FIXTURE_ERRORS.overloaded }),
  r401: () => ({ status: 401, body: FIXTURE_ERRORS.auth_error }),
  r404: () => ({ status: 404, body: FIXTURE_ERRORS.not_found }),
  contextLength: () => ({ status: 400, body: FIXTURE_ERRORS.context_length_exceeded }),
  contentPolicy: () => ({ status: 400, body: FIXTURE_ERRORS.content_policy }),
  invalid: () => ({ status: 400, body: FIXTURE_ERRORS.invalid_request }),
  reset: () => ({ reset: true }),
  hang: () => ({ hang: true }),
};

/** Split text into OpenAI-like word tokens whose concatenation is the text. */
export function words(text) {
  const out = text.match(/\s*\S+/g) ?? [];
  if (out.length === 0) return [text];
  const trailing = text.slice(out.join("").length);
  if (trailing) out[out.length - 1] += trailing;
  return out;
}

/**
 * The text of a trailing assistant message (a prefill), or null. Content may be a string or an
 * array of text parts.
 */
export function prefillText(body) {
  const last = Array.isArray(body?.messages) ? body.messages.at(-1) : undefined;
  if (!last || last.role !== "assistant") return null;
  if (typeof last.content === "string") return last.content;
  if (Array.isArray(last.content)) return last.content.map((p) => (typeof p === "string" ? p : p?.text ?? "")).join("");
  return null;
}

function countTokens(messages) {
  if (!Array.isArray(messages)) return 1;
  let n = 0;
  for (const m of messages) {
    const c = typeof m?.content === "string" ? m.content : JSON.stringify(m?.content ?? "");
    n += 4 + Math.ceil(c.length / 4);
  }
  return n;
}

export async function startFake({ host = "127.0.0.1" } = {}) {
  let idSeq = 0;
  let platform = { limit: Infinity, seen: 0, refused: 0 };

  const srv = createFakeServer("fake-openai", (req, res, rawBody) => handle(req, res, rawBody));
  const sleep = srv.sleep;
  const registry = createScriptRegistry(srv); // entries: {method,url,headers,body,rawBody,at,aborted}

  async function handle(req, res, rawBody) {
    registry.track(res);
    const m = /^\/s\/([^/]+)\/v1\/chat\/completions\/?(?:\?.*)?$/.exec(req.url);
    if (!m) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: `fake: unknown path ${req.method} ${req.url}`, type: "invalid_request_error", param: null, code: "unknown_url" } }));
      return;
    }
    if (req.method !== "POST") {
      res.writeHead(405, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: "fake: method not allowed", type: "invalid_request_error", param: null, code: null } }));
      return;
    }
    if (++platform.seen > platform.limit) {
      platform.refused++;
      req.socket.destroy();
      return;
    }
    const scenario = decodeURIComponent(m[1]);
    let body;
    try {
      body = JSON.parse(rawBody);
    } catch {
      body = undefined;
    }
    const entry = { method: req.method, url: req.url, headers: { ...req.headers }, body, rawBody, at: Date.now(), aborted: false };
    const { step } = registry.record(scenario, entry);
    // The gateway hung up before the answer was complete (a cancelled hedge, an aborted stream).
    res.on("close", () => {
      if (!res.writableEnded && !srv.closed) entry.aborted = true;
    });

    if (step.hang) return; // never answer; close() destroys the socket
    if (step.delayMs) await sleep(step.delayMs);
    if (srv.closed) return;
    if (step.reset) {
      req.socket.destroy();
      return;
    }
    if (step.status !== undefined) {
      const isString = typeof step.body === "string";
      const payload = step.body === undefined ? "" : isString ? step.body : JSON.stringify(step.body);
      const headers = {
        "content-type": isString ? "text/plain" : "application/json",
        ...(step.headers ?? {}),
      };
      res.writeHead(step.status, headers);
      res.end(payload);
      return;
    }
    if (step.ok === undefined) throw new Error(`fake: step has no known shape: ${JSON.stringify(step)}`);

    const model = step.model ?? `fake-${scenario}`;
    const id = step.id ?? `chatcmpl-fake${++idSeq}`;
    const created = Math.floor(Date.now() / 1000);
    const prefill = step.continuePrefill ? prefillText(body) : null;
    const continues = prefill !== null && step.ok.startsWith(prefill);
    let answerText = continues ? step.ok.slice(prefill.length) : step.ok;
    let tokens = continues ? words(answerText) : step.pieces ? [...step.pieces] : words(step.ok);
    let finishReason = "stop";
    const maxTokens = body?.max_completion_tokens ?? body?.max_tokens;
    if (step.honourMaxTokens && Number.isInteger(maxTokens) && tokens.length > maxTokens) {
      tokens = tokens.slice(0, maxTokens);
      answerText = tokens.join("");
      finishReason = "length";
    }
    const usage = step.usage ?? {
      prompt_tokens: countTokens(body?.messages),
      completion_tokens: tokens.length,
      total_tokens: countTokens(body?.messages) + tokens.length,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
    };

    if (body?.stream !== true) {
      if (step.firstTokenDelayMs) await sleep(step.firstTokenDelayMs);
      if (srv.closed) return;
      const answer = {
        id,
        object: "chat.completion",
        created,
        model,
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: answerText, refusal: null, annotations: [] },
            logprobs: null,
            finish_reason: finishReason,
          },
        ],
        usage,
        service_tier: "default",
        system_fingerprint: "fp_fake",
      };
      res.writeHead(200, { "content-type": "application/json", ...(step.headers ?? {}) });
      res.end(JSON.stringify(answer));
      return;
    }

    // ---- streaming ----
    const includeUsage = body?.stream_options?.include_usage === true && !step.noUsage;
    const chunk = (choices, extra = {}) =>
      `data: ${JSON.stringify({
        id,
        object: "chat.completion.chunk",
        created,
        model,
        service_tier: "default",
        system_fingerprint: "fp_fake",
        choices,
        ...(includeUsage ? { usage: null } : {}),
        ...extra,
      })}\n\n`;
    const write = (s) => {
      if (srv.closed || res.destroyed || res.writableEnded) return false;
      res.write(s);
      return true;
    };

    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      ...(step.headers ?? {}),
    });
    res.flushHeaders();
    write(chunk([{ index: 0, delta: { role: "assistant", content: "", refusal: null }, logprobs: null, finish_reason: null }]));

    if (step.firstTokenDelayMs) await sleep(step.firstTokenDelayMs);
    const limit = Math.min(
      tokens.length,
      step.cutAfterChunks ?? Infinity,
      step.stallAfterChunks ?? Infinity,
      step.malformedAfterChunks ?? Infinity,
      step.errorAfterChunks ?? Infinity,
    );
    for (let i = 0; i < limit; i++) {
      if (i > 0 && step.chunkDelayMs) await sleep(step.chunkDelayMs);
      if (!write(chunk([{ index: 0, delta: { content: tokens[i] }, logprobs: null, finish_reason: null }]))) return;
    }
    if (step.cutAfterChunks !== undefined) {
      // Give the written chunks a moment to leave, then kill the connection mid-stream.
      await sleep(20);
      req.socket.destroy();
      return;
    }
    if (step.stallAfterChunks !== undefined) return; // silence until close()
    if (step.malformedAfterChunks !== undefined) {
      write("data: {not json\n\n");
      await sleep(20);
      if (!srv.closed) res.end();
      return;
    }
    if (step.errorAfterChunks !== undefined) {
      const error = step.inBandError ?? { message: "fake in-band upstream failure", type: "server_error", param: null, code: null };
      write(`data: ${JSON.stringify({ error })}\n\n`);
      if (!srv.closed) res.end();
      return;
    }
    if (step.chunkDelayMs) await sleep(step.chunkDelayMs);
    if (!write(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: finishReason }]))) return;
    if (includeUsage) {
      if (!write(chunk([], { usage }))) return;
    }
    if (step.noDone === true) return; // stream complete but neither [DONE] nor end
    if (step.noDone === "close") {
      res.end();
      return;
    }
    write("data: [DONE]\n\n");
    res.end();
  }

  const { port, origin } = await srv.listen(host);

  return {
    port,
    origin,
    baseUrl: (scenario) => `${origin}/s/${encodeURIComponent(scenario)}/v1`,
    ...registry.api,
    /** How many requests to `scenario` the gateway hung up on before their answer ended. */
    aborted: (scenario) => registry.api.requests(scenario).filter((r) => r.aborted).length,
    /** Refuse every request after the first `n` (in all scenarios) until reset(). */
    platformLimit(n) {
      platform = { limit: n, seen: 0, refused: 0 };
    },
    /** Requests refused by platformLimit. */
    refused: () => platform.refused,
    /** Forget all scripts and recorded requests; destroy connections left hanging by earlier steps. */
    reset() {
      platform = { limit: Infinity, seen: 0, refused: 0 };
      registry.reset();
    },
    close: () => srv.close(),
  };
}
