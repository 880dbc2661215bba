//! The streaming contract after the commit, and capability-based skipping.

use super::*;

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
        redactor: &std::rc::Rc::new(edge_router::redact::Redactor::for_table(&t, &NoSecrets)),
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

#[test]
fn an_in_band_error_quoting_the_provider_key_reaches_the_client_redacted() {
    let inband = "data: {\"error\":{\"message\":\"Overloaded for key sk-test-secret (Bearer sk-test-secret)\",\"type\":\"overloaded_error\"}}\n\n"
        .to_string();
    let (text, meta, _) = broken_after_commit(End::Close, vec![(0, inband)]);
    assert!(!text.contains("sk-test-secret"), "{text}");
    assert!(last_event(&text)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("[redacted]"));
    assert!(!format!("{meta:?}").contains("sk-test-secret"));
}
