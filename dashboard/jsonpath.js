// Where a validation error's JSON path (`routes.chat.chain[1]`, the admin API's format) is in
// the editor's text, so that clicking an error selects it. A small position-tracking JSON
// scanner: it records every path it walks through, and stops quietly at the first syntax error
// (what it found before that is still usable).

/**
 * Map of path → {start, end, valueStart}: `start` is where the member's key starts (the value's
 * start for array items and the root), `end` is where the value ends.
 */
export function locatePaths(text) {
  const map = new Map();
  let i = 0;
  const n = text.length;
  const ws = () => {
    while (i < n && (text[i] === " " || text[i] === "\n" || text[i] === "\r" || text[i] === "\t")) i++;
  };
  const fail = () => {
    throw new SyntaxError(`unexpected input at ${i}`);
  };
  const str = () => {
    if (text[i] !== '"') fail();
    const s = i++;
    while (i < n && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    if (i >= n) fail();
    i++;
    return JSON.parse(text.slice(s, i));
  };
  const join = (path, key) => (path === "" ? key : `${path}.${key}`);
  const value = (path, keyStart, depth) => {
    if (depth > 200) fail();
    ws();
    const start = i;
    const c = text[i];
    if (c === "{") {
      i++;
      ws();
      if (text[i] === "}") i++;
      else {
        for (;;) {
          ws();
          const ks = i;
          const k = str();
          ws();
          if (text[i] !== ":") fail();
          i++;
          value(join(path, k), ks, depth + 1);
          ws();
          if (text[i] === ",") {
            i++;
            continue;
          }
          if (text[i] !== "}") fail();
          i++;
          break;
        }
      }
    } else if (c === "[") {
      i++;
      ws();
      if (text[i] === "]") i++;
      else {
        for (let idx = 0; ; idx++) {
          value(`${path}[${idx}]`, undefined, depth + 1);
          ws();
          if (text[i] === ",") {
            i++;
            continue;
          }
          if (text[i] !== "]") fail();
          i++;
          break;
        }
      }
    } else if (c === '"') {
      str();
    } else {
      while (i < n && !/[\s,\]}]/.test(text[i])) i++;
      if (i === start) fail();
    }
    map.set(path, { start: keyStart ?? start, valueStart: start, end: i });
  };
  try {
    value("", undefined, 0);
  } catch {
    // keep what was found
  }
  return map;
}

/**
 * The text range for `path`: the path itself, else its nearest existing ancestor (a missing
 * field is reported at the object that lacks it). Null when nothing matches.
 */
export function rangeOfPath(text, path) {
  const map = locatePaths(text);
  let p = path;
  for (;;) {
    const hit = map.get(p);
    if (hit) {
      // Select the key and a short value (the whole object would select pages of text).
      const end = hit.end - hit.start > 200 ? Math.min(hit.end, text.indexOf("\n", hit.start) >>> 0) : hit.end;
      return { start: hit.start, end: end > hit.start ? end : hit.end, exact: p === path };
    }
    if (p === "") return null;
    const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
    p = cut > 0 ? p.slice(0, cut) : "";
  }
}

/** Offset of "line L column C" (1-based, as serde_json reports) in `text`, or null. */
export function offsetOfLineCol(text, message) {
  const m = /line (\d+),? column (\d+)/.exec(message ?? "");
  if (!m) return null;
  const line = Number(m[1]);
  const col = Number(m[2]);
  let off = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf("\n", off);
    if (nl < 0) return text.length;
    off = nl + 1;
  }
  return Math.min(off + Math.max(col - 1, 0), text.length);
}
