// The dashboard's routes panel and key money view (#17 part 4, #15 part 6) in a real headless
// Chromium (Debian's `chromium`, driven by playwright-core), against the built worker in workerd
// with a fake OpenAI-compatible provider on 127.0.0.1 and a gateway key with budgets: after a
// request that fell back, one answered from the response cache and answers with cached prompt
// tokens, the panel shows each route's requests, fallback rate, cache hits, cost and savings,
// each deployment's failover rate and p95, the key's spend and budget use; the window buttons
// (6 h / 24 h / 48 h) re-read the figures for that window.
//
// One screenshot per step in artifacts/screenshots/money-NN-<step>.png. Without Chromium the
// suite is skipped locally but fails under CI=true (CI must install it: scripts/setup.sh).

import { test, describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { startFake } from "./helpers/fake-openai.mjs";
import { startWorker, chatOnce, USER_MSG, KV_BINDING } from "./helpers/worker.mjs";
import { browserSuiteSkip, launchBrowser, dashboardPage, logIn } from "./helpers/browser.mjs";

const ADMIN = "admin-token-money-test";
const skip = browserSuiteSkip();

/** `chat` falls back from gpt-main (openai) to llama-fast (groq); `faq` caches llama-fast's answers. */
function gatewayTable(fake) {
  // input $1, cached input $0.10, output $2 per million tokens
  const price = { input_per_mtok_usd: 1, output_per_mtok_usd: 2, cached_input_per_mtok_usd: "0.10" };
  return {
    version: 1,
    defaults: {
      retry: { max_attempts: 1, backoff_base_ms: 20, backoff_max_ms: 50 },
      timeouts: { connect_ms: 1000, first_token_ms: 2000, idle_ms: 2000, attempt_ms: 4000 },
      request_timeout_ms: 10000,
      breaker: { enabled: false },
    },
    providers: {
      openai: { kind: "openai", base_url: fake.baseUrl("openai"), api_key_secret: "FAKE_API_KEY" },
      groq: { kind: "openai", base_url: fake.baseUrl("groq"), api_key_secret: "FAKE_API_KEY" },
    },
    deployments: {
      "gpt-main": { provider: "openai", model: "gpt-main-model", context_window: 128000, price },
      "llama-fast": { provider: "groq", model: "llama-fast-model", context_window: 128000, price },
    },
    routes: {
      chat: { chain: ["gpt-main", "llama-fast"] },
      faq: { chain: ["llama-fast"], cache: { ttl_s: 300 } },
    },
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe("dashboard routes panel and key money in headless Chromium", { skip, timeout: 90_000 }, () => {
  let fake, w, browser, page, problems, shot, keyHeaders, keyId;
  let faqRequests = 0;

  const admin = async (path) => {
    const res = await w.fetch(`/admin/api/${path}`, { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(res.status, 200);
    return res.json();
  };
  const field = (row, name) => page.locator(`${row} td[data-field="${name}"]`).first();
  const textOf = async (row, name) => (await field(row, name).textContent()).trim();

  before(async () => {
    fake = await startFake();
    // gpt-main fails its first request (the chat route falls back to llama-fast), then answers.
    fake.script("openai", [{ status: 500, body: { error: { message: "boom", type: "server_error" } } }, { ok: "Answer from gpt-main.", model: "gpt-main-model" }]);
    // 1,000 prompt tokens, 800 read from the provider's cache: $0.0003 each, $0.00072 saved.
    fake.script("groq", [{ ok: "Answer from llama-fast.", model: "llama-fast-model", usage: { prompt_tokens: 1000, completion_tokens: 10, total_tokens: 1010, prompt_tokens_details: { cached_tokens: 800 } } }]);
    [w, browser] = await Promise.all([startWorker({ table: gatewayTable(fake), bindings: { ADMIN_TOKEN: ADMIN, AUTH_MODE: "keys" } }), launchBrowser()]);
    const secret = `sk-test-${randomBytes(16).toString("hex")}`;
    keyId = createHash("sha256").update(secret, "utf8").digest("hex");
    const kv = await w.mf.getKVNamespace(KV_BINDING);
    await kv.put(`gateway-key:${keyId}`, JSON.stringify({ name: "mobile-app", budget_day_usd: "0.01", budget_month_usd: "5", created_ms: Date.now() }));
    keyHeaders = { authorization: `Bearer ${secret}` };

    const send = async (body) => {
      const r = await chatOnce(w, body, { headers: keyHeaders });
      assert.equal(r.status, 200, r.text);
      return r;
    };
    assert.equal((await send({ model: "chat", messages: USER_MSG })).res.headers.get("x-router-deployment"), "llama-fast");
    assert.equal((await send({ model: "chat", messages: USER_MSG })).res.headers.get("x-router-deployment"), "gpt-main");
    for (let hit = false; !hit && faqRequests < 20; ) {
      const r = await send({ model: "faq", temperature: 0, messages: USER_MSG });
      faqRequests++;
      hit = r.res.headers.get("x-router-cache") === "hit";
      if (!hit) await sleep(50);
    }
    // The figures ride on batched reports: wait until they landed before the page opens.
    for (let i = 0; i < 60; i++) {
      const [routes, money] = await Promise.all([admin("routes"), admin("money")]);
      const faq = routes.routes.find((r) => r.route === "faq");
      const key = money.keys.find((k) => k.id === keyId);
      if (faq?.requests === faqRequests && faq.cache_hits === 1 && key?.money?.requests === 2 + faqRequests) break;
      await sleep(100);
    }
    ({ page, problems, shot } = await dashboardPage(browser, w, "money"));
  });

  after(async () => {
    await browser?.close();
    await w?.dispose();
    await fake?.close();
  });

  it("the routes panel shows each route's requests, fallbacks, cache hits, cost and savings, and each deployment's failover and p95", async () => {
    await logIn(page, w, ADMIN);
    await page.locator('#routes tr.route-row[data-route="chat"]').waitFor();
    const chat = '#routes tr.route-row[data-route="chat"]';
    assert.equal(await textOf(chat, "requests"), "2");
    assert.equal(await textOf(chat, "fallback_rate"), "50%");
    assert.equal(await textOf(chat, "cache_hits"), "0");
    assert.notEqual(await textOf(chat, "cost"), "$0");
    const gpt = '#routes tr.sub-row[data-route="chat"][data-deployment="gpt-main"]';
    assert.equal(await page.locator(gpt).getAttribute("data-provider"), "openai");
    assert.equal(await textOf(gpt, "attempts"), "2");
    assert.equal(await textOf(gpt, "failover_rate"), "50%");
    assert.match(await textOf(gpt, "p95"), /^\d+(\.\d)? m?s$/);
    const llama = '#routes tr.sub-row[data-route="chat"][data-deployment="llama-fast"]';
    assert.equal(await textOf(llama, "failover_rate"), "0%");

    const faq = '#routes tr.route-row[data-route="faq"]';
    assert.equal(await textOf(faq, "requests"), String(faqRequests));
    assert.equal(await textOf(faq, "cache_hits"), "1");
    const upstream = faqRequests - 1;
    // $0.00072 saved per answer that reached the provider (fmtUsd: two significant digits).
    assert.equal(await textOf(faq, "savings"), `$${(0.00072 * upstream).toPrecision(2)}`);
    assert.equal(await textOf(faq, "cost"), `$${(0.0003 * upstream).toPrecision(2)}`);
    await page.locator('#routes .providers-stats tr[data-provider="openai"]').waitFor();
    assert.equal(await textOf('#routes .providers-stats tr[data-provider="openai"]', "failover_rate"), "50%");
    await page.locator("#routes-card").scrollIntoViewIfNeeded();
    await shot("routes-panel");
  });

  it("the key money view shows the key's spend, savings, cache hits and its day and month budget use", async () => {
    const row = `#money tr[data-key="${keyId}"]`;
    await page.locator(row).waitFor();
    assert.equal(await textOf(row, "requests"), String(2 + faqRequests));
    assert.equal(await textOf(row, "cache_hits"), "1");
    assert.notEqual(await textOf(row, "spend"), "$0");
    const day = field(row, "day");
    const useBps = Number(await day.getAttribute("data-use-bps"));
    assert.ok(useBps > 0 && useBps < 10_000, `day budget use ${useBps}`);
    assert.match(await day.textContent(), /^\s*\d+(\.\d)?%\$0\.000\d+ of \$0\.01$/);
    assert.match(await field(row, "month").textContent(), /%\$0\.000\d+ of \$5\.00$/);
    // The bar is as wide as the share of the budget spent.
    const fill = await page.locator(`${row} td[data-field="day"] .budget-fill`).evaluate((el) => el.style.width);
    assert.equal(fill, `${Math.min(100, useBps / 100)}%`);
    await page.locator("#money").scrollIntoViewIfNeeded();
    await shot("key-money");
  });

  it("the window buttons re-read the figures for 6 h and 48 h", async () => {
    assert.equal(await page.locator("#routes-card").getAttribute("data-hours"), "24");
    for (const hours of ["6", "48"]) {
      const [res] = await Promise.all([
        page.waitForResponse((r) => r.url().includes(`/admin/api/routes?hours=${hours}`)),
        page.waitForResponse((r) => r.url().includes(`/admin/api/money?hours=${hours}`)),
        page.click(`#routes-card [data-window="${hours}"]`),
      ]);
      assert.equal(res.status(), 200);
      await page.locator(`#routes-card[data-hours="${hours}"]`).waitFor();
      assert.equal((await page.locator("#routes-window").textContent()).startsWith(`Last ${hours} hours`), true);
      assert.equal(await page.locator(`#routes-card [data-window="${hours}"]`).getAttribute("class"), "btn btn-small seg-on");
      // Everything happened in the last few minutes: inside every window.
      assert.equal(await textOf('#routes tr.route-row[data-route="chat"]', "requests"), "2");
    }
    await shot("window-48h");
    assert.deepEqual(problems, []);
  });
});
