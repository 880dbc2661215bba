//! Happy paths and every error class before the commit (invisible to the client).

use super::*;
use edge_router::engine::Skip;

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
fn a_non_streaming_attempt_tells_the_transport_how_its_body_will_be_read() {
    let (t, clock, s) = setup();
    let start = edge_router::engine::Clock::now_ms(&clock);
    s.on(A, vec![Step::json(200, &completion("hello"))]);
    complete(run(&t, &s, &clock, req(false)));
    s.on(A, vec![full_stream(&["Hel", "lo"], 10)]);
    drain(run(&t, &s, &clock, req(true)));
    let aheads = s.read_aheads.borrow();
    assert_eq!(
        aheads[0],
        Some(ReadAhead {
            answer_limit: 32 << 20,
            error_limit: 64 << 10,
            // The attempt's deadline (attempt_ms 20 000 from its start): the body read ends
            // then, as when the engine reads the body itself.
            deadline_ms: start + 20_000,
        })
    );
    assert_eq!(
        aheads[1], None,
        "a stream is read piece by piece, never ahead"
    );
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
    assert_eq!(meta.skipped, vec![("b".to_string(), Skip::ContextWindow)]);
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

#[test]
fn a_redirect_is_never_followed_and_falls_back_without_retry() {
    let (t, clock, s) = setup();
    s.on(
        A,
        vec![Step::json(307, "").with_header("location", "http://127.0.0.1:1/elsewhere")],
    );
    s.on(B, vec![Step::json(200, &completion("from b"))]);
    let (body, meta) = complete(run(&t, &s, &clock, req(false)));
    assert_eq!(body["choices"][0]["message"]["content"], "from b");
    assert_eq!((s.hits(A), s.hits(B)), (1, 1));
    assert_eq!(reasons(&meta), "a:upstream_redirect:307");
    // Nobody asked the redirect's target.
    assert!(s
        .requests
        .borrow()
        .iter()
        .all(|r| !r.url.contains("elsewhere")));
}

#[test]
fn upstream_errors_quoting_the_key_reach_the_caller_redacted_and_capped() {
    let (t, clock, s) = setup();
    let long = "x".repeat(5000);
    let message = format!("Incorrect API key provided: sk-test-secret. {long}");
    for u in [A, B, C] {
        s.on(
            u,
            vec![Step::json(
                500,
                &openai_error(&message, "server_error", "sk-test-secret"),
            )],
        );
    }
    let (e, meta) = failed(run(&t, &s, &clock, req(false)));
    assert_eq!(e.status, 502);
    let shown = format!("{} {} {:?} {:?}", e.message, e.code, e.param, meta);
    assert!(!shown.contains("sk-test-secret"), "{shown}");
    assert!(e.message.contains("[redacted]"));
    assert!(e.message.chars().count() < 1000, "{}", e.message.len());
}
