//! Native microbenchmarks of the gateway's hot core paths, through the crate's public API.
//! No extra dependencies: `std::time::Instant` loops with `std::hint::black_box`.
//!
//!     cargo run --release --example bench_core
//!
//! Each benchmark runs for ~0.25 s per sample, 5 samples; prints the median (and min) time per
//! operation. Part of `bash bench/run.sh` (results in bench/RESULTS.md).

use edge_router::api::parse_chat_request;
use edge_router::config::parse_table;
use edge_router::providers::openai::{parse_response, StreamTranslator};
use edge_router::providers::{build_target, Secrets};
use std::hint::black_box;
use std::time::{Duration, Instant};

struct BenchSecrets;

impl Secrets for BenchSecrets {
    fn get(&self, name: &str) -> Option<String> {
        (name == "BENCH_UPSTREAM_KEY").then(|| "sk-bench-not-a-secret".to_string())
    }
}

/// The routing table bench/bench.py serves: two providers, a route with a one-step fallback.
const TABLE: &str = r#"{
 "version": 1,
 "providers": {
  "upstream-a": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_secret": "BENCH_UPSTREAM_KEY"},
  "upstream-b": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_secret": "BENCH_UPSTREAM_KEY"}
 },
 "deployments": {
  "primary": {"provider": "upstream-a", "model": "fake-model", "context_window": 128000,
              "price": {"input_per_mtok_usd": 0.15, "output_per_mtok_usd": 0.6}},
  "backup": {"provider": "upstream-b", "model": "fake-model-backup", "context_window": 128000,
             "price": {"input_per_mtok_usd": 0.15, "output_per_mtok_usd": 0.6}}
 },
 "routes": {"bench": {"chain": ["primary", "backup"], "description": "benchmark: one-step fallback"}}
}"#;

const REQUEST: &[u8] = br#"{"model":"bench","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello to the benchmark in one short sentence."}],"max_tokens":64,"temperature":0}"#;

const ANSWER: &[u8] = br#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"fake-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the fake upstream: a short fixed answer for the benchmark.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":14,"total_tokens":38}}"#;

fn chunk(i: usize) -> String {
    let role = if i == 0 { r#""role":"assistant","# } else { "" };
    format!("data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"fake-model\",\"choices\":[{{\"index\":0,\"delta\":{{{role}\"content\":\"{i}@1795311811290724;\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n")
}

/// The fake upstream's 60-chunk stream, split into one byte slice per SSE event.
fn stream_events() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = (0..60).map(|i| chunk(i).into_bytes()).collect();
    v.push(b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"fake-model\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n".to_vec());
    v.push(b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"fake-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":24,\"completion_tokens\":60,\"total_tokens\":84}}\n\n".to_vec());
    v.push(b"data: [DONE]\n\n".to_vec());
    v
}

/// Runs `f` in calibrated batches; returns (median, min) nanoseconds per call.
fn bench<F: FnMut()>(mut f: F) -> (f64, f64) {
    let target = Duration::from_millis(250);
    let mut iters: u64 = 1;
    loop {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        let el = t.elapsed();
        if el >= Duration::from_millis(20) {
            iters = ((iters as f64) * target.as_secs_f64() / el.as_secs_f64()).max(1.0) as u64;
            break;
        }
        iters *= 4;
    }
    let mut samples: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    (samples[2], samples[0])
}

fn show(name: &str, per: &str, (median, min): (f64, f64)) {
    let fmt = |ns: f64| {
        if ns >= 1_000_000.0 {
            format!("{:.2} ms", ns / 1e6)
        } else if ns >= 1_000.0 {
            format!("{:.2} µs", ns / 1e3)
        } else {
            format!("{ns:.0} ns")
        }
    };
    println!("{name:<62} {:>10} {:>10}  {per}", fmt(median), fmt(min));
}

fn main() {
    let table = parse_table(TABLE).expect("benchmark table is valid");
    let route = table.route("bench").expect("route bench");
    let step = route.chain.steps().first().expect("chain has a step");
    let deployment = table.deployment(step.deployment).expect("deployment");
    let req = parse_chat_request(REQUEST).expect("request is valid");
    let events = stream_events();
    let whole_stream: Vec<u8> = events.concat();

    println!("{:<62} {:>10} {:>10}", "benchmark", "median", "min");
    show(
        "config::parse_table (2 providers, 2 deployments, 1 route)",
        "per table",
        bench(|| {
            black_box(parse_table(black_box(TABLE)).ok());
        }),
    );
    show(
        "api::parse_chat_request (230-byte body)",
        "per request",
        bench(|| {
            black_box(parse_chat_request(black_box(REQUEST)).ok());
        }),
    );
    show(
        "route lookup + providers::build_target (openai)",
        "per request",
        bench(|| {
            let r = black_box(&table)
                .route("bench")
                .and_then(|r| r.chain.steps().first());
            let d = r.and_then(|s| table.deployment(s.deployment));
            if let Some(d) = d {
                black_box(build_target(&table, d, black_box(&req), &BenchSecrets, 0).ok());
            }
        }),
    );
    show(
        "providers::build_target only",
        "per request",
        bench(|| {
            black_box(build_target(&table, deployment, black_box(&req), &BenchSecrets, 0).ok());
        }),
    );
    show(
        "providers::openai::parse_response (390-byte answer)",
        "per answer",
        bench(|| {
            black_box(parse_response(black_box(ANSWER.to_vec())).ok());
        }),
    );
    show(
        "non-streaming core path: parse + route + build + parse answer",
        "per request",
        bench(|| {
            let Ok(req) = parse_chat_request(black_box(REQUEST)) else {
                return;
            };
            let Some(d) = table
                .route(&req.model)
                .and_then(|r| r.chain.steps().first())
                .and_then(|s| table.deployment(s.deployment))
            else {
                return;
            };
            black_box(build_target(&table, d, &req, &BenchSecrets, 0).ok());
            black_box(parse_response(black_box(ANSWER.to_vec())).ok());
        }),
    );
    let n_events = events.len() as f64;
    let (m, mn) = bench(|| {
        let mut t = StreamTranslator::new(false);
        let mut out = Vec::with_capacity(4);
        for e in &events {
            t.feed(black_box(e), &mut out);
            black_box(&out);
            out.clear();
        }
    });
    show(
        "StreamTranslator::new(false) + feed, one SSE event per feed",
        "per event",
        (m / n_events, mn / n_events),
    );
    show("  … the same, whole 63-event stream", "per stream", (m, mn));
    let (m, mn) = bench(|| {
        let mut t = StreamTranslator::new(false);
        let mut out = Vec::with_capacity(128);
        t.feed(black_box(&whole_stream), &mut out);
        black_box(&out);
    });
    show(
        "StreamTranslator feed, whole stream in one buffer",
        "per event",
        (m / n_events, mn / n_events),
    );
}
