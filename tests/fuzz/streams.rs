//! Upstream streams for the translator target: well-formed streams of each format (with what
//! must come out of them) and chaotic ones, written out as SSE in various styles.

use crate::gen::{biased_bytes, mutate_value, nested, num_value, odd_value, random_value, text};
use crate::harness::Rng;
use edge_router::providers::Format;
use serde_json::{json, Value};

/// How a script is written out as SSE.
pub(crate) struct Style {
    eol: &'static [u8],
    /// Write `event:` lines (Anthropic style).
    names: bool,
    /// Sometimes spread one event's JSON over several `data:` lines (legal SSE).
    multiline: bool,
}

pub(crate) fn style(rng: &mut Rng, format: Format) -> Style {
    Style {
        eol: rng.pick(&[&b"\n"[..], b"\r\n", b"\r"]),
        names: format == Format::Anthropic || rng.one_in(4),
        multiline: rng.one_in(3),
    }
}

fn write_event(rng: &mut Rng, st: &Style, out: &mut Vec<u8>, name: Option<&str>, data: &Value) {
    if rng.one_in(8) {
        out.extend_from_slice(b": keep-alive");
        out.extend_from_slice(st.eol);
    }
    if let (true, Some(n)) = (st.names, name) {
        out.extend_from_slice(format!("event: {n}").as_bytes());
        out.extend_from_slice(st.eol);
    }
    if st.multiline && rng.one_in(2) {
        let pretty = serde_json::to_string_pretty(data).expect("serialisable");
        for line in pretty.lines() {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(st.eol);
        }
    } else {
        out.extend_from_slice(rng.pick(&[&b"data: "[..], b"data:"]));
        out.extend_from_slice(data.to_string().as_bytes());
        out.extend_from_slice(st.eol);
    }
    out.extend_from_slice(st.eol);
}

fn write_raw_data(st: &Style, out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(st.eol);
    out.extend_from_slice(st.eol);
}

/// What a well-formed stream must come out as.
#[derive(Default, Debug)]
pub(crate) struct Expect {
    pub(crate) text: String,
    pub(crate) reasoning: String,
    /// Tool-call arguments by tool index (Anthropic).
    pub(crate) args: Vec<String>,
    /// Tool calls sent (Gemini).
    pub(crate) calls: usize,
    pub(crate) done: bool,
}

fn delta_text(rng: &mut Rng) -> String {
    if rng.one_in(5) {
        String::new()
    } else {
        text(rng)
    }
}

fn openai_chunk(model: &str, delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

pub(crate) fn openai_wellformed(rng: &mut Rng, st: &Style) -> (Vec<u8>, Expect) {
    let mut out = Vec::new();
    let mut ex = Expect::default();
    let model = "gpt-4o-mini";
    let role = openai_chunk(model, json!({"role": "assistant", "content": ""}), None);
    write_event(rng, st, &mut out, None, &role);
    for _ in 0..rng.size(12) {
        let delta = match rng.below(6) {
            0 => {
                let r = delta_text(rng);
                ex.reasoning.push_str(&r);
                json!({ "reasoning_content": r })
            }
            1 => json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
            _ => {
                let t = delta_text(rng);
                ex.text.push_str(&t);
                json!({ "content": t })
            }
        };
        write_event(rng, st, &mut out, None, &openai_chunk(model, delta, None));
    }
    let last = if rng.one_in(3) {
        let t = delta_text(rng);
        ex.text.push_str(&t);
        json!({ "content": t })
    } else {
        json!({})
    };
    let reason = rng.pick(&["stop", "length", "tool_calls"]);
    write_event(
        rng,
        st,
        &mut out,
        None,
        &openai_chunk(model, last, Some(reason)),
    );
    if rng.one_in(2) {
        let usage = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model, "choices": [],
                           "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}});
        write_event(rng, st, &mut out, None, &usage);
    }
    if rng.one_in(4) {
        // No [DONE]: the finish alone completes the answer.
    } else {
        write_raw_data(st, &mut out, b"[DONE]");
        ex.done = true;
    }
    (out, ex)
}

pub(crate) fn anthropic_wellformed(rng: &mut Rng, st: &Style) -> (Vec<u8>, Expect) {
    let mut out = Vec::new();
    let mut ex = Expect {
        done: true,
        ..Expect::default()
    };
    let start = json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
        "model": "claude-x", "content": [], "stop_reason": null,
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 2, "output_tokens": 1}}});
    write_event(rng, st, &mut out, Some("message_start"), &start);
    for index in 0..rng.size(5) {
        if rng.one_in(4) {
            write_event(rng, st, &mut out, Some("ping"), &json!({"type": "ping"}));
        }
        let kind = rng.below(3);
        let block = match kind {
            0 => {
                let t = if rng.one_in(4) {
                    delta_text(rng)
                } else {
                    String::new()
                };
                ex.text.push_str(&t);
                json!({"type": "text", "text": t})
            }
            1 => json!({"type": "thinking", "thinking": ""}),
            _ => {
                ex.args.push(String::new());
                json!({"type": "tool_use", "id": format!("toolu_{index}"), "name": "f", "input": {}})
            }
        };
        let ev = json!({"type": "content_block_start", "index": index, "content_block": block});
        write_event(rng, st, &mut out, Some("content_block_start"), &ev);
        for _ in 0..rng.size(6) {
            let t = delta_text(rng);
            let delta = match kind {
                0 => {
                    ex.text.push_str(&t);
                    json!({"type": "text_delta", "text": t})
                }
                1 => {
                    ex.reasoning.push_str(&t);
                    json!({"type": "thinking_delta", "thinking": t})
                }
                _ => {
                    if let Some(a) = ex.args.last_mut() {
                        a.push_str(&t);
                    }
                    json!({"type": "input_json_delta", "partial_json": t})
                }
            };
            let ev = json!({"type": "content_block_delta", "index": index, "delta": delta});
            write_event(rng, st, &mut out, Some("content_block_delta"), &ev);
        }
        if kind == 1 {
            let ev = json!({"type": "content_block_delta", "index": index,
                            "delta": {"type": "signature_delta", "signature": "sig"}});
            write_event(rng, st, &mut out, Some("content_block_delta"), &ev);
        }
        if kind == 2 {
            if let Some(a) = ex.args.last_mut() {
                if a.is_empty() {
                    a.push_str("{}");
                }
            }
        }
        let ev = json!({"type": "content_block_stop", "index": index});
        write_event(rng, st, &mut out, Some("content_block_stop"), &ev);
    }
    let stop = rng.pick(&["end_turn", "max_tokens", "tool_use", "refusal"]);
    let delta = json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                       "usage": {"output_tokens": 42}});
    write_event(rng, st, &mut out, Some("message_delta"), &delta);
    write_event(
        rng,
        st,
        &mut out,
        Some("message_stop"),
        &json!({"type": "message_stop"}),
    );
    (out, ex)
}

fn gemini_event(parts: Vec<Value>, finish: Option<&str>) -> Value {
    let mut cand = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    if let Some(f) = finish {
        cand["finishReason"] = json!(f);
    }
    json!({"candidates": [cand], "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3,
           "totalTokenCount": 10}, "modelVersion": "gemini-2.5-flash", "responseId": "resp-1"})
}

pub(crate) fn gemini_wellformed(rng: &mut Rng, st: &Style) -> (Vec<u8>, Expect) {
    let mut out = Vec::new();
    let mut ex = Expect::default();
    let n = rng.range(1, 8);
    for i in 0..n {
        let mut parts = Vec::new();
        for _ in 0..rng.size(4) {
            match rng.below(6) {
                0 => parts.push(json!({"text": text(rng), "thought": true})),
                1 => {
                    ex.calls += 1;
                    parts.push(json!({"functionCall": {"name": "f", "args": {"a": text(rng)}}}));
                }
                _ => {
                    let t = delta_text(rng);
                    ex.text.push_str(&t);
                    parts.push(json!({ "text": t }));
                }
            }
        }
        let finish = (i + 1 == n).then(|| rng.pick(&["STOP", "MAX_TOKENS"]));
        write_event(rng, st, &mut out, None, &gemini_event(parts, finish));
    }
    (out, ex)
}

fn retry_info(rng: &mut Rng) -> Value {
    let delay = match rng.below(4) {
        0 => json!(rng.pick(&[
            "30s",
            "1.5s",
            "0.0001s",
            "s",
            "-1s",
            "18446744073709551615s",
            "99999999999999999999.999s",
            "1.s",
            ".5s"
        ])),
        1 => json!({"seconds": num_value(rng), "nanos": num_value(rng)}),
        2 => json!({"seconds": rng.pick(&["5", "18446744073709551615", "x"]), "nanos": 1}),
        _ => odd_value(rng),
    };
    json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay})
}

pub(crate) fn gemini_error(rng: &mut Rng) -> Value {
    let err = json!({"code": num_value(rng), "message": text(rng),
        "status": rng.pick(&["RESOURCE_EXHAUSTED", "UNAVAILABLE", "INVALID_ARGUMENT", "INTERNAL", ""]),
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": rng.pick(&["API_KEY_INVALID", "RATE_LIMIT_EXCEEDED"])},
                    retry_info(rng)]});
    if rng.one_in(3) {
        json!([{ "error": err }])
    } else {
        json!({ "error": err })
    }
}

/// One plausible-or-not upstream event of `format`: (event name, JSON data).
fn chaos_event(rng: &mut Rng, format: Format) -> (Option<&'static str>, Value) {
    // Rare for Gemini, where each new candidate costs a role chunk.
    let rate = if format == Format::Gemini { 300 } else { 80 };
    if format != Format::Anthropic && rng.one_in(rate) {
        return (None, many_indexes(rng, format));
    }
    let idx = json!(rng.pick(&[0, 0, 1, 2, 7]));
    match format {
        Format::OpenAi => {
            let v = match rng.below(9) {
                0 => openai_chunk("m", json!({"role": "assistant", "content": ""}), None),
                1 | 2 => openai_chunk("m", json!({"content": text(rng)}), None),
                3 => {
                    json!({"choices": [{"index": idx, "delta": {"content": text(rng)}, "finish_reason": rng.pick(&[json!(null), json!("stop")])}]})
                }
                4 => openai_chunk("m", json!({}), Some("stop")),
                5 => {
                    json!({"choices": [], "usage": {"prompt_tokens": num_value(rng), "completion_tokens": 1}})
                }
                6 => {
                    json!({"error": {"message": text(rng), "type": rng.pick(&["server_error", "rate_limit_error"]), "code": odd_value(rng)}})
                }
                7 => {
                    json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}},
                                        {"index": 1, "delta": {"refusal": "no"}, "finish_reason": "stop"}]})
                }
                _ => random_value(rng, 3),
            };
            let name = rng.one_in(10).then_some("error");
            (name, v)
        }
        Format::Anthropic => {
            let kinds = [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
                "ping",
                "error",
                "mystery",
            ];
            let kind = rng.pick(&kinds);
            let v = match kind {
                "message_start" => {
                    json!({"type": kind, "message": {"id": odd_value(rng), "model": "claude", "usage": {"input_tokens": num_value(rng)}}})
                }
                "content_block_start" => {
                    let block = match rng.below(5) {
                        0 => json!({"type": "text", "text": text(rng)}),
                        1 => json!({"type": "thinking", "thinking": text(rng)}),
                        2 => {
                            json!({"type": "tool_use", "id": "t", "name": "f", "input": random_value(rng, 2)})
                        }
                        3 => json!({"type": "server_tool_use", "id": "s", "name": "web_search"}),
                        _ => odd_value(rng),
                    };
                    json!({"type": kind, "index": idx, "content_block": block})
                }
                "content_block_delta" => {
                    let delta = match rng.below(5) {
                        0 | 1 => json!({"type": "text_delta", "text": text(rng)}),
                        2 => json!({"type": "thinking_delta", "thinking": text(rng)}),
                        3 => json!({"type": "input_json_delta", "partial_json": text(rng)}),
                        _ => json!({"type": "signature_delta", "signature": "s"}),
                    };
                    json!({"type": kind, "index": idx, "delta": delta})
                }
                "content_block_stop" => json!({"type": kind, "index": idx}),
                "message_delta" => {
                    json!({"type": kind, "delta": {"stop_reason": odd_value(rng)}, "usage": {"output_tokens": num_value(rng)}})
                }
                "error" => {
                    json!({"type": "error", "error": {"type": rng.pick(&["overloaded_error", "api_error", "invalid_request_error"]), "message": text(rng)}})
                }
                "mystery" => json!({"type": text(rng), "x": odd_value(rng)}),
                _ => json!({ "type": kind }),
            };
            let name = if rng.one_in(8) {
                Some(rng.pick(&kinds))
            } else {
                Some(kind)
            };
            (name, v)
        }
        Format::Gemini => {
            let v = match rng.below(7) {
                0..=2 => {
                    let parts: Vec<Value> = (0..rng.size(4))
                        .map(|_| match rng.below(4) {
                            0 => json!({"text": text(rng), "thought": rng.one_in(2)}),
                            1 => json!({"functionCall": {"name": odd_value(rng), "args": random_value(rng, 2), "id": odd_value(rng)},
                                        "thoughtSignature": "sig"}),
                            2 => odd_value(rng),
                            _ => json!({ "text": text(rng) }),
                        })
                        .collect();
                    let finish = rng.one_in(3).then(|| {
                        rng.pick(&["STOP", "MAX_TOKENS", "SAFETY", "RECITATION", "OTHER"])
                    });
                    let mut v = gemini_event(parts, finish);
                    if rng.one_in(4) {
                        v["candidates"][0]["index"] = idx;
                    }
                    v
                }
                3 => {
                    json!({"promptFeedback": {"blockReason": rng.pick(&["SAFETY", "OTHER"]), "blockReasonMessage": text(rng)}})
                }
                4 => {
                    json!({"usageMetadata": {"promptTokenCount": num_value(rng), "thoughtsTokenCount": num_value(rng)}})
                }
                5 => gemini_error(rng),
                _ => random_value(rng, 3),
            };
            (None, v)
        }
    }
}

/// One event with many distinct choice (candidate) indexes, around the translators' limit of
/// 1024 unfinished ones, finishing or not.
fn many_indexes(rng: &mut Rng, format: Format) -> Value {
    let n = rng.pick(&[2, 100, 1023, 1024, 1025, 3000]);
    let first = rng.pick(&[0, 1, 5000]);
    let finish = rng.one_in(2);
    let items = (first..first + n).map(|i| match (format, finish) {
        (Format::OpenAi, true) => json!({"index": i, "delta": {}, "finish_reason": "stop"}),
        (Format::OpenAi, false) => json!({"index": i, "delta": {"content": "x"}}),
        (_, true) => json!({"index": i, "finishReason": "STOP"}),
        (_, false) => json!({ "index": i }),
    });
    match format {
        Format::OpenAi => json!({ "choices": items.collect::<Vec<_>>() }),
        _ => json!({ "candidates": items.collect::<Vec<_>>() }),
    }
}

/// A random mix of plausible and implausible events: out of order, duplicated, mutated,
/// errors, garbage JSON, invalid UTF-8, raw noise.
pub(crate) fn chaotic_stream(rng: &mut Rng, format: Format, st: &Style) -> Vec<u8> {
    // 0: plausible events only (any order, duplicated, errors); 1: some with wrong fields or
    // types; 2: also garbage JSON, invalid UTF-8 and raw noise between events.
    let noise = rng.below(3);
    let mut out = Vec::new();
    let mut last: Option<(Option<&'static str>, Value)> = None;
    for _ in 0..rng.size(24) {
        match rng.below(12) {
            7 if noise == 2 => {
                let garbage = match rng.below(4) {
                    0 => rng
                        .pick(&[
                            &b"{"[..],
                            b"nul",
                            b"[1,2",
                            b"\"str\"",
                            b"123",
                            b"[]",
                            b"{}",
                            b"null",
                            b"{\"type\":",
                        ])
                        .to_vec(),
                    1 => nested(rng.pick(&[127, 128, 129, 1000]), "1", rng.one_in(2)).into_bytes(),
                    2 => {
                        // Invalid UTF-8 inside an otherwise fine JSON string.
                        let mut b = br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"#.to_vec();
                        b.extend_from_slice(b"\xff\xc3(");
                        b.extend_from_slice(br#""},"choices":[{"index":0,"delta":{"content":"b"#);
                        b.extend_from_slice(b"\xed\xa0\x80");
                        b.extend_from_slice(br#""}}]}"#);
                        b
                    }
                    _ => biased_bytes(rng, 40),
                };
                write_raw_data(st, &mut out, &garbage);
            }
            8 => write_raw_data(st, &mut out, b"[DONE]"),
            9 => {
                if let Some((name, v)) = &last {
                    write_event(rng, st, &mut out, *name, v);
                }
            }
            10 if noise == 2 => out.extend(biased_bytes(rng, 24)),
            11 => {
                let (name, v) = match format {
                    Format::OpenAi => (None, openai_chunk("m", json!({}), Some("stop"))),
                    Format::Anthropic => (
                        Some("message_delta"),
                        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),
                    ),
                    Format::Gemini => {
                        (None, gemini_event(vec![json!({"text": "x"})], Some("STOP")))
                    }
                };
                write_event(rng, st, &mut out, name, &v);
            }
            _ => {
                let (name, mut v) = chaos_event(rng, format);
                if noise >= 1 && rng.one_in(3) {
                    mutate_value(rng, &mut v);
                }
                write_event(rng, st, &mut out, name, &v);
                last = Some((name, v));
            }
        }
    }
    out
}
