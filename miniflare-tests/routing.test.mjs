// Routing at the door, end to end: task classification (x-task header > metadata.task > first
// matching rule > the model as a route > tasks.default), constraints (required tags, per-request
// cost ceiling) that hold during fallback too, and the admin explain endpoint, which shows the
// decision without calling anyone. The strategies (cheapest, weighted, canary, sticky, fastest):
// routing-strategies.test.mjs.

import { test } from "node:test";
import assert from "node:assert/strict";
import { steps } from "./helpers/fake-openai.mjs";
import { chatOnce, errorShape, reasons, FAKE_SECRET, USER_MSG } from "./helpers/worker.mjs";
import { w, setup, delta, h, logLine, messagesOnce, explainReq, useRoutingGateway } from "./helpers/routing-suite.mjs";

useRoutingGateway();

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
