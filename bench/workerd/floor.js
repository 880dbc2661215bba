// The lean hand-written JS gateway floor: the least a gateway that reads what it forwards can do.
// Non-streaming: parse the upstream's JSON answer and re-encode it. Streaming: answer at once with
// a native IdentityTransformStream and, from a task kept alive by waitUntil, run a reader loop
// over the upstream body that splits the SSE events, parses and re-encodes every `data:` JSON
// and writes it to the pipe (awaiting each write). No routing, fallback, usage or logging.
const encoder = new TextEncoder();
const DONE = encoder.encode("data: [DONE]\n\n");

export default {
  async fetch(request, env, ctx) {
    const body = await request.json();
    const upstream = await fetch(env.UPSTREAM_URL, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer " + env.BENCH_UPSTREAM_KEY },
      body: JSON.stringify(body),
    });
    if (body.stream !== true) {
      const answer = await upstream.json();
      return new Response(JSON.stringify(answer), {
        status: upstream.status,
        headers: { "content-type": "application/json" },
      });
    }
    const pipe = new IdentityTransformStream();
    ctx.waitUntil(pump(upstream.body.getReader(), pipe.writable.getWriter()));
    return new Response(pipe.readable, { status: upstream.status, headers: { "content-type": "text/event-stream" } });
  },
};

async function pump(reader, writer) {
  const decoder = new TextDecoder();
  let buf = "";
  // Writes every complete event in buf; keeps the incomplete tail.
  const flush = async () => {
    let end;
    while ((end = buf.indexOf("\n\n")) !== -1) {
      const event = buf.slice(0, end);
      buf = buf.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") {
          await writer.write(DONE);
        } else {
          await writer.write(encoder.encode("data: " + JSON.stringify(JSON.parse(data)) + "\n\n"));
        }
      }
    }
  };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      await flush();
    }
    buf += decoder.decode();
    await flush();
    await writer.close();
  } catch (e) {
    await writer.abort(e).catch(() => {});
    reader.cancel(e).catch(() => {});
  }
}
