// Serves the workerd `kvNamespace` binding protocol (the one Miniflare's KV simulator speaks)
// from memory: GET /<key> → value or 404, PUT /<key> stores, DELETE /<key>, GET / → list.
// Seeded with the routing table from the TABLE text binding. In the gateway's workerd process,
// reached by workerd itself whenever the gateway calls env.ROUTER_CONFIG.get/put.
let store;
function keyOf(url) {
  const raw = url.pathname.slice(1);
  return url.searchParams.get("urlencoded") === "true" ? decodeURIComponent(raw) : raw;
}
export default {
  async fetch(request, env) {
    store ??= new Map([["routing-table", env.TABLE]]);
    const url = new URL(request.url);
    const key = keyOf(url);
    if (request.method === "GET" && key === "") {
      const keys = [...store.keys()].map((name) => ({ name }));
      return Response.json({ keys, list_complete: true, cacheStatus: null });
    }
    if (request.method === "GET") {
      const v = store.get(key);
      return v === undefined ? new Response(null, { status: 404 }) : new Response(v);
    }
    if (request.method === "PUT") {
      store.set(key, await request.text());
      return new Response(null, { status: 200 });
    }
    if (request.method === "DELETE") {
      store.delete(key);
      return new Response(null, { status: 200 });
    }
    return new Response(null, { status: 405 });
  },
};
