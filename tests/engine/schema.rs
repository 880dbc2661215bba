//! Structured output checked against the request's strict schema: an answer off it falls back
//! (non-streamed) or ends with an in-band `invalid_output` error (streamed), never a success.

use super::*;
use edge_router::routing::prepare::{prepare, Door, NoSessions, World};

fn schema_req(stream: bool) -> Value {
    json!({"model": "r", "stream": stream, "messages": [{"role": "user", "content": "rate it"}],
           "response_format": {"type": "json_schema", "json_schema": {"name": "rating", "strict": true,
               "schema": {"type": "object", "additionalProperties": false, "required": ["rating"],
                          "properties": {"rating": {"type": "number"}}}}}})
}

/// Runs `body` the way the worker does: through `routing::prepare` (which notes the schema).
fn run_prepared(t: &RoutingTable, s: &Script, clock: &ManualClock, body: Value) -> Run {
    let mut req = parse_chat_request(body.to_string().as_bytes()).unwrap();
    let world = World {
        table: t,
        sessions: &NoSessions,
        stats: &edge_router::routing::NoStats,
    };
    let door = Door {
        path: "/v1/chat/completions",
        headers: &[],
        key: None,
        now_ms: clock.0.get(),
        random: 1,
    };
    prepare(&world, &mut req, &door).unwrap();
    run_request(t, s, clock, req)
}

#[test]
fn an_answer_off_the_schema_falls_back_to_one_that_follows_it() {
    let (t, clock, s) = setup();
    s.on(
        A,
        vec![Step::json(200, &completion("{\"rating\": \"4.5\"}"))],
    );
    s.on(B, vec![Step::json(200, &completion("{\"rating\": 4.5}"))]);
    let (body, meta) = complete(run_prepared(&t, &s, &clock, schema_req(false)));
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "{\"rating\": 4.5}"
    );
    assert_eq!(reasons(&meta), "a:invalid_output");
    assert_eq!(
        (s.hits(A), s.hits(B)),
        (1, 1),
        "no retry on the model that broke it"
    );
    // a's whole answer was billed by its provider: 10 prompt + 5 completion tokens.
    assert_eq!(
        meta.failed_prompts,
        vec![("a".to_string(), 10 * 1_000 + 5 * 2_000)]
    );
}

#[test]
fn when_every_answer_is_off_the_schema_the_error_names_the_first_violation() {
    let (t, clock, s) = setup();
    for up in [A, B, C] {
        s.on(
            up,
            vec![Step::json(200, &completion("{\"rating\": \"high\"}"))],
        );
    }
    let (e, _) = failed(run_prepared(&t, &s, &clock, schema_req(false)));
    assert_eq!((e.status, e.code.as_str()), (502, "invalid_output"));
    assert!(
        e.message
            .contains("/rating: a string is not of type number"),
        "{}",
        e.message
    );
}

#[test]
fn a_stream_off_the_schema_ends_with_an_in_band_error_and_one_on_it_ends_normally() {
    let (t, clock, s) = setup();
    s.on(A, vec![full_stream(&["{\"rating\":", " \"4.5\"}"], 0)]);
    let (text, meta) = drain(run_prepared(&t, &s, &clock, schema_req(true)));
    assert!(!text.contains("[DONE]"), "{text}");
    assert_eq!(last_event(&text)["error"]["code"], "invalid_output");
    assert!(meta.error.unwrap().starts_with("invalid_output"));

    let (t, clock, s) = setup();
    s.on(A, vec![full_stream(&["{\"rating\":", " 4.5}"], 0)]);
    let (text, meta) = drain(run_prepared(&t, &s, &clock, schema_req(true)));
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(meta.error.is_none());
}

#[test]
fn a_route_can_opt_out_and_loose_schemas_are_not_checked() {
    let (_, clock, s) = setup();
    let t = table(json!({"validate_output": false}));
    s.on(A, vec![Step::json(200, &completion("not json at all"))]);
    let (body, _) = complete(run_prepared(&t, &s, &clock, schema_req(false)));
    assert_eq!(body["choices"][0]["message"]["content"], "not json at all");

    let (t, clock, s) = setup();
    let mut loose = schema_req(false);
    loose["response_format"]["json_schema"]["strict"] = json!(false);
    s.on(A, vec![Step::json(200, &completion("not json at all"))]);
    let (body, _) = complete(run_prepared(&t, &s, &clock, loose));
    assert_eq!(body["choices"][0]["message"]["content"], "not json at all");
}
