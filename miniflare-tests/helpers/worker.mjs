// Starts the built gateway (build/index.js + wasm, from `bash scripts/build.sh`) in Miniflare 4
// (one workerd process per test file) and offers small helpers to talk to it.

import { Miniflare } from "miniflare";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
// GATEWAY_SCRIPT overrides the script (e.g. to check the harness against a stand-in worker).
export const SCRIPT_PATH = process.env.GATEWAY_SCRIPT
  ? path.resolve(process.env.GATEWAY_SCRIPT)
  : path.join(REPO_ROOT, "build", "index.js");
export const FAKE_SECRET = "sk-fake-secret-123";
export const TABLE_KEY = "routing-table";
export const KV_BINDING = "ROUTER_CONFIG";

/** compatibility_date / compatibility_flags / [vars] from wrangler.toml when present. */
function wranglerCompat() {
  const out = { compatibilityDate: "2026-04-20", compatibilityFlags: [], vars: {} };
  const file = path.join(REPO_ROOT, "wrangler.toml");
  if (!existsSync(file)) return out;
  const text = readFileSync(file, "utf8");
  const date = /^\s*compatibility_date\s*=\s*"([^"]+)"/m.exec(text);
  if (date) out.compatibilityDate = date[1];
  const flags = /^\s*compatibility_flags\s*=\s*\[([^\]]*)\]/m.exec(text);
  if (flags) out.compatibilityFlags = [...flags[1].matchAll(/"([^"]+)"/g)].map((m) => m[1]);
  // Plain string [vars] (top-level section only), so the worker sees what `wrangler dev` gives it.
  const vars = /^\[vars\]\s*$([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(text);
  if (vars) for (const m of vars[1].matchAll(/^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"([^"]*)"/gm)) out.vars[m[1]] = m[2];
  return out;
}

/** Values of the bindings that are secrets (provider keys, admin tokens) for the secret scan. */
function secretsOf(bindings) {
  const all = { FAKE_API_KEY: FAKE_SECRET, ...bindings };
  return Object.entries(all)
    .filter(([k, v]) => /KEY|SECRET|TOKEN/.test(k) && typeof v === "string" && v.length >= 8)
    .map(([, v]) => v);
}

/**
 * When SECRET_SCAN_DIR is set (scripts/test.sh sets it), every worker writes what it produced
 * (every log line, every recorded response) and its secret values there when disposed;
 * miniflare-tests/zz-secret-scan.test.mjs, which runs last, scans all of it.
 */
async function dumpForSecretScan(w, allLogs, secrets) {
  const dir = process.env.SECRET_SCAN_DIR;
  if (!dir) return;
  const seen = await w.allSeen(2000);
  const file = path.join(dir, `${path.basename(process.argv[1] ?? "test")}-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
  const { writeFileSync } = await import("node:fs");
  writeFileSync(
    file,
    JSON.stringify({
      source: process.argv[1],
      secrets,
      logs: allLogs.join(""),
      responses: seen.map((e) => ({ url: e.url, status: e.status, headers: e.headers, body: e.body })),
    }),
  );
}

/**
 * Start the worker.
 * @param {object} [opts]
 * @param {object} [opts.table]     routing table written to KV before the first request (omit = no KV key)
 * @param {object} [opts.bindings]  extra/overriding plain string bindings (vars and secrets)
 * @param {string} [opts.persistDir] keep Durable Object and KV storage in this folder (restart tests)
 */
export async function startWorker({ table, bindings = {}, persistDir } = {}) {
  if (!existsSync(SCRIPT_PATH)) {
    throw new Error(`${SCRIPT_PATH} is missing: run \`bash scripts/build.sh\` first`);
  }
  const logs = [];
  const allLogs = []; // untruncated, only kept for the secret scan
  const seen = []; // every response received through w.fetch / w.recordingFetch: {url,status,headers,body}
  const collect = (stream, name) => {
    stream.setEncoding?.("utf8");
    stream.on("data", (d) => {
      logs.push(`[${name}] ${d}`);
      if (process.env.SECRET_SCAN_DIR) allLogs.push(d);
      if (logs.length > 2000) logs.splice(0, 1000);
      if (process.env.WORKER_LOGS) process.stderr.write(`[workerd ${name}] ${d}`);
    });
  };
  const compat = wranglerCompat();
  const mf = new Miniflare({
    host: "127.0.0.1",
    port: 0,
    modules: true,
    scriptPath: SCRIPT_PATH,
    modulesRoot: path.dirname(SCRIPT_PATH),
    modulesRules: [
      { type: "ESModule", include: ["**/*.js"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    compatibilityDate: compat.compatibilityDate,
    compatibilityFlags: compat.compatibilityFlags,
    cf: false,
    kvNamespaces: [KV_BINDING],
    durableObjects: {
      DEPLOYMENTS: { className: "DeploymentState", useSQLite: true },
      KEYS: { className: "KeyState", useSQLite: true },
      TABLE_LOG: { className: "TableLog", useSQLite: true },
    },
    ...(persistDir
      ? { durableObjectsPersist: path.join(persistDir, "do"), kvPersist: path.join(persistDir, "kv") }
      : {}),
    bindings: {
      ...compat.vars,
      AUTH_MODE: "open",
      CONFIG_CACHE_TTL_MS: "0",
      FAKE_API_KEY: FAKE_SECRET,
      ...bindings,
    },
    handleRuntimeStdio(stdout, stderr) {
      collect(stdout, "out");
      collect(stderr, "err");
    },
  });
  let url;
  try {
    url = (await mf.ready).toString(); // "http://127.0.0.1:PORT/"
  } catch (err) {
    await mf.dispose().catch(() => {});
    err.message += `\n--- workerd output ---\n${logs.join("")}`;
    throw err;
  }
  const kv = await mf.getKVNamespace(KV_BINDING);

  const w = {
    mf,
    url,
    logs,
    /** base URL for the OpenAI SDK */
    v1: url + "v1",
    async putTable(obj) {
      await kv.put(TABLE_KEY, JSON.stringify(obj));
    },
    async putRaw(text) {
      await kv.put(TABLE_KEY, text);
    },
    async deleteTable() {
      await kv.delete(TABLE_KEY);
    },
    seen,
    /** fetch that records every response (headers + full body text) for the secret-leak checks. */
    async recordingFetch(input, init) {
      const res = await fetch(input, init);
      const entry = { url: String(input?.url ?? input), status: res.status, headers: headersObject(res.headers), body: "" };
      seen.push(entry);
      if (res.body) {
        const copy = res.clone();
        entry.done = copy.text().then(
          (t) => (entry.body = t),
          () => {},
        );
      }
      return res;
    },
    /** Wait (bounded) until every recorded body has been read, then return all of them. */
    async allSeen(timeoutMs = 3000) {
      await Promise.race([
        Promise.all(seen.map((e) => e.done)),
        new Promise((r) => setTimeout(r, timeoutMs).unref()),
      ]);
      return seen;
    },
    /** Real fetch against the worker's socket. `p` starts with "/". */
    fetch(p, init = {}) {
      return w.recordingFetch(url + p.replace(/^\//, ""), { signal: AbortSignal.timeout(20_000), ...init });
    },
    /** POST /v1/chat/completions with a JSON body; returns the Response. */
    chat(body, { headers = {}, signal } = {}) {
      return w.fetch("/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: typeof body === "string" ? body : JSON.stringify(body),
        ...(signal ? { signal } : {}),
      });
    },
    async dispose() {
      await mf.dispose();
      await dumpForSecretScan(w, allLogs, secretsOf(bindings));
    },
  };
  // Warm-up: the first request instantiates the wasm module (~1 s), which would otherwise count
  // against the timing assertions of whichever test runs first.
  const warm = await fetch(url + "healthz", { signal: AbortSignal.timeout(20_000) });
  await warm.arrayBuffer();
  if (table !== undefined) await w.putTable(table);
  return w;
}

// ---------------------------------------------------------------------------------------------
// Routing-table builders

// connect_ms < first_token_ms so that "no headers at all" is unambiguously timeout_connect.
export const FAST_TIMEOUTS = { connect_ms: 500, first_token_ms: 800, idle_ms: 500, attempt_ms: 2000 };
export const FAST_RETRY = { max_attempts: 2, backoff_base_ms: 20, backoff_max_ms: 50, max_retry_after_ms: 3000 };

/**
 * Build a routing table where every deployment is an `openai` provider pointing at one scenario of
 * the fake. `deployments` maps a deployment name to { scenario?, model?, context_window?, timeouts?, retry? }
 * (scenario defaults to the deployment name); `routes` maps a public name to { chain, ...route options }.
 */
export function fakeTable(fake, { deployments, routes, defaults = {}, providerHeaders } = {}) {
  const providers = {};
  const deps = {};
  for (const [name, d] of Object.entries(deployments)) {
    const scenario = d.scenario ?? name;
    const provName = `p-${name}`;
    providers[provName] = {
      kind: "openai",
      base_url: fake.baseUrl(scenario),
      api_key_secret: "FAKE_API_KEY",
      ...(providerHeaders ? { headers: providerHeaders } : {}),
    };
    deps[name] = {
      provider: provName,
      model: d.model ?? `up-${name}`,
      context_window: d.context_window ?? 128000,
      price: { input_per_mtok_usd: 0.15, output_per_mtok_usd: 0.6 },
      ...(d.timeouts ? { timeouts: d.timeouts } : {}),
      ...(d.retry ? { retry: d.retry } : {}),
      ...(d.breaker ? { breaker: d.breaker } : {}),
      ...(d.limits ? { limits: d.limits } : {}),
      ...(d.price ? { price: d.price } : {}),
    };
  }
  return {
    version: 1,
    defaults: {
      retry: { ...FAST_RETRY, ...(defaults.retry ?? {}) },
      timeouts: { ...FAST_TIMEOUTS, ...(defaults.timeouts ?? {}) },
      request_timeout_ms: defaults.request_timeout_ms ?? 15000,
      // Breakers off unless a test is about them: other tests reuse deployment names, and a
      // breaker opened by one test must not skip a deployment in the next.
      breaker: defaults.breaker ?? { enabled: false },
      ...(defaults.estimated_output_tokens ? { estimated_output_tokens: defaults.estimated_output_tokens } : {}),
    },
    providers,
    deployments: deps,
    routes,
  };
}

/**
 * Per-test routing tables with scenario names that never repeat inside a test file, so a late
 * request left over from an earlier test can never be counted by a later one.
 *   const t = await scenarioTable(w, fake, { deployments: { primary: {}, secondary: {} }, routes: {...} });
 *   t.script("primary", [...]); t.hits("primary"); t.requests("primary");
 */
let tableSeq = 0;
export async function scenarioTable(w, fake, { deployments, routes, defaults, providerHeaders }) {
  const prefix = `t${++tableSeq}`;
  const deps = {};
  for (const [name, d] of Object.entries(deployments)) deps[name] = { ...d, scenario: `${prefix}-${name}` };
  const table = fakeTable(fake, { deployments: deps, routes, defaults, providerHeaders });
  await w.putTable(table);
  return {
    table,
    scenario: (dep) => `${prefix}-${dep}`,
    script: (dep, stepList) => fake.script(`${prefix}-${dep}`, stepList),
    hits: (dep) => fake.hits(`${prefix}-${dep}`),
    requests: (dep) => fake.requests(`${prefix}-${dep}`),
    /** {dep: hits} for all deployments, for one deepEqual assertion */
    allHits: () => Object.fromEntries(Object.keys(deployments).map((d) => [d, fake.hits(`${prefix}-${d}`)])),
  };
}

/**
 * Like scenarioTable, for tables mixing provider kinds. Each deployment names its `fake` (the
 * fake's `kind` decides the provider kind: "anthropic" / "gemini"; fakes without one, like
 * helpers/fake-openai.mjs, are "openai") or is `{ kind: "mock", mock: {...} }`. Optional per
 * deployment: model, context_window, capabilities, timeouts, retry, provider (extra provider
 * fields such as anthropic_version or max_tokens_default).
 *   const t = await mixedTable(w, { deployments: { claude: { fake: fakeA }, gpt: { fake: fakeO } }, routes });
 *   t.script("claude", [...]); t.hits("claude"); t.requests("claude"); t.allHits();
 */
export async function mixedTable(w, { deployments, routes, defaults = {} }) {
  const prefix = `m${++tableSeq}`;
  const providers = {};
  const deps = {};
  const fakes = {};
  for (const [name, d] of Object.entries(deployments)) {
    const provName = `p-${name}`;
    const kind = d.kind ?? d.fake?.kind ?? "openai";
    if (kind === "mock") {
      providers[provName] = { kind: "mock", ...(d.mock ? { mock: d.mock } : {}), ...(d.provider ?? {}) };
    } else {
      if (!d.fake) throw new Error(`mixedTable: deployment ${name} needs a fake`);
      fakes[name] = d.fake;
      providers[provName] = {
        kind,
        base_url: d.fake.baseUrl(`${prefix}-${name}`),
        api_key_secret: "FAKE_API_KEY",
        ...(d.provider ?? {}),
      };
    }
    deps[name] = {
      provider: provName,
      model: d.model ?? `up-${name}`,
      context_window: d.context_window ?? 128000,
      price: { input_per_mtok_usd: 0.15, output_per_mtok_usd: 0.6 },
      ...(d.capabilities ? { capabilities: d.capabilities } : {}),
      ...(d.timeouts ? { timeouts: d.timeouts } : {}),
      ...(d.retry ? { retry: d.retry } : {}),
      ...(d.breaker ? { breaker: d.breaker } : {}),
      ...(d.limits ? { limits: d.limits } : {}),
      ...(d.price ? { price: d.price } : {}),
    };
  }
  const table = {
    version: 1,
    defaults: {
      retry: { ...FAST_RETRY, ...(defaults.retry ?? {}) },
      timeouts: { ...FAST_TIMEOUTS, ...(defaults.timeouts ?? {}) },
      request_timeout_ms: defaults.request_timeout_ms ?? 15000,
      breaker: defaults.breaker ?? { enabled: false },
    },
    providers,
    deployments: deps,
    routes,
  };
  await w.putTable(table);
  const fakeOf = (dep) => {
    const f = fakes[dep];
    if (!f) throw new Error(`mixedTable: ${dep} has no fake`);
    return f;
  };
  return {
    table,
    scenario: (dep) => `${prefix}-${dep}`,
    script: (dep, stepList) => fakeOf(dep).script(`${prefix}-${dep}`, stepList),
    hits: (dep) => fakeOf(dep).hits(`${prefix}-${dep}`),
    requests: (dep) => fakeOf(dep).requests(`${prefix}-${dep}`),
    /** {dep: hits} for every deployment backed by a fake */
    allHits: () => Object.fromEntries(Object.keys(fakes).map((d) => [d, fakes[d].hits(`${prefix}-${d}`)])),
  };
}

// ---------------------------------------------------------------------------------------------
// Response helpers

/** A response read whole: {res, status, text, json} (json undefined when the body is not JSON). */
export async function answerOf(res) {
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {}
  return { res, status: res.status, text, json };
}

/** POST a chat request, read the whole body; returns {res, status, text, json, elapsedMs}. */
export async function chatOnce(w, body, opts) {
  const t0 = Date.now();
  const answer = await answerOf(await w.chat(body, opts));
  return { ...answer, elapsedMs: Date.now() - t0 };
}

/** POST /v1/messages (Anthropic ingress), raw. */
export async function messagesOnce(w, body, headers = {}) {
  const res = await w.fetch("/v1/messages", {
    method: "POST",
    headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", ...headers },
    body: JSON.stringify(body),
  });
  return answerOf(res);
}

/** POST a streaming chat request and read the stream; returns readStream()'s result plus res. */
export async function chatStream(w, body, { timeoutMs = 10_000, ...opts } = {}) {
  const t0 = Date.now();
  const res = await w.chat({ stream: true, ...body }, opts);
  const headersMs = Date.now() - t0;
  const r = await readStream(res, { timeoutMs });
  return { res, status: res.status, headersMs, ...r, elapsedMs: Date.now() - t0 };
}

/** Assert an OpenAI-shaped error body {error:{message,type,code,param}}. */
export function errorShape(json) {
  if (!json || typeof json !== "object" || !json.error || typeof json.error !== "object") {
    throw new Error(`not an OpenAI error body: ${JSON.stringify(json)}`);
  }
  const e = json.error;
  for (const k of ["message", "type", "code", "param"]) {
    if (!(k in e)) throw new Error(`error body lacks "${k}": ${JSON.stringify(json)}`);
  }
  if (typeof e.message !== "string" || e.message.length === 0) throw new Error(`error.message empty: ${JSON.stringify(json)}`);
  return e;
}

export const USER_MSG = [{ role: "user", content: "Say hello." }];

/** Parse an SSE body (string) into events: {data: string, json: object|undefined}. */
export function parseSse(text) {
  const events = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    const lines = block.split(/\r?\n/).filter((l) => l.startsWith("data:"));
    if (lines.length === 0) continue;
    const data = lines.map((l) => l.slice(5).replace(/^ /, "")).join("\n");
    let json;
    try {
      json = JSON.parse(data);
    } catch {}
    events.push({ data, json });
  }
  return events;
}

/** Concatenated delta.content of all chunks. */
export function sseContent(events) {
  let s = "";
  for (const e of events) for (const c of e.json?.choices ?? []) s += c.delta?.content ?? "";
  return s;
}

/**
 * Read a streaming Response to its end (or until `timeoutMs`), returning text, events and timing.
 * Never throws on a cut connection: `error` says what happened.
 */
export async function readStream(res, { timeoutMs = 10_000 } = {}) {
  const t0 = Date.now();
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let text = "";
  let error = null;
  let timedOut = false;
  let doneAt = null; // ms since start when "data: [DONE]" was first seen
  const timer = setTimeout(() => {
    timedOut = true;
    reader.cancel().catch(() => {});
  }, timeoutMs);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
      if (doneAt === null && text.includes("data: [DONE]")) doneAt = Date.now() - t0;
    }
  } catch (err) {
    error = err;
  } finally {
    clearTimeout(timer);
  }
  return { text, events: parseSse(text), error, timedOut, elapsedMs: Date.now() - t0, doneAt };
}

/** The headers as a plain object, for assertions about secrets. */
export function headersObject(h) {
  const o = {};
  h.forEach((v, k) => (o[k] = v));
  return o;
}

/** Split x-router-fallback-reasons into entries. */
export function reasons(res) {
  const h = res.headers.get("x-router-fallback-reasons");
  return h ? h.split(", ") : [];
}

// ---------------------------------------------------------------------------------------------
// Memory

/**
 * RSS (MB) of the workerd processes descended from this node process (only ours): `mb` now
 * (VmRSS) and `peakMb`, the most each process ever held (VmHWM, summed), which also sees memory
 * held only for a moment and given back since.
 */
export function workerdRssMb() {
  const parent = new Map();
  const comm = new Map();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      comm.set(Number(d), stat.slice(stat.indexOf("(") + 1, close));
      parent.set(Number(d), Number(stat.slice(close + 2).split(" ")[1]));
    } catch {}
  }
  const ours = (pid) => {
    for (let p = parent.get(pid), hops = 0; p && hops < 10; p = parent.get(p), hops++) if (p === process.pid) return true;
    return false;
  };
  let kb = 0;
  let peakKb = 0;
  let n = 0;
  for (const [pid, name] of comm) {
    if (!name.startsWith("workerd") || !ours(pid)) continue;
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
      if (m) {
        kb += Number(m[1]);
        peakKb += Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? m[1]);
        n++;
      }
    } catch {}
  }
  return { mb: Math.round(kb / 1024), peakMb: Math.round(peakKb / 1024), processes: n };
}

/** The request's JSON log line from the worker's output (waits up to 1 s for it). */
export async function logOf(worker, requestId) {
  for (let i = 0; i < 50; i++) {
    const line = worker.logs
      .join("")
      .split("\n")
      .find((l) => l.includes(`"request_id":"${requestId}"`));
    if (line) return JSON.parse(line.slice(line.indexOf("{")));
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no log line for ${requestId}`);
}
