//! Target 4: the three stream translators, over the streams of `streams.rs`.

use crate::gen::{cut_points, split_at_cuts};
use crate::harness::{fuzz, Rng};
use crate::sse::BIG_LINE;
use crate::streams::{
    anthropic_wellformed, chaotic_stream, gemini_wellformed, openai_wellformed, style, Expect,
};
use edge_router::providers::{Format, StreamEvent, Translator};
use edge_router::resilience::ErrorClass;
use edge_router::sse::{SseEvent, SseParser};
use serde::de::IgnoredAny;
use serde_json::Value;

pub(crate) fn translate(
    format: Format,
    usage: bool,
    native: bool,
    chunks: &[&[u8]],
) -> Vec<StreamEvent> {
    let mut t = Translator::new(format, usage, native);
    let mut out = Vec::new();
    for c in chunks {
        t.feed(c, &mut out);
    }
    t.end(&mut out);
    let _ = t.model();
    out
}

/// Exactly one complete SSE event.
pub(crate) fn single_event(bytes: &[u8]) -> Option<SseEvent> {
    let mut p = SseParser::new(BIG_LINE);
    let mut out = Vec::new();
    p.feed(bytes, &mut out).ok()?;
    (out.len() == 1 && !p.has_partial()).then(|| out.remove(0))
}

fn is_content_chunk(ev: &StreamEvent) -> bool {
    matches!(ev, StreamEvent::Chunk { content: true, .. })
}

/// The stream contract every translator keeps, plus each format's own.
fn check_stream(format: Format, native: bool, out: &[StreamEvent]) {
    let pos = |f: &dyn Fn(&StreamEvent) -> bool| out.iter().position(f);
    let count = |f: &dyn Fn(&StreamEvent) -> bool| out.iter().filter(|e| f(e)).count();
    let is_err = |e: &StreamEvent| matches!(e, StreamEvent::Error(_));
    let is_finish = |e: &StreamEvent| matches!(e, StreamEvent::Finish);
    let is_done = |e: &StreamEvent| matches!(e, StreamEvent::Done);
    assert!(count(&is_err) <= 1, "more than one Error: {out:?}");
    if let Some(i) = pos(&is_err) {
        assert_eq!(i + 1, out.len(), "events after Error: {out:?}");
    }
    assert!(count(&is_finish) <= 1, "more than one Finish: {out:?}");
    match format {
        Format::OpenAi => {
            assert!(!out.iter().any(|e| matches!(e, StreamEvent::Native(_))));
        }
        Format::Anthropic => {
            if let Some(d) = pos(&is_done) {
                assert_eq!(d + 1, out.len(), "events after Done: {out:?}");
            }
            if let Some(f) = pos(&is_finish) {
                for e in &out[f + 1..] {
                    let ok = match e {
                        StreamEvent::Chunk { content, .. } => !content,
                        StreamEvent::Usage(_) | StreamEvent::Done => true,
                        StreamEvent::Native(b) => b.starts_with(b"event: message_stop\n"),
                        _ => false,
                    };
                    assert!(ok, "{e:?} after Finish: {out:?}");
                }
            }
            if !native {
                assert!(!out.iter().any(|e| matches!(e, StreamEvent::Native(_))));
            }
        }
        Format::Gemini => {
            assert!(!(out.iter().any(is_finish) && out.iter().any(is_err)));
            assert!(!out
                .iter()
                .any(|e| matches!(e, StreamEvent::Done | StreamEvent::Native(_))));
            if let Some(f) = pos(&is_finish) {
                for e in &out[f + 1..] {
                    assert!(
                        matches!(
                            e,
                            StreamEvent::Usage(_) | StreamEvent::Chunk { content: false, .. }
                        ),
                        "{e:?} after Finish: {out:?}"
                    );
                }
            }
        }
    }
    for e in out {
        match e {
            StreamEvent::Chunk { bytes, .. } => {
                let ev = single_event(bytes).unwrap_or_else(|| {
                    panic!(
                        "chunk is not one SSE event: {:?}",
                        String::from_utf8_lossy(bytes)
                    )
                });
                if format == Format::OpenAi {
                    // Forwarded as the upstream sent it (serde_json's depth limit does not apply
                    // to the fields the translator skips, so do not apply it here either).
                    serde_json::from_str::<IgnoredAny>(&ev.data).expect("chunk data is JSON");
                } else {
                    let v: Value = serde_json::from_str(&ev.data).expect("chunk data is JSON");
                    assert_eq!(v["object"], "chat.completion.chunk");
                    assert!(v["choices"].is_array());
                }
            }
            StreamEvent::Native(bytes) => {
                let ev = single_event(bytes).unwrap_or_else(|| {
                    panic!(
                        "native event is not one SSE event: {:?}",
                        String::from_utf8_lossy(bytes)
                    )
                });
                serde_json::from_str::<Value>(&ev.data).expect("native data is JSON");
            }
            _ => {}
        }
    }
}

/// Text, reasoning and tool arguments carried by the pivot chunks.
fn collected(out: &[StreamEvent]) -> Expect {
    let mut got = Expect::default();
    for e in out {
        let StreamEvent::Chunk { bytes, .. } = e else {
            if matches!(e, StreamEvent::Done) {
                got.done = true;
            }
            continue;
        };
        let ev = single_event(bytes).expect("one event");
        let v: Value = serde_json::from_str(&ev.data).expect("JSON");
        for c in v["choices"].as_array().into_iter().flatten() {
            let d = &c["delta"];
            if let Some(t) = d["content"].as_str() {
                got.text.push_str(t);
            }
            if let Some(t) = d["reasoning_content"].as_str() {
                got.reasoning.push_str(t);
            }
            for call in d["tool_calls"].as_array().into_iter().flatten() {
                let i = call["index"].as_u64().unwrap_or(0) as usize;
                if got.args.len() <= i {
                    got.args.resize(i + 1, String::new());
                }
                if call.get("id").is_some() {
                    got.calls += 1;
                }
                if let Some(a) = call["function"]["arguments"].as_str() {
                    got.args[i].push_str(a);
                }
            }
        }
    }
    got
}

fn stream_case(rng: &mut Rng, format: Format) {
    let usage = rng.one_in(2);
    let native = format == Format::Anthropic && rng.one_in(3);
    let st = style(rng, format);
    let wellformed = rng.one_in(3);
    let (input, expect) = if wellformed {
        let (b, e) = match format {
            Format::OpenAi => openai_wellformed(rng, &st),
            Format::Anthropic => anthropic_wellformed(rng, &st),
            Format::Gemini => gemini_wellformed(rng, &st),
        };
        (b, Some(e))
    } else {
        (chaotic_stream(rng, format, &st), None)
    };
    // A megabyte-sized line per case: rare (Gemini's is 8 MiB), to keep the default run short.
    if rng.one_in(if format == Format::Gemini { 1000 } else { 120 }) {
        return overlong_case(rng, format, usage, native, &input);
    }

    let whole = translate(format, usage, native, &[&input]);
    check_stream(format, native, &whole);

    let cuts = cut_points(rng, &input);
    let split = translate(format, usage, native, &split_at_cuts(&input, &cuts));
    assert_eq!(whole, split, "split at {cuts:?} changes the output");
    if input.len() <= 3_000 {
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            whole,
            translate(format, usage, native, &bytes),
            "byte by byte"
        );
    }

    if let Some(ex) = expect {
        let errors: Vec<&StreamEvent> = whole
            .iter()
            .filter(|e| matches!(e, StreamEvent::Error(_)))
            .collect();
        assert!(errors.is_empty(), "well-formed stream failed: {errors:?}");
        assert!(whole.contains(&StreamEvent::Finish), "no Finish: {whole:?}");
        let usage_events = whole
            .iter()
            .filter(|e| matches!(e, StreamEvent::Usage(_)))
            .count();
        assert!(usage_events >= 1 || format == Format::OpenAi);
        let got = collected(&whole);
        assert_eq!(got.text, ex.text, "text out != text deltas in");
        assert_eq!(got.reasoning, ex.reasoning, "reasoning out != in");
        assert_eq!(got.done, ex.done);
        match format {
            Format::Anthropic => assert_eq!(got.args, ex.args, "tool arguments"),
            Format::Gemini => assert_eq!(got.calls, ex.calls, "tool calls"),
            Format::OpenAi => {}
        }
        let last_content = whole.iter().rposition(is_content_chunk);
        let finish = whole.iter().position(|e| matches!(e, StreamEvent::Finish));
        assert!(last_content < finish, "content after Finish");
    }
}

/// The longest SSE line each translator accepts (`MAX_LINE` in its module).
pub(crate) fn max_line(format: Format) -> usize {
    match format {
        Format::OpenAi | Format::Anthropic => 1 << 20,
        Format::Gemini => 8 << 20,
    }
}

/// A line over the limit somewhere in a stream: every event completed before it comes out as
/// without it, in order, then one `MalformedResponse` error, unless the answer had already
/// ended (Anthropic: finished or `Done`; Gemini: finished) or failed. However it is split.
fn overlong_case(rng: &mut Rng, format: Format, usage: bool, native: bool, input: &[u8]) {
    let at = rng.below(input.len() + 1);
    let mut bytes = input[..at].to_vec();
    bytes.resize(at + max_line(format) + 1, b'x');
    if rng.one_in(2) {
        bytes.extend_from_slice(b"\n\n");
        bytes.extend_from_slice(&input[at..]);
    }
    let mut before = Vec::new();
    let mut t = Translator::new(format, usage, native);
    t.feed(&input[..at], &mut before);
    let over = before.iter().any(|e| match e {
        StreamEvent::Error(_) => true,
        StreamEvent::Finish => format != Format::OpenAi,
        StreamEvent::Done => format == Format::Anthropic,
        _ => false,
    });

    let whole = translate(format, usage, native, &[&bytes]);
    check_stream(format, native, &whole);
    assert_eq!(
        whole[..before.len()],
        before[..],
        "events before the long line"
    );
    match &whole[before.len()..] {
        [] => assert!(over, "no error for the long line: {:?}", whole.last()),
        [StreamEvent::Error(e)] => {
            assert!(!over, "the answer had ended: {e:?}");
            assert_eq!(e.class, ErrorClass::MalformedResponse);
            assert!(e.message.contains("SSE line over"), "{e:?}");
        }
        rest => panic!("after the events before the long line: {rest:?}"),
    }
    // Uniform cuts (`cut_points` would scan the long line for every cut).
    let mut cuts: Vec<usize> = (0..rng.range(1, 6))
        .map(|_| rng.below(bytes.len() + 1))
        .collect();
    cuts.sort_unstable();
    let split = translate(format, usage, native, &split_at_cuts(&bytes, &cuts));
    assert_eq!(whole, split, "split at {cuts:?} changes the output");
}

#[test]
fn fuzz_stream_translator_openai() {
    fuzz("fuzz_stream_translator_openai", 0x0A10_0004, 2_000, |rng| {
        stream_case(rng, Format::OpenAi)
    });
}

#[test]
fn fuzz_stream_translator_anthropic() {
    fuzz(
        "fuzz_stream_translator_anthropic",
        0xA7B1_0004,
        2_000,
        |rng| stream_case(rng, Format::Anthropic),
    );
}

#[test]
fn fuzz_stream_translator_gemini() {
    fuzz("fuzz_stream_translator_gemini", 0x6E31_0004, 2_000, |rng| {
        stream_case(rng, Format::Gemini)
    });
}
