// Runs last (files run in name order, one at a time): scans every log line and every recorded
// response (status, headers, body) that the whole workerd suite produced for the secret values
// the workers were given (provider keys, admin tokens), and fails on any hit. Every worker
// started by helpers/worker.mjs writes its output to SECRET_SCAN_DIR when disposed;
// scripts/test.sh sets that folder, so this scan is part of the test command.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

const dir = process.env.SECRET_SCAN_DIR;

test(
  "no provider key or admin token appears in any response or log line of the whole suite",
  { skip: dir ? false : "SECRET_SCAN_DIR is not set (run through scripts/test.sh)" },
  () => {
    const dumps = readdirSync(dir)
      .filter((f) => f.endsWith(".json"))
      .map((f) => JSON.parse(readFileSync(path.join(dir, f), "utf8")));
    // The scan must have something to scan: every other test file starts workers.
    const sources = new Set(dumps.map((d) => path.basename(d.source ?? "")));
    assert.ok(sources.size >= 10, `dumps from only ${sources.size} test files: ${[...sources].join(", ")}`);
    const secrets = [...new Set(dumps.flatMap((d) => d.secrets))];
    assert.ok(secrets.includes("sk-fake-secret-123"), "the provider key of the test tables is scanned for");
    let responses = 0;
    let logBytes = 0;
    const hits = [];
    for (const d of dumps) {
      logBytes += d.logs.length;
      for (const s of secrets) {
        if (d.logs.includes(s)) hits.push(`${path.basename(d.source)}: log contains ${s.slice(0, 6)}…`);
      }
      for (const r of d.responses) {
        responses++;
        const text = JSON.stringify(r.headers) + "\n" + (r.body ?? "");
        for (const s of secrets) {
          if (text.includes(s)) hits.push(`${path.basename(d.source)}: ${r.status} ${r.url} contains ${s.slice(0, 6)}…`);
        }
      }
    }
    console.log(`# secret scan: ${secrets.length} secrets, ${responses} responses, ${logBytes} log bytes from ${dumps.length} workers in ${sources.size} files`);
    assert.ok(responses > 500 && logBytes > 100_000, `too little to scan: ${responses} responses, ${logBytes} log bytes`);
    assert.deepEqual(hits, []);
  },
);
