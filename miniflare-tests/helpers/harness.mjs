// The setup every test file repeats: start the fakes, then the worker(s); reset the fakes before
// each test; after the file, dispose of the workers, then close the fakes.
//
//   let fake, w;
//   useGateway({ fakes: { fake: startFake }, worker: { bindings: { ADMIN_TOKEN } } }, (g) => ({ fake, w } = g));
//
// Names are the caller's: `fakes` maps a name to the fake's start function, `workers` maps a name
// to startWorker's options (default: one worker `w` with `worker`'s options, e.g. `bindings` or
// `table`). `ready(g)` runs last in `before`, with everything started (make clients, script a
// fake); `reset: false` keeps the fakes' scripts from one test to the next.

import { before, after, beforeEach } from "node:test";
import { startWorker, scenarioTable } from "./worker.mjs";

export function useGateway({ fakes = {}, worker = {}, workers = { w: worker }, reset = true } = {}, ready = () => {}) {
  const g = {};
  before(async () => {
    for (const [name, start] of Object.entries(fakes)) g[name] = await start();
    const started = await Promise.all(Object.values(workers).map((opts) => startWorker(opts)));
    Object.keys(workers).forEach((name, i) => (g[name] = started[i]));
    await ready(g);
  });
  after(async () => {
    for (const name of Object.keys(workers)) await g[name]?.dispose();
    for (const name of Object.keys(fakes)) await g[name]?.close();
  });
  if (reset) {
    beforeEach(() => {
      for (const name of Object.keys(fakes)) g[name].reset();
    });
  }
  return g;
}

/**
 * Route `route` = [primary, secondary], both deployments of the OpenAI fake (scenarioTable);
 * `depExtra.primary` / `depExtra.secondary` add deployment fields, `routeExtra` route options.
 */
export function twoDeployments(w, fake, route, depExtra = {}, routeExtra = {}, defaults) {
  return scenarioTable(w, fake, {
    deployments: { primary: depExtra.primary ?? {}, secondary: depExtra.secondary ?? {} },
    routes: { [route]: { chain: ["primary", "secondary"], ...routeExtra } },
    defaults,
  });
}
