// The routing-table editor and its version history: load (GET /admin/api/table), validate as
// you type (POST /table/validate, debounced), review the diff against the live table
// (POST /table/diff) and save with If-Match (PUT /table), conflicts (412), versions, view and
// one-click rollback (POST /table/rollback with the live table's ETag).

import { api, ApiError, encodeMessage, headerSafe } from "./api.js";
import { h, $, append, replace, fmtTime, fmtAgo, fmtBytes, toast, modal, confirmDialog, debounce } from "./dom.js";
import { rangeOfPath, offsetOfLineCol } from "./jsonpath.js";
import { createChainsView } from "./chains.js";

const VALIDATE_DELAY_MS = 400;

/**
 * Pretty-print a single-line table for the editor (parsing `text` itself keeps its key order);
 * keep the operator's own formatting otherwise.
 */
function editorText(t) {
  const text = String(t.text ?? "");
  if (t.table !== null && t.table !== undefined && !text.includes("\n")) {
    try {
      return JSON.stringify(JSON.parse(text), null, 2) + "\n";
    } catch {
      return text;
    }
  }
  return text;
}

function shortEtag(etag) {
  return String(etag ?? "").replace(/"/g, "");
}

function servingBadge(serving) {
  const cls = { kv: "state-closed", "last-good": "state-open", "embedded-default": "state-half" }[serving] ?? "state-unknown";
  return h("span", { class: ["badge", cls], dataset: { serving: serving ?? "" }, title: "what the gateway is serving" }, `serving: ${serving ?? "?"}`);
}

export function createTableView({ onServing, onTable }) {
  const editor = $("#table-editor");
  const gutter = $("#table-gutter");
  const errorsEl = $("#table-errors");
  const statusEl = $("#table-status");
  const metaEl = $("#table-meta");
  const bannersEl = $("#table-banners");
  const dirtyEl = $("#table-dirty");
  const historyEl = $("#history-list");

  /** The GET answer the editor is based on (its ETag goes into If-Match). */
  let loaded = null;
  /** The newest GET answer (differs from `loaded` when the server changed under a dirty draft). */
  let latest = null;
  let baseText = "";
  let validateSeq = 0;
  let lastValidation = null;
  let history = null;

  const isDirty = () => loaded !== null && editor.value !== baseText;

  // ------------------------------------------------------------------------------------------
  // Editor: gutter, dirty flag, validation as you type

  let gutterLines = 0;
  function updateGutter() {
    const lines = editor.value.split("\n").length;
    if (lines !== gutterLines) {
      gutterLines = lines;
      gutter.textContent = Array.from({ length: lines }, (_, i) => i + 1).join("\n") + "\n";
    }
    gutter.scrollTop = editor.scrollTop;
  }
  editor.addEventListener("scroll", () => (gutter.scrollTop = editor.scrollTop));

  function updateDirty() {
    dirtyEl.hidden = !isDirty();
  }

  const validateSoon = debounce(() => validate(), VALIDATE_DELAY_MS);
  editor.addEventListener("input", () => {
    updateGutter();
    updateDirty();
    statusEl.className = "status status-pending";
    statusEl.textContent = "checking…";
    validateSoon();
  });
  // Tab inserts two spaces instead of leaving the editor.
  editor.addEventListener("keydown", (e) => {
    if (e.key === "Tab" && !e.shiftKey && !e.ctrlKey && !e.metaKey && !e.altKey) {
      e.preventDefault();
      editor.setRangeText("  ", editor.selectionStart, editor.selectionEnd, "end");
      editor.dispatchEvent(new Event("input"));
    }
  });

  async function validate(text = editor.value) {
    const seq = ++validateSeq;
    let result;
    try {
      const { json } = await api("POST", "table/validate", { body: text });
      result = json;
    } catch (e) {
      if (e.status === 401) return null;
      // A 400 carrying the error list is as good as a validation answer.
      if (e instanceof ApiError && Array.isArray(e.error?.errors)) result = { valid: false, errors: e.error.errors };
      else result = { valid: false, errors: [{ path: "", message: `validation failed: ${e.message}` }] };
    }
    if (seq !== validateSeq || text !== editor.value) return result; // a newer edit is on its way
    lastValidation = result;
    showValidation(result);
    return result;
  }

  function showValidation(result) {
    const errors = Array.isArray(result?.errors) ? result.errors : [];
    if (result?.valid && errors.length === 0) {
      statusEl.className = "status status-ok";
      statusEl.textContent = `✓ valid${summaryText(result.summary)}`;
      statusEl.title = statusEl.textContent;
    } else {
      statusEl.className = "status status-error";
      statusEl.textContent = `✗ ${errors.length} problem${errors.length === 1 ? "" : "s"}`;
    }
    renderErrors(errorsEl, errors);
  }

  function summaryText(summary) {
    if (!summary) return "";
    if (typeof summary === "string") return ` — ${summary}`;
    if (typeof summary === "object") {
      const parts = [];
      for (const [k, v] of Object.entries(summary)) {
        const n = typeof v === "number" ? v : Array.isArray(v) ? v.length : null;
        if (n !== null) parts.push(`${n} ${n === 1 ? k.replace(/s$/, "") : k}`);
      }
      return parts.length ? ` — ${parts.join(", ")}` : "";
    }
    return "";
  }

  function renderErrors(list, errors) {
    replace(
      list,
      errors.map((err) => {
        const path = err.path ?? "";
        return h(
          "li",
          { dataset: { path } },
          h("button", {
            type: "button",
            class: "path",
            title: "Show in the editor",
            text: path === "" ? "JSON" : path,
            onclick: () => jumpTo(path, err.message),
          }),
          h("span", { class: "msg", text: err.message ?? String(err) }),
        );
      }),
    );
  }

  /** Select the key of `path` in the editor (or the line/column of a syntax error). */
  function jumpTo(path, message) {
    const text = editor.value;
    let start;
    let end;
    if (path === "") {
      const off = offsetOfLineCol(text, message);
      if (off === null) return;
      start = off;
      end = Math.min(text.length, off + 1);
    } else {
      const r = rangeOfPath(text, path);
      if (!r) return;
      ({ start, end } = r);
    }
    editor.focus();
    editor.setSelectionRange(start, end);
    const line = text.slice(0, start).split("\n").length - 1;
    const lh = parseFloat(getComputedStyle(editor).lineHeight) || 18;
    editor.scrollTop = Math.max(0, (line - 4) * lh);
    gutter.scrollTop = editor.scrollTop;
  }

  function setEditor(text) {
    editor.value = text;
    baseText = text;
    updateGutter();
    updateDirty();
    chains.refresh();
  }

  // ------------------------------------------------------------------------------------------
  // Loading

  async function load({ force = false, quiet = false } = {}) {
    const { json } = await api("GET", "table");
    latest = json;
    onServing?.(json.serving);
    onTable?.(json.table);
    const changed = !loaded || loaded.etag !== json.etag;
    if (force || !isDirty()) {
      loaded = json;
      setEditor(editorText(json));
      renderMeta();
      if (changed || force) {
        lastValidation = { valid: json.valid, errors: json.errors ?? [] };
        showValidation(lastValidation);
        validate(); // for the summary line

      }
      if (changed && !quiet && loaded && history) loadHistory();
    } else {
      renderMeta();
    }
    return json;
  }

  function renderMeta() {
    const t = loaded;
    if (!t) return;
    replace(
      metaEl,
      h("span", { class: "meta-item", dataset: { version: t.version ?? "" }, id: "table-version" }, t.version == null ? (t.origin === "embedded-default" ? "embedded default" : "not a saved version") : `version ${t.version}`),
      h("span", { class: "meta-item mono", title: "ETag of the text in KV", id: "table-etag" }, `ETag ${shortEtag(t.etag)}`),
      t.updated_ms ? h("span", { class: "meta-item", title: fmtTime(t.updated_ms) }, `saved ${fmtAgo(t.updated_ms)}`) : null,
      t.message ? h("span", { class: "meta-item meta-message", title: t.message }, `“${t.message}”`) : null,
      servingBadge(latest?.serving ?? t.serving),
    );
    const banners = [];
    const l = latest ?? t;
    if (l.serving === "last-good") {
      banners.push(
        banner(
          "warn",
          "banner-last-good",
          "KV holds an invalid routing table (written outside the API). The gateway keeps serving the last good table.",
          l.serving_error,
        ),
      );
    } else if (l.serving === "embedded-default" && l.origin !== "embedded-default") {
      banners.push(banner("error", "banner-default", "The table in KV is invalid and there is no last good table: the gateway serves its embedded default.", l.serving_error));
    }
    // A KV table the API never saved: flagged by `external_change`, or (before the first save,
    // when the log is empty) by having no version while coming from KV.
    if (l.external_change || (l.version == null && l.origin === "kv")) {
      banners.push(
        banner(
          "warn",
          "banner-external",
          `The table in KV was changed outside the API (wrangler, Cloudflare's dashboard): it is not ${l.version == null ? "a version saved here" : `version ${l.version}, the newest saved here`}. The next save records it as an external version.`,
        ),
      );
    }
    // The version log is ahead of KV (a KV write after a save was lost, or is still on its way).
    const behind = l.kv_behind;
    if (behind && !behind.repaired) {
      const held = behind.kv_version == null ? "no routing table" : `version ${behind.kv_version}`;
      const text = behind.text_missing
        ? `The newest saved version never reached KV, which holds ${held}. Saving replaces it.`
        : behind.kv_version == null
          ? `KV holds no routing table (deleted): the gateway keeps serving its last good table. Saving writes KV again.`
          : `KV still holds ${held}, not version ${l.version} shown here, and the gateway serves what KV holds. Saving writes KV; a reload repairs it a minute after the save.`;
      banners.push(banner("warn", "banner-kv-behind", text, behind.repair_error));
    }
    if (l.origin === "embedded-default") {
      banners.push(banner("info", "banner-embedded", "KV holds no routing table: the gateway serves its embedded default. Saving writes the first version to KV."));
    }
    if (latest && loaded && latest.etag !== loaded.etag) {
      const b = banner(
        "warn",
        "banner-stale",
        `The table changed on the server (${latest.version == null ? "new text" : `now version ${latest.version}`}) while you were editing version ${loaded.version ?? "—"}. Saving your draft will be refused.`,
      );
      b.append(
        h("button", {
          type: "button",
          class: "btn btn-small",
          text: "Reload latest (discard my edits)",
          onclick: async () => {
            await load({ force: true });
          },
        }),
      );
      banners.push(b);
    }
    replace(bannersEl, banners);
  }

  function banner(kind, id, text, detail) {
    return h("div", { class: ["banner", `banner-${kind}`], id, role: kind === "info" ? "note" : "alert" }, h("span", { text }), detail ? h("code", { class: "banner-detail", text: detail }) : null);
  }

  // ------------------------------------------------------------------------------------------
  // Review and save

  function renderDiffLines(lines, { context = 3 } = {}) {
    const pre = h("pre", { class: "diff" });
    const changed = lines.map((l) => l.op !== " ");
    const keep = lines.map((_, i) => {
      for (let k = Math.max(0, i - context); k <= Math.min(lines.length - 1, i + context); k++) if (changed[k]) return true;
      return false;
    });
    let i = 0;
    while (i < lines.length) {
      if (keep[i]) {
        const l = lines[i];
        const cls = l.op === "+" ? "add" : l.op === "-" ? "del" : "ctx";
        pre.append(h("span", { class: ["line", cls], dataset: { op: l.op } }, `${l.op === " " ? " " : l.op} ${l.text}`), "\n");
        i++;
        continue;
      }
      let j = i;
      while (j < lines.length && !keep[j]) j++;
      const hidden = lines.slice(i, j);
      const fold = h("span", { class: "line fold", role: "button", tabindex: "0", title: "Show these lines" }, `⋯ ${hidden.length} unchanged line${hidden.length === 1 ? "" : "s"}`);
      const expand = () => {
        const frag = document.createDocumentFragment();
        for (const l of hidden) frag.append(h("span", { class: "line ctx", dataset: { op: " " } }, `  ${l.text}`), "\n");
        fold.nextSibling?.remove();
        fold.replaceWith(frag);
      };
      fold.addEventListener("click", expand);
      fold.addEventListener("keydown", (e) => (e.key === "Enter" || e.key === " ") && expand());
      pre.append(fold, "\n");
      i = j;
    }
    return pre;
  }

  function renderChanges(changes) {
    const short = (v) => {
      if (v === undefined) return "";
      const t = JSON.stringify(v);
      return t.length > 80 ? `${t.slice(0, 77)}…` : t;
    };
    const list = h("ul", { class: "changes" });
    for (const c of changes.slice(0, 100)) {
      list.append(
        h(
          "li",
          { class: `change-${c.kind}` },
          h("span", { class: ["tag", `tag-${c.kind}`], text: c.kind }),
          " ",
          h("code", { text: c.path || "(root)" }),
          c.kind === "changed" ? h("span", { class: "muted", text: ` ${short(c.before)} → ${short(c.after)}` }) : null,
          c.kind === "added" ? h("span", { class: "muted", text: ` ${short(c.after)}` }) : null,
          c.kind === "removed" ? h("span", { class: "muted", text: ` ${short(c.before)}` }) : null,
        ),
      );
    }
    if (changes.length > 100) list.append(h("li", { class: "muted", text: `… and ${changes.length - 100} more` }));
    return list;
  }

  async function review() {
    if (!loaded) return;
    const draft = editor.value;
    const m = modal({ title: `Review changes to ${loaded.version == null ? "the table" : `version ${loaded.version}`}`, wide: true, id: "review-dialog" });
    append(m.body, h("p", { class: "muted", text: "Comparing your draft with the table the gateway serves now…" }));
    let diff;
    let validation;
    try {
      [diff, validation] = await Promise.all([api("POST", "table/diff", { body: { from: "current", text: draft } }).then((r) => r.json), validate(draft)]);
    } catch (e) {
      replace(m.body, h("div", { class: "banner banner-error", role: "alert" }, `Cannot compare: ${e.message}`));
      if (e.status === 400) append(m.body, h("p", { class: "muted", text: "Fix the draft (see the errors under the editor) and try again." }));
      append(m.footer, h("button", { type: "button", class: "btn", text: "Close", onclick: m.close }));
      return;
    }
    const changes = diff?.changes ?? [];
    const lines = diff?.lines ?? [];
    const errors = validation?.errors ?? [];
    const problems = h("ul", { class: "errors" });
    renderErrors(problems, errors);
    problems.addEventListener("click", (e) => e.target.closest("button.path") && m.close());
    const conflictBox = h("div", { class: "conflict-box" });
    const message = h("input", { id: "change-message", type: "text", placeholder: "What changed and why (kept with the version)", maxlength: 500, autocomplete: "off" });
    const asciiNote = h("p", { class: "muted small", hidden: true });
    message.addEventListener("input", () => {
      const sent = headerSafe(message.value);
      asciiNote.hidden = sent === message.value.trim();
      asciiNote.textContent = `Saved as “${sent}” (one line, at most 500 characters).`;
    });
    const none = changes.length === 0 && lines.every((l) => l.op === " ");
    replace(
      m.body,
      conflictBox,
      errors.length ? h("div", { class: "banner banner-error", role: "alert" }, `The draft has ${errors.length} problem${errors.length === 1 ? "" : "s"}; it cannot be saved.`) : null,
      errors.length ? problems : null,
      none ? h("p", { class: "banner banner-info", text: "No changes against the table the gateway serves now." }) : null,
      changes.length ? h("h3", { text: `${changes.length} change${changes.length === 1 ? "" : "s"}` }) : null,
      changes.length ? renderChanges(changes) : null,
      lines.length ? renderDiffLines(lines) : null,
      h("label", { class: "field", for: "change-message" }, "Message"),
      message,
      asciiNote,
    );
    const save = h("button", {
      type: "button",
      class: "btn btn-primary",
      id: "btn-save",
      disabled: errors.length > 0 || none,
      text: `Save${loaded.version == null ? "" : ` (If-Match version ${loaded.version})`}`,
    });
    const cancel = h("button", { type: "button", class: "btn", text: "Cancel", onclick: m.close });
    append(m.footer, cancel, save);
    message.focus();
    save.addEventListener("click", async () => {
      save.disabled = true;
      save.textContent = "Saving…";
      try {
        const { json } = await api("PUT", "table", {
          body: draft,
          headers: { "if-match": loaded.etag, ...(message.value.trim() ? { "x-change-message": encodeMessage(message.value) } : {}) },
        });
        m.close();
        if (json?.unchanged) toast(`Nothing saved: the text is already version ${json?.version ?? "?"}`, "info");
        else toast(`Saved version ${json?.version ?? "?"}${json?.external_logged != null ? ` (the table found in KV was kept as version ${json.external_logged})` : ""}`, "ok");
        await load({ force: true, quiet: true });
        await loadHistory();
      } catch (e) {
        if (e.status === 401) return;
        save.textContent = "Save";
        if (e.status === 412) {
          showConflict(conflictBox, e, m, draft);
          m.body.scrollTop = 0;
        } else if (e.status === 400 && Array.isArray(e.error?.errors)) {
          replace(conflictBox, h("div", { class: "banner banner-error", role: "alert", text: e.message }));
          const ul = h("ul", { class: "errors" });
          renderErrors(ul, e.error.errors);
          ul.addEventListener("click", (ev) => ev.target.closest("button.path") && m.close());
          conflictBox.append(ul);
          renderErrors(errorsEl, e.error.errors);
          m.body.scrollTop = 0;
        } else {
          save.disabled = false;
          replace(conflictBox, h("div", { class: "banner banner-error", role: "alert", text: `Save failed (${e.status || "network"}): ${e.message}` }));
        }
      }
    });
  }

  function showConflict(box, e, m, draft) {
    const cur = e.error ?? {};
    replace(
      box,
      h(
        "div",
        { class: "banner banner-error conflict", id: "conflict", role: "alert" },
        h("strong", { text: "Conflict: " }),
        `the table changed since you loaded ${loaded.version == null ? "it" : `version ${loaded.version}`}`,
        cur.current_version != null ? ` — it is now version ${cur.current_version}` : "",
        cur.current_etag ? ` (ETag ${shortEtag(cur.current_etag)})` : "",
        ". Nothing was saved; your draft is kept.",
        h(
          "div",
          { class: "conflict-actions" },
          h("button", {
            type: "button",
            class: "btn btn-small btn-primary",
            id: "btn-conflict-reload",
            text: "Reload latest (discard my edits)",
            onclick: async () => {
              m.close();
              await load({ force: true });
              await loadHistory();
              toast("Loaded the latest table", "info");
            },
          }),
          h("button", {
            type: "button",
            class: "btn btn-small",
            id: "btn-conflict-rebase",
            text: "Review my draft against the latest",
            onclick: async () => {
              m.close();
              const fresh = await api("GET", "table").then((r) => r.json);
              latest = fresh;
              loaded = fresh;
              baseText = editorText(fresh);
              editor.value = draft;
              chains.refresh();
              updateGutter();
              updateDirty();
              renderMeta();
              await loadHistory();
              review();
            },
          }),
        ),
      ),
    );
  }

  // ------------------------------------------------------------------------------------------
  // History, view, rollback

  async function loadHistory() {
    let json;
    try {
      json = (await api("GET", "table/versions")).json;
    } catch (e) {
      if (e.status !== 401) replace(historyEl, h("li", { class: "muted", text: `Cannot load the versions: ${e.message}` }));
      return;
    }
    history = json;
    const versions = json?.versions ?? [];
    if (!versions.length) {
      replace(historyEl, h("li", { class: "muted empty", text: "No version saved through the API yet." }));
      return;
    }
    replace(
      historyEl,
      versions.map((v) => {
        const isCurrent = json.current != null && v.version === json.current;
        const origin = v.origin === "rollback" && v.rolled_back_to != null ? `rollback → v${v.rolled_back_to}` : v.origin;
        return h(
          "li",
          { class: ["version", isCurrent && "version-current"], dataset: { version: v.version } },
          h(
            "div",
            { class: "version-main" },
            h("strong", { class: "version-n", text: `v${v.version}` }),
            isCurrent ? h("span", { class: "tag tag-ok", text: "live" }) : null,
            h("span", { class: ["tag", `tag-origin-${v.origin}`], text: origin }),
            h("span", { class: "version-msg", title: v.message || "", text: v.message || "(no message)" }),
          ),
          h(
            "div",
            { class: "version-side" },
            h("span", { class: "muted small", title: fmtTime(v.created_ms), text: `${fmtTime(v.created_ms)} · ${fmtAgo(v.created_ms)}${v.bytes ? ` · ${fmtBytes(v.bytes)}` : ""}` }),
            h("button", { type: "button", class: "btn btn-small", dataset: { action: "view" }, text: "View", onclick: () => viewVersion(v.version) }),
            isCurrent
              ? null
              : h("button", {
                  type: "button",
                  class: "btn btn-small",
                  dataset: { action: "rollback" },
                  title: `Make v${v.version} live again (saved as a new version)`,
                  text: "Roll back",
                  onclick: () => rollback(v.version),
                }),
          ),
        );
      }),
    );
  }

  async function rollback(n) {
    if (isDirty()) {
      const ok = await confirmDialog({ title: `Roll back to v${n}?`, message: "Your unsaved edits in the editor will be replaced by the rolled-back table.", confirm: "Roll back", danger: true });
      if (!ok) return;
    }
    const etag = (latest ?? loaded)?.etag;
    try {
      const { json } = await api("POST", "table/rollback", { body: { version: n }, headers: { "if-match": etag } });
      toast(`Rolled back to v${json?.rolled_back_to ?? n} (saved as v${json?.version ?? "?"})`, "ok");
    } catch (e) {
      if (e.status === 401) return;
      if (e.status === 412) toast(`The table changed meanwhile (now version ${e.error?.current_version ?? "?"}); reloaded. Roll back again if you still want to.`, "error", 9000);
      else if (e.status === 409) toast(`v${n} cannot be restored: it no longer validates. ${e.message}`, "error", 10000);
      else toast(`Rollback failed: ${e.message}`, "error", 8000);
    }
    await load({ force: true, quiet: true });
    await loadHistory();
  }

  async function viewVersion(n) {
    const m = modal({ title: `Version ${n}`, wide: true, id: "version-dialog" });
    let v;
    try {
      v = (await api("GET", `table/versions/${n}`)).json;
    } catch (e) {
      append(m.body, h("div", { class: "banner banner-error", text: e.message }));
      return;
    }
    const text = editorText(v);
    const content = h("pre", { class: "code", text });
    const origin = v.origin === "rollback" && v.rolled_back_to != null ? `rollback → v${v.rolled_back_to}` : v.origin;
    append(
      m.body,
      h("p", { class: "meta" }, h("span", { class: "meta-item", text: fmtTime(v.created_ms) }), h("span", { class: "meta-item", text: origin }), h("span", { class: "meta-item mono", text: `ETag ${shortEtag(v.etag)}` }), h("span", { class: "meta-item", text: v.message || "(no message)" })),
      content,
    );
    const diffBtn = h("button", {
      type: "button",
      class: "btn",
      text: "Diff against live",
      onclick: async () => {
        try {
          const d = (await api("POST", "table/diff", { body: { from: "current", to: n } })).json;
          content.replaceWith(d.lines?.some((l) => l.op !== " ") ? renderDiffLines(d.lines) : h("p", { class: "banner banner-info", text: "Same as the live table." }));
          diffBtn.disabled = true;
        } catch (e) {
          toast(`Diff failed: ${e.message}`, "error");
        }
      },
    });
    append(
      m.footer,
      diffBtn,
      h("button", {
        type: "button",
        class: "btn",
        title: "Put this version's text in the editor, to review and save it (or part of it)",
        text: "Load into editor",
        onclick: async () => {
          if (isDirty()) {
            const ok = await confirmDialog({ title: "Replace your draft?", message: "The editor has unsaved edits.", confirm: "Replace" });
            if (!ok) return;
          }
          m.close();
          editor.value = text;
          editor.dispatchEvent(new Event("input"));
        },
      }),
      h("button", {
        type: "button",
        class: "btn btn-primary",
        text: `Roll back to v${n}`,
        onclick: () => {
          m.close();
          rollback(n);
        },
      }),
    );
  }

  // Chains as lists (chains.js): their edits go through the editor's text and input event.
  const chains = createChainsView({ editor, root: $("#chains") });
  $("#btn-chains-review").addEventListener("click", () => {
    validateSoon.cancel();
    review();
  });

  // ------------------------------------------------------------------------------------------
  // Toolbar

  $("#btn-validate").addEventListener("click", () => {
    validateSoon.cancel();
    validate();
  });
  $("#btn-review").addEventListener("click", () => {
    validateSoon.cancel();
    review();
  });
  $("#btn-reload").addEventListener("click", async () => {
    if (isDirty()) {
      const ok = await confirmDialog({ title: "Discard your edits?", message: "Reload replaces the editor's text with the table on the server.", confirm: "Discard and reload", danger: true });
      if (!ok) return;
    }
    await load({ force: true });
    await loadHistory();
  });
  $("#btn-format").addEventListener("click", () => {
    try {
      const v = JSON.parse(editor.value);
      editor.value = JSON.stringify(v, null, 2) + "\n";
      editor.dispatchEvent(new Event("input"));
    } catch (e) {
      toast(`Not JSON: ${e.message}`, "error");
    }
  });
  $("#btn-history").addEventListener("click", () => loadHistory());
  window.addEventListener("beforeunload", (e) => {
    if (isDirty()) e.preventDefault();
  });

  return {
    load,
    loadHistory,
    isDirty,
    get current() {
      return latest;
    },
    get validation() {
      return lastValidation;
    },
  };
}
