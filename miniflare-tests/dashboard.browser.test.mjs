// The operator dashboard (/admin) in a real headless Chromium (Debian's `chromium`, driven by
// playwright-core), against the built worker in workerd with a fake OpenAI-compatible provider
// on 127.0.0.1: log in (and a wrong token), an invalid edit shows its error (path clickable to
// the key), fix and save after reviewing the diff, a chat request follows the new table, roll
// back, kill switch moves traffic and reset brings it back, a 412 conflict offers a reload, a
// bad table written straight to KV is flagged and rolled back, a save whose KV write was lost
// (Reload shows the newest version, saving works), gateway keys (secret shown once, limits,
// revoke), a 401 sends the operator back to the login form, log out.
//
// One screenshot per step in artifacts/screenshots/dashboard-NN-<step>.png. Without Chromium the
// suite is skipped locally but fails under CI=true (CI must install it: scripts/setup.sh).

import { test, describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startFake } from "./helpers/fake-openai.mjs";
import { startWorker, chatOnce, FAKE_SECRET, USER_MSG, KV_BINDING, TABLE_KEY } from "./helpers/worker.mjs";
import { browserSuiteSkip, launchBrowser, dashboardPage } from "./helpers/browser.mjs";

const ADMIN = "admin-token-dashboard-test";
const skip = browserSuiteSkip();

/** Providers `openai` and `groq` (both the fake, one scenario per deployment), breakers on. */
function gatewayTable(fake) {
  const price = { input_per_mtok_usd: 0.15, output_per_mtok_usd: 0.6 };
  return {
    version: 1,
    defaults: {
      retry: { max_attempts: 1, backoff_base_ms: 20, backoff_max_ms: 50 },
      timeouts: { connect_ms: 1000, first_token_ms: 2000, idle_ms: 2000, attempt_ms: 4000 },
      request_timeout_ms: 10000,
      breaker: { consecutive_failures: 5, cooldown_ms: 30000 },
    },
    providers: {
      openai: { kind: "openai", base_url: fake.baseUrl("openai"), api_key_secret: "FAKE_API_KEY" },
      groq: { kind: "openai", base_url: fake.baseUrl("groq"), api_key_secret: "FAKE_API_KEY" },
    },
    deployments: {
      "gpt-main": { provider: "openai", model: "gpt-main-model", context_window: 128000, price },
      "llama-fast": { provider: "groq", model: "llama-fast-model", context_window: 128000, price },
    },
    routes: { chat: { chain: ["gpt-main", "llama-fast"] } },
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe("dashboard in headless Chromium", { skip, timeout: 110_000 }, () => {
  let fake, w, browser, page, problems, shot;
  const chat = async () => {
    const r = await chatOnce(w, { model: "chat", messages: USER_MSG });
    assert.equal(r.status, 200, r.text);
    return { deployment: r.res.headers.get("x-router-deployment"), model: r.json?.model };
  };
  /** Retry `fn` until it returns a truthy value (bounded). */
  const until = async (fn, what, ms = 6000) => {
    const t0 = Date.now();
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
      await sleep(150);
    }
  };
  const editor = () => page.locator("#table-editor");
  const editText = async (fn) => {
    const text = await editor().inputValue();
    const next = fn(text);
    assert.notEqual(next, text, "the edit changed nothing");
    await editor().fill(next);
  };
  const confirm = () => page.click('#confirm-dialog [data-action="confirm"]');
  const toastWith = (text) => page.locator(".toast", { hasText: text }).first().waitFor();

  before(async () => {
    fake = await startFake();
    // One scenario per provider base URL: the fake's URL path names the scenario.
    fake.script("openai", [{ ok: "Answer from gpt-main.", model: "gpt-main-model" }]);
    fake.script("groq", [{ ok: "Answer from llama-fast.", model: "llama-fast-model" }]);
    [w, browser] = await Promise.all([startWorker({ table: gatewayTable(fake), bindings: { ADMIN_TOKEN: ADMIN } }), launchBrowser()]);
    // Some traffic for the charts before the page opens.
    for (let i = 0; i < 4; i++) assert.equal((await chat()).deployment, "gpt-main");
    ({ page, problems, shot } = await dashboardPage(browser, w, "dashboard"));
  });

  after(async () => {
    await browser?.close();
    await w?.dispose();
    await fake?.close();
  });

  it("logs in (a wrong token is refused with a clear message)", async () => {
    await page.goto(`${w.url}admin`);
    await page.locator("#login-token").waitFor();
    await shot("login");
    await page.fill("#login-token", "not-the-token");
    await page.click("#login-submit");
    await page.locator("#login-message", { hasText: "Wrong admin token" }).waitFor();
    await page.fill("#login-token", ADMIN);
    await page.click("#login-submit");
    await page.locator("#app").waitFor();
    assert.equal(await page.locator("#login").isHidden(), true);
    // The table came from KV directly (startWorker), so the dashboard flags it as external.
    await page.locator("#banner-external").waitFor();
    await page.locator('#breakers tr[data-deployment="gpt-main"][data-state="closed"]').waitFor();
    await page.locator('#breakers tr[data-deployment="llama-fast"]').waitFor();
    await page.locator('#charts .legend li[data-provider="openai"]').waitFor();
    assert.match(await editor().inputValue(), /"chain": \[\s*"gpt-main",\s*"llama-fast"\s*\]/);
    assert.equal(await page.evaluate(() => sessionStorage.length), 1, "token kept in sessionStorage");
    await shot("logged-in");
  });

  it("shows an invalid edit's error with its path, and jumps to it", async () => {
    await editText((t) => t.replace(/"chain": \[\s*"gpt-main",\s*"llama-fast"\s*\]/, '"chain": ["llama-fast", "nope"]'));
    const item = page.locator('#table-errors li[data-path="routes.chat.chain[1]"]');
    await item.waitFor();
    assert.match(await item.textContent(), /unknown deployment "nope"/);
    await page.locator("#table-status.status-error").waitFor();
    await page.locator("#table-dirty").waitFor();
    await item.locator("button.path").click();
    const selected = await page.evaluate(() => {
      const e = document.querySelector("#table-editor");
      return e.value.slice(e.selectionStart, e.selectionEnd);
    });
    assert.equal(selected, '"nope"', "clicking the path selects the offending value");
    await shot("invalid-edit");

    // A syntax error: path "" and its line/column.
    const good = await editor().inputValue();
    await editor().fill(good.replace('"routes": {', '"routes": {,'));
    await page.locator('#table-errors li[data-path=""]', { hasText: "line" }).waitFor();
    await editor().fill(good);
    await page.locator('#table-errors li[data-path="routes.chat.chain[1]"]').waitFor();
  });

  it("fixes it, reviews the diff and saves with If-Match", async () => {
    await editText((t) => t.replace('["llama-fast", "nope"]', '["llama-fast", "gpt-main"]'));
    await page.locator("#table-status.status-ok").waitFor();
    assert.equal(await page.locator("#table-errors li").count(), 0);
    await page.click("#btn-review");
    const dialog = page.locator("#review-dialog");
    await dialog.locator("pre.diff").waitFor();
    assert.ok((await dialog.locator('.diff .line.add[data-op="+"]').count()) > 0, "added lines");
    assert.ok((await dialog.locator('.diff .line.del[data-op="-"]').count()) > 0, "removed lines");
    assert.match(await dialog.locator(".diff").textContent(), /\+\s+"llama-fast"/);
    assert.match(await dialog.locator(".changes").textContent(), /routes\.chat\.chain\[0\]/);
    await page.fill("#change-message", "prefer llama-fast → café");
    await shot("review-diff");
    await page.click("#btn-save");
    await dialog.waitFor({ state: "detached" });
    await toastWith("Saved version 2");
    await page.locator("#table-version", { hasText: "version 2" }).waitFor();
    await page.locator("#banner-external").waitFor({ state: "detached" });
    const top = page.locator("#history-list li.version").first();
    await top.locator(".version-msg", { hasText: "prefer llama-fast → café" }).waitFor();
    assert.match(await top.textContent(), /live/);
    assert.match(await page.locator('#history-list li[data-version="1"]').textContent(), /external/);
    assert.equal(await page.locator("#table-dirty").isHidden(), true);
    await shot("saved");
  });

  it("a chat request follows the new table", async () => {
    const r = await chat();
    assert.equal(r.deployment, "llama-fast");
    assert.equal(r.model, "llama-fast-model");
  });

  it("rolls back in one click", async () => {
    await page.locator('#history-list li[data-version="1"] [data-action="rollback"]').click();
    await toastWith("Rolled back to v1");
    const top = page.locator("#history-list li.version").first();
    await top.locator(".tag", { hasText: "rollback → v1" }).waitFor();
    assert.equal(await top.getAttribute("data-version"), "3");
    await page.locator("#table-version", { hasText: "version 3" }).waitFor();
    assert.match(await editor().inputValue(), /"chain": \[\s*"gpt-main",\s*"llama-fast"\s*\]/);
    const r = await chat();
    assert.equal(r.deployment, "gpt-main");
    await shot("rolled-back");
  });

  it("the kill switch moves traffic, reset brings it back", async () => {
    const row = page.locator('#breakers tr[data-deployment="gpt-main"]');
    await row.locator('[data-action="kill"]').click();
    await page.locator("#confirm-dialog").waitFor();
    await confirm();
    await page.locator('#breakers tr[data-deployment="gpt-main"][data-state="forced_open"]').waitFor();
    assert.match(await row.locator(".badge").textContent(), /forced open/);
    // Each isolate refreshes its breaker snapshot within 2 s.
    await until(async () => (await chat()).deployment === "llama-fast", "traffic to move to llama-fast");
    const before = fake.hits("openai");
    for (let i = 0; i < 5; i++) assert.equal((await chat()).deployment, "llama-fast");
    assert.equal(fake.hits("openai"), before, "nothing sent through the kill switch");
    // The next refresh shows the moved traffic in the breaker counts and the charts.
    // (Usage reaches the deployment objects within a second, batched per isolate.)
    const groqCell = page.locator('#breakers tr[data-deployment="llama-fast"] td.num').first();
    await until(async () => {
      await page.click("#btn-breakers");
      await sleep(200);
      return Number((await groqCell.textContent()).replace(/,/g, "")) >= 6;
    }, "llama-fast's request count in the breaker table");
    await page.locator('#charts .legend li[data-provider="groq"]').waitFor();
    assert.ok((await page.locator('#charts [data-chart="requests"] rect.bar[data-provider="groq"]').count()) > 0);
    await shot("kill-switch");

    await row.locator('[data-action="reset"]').click();
    await page.locator('#breakers tr[data-deployment="gpt-main"][data-state="closed"]').waitFor();
    await until(async () => (await chat()).deployment === "gpt-main", "traffic back on gpt-main");
  });

  it("a conflicting save (412) says so and offers to reload", async () => {
    // The operator starts editing...
    await editText((t) => t.replace('"request_timeout_ms": 10000', '"request_timeout_ms": 12000'));
    // ...while someone else saves through the API.
    const other = gatewayTable(fake);
    other.routes.other = { chain: ["llama-fast"] };
    const res = await w.fetch("/admin/api/table", {
      method: "PUT",
      headers: { authorization: `Bearer ${ADMIN}`, "if-match": "*", "x-change-message": "someone else" },
      body: JSON.stringify(other, null, 2),
    });
    assert.equal(res.status, 200, await res.text());
    await page.click("#btn-review");
    await page.locator("#review-dialog pre.diff").waitFor();
    await page.click("#btn-save");
    const conflict = page.locator("#conflict");
    await conflict.waitFor();
    assert.match(await conflict.textContent(), /Conflict: the table changed since you loaded version 3 — it is now version 4/);
    await shot("conflict");
    await page.click("#btn-conflict-reload");
    await page.locator("#table-version", { hasText: "version 4" }).waitFor();
    assert.match(await editor().inputValue(), /"other"/);
    assert.equal(await page.locator("#table-dirty").isHidden(), true);
  });

  it("flags a bad table written straight to KV, and rolls back from it", async () => {
    await w.putRaw('{"version": 1, "routes": ');
    await page.click("#btn-reload");
    await page.locator("#banner-last-good").waitFor();
    await page.locator("#banner-external").waitFor();
    await page.locator('#table-errors li[data-path=""]').waitFor();
    assert.equal(await page.locator("#top-serving").getAttribute("data-serving"), "last-good");
    await shot("last-good");
    await page.locator('#history-list li[data-version="4"] [data-action="rollback"]').click();
    await toastWith("Rolled back to v4");
    await page.locator("#banner-last-good").waitFor({ state: "detached" });
    assert.equal(await page.locator("#top-serving").getAttribute("data-serving"), "kv");
    // The bad text was kept as an external version before the rollback replaced it.
    await page.locator('#history-list li[data-version="5"] .tag', { hasText: "external" }).waitFor();
  });

  it("a save whose KV write was lost: Reload shows the newest version, and saving over it works", async () => {
    const kv = await w.mf.getKVNamespace(KV_BINDING);
    const before = await kv.get(TABLE_KEY);
    const lost = gatewayTable(fake);
    lost.routes.lost = { chain: ["gpt-main"] };
    const res = await w.fetch("/admin/api/table", {
      method: "PUT",
      headers: { authorization: `Bearer ${ADMIN}`, "if-match": "*", "x-change-message": "lost in KV" },
      body: JSON.stringify(lost, null, 2),
    });
    const saved = await res.json();
    assert.equal(res.status, 200, JSON.stringify(saved));
    await kv.put(TABLE_KEY, before); // the KV write after the log's commit never happened
    await page.click("#btn-reload");
    await page.locator("#banner-kv-behind").waitFor();
    await page.locator("#table-version", { hasText: `version ${saved.version}` }).waitFor();
    assert.match(await editor().inputValue(), /"lost"/);
    // The history marks what KV holds (and the gateway serves) as live.
    await page.locator(`#history-list li.version-current[data-version="${saved.version - 1}"]`).waitFor();
    await shot("kv-behind");
    await editText((t) => t.replace('"request_timeout_ms": 10000', '"request_timeout_ms": 11000'));
    await page.click("#btn-review");
    await page.locator("#review-dialog pre.diff").waitFor();
    await page.click("#btn-save");
    await page.locator("#review-dialog").waitFor({ state: "detached" });
    await toastWith(`Saved version ${saved.version + 1}`);
    await page.locator("#banner-kv-behind").waitFor({ state: "detached" });
    await page.locator(`#history-list li.version-current[data-version="${saved.version + 1}"]`).waitFor();
    const now = await kv.get(TABLE_KEY);
    assert.match(now, /"request_timeout_ms": 11000/);
    assert.match(now, /"lost"/);
  });

  it("creates a key (secret shown once), changes its limits, revokes it", async () => {
    await page.click("#btn-new-key");
    await page.fill("#key-name", "mobile-app");
    await page.fill("#key-rpm", "60");
    await page.fill("#key-budget_day_usd", "5");
    await page.click("#btn-create-key");
    const secret = page.locator("#new-key-secret");
    await secret.waitFor();
    const key = await secret.inputValue();
    assert.match(key, /^sk-gw-[0-9a-f]{48}$/);
    assert.match(await page.locator("#secret-warning").textContent(), /will not be shown again/);
    await page.click("#btn-copy-key");
    await shot("key-created");
    await page.click("#btn-secret-done");
    const row = page.locator('#keys tr[data-name="mobile-app"]');
    await row.waitFor();
    assert.doesNotMatch(await page.locator("body").textContent(), new RegExp(key), "the secret is gone from the page");
    assert.match(await row.textContent(), /60/);

    await row.locator('[data-action="edit"]').click();
    await page.fill("#key-tpm", "10000");
    await page.fill("#key-rpm", "");
    await page.click("#btn-save-key");
    await toastWith("updated");
    await until(async () => /10,000/.test(await row.textContent()), "the new TPM in the list");
    const id = await row.getAttribute("data-key");
    const detail = await (await w.fetch(`/admin/api/keys/${id}`, { headers: { authorization: `Bearer ${ADMIN}` } })).json();
    assert.equal(detail.record.tpm, 10000);
    assert.equal(detail.record.rpm ?? null, null, "an emptied field removes the limit");

    // Another operator edits the key while this editor is open: saving is refused, not merged.
    await row.locator('[data-action="edit"]').click();
    await page.locator("#key-tpm").waitFor();
    await until(
      async () => (await page.evaluate(() => performance.getEntriesByType("resource").filter((e) => e.name.includes("/admin/api/keys/")).length)) > 0,
      "the editor read the key's revision",
    );
    const other = await w.fetch(`/admin/api/keys/${id}`, {
      method: "PATCH",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify({ tpm: 20000 }),
    });
    assert.equal(other.status, 200);
    await page.fill("#key-tpm", "30000");
    await page.click("#btn-save-key");
    await page.getByText("changed (or revoked) since you opened it").waitFor();
    const after = await (await w.fetch(`/admin/api/keys/${id}`, { headers: { authorization: `Bearer ${ADMIN}` } })).json();
    assert.equal(after.record.tpm, 20000, "the other operator's edit stands");
    await page.getByRole("button", { name: "Cancel" }).click();

    await row.locator('[data-action="revoke"]').click();
    await confirm();
    await row.locator(".tag-revoked").waitFor();
    await shot("keys");
  });

  it("a 401 returns to the login form; log out", async () => {
    await page.evaluate(() => sessionStorage.setItem("edge-router-admin-token", "rotated-elsewhere"));
    // What the Refresh button does, called directly: a poll may get the 401 first and hide the
    // button while a click still waits for it to hold still.
    await page.evaluate(() => window.edgeRouterDashboard.refreshDeployments());
    await page.locator("#login-message", { hasText: "401" }).waitFor();
    assert.equal(await page.locator("#app").isHidden(), true);
    await shot("session-ended");
    await page.fill("#login-token", ADMIN);
    await page.click("#login-submit");
    await page.locator("#app").waitFor();
    await page.click("#logout");
    await page.locator("#login-message", { hasText: "Logged out" }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, "token forgotten");
  });

  it("no CSP violation or script error; no provider secret reached the browser", async () => {
    assert.deepEqual(problems, []);
    const seen = await w.allSeen();
    const fromBrowser = seen.filter((e) => e.url.includes("/admin"));
    assert.ok(fromBrowser.length > 20, `recorded ${fromBrowser.length} dashboard responses`);
    for (const e of fromBrowser) assert.ok(!e.body.includes(FAKE_SECRET), `${e.url} leaked the provider key`);
    // Sanity: the page really is served with the strict CSP.
    const res = await w.fetch("/admin");
    assert.match(res.headers.get("content-security-policy"), /script-src 'self'/);
  });
});
