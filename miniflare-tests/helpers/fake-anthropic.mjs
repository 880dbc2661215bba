// Fault-injecting fake Anthropic Messages API for the workerd integration tests.
//
// A real node:http server on 127.0.0.1:<free port>. Deployments point their provider's base_url at
// `fake.baseUrl(scenario)` = http://127.0.0.1:PORT/s/<scenario>/v1; the gateway POSTs
// `<base_url>/messages`. `fake.script(scenario, steps)` decides how the i-th request to that
// scenario is answered (the last step repeats). The wire format follows
// /work/shared/fixtures/anthropic/* exactly: `event: <type>\ndata: <json>\n\n` SSE with LF,
// message_start, content_block_start, ping, content_block_delta (text_delta / input_json_delta,
// the first input_json_delta empty), content_block_stop, message_delta (stop_reason + cumulative
// output_tokens), message_stop; errors as {"type":"error","error":{type,message},"request_id"}.
//
// Step shapes:
//   { ok: "answer text" ("" = no text block), model?, id?, stopReason? ("end_turn"),
//     toolUse?: {id?, name, input} | [..],  // tool_use blocks after the text; stopReason defaults to "tool_use"
//     stopSequence?: "END",      // with stopReason "stop_sequence": the matched sequence
//     thinking?: "thoughts",     // a thinking block (with signature) before the text (extended thinking)
//     usage?: {input_tokens, output_tokens, cache_read_input_tokens?, cache_creation_input_tokens?},
//     headers?, delayMs?, chunkDelayMs?,
//     splitBytes?: N,            // stream: every event is written in N-byte pieces (1 ms apart)
//     firstTokenDelayMs?,        // stream: headers + message_start at once, first content delta after N ms
//                                // non-stream: the whole answer after N ms
//     errorAfterChunks?,         // stream: N content deltas, then `event: error` overloaded_error, then end
//                                //   (0 = after message_start/content_block_start/ping, before any content)
//     errorType?,                // type of that in-stream error (default "overloaded_error")
//     cutAfterChunks?,           // stream: N content deltas, then the socket is destroyed
//     stallAfterChunks?,         // stream: N content deltas, then silence until close()
//     noPing?: true,
//     malformedAfterChunks?,     // stream: N content deltas, then `event: content_block_delta` with
//                                //   `data: {not json`, then end
//     continuePrefill?: true,    // when the last message is an assistant message (a prefill) whose
//                                //   text is a prefix of `ok`, answer only ok.slice(prefill.length);
//                                //   the fault options then count deltas of that rest
//   }
//   { status: 429, headers?, body?: object | string, delayMs? }   any HTTP error (see `steps` below)
//   { reset: true, delayMs? }    destroy the socket before sending any header
//   { hang: true }               never answer (until close())
//
// "Content deltas" count text_delta and input_json_delta events.

import { createFakeServer, createScriptRegistry } from "./fake-server.mjs";
import { words, prefillText } from "./fake-openai.mjs";

/** Error bodies, verbatim from /work/shared/fixtures/anthropic/error_*.json. */
export const ANTHROPIC_ERRORS = {
  prompt_too_long: {
    type: "error",
    error: { type: "invalid_request_error", message: "prompt is too long: 208310 tokens > 200000 maximum" },
    request_id: "req_011CVQe1dLrGNMJyE1ghG1av",
  },
  authentication_error: {
    type: "error",
    error: { type: "authentication_error", message: "invalid x-api-key" },
    request_id: "req_011CUBgWE2fdbDGiPKTUQTwy",
  },
  rate_limit_error: {
    type: "error",
    error: {
      type: "rate_limit_error",
      message:
        "This request would exceed your organization's rate limit of 20,000,000 prompt bytes per hour (org: 5576611f-a1ee-427c-9800-298d9579899c, model: claude-sonnet-4-5-20250929). For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase.",
    },
    request_id: "req_011CYK5n67SytMUxm8WMZUWY",
  },
  overloaded_error: { type: "error", error: { type: "overloaded_error", message: "Overloaded" } },
  api_error: { type: "error", error: { type: "api_error", message: "Internal server error" }, request_id: "req_fake_api_error" },
  invalid_request_error: {
    type: "error",
    error: { type: "invalid_request_error", message: "temperature: range: 0..1 (fake-anthropic-invalid-3)" },
    request_id: "req_fake_invalid",
  },
};

/** The signature of every thinking block the fake sends (opaque, docs-like). */
export const ANTHROPIC_SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds";

export const anthropicSteps = {
  ok: (text, extra = {}) => ({ ok: text, ...extra }),
  r429: (retryAfter = null) => ({
    status: 429,
    headers: { "x-should-retry": "true", ...(retryAfter == null ? {} : { "retry-after": String(retryAfter) }) },
    body: ANTHROPIC_ERRORS.rate_limit_error,
  }),
  r529: () => ({ status: 529, headers: { "x-should-retry": "true" }, body: ANTHROPIC_ERRORS.overloaded_error }),
  r500: () => ({ status: 500, body: ANTHROPIC_ERRORS.api_error }),
  r401: () => ({ status: 401, body: ANTHROPIC_ERRORS.authentication_error }),
  promptTooLong: () => ({ status: 400, body: ANTHROPIC_ERRORS.prompt_too_long }),
  invalid: () => ({ status: 400, body: ANTHROPIC_ERRORS.invalid_request_error }),
  reset: () => ({ reset: true }),
  hang: () => ({ hang: true }),
};

function countInputTokens(body) {
  const s = JSON.stringify(body?.messages ?? "") + JSON.stringify(body?.system ?? "");
  return 3 + Math.ceil(s.length / 4);
}

/** Split a JSON text into fragments like the real API's input_json_delta partial_json values. */
export function jsonFragments(json) {
  const out = [""]; // the real stream starts with an empty partial_json
  for (let i = 0; i < json.length; i += 7) out.push(json.slice(i, i + 7));
  return out;
}

export async function startFakeAnthropic({ host = "127.0.0.1" } = {}) {
  /** scenario → count_tokens requests (kept apart: they do not consume scripted steps). */
  const counted = new Map();
  let idSeq = 0;

  const srv = createFakeServer("fake-anthropic", (req, res, rawBody) => handle(req, res, rawBody));
  const sleep = srv.sleep;
  const registry = createScriptRegistry(srv);

  const sendError = (res, status, type, message) => {
    res.writeHead(status, { "content-type": "application/json", "request-id": "req_fake_path" });
    res.end(JSON.stringify({ type: "error", error: { type, message }, request_id: "req_fake_path" }));
  };

  async function handle(req, res, rawBody) {
    registry.track(res);
    const c = /^\/s\/([^/]+)\/v1\/messages\/count_tokens\/?(?:\?.*)?$/.exec(req.url);
    if (c) {
      // POST /v1/messages/count_tokens: {"input_tokens": n} for the body's messages and system.
      const scenario = decodeURIComponent(c[1]);
      let body;
      try {
        body = JSON.parse(rawBody);
      } catch {
        return sendError(res, 400, "invalid_request_error", "fake-anthropic: body is not JSON");
      }
      const list = counted.get(scenario) ?? [];
      counted.set(scenario, list);
      list.push({ method: req.method, url: req.url, headers: { ...req.headers }, body });
      if (typeof body?.model !== "string" || !Array.isArray(body?.messages)) {
        return sendError(res, 400, "invalid_request_error", "model and messages are required");
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ input_tokens: countInputTokens(body) }));
      return;
    }
    const m = /^\/s\/([^/]+)\/v1\/messages\/?(?:\?.*)?$/.exec(req.url);
    if (!m) return sendError(res, 404, "not_found_error", `fake-anthropic: unknown path ${req.method} ${req.url}`);
    if (req.method !== "POST") return sendError(res, 405, "invalid_request_error", "fake-anthropic: method not allowed");
    const scenario = decodeURIComponent(m[1]);
    let body;
    try {
      body = JSON.parse(rawBody);
    } catch {
      body = undefined;
    }
    const { index, step } = registry.record(scenario, { method: req.method, url: req.url, headers: { ...req.headers }, body, rawBody, at: Date.now() });

    if (step.hang) return;
    if (step.delayMs) await sleep(step.delayMs);
    if (srv.closed) return;
    if (step.reset) {
      req.socket.destroy();
      return;
    }
    if (step.status !== undefined) {
      const isString = typeof step.body === "string";
      const payload = step.body === undefined ? "" : isString ? step.body : JSON.stringify(step.body);
      res.writeHead(step.status, {
        "content-type": isString ? "text/plain" : "application/json",
        "request-id": `req_fake_${scenario}_${index}`,
        ...(step.headers ?? {}),
      });
      res.end(payload);
      return;
    }
    if (step.ok === undefined) throw new Error(`fake-anthropic: step has no known shape: ${JSON.stringify(step)}`);

    const model = step.model ?? `claude-fake-${scenario}`;
    const id = step.id ?? `msg_fake${String(++idSeq).padStart(6, "0")}`;
    const prefill = step.continuePrefill ? prefillText(body) : null;
    const answerText = prefill !== null && step.ok.startsWith(prefill) ? step.ok.slice(prefill.length) : step.ok;
    const textTokens = answerText === "" ? [] : words(answerText);
    const tools = (step.toolUse === undefined ? [] : Array.isArray(step.toolUse) ? step.toolUse : [step.toolUse]).map(
      (t, i) => ({ id: t.id ?? `toolu_fake${idSeq}_${i}`, name: t.name, input: t.input ?? {} }),
    );
    const stopReason = step.stopReason ?? (tools.length ? "tool_use" : "end_turn");
    const inputTokens = step.usage?.input_tokens ?? countInputTokens(body);
    const outputTokens = step.usage?.output_tokens ?? textTokens.length + tools.length * 10;
    const cacheRead = step.usage?.cache_read_input_tokens ?? 0;
    const cacheCreation = step.usage?.cache_creation_input_tokens ?? 0;
    const signature = ANTHROPIC_SIGNATURE;
    const headers = { "request-id": `req_fake_${scenario}_${index}`, ...(step.headers ?? {}) };

    if (body?.stream !== true) {
      if (step.firstTokenDelayMs) await sleep(step.firstTokenDelayMs);
      if (srv.closed) return;
      const content = [];
      if (step.thinking !== undefined) content.push({ type: "thinking", thinking: step.thinking, signature });
      if (textTokens.length) content.push({ type: "text", text: answerText });
      for (const t of tools) content.push({ type: "tool_use", id: t.id, name: t.name, input: t.input, caller: { type: "direct" } });
      const answer = {
        model,
        id,
        type: "message",
        role: "assistant",
        content,
        stop_reason: stopReason,
        stop_sequence: step.stopSequence ?? null,
        usage: {
          input_tokens: inputTokens,
          cache_creation_input_tokens: cacheCreation,
          cache_read_input_tokens: cacheRead,
          cache_creation: { ephemeral_5m_input_tokens: cacheCreation, ephemeral_1h_input_tokens: 0 },
          output_tokens: outputTokens,
          service_tier: "standard",
          inference_geo: "not_available",
        },
      };
      res.writeHead(200, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify(answer));
      return;
    }

    // ---- streaming ----
    const alive = () => !(srv.closed || res.destroyed || res.writableEnded);
    const write = async (s) => {
      if (!alive()) return false;
      if (!step.splitBytes) {
        res.write(s);
        return true;
      }
      const buf = Buffer.from(s, "utf8"); // pieces may split a multi-byte character, like TCP can
      for (let i = 0; i < buf.length; i += step.splitBytes) {
        if (!alive()) return false;
        res.write(buf.subarray(i, i + step.splitBytes));
        await sleep(1);
      }
      return true;
    };
    const ev = (type, data) => write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);

    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      ...headers,
    });
    res.flushHeaders();
    await ev("message_start", {
      message: {
        id,
        type: "message",
        role: "assistant",
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: inputTokens, cache_creation_input_tokens: cacheCreation, cache_read_input_tokens: cacheRead, output_tokens: 1, service_tier: "standard" },
      },
    });

    // The whole stream as a list of events; content deltas are marked so faults can count them.
    const events = [];
    let block = 0;
    if (step.thinking !== undefined) {
      events.push(["content_block_start", { index: block, content_block: { type: "thinking", thinking: "", signature: "" } }]);
      if (!step.noPing) events.push(["ping", {}]);
      for (const t of words(step.thinking)) events.push(["content_block_delta", { index: block, delta: { type: "thinking_delta", thinking: t } }]);
      events.push(["content_block_delta", { index: block, delta: { type: "signature_delta", signature } }]);
      events.push(["content_block_stop", { index: block }]);
      block++;
    }
    if (textTokens.length) {
      events.push(["content_block_start", { index: block, content_block: { type: "text", text: "" } }]);
      if (block === 0 && !step.noPing) events.push(["ping", {}]);
      for (const t of textTokens) events.push(["content_block_delta", { index: block, delta: { type: "text_delta", text: t } }, true]);
      events.push(["content_block_stop", { index: block }]);
      block++;
    }
    for (const t of tools) {
      events.push(["content_block_start", { index: block, content_block: { type: "tool_use", id: t.id, name: t.name, caller: { type: "direct" }, input: {} } }]);
      if (block === 0 && !step.noPing) events.push(["ping", {}]);
      for (const f of jsonFragments(JSON.stringify(t.input))) {
        events.push(["content_block_delta", { index: block, delta: { type: "input_json_delta", partial_json: f } }, f !== ""]);
      }
      events.push(["content_block_stop", { index: block }]);
      block++;
    }
    events.push(["message_delta", { delta: { stop_reason: stopReason, stop_sequence: step.stopSequence ?? null }, usage: { output_tokens: outputTokens } }]);
    events.push(["message_stop", {}]);

    const limit = Math.min(
      step.errorAfterChunks ?? Infinity,
      step.cutAfterChunks ?? Infinity,
      step.stallAfterChunks ?? Infinity,
      step.malformedAfterChunks ?? Infinity,
    );
    let sent = 0;
    let first = true;
    let broke = false;
    for (const [type, data, isContent] of events) {
      if (isContent) {
        if (sent >= limit) {
          broke = true;
          break;
        }
        if (first && step.firstTokenDelayMs) await sleep(step.firstTokenDelayMs);
        else if (!first && step.chunkDelayMs) await sleep(step.chunkDelayMs);
        first = false;
        sent++;
      }
      if (!(await ev(type, data))) return;
    }
    if (!broke) {
      res.end();
      return;
    }
    if (step.errorAfterChunks !== undefined) {
      const type = step.errorType ?? "overloaded_error";
      // Verbatim shape of fixtures/anthropic/messages_stream_error_overloaded.sse (spaced JSON).
      await write(`event: error\ndata: {"type": "error", "error": {"type": "${type}", "message": "${type === "overloaded_error" ? "Overloaded" : "Internal server error"}"}}\n\n`);
      if (!srv.closed) res.end();
      return;
    }
    if (step.cutAfterChunks !== undefined) {
      await sleep(20);
      req.socket.destroy();
      return;
    }
    if (step.malformedAfterChunks !== undefined) {
      await write("event: content_block_delta\ndata: {not json\n\n");
      await sleep(20);
      if (!srv.closed) res.end();
      return;
    }
    // stallAfterChunks: silence until close()
  }

  const { port, origin } = await srv.listen(host);

  return {
    kind: "anthropic",
    port,
    origin,
    baseUrl: (scenario) => `${origin}/s/${encodeURIComponent(scenario)}/v1`,
    ...registry.api,
    /** count_tokens requests of a scenario. */
    counted: (scenario) => counted.get(scenario) ?? [],
    reset() {
      counted.clear();
      registry.reset();
    },
    close: () => srv.close(),
  };
}
