//! Minimal reproducers of the bugs the fuzzers found. All are fixed and run as regression
//! tests; a newly found bug starts here as an `#[ignore]`d `bug_*` test (run them with
//! `cargo test --test fuzz -- --ignored`) while the fuzzers steer around it unless
//! `FUZZ_KNOWN_BUGS=1`.

use crate::sse::parse_chunks;
use crate::translators::{single_event, translate};
use edge_router::config::{parse_table, EMBEDDED_DEFAULT};
use edge_router::providers::{classify_error, parse_response, Format, StreamEvent, Translator};
use edge_router::resilience::ErrorClass;
use serde_json::{json, Value};

#[test]
// Found by this harness, fixed; kept as a regression test.
fn bug_sse_line_limit_depends_on_how_bytes_are_split() {
    let input = b"data: 0123456789\n\n";
    let (whole, whole_failed, _) = parse_chunks(8, &[input]);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let (split, split_failed, _) = parse_chunks(8, &bytes);
    assert_eq!(
        (whole_failed, whole),
        (split_failed, split),
        "the same bytes must give the same result however they are split"
    );
}

#[test]
// Found by this harness, fixed; kept as a regression test.
fn bug_gemini_retry_delay_overflow_panics() {
    // `secs.saturating_mul(1000) + nanos.div_ceil(1_000_000)`: the `+` is not saturating.
    let err =
        br#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"slow down","details":[
        {"@type":"type.googleapis.com/google.rpc.RetryInfo",
         "retryDelay":{"seconds":"18446744073709551615","nanos":1}}]}}"#;
    let e = classify_error(Format::Gemini, 429, err, None);
    assert_eq!(e.retry_after_ms, Some(u64::MAX));
    // The same object inside a 200 answer or a stream event reaches the same code.
    assert!(parse_response(Format::Gemini, err.to_vec()).is_err());
    let mut event = b"data: ".to_vec();
    event.extend(err.iter().filter(|&&b| b != b'\n'));
    event.extend_from_slice(b"\n\n");
    let out = translate(Format::Gemini, false, false, &[&event]);
    assert!(matches!(&out[..], [StreamEvent::Error(_)]));
}

#[test]
// Found by this harness, fixed; kept as a regression test.
fn bug_multiline_data_breaks_forwarded_framing() {
    // Legal SSE: one event, data = "{...}\n}" (valid JSON). The OpenAI translator forwards it
    // through `encode_data`, which requires a payload without newlines.
    let input = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]\ndata: }\n\n";
    for out in [
        translate(Format::OpenAi, false, false, &[input]),
        // Anthropic native mode writes `data: {data}` the same way.
        translate(
            Format::Anthropic,
            false,
            true,
            &[b"data: {\"type\":\"ping\"\ndata: }\n\n"],
        ),
    ] {
        for e in &out {
            if let StreamEvent::Chunk { bytes, .. } | StreamEvent::Native(bytes) = e {
                let ev = single_event(bytes).expect("one SSE event");
                assert!(
                    serde_json::from_str::<Value>(&ev.data).is_ok(),
                    "client sees truncated data {:?} from {:?}",
                    ev.data,
                    String::from_utf8_lossy(bytes)
                );
            }
        }
    }
}

#[test]
// Found by this harness, fixed; kept as a regression test.
fn bug_anthropic_native_event_type_injects_sse() {
    let data = json!({"type": "x\ndata: {\"injected\":true}\n\nevent: y"});
    let input = format!("data: {data}\n\n");
    let out = translate(Format::Anthropic, false, true, &[input.as_bytes()]);
    let StreamEvent::Native(bytes) = &out[0] else {
        panic!("expected a native event first: {out:?}");
    };
    assert!(
        single_event(bytes).is_some(),
        "one upstream event became several: {:?}",
        String::from_utf8_lossy(bytes)
    );
}

#[test]
// Found by this harness, fixed; kept as a regression test.
fn bug_overlong_line_drops_completed_events() {
    let stream: &[u8] =
        include_bytes!("../../src/providers/anthropic/testdata/messages_stream_text.sse");
    let long = overlong_line(1 << 20);
    // Split: the complete answer, Done, then an Error — "after Done nothing more" was broken.
    let split = translate(Format::Anthropic, false, false, &[stream, &long]);
    let done = split
        .iter()
        .position(|e| *e == StreamEvent::Done)
        .expect("Done");
    assert_eq!(
        done + 1,
        split.len(),
        "events after Done: {:?}",
        &split[done..]
    );
    // Whole: the parser had already parsed every event, the translator threw them away and
    // reported only the error, so whole and split disagreed.
    let mut whole = stream.to_vec();
    whole.extend_from_slice(&long);
    assert_eq!(translate(Format::Anthropic, false, false, &[&whole]), split);
    assert_eq!(split, translate(Format::Anthropic, false, false, &[stream]));

    // Gemini (8 MiB lines): a finished answer and an over-long line in one feed succeed.
    let gemini: &[u8] =
        include_bytes!("../../src/providers/gemini/testdata/stream_generate_content.sse");
    let mut whole = gemini.to_vec();
    whole.extend_from_slice(&overlong_line(8 << 20));
    let out = translate(Format::Gemini, false, false, &[&whole]);
    assert_eq!(out, translate(Format::Gemini, false, false, &[gemini]));
    assert!(out.contains(&StreamEvent::Finish));

    // Unfinished streams: every event before the line, in order, then the error.
    let openai: &[u8] = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";
    let cut = stream
        .windows(21)
        .position(|w| w == b"event: message_delta\n")
        .expect("message_delta");
    for (format, head, max) in [
        (Format::OpenAi, openai, 1 << 20),
        (Format::Anthropic, &stream[..cut], 1 << 20),
        (Format::Gemini, &gemini[..gemini.len() / 2], 8 << 20),
    ] {
        let mut whole = head.to_vec();
        whole.extend_from_slice(&overlong_line(max));
        whole.extend_from_slice(b"\n\ndata: {}\n\n");
        let out = translate(format, false, false, &[&whole]);
        let mut before = Vec::new();
        let mut t = Translator::new(format, false, false);
        t.feed(head, &mut before);
        assert!(!before.is_empty());
        assert_eq!(out[..out.len() - 1], before[..], "{format:?}");
        assert!(
            matches!(out.last(), Some(StreamEvent::Error(e)) if e.class == ErrorClass::MalformedResponse
                && e.message.contains("SSE line over")),
            "{format:?}: {:?}",
            out.last()
        );
    }
}

/// `data: xxx…`, one byte over `max`, with no line end yet.
fn overlong_line(max: usize) -> Vec<u8> {
    let mut long = b"data: ".to_vec();
    long.extend(std::iter::repeat_n(b'x', max - 5));
    long
}

#[test]
// Found by this harness, fixed; kept as a regression test.
fn bug_table_accepts_arrays_for_objects() {
    let positional = r#"[1, {}, {"m": {"kind": "mock"}},
        {"d": {"provider": "m", "model": "x", "context_window": 1}}, {"r": {"chain": ["d"]}}, null]"#;
    assert!(
        parse_table(positional).is_err(),
        "a table that is an array was accepted"
    );
    // Nested too: `"retry": [7, 100, 1000, 5000]` silently means max_attempts 7, etc.
    let mut t: Value = serde_json::from_str(EMBEDDED_DEFAULT).expect("JSON");
    t["routes"]["mock-small"]["retry"] = json!([7, 100, 1000, 5000]);
    assert!(
        parse_table(&t.to_string()).is_err(),
        "`retry` given as an array was accepted"
    );
}

#[test]
// Found by this harness (FUZZ_ITERS=300000 FUZZ_BASE=0x5EED2), fixed; kept as a regression test.
fn bug_table_accepts_trailing_characters() {
    // `parse_table` deserialized the first JSON value and never checked the rest.
    for tail in ["ault-test\"}]}", "{}", "x", "\u{0}"] {
        let table = format!("{EMBEDDED_DEFAULT}{tail}");
        let errs = parse_table(&table).expect_err("trailing characters accepted");
        assert!(
            errs[0].starts_with("invalid routing table JSON: trailing characters"),
            "{errs:?}"
        );
    }
    // Whitespace after the table is fine.
    assert!(parse_table(&format!("{EMBEDDED_DEFAULT} \n\t\r\n")).is_ok());
}
