// CPU profile of a worker running under `workerd serve --inspector-addr=127.0.0.1:PORT`, via the
// V8 inspector protocol (what DevTools uses). Used by bench/bench.py while load runs.
//   node --experimental-websocket bench/profile.mjs <inspector-port> <seconds> <out.cpuprofile> [service]
// Prints a JSON summary: total sampled ms and the top functions by self time.
const [port, seconds, out, service = "main"] = process.argv.slice(2);
import { writeFileSync } from "node:fs";

const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
const target = list.find((t) => (t.title ?? "").includes(service) || (t.url ?? "").includes(service)) ?? list[0];
const ws = new WebSocket(target.webSocketDebuggerUrl);
await new Promise((ok, err) => {
  ws.onopen = ok;
  ws.onerror = err;
});
let id = 0;
const pending = new Map();
ws.onmessage = (m) => {
  const msg = JSON.parse(m.data);
  if (msg.id && pending.has(msg.id)) {
    pending.get(msg.id)(msg);
    pending.delete(msg.id);
  }
};
const call = (method, params = {}) =>
  new Promise((ok) => {
    const i = ++id;
    pending.set(i, ok);
    ws.send(JSON.stringify({ id: i, method, params }));
  });

await call("Profiler.enable");
await call("Profiler.setSamplingInterval", { interval: 100 });
await call("Profiler.start");
await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
const { result } = await call("Profiler.stop");
ws.close();
const profile = result.profile;
writeFileSync(out, JSON.stringify(profile));

// Self time per function (samples × interval), grouped by name + script.
const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
const counts = new Map();
for (const s of profile.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
const totalSamples = profile.samples.length;
const span = (profile.endTime - profile.startTime) / 1000; // ms
const perSample = span / Math.max(1, totalSamples);
const self = new Map();
for (const [nodeId, n] of counts) {
  const cf = byNode.get(nodeId).callFrame;
  const file = (cf.url || "").split("/").pop();
  const key = `${cf.functionName || "(anonymous)"} ${file ? `[${file}]` : ""}`.trim();
  self.set(key, (self.get(key) ?? 0) + n);
}
const idle = ["(idle)", "(program)", "(garbage collector)"];
const busy = [...self].filter(([k]) => k !== "(idle)").reduce((a, [, v]) => a + v, 0);
const top = [...self]
  .sort((a, b) => b[1] - a[1])
  .slice(0, 30)
  .map(([name, n]) => ({ name, ms: +(n * perSample).toFixed(1), pct_of_busy: idle.includes(name) && name === "(idle)" ? null : +((100 * n) / Math.max(1, busy)).toFixed(1) }));
// Coarse buckets of busy (non-idle) self time.
const bucket = (name) =>
  name.includes(".wasm") ? "Rust/wasm (edge-router + std + serde)"
  : name.endsWith("[index.js]") ? "wasm-bindgen JS glue (index.js)"
  : name === "(garbage collector)" ? "V8 garbage collector"
  : name === "(program)" ? "(program): V8/workerd native, not attributed"
  : /\[[^\]]+\]$/.test(name) ? "other JS"
  : "runtime APIs called from JS (fetch, Request/Response, Headers, streams, timers, console)";
const buckets = {};
for (const [name, n] of self) {
  if (name === "(idle)") continue;
  const b = bucket(name);
  buckets[b] = (buckets[b] ?? 0) + n;
}
const groups = Object.entries(buckets)
  .sort((a, b) => b[1] - a[1])
  .map(([name, n]) => ({ name, ms: +(n * perSample).toFixed(1), pct_of_busy: +((100 * n) / Math.max(1, busy)).toFixed(1) }));
console.log(JSON.stringify({ span_ms: +span.toFixed(0), busy_ms: +(busy * perSample).toFixed(0), groups, top }));
