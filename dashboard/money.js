// The key money view: for each gateway key (GET /admin/api/money?hours=H), its requests,
// spend, prompt-cache savings and response-cache hits over the window, and its spend today and
// this month against its day and month budgets (a bar per budget, red from 80 %; the share may
// pass 100 %, the bar stops there).

import { h, replace, fmtInt, fmtBps, fmtUsd } from "./dom.js";

const cell = (field, text) => h("td", { class: "num", dataset: { field }, text });

/** Spend against a budget: a bar and "$spent / $budget (n %)"; just the spend without one. */
function budgetCell(field, period) {
  const td = h("td", { class: "budget", dataset: { field } });
  if (!period || period.spent_usd === null || period.spent_usd === undefined) {
    td.append(h("span", { class: "muted", text: "—" }));
    return td;
  }
  if (period.budget_usd === null || period.budget_usd === undefined) {
    td.append(h("span", { text: fmtUsd(period.spent_usd) }), h("span", { class: "muted", text: " (no budget)" }));
    return td;
  }
  const pct = Math.min(100, (period.use_bps ?? 0) / 100);
  const fill = h("span", { class: ["budget-fill", period.use_bps >= 8000 ? "budget-hot" : ""].join(" ") });
  fill.style.width = `${pct}%`; // CSP allows CSSOM writes, not style attributes
  td.append(
    h("div", {}, h("span", { class: "budget-bar", title: `${fmtBps(period.use_bps)} of the budget` }, fill), h("span", { class: "small", text: ` ${fmtBps(period.use_bps)}` })),
    h("div", { class: "muted small", text: `${fmtUsd(period.spent_usd)} of ${fmtUsd(period.budget_usd)}` }),
  );
  td.dataset.useBps = String(period.use_bps ?? "");
  return td;
}

export function renderMoney(root, json) {
  const keys = json?.keys ?? [];
  if (!keys.length) {
    replace(root, h("p", { class: "muted empty", text: "No gateway keys." }));
    return;
  }
  const rows = keys.map((k) => {
    const m = k.money ?? {};
    return h(
      "tr",
      { dataset: { key: k.id }, class: k.revoked ? "row-revoked" : "" },
      h("td", {}, h("span", { class: "dep-name", text: k.name ?? "(unnamed)" }), k.available ? null : h("span", { class: "muted small", text: " (no answer)" })),
      cell("requests", fmtInt(m.requests)),
      cell("spend", fmtUsd(m.cost_usd)),
      cell("savings", fmtUsd(m.savings_usd)),
      cell("cache_hits", fmtInt(m.cache_hits)),
      budgetCell("day", k.budget?.day),
      budgetCell("month", k.budget?.month),
    );
  });
  const table = h(
    "table",
    { class: "data money" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { text: "Key" }),
        h("th", { class: "num", text: "Requests" }),
        h("th", { class: "num", text: "Spend" }),
        h("th", { class: "num", text: "Savings" }),
        h("th", { class: "num", text: "Cache hits" }),
        h("th", { text: "Day budget", title: "Spent today (UTC) against the key's day budget" }),
        h("th", { text: "Month budget", title: "Spent this month (UTC) against the key's month budget" }),
      ),
    ),
    h("tbody", {}, rows),
  );
  replace(
    root,
    h("div", { class: "table-scroll" }, table),
    json.next_offset != null ? h("p", { class: "muted small", text: `The first ${fmtInt(keys.length)} of ${fmtInt(json.total)} keys (live keys first, newest first).` }) : null,
  );
}
