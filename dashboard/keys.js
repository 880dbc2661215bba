// Gateway keys: list, create (the secret is shown once), limits and budgets (PATCH), revoke.
// Only a key's SHA-256 id and record are ever stored or returned; the secret exists in the
// create answer alone, and this page drops it when its dialog closes.

import { api } from "./api.js";
import { h, $, append, replace, fmtTime, fmtInt, fmtUsd, toast, modal, confirmDialog, copyText } from "./dom.js";

const FIELDS = [
  { key: "rpm", label: "Requests / min", kind: "int" },
  { key: "tpm", label: "Tokens / min", kind: "int" },
  { key: "budget_day_usd", label: "Budget / day (USD)", kind: "usd" },
  { key: "budget_month_usd", label: "Budget / month (USD)", kind: "usd" },
];

function parseField(kind, raw) {
  const t = String(raw ?? "").trim();
  if (t === "") return null;
  const n = Number(t);
  if (!Number.isFinite(n) || n < 0) throw new Error(`"${t}" is not a non-negative number`);
  if (kind === "int" && !Number.isInteger(n)) throw new Error(`"${t}" is not a whole number`);
  return n;
}

function parseRoutes(raw) {
  const list = String(raw ?? "")
    .split(/[\s,]+/)
    .map((r) => r.trim())
    .filter(Boolean);
  return list.length ? list : null;
}

/** The form fields of a key (name, routes, limits); returns {el, read(): object, inputs}. */
function keyForm(record = {}) {
  const inputs = {};
  const rows = [];
  inputs.name = h("input", { type: "text", id: "key-name", required: true, value: record.name ?? "", autocomplete: "off", placeholder: "e.g. mobile-app" });
  rows.push(h("label", { for: "key-name", text: "Name" }), inputs.name);
  inputs.routes = h("input", { type: "text", id: "key-routes", value: (record.routes ?? []).join(", "), autocomplete: "off", placeholder: "all routes" });
  rows.push(h("label", { for: "key-routes", text: "Routes (comma-separated)" }), inputs.routes);
  for (const f of FIELDS) {
    inputs[f.key] = h("input", { type: "text", inputmode: "decimal", id: `key-${f.key}`, value: record[f.key] ?? "", autocomplete: "off", placeholder: "no limit" });
    rows.push(h("label", { for: `key-${f.key}`, text: f.label }), inputs[f.key]);
  }
  const el = h("div", { class: "form-grid" }, rows);
  const read = () => {
    const out = { name: inputs.name.value.trim(), routes: parseRoutes(inputs.routes.value) };
    for (const f of FIELDS) {
      try {
        out[f.key] = parseField(f.kind, inputs[f.key].value);
      } catch (e) {
        throw new Error(`${f.label}: ${e.message}`);
      }
    }
    return out;
  };
  return { el, read, inputs };
}

export function createKeysView() {
  const root = $("#keys");
  let keys = [];

  async function load() {
    let json;
    try {
      json = (await api("GET", "keys")).json;
    } catch (e) {
      if (e.status !== 401) replace(root, h("p", { class: "muted", text: `Cannot load the keys: ${e.message}` }));
      return;
    }
    keys = (json?.keys ?? []).slice().sort((a, b) => Number(!!a.revoked) - Number(!!b.revoked) || (b.created_ms ?? 0) - (a.created_ms ?? 0));
    render();
  }

  function render() {
    if (!keys.length) {
      replace(root, h("p", { class: "muted empty", text: "No gateway keys yet." }));
      return;
    }
    const limit = (v, f = fmtInt) => (v === null || v === undefined ? h("span", { class: "muted", text: "—" }) : f(v));
    replace(
      root,
      h(
        "table",
        { class: "data keys" },
        h(
          "thead",
          {},
          h("tr", {}, h("th", { text: "Name" }), h("th", { text: "Routes" }), h("th", { class: "num", text: "RPM" }), h("th", { class: "num", text: "TPM" }), h("th", { class: "num", text: "$/day" }), h("th", { class: "num", text: "$/month" }), h("th", { text: "Created" }), h("th", { class: "actions" })),
        ),
        h(
          "tbody",
          {},
          keys.map((k) =>
            h(
              "tr",
              { dataset: { key: k.id, name: k.name ?? "" }, class: k.revoked ? "row-revoked" : "" },
              h("td", {}, h("div", { class: "dep-name", text: k.name ?? "(unnamed)" }), h("div", { class: "muted small mono", title: `id (SHA-256 of the key): ${k.id}`, text: `${String(k.id).slice(0, 12)}…` })),
              h("td", { class: "small", text: k.routes?.length ? k.routes.join(", ") : "all" }),
              h("td", { class: "num" }, limit(k.rpm)),
              h("td", { class: "num" }, limit(k.tpm)),
              h("td", { class: "num" }, limit(k.budget_day_usd, fmtUsd)),
              h("td", { class: "num" }, limit(k.budget_month_usd, fmtUsd)),
              h("td", { class: "small nowrap", title: k.created_ms ? fmtTime(k.created_ms) : "", text: k.created_ms ? fmtTime(k.created_ms).slice(0, 10) : "—" }),
              h(
                "td",
                { class: "actions" },
                k.revoked
                  ? h("span", { class: "tag tag-revoked", text: "revoked" })
                  : [
                      h("button", { type: "button", class: "btn btn-small", dataset: { action: "edit" }, text: "Edit", onclick: () => edit(k) }),
                      h("button", { type: "button", class: "btn btn-small btn-danger", dataset: { action: "revoke" }, text: "Revoke", onclick: () => revoke(k) }),
                    ],
              ),
            ),
          ),
        ),
      ),
    );
  }

  function create() {
    const m = modal({ title: "New gateway key", id: "key-dialog" });
    const form = keyForm();
    const err = h("p", { class: "form-error", role: "alert", hidden: true });
    append(m.body, form.el, err);
    const ok = h("button", { type: "button", class: "btn btn-primary", id: "btn-create-key", text: "Create key" });
    append(m.footer, h("button", { type: "button", class: "btn", text: "Cancel", onclick: m.close }), ok);
    form.inputs.name.focus();
    const submit = async () => {
      let body;
      try {
        body = form.read();
        if (!body.name) throw new Error("a name is required");
      } catch (e) {
        err.hidden = false;
        err.textContent = e.message;
        return;
      }
      for (const k of Object.keys(body)) if (body[k] === null) delete body[k];
      ok.disabled = true;
      try {
        const { json } = await api("POST", "keys", { body });
        showSecret(m, json);
        load();
      } catch (e) {
        ok.disabled = false;
        if (e.status === 401) return;
        err.hidden = false;
        err.textContent = e.message;
      }
    };
    ok.addEventListener("click", submit);
    m.body.addEventListener("keydown", (e) => e.key === "Enter" && e.target.tagName === "INPUT" && submit());
  }

  /** Shows the new secret once; it is removed from the page when the dialog closes. */
  function showSecret(m, created) {
    const secret = h("input", { type: "text", id: "new-key-secret", class: "mono secret", readonly: true, value: created.key ?? "" });
    const copied = h("span", { class: "muted small", "aria-live": "polite" });
    const copy = h("button", {
      type: "button",
      class: "btn btn-primary",
      id: "btn-copy-key",
      text: "Copy",
      onclick: async () => {
        copied.textContent = (await copyText(secret.value, secret)) ? "copied" : "select it and copy by hand";
      },
    });
    replace(
      m.body,
      h("div", { class: "banner banner-warn", role: "alert", id: "secret-warning" }, h("strong", { text: "Copy this key now: " }), "it will not be shown again. Only its SHA-256 is stored; a lost key cannot be recovered, only revoked and replaced."),
      h("p", {}, `Key for `, h("strong", { text: created.record?.name ?? "" }), ":"),
      h("div", { class: "secret-row" }, secret, copy),
      copied,
    );
    replace(m.footer, h("button", { type: "button", class: "btn", id: "btn-secret-done", text: "I have copied it", onclick: m.close }));
    m.dialog.addEventListener("close", () => {
      secret.value = "";
    });
    secret.select();
  }

  async function edit(k) {
    const m = modal({ title: `Key “${k.name ?? ""}”`, id: "key-dialog" });
    const usage = h("p", { class: "muted small", text: "Loading spend…" });
    const form = keyForm(k);
    const err = h("p", { class: "form-error", role: "alert", hidden: true });
    append(m.body, usage, form.el, h("p", { class: "muted small", text: "Empty fields remove the limit." }), err);
    const save = h("button", { type: "button", class: "btn btn-primary", id: "btn-save-key", text: "Save limits" });
    append(m.footer, h("button", { type: "button", class: "btn", text: "Cancel", onclick: m.close }), save);
    // The record's revision when the editor opened: the save is refused (412) if the key
    // changed since (another operator's edit, or a revoke).
    let rev = null;
    api("GET", `keys/${encodeURIComponent(k.id)}`)
      .then(({ json }) => {
        if (Number.isInteger(json?.rev)) rev = json.rev;
        const sp = json?.state?.spend ?? {};
        const tot = json?.state?.usage?.total ?? {};
        usage.textContent = `Spent today ${fmtUsd((sp.day_nanos ?? 0) / 1e9)}, this month ${fmtUsd((sp.month_nanos ?? 0) / 1e9)} · ${fmtInt(tot.requests ?? 0)} requests, ${fmtInt((tot.input_tokens ?? 0) + (tot.output_tokens ?? 0))} tokens in all`;
      })
      .catch((e) => (usage.textContent = e.status === 401 ? "" : `Spend unavailable: ${e.message}`));
    save.addEventListener("click", async () => {
      let next;
      try {
        next = form.read();
        if (!next.name) throw new Error("a name is required");
      } catch (e) {
        err.hidden = false;
        err.textContent = e.message;
        return;
      }
      const patch = {};
      for (const f of ["name", "routes", ...FIELDS.map((x) => x.key)]) {
        const before = k[f] ?? null;
        if (JSON.stringify(before) !== JSON.stringify(next[f])) patch[f] = next[f];
      }
      if (!Object.keys(patch).length) {
        m.close();
        return;
      }
      save.disabled = true;
      try {
        const headers = rev == null ? {} : { "if-match": String(rev) };
        await api("PATCH", `keys/${encodeURIComponent(k.id)}`, { body: patch, headers });
        m.close();
        toast(`Key “${next.name}” updated`, "ok");
        load();
      } catch (e) {
        save.disabled = false;
        if (e.status === 401) return;
        err.hidden = false;
        err.textContent =
          e.status === 412 ? "This key was changed (or revoked) since you opened it. Close this dialog and open it again." : e.message;
      }
    });
  }

  async function revoke(k) {
    const ok = await confirmDialog({
      title: `Revoke “${k.name ?? k.id}”?`,
      message: "Requests with this key are refused at once. This cannot be undone.",
      confirm: "Revoke",
      danger: true,
    });
    if (!ok) return;
    try {
      await api("POST", `keys/${encodeURIComponent(k.id)}/revoke`, { body: {} });
      toast(`Key “${k.name ?? ""}” revoked`, "ok");
    } catch (e) {
      if (e.status !== 401) toast(`Revoke failed: ${e.message}`, "error", 8000);
    }
    load();
  }

  $("#btn-new-key").addEventListener("click", create);
  return { load };
}
