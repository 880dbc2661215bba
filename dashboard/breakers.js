// Circuit breakers: every deployment's state at a glance, its counters, and the kill switch
// (force-open) and reset per deployment. Data: GET /admin/api/deployments (polled by app.js).

import { api } from "./api.js";
import { h, replace, fmtAgo, fmtClock, fmtInt, fmtBps, fmtMs, toast, confirmDialog } from "./dom.js";

/** {label, cls, detail} for a breaker view. */
export function describeView(view, now = Date.now()) {
  switch (view?.state) {
    case "closed":
      return { label: "closed", cls: "state-closed", detail: "traffic flows" };
    case "open":
      return {
        label: `open until ${fmtClock(view.until_ms)}`,
        cls: "state-open",
        detail: `cooling down, ${fmtAgo(view.until_ms, now)}; then a probe`,
      };
    case "half_open":
      return { label: "half-open", cls: "state-half", detail: "a probe request decides" };
    case "forced_open":
      return { label: "forced open", cls: "state-forced", detail: "kill switch: no traffic until reset" };
    default:
      return { label: "unknown", cls: "state-unknown", detail: "no state from the deployment's object" };
  }
}

const DEGRADED_WHY = {
  degraded_latency: "p95 latency over its baseline",
  degraded_ttft: "p95 time to first token over its baseline",
  degraded_errors: "error rate over the threshold",
  degraded_timeouts: "timeout rate over the threshold",
};

/** A "degraded" badge with the figures behind it, or null while the deployment is well. */
export function degradedBadge(deg) {
  const why = deg?.degraded;
  if (!why) return null;
  const r = deg.recent ?? {};
  const b = deg.baseline ?? {};
  const figures = [
    `recent p95 ${fmtMs(r.latency_p95_ms ?? r.ttft_p95_ms)} vs baseline ${fmtMs(b.latency_p95_ms ?? b.ttft_p95_ms)}`,
    `errors ${fmtBps(r.error_rate_bps ?? 0)}`,
    `timeouts ${fmtBps(r.timeout_rate_bps ?? 0)}`,
  ].join(" · ");
  return h(
    "span",
    { class: ["badge", "state-half"], dataset: { degraded: why }, title: `${DEGRADED_WHY[why] ?? why}: tried after the healthy deployments of its chains (${figures})` },
    why.replace("_", " "),
  );
}

/**
 * Render the breaker table into `root`.
 * @param {{deployments: Array, providerOf: Function, refresh: Function}} ctx
 */
export function renderBreakers(root, { deployments, providerOf, refresh }) {
  if (!deployments.length) {
    replace(root, h("p", { class: "muted", text: "The routing table has no deployments." }));
    return;
  }
  const now = Date.now();
  const rows = deployments.map((d) => {
    const st = d.state ?? {};
    const view = st.view ?? null;
    const v = describeView(view, now);
    const total = st.usage?.total ?? {};
    const br = st.breaker ?? {};
    const forced = view?.state === "forced_open";
    const off = d.breaker_enabled === false;
    const kill = h("button", {
      type: "button",
      class: "btn btn-small btn-danger",
      dataset: { action: "kill", deployment: d.name },
      disabled: forced,
      title: off ? "This deployment's breaker is disabled in the routing table: the gateway ignores its kill switch" : "Take this deployment out of every chain until reset",
      text: "Kill",
      onclick: async () => {
        const ok = await confirmDialog({
          title: `Force ${d.name} open?`,
          message: off
            ? `The breaker of ${d.name} is disabled in the routing table (breaker.enabled = false), so the gateway will keep sending it traffic until you enable it. Force it open anyway?`
            : `No request will be sent to ${d.name} (not even a probe) until you reset it; its chains fall back to their next deployments.`,
          confirm: "Force open",
          danger: true,
        });
        if (!ok) return;
        await act(d.name, "force-open", refresh);
      },
    });
    const reset = h("button", {
      type: "button",
      class: ["btn", "btn-small", forced || view?.state === "open" || view?.state === "half_open" ? "btn-primary" : ""],
      dataset: { action: "reset", deployment: d.name },
      disabled: view?.state === "closed",
      title: "Close the breaker: traffic flows again at once",
      text: "Reset",
      onclick: () => act(d.name, "reset", refresh),
    });
    const badge = h("span", { class: ["badge", v.cls], title: v.detail, dataset: { state: view?.state ?? "unknown" } }, v.label);
    const fails = br.consecutive_failures ?? 0;
    const trips = br.total_trips ?? 0;
    const stateCell = h(
      "td",
      { class: "state-cell" },
      badge,
      degradedBadge(st.degradation),
      off ? h("span", { class: "tag tag-muted", title: "breaker.enabled is false for this deployment: the gateway ignores its state", text: "breaker off" }) : null,
      view?.state === "open" || fails || trips
        ? h("div", { class: "muted small", title: "failures in a row · trips (lifetime)" }, [view?.state === "open" ? fmtAgo(view.until_ms, now) : null, fails ? `${fails} failing in a row` : null, trips ? `${trips} trip${trips === 1 ? "" : "s"}` : null].filter(Boolean).join(" · "))
        : null,
    );
    const p50 = total.latency_p50_ms;
    const p95 = total.latency_p95_ms;
    return h(
      "tr",
      { dataset: { deployment: d.name, state: view?.state ?? "unknown", degraded: st.degradation?.degraded ?? "" }, class: forced ? "row-forced" : view?.state === "open" ? "row-open" : "" },
      h("td", { class: "dep-cell" }, h("div", { class: "dep-name", text: d.name }), h("div", { class: "muted small ellipsis", title: [providerOf(d), d.model].filter(Boolean).join(" · "), text: [providerOf(d), d.model].filter(Boolean).join(" · ") })),
      stateCell,
      h("td", { class: "num", text: fmtInt(total.requests ?? 0) }),
      h("td", { class: ["num", (total.error_rate_bps ?? 0) > 0 ? "warn-text" : ""], text: fmtBps(total.error_rate_bps ?? 0) }),
      h("td", { class: "num", text: fmtBps(total.fallback_rate_bps ?? 0) }),
      h("td", { class: "num", text: p50 == null ? "—" : `${fmtMs(p50)} / ${fmtMs(p95)}` }),
      h("td", { class: "actions" }, kill, reset),
    );
  });
  replace(
    root,
    h(
      "table",
      { class: "data breakers" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { text: "Deployment" }),
          h("th", { text: "Breaker" }),
          h("th", { class: "num", text: "Req" }),
          h("th", { class: "num", text: "Errors" }),
          h("th", { class: "num", text: "Fallb." }),
          h("th", { class: "num", text: "p50 / p95" }),
          h("th", { class: "actions", text: "" }),
        ),
      ),
      h("tbody", {}, rows),
    ),
  );
}

async function act(name, action, refresh) {
  try {
    const { json } = await api("POST", `deployments/${encodeURIComponent(name)}/${action}`, { body: {} });
    const v = describeView(json?.view);
    toast(action === "reset" ? `${name}: breaker reset (${v.label})` : `${name}: forced open (kill switch)`, action === "reset" ? "ok" : "info");
  } catch (e) {
    if (e.status !== 401) toast(`${name}: ${action} failed: ${e.message}`, "error", 8000);
  }
  await refresh();
}
