// Fault-injecting fake Gemini API (generativelanguage v1beta) for the workerd integration tests.
//
// A real node:http server on 127.0.0.1:<free port>. Deployments point their provider's base_url at
// `fake.baseUrl(scenario)` = http://127.0.0.1:PORT/s/<scenario>/v1beta; the gateway POSTs
// `<base_url>/models/<model>:generateContent` or `<base_url>/models/<model>:streamGenerateContent?alt=sse`.
// `fake.script(scenario, steps)` decides how the i-th request to that scenario is answered (the
// last step repeats). Every recorded request has {method, url, path, model, action, query,
// headers, body, rawBody, at}.
//
// Wire format as in /work/shared/fixtures/gemini/*: streams are `data: <json>\r\n\r\n` (CRLF), no
// `event:` lines, no [DONE]: the stream ends when the response ends. Every chunk carries
// `usageMetadata` (candidatesTokenCount only in the last) and `modelVersion` (no `responseId`
// unless the step sets one, like the fixture); only the last chunk has `finishReason`. Errors are google.rpc.Status bodies {"error":{code,message,status,details}}.
//
// Step shapes:
//   { ok: "answer text" ("" = no text part), modelVersion?, responseId?, finishReason? ("STOP"),
//     functionCalls?: [{name, args}],   // functionCall parts (in the last stream chunk)
//     usage?: {promptTokenCount, candidatesTokenCount, thoughtsTokenCount?}, safetyRatings?,
//     headers?, delayMs?, chunkDelayMs?, firstTokenDelayMs?,
//     thoughts?: "summary",  // a thought-summary part {text, thought: true} first (own stream chunk)
//     thoughtSignature?: "c2ln",  // on the first functionCall part (thinking models)
//     splitBytes?: N,      // stream: every chunk is written in N-byte pieces (1 ms apart), CRLFs split too
//     closeAfterChunks?,   // stream: N text chunks, then the response ends normally (no finishReason)
//     cutAfterChunks?,     // stream: N text chunks, then the socket is destroyed
//     stallAfterChunks?,   // stream: N text chunks, then silence until close()
//   }
//   { blocked: "SAFETY" }   200 with promptFeedback.blockReason and no candidates
//                           (fixtures/gemini/response_blocked_prompt_safety.json; streams: one data chunk)
//   { status: 429, headers?, body?: object | string, delayMs? }   any HTTP error (see `geminiSteps`)
//   { reset: true, delayMs? }    destroy the socket before sending any header
//   { hang: true }               never answer (until close())
//
// Text is sent one word per stream chunk (the real API sends bigger pieces; the shape is the same).

import { createFakeServer, createScriptRegistry } from "./fake-server.mjs";
import { words } from "./fake-openai.mjs";

/** Error bodies; 400 and 429 verbatim from /work/shared/fixtures/gemini/error_*.json. */
export const GEMINI_ERRORS = {
  api_key_invalid: {
    error: {
      code: 400,
      message: "API key not valid. Please pass a valid API key.",
      status: "INVALID_ARGUMENT",
      details: [
        {
          "@type": "type.googleapis.com/google.rpc.ErrorInfo",
          reason: "API_KEY_INVALID",
          domain: "googleapis.com",
          metadata: { service: "generativelanguage.googleapis.com" },
        },
        { "@type": "type.googleapis.com/google.rpc.LocalizedMessage", locale: "en-US", message: "API key not valid. Please pass a valid API key." },
        { "@type": "type.googleapis.com/google.rpc.DebugInfo", detail: "Invalid API key: key1234" },
      ],
    },
  },
  resource_exhausted: {
    error: {
      code: 429,
      message:
        "Quota exceeded for quota metric 'Generate Content API requests per minute' and limit 'GenerateContent request limit per minute for a region' of service 'generativelanguage.googleapis.com' for consumer 'project_number:348715329010'.",
      status: "RESOURCE_EXHAUSTED",
      details: [
        {
          "@type": "type.googleapis.com/google.rpc.ErrorInfo",
          reason: "RATE_LIMIT_EXCEEDED",
          domain: "googleapis.com",
          metadata: {
            service: "generativelanguage.googleapis.com",
            consumer: "projects/348715329010",
            quota_limit_value: "0",
            quota_limit: "GenerateContentRequestsPerMinutePerProjectPerRegion",
            quota_location: "us-east2",
            quota_metric: "generativelanguage.googleapis.com/generate_content_requests",
          },
        },
        {
          "@type": "type.googleapis.com/google.rpc.Help",
          links: [{ description: "Request a higher quota limit.", url: "https://cloud.google.com/docs/quota#requesting_higher_quota" }],
        },
      ],
    },
  },
  unavailable: { error: { code: 503, message: "The model is overloaded. Please try again later.", status: "UNAVAILABLE" } },
  internal: { error: { code: 500, message: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting", status: "INTERNAL" } },
  invalid_argument: { error: { code: 400, message: "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\" (fake-gemini-invalid-5)", status: "INVALID_ARGUMENT" } },
};

/** Verbatim /work/shared/fixtures/gemini/response_blocked_prompt_safety.json (with the reason parameterised). */
export function blockedBody(reason = "SAFETY") {
  return {
    promptFeedback: {
      blockReason: reason,
      safetyRatings: [
        { category: "HARM_CATEGORY_SEXUALLY_EXPLICIT", probability: "NEGLIGIBLE" },
        { category: "HARM_CATEGORY_HATE_SPEECH", probability: "HIGH" },
        { category: "HARM_CATEGORY_HARASSMENT", probability: "NEGLIGIBLE" },
        { category: "HARM_CATEGORY_DANGEROUS_CONTENT", probability: "NEGLIGIBLE" },
      ],
    },
  };
}

export const SAFETY_RATINGS_NEGLIGIBLE = [
  { category: "HARM_CATEGORY_HATE_SPEECH", probability: "NEGLIGIBLE" },
  { category: "HARM_CATEGORY_DANGEROUS_CONTENT", probability: "NEGLIGIBLE" },
  { category: "HARM_CATEGORY_HARASSMENT", probability: "NEGLIGIBLE" },
  { category: "HARM_CATEGORY_SEXUALLY_EXPLICIT", probability: "NEGLIGIBLE" },
];

export const geminiSteps = {
  ok: (text, extra = {}) => ({ ok: text, ...extra }),
  r429: () => ({ status: 429, body: GEMINI_ERRORS.resource_exhausted }),
  r503: () => ({ status: 503, body: GEMINI_ERRORS.unavailable }),
  r500: () => ({ status: 500, body: GEMINI_ERRORS.internal }),
  /** A current-style quota 429 with QuotaFailure and a RetryInfo hint (no HTTP retry header). */
  r429RetryInfo: (retryDelay = "1s") => ({
    status: 429,
    body: {
      error: {
        code: 429,
        message: "You exceeded your current quota, please check your plan and billing details.",
        status: "RESOURCE_EXHAUSTED",
        details: [
          {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            violations: [{ quotaMetric: "generativelanguage.googleapis.com/generate_content_free_tier_requests", quotaId: "GenerateRequestsPerMinutePerProjectPerModel-FreeTier" }],
          },
          { "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay },
        ],
      },
    },
  }),
  apiKeyInvalid: () => ({ status: 400, body: GEMINI_ERRORS.api_key_invalid }),
  invalid: () => ({ status: 400, body: GEMINI_ERRORS.invalid_argument }),
  blocked: (reason = "SAFETY") => ({ blocked: reason }),
  reset: () => ({ reset: true }),
  hang: () => ({ hang: true }),
};

function countPromptTokens(body) {
  return 2 + Math.ceil((JSON.stringify(body?.contents ?? "") + JSON.stringify(body?.systemInstruction ?? body?.system_instruction ?? "")).length / 8);
}

export async function startFakeGemini({ host = "127.0.0.1" } = {}) {
  let idSeq = 0;

  const srv = createFakeServer("fake-gemini", (req, res, rawBody) => handle(req, res, rawBody));
  const sleep = srv.sleep;
  const registry = createScriptRegistry(srv);

  const sendStatus = (res, code, status, message) => {
    res.writeHead(code, { "content-type": "application/json; charset=UTF-8" });
    res.end(JSON.stringify({ error: { code, message, status } }));
  };

  async function handle(req, res, rawBody) {
    registry.track(res);
    const [path, query = ""] = req.url.split("?", 2);
    const m = /^\/s\/([^/]+)\/v1beta\/models\/([^/]+?)(?::|%3A)(generateContent|streamGenerateContent)$/i.exec(path);
    if (!m) return sendStatus(res, 404, "NOT_FOUND", `fake-gemini: unknown path ${req.method} ${req.url}`);
    if (req.method !== "POST") return sendStatus(res, 405, "INVALID_ARGUMENT", "fake-gemini: method not allowed");
    const scenario = decodeURIComponent(m[1]);
    const model = decodeURIComponent(m[2]);
    const action = m[3];
    const stream = action === "streamGenerateContent";
    let body;
    try {
      body = JSON.parse(rawBody);
    } catch {
      body = undefined;
    }
    const { step } = registry.record(scenario, {
      method: req.method,
      url: req.url,
      path,
      model,
      action,
      query: Object.fromEntries(new URLSearchParams(query)),
      headers: { ...req.headers },
      body,
      rawBody,
      at: Date.now(),
    });

    if (step.hang) return;
    if (step.delayMs) await sleep(step.delayMs);
    if (srv.closed) return;
    if (step.reset) {
      req.socket.destroy();
      return;
    }
    if (step.status !== undefined) {
      const isString = typeof step.body === "string";
      const payload = step.body === undefined ? "" : isString ? step.body : JSON.stringify(step.body, null, 2);
      // A failing streamGenerateContent?alt=sse answers with the SSE content type but a plain JSON body
      // (fixtures/SOURCES.md, js-genai recording).
      res.writeHead(step.status, {
        "content-type": stream ? "text/event-stream" : isString ? "text/plain" : "application/json; charset=UTF-8",
        ...(step.headers ?? {}),
      });
      res.end(payload);
      return;
    }
    if (step.blocked !== undefined) {
      const b = blockedBody(step.blocked);
      if (stream) {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.end(`data: ${JSON.stringify(b)}\r\n\r\n`);
      } else {
        res.writeHead(200, { "content-type": "application/json; charset=UTF-8" });
        res.end(JSON.stringify(b, null, 2));
      }
      return;
    }
    if (step.ok === undefined) throw new Error(`fake-gemini: step has no known shape: ${JSON.stringify(step)}`);

    const modelVersion = step.modelVersion ?? `gemini-fake-${scenario}`;
    const responseId = step.responseId ?? `fakeResp${++idSeq}`;
    const textTokens = step.ok === "" ? [] : words(step.ok);
    const calls = step.functionCalls ?? [];
    const finishReason = step.finishReason ?? "STOP";
    const promptTokens = step.usage?.promptTokenCount ?? countPromptTokens(body);
    const candTokens = step.usage?.candidatesTokenCount ?? textTokens.length + calls.length * 5;
    const promptDetails = [{ modality: "TEXT", tokenCount: promptTokens }];
    const thoughtsTokens = step.usage?.thoughtsTokenCount;
    const fullUsage = {
      promptTokenCount: promptTokens,
      candidatesTokenCount: candTokens,
      totalTokenCount: promptTokens + candTokens + (thoughtsTokens ?? 0),
      ...(thoughtsTokens !== undefined ? { thoughtsTokenCount: thoughtsTokens } : {}),
      promptTokensDetails: promptDetails,
      candidatesTokensDetails: [{ modality: "TEXT", tokenCount: candTokens }],
    };
    const callParts = calls.map((c, i) => ({
      functionCall: { name: c.name, args: c.args ?? {} },
      ...(i === 0 && step.thoughtSignature ? { thoughtSignature: step.thoughtSignature } : {}),
    }));
    const thoughtPart = step.thoughts !== undefined ? [{ text: step.thoughts, thought: true }] : [];

    if (!stream) {
      if (step.firstTokenDelayMs) await sleep(step.firstTokenDelayMs);
      if (srv.closed) return;
      const parts = [...thoughtPart];
      if (textTokens.length) parts.push({ text: step.ok });
      parts.push(...callParts);
      const candidate = { content: { parts, role: "model" }, finishReason, avgLogprobs: -0.0014493816221753757 };
      if (step.safetyRatings) candidate.safetyRatings = step.safetyRatings;
      const answer = { candidates: [candidate], usageMetadata: fullUsage, modelVersion, responseId };
      res.writeHead(200, { "content-type": "application/json; charset=UTF-8", ...(step.headers ?? {}) });
      res.end(JSON.stringify(answer, null, 2));
      return;
    }

    // ---- streaming (alt=sse) ----
    const alive = () => !(srv.closed || res.destroyed || res.writableEnded);
    const write = async (s) => {
      if (!alive()) return false;
      if (!step.splitBytes) {
        res.write(s);
        return true;
      }
      const buf = Buffer.from(s, "utf8");
      for (let i = 0; i < buf.length; i += step.splitBytes) {
        if (!alive()) return false;
        res.write(buf.subarray(i, i + step.splitBytes));
        await sleep(1);
      }
      return true;
    };
    const partialUsage = { promptTokenCount: promptTokens, totalTokenCount: promptTokens, promptTokensDetails: promptDetails };
    const chunk = (parts, last) => {
      const candidate = { content: { parts, role: "model" } };
      if (last) {
        candidate.finishReason = finishReason;
        if (step.safetyRatings) candidate.safetyRatings = step.safetyRatings;
      }
      return `data: ${JSON.stringify({ candidates: [candidate], usageMetadata: last ? fullUsage : partialUsage, modelVersion, ...(step.responseId ? { responseId } : {}) })}\r\n\r\n`;
    };

    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      ...(step.headers ?? {}),
    });
    res.flushHeaders();
    if (step.firstTokenDelayMs) await sleep(step.firstTokenDelayMs);

    // Chunks: one per word; the function calls ride in the last chunk (with finishReason).
    const pieces = textTokens.map((t) => [{ text: t }]);
    if (thoughtPart.length) pieces.unshift(thoughtPart);
    if (callParts.length) pieces.push(callParts);
    if (pieces.length === 0) pieces.push([{ text: "" }]);
    const limit = Math.min(step.closeAfterChunks ?? Infinity, step.cutAfterChunks ?? Infinity, step.stallAfterChunks ?? Infinity);
    for (let i = 0; i < pieces.length; i++) {
      if (i >= limit) break;
      if (i > 0 && step.chunkDelayMs) await sleep(step.chunkDelayMs);
      if (!(await write(chunk(pieces[i], i === pieces.length - 1)))) return;
    }
    if (limit >= pieces.length || step.closeAfterChunks !== undefined) {
      // The end of a Gemini stream is the end of the response: no [DONE].
      if (!srv.closed) res.end();
      return;
    }
    if (step.cutAfterChunks !== undefined) {
      await sleep(20);
      req.socket.destroy();
      return;
    }
    // stallAfterChunks: silence until close()
  }

  const { port, origin } = await srv.listen(host);

  return {
    kind: "gemini",
    port,
    origin,
    baseUrl: (scenario) => `${origin}/s/${encodeURIComponent(scenario)}/v1beta`,
    ...registry.api,
    reset: () => registry.reset(),
    close: () => srv.close(),
  };
}
