// Routing at the door, end to end: task classification (x-task header > metadata.task > first
// matching rule > the model as a route > tasks.default), and each route's strategy deciding
// which deployments are tried and in which order — constraints (required tags, per-request
// cost ceiling) that hold during fallback too, cheapest, weighted, canary, sticky sessions,
// fastest — plus the admin explain endpoint, which shows the decision without calling anyone.

import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startFake, steps } from "./helpers/fake-openai.mjs";
import { startWorker, fakeTable, chatOnce, errorShape, reasons, FAKE_SECRET, USER_MSG } from "./helpers/worker.mjs";

const ADMIN_TOKEN = "t";
let fake, w;

before(async () => {
  fake = await startFake();
  w = await startWorker({ bindings: { ADMIN_TOKEN } });
});
after(async () => {
  await w?.dispose();
  await fake?.close();
});
beforeEach(() => fake.reset());

// ---------------------------------------------------------------- helpers

let seq = 0;
/**
 * Writes a table whose deployments are fake scenarios named `rt<N>-<deployment>` (unique per
 * call, so a late request of an earlier test is never counted). Deployment entries may add
 * `tags` and `price` ({in, out} USD per million tokens); `tasks` becomes the top-level block.
 * Checks through /healthz that the worker adopted the table (a rejected table would leave the
 * previous one serving and make every assertion below meaningless).
 */
async function setup({ deployments, routes, tasks }) {
  const prefix = `rt${++seq}`;
  const deps = {};
  for (const [name, d] of Object.entries(deployments)) {
    deps[name] = {
      scenario: `${prefix}-${name}`,
      ...(d.price ? { price: { input_per_mtok_usd: d.price.in, output_per_mtok_usd: d.price.out } } : {}),
    };
  }
  const table = fakeTable(fake, { deployments: deps, routes });
  for (const [name, d] of Object.entries(deployments)) if (d.tags) table.deployments[name].tags = d.tags;
  if (tasks) table.tasks = tasks;
  await w.putTable(table);
  const hz = await w.fetch("/healthz");
  const hzJson = await hz.json();
  assert.equal(hzJson.config.error, null, `table rejected: ${hzJson.config.error}`);
  assert.equal(hzJson.config.source, "kv");
  for (const name of Object.keys(deployments)) fake.script(`${prefix}-${name}`, [{ ok: `answer from ${name}` }]);
  const scenario = (dep) => `${prefix}-${dep}`;
  return {
    table,
    scenario,
    script: (dep, list) => fake.script(scenario(dep), list),
    hits: (dep) => fake.hits(scenario(dep)),
    allHits: () => Object.fromEntries(Object.keys(deployments).map((d) => [d, fake.hits(scenario(d))])),
  };
}

/** Which deployments' fakes were called between two allHits() snapshots: {dep: n}. */
function delta(before, after) {
  const out = {};
  for (const [d, n] of Object.entries(after)) if (n !== before[d]) out[d] = n - before[d];
  return out;
}

const h = (r, name) => r.res.headers.get(name);

/** The per-request JSON log line (it is written after the answer; wait briefly). */
async function logLine(res, timeoutMs = 3000) {
  const id = res.headers.get("x-router-request-id");
  assert.ok(id, "x-router-request-id header");
  const t0 = Date.now();
  for (;;) {
    for (const line of w.logs.join("").split("\n")) {
      const i = line.indexOf("{");
      if (i < 0 || !line.includes(id)) continue;
      try {
        const j = JSON.parse(line.slice(i));
        if (j.msg === "request" && j.request_id === id) return j;
      } catch {}
    }
    if (Date.now() - t0 > timeoutMs) return null;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** POST /v1/messages (Anthropic format). */
async function messagesOnce(body, headers = {}) {
  const res = await w.fetch("/v1/messages", {
    method: "POST",
    headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "unused", ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {}
  return { res, status: res.status, text, json };
}

/** `n` chat requests, `parallel` at a time. */
async function many(n, makeBody, { headers = {}, parallel = 10 } = {}) {
  const out = [];
  for (let i = 0; i < n; i += parallel) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + parallel); j++) batch.push(chatOnce(w, makeBody(j), { headers }));
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

function explainReq(payload, token = ADMIN_TOKEN) {
  return w.fetch("/admin/api/explain", {
    method: "POST",
    headers: { "content-type": "application/json", ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(payload),
  });
}

// ---------------------------------------------------------------- classification

const TOOL = { type: "function", function: { name: "lookup", description: "look up", parameters: { type: "object", properties: {} } } };

async function classifyTable() {
  const names = ["sum", "tr", "vip", "code", "long", "tool", "json", "msg", "fast", "gen", "direct"];
  const deployments = Object.fromEntries(names.map((n) => [`cls-${n}`, {}]));
  const routes = Object.fromEntries(names.filter((n) => n !== "direct").map((n) => [`r-${n}`, { chain: [`cls-${n}`] }]));
  routes.direct = { chain: ["cls-direct"] };
  return setup({
    deployments,
    routes,
    tasks: {
      default: "general",
      routes: {
        summarize: "r-sum",
        translate: "r-tr",
        vip: "r-vip",
        code: "r-code",
        long: "r-long",
        tooling: "r-tool",
        structured: "r-json",
        anthropic: "r-msg",
        fast: "r-fast",
        general: "r-gen",
      },
      rules: [
        { name: "vip-tier", when: { header: { "X-Tier": "vip" } }, task: "vip" },
        { name: "messages-api", when: { path: "/v1/messages" }, task: "anthropic" },
        { name: "python", when: { last_user_matches: "(?i)\\bpython\\b" }, task: "code" },
        { name: "long-prompt", when: { min_prompt_tokens: 50 }, task: "long" },
        { name: "with-tools", when: { tools: true }, task: "tooling" },
        { name: "json-mode", when: { json: true }, task: "structured" },
        { name: "auto-fast", when: { model: ["auto-fast"] }, task: "fast" },
      ],
    },
  });
}

test("classification precedence: x-task header > metadata.task > first matching rule > model as a route > tasks.default", async () => {
  const t = await classifyTable();
  const cases = [
    {
      what: "x-task header beats metadata.task and a matching rule",
      body: { model: "auto", messages: USER_MSG, metadata: { task: "translate" } },
      headers: { "x-task": "summarize", "x-tier": "vip" },
      want: { task: "summarize", route: "r-sum", dep: "cls-sum", source: "header" },
    },
    {
      what: "metadata.task beats a matching rule",
      body: { model: "auto", messages: USER_MSG, metadata: { task: "translate" } },
      headers: { "x-tier": "vip" },
      want: { task: "translate", route: "r-tr", dep: "cls-tr", source: "metadata" },
    },
    {
      what: "a matching rule beats the default",
      body: { model: "auto", messages: USER_MSG },
      headers: { "x-tier": "vip" },
      want: { task: "vip", route: "r-vip", dep: "cls-vip", source: "rule:vip-tier" },
    },
    {
      what: "a matching rule beats a model that names a route",
      body: { model: "direct", messages: USER_MSG },
      headers: { "x-tier": "vip" },
      want: { task: "vip", route: "r-vip", dep: "cls-vip", source: "rule:vip-tier" },
    },
    {
      what: "no task applies: the model names the route (back-compat), no task",
      body: { model: "direct", messages: USER_MSG },
      headers: {},
      want: { task: null, route: "direct", dep: "cls-direct", source: "model" },
    },
    {
      what: "nothing matches and the model names no route: the default task",
      body: { model: "auto", messages: USER_MSG },
      headers: {},
      want: { task: "general", route: "r-gen", dep: "cls-gen", source: "default" },
    },
  ];
  for (const c of cases) {
    const before = t.allHits();
    const r = await chatOnce(w, c.body, { headers: c.headers });
    assert.equal(r.status, 200, `${c.what}: ${r.text}`);
    assert.equal(h(r, "x-router-task"), c.want.task, `${c.what}: x-router-task`);
    assert.equal(h(r, "x-router-route"), c.want.route, `${c.what}: x-router-route`);
    assert.equal(h(r, "x-router-deployment"), c.want.dep, `${c.what}: x-router-deployment`);
    assert.equal(r.json.choices[0].message.content, `answer from ${c.want.dep}`, c.what);
    assert.deepEqual(delta(before, t.allHits()), { [c.want.dep]: 1 }, `${c.what}: only ${c.want.dep}'s provider was called`);
    const log = await logLine(r.res);
    assert.ok(log, `${c.what}: log line`);
    assert.equal(log.task, c.want.task, `${c.what}: log task`);
    assert.equal(log.route_source, c.want.source, `${c.what}: log route_source`);
    assert.equal(log.route, c.want.route, `${c.what}: log route`);
  }
});

test("rule conditions: header value, last user message regex, min prompt tokens, tools, json, path, model list", async () => {
  const t = await classifyTable();
  const chatCases = [
    { what: "header with another value", body: { model: "auto", messages: USER_MSG }, headers: { "x-tier": "basic" }, task: "general" },
    { what: "header name matched case-insensitively", body: { model: "auto", messages: USER_MSG }, headers: { "X-TIER": "vip" }, task: "vip" },
    {
      what: "last user message matches the regex",
      body: { model: "auto", messages: [{ role: "user", content: "How do I sort a list in Python?" }] },
      task: "code",
    },
    {
      what: "only the last user message is searched",
      body: {
        model: "auto",
        messages: [
          { role: "user", content: "python question" },
          { role: "assistant", content: "sure" },
          { role: "user", content: "thanks" },
        ],
      },
      task: "general",
    },
    {
      what: "last user message as content parts",
      body: { model: "auto", messages: [{ role: "user", content: [{ type: "text", text: "some PYTHON help" }] }] },
      task: "code",
    },
    { what: "200 chars = 50 prompt tokens reaches min_prompt_tokens 50", body: { model: "auto", messages: [{ role: "user", content: "x".repeat(200) }] }, task: "long" },
    { what: "196 chars = 49 prompt tokens stays below", body: { model: "auto", messages: [{ role: "user", content: "x".repeat(196) }] }, task: "general" },
    { what: "tools", body: { model: "auto", messages: USER_MSG, tools: [TOOL] }, task: "tooling" },
    { what: "json response_format", body: { model: "auto", messages: [{ role: "user", content: "Reply in JSON." }], response_format: { type: "json_object" } }, task: "structured" },
    { what: "model list", body: { model: "auto-fast", messages: USER_MSG }, task: "fast" },
    { what: "rules are tried in order (header rule before the python rule)", body: { model: "auto", messages: [{ role: "user", content: "python" }] }, headers: { "x-tier": "vip" }, task: "vip" },
  ];
  const routeOf = {
    general: ["r-gen", "cls-gen"],
    vip: ["r-vip", "cls-vip"],
    code: ["r-code", "cls-code"],
    long: ["r-long", "cls-long"],
    tooling: ["r-tool", "cls-tool"],
    structured: ["r-json", "cls-json"],
    fast: ["r-fast", "cls-fast"],
    anthropic: ["r-msg", "cls-msg"],
    summarize: ["r-sum", "cls-sum"],
  };
  for (const c of chatCases) {
    const before = t.allHits();
    const r = await chatOnce(w, c.body, { headers: c.headers ?? {} });
    assert.equal(r.status, 200, `${c.what}: ${r.text}`);
    const [route, dep] = routeOf[c.task];
    assert.equal(h(r, "x-router-task"), c.task, `${c.what}: x-router-task`);
    assert.equal(h(r, "x-router-route"), route, `${c.what}: x-router-route`);
    assert.deepEqual(delta(before, t.allHits()), { [dep]: 1 }, `${c.what}: served by ${dep}`);
  }

  // The path condition: the same request through the Anthropic Messages ingress.
  const anth = { model: "auto", max_tokens: 50, messages: [{ role: "user", content: "Say hello." }] };
  let before = t.allHits();
  let m = await messagesOnce(anth);
  assert.equal(m.status, 200, m.text);
  assert.equal(m.json.type, "message", "an Anthropic-shaped answer");
  assert.equal(m.json.content[0].text, "answer from cls-msg");
  assert.equal(m.res.headers.get("x-router-task"), "anthropic");
  assert.equal(m.res.headers.get("x-router-route"), "r-msg");
  assert.deepEqual(delta(before, t.allHits()), { "cls-msg": 1 });
  // ... and an x-task header still beats the path rule there.
  before = t.allHits();
  m = await messagesOnce(anth, { "x-task": "summarize" });
  assert.equal(m.status, 200, m.text);
  assert.equal(m.res.headers.get("x-router-task"), "summarize");
  assert.deepEqual(delta(before, t.allHits()), { "cls-sum": 1 });
  // The chat endpoint's path does not match the /v1/messages rule.
  before = t.allHits();
  const c = await chatOnce(w, { model: "auto", messages: USER_MSG, max_tokens: 50 });
  assert.equal(h(c, "x-router-task"), "general");
  assert.deepEqual(delta(before, t.allHits()), { "cls-gen": 1 });
});

test("unknown task (x-task or metadata.task) -> 400 unknown_task; bad x-max-cost-usd -> 400 invalid_cost_ceiling; unknown model without a default -> 404; no provider called", async () => {
  const t = await setup({
    deployments: { "err-a": {} },
    routes: { "err-route": { chain: ["err-a"] } },
    tasks: { routes: { chat: "err-route" } },
  });
  const before = t.allHits();

  let r = await chatOnce(w, { model: "err-route", messages: USER_MSG }, { headers: { "x-task": "nope" } });
  assert.equal(r.status, 400, r.text);
  let e = errorShape(r.json);
  assert.equal(e.code, "unknown_task");
  assert.equal(e.type, "invalid_request_error");
  assert.equal(e.param, "x-task");
  assert.match(e.message, /nope/);
  assert.match(e.message, /chat/, "the message lists the known tasks");

  r = await chatOnce(w, { model: "err-route", messages: USER_MSG, metadata: { task: "nope2" } });
  assert.equal(r.status, 400, r.text);
  e = errorShape(r.json);
  assert.equal(e.code, "unknown_task");
  assert.match(e.message, /nope2/);

  // Anthropic ingress: same error, Anthropic's shape.
  const m = await messagesOnce({ model: "err-route", max_tokens: 10, messages: USER_MSG }, { "x-task": "nope" });
  assert.equal(m.status, 400, m.text);
  assert.equal(m.json.type, "error");
  assert.equal(m.json.error.type, "invalid_request_error");
  assert.match(m.json.error.message, /nope/);

  for (const bad of ["abc", "-1", "0.5usd", "1e-3", "0.0000000001"]) {
    r = await chatOnce(w, { model: "err-route", messages: USER_MSG }, { headers: { "x-max-cost-usd": bad } });
    assert.equal(r.status, 400, `x-max-cost-usd ${bad}: ${r.text}`);
    e = errorShape(r.json);
    assert.equal(e.code, "invalid_cost_ceiling", `x-max-cost-usd ${bad}`);
    assert.equal(e.param, "x-max-cost-usd");
  }

  r = await chatOnce(w, { model: "no-such-model", messages: USER_MSG });
  assert.equal(r.status, 404, r.text);
  e = errorShape(r.json);
  assert.equal(e.code, "model_not_found");

  assert.deepEqual(t.allHits(), before, "no provider was called for a rejected request");

  // A well-formed ceiling and a known task are served.
  r = await chatOnce(w, { model: "err-route", messages: USER_MSG }, { headers: { "x-task": "chat", "x-max-cost-usd": "1" } });
  assert.equal(r.status, 200, r.text);
  assert.equal(h(r, "x-router-task"), "chat");
});

test(
  "unknown metadata.task: the error's param names metadata.task, not the x-task header the client did not send",
  async () => {
    await setup({
      deployments: { "errp-a": {} },
      routes: { "errp-route": { chain: ["errp-a"] } },
      tasks: { routes: { chat: "errp-route" } },
    });
    const r = await chatOnce(w, { model: "errp-route", messages: USER_MSG, metadata: { task: "nope" } });
    assert.equal(r.status, 400, r.text);
    const e = errorShape(r.json);
    assert.equal(e.code, "unknown_task");
    assert.match(e.message, /metadata\.task/);
    assert.equal(e.param, "metadata.task");
  },
);

// ---------------------------------------------------------------- constraints during fallback

test("cost ceiling holds during fallback: a deployment over the ceiling is never tried, not even as a fallback", async () => {
  // "Say hello." = 10 chars = 3 prompt tokens; max_tokens 100. Estimated cost:
  //   cost-cheap  (1/1 $/Mtok):     103 µ$        cost-pricey (100/100): 10.3 m$
  //   cost-cheap2 (2/2 $/Mtok):     206 µ$        ceiling: 1 m$
  const t = await setup({
    deployments: {
      "cost-cheap": { price: { in: 1, out: 1 } },
      "cost-pricey": { price: { in: 100, out: 100 } },
      "cost-cheap2": { price: { in: 2, out: 2 } },
    },
    routes: { "cost-route": { chain: ["cost-cheap", "cost-pricey", "cost-cheap2"] } },
  });
  t.script("cost-cheap", [steps.r503()]);
  const body = { model: "cost-route", messages: USER_MSG, max_tokens: 100 };

  const r = await chatOnce(w, body, { headers: { "x-max-cost-usd": "0.001" } });
  assert.equal(r.status, 200, r.text);
  assert.equal(h(r, "x-router-deployment"), "cost-cheap2");
  assert.equal(r.json.choices[0].message.content, "answer from cost-cheap2");
  assert.equal(t.hits("cost-pricey"), 0, "the deployment over the ceiling was never called");
  assert.ok(t.hits("cost-cheap") >= 1, "the first deployment was tried");
  const rs = reasons(r.res);
  assert.ok(rs.includes("cost-pricey:skipped_cost_ceiling"), `fallback reasons: ${rs}`);
  assert.ok(rs.some((x) => x.startsWith("cost-cheap:") && x.endsWith(":503")), `fallback reasons: ${rs}`);
  const log = await logLine(r.res);
  assert.ok(log.skipped.some((s) => JSON.stringify(s).includes("cost-pricey")), `log skipped: ${JSON.stringify(log.skipped)}`);

  // Without a ceiling the same failure falls back to the pricey deployment (chain order).
  const free = await chatOnce(w, body);
  assert.equal(free.status, 200, free.text);
  assert.equal(h(free, "x-router-deployment"), "cost-pricey");

  // A ceiling below every deployment: nothing is eligible, nothing is called.
  const hitsBefore = t.allHits();
  const none = await chatOnce(w, body, { headers: { "x-max-cost-usd": "0.00001" } });
  assert.equal(none.status, 400, none.text);
  const e = errorShape(none.json);
  assert.equal(e.code, "no_eligible_deployment");
  assert.match(e.message, /cost-route/);
  assert.deepEqual(t.allHits(), hitsBefore);

  // The estimate uses max_tokens: with a small output limit the pricey one fits
  // (3 + 5 tokens at 100 $/Mtok = 0.8 m$ <= 1 m$).
  const small = await chatOnce(w, { ...body, max_tokens: 5 }, { headers: { "x-max-cost-usd": "0.001" } });
  assert.equal(small.status, 200, small.text);
  assert.equal(h(small, "x-router-deployment"), "cost-pricey");
  assert.ok(!reasons(small.res).some((x) => x.includes("skipped_cost_ceiling")), `reasons: ${reasons(small.res)}`);
});

test("required tags hold during fallback: a deployment without the tag is never tried", async () => {
  const t = await setup({
    deployments: {
      "tag-eu1": { tags: ["eu", "zdr"] },
      "tag-us1": { tags: ["us"] },
      "tag-eu2": { tags: ["eu"] },
    },
    routes: {
      "tag-route": { chain: ["tag-eu1", "tag-us1", "tag-eu2"], require_tags: ["eu"] },
      "tag-any": { chain: ["tag-eu1", "tag-us1", "tag-eu2"] },
    },
  });
  t.script("tag-eu1", [steps.r503()]);
  const r = await chatOnce(w, { model: "tag-route", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(h(r, "x-router-deployment"), "tag-eu2");
  assert.equal(t.hits("tag-us1"), 0, "the deployment lacking the tag was never called");
  assert.ok(t.hits("tag-eu1") >= 1);
  assert.ok(reasons(r.res).includes("tag-us1:skipped_tag"), `reasons: ${reasons(r.res)}`);

  // Control: without require_tags the same failure falls back to the untagged deployment.
  const any = await chatOnce(w, { model: "tag-any", messages: USER_MSG });
  assert.equal(any.status, 200, any.text);
  assert.equal(h(any, "x-router-deployment"), "tag-us1");
  assert.ok(!reasons(any.res).some((x) => x.includes("skipped_tag")));

  // Every eligible deployment failing: the caller gets the failure; the untagged one is still untouched.
  t.script("tag-eu2", [steps.r503()]);
  const usBefore = t.hits("tag-us1");
  const failed = await chatOnce(w, { model: "tag-route", messages: USER_MSG });
  assert.ok(failed.status >= 500, `status ${failed.status}`);
  assert.equal(t.hits("tag-us1"), usBefore, "still not used as a last resort");
});

// ---------------------------------------------------------------- strategies

test("cheapest: the cheapest deployment answers even when listed last; its failure falls back to the next cheapest", async () => {
  const t = await setup({
    deployments: {
      "chp-dear": { price: { in: 10, out: 30 } },
      "chp-mid": { price: { in: 1, out: 3 } },
      "chp-cheap": { price: { in: 0.1, out: 0.3 } },
    },
    routes: { "chp-route": { strategy: "cheapest", chain: ["chp-dear", "chp-mid", "chp-cheap"] } },
  });
  for (let i = 0; i < 3; i++) {
    const r = await chatOnce(w, { model: "chp-route", messages: USER_MSG });
    assert.equal(r.status, 200, r.text);
    assert.equal(h(r, "x-router-deployment"), "chp-cheap");
  }
  assert.deepEqual(t.allHits(), { "chp-dear": 0, "chp-mid": 0, "chp-cheap": 3 });
  t.script("chp-cheap", [steps.r503()]);
  const r = await chatOnce(w, { model: "chp-route", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(h(r, "x-router-deployment"), "chp-mid");
  assert.equal(t.hits("chp-dear"), 0);
});

test("weighted 1:3 over 200 requests: the heavy deployment's share is 0.75 ± 0.12 (≈3.9 sd)", async () => {
  const t = await setup({
    deployments: { "wt-light": {}, "wt-heavy": {} },
    routes: {
      "wt-route": {
        strategy: "weighted",
        chain: [
          { deployment: "wt-light", weight: 1 },
          { deployment: "wt-heavy", weight: 3 },
        ],
      },
    },
  });
  const N = 200;
  const rs = await many(N, () => ({ model: "wt-route", messages: USER_MSG }));
  assert.ok(rs.every((r) => r.status === 200), `statuses: ${rs.map((r) => r.status)}`);
  const heavy = rs.filter((r) => h(r, "x-router-deployment") === "wt-heavy").length;
  const light = rs.filter((r) => h(r, "x-router-deployment") === "wt-light").length;
  assert.equal(heavy + light, N);
  assert.deepEqual(t.allHits(), { "wt-light": light, "wt-heavy": heavy }, "one provider call per request");
  const share = heavy / N;
  assert.ok(Math.abs(share - 0.75) <= 0.12, `heavy share ${share} (${heavy}/${N})`);
});

test("weighted: a weight-0 entry is never picked first but still serves as a fallback", async () => {
  const t = await setup({
    deployments: { "w0-main": {}, "w0-spare": {} },
    routes: {
      "w0-route": {
        strategy: "weighted",
        chain: [
          { deployment: "w0-spare", weight: 0 },
          { deployment: "w0-main", weight: 5 },
        ],
      },
    },
  });
  const rs = await many(20, () => ({ model: "w0-route", messages: USER_MSG }));
  assert.ok(rs.every((r) => h(r, "x-router-deployment") === "w0-main"), rs.map((r) => h(r, "x-router-deployment")).join());
  assert.equal(t.hits("w0-spare"), 0);
  t.script("w0-main", [steps.r503()]);
  const r = await chatOnce(w, { model: "w0-route", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(h(r, "x-router-deployment"), "w0-spare");
});

test("canary 2000 bps over 200 requests: share 0.20 ± 0.09 (≈3.2 sd), x-router-canary exactly on canary-served answers; never a fallback for the rest", async () => {
  const t = await setup({
    deployments: { "can-primary": {}, "can-new": {} },
    routes: { "can-route": { chain: ["can-primary"], canary: { deployment: "can-new", percent_bps: 2000 } } },
  });
  const N = 200;
  const rs = await many(N, () => ({ model: "can-route", messages: USER_MSG }));
  assert.ok(rs.every((r) => r.status === 200), `statuses: ${rs.map((r) => r.status)}`);
  const canary = rs.filter((r) => h(r, "x-router-deployment") === "can-new");
  for (const r of rs) {
    const served = h(r, "x-router-deployment");
    assert.equal(h(r, "x-router-canary"), served === "can-new" ? "true" : null, `served by ${served}, x-router-canary ${h(r, "x-router-canary")}`);
  }
  assert.deepEqual(t.allHits(), { "can-primary": N - canary.length, "can-new": canary.length });
  const share = canary.length / N;
  assert.ok(Math.abs(share - 0.2) <= 0.09, `canary share ${share} (${canary.length}/${N})`);

  // The primary fails: requests outside the canary slice fail rather than fall back to the canary.
  t.script("can-primary", [steps.r503()]);
  t.script("can-new", [{ ok: "answer from can-new" }]);
  const M = 40;
  const fs = await many(M, () => ({ model: "can-route", messages: USER_MSG }));
  const flagged = fs.filter((r) => h(r, "x-router-canary") === "true");
  const unflagged = fs.filter((r) => h(r, "x-router-canary") !== "true");
  assert.equal(t.hits("can-new"), flagged.length, "the canary saw exactly the canary-slice requests");
  for (const r of flagged) {
    assert.equal(r.status, 200, r.text);
    assert.equal(h(r, "x-router-deployment"), "can-new");
  }
  assert.ok(unflagged.length >= 1, "some requests outside the canary slice");
  for (const r of unflagged) {
    assert.ok(r.status >= 500, `outside the canary slice with the primary down: ${r.status} ${r.text}`);
    assert.ok(!reasons(r.res).some((x) => x.startsWith("can-new")), `reasons: ${reasons(r.res)}`);
  }
});

test("canary drawn but failing: the chain is the fallback and the answer is still marked as canary traffic", async () => {
  const t = await setup({
    deployments: { "cf-primary": {}, "cf-new": {} },
    routes: { "cf-route": { chain: ["cf-primary"], canary: { deployment: "cf-new", percent_bps: 10000 } } },
  });
  t.script("cf-new", [steps.r503()]);
  const r = await chatOnce(w, { model: "cf-route", messages: USER_MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(h(r, "x-router-deployment"), "cf-primary");
  assert.equal(h(r, "x-router-canary"), "true");
  assert.ok(t.hits("cf-new") >= 1);
  assert.ok(reasons(r.res).some((x) => x.startsWith("cf-new:")), `reasons: ${reasons(r.res)}`);
});

test("sticky sessions: same session same deployment, sessions spread, failover moves the session until its ttl, body `user` is a session id", async () => {
  const deps = ["stk-a", "stk-b", "stk-c", "stk-d"];
  const t = await setup({
    deployments: Object.fromEntries(deps.map((d) => [d, {}])),
    routes: {
      "stk-route": { chain: deps, sticky: { ttl_ms: 60000 } },
      "stk-short": { chain: deps, sticky: { ttl_ms: 400 } },
      "stk-none": { chain: deps },
    },
  });
  const ask = (model, session, extra = {}) =>
    chatOnce(w, { model, messages: USER_MSG, ...extra }, { headers: session ? { "x-session-id": session } : {} });

  // Same session → same deployment, every time.
  const first = await ask("stk-route", "sess-A");
  const homeA = h(first, "x-router-deployment");
  assert.ok(deps.includes(homeA), homeA);
  assert.equal(h(first, "x-router-sticky"), "true");
  for (let i = 0; i < 9; i++) {
    const r = await ask("stk-route", "sess-A");
    assert.equal(r.status, 200, r.text);
    assert.equal(h(r, "x-router-deployment"), homeA, `request ${i + 2} of session A`);
    assert.equal(h(r, "x-router-sticky"), "true");
  }
  assert.equal(t.hits(homeA), 10);

  // Different sessions spread over the deployments.
  const homes = new Map();
  for (let i = 0; i < 20; i++) {
    const r = await ask("stk-route", `sess-spread-${i}`);
    homes.set(`sess-spread-${i}`, h(r, "x-router-deployment"));
  }
  const used = new Set(homes.values());
  assert.ok(used.size >= 2, `20 sessions used ${[...used]}`);
  // Without sticky on the route, sessions are ignored: chain order.
  const plain = await ask("stk-none", "sess-spread-0");
  assert.equal(h(plain, "x-router-deployment"), "stk-a");
  assert.equal(h(plain, "x-router-sticky"), null);

  // x-session-id wins over the body's user.
  const other = [...homes.entries()].find(([, d]) => d !== homeA);
  assert.ok(other, "some session lives elsewhere than session A");
  const both = await ask("stk-route", "sess-A", { user: other[0] });
  assert.equal(h(both, "x-router-deployment"), homeA);

  // `user` alone is the session id: the same deployment as x-session-id with that value.
  for (let i = 0; i < 3; i++) {
    const r = await chatOnce(w, { model: "stk-route", messages: USER_MSG, user: other[0] });
    assert.equal(h(r, "x-router-deployment"), other[1], `user=${other[0]}`);
    assert.equal(h(r, "x-router-sticky"), "true");
  }

  // The session's deployment fails: fallback, and the session stays on its new deployment
  // after the original recovers.
  t.script(homeA, [steps.r503()]);
  const moved = await ask("stk-route", "sess-A");
  assert.equal(moved.status, 200, moved.text);
  const newHome = h(moved, "x-router-deployment");
  assert.notEqual(newHome, homeA);
  assert.ok(reasons(moved.res).some((x) => x.startsWith(`${homeA}:`)), `reasons: ${reasons(moved.res)}`);
  t.script(homeA, [{ ok: `answer from ${homeA}` }]); // recovered (resets its hit count)
  for (let i = 0; i < 5; i++) {
    const r = await ask("stk-route", "sess-A");
    assert.equal(h(r, "x-router-deployment"), newHome, `after failover, request ${i + 1}`);
    assert.equal(h(r, "x-router-sticky"), "true");
  }
  assert.equal(t.hits(homeA), 0, "the recovered original is not used while the session is remembered elsewhere");

  // Same on a route with a short ttl: once it expires, the session returns to its hash home.
  const s1 = await ask("stk-short", "sess-B");
  const homeB = h(s1, "x-router-deployment");
  t.script(homeB, [steps.r503()]);
  const m = await ask("stk-short", "sess-B");
  const movedB = h(m, "x-router-deployment");
  assert.notEqual(movedB, homeB);
  t.script(homeB, [{ ok: `answer from ${homeB}` }]);
  assert.equal(h(await ask("stk-short", "sess-B"), "x-router-deployment"), movedB, "within the ttl: stays moved");
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(h(await ask("stk-short", "sess-B"), "x-router-deployment"), homeB, "after the ttl: back to its hash home");
});

test(
  "sticky: a session stays on the deployment that answered it when a hot reload adds an unrelated deployment",
  async () => {
    const deps = ["stk2-b", "stk2-c", "stk2-d", "stk2-e"];
    const t = await setup({
      deployments: Object.fromEntries(deps.map((d) => [d, {}])),
      routes: { "stk2-route": { chain: deps, sticky: { ttl_ms: 60000 } } },
    });
    const ask = async (s) => {
      const r = await chatOnce(w, { model: "stk2-route", messages: USER_MSG }, { headers: { "x-session-id": s } });
      assert.equal(r.status, 200, r.text);
      return h(r, "x-router-deployment");
    };
    const before = {};
    for (let i = 0; i < 12; i++) before[`reload-${i}`] = await ask(`reload-${i}`);
    // Same table plus one deployment that no route uses, named so that it sorts first.
    t.table.deployments["stk2-a"] = { ...t.table.deployments["stk2-b"], model: "up-stk2-a" };
    await w.putTable(t.table);
    const hz = await (await w.fetch("/healthz")).json();
    assert.equal(hz.config.error, null);
    const after = {};
    for (const s of Object.keys(before)) after[s] = await ask(s);
    assert.deepEqual(after, before, "sessions kept their deployments across an unrelated config change");
  },
);

test("fastest: after both deployments are measured, traffic goes to the faster one", async () => {
  const t = await setup({
    deployments: { "fst-slow": {}, "fst-quick": {} },
    routes: {
      "fst-route": { strategy: "fastest", chain: ["fst-slow", "fst-quick"] },
      "fst-only-slow": { chain: ["fst-slow"] },
      "fst-only-quick": { chain: ["fst-quick"] },
    },
  });
  t.script("fst-slow", [{ ok: "answer from fst-slow", delayMs: 150 }]);
  // Unmeasured: chain order.
  const cold = await chatOnce(w, { model: "fst-route", messages: USER_MSG });
  assert.equal(h(cold, "x-router-deployment"), "fst-slow");
  for (let i = 0; i < 3; i++) {
    assert.equal((await chatOnce(w, { model: "fst-only-slow", messages: USER_MSG })).status, 200);
    assert.equal((await chatOnce(w, { model: "fst-only-quick", messages: USER_MSG })).status, 200);
  }
  // Speeds reach the isolate with the deployment objects' replies (batched, within ~1 s).
  const t0 = Date.now();
  let r;
  for (;;) {
    r = await chatOnce(w, { model: "fst-route", messages: USER_MSG });
    assert.equal(r.status, 200, r.text);
    if (h(r, "x-router-deployment") === "fst-quick" || Date.now() - t0 > 5000) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  assert.equal(h(r, "x-router-deployment"), "fst-quick", `switched after ${Date.now() - t0} ms`);
  for (let i = 0; i < 5; i++) {
    const again = await chatOnce(w, { model: "fst-route", messages: USER_MSG });
    assert.equal(h(again, "x-router-deployment"), "fst-quick", `request ${i + 1} after the switch`);
  }
  // The slow one is still the fallback.
  t.script("fst-quick", [steps.r503()]);
  const fb = await chatOnce(w, { model: "fst-route", messages: USER_MSG });
  assert.equal(fb.status, 200, fb.text);
  assert.equal(h(fb, "x-router-deployment"), "fst-slow");
});

// ---------------------------------------------------------------- explain

test("POST /admin/api/explain shows classification, strategy and every candidate kept or removed, calling no provider; 401 without the token", async () => {
  const t = await setup({
    deployments: {
      "exp-eu": { tags: ["eu"], price: { in: 1, out: 1 } },
      "exp-us": { tags: ["us"], price: { in: 1, out: 1 } },
      "exp-eu-dear": { tags: ["eu"], price: { in: 100, out: 100 } },
    },
    routes: {
      "exp-route": { strategy: "cheapest", require_tags: ["eu"], chain: ["exp-eu-dear", "exp-us", "exp-eu"] },
      "exp-plain": { chain: ["exp-us"] },
    },
    tasks: {
      routes: { gdpr: "exp-route", plain: "exp-plain" },
      rules: [{ name: "eu-customers", when: { header: { "x-region": "eu" } }, task: "gdpr" }],
    },
  });
  const body = { model: "auto", messages: USER_MSG, max_tokens: 100 };
  const headers = { "x-region": "eu", "x-max-cost-usd": "0.001" };

  const res = await explainReq({ body, headers });
  assert.equal(res.status, 200);
  const ex = await res.json();
  assert.deepEqual(ex.classification, { task: "gdpr", route: "exp-route", source: "rule:eu-customers" });
  assert.equal(ex.strategy, "cheapest");
  assert.equal(ex.plan.route, "exp-route");
  const byName = Object.fromEntries(ex.plan.candidates.map((c) => [c.deployment, c]));
  assert.deepEqual(Object.keys(byName).sort(), ["exp-eu", "exp-eu-dear", "exp-us"]);
  assert.equal(byName["exp-eu"].kept, true);
  assert.equal(byName["exp-eu"].reason, null);
  assert.equal(byName["exp-us"].kept, false);
  assert.equal(byName["exp-us"].reason, "tag");
  assert.deepEqual(byName["exp-us"].missing_tags, ["eu"]);
  assert.equal(byName["exp-eu-dear"].kept, false);
  assert.equal(byName["exp-eu-dear"].reason, "cost_ceiling");
  assert.deepEqual(ex.plan.order, ["exp-eu"]);
  assert.deepEqual(t.allHits(), { "exp-eu": 0, "exp-us": 0, "exp-eu-dear": 0 }, "explain called no provider");

  // The real request does what explain said.
  const real = await chatOnce(w, body, { headers });
  assert.equal(real.status, 200, real.text);
  assert.equal(h(real, "x-router-deployment"), "exp-eu");
  assert.equal(h(real, "x-router-task"), "gdpr");
  const rs = reasons(real.res);
  assert.ok(rs.includes("exp-us:skipped_tag") && rs.includes("exp-eu-dear:skipped_cost_ceiling"), `reasons: ${rs}`);
  assert.deepEqual(t.allHits(), { "exp-eu": 1, "exp-us": 0, "exp-eu-dear": 0 });

  // Without a ceiling, cheapest orders the two eu deployments by price.
  const ex2 = await (await explainReq({ body, headers: { "x-region": "eu" } })).json();
  assert.deepEqual(ex2.plan.order, ["exp-eu", "exp-eu-dear"]);
  // Explicit task via header; the Anthropic path.
  const ex3 = await (await explainReq({ body, headers: { "x-task": "plain" } })).json();
  assert.deepEqual(ex3.classification, { task: "plain", route: "exp-plain", source: "header" });
  assert.equal(ex3.strategy, "ordered");
  const ex4res = await explainReq({ path: "/v1/messages", body: { model: "exp-plain", max_tokens: 10, messages: USER_MSG } });
  assert.equal(ex4res.status, 200);
  const ex4 = await ex4res.json();
  assert.deepEqual(ex4.classification, { task: null, route: "exp-plain", source: "model" });
  // Errors are the request's errors.
  const bad = await explainReq({ body, headers: { "x-task": "nope" } });
  assert.equal(bad.status, 400);
  assert.equal(errorShape(await bad.json()).code, "unknown_task");

  // No token / wrong token → 401, and nothing is explained.
  for (const token of [null, "wrong"]) {
    const r = await explainReq({ body, headers }, token);
    assert.equal(r.status, 401, `token ${token}`);
    const j = await r.json();
    assert.equal(errorShape(j).type, "authentication_error");
    assert.equal(j.classification, undefined);
  }
  assert.deepEqual(t.allHits(), { "exp-eu": 1, "exp-us": 0, "exp-eu-dear": 0 }, "explain never calls a provider");
});

test("no response carries the provider secret", async () => {
  const seen = await w.allSeen();
  assert.ok(seen.length >= 50, `responses recorded: ${seen.length}`);
  for (const e of seen) {
    assert.ok(!JSON.stringify(e.headers).includes(FAKE_SECRET), `secret in headers of ${e.url}`);
    assert.ok(!e.body.includes(FAKE_SECRET), `secret in body of ${e.url}`);
  }
});
