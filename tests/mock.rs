//! The built-in mock provider through the real engine: deterministic answers, streaming, and
//! the configured failures (status, latency) that let a user watch fallback with no keys.

mod support;

use edge_router::api::parse_chat_request;
use edge_router::config::{parse_table, RoutingTable};
use edge_router::engine::{AlwaysClosed, Engine, Outcome, RequestContext};
use futures::executor::block_on;
use serde_json::{json, Value};
use support::*;

fn table(first_mock: Value) -> RoutingTable {
    parse_table(
        &json!({"version": 1,
            "defaults": {"timeouts": {"connect_ms": 500, "first_token_ms": 800, "idle_ms": 300}},
            "providers": {"first": {"kind": "mock", "mock": first_mock}, "ok": {"kind": "mock", "mock": {"chunk_delay_ms": 20}}},
            "deployments": {
                "m1": {"provider": "first", "model": "mock-one", "context_window": 1000, "retry": {"max_attempts": 1}},
                "m2": {"provider": "ok", "model": "mock-two", "context_window": 1000}},
            "routes": {"r": {"chain": ["m1", "m2"], "resume": "off"}}})
        .to_string(),
    )
    .unwrap()
}

fn run(t: &RoutingTable, stream: bool) -> (u16, String, String, ManualClock) {
    let clock = ManualClock::at(0);
    let script = Script::new(&clock);
    let body =
        json!({"model": "r", "stream": stream, "messages": [{"role": "user", "content": "ping"}]});
    let req = parse_chat_request(body.to_string().as_bytes()).unwrap();
    let engine = Engine {
        table: t,
        transport: &script,
        clock: &clock,
        secrets: &NoSecrets,
        health: &AlwaysClosed,
        redactor: &std::rc::Rc::new(edge_router::redact::Redactor::for_table(t, &NoSecrets)),
    };
    let ctx = RequestContext {
        order: None,
        outside_calls: 0,
        request_id: "r".into(),
        started_ms: 0,
        jitter_seed: 1,
    };
    let out = block_on(engine.run(t.route("r").unwrap(), &std::rc::Rc::new(req), ctx));
    assert!(
        script.requests.borrow().is_empty(),
        "the mock never touches the network"
    );
    match out {
        Outcome::Complete { body, meta, .. } => (
            200,
            String::from_utf8(body).unwrap(),
            meta.fallback_reasons(),
            clock,
        ),
        Outcome::Failed { error, meta } => {
            (error.status, error.message, meta.fallback_reasons(), clock)
        }
        Outcome::Stream(mut s) => {
            let mut text = String::new();
            while let Some(b) = block_on(s.next(&engine)) {
                text.push_str(&String::from_utf8(b).unwrap());
            }
            (200, text, s.meta().fallback_reasons(), clock)
        }
    }
}

#[test]
fn answers_deterministically_and_streams_the_same_text() {
    let t = table(json!({}));
    let (status, body, reasons, _) = run(&t, false);
    assert_eq!((status, reasons.as_str()), (200, ""));
    let v: Value = serde_json::from_str(&body).unwrap();
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        text,
        "This is a mock answer from mock-one. You said: \"ping\""
    );
    assert_eq!(run(&t, false).1, body, "same request, same answer");

    let (_, sse, _, _) = run(&t, true);
    let streamed: String = sse
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(streamed, text);
    assert!(sse.ends_with("data: [DONE]\n\n"));
}

#[test]
fn fail_status_makes_the_chain_fall_back() {
    let t = table(json!({"fail_status": 503}));
    let (status, body, reasons, _) = run(&t, true);
    assert_eq!(status, 200);
    assert!(body.contains("mock-two"));
    assert_eq!(reasons, "m1:overloaded:503");
    let t = table(json!({"fail_status": 429, "retry_after_s": 1}));
    assert_eq!(run(&t, false).2, "m1:rate_limited:429");
}

#[test]
fn latency_and_slow_chunks_hit_the_deadlines() {
    // Headers later than connect_ms (500): a connect timeout, then the next deployment.
    let t = table(json!({"latency_ms": 2000}));
    let (status, _, reasons, clock) = run(&t, true);
    assert_eq!((status, reasons.as_str()), (200, "m1:timeout_connect"));
    assert!(clock.0.get() >= 500);
    // First content later than first_token_ms (800): invisible fallback to the next deployment.
    let t = table(json!({"chunk_delay_ms": 1000}));
    let (_, sse, reasons, _) = run(&t, true);
    assert_eq!(reasons, "m1:timeout_first_token");
    assert!(sse.contains("mock-two") && sse.ends_with("data: [DONE]\n\n"));
    // First content in time (500 ms), then gaps longer than idle_ms (300): an in-band error.
    let t = table(json!({"chunk_delay_ms": 500}));
    let (_, sse, _, _) = run(&t, true);
    assert!(sse.contains("\"code\":\"timeout_idle\""), "{sse}");
    assert!(!sse.contains("[DONE]") && !sse.contains("mock-two"));
}

#[test]
fn a_cut_mock_stream_is_resumed_by_prefill_into_the_whole_answer() {
    let t = parse_table(
        &json!({"version": 1,
            "providers": {"cut": {"kind": "mock", "mock": {"cut_after_chunks": 4}}},
            "deployments": {"m": {"provider": "cut", "model": "mock-one", "context_window": 1000}},
            "routes": {"r": {"chain": ["m"]}}})
        .to_string(),
    )
    .unwrap();
    let (_, full, _, _) = run(&t, false);
    let full: Value = serde_json::from_str(&full).unwrap();
    let (_, sse, _, _) = run(&t, true);
    let streamed: String = sse
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        streamed,
        full["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert!(sse.ends_with("data: [DONE]\n\n"));
}
