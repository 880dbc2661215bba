// The admin API client (docs/admin-api.md). The admin token lives in sessionStorage only (gone
// when the tab closes); every call sends it as a bearer token. A 401 from any call forgets the
// token and tells the app (an "unauthorized" event on `events`) to show the login form.

const TOKEN_KEY = "edge-router-admin-token";

export const events = new EventTarget();

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled: the token then lasts until the page reloads
  }
  memoryToken = token || "";
}

let memoryToken = "";

/** An API error: `status`, `code`, `body` (the parsed JSON), `error` (body.error). */
export class ApiError extends Error {
  constructor(status, body, fallbackMessage) {
    const error = body && typeof body === "object" && body.error && typeof body.error === "object" ? body.error : null;
    super(error?.message || fallbackMessage || `HTTP ${status}`);
    this.status = status;
    this.code = error?.code ?? null;
    this.body = body;
    this.error = error;
  }
}

/**
 * Call the admin API. `path` is relative to /admin/api/. `body`: an object (sent as JSON) or a
 * string (sent as is). Resolves to {status, json, headers}; rejects with ApiError on a non-2xx
 * answer (after the 401 handling) or a network failure (status 0).
 */
export async function api(method, path, { body, headers = {}, token } = {}) {
  const t = token ?? (getToken() || memoryToken);
  const init = {
    method,
    headers: { authorization: `Bearer ${t}`, ...headers },
    cache: "no-store",
    credentials: "omit",
  };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(`/admin/api/${path.replace(/^\//, "")}`, init);
  } catch (err) {
    throw new ApiError(0, null, `network error: ${err.message}`);
  }
  const text = await res.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (res.status === 401) {
    setToken("");
    const e = new ApiError(401, json, "the admin token was rejected");
    events.dispatchEvent(new CustomEvent("unauthorized", { detail: e }));
    throw e;
  }
  if (!res.ok) throw new ApiError(res.status, json, text ? text.slice(0, 300) : `HTTP ${res.status}`);
  return { status: res.status, json, headers: res.headers };
}

/** The change message as it will be saved: one line, at most 500 characters. */
export function headerSafe(text) {
  return String(text ?? "")
    .replace(/[\r\n\t]+/g, " ")
    .trim()
    .slice(0, 500);
}

/**
 * The change message travels in a header (`x-change-message`), which carries only ASCII
 * intact: it is percent-encoded UTF-8, which the worker decodes.
 */
export function encodeMessage(text) {
  return encodeURIComponent(headerSafe(text));
}
