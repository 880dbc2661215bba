// The routes panel: per-route statistics over a selectable window (6 h / 24 h / 48 h) from
// GET /admin/api/routes?hours=H: requests, fallback rate, response-cache hits, cost and
// prompt-cache savings per route; under each route, every deployment it tried with its
// provider, attempts, failover rate and p95 latency; then the same per provider. The key money
// view below it (money.js) uses the same window.

import { api } from "./api.js";
import { h, $, $$, replace, fmtInt, fmtBps, fmtUsd, fmtMs } from "./dom.js";
import { renderMoney } from "./money.js";

const cell = (field, text, cls = "num") => h("td", { class: cls, dataset: { field }, text });

function routeRows(r) {
  const head = h(
    "tr",
    { class: "route-row", dataset: { route: r.route } },
    h("td", {}, h("strong", { text: r.route })),
    cell("requests", fmtInt(r.requests)),
    cell("fallback_rate", fmtBps(r.fallback_rate_bps)),
    cell("p95", ""),
    cell("cache_hits", fmtInt(r.cache_hits)),
    cell("cost", fmtUsd(r.cost_usd)),
    cell("savings", fmtUsd(r.savings_usd)),
  );
  head.title = `${fmtInt(r.fallbacks)} fell back, ${fmtInt(r.failed)} failed, ${fmtInt(r.cached_tokens)} prompt tokens read from the provider's cache`;
  const deps = (r.deployments ?? []).map((d) =>
    h(
      "tr",
      { class: "sub-row", dataset: { route: r.route, deployment: d.deployment, provider: d.provider } },
      h("td", { class: "small" }, "↳ ", d.deployment, h("span", { class: "muted", text: ` (${d.provider})` })),
      cell("attempts", fmtInt(d.attempts)),
      cell("failover_rate", fmtBps(d.failover_rate_bps)),
      cell("p95", fmtMs(d.latency_p95_ms)),
      cell("cache_hits", ""),
      cell("cost", fmtUsd(d.cost_usd)),
      cell("savings", ""),
    ),
  );
  return [head, deps];
}

function providerTable(providers) {
  if (!providers?.length) return null;
  return h(
    "table",
    { class: "data providers-stats" },
    h("thead", {}, h("tr", {}, h("th", { text: "Provider" }), h("th", { class: "num", text: "Attempts" }), h("th", { class: "num", text: "Failover" }), h("th", { class: "num", text: "p95" }), h("th", { class: "num", text: "Cost" }))),
    h(
      "tbody",
      {},
      providers.map((p) =>
        h("tr", { dataset: { provider: p.provider } }, h("td", { text: p.provider }), cell("attempts", fmtInt(p.attempts)), cell("failover_rate", fmtBps(p.failover_rate_bps)), cell("p95", fmtMs(p.latency_p95_ms)), cell("cost", fmtUsd(p.cost_usd))),
      ),
    ),
  );
}

export function renderRoutes(root, json) {
  const routes = json?.routes ?? [];
  if (!routes.length) {
    replace(root, h("p", { class: "muted empty", text: "No routes." }));
    return;
  }
  const table = h(
    "table",
    { class: "data routes-stats" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { text: "Route / deployment" }),
        h("th", { class: "num", text: "Requests", title: "Requests of the route; attempts of a deployment" }),
        h("th", { class: "num", text: "Fallback / failover", title: "Route: share of requests answered after a fallback. Deployment: share of its attempts that failed over" }),
        h("th", { class: "num", text: "p95" }),
        h("th", { class: "num", text: "Cache hits", title: "Answered from the response cache (no provider called)" }),
        h("th", { class: "num", text: "Cost" }),
        h("th", { class: "num", text: "Savings", title: "Prompt tokens read from the provider's cache, at the input price minus the cached-input price" }),
      ),
    ),
    h("tbody", {}, routes.map(routeRows)),
  );
  const caption = h("p", { class: "muted small", id: "routes-window", text: `Last ${json.hours} hours (this hour included)` });
  const unavailable = json.unavailable?.length ? h("p", { class: "muted small", text: `No answer from: ${json.unavailable.join(", ")}` }) : null;
  replace(root, caption, h("div", { class: "table-scroll" }, table), unavailable, providerTable(json.providers));
}

/** The panel: window buttons (`#routes-card [data-window]`), routes and key money. */
export function createRoutesView() {
  const root = $("#routes");
  const moneyRoot = $("#money");
  let hours = 24;

  async function load() {
    const [routes, money] = await Promise.allSettled([api("GET", `routes?hours=${hours}`), api("GET", `money?hours=${hours}`)]);
    if (routes.status === "fulfilled") renderRoutes(root, routes.value.json);
    else if (routes.reason?.status !== 401) replace(root, h("p", { class: "muted", text: `Cannot load the routes: ${routes.reason?.message}` }));
    if (money.status === "fulfilled") renderMoney(moneyRoot, money.value.json);
    else if (money.reason?.status !== 401) replace(moneyRoot, h("p", { class: "muted", text: `Cannot load the keys' money: ${money.reason?.message}` }));
    $("#routes-card").dataset.hours = String(hours);
  }

  for (const b of $$("#routes-card [data-window]")) {
    b.addEventListener("click", () => {
      hours = Number(b.dataset.window);
      for (const o of $$("#routes-card [data-window]")) o.classList.toggle("seg-on", o === b);
      load();
    });
  }
  return {
    load,
    get hours() {
      return hours;
    },
  };
}
