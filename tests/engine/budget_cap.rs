//! An answer cut at the output limit the gateway imposed (a budgeted key's reservation) ends
//! with an in-band `budget_exceeded` error, never as a complete answer; one that stops short
//! of it, or whose limit the client set, ends normally.

use super::*;

/// A stream of `words` and its usage (`completion` tokens), with the gateway's `cap` set.
fn capped(words: &[&str], completion: u64, cap: Option<u64>) -> (String, Meta) {
    let (t, clock, s) = setup();
    let mut chunks = vec![(0, role_chunk())];
    chunks.extend(words.iter().map(|w| (0, chunk(w))));
    chunks.push((0, finish_chunk()));
    chunks.push((0, usage_chunk(10, completion)));
    chunks.push((0, DONE.to_string()));
    s.on(A, vec![Step::sse(chunks, End::Close)]);
    let mut req = parse_chat_request(req(true).to_string().as_bytes()).unwrap();
    req.output_cap = cap;
    drain(run_request(&t, &s, &clock, req))
}

#[test]
fn a_stream_that_reaches_the_imposed_cap_ends_with_budget_exceeded() {
    let (text, meta) = capped(&["one", " two", " three"], 3, Some(3));
    assert!(
        text.contains("three"),
        "the content before the cut is delivered"
    );
    assert!(!text.contains("[DONE]"), "never the normal end: {text}");
    let ev = last_event(&text);
    assert_eq!(ev["error"]["code"], "budget_exceeded");
    assert!(ev["error"]["message"]
        .as_str()
        .unwrap()
        .contains("3 output tokens reserved"));
    assert!(meta.error.unwrap().starts_with("budget_exceeded"));
    assert_eq!(meta.usage.map(|u| u.completion_tokens), Some(3));
}

#[test]
fn an_answer_short_of_the_cap_or_without_one_ends_normally() {
    let (text, meta) = capped(&["one", " two"], 2, Some(3));
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(meta.error.is_none());
    let (text, meta) = capped(&["one", " two", " three"], 3, None);
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(meta.error.is_none());
}
