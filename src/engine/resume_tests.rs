//! Tests of `engine::resume`: what the client has, and the resume filters.
use super::*;
use serde_json::json;

#[test]
fn the_fast_reading_of_a_chunk_agrees_with_the_json_tree() {
    let chunks: &[&str] = &[
        r#"data: {"id":"c1","model":"m","created":7,"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
        r#"data: {"id":"c1","choices":[{"index":0,"delta":{"content":"h\u00e9 \"q\""}}]}"#,
        r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}"#,
        r#"data: {"choices":[{"index":0,"delta":{"tool_calls":null,"content":null}}]}"#,
        r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        r#"data: {"choices":[{"index":0,"delta":{"content":["part"]}}]}"#,
        r#"data: {"id":5,"model":null,"choices":null}"#,
        r#"data: {"choices":[{"index":1,"delta":{"content":"b"}},{"index":0,"delta":"odd"}]}"#,
        r#"data: {"choices":[],"usage":{"prompt_tokens":1}}"#,
        r#"data: {"id":"x","id":"y","choices":[{"delta":{"content":"dup"}}]}"#,
        "data: not json",
    ];
    let mut fast = Delivered::default();
    let mut tree = Delivered::default();
    for c in chunks {
        fast.observe(format!("{c}\n\n").as_bytes());
        if let Ok(v) =
            serde_json::from_str::<Value>(chunk_data(format!("{c}\n\n").as_bytes()).unwrap())
        {
            tree.record(facts_of_value(&v));
        }
        assert_eq!(
            (
                &fast.text,
                fast.tool_partial,
                &fast.id,
                &fast.model,
                &fast.created
            ),
            (
                &tree.text,
                tree.tool_partial,
                &tree.id,
                &tree.model,
                &tree.created
            ),
            "after {c}"
        );
    }
    assert_eq!(fast.text, "hé \"q\"bdup");
}

/// Every field `Delivered` keeps, to compare two of them.
fn kept(d: &Delivered) -> String {
    format!("{d:?}")
}

#[test]
fn the_translators_facts_record_what_observing_the_forwarded_chunk_records() {
    use crate::providers::{openai::StreamTranslator, StreamEvent, Translator};
    // Chunks an OpenAI-compatible upstream may send, odd ones included; each stream is fed
    // whole to the translator, and its forwarded chunks are recorded both ways.
    let streams: &[&[&str]] = &[
        &[
            r#"{"id":"c1","object":"chat.completion.chunk","model":"m","created":7,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"id":"c1","model":"m","created":7,"choices":[{"index":0,"delta":{"content":"h\u00e9 \"q\""},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}"#,
            r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
        ],
        // No id until the second chunk; then tool calls, reasoning and refusals.
        &[
            r#"{"model":"first","choices":[{"index":0,"delta":{"content":"a"}}]}"#,
            r#"{"id":"late","model":"second","created":9,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"f"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"reasoning_content":"think","content":null}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"refusal":"no"},"finish_reason":"tool_calls"}]}"#,
        ],
        // Odd values: a numeric id, content that is not a string, another choice first, a
        // finish reason that is not a string, a repeated id.
        &[
            r#"{"id":5,"model":null,"choices":[{"index":0,"delta":{"content":["part"]}}]}"#,
            r#"{"id":"x","id":"y","choices":[{"index":0,"delta":{"content":"dup"}}]}"#,
            r#"{"choices":[{"index":1,"delta":{"content":"b"}},{"index":0,"delta":{"content":"c"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":7},{"index":1,"finish_reason":"stop"}]}"#,
        ],
    ];
    for stream in streams {
        let mut t = Translator::OpenAi(StreamTranslator::new(true));
        let mut events = Vec::new();
        for data in *stream {
            t.feed(format!("data: {data}\n\n").as_bytes(), &mut events);
        }
        let (mut by_facts, mut by_bytes) = (Delivered::default(), Delivered::default());
        let mut with_facts = 0;
        for ev in events {
            let StreamEvent::Chunk { bytes, facts, .. } = ev else {
                continue;
            };
            by_bytes.observe(&bytes);
            match facts {
                Some(f) => {
                    with_facts += 1;
                    by_facts.record(*f);
                }
                None => by_facts.observe(&bytes),
            }
            assert_eq!(
                kept(&by_facts),
                kept(&by_bytes),
                "after {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        assert!(
            with_facts >= stream.len() - 1,
            "the translator read its chunks' facts"
        );
    }
}

fn chunk(id: &str, content: Option<&str>, finish: Option<&str>) -> Vec<u8> {
    let delta = match content {
        Some(c) => json!({"content": c}),
        None => json!({"role": "assistant", "content": ""}),
    };
    encode_data(&json!({"id": id, "model": "m2", "created": 2, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).to_string())
}

fn content_of(b: &[u8]) -> String {
    parse_chunk(b)
        .and_then(|v| {
            first_choice(&v).and_then(|c| c["delta"]["content"].as_str().map(str::to_string))
        })
        .unwrap_or_default()
}

fn delivered(text: &str) -> Delivered {
    let mut d = Delivered::default();
    d.observe(&encode_data(&json!({"id": "orig", "model": "m1", "created": 1, "choices": [{"index": 0, "delta": {"content": text}}]}).to_string()));
    d
}

#[test]
fn replay_swallows_the_delivered_prefix_then_streams_the_rest() {
    let d = delivered("Hello wor");
    let mut f = Filter::replay(&d, Usage::default());
    let mut out = String::new();
    for piece in ["Hel", "lo", " world", "!"] {
        if let Some(b) = f.apply(chunk("new", Some(piece), None), &d).unwrap() {
            let v = parse_chunk(&b).unwrap();
            assert_eq!(
                (v["id"].as_str(), v["model"].as_str()),
                (Some("orig"), Some("m1"))
            );
            out.push_str(&content_of(&b));
        }
    }
    assert_eq!(out, "ld!");
    assert!(f.caught_up());
}

#[test]
fn divergent_or_short_replay_is_an_error() {
    let d = delivered("Hello world");
    let mut f = Filter::replay(&d, Usage::default());
    assert!(f
        .apply(chunk("n", Some("Hello"), None), &d)
        .unwrap()
        .is_none());
    assert!(f.apply(chunk("n", Some(" there"), None), &d).is_err());
    let mut f = Filter::replay(&d, Usage::default());
    assert!(f
        .apply(chunk("n", Some("Hello"), None), &d)
        .unwrap()
        .is_none());
    assert!(f.apply(chunk("n", Some(""), Some("stop")), &d).is_err());
}

#[test]
fn prefill_drops_role_chunk_and_trimmed_whitespace() {
    let d = delivered("Hello ");
    let mut f = Filter::prefill(&d, Usage::default());
    assert!(f.apply(chunk("n", None, None), &d).unwrap().is_none());
    let b = f
        .apply(chunk("n", Some(" world"), None), &d)
        .unwrap()
        .unwrap();
    assert_eq!(content_of(&b), "world");
    let b = f
        .apply(chunk("n", Some(" again"), None), &d)
        .unwrap()
        .unwrap();
    assert_eq!(
        content_of(&b),
        " again",
        "only the first continuation piece is trimmed"
    );
    let fin = f
        .apply(chunk("n", Some(""), Some("stop")), &d)
        .unwrap()
        .unwrap();
    assert_eq!(
        parse_chunk(&fin).unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
}

#[test]
fn usage_after_a_resume_includes_earlier_attempts() {
    let d = delivered("x");
    let mut f = Filter::prefill(
        &d,
        Usage {
            prompt_tokens: 10,
            completion_tokens: 3,
            ..Usage::default()
        },
    );
    let u = encode_data(&json!({"id": "n", "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}}).to_string());
    let v = parse_chunk(&f.apply(u, &d).unwrap().unwrap()).unwrap();
    assert_eq!(
        (
            v["usage"]["prompt_tokens"].as_u64(),
            v["usage"]["completion_tokens"].as_u64(),
            v["usage"]["total_tokens"].as_u64()
        ),
        (Some(22), Some(8), Some(30))
    );
    assert_eq!(v["id"], "orig");
}

#[test]
fn delivered_tracks_text_and_partial_tool_calls() {
    let mut d = delivered("Hi");
    d.observe(&encode_data(
        &json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c"}]}}]})
            .to_string(),
    ));
    assert!(d.tool_partial);
    d.observe(&encode_data(
        &json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}).to_string(),
    ));
    assert!(!d.tool_partial);
    assert_eq!(d.text, "Hi");
}

#[test]
fn delivered_text_is_kept_up_to_its_bound_then_let_go() {
    let piece = "é".repeat(1 << 10); // 2 KiB, 1,024 characters
    let mut d = Delivered::default();
    let kept = MAX_DELIVERED_BYTES / piece.len();
    for _ in 0..kept {
        d.push_text(&piece);
    }
    assert_eq!(
        d.text().len(),
        MAX_DELIVERED_BYTES,
        "exactly at the bound: kept"
    );
    assert!(d.resumable());
    d.observe(&encode_data(
        &json!({"choices": [{"index": 0, "delta": {"content": "x"}}]}).to_string(),
    ));
    assert!(d.overflowed && !d.resumable());
    assert_eq!(d.text(), "", "the text is let go, not kept in part");
    assert_eq!(d.text.capacity(), 0, "and its memory with it");
    d.push_text(&piece);
    assert_eq!(d.text(), "");
    assert_eq!(
        d.chars,
        (kept + 1) * 1024 + 1,
        "every character still counts"
    );
}
