// The floor for any Worker-based gateway: forward the request body to the upstream and
// return its answer (status, headers, streamed body) untouched.
export default {
  async fetch(request, env) {
    const upstream = await fetch(env.UPSTREAM_URL, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer " + env.BENCH_UPSTREAM_KEY },
      body: request.body,
    });
    return new Response(upstream.body, upstream);
  },
};
