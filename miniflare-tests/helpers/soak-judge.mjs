// The fault soak's judges (soak.test.mjs, whose header states the invariants): whether one
// response is the whole expected answer exactly once in its format, or a clean error; and what
// the gateway should have billed for it, from the fakes' ledger and the request's log line.

import { parseSse, FAKE_SECRET } from "./worker.mjs";
import { charCount } from "./fake-chaos.mjs";

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
 * `hangAfterMs` is the client's timeout; `admin` the admin token (a secret, like the provider key).
 * Failures: hang, transport, truncated, duplicated, corrupt, bad_framing, bad_error.
 */
export function judge(rec, { hangAfterMs, admin }) {
  const { spec } = rec;
  const fail = (outcome, detail, text) => ({ outcome, detail, text });
  if (rec.hang) return fail("hang", `no end after ${hangAfterMs} ms`);
  if (rec.transportError) return fail("transport", rec.transportError);
  const everything = rec.text + JSON.stringify(rec.headers);
  if (everything.includes(FAKE_SECRET) || everything.includes(admin)) return fail("bad_framing", "a secret in the response");
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
export function billingOf(ledger, spec, line, scenarioOf, verdict) {
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
    // A prefill sent before the next committed response carries the text delivered up to
    // here; one sent after a replay that took over also carries that replay's text.
    const after = pairs.slice(idx + 1);
    const nextOk = after.findIndex((p) => p.ok);
    const nextPrefill = (nextOk === -1 ? after : after.slice(0, nextOk + 1)).find((p) => p.e.prefill !== null)?.e;
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
    } else if (broken && e.fault === "none" && e.aborted && !known) {
      // A fault-free response the gateway hung up on mid-way (its idle deadline on a starved
      // machine), followed by a replay: how much of it was read is unknown.
      races.push(`attempt ${idx} (${e.kind}) without a fault ended by the gateway mid-way`);
      inexact = true;
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
