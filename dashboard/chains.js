// Chains as lists: every route's `chain` (and its `strategy`) drawn from the routing-table
// editor's JSON, with controls to reorder (↑ ↓ or drag), add one of the table's deployments,
// remove one, change weights and the strategy. Every list edit rewrites only the route's
// `chain` (or `strategy`) value in the editor's text, formatted like the text around it (two-
// space JSON at that depth, or one line when the chain was on one line), then fires the
// editor's `input` event, so table.js marks the draft dirty and validates it as for a hand
// edit; Review & save is unchanged. A hand edit re-renders the lists whenever the text parses.
// The gateway's validation stays the judge: an empty chain or an unknown deployment is shown
// here, not refused.

import { h, replace } from "./dom.js";

/** The strategies the gateway knows (src/config/types.rs, `Strategy::ALL`). */
export const STRATEGIES = ["ordered", "weighted", "cheapest", "fastest", "least_used"];
/** Largest weight the gateway accepts (src/config/routes.rs, `MAX_WEIGHT`). */
const MAX_WEIGHT = 10000;

// ---------------------------------------------------------------------------------------------
// Where a member is in the text. Only used on text that JSON.parse accepted, so the scanner can
// trust the syntax; with duplicate keys it takes the last one, as JSON.parse does.

const WS = new Set([" ", "\n", "\r", "\t"]);

function skipWs(text, i) {
  while (i < text.length && WS.has(text[i])) i++;
  return i;
}

function skipString(text, i) {
  i++; // opening quote
  while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
  return i + 1;
}

/** End of the value starting at `i` (no leading whitespace). */
function skipValue(text, i) {
  const c = text[i];
  if (c === '"') return skipString(text, i);
  if (c === "{" || c === "[") {
    let depth = 0;
    while (i < text.length) {
      const d = text[i];
      if (d === '"') {
        i = skipString(text, i);
        continue;
      }
      if (d === "{" || d === "[") depth++;
      else if (d === "}" || d === "]") {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    return i;
  }
  while (i < text.length && !WS.has(text[i]) && text[i] !== "," && text[i] !== "]" && text[i] !== "}") i++;
  return i;
}

/** The member `key` of the object value starting at `start`: {keyStart, valueStart, valueEnd}. */
function member(text, start, key) {
  if (text[start] !== "{") return null;
  let found = null;
  let i = skipWs(text, start + 1);
  if (text[i] === "}") return null;
  while (i < text.length) {
    const keyStart = i;
    const keyEnd = skipString(text, i);
    const k = JSON.parse(text.slice(keyStart, keyEnd));
    i = skipWs(text, keyEnd) + 1; // ':'
    const valueStart = skipWs(text, i);
    const valueEnd = skipValue(text, valueStart);
    if (k === key) found = { keyStart, valueStart, valueEnd };
    i = skipWs(text, valueEnd);
    if (text[i] !== ",") break;
    i = skipWs(text, i + 1);
  }
  return found;
}

/** `routes.<route>` and its member `key` (null when absent) in `text`. */
function locate(text, route, key) {
  const routes = member(text, skipWs(text, 0), "routes");
  const r = routes && member(text, routes.valueStart, route);
  if (!r) return null;
  return { route: r, member: member(text, r.valueStart, key) };
}

/** The whitespace that starts the line holding offset `i`. */
function lineIndent(text, i) {
  const lineStart = text.lastIndexOf("\n", i - 1) + 1;
  return /^[ \t]*/.exec(text.slice(lineStart, i))[0];
}

/** Whether something other than whitespace precedes offset `i` on its line. */
function sharesLine(text, i) {
  const lineStart = text.lastIndexOf("\n", i - 1) + 1;
  return text.slice(lineStart, i).trim() !== "";
}

/** `value` on one line, with a space after each `,` and `:` (the README's style). */
function oneLine(value) {
  if (Array.isArray(value)) return `[${value.map(oneLine).join(", ")}]`;
  if (value && typeof value === "object") return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${oneLine(v)}`).join(", ")}}`;
  return JSON.stringify(value);
}

/** `value` as JSON.stringify(…, null, 2) would write it at `indent`. */
function pretty(value, indent) {
  return JSON.stringify(value, null, 2).split("\n").join(`\n${indent}`);
}

/** `text` with `routes.<route>.chain` replaced by `chain`; null when the chain is not found. */
export function replaceChain(text, route, chain) {
  const at = locate(text, route, "chain");
  const m = at?.member;
  if (!m) return null;
  const old = text.slice(m.valueStart, m.valueEnd);
  // Keep the chain's own layout: one line stays one line. An empty chain follows its route.
  const compact = /^\[\s*\]$/.test(old) ? !text.slice(at.route.valueStart, at.route.valueEnd).includes("\n") : !old.includes("\n");
  const written = compact ? oneLine(chain) : pretty(chain, lineIndent(text, m.keyStart));
  return text.slice(0, m.valueStart) + written + text.slice(m.valueEnd);
}

/**
 * `text` with `routes.<route>.strategy` set: its value replaced, or the member added after
 * `chain` (unless the strategy is the default, "ordered"). Null when the route is not found.
 */
export function replaceStrategy(text, route, strategy) {
  const at = locate(text, route, "strategy");
  if (!at) return null;
  const m = at.member;
  if (m) return text.slice(0, m.valueStart) + JSON.stringify(strategy) + text.slice(m.valueEnd);
  if (strategy === "ordered") return text;
  const chain = member(text, at.route.valueStart, "chain");
  if (!chain) return null;
  const sep = sharesLine(text, chain.keyStart) ? ", " : `,\n${lineIndent(text, chain.keyStart)}`;
  return `${text.slice(0, chain.valueEnd)}${sep}"strategy": ${JSON.stringify(strategy)}${text.slice(chain.valueEnd)}`;
}

// ---------------------------------------------------------------------------------------------
// Chain entries

/** {name, weight, raw} of a chain entry (`name` null for an entry that is neither shape). */
function entryOf(raw) {
  if (typeof raw === "string") return { name: raw, weight: undefined, raw };
  if (raw && typeof raw === "object" && !Array.isArray(raw) && typeof raw.deployment === "string") return { name: raw.deployment, weight: raw.weight, raw };
  return { name: null, weight: undefined, raw };
}

/** The entry `raw` with weight `w` (undefined: no weight, back to a plain name if that is all). */
function withWeight(raw, w) {
  if (typeof raw === "string") return w === undefined ? raw : { deployment: raw, weight: w };
  const next = { ...raw };
  if (w === undefined) delete next.weight;
  else next.weight = w;
  return Object.keys(next).length === 1 && typeof next.deployment === "string" ? next.deployment : next;
}

/** A weight input's text as the JSON value to write: a number, or undefined when empty. */
function weightValue(text) {
  const t = text.trim();
  if (t === "") return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : t; // not a number: written as text, and validation says so
}

// ---------------------------------------------------------------------------------------------
// The view

/**
 * Lists of every route's chain in `root`, kept in sync with `editor` (the routing-table
 * textarea). Call `refresh()` after setting `editor.value` without an `input` event.
 */
export function createChainsView({ editor, root }) {
  /** The editor text the lists show (null before the first parse). */
  let shown = null;
  /** The parsed table behind the lists. */
  let table = null;
  let stale = false;
  let drag = null;

  editor.addEventListener("input", () => refresh());

  function refresh() {
    const text = editor.value;
    if (text === shown && !stale) return;
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch {
      if (!stale || shown === null) {
        stale = true;
        render();
      }
      return;
    }
    stale = false;
    shown = text;
    table = parsed;
    render();
  }

  /** Apply `edit(text) → text | null` to the editor; `focus` names the control to focus after. */
  function apply(edit, focus) {
    if (stale) return;
    const next = edit(editor.value);
    if (next === null || next === editor.value) return;
    const top = editor.scrollTop;
    editor.value = next;
    editor.scrollTop = top;
    pendingFocus = focus ?? null;
    editor.dispatchEvent(new Event("input")); // table.js: dirty flag, gutter, validation; us: refresh
  }

  /** Change route `name`'s chain (a copy of the parsed array) with `fn`. */
  function editChain(name, fn, focus) {
    apply((text) => {
      const chain = JSON.parse(text)?.routes?.[name]?.chain;
      if (!Array.isArray(chain)) return null;
      const next = chain.slice();
      fn(next);
      return replaceChain(text, name, next);
    }, focus);
  }

  let pendingFocus = null;

  /** {key, start, end} of the focused control inside the view, to restore it after a render. */
  function focusedControl() {
    const el = document.activeElement;
    if (!el || !root.contains(el) || !el.dataset.focus) return null;
    return { key: el.dataset.focus, start: el.selectionStart ?? null, end: el.selectionEnd ?? null };
  }

  function restoreFocus(f) {
    if (!f) return;
    const el = [...root.querySelectorAll("[data-focus]")].find((e) => e.dataset.focus === f.key);
    if (!el || el.disabled) return;
    el.focus();
    if (f.start !== null && typeof el.setSelectionRange === "function") {
      try {
        el.setSelectionRange(f.start, f.end);
      } catch {
        // not a text control
      }
    }
  }

  function render() {
    const focus = pendingFocus ? { key: pendingFocus, start: null, end: null } : focusedControl();
    pendingFocus = null;
    const routes = table && typeof table === "object" && table.routes && typeof table.routes === "object" && !Array.isArray(table.routes) ? table.routes : null;
    const deployments = table && typeof table.deployments === "object" && table.deployments && !Array.isArray(table.deployments) ? table.deployments : {};
    const notes = [];
    if (stale) {
      notes.push(
        h("p", { class: "banner banner-warn chains-stale", id: "chains-stale", role: "note" }, shown === null ? "The JSON does not parse: fix it to edit chains here." : "The JSON does not parse: the lists show it as it last parsed. Fix the JSON to edit chains here."),
      );
    }
    if (!routes) {
      replace(root, notes, table ? h("p", { class: "muted", text: "The table has no routes object." }) : null);
      return;
    }
    const names = Object.keys(routes);
    replace(
      root,
      notes,
      names.length ? names.map((name) => routeBlock(name, routes[name], deployments)) : h("p", { class: "muted", text: "The table has no routes." }),
    );
    root.classList.toggle("chains-disabled", stale);
    restoreFocus(focus);
  }

  function routeBlock(name, route, deployments) {
    const head = h("div", { class: "chain-head" }, h("h3", { class: "chain-route mono", text: name }));
    if (!route || typeof route !== "object" || Array.isArray(route) || !Array.isArray(route.chain)) {
      return h("div", { class: "chain-route-block", dataset: { route: name } }, head, h("p", { class: "muted small", text: "No chain list: edit this route in the JSON." }));
    }
    if (route.kind === "embeddings") head.append(h("span", { class: "tag", text: "embeddings" }));
    const strategy = route.strategy;
    const select = h("select", {
      class: "chain-strategy",
      "aria-label": `Strategy of route ${name}`,
      dataset: { focus: `${name}|strategy` },
      disabled: stale,
      onchange: () => apply((text) => replaceStrategy(text, name, select.value), `${name}|strategy`),
    });
    const known = STRATEGIES.includes(strategy);
    for (const s of STRATEGIES) select.append(h("option", { value: s, text: s === "ordered" && strategy === undefined ? "ordered (default)" : s }));
    if (strategy !== undefined && !known) select.append(h("option", { value: String(strategy), text: `${JSON.stringify(strategy)} (unknown)` }));
    select.value = strategy === undefined ? "ordered" : String(strategy);
    head.append(h("span", { class: "spacer" }), h("label", { class: "chain-strategy-label muted small", text: "strategy " }, select));

    const entries = route.chain.map(entryOf);
    const weighted = strategy === "weighted" || entries.some((e) => e.weight !== undefined);
    const weights = entries.map((e) => (e.weight === undefined ? 1 : e.weight));
    const total = weights.reduce((a, w) => a + (Number.isInteger(w) && w > 0 ? w : 0), 0);
    const list = h("ol", { class: "chain-list", dataset: { route: name } });
    entries.forEach((e, i) => list.append(entryRow(name, e, i, entries.length, deployments, weighted && { total, weight: weights[i], shares: strategy === "weighted" })));
    if (!entries.length) list.append(h("li", { class: "chain-empty muted", text: "Empty chain: add a deployment (a route needs at least one)." }));

    const inChain = new Set(entries.map((e) => e.name));
    const free = Object.keys(deployments).filter((d) => !inChain.has(d));
    const pick = h(
      "select",
      { class: "chain-add-select", "aria-label": `Deployment to add to route ${name}`, dataset: { focus: `${name}|add-select` }, disabled: stale || !free.length },
      free.length ? free.map((d) => h("option", { value: d, text: describe(d, deployments) })) : h("option", { value: "", text: "every deployment is in the chain" }),
    );
    const add = h("button", {
      type: "button",
      class: "btn btn-small",
      dataset: { action: "add", focus: `${name}|add` },
      disabled: stale || !free.length,
      text: "Add",
      title: `Append the chosen deployment to route ${name}'s chain`,
      onclick: () => pick.value && editChain(name, (c) => c.push(pick.value), `${name}|add-select`),
    });
    const canary = route.canary && typeof route.canary === "object" && typeof route.canary.deployment === "string" ? route.canary : null;
    return h(
      "div",
      { class: "chain-route-block", dataset: { route: name, strategy: strategy ?? "ordered" } },
      head,
      list,
      h("div", { class: "chain-add" }, pick, add),
      canary ? h("p", { class: "muted small chain-canary", text: `canary: ${canary.deployment} first for ${(Number(canary.percent_bps) || 0) / 100} % of requests (edit in the JSON)` }) : null,
    );
  }

  function describe(name, deployments) {
    const d = deployments[name];
    return d && typeof d === "object" ? `${name} (${[d.provider, d.model].filter((x) => typeof x === "string").join(" · ")})` : name;
  }

  function entryRow(route, e, i, n, deployments, w) {
    const label = e.name ?? JSON.stringify(e.raw);
    const dep = e.name !== null ? deployments[e.name] : undefined;
    const key = (what) => `${route}|${i}|${what}`;
    // Only the grip drags, so selecting text in the weight input stays a selection.
    const grip = h("span", { class: "chain-grip", draggable: stale ? false : "true", title: "Drag to reorder", "aria-hidden": "true", text: "⠿" });
    const move = (to, what) => editChain(route, (c) => c.splice(to, 0, ...c.splice(i, 1)), `${route}|${to}|${what}`);
    const row = h(
      "li",
      { class: ["chain-entry", e.name !== null && !dep && "chain-unknown"], dataset: { deployment: e.name ?? "", index: String(i) } },
      grip,
      h("span", { class: "chain-pos muted", text: `${i + 1}.` }),
      h("span", { class: "chain-name" }, h("span", { class: "dep-name", text: label }), " ", dep && typeof dep === "object" ? h("span", { class: "muted small", text: [dep.provider, dep.model].filter((x) => typeof x === "string").join(" · ") }) : null),
      e.name === null ? h("span", { class: "tag tag-removed", text: "not a deployment name" }) : !dep ? h("span", { class: "tag tag-removed", text: "unknown deployment" }) : null,
      w ? weightField(route, e, i, w, key("weight")) : null,
      h(
        "span",
        { class: "chain-actions" },
        h("button", { type: "button", class: "btn btn-small", dataset: { action: "up", focus: key("up") }, "aria-label": `Move ${label} up in route ${route}`, title: "Move up (tried earlier)", text: "↑", disabled: stale || i === 0, onclick: () => move(i - 1, i - 1 === 0 ? "down" : "up") }),
        h("button", { type: "button", class: "btn btn-small", dataset: { action: "down", focus: key("down") }, "aria-label": `Move ${label} down in route ${route}`, title: "Move down (tried later)", text: "↓", disabled: stale || i === n - 1, onclick: () => move(i + 1, i + 1 === n - 1 ? "up" : "down") }),
        h("button", {
          type: "button",
          class: "btn btn-small btn-danger",
          dataset: { action: "remove", focus: key("remove") },
          "aria-label": `Remove ${label} from route ${route}`,
          title: "Remove from the chain",
          text: "×",
          disabled: stale,
          onclick: () => editChain(route, (c) => c.splice(i, 1), `${route}|add-select`),
        }),
      ),
    );
    // Drag to reorder within the route (the buttons do the same from the keyboard).
    grip.addEventListener("dragstart", (ev) => {
      drag = { route, from: i };
      ev.dataTransfer.effectAllowed = "move";
      ev.dataTransfer.setData("text/plain", label);
      ev.dataTransfer.setDragImage(row, 10, 10);
      row.classList.add("chain-dragging");
    });
    grip.addEventListener("dragend", () => {
      drag = null;
      row.classList.remove("chain-dragging");
    });
    row.addEventListener("dragover", (ev) => {
      if (drag?.route === route) {
        ev.preventDefault();
        ev.dataTransfer.dropEffect = "move";
      }
    });
    row.addEventListener("drop", (ev) => {
      if (drag?.route !== route) return;
      ev.preventDefault();
      const from = drag.from;
      drag = null;
      if (from !== i) editChain(route, (c) => c.splice(i, 0, ...c.splice(from, 1)));
    });
    return row;
  }

  function weightField(route, e, i, w, focusKey) {
    const input = h("input", {
      type: "text",
      inputmode: "numeric",
      class: "chain-weight",
      size: 5,
      placeholder: "1",
      value: e.weight === undefined ? "" : String(e.weight),
      "aria-label": `Weight of ${e.name ?? "entry"} in route ${route}`,
      title: `Weight 0–${MAX_WEIGHT} (empty: 1; 0: never first)`,
      dataset: { focus: focusKey },
      disabled: stale || e.name === null,
      oninput: () => editChain(route, (c) => (c[i] = withWeight(c[i], weightValue(input.value)))),
    });
    const weight = w.weight;
    const share = w.shares && w.total > 0 && Number.isInteger(weight) && weight >= 0 ? `${Math.round((100 * weight) / w.total)} % first` : "";
    return h("span", { class: "chain-weight-wrap" }, h("label", { class: "muted small", text: "weight " }, input), h("span", { class: "chain-share muted small", text: share }));
  }

  return { refresh };
}
