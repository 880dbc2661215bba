// Makes docs/dashboard.png: the dashboard at 1366×768 in headless Chromium, against the built
// worker in workerd (Miniflare) with the fake OpenAI-compatible provider on 127.0.0.1, after
// some traffic (varied latencies, a flaky deployment) and with one deployment's kill switch on.
//
//   bash scripts/build.sh && node scripts/dashboard-screenshot.mjs [out.png]

import path from "node:path";
import { startFake } from "../miniflare-tests/helpers/fake-openai.mjs";
import { startWorker, REPO_ROOT } from "../miniflare-tests/helpers/worker.mjs";
import { launchBrowser, openPage } from "../miniflare-tests/helpers/browser.mjs";

const OUT = path.resolve(process.argv[2] ?? path.join(REPO_ROOT, "docs", "dashboard.png"));
const ADMIN = "screenshot-admin-token";

const fake = await startFake();
const price = (i, o) => ({ input_per_mtok_usd: i, output_per_mtok_usd: o });
const table = {
  version: 1,
  defaults: {
    retry: { max_attempts: 1 },
    timeouts: { connect_ms: 2000, first_token_ms: 5000, idle_ms: 5000, attempt_ms: 10000 },
    request_timeout_ms: 20000,
    breaker: { consecutive_failures: 5, failure_rate_bps: 0, cooldown_ms: 60000 },
  },
  providers: {
    openai: { kind: "openai", base_url: fake.baseUrl("openai"), api_key_secret: "FAKE_API_KEY" },
    groq: { kind: "openai", base_url: fake.baseUrl("groq"), api_key_secret: "FAKE_API_KEY" },
    together: { kind: "openai", base_url: fake.baseUrl("together"), api_key_secret: "FAKE_API_KEY" },
  },
  deployments: {
    "gpt-4o": { provider: "openai", model: "gpt-4o", context_window: 128000, price: price(2.5, 10) },
    "gpt-4o-mini": { provider: "openai", model: "gpt-4o-mini", context_window: 128000, price: price(0.15, 0.6) },
    "llama-3.3-70b": { provider: "groq", model: "llama-3.3-70b-versatile", context_window: 128000, price: price(0.59, 0.79) },
    mixtral: { provider: "together", model: "mixtral-8x7b", context_window: 32000, price: price(0.6, 0.6) },
  },
  routes: {
    chat: { chain: ["gpt-4o-mini", "llama-3.3-70b"] },
    smart: { chain: ["gpt-4o", "llama-3.3-70b"] },
    cheap: { chain: ["mixtral", "gpt-4o-mini"] },
  },
};

const words = "The gateway routed this answer through the first healthy deployment of its chain.";
const delays = [30, 60, 45, 120, 80, 250, 40, 90, 600, 70];
fake.script("openai", delays.map((d) => ({ ok: words, delayMs: d })));
fake.script("groq", delays.map((d) => ({ ok: words, delayMs: Math.round(d / 3) })));
// Flaky: every third request fails (the chain falls back to gpt-4o-mini).
fake.script("together", Array.from({ length: 60 }, (_, i) => (i % 3 === 2 ? { status: 500, body: { error: { message: "upstream exploded", type: "server_error" } } } : { ok: words, delayMs: 150 })));

const w = await startWorker({ table, bindings: { ADMIN_TOKEN: ADMIN } });
let browser;
try {
  const admin = (method, p, body, headers = {}) =>
    w.fetch(`/admin/api/${p}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, ...headers },
      ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
    });
  // Two saved versions, so the history has something to show.
  const put = async (t, message) => {
    const res = await admin("PUT", "table", JSON.stringify(t, null, 2), { "if-match": "*", "x-change-message": message });
    if (!res.ok) throw new Error(`PUT table: ${res.status} ${await res.text()}`);
  };
  await put({ ...table, routes: { ...table.routes, chat: { chain: ["gpt-4o", "llama-3.3-70b"] } } }, "chat on gpt-4o");
  await put(table, "chat: gpt-4o-mini first, cheap route on mixtral");

  const send = async (model, n) => {
    for (let i = 0; i < n; i++) {
      const res = await w.chat({ model, messages: [{ role: "user", content: `Question ${i}: how does routing work?` }] });
      await res.text();
    }
  };
  await Promise.all([send("chat", 30), send("smart", 12), send("cheap", 18)]);
  // Kill switch on gpt-4o: "smart" traffic now falls back to llama-3.3-70b.
  await admin("POST", "deployments/gpt-4o/force-open", {});
  await new Promise((r) => setTimeout(r, 2200));
  await send("smart", 8);
  await new Promise((r) => setTimeout(r, 1500)); // usage reaches the objects within a second

  browser = await launchBrowser();
  const { page, problems } = await openPage(browser);
  await page.goto(`${w.url}admin`);
  await page.fill("#login-token", ADMIN);
  await page.click("#login-submit");
  await page.locator('#breakers tr[data-deployment="gpt-4o"][data-state="forced_open"]').waitFor({ timeout: 15000 });
  await page.locator("#charts .legend li").first().waitFor();
  await page.locator("#history-list li.version").first().waitFor();
  await page.locator("#table-status.status-ok").waitFor();
  await page.click('#charts-card [data-hours="6"]'); // fresh data: a few hours show it best
  await page.screenshot({ path: OUT });
  if (problems.length) throw new Error(`page problems: ${problems.join("; ")}`);
  console.log(`wrote ${path.relative(process.cwd(), OUT)}`);
} finally {
  await browser?.close();
  await w.dispose();
  await fake.close();
}
