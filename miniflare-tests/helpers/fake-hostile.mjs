// A hostile upstream for hostile-upstream.test.mjs: a real node:http server on 127.0.0.1 that
// answers every provider format (OpenAI chat completions, Anthropic Messages, Gemini
// generateContent; the path decides) according to the mode in its URL,
//   base URL = http://127.0.0.1:PORT/h/<mode>/<tag>   (tag only keeps test tables apart)
// Modes:
//   redirect-<status>   <status> with `Location:` pointing at the "elsewhere" server
//   echo                401 in the provider's error format, quoting every credential it got
//   echo-text           500 with a plain-text body quoting the credentials
//   echo-stream         200 stream: two content chunks, then an in-band error quoting them
//   leak                401 whose message is the text given to setLeak()
// The "elsewhere" server records what reaches it and answers a valid completion ("STOLEN"),
// so a followed redirect shows up both in its hit count and in the answer.

import { createFakeServer } from "./fake-server.mjs";

function credentials(headers) {
  return ["authorization", "x-api-key", "x-goog-api-key"]
    .filter((h) => headers[h])
    .map((h) => `${h}: ${headers[h]}`)
    .join("; ");
}

function formatOf(url) {
  if (/\/messages\/?(\?|$)/.test(url)) return "anthropic";
  if (/generateContent/i.test(url)) return "gemini";
  return "openai";
}

function errorBody(format, status, message) {
  if (format === "anthropic") return { type: "error", error: { type: "authentication_error", message } };
  if (format === "gemini") return { error: { code: status, message, status: "UNAUTHENTICATED" } };
  return { error: { message, type: "invalid_request_error", param: null, code: "invalid_api_key" } };
}

function sseChunk(obj) {
  return `data: ${JSON.stringify(obj)}\n\n`;
}

export async function startHostile({ host = "127.0.0.1" } = {}) {
  const elsewhereHits = [];
  const hits = [];
  let leak = "";
  const elsewhere = createFakeServer("elsewhere", async (req, res, rawBody) => {
    elsewhereHits.push({ url: req.url, headers: { ...req.headers }, body: rawBody });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        id: "chatcmpl-stolen",
        object: "chat.completion",
        created: 0,
        model: "stolen",
        choices: [{ index: 0, message: { role: "assistant", content: "STOLEN" }, finish_reason: "stop" }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      }),
    );
  });
  const { origin: elsewhereOrigin } = await elsewhere.listen(host);

  const srv = createFakeServer("fake-hostile", async (req, res, rawBody) => {
    const m = /^\/h\/([^/]+)\//.exec(req.url);
    const mode = m ? decodeURIComponent(m[1]) : "";
    hits.push({ mode, url: req.url, headers: { ...req.headers }, body: rawBody });
    const format = formatOf(req.url);
    const creds = credentials(req.headers);
    const redirect = /^redirect-(\d{3})$/.exec(mode);
    if (redirect) {
      res.writeHead(Number(redirect[1]), { location: `${elsewhereOrigin}/stolen${req.url}`, "content-type": "text/plain" });
      res.end("moved");
      return;
    }
    if (mode === "echo" || mode === "leak") {
      const message = mode === "echo" ? `Incorrect API key provided (${creds}).` : leak;
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify(errorBody(format, 401, message)));
      return;
    }
    if (mode === "echo-text") {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(`upstream proxy failed; request had ${creds}`);
      return;
    }
    if (mode === "echo-stream") {
      res.writeHead(200, { "content-type": "text/event-stream" });
      const base = { id: "chatcmpl-h", object: "chat.completion.chunk", created: 0, model: "hostile" };
      res.write(sseChunk({ ...base, choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }] }));
      for (const w of ["Hello", " there"]) {
        res.write(sseChunk({ ...base, choices: [{ index: 0, delta: { content: w }, finish_reason: null }] }));
      }
      res.end(sseChunk({ error: { message: `internal error while serving ${creds}`, type: "server_error" } }));
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end(`fake-hostile: unknown mode ${mode}`);
  });
  const { origin } = await srv.listen(host);

  return {
    origin,
    /** Base URL of one mode; `tag` keeps the tables of different tests apart. */
    baseUrl: (mode, tag = "t", suffix = "v1") => `${origin}/h/${encodeURIComponent(mode)}/${tag}/${suffix}`,
    hits: () => hits.length,
    /** The message of the "leak" mode's 401. */
    setLeak(text) {
      leak = text;
    },
    elsewhereHits: () => elsewhereHits.length,
    reset() {
      hits.length = 0;
      elsewhereHits.length = 0;
    },
    async close() {
      await srv.close();
      await elsewhere.close();
    },
  };
}
