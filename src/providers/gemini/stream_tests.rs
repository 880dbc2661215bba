//! Tests of the stream translator against the recorded Gemini stream.

use super::stream::StreamTranslator;
use crate::providers::StreamEvent;
use crate::resilience::ErrorClass;
use crate::usage::Usage;
use serde_json::{json, Value};

const STREAM: &str = include_str!("testdata/stream_generate_content.sse");

fn run_split(input: &[u8], splits: &[usize], wants_usage: bool) -> Vec<StreamEvent> {
    let mut t = StreamTranslator::new(wants_usage);
    let mut out = Vec::new();
    let mut from = 0;
    for &at in splits.iter().chain([input.len()].iter()) {
        t.feed(input.get(from..at).unwrap(), &mut out);
        from = at;
    }
    t.end(&mut out);
    out
}

fn run(input: &[u8], wants_usage: bool) -> Vec<StreamEvent> {
    run_split(input, &[], wants_usage)
}

/// The JSON of every chunk, in order.
fn chunks(ev: &[StreamEvent]) -> Vec<Value> {
    ev.iter()
        .filter_map(|e| match e {
            StreamEvent::Chunk { bytes, .. } => {
                let s = std::str::from_utf8(bytes).unwrap();
                let payload = s
                    .strip_prefix("data: ")
                    .unwrap()
                    .strip_suffix("\n\n")
                    .unwrap();
                Some(serde_json::from_str(payload).unwrap())
            }
            _ => None,
        })
        .collect()
}

fn text_of(ev: &[StreamEvent]) -> String {
    chunks(ev)
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn recorded_stream() {
    assert!(
        STREAM.contains("\r\n\r\n"),
        "the fixture must keep its CRLF line endings"
    );
    let ev = run(STREAM.as_bytes(), true);
    assert_eq!(text_of(&ev), "The capital of Wyoming is **Cheyenne**.\n");
    let c = chunks(&ev);
    assert_eq!(
        c[0],
        json!({"id": "chatcmpl-gemini", "object": "chat.completion.chunk", "created": 0,
               "model": "gemini-2.0-flash",
               "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]})
    );
    assert!(matches!(ev[0], StreamEvent::Chunk { content: false, .. }));
    assert!(matches!(ev[1], StreamEvent::Chunk { content: true, .. }));
    let n = ev.len();
    assert!(matches!(
        ev[n - 4],
        StreamEvent::Chunk { content: true, .. }
    ));
    assert_eq!(c[c.len() - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(ev[n - 3], StreamEvent::Finish);
    assert!(matches!(
        ev[n - 2],
        StreamEvent::Chunk { content: false, .. }
    ));
    assert_eq!(
        c[c.len() - 1],
        json!({"id": "chatcmpl-gemini", "object": "chat.completion.chunk", "created": 0,
               "model": "gemini-2.0-flash", "choices": [],
               "usage": {"prompt_tokens": 7, "completion_tokens": 10, "total_tokens": 17}})
    );
    assert_eq!(
        ev[n - 1],
        StreamEvent::Usage(Usage {
            prompt_tokens: 7,
            completion_tokens: 10,
            cached_tokens: None,
            cache_write_tokens: None,
            reasoning_tokens: None
        })
    );
    // Without include_usage the usage chunk is hidden, the Usage event is not.
    let hidden = run(STREAM.as_bytes(), false);
    assert_eq!(hidden.len(), n - 1);
    assert!(matches!(hidden.last(), Some(StreamEvent::Usage(_))));
    assert!(!hidden
        .iter()
        .any(|e| matches!(e, StreamEvent::Error(_) | StreamEvent::Done)));
}

#[test]
fn same_result_at_every_split() {
    let bytes = STREAM.as_bytes();
    let whole = run(bytes, true);
    for i in 0..=bytes.len() {
        assert_eq!(run_split(bytes, &[i], true), whole, "split at {i}");
    }
    for i in (0..bytes.len()).step_by(11) {
        for j in (i..bytes.len()).step_by(23) {
            assert_eq!(run_split(bytes, &[i, j], true), whole, "split at {i},{j}");
        }
    }
    let one_by_one: Vec<usize> = (1..bytes.len()).collect();
    assert_eq!(run_split(bytes, &one_by_one, true), whole);
}

#[test]
fn cut_stream() {
    let bytes = STREAM.as_bytes();
    let last = STREAM.rfind("data: ").unwrap();
    let ev = run(bytes.get(..last).unwrap(), false);
    assert!(matches!(ev.last(), Some(StreamEvent::Error(e)) if e.class == ErrorClass::StreamCut));
    assert!(!ev.contains(&StreamEvent::Finish));
    let ev = run(bytes.get(..last + 20).unwrap(), false);
    assert!(
        matches!(ev.last(), Some(StreamEvent::Error(e)) if e.class == ErrorClass::StreamCut && e.message.contains("middle"))
    );
    assert_eq!(run(b"", false).len(), 1);
}

#[test]
fn tool_calls_stream() {
    let body = concat!(
        "data: {\"responseId\":\"r1\",\"modelVersion\":\"gemini-3-flash\",\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Let me check.\"},",
        "{\"functionCall\":{\"name\":\"a\",\"args\":{\"x\":1}},\"thoughtSignature\":\"sig\"},{\"functionCall\":{\"name\":\"b\",\"args\":{}}}]},",
        "\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":4,\"thoughtsTokenCount\":5}}\r\n\r\n"
    );
    let ev = run(body.as_bytes(), false);
    let c = chunks(&ev);
    assert_eq!(c.len(), 5);
    assert_eq!(
        c[1]["choices"][0]["delta"],
        json!({"content": "Let me check."})
    );
    assert_eq!(
        c[2]["choices"][0]["delta"],
        json!({"tool_calls": [{"index": 0, "id": "call_r1_0", "type": "function",
               "function": {"name": "a", "arguments": "{\"x\":1}"},
               "extra_content": {"google": {"thought_signature": "sig"}}}]})
    );
    assert_eq!(c[3]["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
    assert_eq!(
        c[3]["choices"][0]["delta"]["tool_calls"][0]["id"],
        "call_r1_1"
    );
    assert_eq!(c[4]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(c[4]["id"], "r1");
    assert!(matches!(ev.last(), Some(StreamEvent::Usage(u)) if u.completion_tokens == 9));
}

#[test]
fn refusals_and_errors() {
    let class = |body: &str| match run(body.as_bytes(), false).last() {
        Some(StreamEvent::Error(e)) => Some(e.class),
        _ => None,
    };
    assert_eq!(
        class("data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":{\"promptTokenCount\":7}}\r\n\r\n"),
        Some(ErrorClass::ContentPolicy)
    );
    assert_eq!(
        class("data: {\"candidates\":[{\"finishReason\":\"SAFETY\"}]}\r\n\r\n"),
        Some(ErrorClass::ContentPolicy)
    );
    assert_eq!(
        class("data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n"),
        Some(ErrorClass::Overloaded)
    );
    assert_eq!(
        class("data: {oops\r\n\r\n"),
        Some(ErrorClass::MalformedResponse)
    );
    // Text, then a filter stop: a committed answer ending in content_filter.
    let ev = run(
        b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}]}\n\ndata: {\"candidates\":[{\"finishReason\":\"SAFETY\"}]}\n\n",
        false,
    );
    assert_eq!(
        chunks(&ev)[2]["choices"][0]["finish_reason"],
        "content_filter"
    );
    assert_eq!(ev.last(), Some(&StreamEvent::Finish));
    // After an error nothing more comes.
    let mut t = StreamTranslator::new(false);
    let mut out = Vec::new();
    t.feed(b"data: {bad\n\n", &mut out);
    t.feed(STREAM.as_bytes(), &mut out);
    t.end(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(t.model(), None);
    let mut t = StreamTranslator::new(false);
    t.feed(STREAM.as_bytes(), &mut Vec::new());
    assert_eq!(t.model(), Some("gemini-2.0-flash"));
}

#[test]
fn overlong_line_after_the_finish_in_the_same_feed() {
    let mut input = STREAM.as_bytes().to_vec();
    input.extend_from_slice(b"data: ");
    input.resize(input.len() + (8 << 20), b'x');
    let ev = run(&input, false);
    assert_eq!(
        ev,
        run(STREAM.as_bytes(), false),
        "a finished answer stays complete"
    );
    // Cut before the finish: the text so far, then the error.
    let cut = STREAM.find("\"finishReason\"").unwrap();
    let mut input = STREAM.as_bytes()[..cut].to_vec();
    input.resize(cut + (8 << 20), b'x');
    let ev = run(&input, false);
    assert_eq!(text_of(&ev), "The capital of Wyoming");
    assert!(
        matches!(ev.last(), Some(StreamEvent::Error(e)) if e.class == ErrorClass::MalformedResponse)
    );
}

#[test]
fn candidates_are_bounded() {
    let event = |n: usize, finish: bool| {
        let c = if finish {
            json!({"content": {"parts": [{"text": "x"}]}, "finishReason": "STOP"})
        } else {
            json!({})
        };
        format!("data: {}\n\n", json!({ "candidates": vec![c; n] }))
    };
    // Up to the limit: one role chunk, text and finish per candidate, then `Finish`.
    let ev = run(event(1024, true).as_bytes(), false);
    assert_eq!(ev.len(), 3 * 1024 + 1);
    assert_eq!(ev.last(), Some(&StreamEvent::Finish));
    // Hundreds of thousands fit in one 8 MiB line (each candidate's index is its position;
    // finding it used to scan every earlier one): a clean error past the limit.
    let ev = run(event(100_000, false).as_bytes(), false);
    assert_eq!(ev.len(), 1024 + 1);
    assert!(
        matches!(ev.last(), Some(StreamEvent::Error(e)) if e.class == ErrorClass::MalformedResponse
            && e.message == "upstream sent more than 1024 candidates"),
        "{:?}",
        ev.last()
    );
}
