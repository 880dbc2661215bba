// The official SDKs as the tests' clients, pointed at a worker (no retries, 10 s timeout, every
// response recorded for the secret checks), and a collector for OpenAI chat streams.

import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";

/** An `openai` client of worker `w` (`/v1/chat/completions`, `/v1/models`). */
export function openaiClient(w, { apiKey = "unused" } = {}) {
  return new OpenAI({ baseURL: w.v1, apiKey, maxRetries: 0, timeout: 10_000, fetch: w.recordingFetch });
}

/** An `@anthropic-ai/sdk` client of worker `w` (`/v1/messages`). */
export function anthropicClient(w, { apiKey = "unused" } = {}) {
  return new Anthropic({ baseURL: w.url.replace(/\/$/, ""), apiKey, maxRetries: 0, timeout: 10_000, fetch: w.recordingFetch });
}

/** Accumulate an SDK chat stream: content, finish_reason, usage, ids, tool calls by index. */
export async function collectSdkStream(stream) {
  const out = { content: "", finish: null, usage: null, chunks: 0, ids: new Set(), models: new Set(), objects: new Set(), tools: [], toolDeltas: [] };
  for await (const chunk of stream) {
    out.chunks++;
    out.ids.add(chunk.id);
    out.models.add(chunk.model);
    out.objects.add(chunk.object);
    if (chunk.usage) out.usage = chunk.usage;
    for (const c of chunk.choices) {
      out.content += c.delta?.content ?? "";
      if (c.finish_reason) out.finish = c.finish_reason;
      for (const tc of c.delta?.tool_calls ?? []) {
        out.toolDeltas.push(tc);
        const slot = (out.tools[tc.index] ??= { id: null, type: null, name: "", arguments: "" });
        if (tc.id) slot.id = tc.id;
        if (tc.type) slot.type = tc.type;
        if (tc.function?.name) slot.name += tc.function.name;
        if (tc.function?.arguments) slot.arguments += tc.function.arguments;
      }
    }
  }
  return out;
}
