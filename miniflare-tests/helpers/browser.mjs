// Headless Chromium for the dashboard tests: Debian's `chromium` package driven by
// playwright-core (no browser download). Everything stays on loopback; the flags keep the
// browser from calling home (the network is closed anyway), and Playwright gives every launch
// a fresh temporary profile (--user-data-dir) that it deletes on close.

import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { REPO_ROOT } from "./worker.mjs";

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
export const SCREENSHOT_DIR = path.join(REPO_ROOT, "artifacts", "screenshots");

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

export function chromiumAvailable() {
  return existsSync(CHROMIUM_PATH);
}

/**
 * The `skip` option for a browser suite: false when Chromium is there, else the reason. Under
 * CI (CI=true) a missing browser is a failure, not a skip: a test that fails is registered.
 */
export function browserSuiteSkip() {
  if (chromiumAvailable()) return false;
  if (process.env.CI === "true" || process.env.CI === "1") {
    test("Chromium is installed (required under CI)", () => {
      assert.fail(`${CHROMIUM_PATH} is missing: scripts/setup.sh installs Debian's chromium (or set CHROMIUM_PATH)`);
    });
  }
  return `Chromium not found at ${CHROMIUM_PATH} (apt-get install chromium)`;
}

/** Launch headless Chromium; throws with an install hint when it is missing. */
export async function launchBrowser() {
  if (!chromiumAvailable()) {
    throw new Error(`Chromium not found at ${CHROMIUM_PATH}: run \`bash scripts/setup.sh\` (apt-get install chromium) or set CHROMIUM_PATH`);
  }
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
}

/**
 * A page at 1366×768 that records what would make a run suspicious: page errors, console
 * errors (CSP violations among them), and failed requests. `problems()` returns them.
 * `onResponse(entry)` (optional) receives {url, status, headers, body} of every response
 * from `origin`, e.g. to feed the secret scan.
 */
export async function openPage(browser, { origin, onResponse, viewport = { width: 1366, height: 768 } } = {}) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1, serviceWorkers: "block" });
  // Only loopback: anything else is refused before it leaves the browser.
  await context.route(
    (url) => !/^https?:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?\//.test(url.href) && !url.href.startsWith("data:"),
    (route) => route.abort("blockedbyclient"),
  );
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    // Chromium logs every 4xx/5xx answer to fetch() as a console error; the tests check those
    // statuses themselves (401, 412, ...). Everything else (CSP violations first) is a problem.
    if (m.type() === "error" && !/^Failed to load resource: the server responded with a status of \d+/.test(m.text())) {
      problems.push(`console.error: ${m.text()}`);
    }
  });
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText ?? ""}`));
  if (onResponse) {
    page.on("response", async (r) => {
      if (origin && !r.url().startsWith(origin)) return;
      const entry = { url: r.url(), status: r.status(), headers: await r.allHeaders().catch(() => ({})), body: "" };
      entry.done = r.text().then(
        (t) => (entry.body = t),
        () => {},
      );
      onResponse(entry);
    });
  }
  return { context, page, problems };
}

/** Numbered screenshots in artifacts/screenshots/<prefix>-NN-<name>.png (older ones with the prefix removed). */
export function screenshotter(page, prefix) {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  // Screenshots of an earlier run with this prefix would mix with this run's. Only `<prefix>-NN-`:
  // "dashboard" must not delete "dashboard-chains-01-….png" of another suite.
  const ours = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}-\\d{2}-.*\\.png$`);
  for (const f of readdirSync(SCREENSHOT_DIR)) if (ours.test(f)) rmSync(path.join(SCREENSHOT_DIR, f));
  let n = 0;
  const taken = [];
  const shoot = async (name, opts = {}) => {
    const file = path.join(SCREENSHOT_DIR, `${prefix}-${String(++n).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path: file, ...opts });
    taken.push(file);
    return file;
  };
  shoot.taken = taken;
  return shoot;
}

/** A page on the worker `w`'s origin (responses recorded in `w.seen`, a 10 s default timeout),
 *  the problems it reports, and its screenshotter (files `<prefix>-NN-<step>.png`). */
export async function dashboardPage(browser, w, prefix) {
  const origin = w.url.replace(/\/$/, "");
  const { page, problems } = await openPage(browser, { origin, onResponse: (e) => w.seen.push(e) });
  page.setDefaultTimeout(10_000);
  return { page, problems, shot: screenshotter(page, prefix) };
}

/** Opens the dashboard and logs in with `token`. */
export async function logIn(page, w, token) {
  await page.goto(`${w.url}admin`);
  await page.fill("#login-token", token);
  await page.click("#login-submit");
}
