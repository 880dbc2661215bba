//! The engine driven by a scripted transport and a manual clock: one test per error class and
//! per streaming-contract rule. Time is virtual, so timeouts are exact and tests are instant.

mod support;

use edge_router::api::parse_chat_request;
use edge_router::config::{parse_table, RoutingTable};
use edge_router::engine::{AlwaysClosed, CommittedStream, Engine, Meta, Outcome, RequestContext};
use futures::executor::block_on;
use serde_json::{json, Value};
use support::*;

const A: &str = "http://up-a/v1";
const B: &str = "http://up-b/v1";
const C: &str = "http://up-c/v1";

/// Three OpenAI-compatible deployments a, b, c (context 8k, 8k, 128k) and routes over them.
fn table(route_extra: Value) -> RoutingTable {
    let dep = |url_provider: &str, ctx: u32| {
        json!({"provider": url_provider, "model": format!("model-{url_provider}"), "context_window": ctx,
               "price": {"input_per_mtok_usd": 1, "output_per_mtok_usd": 2}})
    };
    let mut route = json!({"chain": ["a", "b", "c"]});
    if let (Value::Object(r), Value::Object(extra)) = (&mut route, route_extra) {
        r.extend(extra);
    }
    let t = json!({
        "version": 1,
        "defaults": {"retry": {"max_attempts": 2, "backoff_base_ms": 100, "backoff_max_ms": 1000, "max_retry_after_ms": 5000},
                     "timeouts": {"connect_ms": 1000, "first_token_ms": 2000, "idle_ms": 3000, "attempt_ms": 20000},
                     "request_timeout_ms": 60000},
        "providers": {
            "pa": {"kind": "openai", "base_url": A, "api_key_secret": "TEST_KEY", "headers": {"x-extra": "1"}},
            "pb": {"kind": "openai", "base_url": B, "api_key_secret": "TEST_KEY"},
            "pc": {"kind": "openai", "base_url": C}
        },
        "deployments": {"a": dep("pa", 8000), "b": dep("pb", 8000), "c": dep("pc", 128000)},
        "routes": {"r": route}
    });
    parse_table(&t.to_string()).unwrap()
}

struct Run {
    outcome: Outcome<ScriptBody>,
    clock: ManualClock,
    script: Script,
    table: RoutingTable,
}

fn run(t: &RoutingTable, script: &Script, clock: &ManualClock, body: Value) -> Run {
    let req = parse_chat_request(body.to_string().as_bytes()).unwrap();
    let engine = Engine {
        table: t,
        transport: script,
        clock,
        secrets: &NoSecrets,
        health: &AlwaysClosed,
    };
    let ctx = RequestContext {
        order: None,
        request_id: "req_1".into(),
        started_ms: clock.0.get(),
        jitter_seed: 42,
    };
    let route = t.route("r").unwrap();
    Run {
        outcome: block_on(engine.run(route, &std::rc::Rc::new(req), ctx)),
        clock: clock.clone(),
        script: script.clone(),
        table: t.clone(),
    }
}

fn req(stream: bool) -> Value {
    json!({"model": "r", "messages": [{"role": "user", "content": "hi"}], "stream": stream})
}

fn setup() -> (RoutingTable, ManualClock, Script) {
    let clock = ManualClock::at(1_000_000);
    let script = Script::new(&clock);
    (table(json!({})), clock, script)
}

fn complete(r: Run) -> (Value, Meta) {
    match r.outcome {
        Outcome::Complete { body, meta, .. } => (serde_json::from_slice(&body).unwrap(), meta),
        Outcome::Failed { error, .. } => panic!("expected an answer, got {error:?}"),
        Outcome::Stream(_) => panic!("expected a complete answer, got a stream"),
    }
}

fn failed(r: Run) -> (edge_router::api::ApiError, Meta) {
    match r.outcome {
        Outcome::Failed { error, meta } => (error, meta),
        _ => panic!("expected a failure"),
    }
}

/// Drains a committed stream: (client bytes as text, final meta).
fn drain(r: Run) -> (String, Meta) {
    let Run {
        outcome,
        clock,
        script,
        table,
    } = r;
    let engine = Engine {
        table: &table,
        transport: &script,
        clock: &clock,
        secrets: &NoSecrets,
        health: &AlwaysClosed,
    };
    let mut s: Box<CommittedStream<ScriptBody>> = match outcome {
        Outcome::Stream(s) => s,
        Outcome::Failed { error, .. } => panic!("expected a stream, got {error:?}"),
        Outcome::Complete { .. } => panic!("expected a stream"),
    };
    let mut out = Vec::new();
    while let Some(b) = block_on(s.next(&engine)) {
        out.extend(b);
    }
    (String::from_utf8(out).unwrap(), s.meta().clone())
}

fn reasons(meta: &Meta) -> String {
    meta.fallback_reasons()
}

// ---------- happy paths ----------

#[test]
fn non_stream_answer_is_forwarded_with_cost_and_upstream_request_is_right() {
    let (t, clock, s) = setup();
    s.on(A, vec![Step::json(200, &completion("hello"))]);
    let (body, meta) = complete(run(&t, &s, &clock, req(false)));
    assert_eq!(body["choices"][0]["message"]["content"], "hello");
    assert_eq!(meta.deployment.as_deref(), Some("a"));
    assert_eq!(meta.model.as_deref(), Some("up-model"));
    assert_eq!(meta.attempts.len(), 1);
    // 10 prompt tokens at $1/M + 5 completion at $2/M = 20 µUSD = 20_000 nano-USD
    assert_eq!(meta.cost_nanos, Some(20_000));
    let sent = &s.requests.borrow()[0];
    assert!(sent
        .headers
        .contains(&("authorization".into(), "Bearer sk-test-secret".into())));
    assert!(sent.headers.contains(&("x-extra".into(), "1".into())));
    assert_eq!(s.bodies(A)[0]["model"], "model-pa");
    assert!(s.bodies(A)[0].get("stream_options").is_none());
}

#[test]
fn stream_is_forwarded_and_usage_chunk_shown_only_when_asked() {
    for wants_usage in [false, true] {
        let (t, clock, s) = setup();
        s.on(A, vec![full_stream(&["Hel", "lo"], 10)]);
        let mut body = req(true);
        if wants_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        let (text, meta) = drain(run(&t, &s, &clock, body));
        assert!(text.contains("\"Hel\"") && text.contains("\"lo\""));
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert_eq!(text.contains("\"usage\":{"), wants_usage, "{text}");
        assert_eq!(meta.usage.map(|u| u.completion_tokens), Some(2));
        assert_eq!(
            s.bodies(A)[0]["stream_options"]["include_usage"],
            true,
            "always asks upstream for usage"
        );
        assert!(meta.error.is_none());
    }
}

// ---------- error classes before commit ----------

#[test]
fn rate_limited_with_retry_after_waits_then_retries_same_deployment() {
    let (t, clock, s) = setup();
    let start = clock.0.get();
    s.on(
        A,
        vec![
            Step::json(
                429,
                &openai_error("slow down", "requests", "rate_limit_exceeded"),
            )
            .with_header("retry-after", "1"),
            Step::json(200, &completion("ok")),
        ],
    );
    let (_, meta) = complete(run(&t, &s, &clock, req(false)));
    assert_eq!(s.hits(A), 2);
    assert_eq!(meta.deployment.as_deref(), Some("a"));
    assert!(clock.0.get() - start >= 1000, "waited for Retry-After");
    assert_eq!(reasons(&meta), "a:rate_limited:429");
}

#[test]
fn retry_after_longer_than_allowed_falls_back_at_once() {
    let (t, clock, s) = setup();
    let start = clock.0.get();
    s.on(
        A,
        vec![Step::json(
            429,
            &openai_error("slow down", "requests", "rate_limit_exceeded"),
        )
        .with_header("retry-after", "30")],
    );
    s.on(B, vec![Step::json(200, &completion("ok"))]);
    let (_, meta) = complete(run(&t, &s, &clock, req(false)));
    assert_eq!((s.hits(A), s.hits(B)), (1, 1));
    assert_eq!(meta.deployment.as_deref(), Some("b"));
    assert!(clock.0.get() - start < 100);
}

#[test]
fn persistent_429_everywhere_gives_429_with_retry_after() {
    let (t, clock, s) = setup();
    let step = Step::json(
        429,
        &openai_error("slow down", "requests", "rate_limit_exceeded"),
    )
    .with_header("retry-after", "2");
    for u in [A, B, C] {
        s.on(u, vec![step.clone()]);
    }
    let (err, meta) = failed(run(&t, &s, &clock, req(false)));
    assert_eq!(err.status, 429);
    assert_eq!(err.kind, "rate_limit_error");
    assert_eq!(err.retry_after_s, Some(2));
    assert_eq!((s.hits(A), s.hits(B), s.hits(C)), (2, 2, 2));
    assert_eq!(meta.attempts.len(), 6);
}

#[test]
fn server_error_once_then_healthy_retries_same() {
    let (t, clock, s) = setup();
    s.on(
        A,
        vec![
            Step::json(
                500,
                &openai_error("The server had an error", "server_error", ""),
            ),
            Step::json(200, &completion("ok")),
        ],
    );
    let (_, meta) = complete(run(&t, &s, &clock, req(false)));
    assert_eq!(s.hits(A), 2);
    assert_eq!(meta.deployment.as_deref(), Some("a"));
    assert_eq!(reasons(&meta), "a:server_error:500");
}

#[test]
fn persistent_503_falls_back_after_bounded_retries() {
    let (t, clock, s) = setup();
    s.on(
        A,
        vec![Step::json(
            503,
            &openai_error(
                "overloaded",
                "service_unavailable_error",
                "server_is_overloaded",
            ),
        )],
    );
    s.on(B, vec![Step::json(200, &completion("ok"))]);
    let (_, meta) = complete(run(&t, &s, &clock, req(false)));
    assert_eq!((s.hits(A), s.hits(B)), (2, 1));
    assert_eq!(reasons(&meta), "a:overloaded:503, a:overloaded:503");
}

#[test]
fn connect_error_retries_then_moves_on() {
    let (t, clock, s) = setup();
    s.on(A, vec![Step::ConnectError]);
    s.on(B, vec![Step::json(200, &completion("ok"))]);
    let (_, meta) = complete(run(&t, &s, &clock, req(false)));
    assert_eq!((s.hits(A), s.hits(B)), (2, 1));
    assert_eq!(reasons(&meta), "a:connect_error, a:connect_error");
}

#[test]
fn silent_upstream_is_not_retried_and_next_is_tried() {
    for stream in [false, true] {
        let (t, clock, s) = setup();
        s.on(A, vec![Step::Hang]);
        s.on(
            B,
            vec![if stream {
                full_stream(&["ok"], 0)
            } else {
                Step::json(200, &completion("ok"))
            }],
        );
        let start = clock.0.get();
        let r = run(&t, &s, &clock, req(stream));
        let meta = if stream { drain(r).1 } else { complete(r).1 };
        assert_eq!((s.hits(A), s.hits(B)), (1, 1));
        let expected = if stream {
            "a:timeout_connect"
        } else {
            "a:timeout_attempt"
        };
        assert_eq!(reasons(&meta), expected);
        let waited = clock.0.get() - start;
        assert_eq!(waited, if stream { 1000 } else { 20000 });
    }
}

#[test]
fn slow_first_token_falls_back_invisibly() {
    let (t, clock, s) = setup();
    s.on(
        A,
        vec![Step::sse(
            vec![(0, role_chunk()), (5000, chunk("late"))],
            End::Close,
        )],
    );
    s.on(B, vec![full_stream(&["fast"], 0)]);
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    assert!(!text.contains("late"));
    assert_eq!(
        text.matches("\"role\":\"assistant\"").count(),
        1,
        "the failed attempt's role chunk never reached the client"
    );
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert_eq!(reasons(&meta), "a:timeout_first_token");
    assert_eq!((s.hits(A), s.hits(B)), (1, 1));
}

#[test]
fn failures_before_first_content_are_invisible() {
    let overloaded =
        "data: {\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\"}}\n\n"
            .to_string();
    let cases: Vec<(Step, &str)> = vec![
        (
            Step::sse(vec![(0, role_chunk())], End::Reset),
            "a:stream_cut, a:stream_cut",
        ),
        (
            Step::sse(
                vec![(0, role_chunk()), (0, "data: {oops\n\n".into())],
                End::Close,
            ),
            "a:malformed_response, a:malformed_response",
        ),
        (
            Step::sse(vec![(0, role_chunk()), (0, overloaded)], End::Close),
            "a:overloaded, a:overloaded",
        ),
        (
            Step::sse(vec![(0, DONE.into())], End::Close),
            "a:malformed_response, a:malformed_response",
        ),
    ];
    for (step, expected) in cases {
        let (t, clock, s) = setup();
        s.on(A, vec![step]);
        s.on(B, vec![full_stream(&["fine"], 0)]);
        let (text, meta) = drain(run(&t, &s, &clock, req(true)));
        assert_eq!(text.matches("\"role\"").count(), 1);
        assert!(text.contains("fine") && text.ends_with("data: [DONE]\n\n"));
        assert_eq!(reasons(&meta), expected);
    }
}

#[test]
fn context_length_skips_to_a_larger_deployment() {
    let (t, clock, s) = setup();
    s.on(
        A,
        vec![Step::json(
            400,
            &openai_error(
                "This model's maximum context length is 8000 tokens",
                "invalid_request_error",
                "context_length_exceeded",
            ),
        )],
    );
    s.on(B, vec![Step::json(200, &completion("never"))]);
    s.on(C, vec![Step::json(200, &completion("big"))]);
    let (body, meta) = complete(run(&t, &s, &clock, req(false)));
    assert_eq!(body["choices"][0]["message"]["content"], "big");
    assert_eq!((s.hits(A), s.hits(B), s.hits(C)), (1, 0, 1));
    assert_eq!(
        meta.skipped,
        vec![("b".to_string(), "context_window".to_string())]
    );
}

#[test]
fn context_length_with_no_larger_deployment_is_the_callers_400() {
    let (t, clock, s) = setup();
    let err = openai_error(
        "This model's maximum context length is 8000 tokens",
        "invalid_request_error",
        "context_length_exceeded",
    );
    s.on(A, vec![Step::json(400, &err)]);
    s.on(B, vec![Step::json(400, &err)]);
    s.on(C, vec![Step::json(400, &err)]);
    let (e, _) = failed(run(&t, &s, &clock, req(false)));
    assert_eq!(
        (e.status, e.code.as_str()),
        (400, "context_length_exceeded")
    );
    assert!(e.message.contains("maximum context length"));
    assert_eq!((s.hits(A), s.hits(B), s.hits(C)), (1, 0, 1));
}

#[test]
fn content_policy_does_not_fall_back_unless_the_route_opts_in() {
    let err = openai_error(
        "Your request was rejected by the safety system",
        "invalid_request_error",
        "content_policy_violation",
    );
    let (t, clock, s) = setup();
    s.on(A, vec![Step::json(400, &err)]);
    s.on(B, vec![Step::json(200, &completion("ok"))]);
    let (e, _) = failed(run(&t, &s, &clock, req(false)));
    assert_eq!(
        (e.status, e.code.as_str()),
        (400, "content_policy_violation")
    );
    assert_eq!(e.message, "Your request was rejected by the safety system");
    assert_eq!((s.hits(A), s.hits(B)), (1, 0));

    let t = table(json!({"fallback_on_content_policy": true}));
    let s = Script::new(&clock);
    s.on(A, vec![Step::json(400, &err)]);
    s.on(B, vec![Step::json(200, &completion("ok"))]);
    let (_, meta) = complete(run(&t, &s, &clock, req(false)));
    assert_eq!(meta.deployment.as_deref(), Some("b"));
    assert_eq!(reasons(&meta), "a:content_policy:400");
}

#[test]
fn invalid_request_is_returned_as_is_without_retry() {
    let (t, clock, s) = setup();
    s.on(
        A,
        vec![Step::json(
            422,
            &openai_error(
                "temperature must be <= 2",
                "invalid_request_error",
                "invalid_value",
            ),
        )],
    );
    let (e, _) = failed(run(&t, &s, &clock, req(false)));
    assert_eq!(
        (e.status, e.code.as_str(), e.message.as_str()),
        (422, "invalid_value", "temperature must be <= 2")
    );
    assert_eq!((s.hits(A), s.hits(B)), (1, 0));
}

#[test]
fn auth_errors_and_missing_secrets_move_on_without_retry() {
    let (t, clock, s) = setup();
    s.on(
        A,
        vec![Step::json(
            401,
            &openai_error(
                "Incorrect API key provided",
                "invalid_request_error",
                "invalid_api_key",
            ),
        )],
    );
    s.on(
        B,
        vec![Step::json(
            404,
            &openai_error(
                "model not found",
                "invalid_request_error",
                "model_not_found",
            ),
        )],
    );
    s.on(C, vec![Step::json(200, &completion("ok"))]);
    let (_, meta) = complete(run(&t, &s, &clock, req(false)));
    assert_eq!((s.hits(A), s.hits(B), s.hits(C)), (1, 1, 1));
    assert_eq!(reasons(&meta), "a:auth_error:401, b:not_found:404");
}

#[test]
fn all_timeouts_give_504_and_mixed_failures_give_502() {
    let (t, clock, s) = setup();
    for u in [A, B, C] {
        s.on(u, vec![Step::Hang]);
    }
    let (e, _) = failed(run(&t, &s, &clock, req(true)));
    assert_eq!((e.status, e.kind), (504, "timeout_error"));

    let s = Script::new(&clock);
    s.on(A, vec![Step::Hang]);
    s.on(
        B,
        vec![Step::json(500, &openai_error("boom", "server_error", ""))],
    );
    s.on(C, vec![Step::json(502, "<html>Bad gateway</html>")]);
    let (e, _) = failed(run(&t, &s, &clock, req(false)));
    assert_eq!(
        (e.status, e.kind, e.code.as_str()),
        (502, "upstream_error", "server_error")
    );
    assert!(e.message.contains("Bad gateway"), "{}", e.message);
}

#[test]
fn request_deadline_bounds_the_whole_request() {
    let clock = ManualClock::at(0);
    let t = table(json!({"request_timeout_ms": 1500}));
    let s = Script::new(&clock);
    for u in [A, B, C] {
        s.on(u, vec![Step::Hang]);
    }
    let (e, meta) = failed(run(&t, &s, &clock, req(false)));
    assert_eq!(e.status, 504);
    assert!(clock.0.get() <= 1500, "ended at {}", clock.0.get());
    assert_eq!(meta.attempts.len(), 1);
}

#[test]
fn never_more_than_two_attempts_in_the_first_second() {
    let clock = ManualClock::at(0);
    let s = Script::new(&clock);
    let raw = json!({"version": 1,
        "providers": {"p": {"kind": "openai", "base_url": A}},
        "deployments": {"a": {"provider": "p", "model": "m", "context_window": 1000, "retry": {"max_attempts": 5, "backoff_base_ms": 1, "backoff_max_ms": 1}}},
        "routes": {"r": {"chain": ["a"]}}});
    let t = parse_table(&raw.to_string()).unwrap();
    s.on(A, vec![Step::json(500, "{}")]);
    let (_, meta) = failed(run(&t, &s, &clock, req(false)));
    let starts: Vec<u64> = meta.attempts.iter().map(|a| a.started_ms).collect();
    assert_eq!(starts.len(), 5);
    for w in starts.windows(3) {
        assert!(
            w[2] - w[0] >= 1000,
            "three attempts within a second: {starts:?}"
        );
    }
}

// ---------- after commit ----------

/// A stream that breaks after "Hello wor", on a route with resume off (the bare contract).
fn broken_after_commit(end: End, extra: Vec<(u64, String)>) -> (String, Meta, Script) {
    let (_, clock, s) = setup();
    let t = table(json!({"resume": "off"}));
    let mut chunks = vec![(0, role_chunk()), (0, chunk("Hello")), (0, chunk(" wor"))];
    chunks.extend(extra);
    s.on(A, vec![Step::sse(chunks, end)]);
    s.on(B, vec![full_stream(&["never"], 0)]);
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    (text, meta, s)
}

fn last_event(text: &str) -> Value {
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap()
}

#[test]
fn cut_after_commit_ends_with_in_band_error_and_no_done() {
    let (text, meta, s) = broken_after_commit(End::Reset, vec![]);
    assert!(text.contains("Hello") && !text.contains("[DONE]"));
    assert_eq!(last_event(&text)["error"]["code"], "stream_cut");
    assert_eq!(s.hits(B), 0, "a committed stream is never switched");
    assert!(meta.error.unwrap().starts_with("stream_cut"));

    let (text, _, _) = broken_after_commit(End::Close, vec![]);
    assert!(!text.contains("[DONE]"));
    assert_eq!(last_event(&text)["error"]["code"], "stream_cut");
}

#[test]
fn stall_after_commit_ends_with_idle_timeout_error() {
    let (text, _, _) = broken_after_commit(End::Hang, vec![]);
    assert!(!text.contains("[DONE]"));
    let ev = last_event(&text);
    assert_eq!(ev["error"]["code"], "timeout_idle");
    assert_eq!(ev["error"]["type"], "upstream_error");
}

#[test]
fn malformed_or_in_band_error_after_commit_ends_with_error() {
    let (text, _, _) =
        broken_after_commit(End::Close, vec![(0, "data: {\"choices\": [\n\n".into())]);
    assert_eq!(last_event(&text)["error"]["code"], "malformed_response");
    assert!(!text.contains("[DONE]"));
    let inband = "data: {\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\"}}\n\n"
        .to_string();
    let (text, _, _) = broken_after_commit(End::Close, vec![(0, inband)]);
    let ev = last_event(&text);
    assert_eq!(ev["error"]["code"], "overloaded");
    assert!(ev["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Overloaded"));
}

#[test]
fn finished_stream_without_done_is_finalised_at_once() {
    // finish + usage, then the upstream holds the connection open: no wait for idle.
    let (t, clock, s) = setup();
    s.on(
        A,
        vec![Step::sse(
            vec![
                (0, role_chunk()),
                (0, chunk("hi")),
                (0, finish_chunk()),
                (0, usage_chunk(3, 1)),
            ],
            End::Hang,
        )],
    );
    let start = clock.0.get();
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert_eq!(clock.0.get(), start, "no waiting after finish + usage");
    assert!(meta.error.is_none());

    // finish without usage: a short grace for the usage chunk, far below idle_ms (3000).
    let s = Script::new(&clock);
    s.on(
        A,
        vec![Step::sse(
            vec![(0, role_chunk()), (0, chunk("hi")), (0, finish_chunk())],
            End::Hang,
        )],
    );
    let start = clock.0.get();
    let (text, _) = drain(run(&t, &s, &clock, req(true)));
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert!(clock.0.get() - start <= 1000);

    // finish, then the connection closes without [DONE]: complete.
    let s = Script::new(&clock);
    s.on(
        A,
        vec![Step::sse(
            vec![(0, role_chunk()), (0, chunk("hi")), (0, finish_chunk())],
            End::Close,
        )],
    );
    let (text, _) = drain(run(&t, &s, &clock, req(true)));
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[test]
fn chunks_are_forwarded_as_they_arrive() {
    let (t, clock, s) = setup();
    s.on(A, vec![full_stream(&["a", "b", "c"], 100)]);
    let r = run(&t, &s, &clock, req(true));
    let Outcome::Stream(mut st) = r.outcome else {
        panic!()
    };
    let engine = Engine {
        table: &t,
        transport: &s,
        clock: &clock,
        secrets: &NoSecrets,
        health: &AlwaysClosed,
    };
    let mut times = Vec::new();
    while let Some(b) = block_on(st.next(&engine)) {
        let text = String::from_utf8_lossy(&b);
        for w in ["a", "b", "c"] {
            if text.contains(&format!("\"content\":\"{w}\"")) {
                times.push(clock.0.get());
            }
        }
    }
    assert_eq!(times.len(), 3);
    assert!(
        times[0] < times[1] && times[1] < times[2],
        "each chunk is handed over before the next arrives: {times:?}"
    );
}

// ---------- capabilities ----------

fn capability_table(a_caps: Value, b_caps: Value) -> RoutingTable {
    let t = json!({"version": 1,
        "providers": {"pa": {"kind": "openai", "base_url": A}, "pb": {"kind": "openai", "base_url": B}},
        "deployments": {
            "a": {"provider": "pa", "model": "text-only", "context_window": 8000, "capabilities": a_caps},
            "b": {"provider": "pb", "model": "omni", "context_window": 8000, "capabilities": b_caps}},
        "routes": {"r": {"chain": ["a", "b"]}}});
    parse_table(&t.to_string()).unwrap()
}

#[test]
fn a_request_skips_deployments_without_the_capability_it_needs() {
    let clock = ManualClock::at(0);
    let t = capability_table(json!({"vision": false, "tools": false}), json!({}));
    let image = json!({"model": "r", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]});
    let s = Script::new(&clock);
    s.on(B, vec![Step::json(200, &completion("a cat"))]);
    let (_, meta) = complete(run(&t, &s, &clock, image));
    assert_eq!((s.hits(A), s.hits(B)), (0, 1));
    assert_eq!(
        meta.fallback_reasons(),
        "a:skipped_missing_capability_vision"
    );
    assert_eq!(meta.attempts.len(), 1);

    let tools = json!({"model": "r", "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}]});
    let s = Script::new(&clock);
    s.on(B, vec![Step::json(200, &completion("ok"))]);
    let (_, meta) = complete(run(&t, &s, &clock, tools));
    assert_eq!(
        meta.fallback_reasons(),
        "a:skipped_missing_capability_tools"
    );
}

#[test]
fn a_request_no_deployment_can_serve_gets_a_400_naming_the_capability() {
    let clock = ManualClock::at(0);
    let t = capability_table(json!({"json": false}), json!({"json": false}));
    let s = Script::new(&clock);
    let body = json!({"model": "r", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}});
    let (e, _) = failed(run(&t, &s, &clock, body));
    assert_eq!(
        (e.status, e.code.as_str(), e.param.as_deref()),
        (400, "capability_unsupported", Some("response_format"))
    );
    assert!(e.message.contains("supports json"), "{}", e.message);
    assert!(s.requests.borrow().is_empty());
}

#[test]
fn openai_server_quirks_shape_the_upstream_body() {
    let clock = ManualClock::at(0);
    let t = parse_table(
        &json!({"version": 1,
            "providers": {"old": {"kind": "openai", "base_url": A, "stream_usage": false, "max_tokens_field": "max_tokens"}},
            "deployments": {"a": {"provider": "old", "model": "m", "context_window": 1000}},
            "routes": {"r": {"chain": ["a"]}}})
        .to_string(),
    )
    .unwrap();
    let s = Script::new(&clock);
    s.on(
        A,
        vec![Step::sse(
            vec![(0, role_chunk()), (0, chunk("hi")), (0, finish_chunk())],
            End::Close,
        )],
    );
    let body = json!({"model": "r", "stream": true, "stream_options": {"include_usage": true}, "max_completion_tokens": 50,
        "messages": [{"role": "user", "content": "x"}], "x_vendor_field": {"keep": true}});
    let (text, _) = drain(run(&t, &s, &clock, body));
    assert!(text.ends_with("data: [DONE]\n\n"));
    let sent = &s.bodies(A)[0];
    assert!(sent.get("stream_options").is_none(), "{sent}");
    assert_eq!(sent["max_tokens"], 50);
    assert!(sent.get("max_completion_tokens").is_none());
    assert_eq!(
        sent["x_vendor_field"],
        json!({"keep": true}),
        "unknown fields pass through"
    );
}

// ---------- mid-stream resume ----------

/// Route r over a (prefill per `prefill_a`), b (no prefill), c; resume as given.
fn resume_table(prefill_a: &str, resume: Value) -> RoutingTable {
    resume_table_with_deadline(prefill_a, resume, 300_000)
}

fn resume_table_with_deadline(prefill_a: &str, resume: Value, deadline_ms: u64) -> RoutingTable {
    let t = json!({"version": 1,
        "defaults": {"timeouts": {"connect_ms": 1000, "first_token_ms": 2000, "idle_ms": 3000, "attempt_ms": 20000},
                     "retry": {"max_attempts": 1}, "request_timeout_ms": deadline_ms},
        "providers": {"pa": {"kind": "openai", "base_url": A, "prefill": prefill_a}, "pb": {"kind": "openai", "base_url": B},
                      "pc": {"kind": "openai", "base_url": C}},
        "deployments": {"a": {"provider": "pa", "model": "ma", "context_window": 8000},
                        "b": {"provider": "pb", "model": "mb", "context_window": 8000},
                        "c": {"provider": "pc", "model": "mc", "context_window": 8000}},
        "routes": {"r": {"chain": ["a", "b", "c"], "resume": resume}}});
    parse_table(&t.to_string()).unwrap()
}

const FULL: [&str; 5] = ["The", " quick", " brown", " fox", " jumps."];

/// The stream of FULL cut after `k` words, ending with `end`.
fn cut_stream(k: usize, end: End) -> Step {
    let mut chunks = vec![(0, role_chunk())];
    for w in FULL.iter().take(k) {
        chunks.push((0, chunk(w)));
    }
    Step::sse(chunks, end)
}

fn words_in(text: &str) -> String {
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

fn ids_in(text: &str) -> Vec<String> {
    let mut ids: Vec<String> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| c["id"].as_str().map(str::to_string))
        .collect();
    ids.dedup();
    ids
}

#[test]
fn prefill_resume_on_the_same_deployment_completes_the_answer_seamlessly() {
    let clock = ManualClock::at(0);
    let t = resume_table("assistant", json!("auto"));
    let s = Script::new(&clock);
    // First a cut after "The quick", then the continuation of the prefilled answer.
    s.on(
        A,
        vec![
            cut_stream(2, End::Reset),
            full_stream(&[" brown", " fox", " jumps."], 0),
        ],
    );
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    assert_eq!(words_in(&text), FULL.concat(), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n") && !text.contains("\"error\""));
    assert_eq!(
        ids_in(&text),
        vec!["c1".to_string()],
        "one id for the whole answer"
    );
    assert_eq!(meta.resumes, vec!["a:prefill".to_string()]);
    let prefill = &s.bodies(A)[1]["messages"];
    assert_eq!(
        prefill.as_array().unwrap().last().unwrap(),
        &json!({"role": "assistant", "content": "The quick"})
    );
    assert_eq!(s.hits(B), 0);
    // Usage counts the broken attempt too: 3 completion tokens reported + the estimate for "The quick".
    let u = meta.usage.unwrap();
    assert!(u.completion_tokens > 3 && u.prompt_tokens > 10, "{u:?}");
}

#[test]
fn replay_and_verify_streams_only_the_new_text() {
    for end in [End::Reset, End::Hang, End::Close] {
        let clock = ManualClock::at(0);
        let t = resume_table("none", json!("auto"));
        let s = Script::new(&clock);
        s.on(A, vec![cut_stream(3, end)]);
        s.on(B, vec![full_stream(&FULL, 0)]);
        let (text, meta) = drain(run(&t, &s, &clock, req(true)));
        assert_eq!(words_in(&text), FULL.concat(), "{end:?}: {text}");
        assert!(text.ends_with("data: [DONE]\n\n"));
        // The same deployment was asked once (it broke again), then b replayed.
        assert_eq!((s.hits(A), s.hits(B)), (2, 1));
        assert_eq!(meta.resumes, vec!["b:replay".to_string()]);
        assert_eq!(
            s.bodies(B)[0]["messages"].as_array().unwrap().len(),
            1,
            "a replay is the original request"
        );
    }
}

#[test]
fn malformed_and_in_band_errors_after_commit_are_resumed() {
    let overloaded =
        "data: {\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\"}}\n\n"
            .to_string();
    for bad in ["data: {oops\n\n".to_string(), overloaded] {
        let clock = ManualClock::at(0);
        let t = resume_table("assistant", json!("auto"));
        let s = Script::new(&clock);
        let mut chunks = vec![(0, role_chunk()), (0, chunk("The")), (0, chunk(" quick "))];
        chunks.push((0, bad.clone()));
        s.on(
            A,
            vec![
                Step::sse(chunks, End::Close),
                full_stream(&[" brown", " fox", " jumps."], 0),
            ],
        );
        let (text, _) = drain(run(&t, &s, &clock, req(true)));
        // The prefill had to drop the trailing space; the continuation's leading one is dropped too.
        assert_eq!(words_in(&text), "The quick brown fox jumps.", "{text}");
    }
}

#[test]
fn a_refused_prefill_falls_back_to_replay_and_never_reaches_the_caller() {
    let clock = ManualClock::at(0);
    let t = resume_table("assistant", json!("auto"));
    let s = Script::new(&clock);
    let refusal = Step::json(
        400,
        &openai_error(
            "final assistant content cannot end with trailing whitespace",
            "invalid_request_error",
            "",
        ),
    );
    s.on(
        A,
        vec![cut_stream(2, End::Reset), refusal, full_stream(&FULL, 0)],
    );
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    assert_eq!(words_in(&text), FULL.concat());
    assert_eq!(s.hits(A), 3);
    assert_eq!(meta.resumes, vec!["a:replay".to_string()]);
    assert!(meta.fallback_reasons().contains("a:invalid_request:400"));
}

#[test]
fn divergent_replay_ends_with_a_clean_error_naming_the_original_failure() {
    let clock = ManualClock::at(0);
    let t = resume_table("none", json!("replay"));
    let s = Script::new(&clock);
    s.on(
        A,
        vec![
            cut_stream(2, End::Reset),
            full_stream(&["The", " slow", " cat"], 0),
        ],
    );
    s.on(B, vec![full_stream(&["A", " different", " answer"], 0)]);
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    assert_eq!(
        words_in(&text),
        "The quick",
        "nothing contradictory is emitted"
    );
    assert!(!text.contains("[DONE]"));
    assert_eq!(last_event(&text)["error"]["code"], "stream_cut");
    assert!(meta.resumes.is_empty());
    assert_eq!(s.hits(B), 0, "divergence stops resuming");
}

#[test]
fn resume_budget_is_bounded_and_resume_off_is_the_bare_contract() {
    let clock = ManualClock::at(0);
    let t = resume_table("assistant", json!("auto"));
    let s = Script::new(&clock);
    s.on(
        A,
        vec![
            cut_stream(1, End::Reset),
            Step::sse(vec![(0, role_chunk()), (0, chunk(" quick"))], End::Reset),
        ],
    );
    s.on(B, vec![Step::sse(vec![(0, role_chunk())], End::Reset)]);
    s.on(C, vec![full_stream(&FULL, 0)]);
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    // Resume 1 on a (prefill, breaks after " quick"), resume 2 on b (replay, breaks): budget of 2 spent.
    assert_eq!(meta.resumes, vec!["a:prefill".to_string()]);
    assert_eq!((s.hits(A), s.hits(B), s.hits(C)), (2, 1, 0));
    assert_eq!(words_in(&text), "The quick");
    assert_eq!(last_event(&text)["error"]["code"], "stream_cut");

    let t = resume_table("assistant", json!("off"));
    let s = Script::new(&clock);
    s.on(A, vec![cut_stream(2, End::Reset)]);
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    assert_eq!(s.hits(A), 1);
    assert!(meta.resumes.is_empty() && !text.contains("[DONE]"));
}

// ---------- billing of broken streams (found by the fault soak) ----------

#[test]
fn a_cut_stream_whose_resumes_all_fail_is_billed_once() {
    let clock = ManualClock::at(0);
    let t = resume_table("assistant", json!("auto"));
    let s = Script::new(&clock);
    let boom = || Step::json(500, &openai_error("boom", "server_error", "server_error"));
    s.on(A, vec![cut_stream(2, End::Reset), boom()]);
    s.on(B, vec![boom()]);
    s.on(C, vec![boom()]);
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    assert_eq!(words_in(&text), "The quick");
    assert_eq!(last_event(&text)["error"]["code"], "stream_cut");
    // The prompt ("hi": 1 token) once, and "The quick" (9 characters: 3 tokens) once.
    let u = meta.usage.unwrap();
    assert_eq!((u.prompt_tokens, u.completion_tokens), (1, 3));
    assert!(meta.usage_estimated);
}

#[test]
fn a_stream_broken_after_the_request_deadline_keeps_its_delivered_tokens() {
    let clock = ManualClock::at(0);
    // The whole request may take 1.2 s; the stream stalls (idle 3 s) after three words.
    let t = resume_table_with_deadline("assistant", json!("auto"), 1_200);
    let s = Script::new(&clock);
    let mut chunks = vec![(0, role_chunk())];
    for w in FULL.iter().take(3) {
        chunks.push((0, chunk(w)));
    }
    chunks.push((10_000, chunk(" fox")));
    s.on(A, vec![Step::sse(chunks, End::Close)]);
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    assert_eq!(words_in(&text), "The quick brown");
    assert!(text.contains("\"error\""), "{text}");
    // No resume was possible (deadline passed), and "The quick brown" (15 chars) is 4 tokens.
    assert!(meta.resumes.is_empty());
    let u = meta.usage.unwrap();
    assert_eq!((u.prompt_tokens, u.completion_tokens), (1, 4));
}
