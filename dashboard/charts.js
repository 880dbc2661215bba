// Usage charts as inline SVG, drawn from each deployment's hourly counters
// (`state.usage.hours` of GET /admin/api/deployments), grouped by provider: requests, latency
// p50/p95, error and fallback rates, cost. No library: bars, polylines and a few labels.

import { h, s, fmtUsd, fmtMs, fmtInt } from "./dom.js";

const HOUR = 3_600_000;
/** Upper bounds of the gateway's latency histogram buckets (src/state/stats.rs). */
const LATENCY_BOUNDS_MS = [50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000, Infinity];
const PALETTE = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777"];

const W = 360;
const H = 150;
const M = { l: 46, r: 8, t: 8, b: 20 };

/** Nearest-rank percentile over merged histogram buckets (as the gateway computes it). */
export function percentile(buckets, p) {
  const n = buckets.reduce((a, c) => a + c, 0);
  if (n === 0) return null;
  const rank = Math.max(1, Math.ceil((n * p) / 100));
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i];
    if (seen >= rank) return LATENCY_BOUNDS_MS[Math.min(i, LATENCY_BOUNDS_MS.length - 1)];
  }
  return Infinity;
}

/**
 * Hourly series per provider over the last `hours` hours (the current one included).
 * Returns {providers, starts, data: {provider: [{requests, errors, fallbacks, cost_nanos, buckets}]}, totals}.
 */
export function aggregate(deployments, providerOf, hours = 24, now = Date.now()) {
  const last = Math.floor(now / HOUR) * HOUR;
  const first = last - (hours - 1) * HOUR;
  const starts = Array.from({ length: hours }, (_, i) => first + i * HOUR);
  const data = {};
  const totals = {};
  const empty = () => ({ requests: 0, errors: 0, fallbacks: 0, cost_nanos: 0, buckets: new Array(LATENCY_BOUNDS_MS.length).fill(0) });
  for (const d of deployments) {
    const hoursList = d?.state?.usage?.hours;
    if (!Array.isArray(hoursList)) continue;
    const provider = providerOf(d) || "unknown";
    for (const c of hoursList) {
      const idx = Math.round((c.start_ms - first) / HOUR);
      if (idx < 0 || idx >= hours) continue;
      data[provider] ??= starts.map(empty);
      totals[provider] ??= { requests: 0, cost_nanos: 0 };
      const slot = data[provider][idx];
      slot.requests += c.requests ?? 0;
      slot.errors += c.errors ?? 0;
      slot.fallbacks += c.fallbacks ?? 0;
      slot.cost_nanos += c.cost_nanos ?? 0;
      (c.latency_buckets ?? []).forEach((v, i) => {
        const j = Math.min(i, slot.buckets.length - 1);
        slot.buckets[j] += v;
      });
      totals[provider].requests += c.requests ?? 0;
      totals[provider].cost_nanos += c.cost_nanos ?? 0;
    }
  }
  const providers = Object.keys(data).sort();
  return { providers, starts, data, totals };
}

/** A round top and 2–4 round tick steps for values up to `v`. */
function niceScale(v) {
  if (!(v > 0)) v = 1;
  const raw = v / 3;
  const e = 10 ** Math.floor(Math.log10(raw));
  let step = 10 * e;
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (m * e >= raw) {
      step = m * e;
      break;
    }
  }
  const n = Math.max(1, Math.ceil(v / step - 1e-9));
  return { top: n * step, ticks: Array.from({ length: n + 1 }, (_, k) => k * step) };
}

function hourLabel(ms) {
  return `${String(new Date(ms).getHours()).padStart(2, "0")}:00`;
}

/** The frame: grid lines, y labels, x labels; returns {svg, x(i), bw, y(v)}. */
function frame({ title, starts, scale, fmtY }) {
  const max = scale.top;
  const pw = W - M.l - M.r;
  const ph = H - M.t - M.b;
  const n = starts.length;
  const bw = pw / n;
  const x = (i) => M.l + i * bw;
  const y = (v) => M.t + ph - (Math.min(v, max) / max) * ph;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img", "aria-label": title });
  for (const v of scale.ticks) {
    const yy = y(v);
    svg.append(s("line", { x1: M.l, x2: W - M.r, y1: yy, y2: yy, class: v === 0 ? "axis" : "grid" }));
    svg.append(s("text", { x: M.l - 4, y: yy + 3, class: "tick tick-y", text: fmtY(v, max) }));
  }
  const every = n > 24 ? 12 : n > 12 ? 6 : n > 6 ? 2 : 1;
  starts.forEach((t, i) => {
    if ((n - 1 - i) % every === 0) {
      svg.append(s("text", { x: x(i) + bw / 2, y: H - 6, class: "tick tick-x", text: hourLabel(t) }));
    }
  });
  return { svg, x, bw, y };
}

function stackedBars({ title, agg, value, fmtY, fmtTip, colors }) {
  const { providers, starts, data } = agg;
  const sums = starts.map((_, i) => providers.reduce((a, p) => a + value(data[p][i]), 0));
  const f = frame({ title, starts, scale: niceScale(Math.max(0, ...sums)), fmtY });
  starts.forEach((t, i) => {
    let base = 0;
    for (const p of providers) {
      const v = value(data[p][i]);
      if (!(v > 0)) continue;
      const y0 = f.y(base);
      const y1 = f.y(base + v);
      base += v;
      const bar = s("rect", {
        x: f.x(i) + f.bw * 0.15,
        y: y1,
        width: Math.max(1, f.bw * 0.7),
        height: Math.max(1, y0 - y1),
        fill: colors[p],
        class: "bar",
        "data-provider": p,
      });
      bar.append(s("title", { text: `${hourLabel(t)} ${p}: ${fmtTip(v)}` }));
      f.svg.append(bar);
    }
  });
  return f.svg;
}

/** One polyline per (provider, key); single points still show as dots. */
function lines({ title, agg, keys, fmtY, fmtTip, colors, cap = Infinity }) {
  const { providers, starts, data } = agg;
  let top = 0;
  for (const p of providers)
    for (const k of keys)
      for (const slot of data[p]) {
        const v = k.value(slot);
        if (v !== null && Number.isFinite(Math.min(v, cap))) top = Math.max(top, Math.min(v, cap));
      }
  const f = frame({ title, starts, scale: niceScale(top), fmtY });
  for (const p of providers) {
    for (const k of keys) {
      const pts = [];
      let seg = [];
      data[p].forEach((slot, i) => {
        const raw = k.value(slot);
        if (raw === null || raw === undefined) {
          if (seg.length) pts.push(seg);
          seg = [];
          return;
        }
        const v = Math.min(raw, cap);
        const cx = f.x(i) + f.bw / 2;
        const cy = f.y(v);
        seg.push([cx, cy]);
        const dot = s("circle", { cx, cy, r: 2.5, fill: colors[p], class: "dot", "data-provider": p });
        dot.append(s("title", { text: `${hourLabel(starts[i])} ${p} ${k.label}: ${fmtTip(raw)}` }));
        f.svg.append(dot);
      });
      if (seg.length) pts.push(seg);
      for (const sg of pts) {
        if (sg.length < 2) continue;
        f.svg.append(
          s("polyline", {
            points: sg.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" "),
            fill: "none",
            stroke: colors[p],
            class: ["line", k.dashed ? "line-dashed" : ""].join(" "),
          }),
        );
      }
    }
  }
  return f.svg;
}

function card(title, key, svg, testId) {
  return h("figure", { class: "chart", dataset: { chart: testId } }, h("figcaption", {}, h("span", { class: "chart-title", text: title }), key ? h("span", { class: "chart-key" }, key) : null), svg);
}

function styleKey(solid, dashed) {
  return [
    s("svg", { viewBox: "0 0 18 6", class: "key-line" }, s("line", { x1: 0, x2: 18, y1: 3, y2: 3, class: "key-solid" })),
    ` ${solid} `,
    s("svg", { viewBox: "0 0 18 6", class: "key-line" }, s("line", { x1: 0, x2: 18, y1: 3, y2: 3, class: "key-dashed" })),
    ` ${dashed}`,
  ];
}

/**
 * Render the four charts and the provider legend into `root`.
 * @param {HTMLElement} root
 * @param {Array} deployments  from GET /admin/api/deployments
 * @param {(d) => string} providerOf
 * @param {number} hours  24 or 48
 */
export function renderCharts(root, deployments, providerOf, hours = 24) {
  const agg = aggregate(deployments, providerOf, hours);
  const colors = {};
  agg.providers.forEach((p, i) => (colors[p] = PALETTE[i % PALETTE.length]));
  root.replaceChildren();
  if (agg.providers.length === 0) {
    root.append(h("p", { class: "muted empty", text: `No traffic in the last ${hours} hours.` }));
    return agg;
  }
  const pct = (slot, field) => (slot.requests > 0 ? (slot[field] / slot.requests) * 100 : null);
  const grid = h(
    "div",
    { class: "charts-grid" },
    card(
      "Requests / hour",
      null,
      stackedBars({ title: "Requests per hour", agg, value: (c) => c.requests, fmtY: (v) => fmtCompact(v), fmtTip: (v) => `${fmtInt(v)} requests`, colors }),
      "requests",
    ),
    card(
      "Latency",
      styleKey("p50", "p95"),
      lines({
        title: "Latency p50 and p95",
        agg,
        keys: [
          { label: "p50", value: (c) => percentile(c.buckets, 50) },
          { label: "p95", value: (c) => percentile(c.buckets, 95), dashed: true },
        ],
        cap: 60_000,
        fmtY: (v) => fmtMs(v),
        fmtTip: (v) => (v === Infinity ? "> 60 s" : `≤ ${fmtMs(v)}`),
        colors,
      }),
      "latency",
    ),
    card(
      "Error / fallback rate",
      styleKey("errors", "fallbacks"),
      lines({
        title: "Error and fallback rate",
        agg,
        keys: [
          { label: "errors", value: (c) => pct(c, "errors") },
          { label: "fallbacks", value: (c) => pct(c, "fallbacks"), dashed: true },
        ],
        fmtY: (v, max) => `${+v.toFixed(max < 5 ? 1 : 0)}%`,
        fmtTip: (v) => `${v.toFixed(1)}%`,
        colors,
      }),
      "rates",
    ),
    card(
      "Cost / hour",
      null,
      stackedBars({ title: "Cost per hour", agg, value: (c) => c.cost_nanos / 1e9, fmtY: fmtUsdAxis, fmtTip: (v) => fmtUsd(v), colors }),
      "cost",
    ),
  );
  const legend = h(
    "ul",
    { class: "legend" },
    agg.providers.map((p) => {
      const sw = h("span", { class: "swatch" });
      sw.style.background = colors[p]; // CSP allows CSSOM writes, not style attributes
      const t = agg.totals[p];
      return h("li", { dataset: { provider: p } }, sw, h("strong", { text: p }), h("span", { class: "muted", text: ` ${fmtInt(t.requests)} req · ${fmtUsd(t.cost_nanos / 1e9)}` }));
    }),
  );
  root.append(grid, legend);
  return agg;
}

function fmtCompact(v) {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(v < 10 && v % 1 ? 1 : 0)}`;
}

/** Dollars with enough decimals for two significant digits of the axis' top. */
function fmtUsdAxis(v, max) {
  if (v === 0) return "$0";
  const digits = max >= 10 ? 0 : Math.min(8, Math.max(2, Math.ceil(-Math.log10(max)) + 1));
  return `$${v.toFixed(digits)}`;
}
