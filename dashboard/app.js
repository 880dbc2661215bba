// edge-router dashboard: a client of the admin API (docs/admin-api.md) and nothing else.
// Modules: api.js (token, fetch), dom.js (helpers), table.js (editor, diff, save, versions,
// rollback), jsonpath.js (error path → editor position), breakers.js, charts.js (SVG), keys.js,
// routes.js (per-route statistics) and money.js (keys' spend and budgets).

import { api, events, getToken, setToken } from "./api.js";
import { $, $$, fmtClock, toast } from "./dom.js";
import { createTableView } from "./table.js";
import { renderBreakers } from "./breakers.js";
import { renderCharts } from "./charts.js";
import { createKeysView } from "./keys.js";
import { createRoutesView } from "./routes.js";

const REFRESH_MS = 5000;
const TABLE_POLL_MS = 15000;
/** The routes panel reads every deployment's and key's object: less often than the breakers. */
const ROUTES_REFRESH_MS = 15000;

let tableView = null;
let keysView = null;
let routesView = null;
let started = false;
let timers = [];
let deployments = [];
let chartHours = 24;
/** deployment name → provider name, from the routing table (fallback when the list lacks it). */
let tableProviders = {};

const providerOf = (d) => d.provider ?? tableProviders[d.name] ?? "unknown";

// ---------------------------------------------------------------------------------------------
// Login / logout

function showLogin(message) {
  stop();
  $("#app").hidden = true;
  $("#login").hidden = false;
  const msg = $("#login-message");
  msg.hidden = !message;
  msg.textContent = message ?? "";
  for (const d of $$("dialog")) d.close();
  $("#toasts")?.replaceChildren();
  const input = $("#login-token");
  input.value = "";
  input.focus();
}

function showApp() {
  $("#login").hidden = true;
  $("#app").hidden = false;
}

$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const token = $("#login-token").value;
  if (!token) return;
  const btn = $("#login-submit");
  btn.disabled = true;
  try {
    await api("GET", "deployments", { token });
    setToken(token);
    await start();
  } catch (err) {
    if (err.status === 401) showLogin("Wrong admin token (401). Check the gateway's ADMIN_TOKEN secret.");
    else showLogin(`Cannot reach the admin API: ${err.message}`);
  } finally {
    btn.disabled = false;
  }
});

$("#logout").addEventListener("click", () => {
  setToken("");
  started = false;
  showLogin("Logged out.");
});

events.addEventListener("unauthorized", () => {
  started = false;
  showLogin("Your session ended: the admin API answered 401 (the admin token was rejected or changed). Log in again.");
});

// ---------------------------------------------------------------------------------------------
// Polling

function stop() {
  for (const t of timers) clearInterval(t);
  timers = [];
}

async function refreshDeployments() {
  try {
    const { json } = await api("GET", "deployments");
    deployments = json?.deployments ?? [];
    renderBreakers($("#breakers"), { deployments, providerOf, refresh: refreshDeployments });
    renderCharts($("#charts"), deployments, providerOf, chartHours);
    $("#refreshed").textContent = `updated ${fmtClock(Date.now())}`;
  } catch (e) {
    if (e.status === 401) return;
    $("#refreshed").textContent = `refresh failed: ${e.message}`;
  }
}

function setServing(serving) {
  const el = $("#top-serving");
  el.className = ["badge", { kv: "state-closed", "last-good": "state-open", "embedded-default": "state-half" }[serving] ?? "state-unknown"].join(" ");
  el.textContent = `serving: ${serving ?? "?"}`;
  el.dataset.serving = serving ?? "";
}

function setTable(table) {
  const map = {};
  for (const [name, d] of Object.entries(table?.deployments ?? {})) if (d && typeof d === "object" && d.provider) map[name] = d.provider;
  if (Object.keys(map).length) tableProviders = map;
}

async function start() {
  if (!tableView) tableView = createTableView({ onServing: setServing, onTable: setTable });
  if (!keysView) keysView = createKeysView();
  if (!routesView) routesView = createRoutesView();
  showApp();
  started = true;
  stop();
  const results = await Promise.allSettled([tableView.load({ force: true, quiet: true }), refreshDeployments(), keysView.load(), routesView.load()]);
  if (!started) return;
  const failed = results.find((r) => r.status === "rejected" && r.reason?.status !== 401);
  if (failed) toast(`Loading the table failed: ${failed.reason.message}`, "error", 10000);
  await tableView.loadHistory();
  // Charts and breakers refresh on a timer; the table is polled to notice others' changes.
  timers.push(
    setInterval(() => {
      if ($("#auto-refresh").checked && !document.hidden) refreshDeployments();
    }, REFRESH_MS),
  );
  timers.push(
    setInterval(() => {
      if ($("#auto-refresh").checked && !document.hidden) routesView.load();
    }, ROUTES_REFRESH_MS),
  );
  timers.push(
    setInterval(async () => {
      if (!$("#auto-refresh").checked || document.hidden) return;
      try {
        const before = tableView.current?.etag;
        const t = await tableView.load();
        if (t?.etag !== before) tableView.loadHistory();
      } catch {
        // shown on the next explicit action
      }
    }, TABLE_POLL_MS),
  );
}

$("#btn-breakers").addEventListener("click", refreshDeployments);
for (const b of $$("#charts-card [data-hours]")) {
  b.addEventListener("click", () => {
    chartHours = Number(b.dataset.hours);
    for (const o of $$("#charts-card [data-hours]")) o.classList.toggle("seg-on", o === b);
    renderCharts($("#charts"), deployments, providerOf, chartHours);
  });
}

// ---------------------------------------------------------------------------------------------
// Boot

if (getToken()) {
  start().catch((e) => {
    if (e?.status !== 401) showLogin(`Cannot reach the admin API: ${e.message}`);
  });
} else {
  showLogin();
}
// For tests and debugging in the console (no secret in it).
window.edgeRouterDashboard = { refreshDeployments, get tableView() { return tableView; }, get routesView() { return routesView; } };
