//! Tests of the Anthropic stream translator, on the SDK-recorded fixtures in `testdata/`.

use super::*;
use crate::usage::Usage;

const TEXT: &str = include_str!("testdata/messages_stream_text.sse");
const TOOL: &str = include_str!("testdata/messages_stream_tool_use.sse");
const ERROR: &str = include_str!("testdata/messages_stream_error_overloaded.sse");

fn run_parts(parts: &[&[u8]], wants_usage: bool, end: bool) -> Vec<StreamEvent> {
    let mut t = StreamTranslator::new(wants_usage);
    let mut out = Vec::new();
    for p in parts {
        t.feed(p, &mut out);
    }
    if end {
        t.end(&mut out);
    }
    out
}

fn run(input: &str, wants_usage: bool) -> Vec<StreamEvent> {
    run_parts(&[input.as_bytes()], wants_usage, true)
}

/// What a client would assemble from the chunks.
#[derive(Debug, Default, PartialEq)]
struct Assembled {
    text: String,
    reasoning: String,
    /// (id, name, arguments) by tool index.
    tools: Vec<(String, String, String)>,
    finish: Vec<String>,
    usage_chunks: Vec<Value>,
    usage: Vec<Usage>,
    finishes: usize,
    done: bool,
    error: Option<UpstreamError>,
    native: Vec<String>,
}

fn assemble(events: &[StreamEvent]) -> Assembled {
    let mut a = Assembled::default();
    for (i, ev) in events.iter().enumerate() {
        assert!(a.error.is_none(), "event after an error: {ev:?}");
        assert!(!a.done, "event {i} after Done: {ev:?}");
        match ev {
            StreamEvent::Chunk { bytes, content, .. } => {
                let s = std::str::from_utf8(bytes).unwrap();
                let json = s
                    .strip_prefix("data: ")
                    .unwrap()
                    .strip_suffix("\n\n")
                    .unwrap();
                let v: Value = serde_json::from_str(json).unwrap();
                assert_eq!(v["object"], "chat.completion.chunk");
                assert_eq!(v["created"], 0);
                if v["choices"].as_array().unwrap().is_empty() {
                    assert!(!content);
                    a.usage_chunks.push(v["usage"].clone());
                    continue;
                }
                let c = &v["choices"][0];
                let d = &c["delta"];
                if let Some(t) = d["content"].as_str() {
                    a.text.push_str(t);
                }
                if let Some(t) = d["reasoning_content"].as_str() {
                    a.reasoning.push_str(t);
                }
                for call in d["tool_calls"].as_array().into_iter().flatten() {
                    let idx = call["index"].as_u64().unwrap() as usize;
                    if idx == a.tools.len() {
                        a.tools.push(Default::default());
                    }
                    let slot = &mut a.tools[idx];
                    if let Some(id) = call["id"].as_str() {
                        slot.0 = id.into();
                        slot.1 = call["function"]["name"].as_str().unwrap().into();
                    }
                    slot.2
                        .push_str(call["function"]["arguments"].as_str().unwrap());
                }
                if let Some(f) = c["finish_reason"].as_str() {
                    a.finish.push(f.into());
                }
                let has_content = d.get("role").is_none();
                assert_eq!(*content, has_content, "{s}");
            }
            StreamEvent::Finish => a.finishes += 1,
            StreamEvent::Usage(u) => a.usage.push(*u),
            StreamEvent::Native(bytes) => a.native.push(String::from_utf8(bytes.clone()).unwrap()),
            StreamEvent::Done => a.done = true,
            StreamEvent::Error(e) => a.error = Some(e.clone()),
        }
    }
    a
}

#[test]
fn text_fixture() {
    let ev = run(TEXT, false);
    assert!(matches!(&ev[0], StreamEvent::Chunk { content: false, .. }));
    let a = assemble(&ev);
    assert_eq!(a.text, "Hello there!");
    assert_eq!(a.finish, vec!["stop"]);
    assert_eq!(a.finishes, 1);
    assert!(a.usage_chunks.is_empty());
    assert_eq!(
        a.usage,
        vec![Usage {
            prompt_tokens: 11,
            completion_tokens: 6,
            cached_tokens: None,
            cache_write_tokens: None,
            reasoning_tokens: None
        }]
    );
    assert!(a.done && a.error.is_none());
    assert_eq!(ev.last(), Some(&StreamEvent::Done));
    // finish chunk, Finish, Usage, Done at the end, in that order.
    let n = ev.len();
    assert_eq!(
        &ev[n - 3..],
        &[
            StreamEvent::Finish,
            StreamEvent::Usage(a.usage[0]),
            StreamEvent::Done
        ]
    );
    let mut t = StreamTranslator::new(false);
    t.feed(TEXT.as_bytes(), &mut Vec::new());
    assert_eq!(t.model(), Some("claude-3-opus-latest"));
}

#[test]
fn tool_fixture() {
    let a = assemble(&run(TOOL, true));
    assert_eq!(a.text, "I'll check the current weather in Paris for you.");
    assert_eq!(
        a.tools,
        vec![(
            "toolu_01NRLabsLyVHZPKxbKvkfSMn".to_string(),
            "get_weather".to_string(),
            "{\"location\": \"Paris\"}".to_string()
        )]
    );
    assert_eq!(a.finish, vec!["tool_calls"]);
    let u = Usage {
        prompt_tokens: 377,
        completion_tokens: 65,
        cached_tokens: Some(0),
        cache_write_tokens: Some(0),
        reasoning_tokens: None,
    };
    assert_eq!(a.usage, vec![u]);
    assert_eq!(
        a.usage_chunks,
        vec![
            json!({"prompt_tokens":377,"completion_tokens":65,"total_tokens":442,
                    "prompt_tokens_details":{"cached_tokens":0}})
        ]
    );
    assert!(a.done);
}

#[test]
fn byte_by_byte_equals_whole() {
    for fixture in [TEXT, TOOL] {
        let whole = run(fixture, true);
        let bytes: Vec<&[u8]> = fixture.as_bytes().chunks(1).collect();
        assert_eq!(run_parts(&bytes, true, true), whole);
    }
}

#[test]
fn every_split_point_equals_whole() {
    for fixture in [TOOL, TEXT] {
        let whole = run(fixture, false);
        let b = fixture.as_bytes();
        for i in 0..=b.len() {
            assert_eq!(
                run_parts(&[&b[..i], &b[i..]], false, true),
                whole,
                "split at {i}"
            );
        }
    }
}

#[test]
fn crlf_line_endings() {
    for fixture in [TEXT, TOOL] {
        let crlf = fixture.replace('\n', "\r\n");
        assert_eq!(run(&crlf, true), run(fixture, true));
        let bytes: Vec<&[u8]> = crlf.as_bytes().chunks(1).collect();
        assert_eq!(run_parts(&bytes, true, true), run(fixture, true));
    }
}

#[test]
fn overloaded_error_mid_stream() {
    let cut = TEXT.find("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"!\"").unwrap();
    let spliced = format!("{}{}{}", &TEXT[..cut], ERROR, &TEXT[cut..]);
    let ev = run(&spliced, true);
    let a = assemble(&ev);
    assert_eq!(a.text, "Hello there");
    let e = a.error.unwrap();
    assert_eq!(e.class, ErrorClass::Overloaded);
    assert_eq!(e.message, "Overloaded");
    assert!(matches!(ev.last(), Some(StreamEvent::Error(_))));
    assert!(a.finish.is_empty() && a.usage.is_empty() && !a.done);
    // Split anywhere, the same.
    let b = spliced.as_bytes();
    for i in 0..=b.len() {
        assert_eq!(
            run_parts(&[&b[..i], &b[i..]], true, true),
            ev,
            "split at {i}"
        );
    }
    // The error event alone, with its `event:` name and spaced JSON.
    let ev = run(ERROR, false);
    assert!(matches!(&ev[..], [StreamEvent::Error(e)] if e.class == ErrorClass::Overloaded));
}

#[test]
fn other_error_types() {
    let ev = |t: &str| {
        let s = format!("event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"{t}\",\"message\":\"m\"}}}}\n\n");
        match run(&s, false).as_slice() {
            [StreamEvent::Error(e)] => e.class,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(ev("rate_limit_error"), ErrorClass::RateLimited);
    assert_eq!(ev("api_error"), ErrorClass::ServerError);
    assert_eq!(ev("invalid_request_error"), ErrorClass::InvalidRequest);
}

#[test]
fn cut_streams() {
    let before_delta = TEXT.find("event: message_delta").unwrap();
    let ev = run(&TEXT[..before_delta], false);
    let e = assemble(&ev).error.unwrap();
    assert_eq!(e.class, ErrorClass::StreamCut);
    assert_eq!(
        e.message,
        "upstream closed the stream before the answer finished"
    );
    let ev = run(&TEXT[..before_delta + 30], false);
    let e = assemble(&ev).error.unwrap();
    assert_eq!(e.class, ErrorClass::StreamCut);
    assert!(e.message.contains("in the middle of an event"));
    // Finished but no message_stop: complete, not cut.
    let before_stop = TEXT.find("event: message_stop").unwrap();
    let a = assemble(&run(&TEXT[..before_stop], false));
    assert!(a.error.is_none() && !a.done && a.finishes == 1);
    // Nothing at all.
    assert!(
        matches!(&run("", false)[..], [StreamEvent::Error(e)] if e.class == ErrorClass::StreamCut)
    );
}

#[test]
fn malformed_data() {
    let ev = run("event: message_start\ndata: {not json\n\n", false);
    assert!(matches!(&ev[..], [StreamEvent::Error(e)] if e.class == ErrorClass::MalformedResponse));
    let long = format!("data: {}", "x".repeat(MAX_LINE + 1));
    let ev = run_parts(&[long.as_bytes(), b"\n\n", TEXT.as_bytes()], false, true);
    assert!(matches!(&ev[..], [StreamEvent::Error(e)] if e.class == ErrorClass::MalformedResponse));
    // Events completed earlier in the same feed come first; a finished answer stays complete.
    let complete = run(TEXT, false);
    assert_eq!(run(&format!("{TEXT}{long}"), false), complete);
    let cut = TEXT.find("event: message_delta").unwrap();
    let ev = run(&format!("{}{long}", &TEXT[..cut]), false);
    let before = run_parts(&[&TEXT.as_bytes()[..cut]], false, false);
    assert_eq!(ev[..ev.len() - 1], before[..]);
    assert!(
        matches!(ev.last(), Some(StreamEvent::Error(e)) if e.class == ErrorClass::MalformedResponse)
    );
    let ev = run("data: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n", false);
    assert!(matches!(&ev[..], [StreamEvent::Error(e)] if e.class == ErrorClass::MalformedResponse));
}

#[test]
fn thinking_and_argumentless_tools() {
    let s = [
        r#"{"type":"message_start","message":{"id":"msg_1","model":"claude-x","usage":{"input_tokens":5,"cache_read_input_tokens":7,"cache_creation_input_tokens":2,"output_tokens":1}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me think"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":"now","input":{}}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        r#"{"type":"content_block_stop","index":1}"#,
        r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"t2","name":"add","input":{}}}"#,
        r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}"#,
        r#"{"type":"content_block_stop","index":2}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":40}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"late"}}"#,
        r#"{"type":"message_stop"}"#,
        r#"{"type":"message_stop"}"#,
    ]
    .iter()
    .map(|d| format!("data: {d}\n\n"))
    .collect::<String>();
    let ev = run(&s, false);
    let a = assemble(&ev);
    assert_eq!(a.reasoning, "Let me think");
    assert_eq!(a.text, "");
    assert_eq!(
        a.tools,
        vec![
            ("t1".into(), "now".into(), "{}".into()),
            ("t2".into(), "add".into(), "{\"a\":1}".into())
        ]
    );
    assert_eq!(a.finish, vec!["length"]);
    assert_eq!(
        a.usage,
        vec![Usage {
            prompt_tokens: 14,
            completion_tokens: 40,
            cached_tokens: Some(7),
            cache_write_tokens: Some(2),
            reasoning_tokens: None
        }]
    );
    assert_eq!(ev.iter().filter(|e| **e == StreamEvent::Done).count(), 1);
}

#[test]
fn native_mode_passes_every_upstream_event_through_unchanged() {
    for fixture in [TEXT, TOOL] {
        let mut t = StreamTranslator::new(false).with_native(true);
        let mut out = Vec::new();
        t.feed(fixture.as_bytes(), &mut out);
        t.end(&mut out);
        let a = assemble(&out);
        assert_eq!(
            a.native.concat(),
            fixture,
            "native events re-emitted byte for byte"
        );
        assert!(
            a.done && (!a.text.is_empty() || !a.tools.is_empty()),
            "pivot chunks still come for the engine"
        );
        // Off by default: no native events at all.
        assert!(assemble(&run(fixture, false)).native.is_empty());
    }
}

#[test]
fn many_blocks_keep_their_tools() {
    // Blocks are kept by index in a map: a stream with thousands of them (started in one
    // order, fed in another) stays linear and routes every delta to its tool.
    let n = 3000u64;
    let mut s = String::from(
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{}}}\n\n",
    );
    for i in (0..n).rev() {
        let start = json!({"type": "content_block_start", "index": i,
            "content_block": {"type": "tool_use", "id": format!("t{i}"), "name": "f", "input": {}}});
        s.push_str(&format!("data: {start}\n\n"));
    }
    for i in 0..n {
        let delta = json!({"type": "content_block_delta", "index": i,
            "delta": {"type": "input_json_delta", "partial_json": format!("{{\"i\":{i}}}")}});
        s.push_str(&format!("data: {delta}\n\n"));
    }
    s.push_str("data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"}}\n\n");
    let a = assemble(&run(&s, false));
    assert!(a.error.is_none() && a.finishes == 1);
    assert_eq!(a.tools.len(), n as usize);
    for (ordinal, (id, _, args)) in a.tools.iter().enumerate() {
        let block = n - 1 - ordinal as u64;
        assert_eq!(
            (id.as_str(), args.as_str()),
            (
                format!("t{block}").as_str(),
                format!("{{\"i\":{block}}}").as_str()
            )
        );
    }
}
