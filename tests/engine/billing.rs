//! The prompts of failed attempts that providers bill (`bill_failed_prompts`): an attempt that
//! reached the model and then failed costs its prompt; an HTTP error costs nothing.

use super::*;

/// a: 1 USD / Mtok in, 2 out. "hi" is estimated at 1 prompt token: 1,000 nano-USD.
const A_PROMPT_NANOS: u64 = 1_000;
/// b's answer of `full_stream(["ok"])`: 10 prompt + 1 completion tokens.
const B_ANSWER_NANOS: u64 = 10 * 1_000 + 2_000;

#[test]
fn a_stream_that_timed_out_before_its_first_token_bills_its_prompt() {
    let (t, clock, s) = setup();
    // a: headers, then silence past the first-token timeout; twice (its two attempts are
    // one: a timeout is never retried on the same deployment).
    s.on(A, vec![Step::sse(vec![(0, role_chunk())], End::Hang)]);
    s.on(B, vec![full_stream(&["ok"], 0)]);
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert_eq!(reasons(&meta), "a:timeout_first_token");
    assert_eq!(meta.failed_prompts, vec![("a".to_string(), A_PROMPT_NANOS)]);
    assert_eq!(meta.cost_nanos, Some(B_ANSWER_NANOS + A_PROMPT_NANOS));
}

#[test]
fn an_http_error_costs_nothing_and_the_option_turns_billing_off() {
    let (t, clock, s) = setup();
    s.on(
        A,
        vec![Step::json(500, &openai_error("boom", "server_error", "x"))],
    );
    s.on(B, vec![full_stream(&["ok"], 0)]);
    let (_, meta) = drain(run(&t, &s, &clock, req(true)));
    assert_eq!(meta.failed_prompts_nanos(), 0);
    assert_eq!(meta.cost_nanos, Some(B_ANSWER_NANOS));

    let off = {
        let mut v: Value = serde_json::from_str(&table_json(json!({}))).unwrap();
        v["providers"]["pa"]["bill_failed_prompts"] = json!(false);
        parse_table(&v.to_string()).unwrap()
    };
    let (_, clock, s) = setup();
    s.on(A, vec![Step::sse(vec![(0, role_chunk())], End::Hang)]);
    s.on(B, vec![full_stream(&["ok"], 0)]);
    let (_, meta) = drain(run(&off, &s, &clock, req(true)));
    assert_eq!(meta.failed_prompts_nanos(), 0);
    assert_eq!(meta.cost_nanos, Some(B_ANSWER_NANOS));
}

#[test]
fn a_request_that_failed_everywhere_still_costs_the_prompts_it_was_billed() {
    let (t, clock, s) = setup();
    for up in [A, B, C] {
        s.on(up, vec![Step::json(200, "{not json")]);
    }
    let (_, meta) = failed(run(&t, &s, &clock, req(false)));
    // Two attempts on each of a, b, c (a malformed answer is retried), each a prompt of one
    // token at 1 USD / Mtok.
    assert_eq!(meta.attempts.len(), 6);
    assert_eq!(meta.failed_prompts_nanos(), 6 * A_PROMPT_NANOS);
    assert_eq!(meta.cost_nanos, Some(6 * A_PROMPT_NANOS));
}
