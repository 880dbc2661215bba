// Editing chains as lists in the operator dashboard (/admin, dashboard/chains.js), in a real
// headless Chromium (Debian's `chromium`, driven by playwright-core) against the built worker in
// workerd with a fake OpenAI-compatible provider on 127.0.0.1 (one scenario per deployment, each
// answering with its own model name): reorder a chain with ↑/↓ and by dragging, add and remove a deployment,
// switch a route to "weighted" and change a weight; each step rewrites exactly the route's JSON
// in the editor (the rest of the text byte for byte as the editor formats it); save through the
// diff review; chat requests then follow the new order and weights. A hand edit of the JSON
// re-renders the lists (an unknown deployment flagged, the gateway's validation shows the
// error), text that does not parse freezes them, and an emptied chain is the validation's error.
//
// One screenshot per step in artifacts/screenshots/dashboard-chains-NN-<step>.png. Without
// Chromium the suite is skipped locally but fails under CI=true (CI must install it).

import { test, describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startFake } from "./helpers/fake-openai.mjs";
import { startWorker, chatOnce, USER_MSG } from "./helpers/worker.mjs";
import { browserSuiteSkip, launchBrowser, dashboardPage, logIn } from "./helpers/browser.mjs";

const ADMIN = "admin-token-chains-test";
const skip = browserSuiteSkip();

/** Three deployments on three fake providers; `chat` and `mix` are both ordered at first. */
function gatewayTable(fake) {
  const price = { input_per_mtok_usd: 0.15, output_per_mtok_usd: 0.6 };
  const provider = (s) => ({ kind: "openai", base_url: fake.baseUrl(s), api_key_secret: "FAKE_API_KEY" });
  return {
    version: 1,
    defaults: {
      retry: { max_attempts: 1, backoff_base_ms: 20, backoff_max_ms: 50 },
      timeouts: { connect_ms: 1000, first_token_ms: 2000, idle_ms: 2000, attempt_ms: 4000 },
      request_timeout_ms: 10000,
    },
    providers: { openai: provider("openai"), groq: provider("groq"), mistral: provider("mistral") },
    deployments: {
      "gpt-main": { provider: "openai", model: "gpt-main-model", context_window: 128000, price },
      "llama-fast": { provider: "groq", model: "llama-fast-model", context_window: 128000, price },
      "mistral-small": { provider: "mistral", model: "mistral-small-model", context_window: 128000, price },
    },
    routes: {
      chat: { chain: ["gpt-main", "llama-fast"], description: "everyday chat" },
      mix: { chain: ["gpt-main", "llama-fast"], sticky: { ttl_ms: 1000 } },
    },
  };
}

/** The editor's formatting of a table (table.js pretty-prints a one-line text this way). */
const formatted = (table) => JSON.stringify(table, null, 2) + "\n";

describe("chains as lists in the dashboard (headless Chromium)", { skip, timeout: 110_000 }, () => {
  let fake, w, browser, page, problems, shot;
  /** What the editor should hold: starts as the table in KV, each list edit applied to it. */
  let expected;
  const chat = async (model) => {
    const r = await chatOnce(w, { model, messages: USER_MSG });
    assert.equal(r.status, 200, r.text);
    return { deployment: r.res.headers.get("x-router-deployment"), model: r.json?.model };
  };
  const editor = () => page.locator("#table-editor");
  const route = (name) => page.locator(`#chains .chain-route-block[data-route="${name}"]`);
  const entry = (r, dep) => route(r).locator(`li.chain-entry[data-deployment="${dep}"]`);
  /** The deployments route `r`'s list shows, in order. */
  const listed = (r) => route(r).locator("li.chain-entry").evaluateAll((lis) => lis.map((li) => li.dataset.deployment));
  /** The editor holds exactly `expected`, formatted as the editor formats a table. */
  const editorIsExpected = async () => assert.equal(await editor().inputValue(), formatted(expected));
  const toastWith = (text) => page.locator(".toast", { hasText: text }).first().waitFor();

  before(async () => {
    fake = await startFake();
    for (const [s, model] of [
      ["openai", "gpt-main-model"],
      ["groq", "llama-fast-model"],
      ["mistral", "mistral-small-model"],
    ]) {
      fake.script(s, [{ ok: `Answer from ${s}.`, model }]);
    }
    [w, browser] = await Promise.all([startWorker({ table: gatewayTable(fake), bindings: { ADMIN_TOKEN: ADMIN } }), launchBrowser()]);
    expected = gatewayTable(fake);
    ({ page, problems, shot } = await dashboardPage(browser, w, "dashboard-chains"));
  });

  after(async () => {
    await browser?.close();
    await w?.dispose();
    await fake?.close();
  });

  it("before any edit, both routes go to gpt-main first", async () => {
    assert.deepEqual(await chat("chat"), { deployment: "gpt-main", model: "gpt-main-model" });
    for (let i = 0; i < 3; i++) assert.equal((await chat("mix")).deployment, "gpt-main");
  });

  it("logs in and shows every route's chain as a list", async () => {
    await logIn(page, w, ADMIN);
    await page.locator("#app").waitFor();
    await route("chat").waitFor();
    await editorIsExpected();
    assert.deepEqual(await listed("chat"), ["gpt-main", "llama-fast"]);
    assert.deepEqual(await listed("mix"), ["gpt-main", "llama-fast"]);
    assert.match(await entry("chat", "gpt-main").textContent(), /openai · gpt-main-model/);
    assert.equal(await route("chat").locator("select.chain-strategy").inputValue(), "ordered");
    // Ordered routes without weights have no weight inputs.
    assert.equal(await page.locator("#chains input.chain-weight").count(), 0);
    // First and last entries cannot move past the ends.
    assert.equal(await entry("chat", "gpt-main").locator('[data-action="up"]').isDisabled(), true);
    assert.equal(await entry("chat", "llama-fast").locator('[data-action="down"]').isDisabled(), true);
    // Only deployments not in the chain can be added.
    assert.deepEqual(await route("chat").locator("select.chain-add-select option").evaluateAll((os) => os.map((o) => o.value)), ["mistral-small"]);
    await page.locator("#chains-card").scrollIntoViewIfNeeded();
    await shot("lists");
  });

  it("reorders a chain with ↓ and the JSON follows", async () => {
    await entry("chat", "gpt-main").locator('[data-action="down"]').click();
    expected.routes.chat.chain = ["llama-fast", "gpt-main"];
    assert.deepEqual(await listed("chat"), ["llama-fast", "gpt-main"]);
    await editorIsExpected();
    await page.locator("#table-dirty").waitFor();
    await page.locator("#table-status.status-ok").waitFor();
    await shot("reordered");
  });

  it("adds a deployment, moves it to the front with ↑, removes another", async () => {
    await route("chat").locator("select.chain-add-select").selectOption("mistral-small");
    await route("chat").locator('[data-action="add"]').click();
    expected.routes.chat.chain = ["llama-fast", "gpt-main", "mistral-small"];
    assert.deepEqual(await listed("chat"), expected.routes.chat.chain);
    await editorIsExpected();
    // Every deployment is in the chain now: nothing left to add.
    assert.equal(await route("chat").locator('[data-action="add"]').isDisabled(), true);

    await entry("chat", "mistral-small").locator('[data-action="up"]').click();
    await entry("chat", "mistral-small").locator('[data-action="up"]').click();
    expected.routes.chat.chain = ["mistral-small", "llama-fast", "gpt-main"];
    assert.deepEqual(await listed("chat"), expected.routes.chat.chain);
    await editorIsExpected();

    await entry("chat", "gpt-main").locator('[data-action="remove"]').click();
    expected.routes.chat.chain = ["mistral-small", "llama-fast"];
    assert.deepEqual(await listed("chat"), expected.routes.chat.chain);
    await editorIsExpected();
    assert.deepEqual(await route("chat").locator("select.chain-add-select option").evaluateAll((os) => os.map((o) => o.value)), ["gpt-main"]);
    await page.locator("#table-status.status-ok").waitFor();
    await shot("added-removed");
  });

  it("switches a route to weighted and changes a weight", async () => {
    await route("mix").locator("select.chain-strategy").selectOption("weighted");
    // The strategy goes right after the chain; the route's other fields stay as they were.
    expected.routes.mix = { chain: ["gpt-main", "llama-fast"], strategy: "weighted", sticky: { ttl_ms: 1000 } };
    await editorIsExpected();
    const gptWeight = entry("mix", "gpt-main").locator("input.chain-weight");
    await gptWeight.waitFor();
    assert.equal(await gptWeight.getAttribute("placeholder"), "1", "no weight means 1");
    assert.match(await entry("mix", "gpt-main").locator(".chain-share").textContent(), /50 % first/);
    // The ordered route next to it still has no weight inputs.
    assert.equal(await route("chat").locator("input.chain-weight").count(), 0);

    await gptWeight.fill("0");
    // Typed key by key: the lists redraw after every key, and the input keeps focus and caret.
    const llamaWeight = entry("mix", "llama-fast").locator("input.chain-weight");
    await llamaWeight.click();
    await llamaWeight.pressSequentially("25");
    assert.equal(await llamaWeight.inputValue(), "25");
    expected.routes.mix.chain = [
      { deployment: "gpt-main", weight: 0 },
      { deployment: "llama-fast", weight: 25 },
    ];
    await editorIsExpected();
    await page.keyboard.press("Backspace");
    await page.keyboard.type("0");
    expected.routes.mix.chain[1].weight = 20;
    await editorIsExpected();
    // Emptied, the weight goes (default 1) and the entry is a plain name again.
    await page.keyboard.press("Backspace");
    await page.keyboard.press("Backspace");
    expected.routes.mix.chain[1] = "llama-fast";
    await editorIsExpected();
    assert.match(await entry("mix", "llama-fast").locator(".chain-share").textContent(), /100 % first/);
    await page.keyboard.type("5");
    expected.routes.mix.chain[1] = { deployment: "llama-fast", weight: 5 };
    await editorIsExpected();
    assert.match(await entry("mix", "gpt-main").locator(".chain-share").textContent(), /0 % first/);
    assert.match(await entry("mix", "llama-fast").locator(".chain-share").textContent(), /100 % first/);
    await page.locator("#table-status.status-ok").waitFor();
    await shot("weighted");
  });

  it("drags an entry to another place in its chain", async () => {
    await entry("mix", "llama-fast").locator(".chain-grip").dragTo(entry("mix", "gpt-main").locator(".chain-pos"));
    expected.routes.mix.chain.reverse();
    assert.deepEqual(await listed("mix"), ["llama-fast", "gpt-main"]);
    await editorIsExpected();
    // Not across routes: dropping on another route's list changes nothing.
    await entry("mix", "gpt-main").locator(".chain-grip").dragTo(entry("chat", "mistral-small").locator(".chain-pos"));
    assert.deepEqual(await listed("mix"), ["llama-fast", "gpt-main"]);
    assert.deepEqual(await listed("chat"), ["mistral-small", "llama-fast"]);
    await editorIsExpected();
  });

  it("saves through the diff review", async () => {
    await page.click("#btn-chains-review");
    const dialog = page.locator("#review-dialog");
    await dialog.locator("pre.diff").waitFor();
    const changes = await dialog.locator(".changes").textContent();
    assert.match(changes, /routes\.chat\.chain/);
    assert.match(changes, /routes\.mix\.strategy/);
    assert.match(await dialog.locator(".diff").textContent(), /\+\s+"strategy": "weighted"/);
    await page.fill("#change-message", "chat: mistral first; mix: weighted to llama");
    await shot("review");
    await page.click("#btn-save");
    await dialog.waitFor({ state: "detached" });
    await toastWith("Saved version 2");
    await page.locator("#table-version", { hasText: "version 2" }).waitFor();
    assert.equal(await page.locator("#table-dirty").isHidden(), true);
    // The reloaded table shows the saved lists.
    assert.deepEqual(await listed("chat"), ["mistral-small", "llama-fast"]);
    await editorIsExpected();
  });

  it("chat requests follow the new order and weights", async () => {
    assert.deepEqual(await chat("chat"), { deployment: "mistral-small", model: "mistral-small-model" });
    // gpt-main has weight 0 (never first); before the edit every mix request went to it.
    const before = fake.hits("openai");
    for (let i = 0; i < 6; i++) assert.deepEqual(await chat("mix"), { deployment: "llama-fast", model: "llama-fast-model" });
    assert.equal(fake.hits("openai"), before, "nothing sent to the weight-0 deployment");
  });

  it("a hand edit of the JSON re-renders the lists", async () => {
    const text = await editor().inputValue();
    const edited = text.replace(/"chain": \[\s*"mistral-small",\s*"llama-fast"\s*\]/, '"chain": ["gpt-main", "nope", "mistral-small"]');
    assert.notEqual(edited, text);
    await editor().fill(edited);
    await route("chat").locator('li.chain-entry[data-deployment="nope"].chain-unknown').waitFor();
    assert.deepEqual(await listed("chat"), ["gpt-main", "nope", "mistral-small"]);
    assert.match(await entry("chat", "nope").textContent(), /unknown deployment/);
    // The gateway's validation reports it under the editor, as for any hand edit.
    const err = page.locator('#table-errors li[data-path="routes.chat.chain[1]"]');
    await err.waitFor();
    assert.match(await err.textContent(), /unknown deployment "nope"/);
    await shot("hand-edit");

    // Text that does not parse: the lists stay as last parsed, their controls disabled.
    await editor().fill(edited.replace('"routes": {', '"routes": {,'));
    await page.locator("#chains-stale").waitFor();
    assert.deepEqual(await listed("chat"), ["gpt-main", "nope", "mistral-small"]);
    assert.equal(await entry("chat", "gpt-main").locator('[data-action="down"]').isDisabled(), true);
    // Fixed again: controls back, and a list edit works on the hand-edited text.
    await editor().fill(edited);
    await page.locator("#chains-stale").waitFor({ state: "detached" });
    await entry("chat", "nope").locator('[data-action="remove"]').click();
    assert.deepEqual(await listed("chat"), ["gpt-main", "mistral-small"]);
    assert.equal(await editor().inputValue(), edited.replace('["gpt-main", "nope", "mistral-small"]', '["gpt-main", "mistral-small"]'), "a one-line chain stays on one line");
    await page.locator("#table-status.status-ok").waitFor();
  });

  it("an emptied chain is the validation's error, and cannot be saved", async () => {
    for (const dep of ["gpt-main", "mistral-small"]) await entry("chat", dep).locator('[data-action="remove"]').click();
    await route("chat").locator("li.chain-empty").waitFor();
    assert.match(await editor().inputValue(), /"chain": \[\]/);
    const err = page.locator('#table-errors li[data-path="routes.chat.chain"]');
    await err.waitFor();
    assert.match(await err.textContent(), /at least one deployment/);
    await page.click("#btn-chains-review");
    await page.locator("#review-dialog pre.diff").waitFor();
    assert.equal(await page.locator("#btn-save").isDisabled(), true);
    await shot("empty-chain");
    await page.locator("#review-dialog .dialog-x").click();
    // Nothing of it reached the gateway.
    assert.equal((await chat("chat")).deployment, "mistral-small");
  });

  it("no CSP violation or script error", async () => {
    assert.deepEqual(problems, []);
    const res = await w.fetch("/admin/chains.js");
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type"), /javascript/);
    assert.match(res.headers.get("content-security-policy"), /script-src 'self'/);
  });
});
