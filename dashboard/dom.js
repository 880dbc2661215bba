// Small DOM and formatting helpers shared by the dashboard's modules. No inline styles or
// handlers in markup (the page's CSP forbids them): elements are built here and wired with
// addEventListener; dynamic geometry is set through element.style, which CSP allows.

/**
 * h("button", {class: "btn", onclick: fn, dataset: {x: 1}}, "text", child, [more])
 * Attributes: `class`, `text`, `dataset`, `on<event>` (listener), booleans (`disabled`,
 * `hidden`, ...), anything else via setAttribute. Children: strings, nodes, arrays, null.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** Like h() for SVG elements (attributes always through setAttribute). */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") el.textContent = String(v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = Array.isArray(v) ? v.filter(Boolean).join(" ") : v;
    else if (k === "text") el.textContent = String(v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else if (k in el && typeof el[k] !== "function" && k !== "list" && k !== "form") el[k] = v;
    else el.setAttribute(k, String(v));
  }
}

export function append(el, ...children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replace all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

// ---------------------------------------------------------------------------------------------
// Formatting

export function fmtTime(ms) {
  if (ms === null || ms === undefined) return "—";
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtClock(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** "3 min ago", "in 25 s". */
export function fmtAgo(ms, now = Date.now()) {
  if (ms === null || ms === undefined) return "";
  const d = Math.round((ms - now) / 1000);
  const a = Math.abs(d);
  let t;
  if (a < 60) t = `${a} s`;
  else if (a < 3600) t = `${Math.round(a / 60)} min`;
  else if (a < 86400 * 2) t = `${Math.round(a / 3600)} h`;
  else t = `${Math.round(a / 86400)} d`;
  if (a < 2) return "just now";
  return d < 0 ? `${t} ago` : `in ${t}`;
}

export function fmtInt(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  return Number(n).toLocaleString("en-US");
}

/** Basis points as a percentage: 250 → "2.5%". */
export function fmtBps(bps) {
  if (bps === null || bps === undefined) return "—";
  const p = bps / 100;
  return `${p >= 10 || p === 0 ? p.toFixed(0) : p.toFixed(1)}%`;
}

export function fmtUsd(v) {
  if (v === null || v === undefined || v === "") return "—";
  const n = Number(v);
  if (!Number.isFinite(n)) return String(v);
  if (n === 0) return "$0";
  if (n < 0.01) return `$${n.toPrecision(2)}`;
  return `$${n.toFixed(2)}`;
}

/** Latency bounds come from a histogram; the open-ended bucket is u64::MAX. */
export function fmtMs(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms > 1e12) return "> 60 s";
  if (ms >= 10_000) return `${Math.round(ms / 1000)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms)} ms`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "";
  if (n < 1024) return `${n} B`;
  return `${(n / 1024).toFixed(1)} KiB`;
}

// ---------------------------------------------------------------------------------------------
// Toasts and dialogs

/** A short message in the corner (role=status); kind: "ok" | "error" | "info". */
export function toast(message, kind = "info", ms = 4000) {
  let box = $("#toasts");
  if (!box) {
    box = h("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  const t = h("div", { class: ["toast", `toast-${kind}`], dataset: { kind } }, message);
  box.append(t);
  while (box.children.length > 3) box.firstElementChild.remove();
  setTimeout(() => t.remove(), ms);
  return t;
}

/**
 * A modal <dialog> built from parts; returns {dialog, body, footer, close}. Removed from the
 * document when closed.
 */
export function modal({ title, wide = false, id } = {}) {
  const body = h("div", { class: "dialog-body" });
  const footer = h("div", { class: "dialog-footer" });
  const closeBtn = h("button", { type: "button", class: "btn btn-ghost dialog-x", "aria-label": "Close", text: "×" });
  const dialog = h(
    "dialog",
    { class: ["dialog", wide && "dialog-wide"], ...(id ? { id } : {}) },
    h("div", { class: "dialog-head" }, h("h2", { text: title }), closeBtn),
    body,
    footer,
  );
  const close = () => {
    if (dialog.open) dialog.close();
  };
  closeBtn.addEventListener("click", close);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, body, footer, close };
}

/**
 * Ask for confirmation in a modal; resolves true/false. `danger` colours the confirm button.
 */
export function confirmDialog({ title, message, confirm = "Confirm", danger = false }) {
  return new Promise((resolve) => {
    const m = modal({ title, id: "confirm-dialog" });
    let answer = false;
    append(m.body, typeof message === "string" ? h("p", { text: message }) : message);
    const ok = h("button", {
      type: "button",
      class: ["btn", danger ? "btn-danger" : "btn-primary"],
      dataset: { action: "confirm" },
      text: confirm,
      onclick: () => {
        answer = true;
        m.close();
      },
    });
    const cancel = h("button", { type: "button", class: "btn", dataset: { action: "cancel" }, text: "Cancel", onclick: m.close });
    append(m.footer, cancel, ok);
    m.dialog.addEventListener("close", () => resolve(answer));
    ok.focus();
  });
}

/** Copy text to the clipboard (falls back to a selected input + execCommand). */
export async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (input) {
      input.select();
      try {
        return document.execCommand("copy");
      } catch {
        return false;
      }
    }
    return false;
  }
}

export function debounce(fn, ms) {
  let t;
  const d = (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
  d.cancel = () => clearTimeout(t);
  return d;
}
