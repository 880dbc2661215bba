//! Target 5: non-streaming answers and error classification.

use crate::gen::{mutate_bytes, mutate_value, odd_value, random_bytes, text, to_bytes};
use crate::harness::{fuzz, Rng};
use crate::streams::gemini_error;
use edge_router::providers::{classify_error, parse_response, Format};
use serde::de::IgnoredAny;
use serde_json::{json, Value};

const ANTHROPIC_SEEDS: &[&[u8]] = &[
    include_bytes!("../../src/providers/anthropic/testdata/messages_response_tool_use.json"),
    include_bytes!("../../src/providers/anthropic/testdata/error_400_prompt_too_long.json"),
    include_bytes!("../../src/providers/anthropic/testdata/error_429_rate_limit_error.json"),
    include_bytes!("../../src/providers/anthropic/testdata/error_529_overloaded_error.json"),
];

const GEMINI_SEEDS: &[&[u8]] = &[
    include_bytes!(
        "../../src/providers/gemini/testdata/generate_content_response_function_call.json"
    ),
    include_bytes!("../../src/providers/gemini/testdata/response_blocked_prompt_safety.json"),
    include_bytes!("../../src/providers/gemini/testdata/response_finish_reason_safety.json"),
    include_bytes!("../../src/providers/gemini/testdata/error_400_invalid_argument.json"),
    include_bytes!("../../src/providers/gemini/testdata/error_429_resource_exhausted.json"),
];

fn openai_response_seed(rng: &mut Rng) -> Value {
    match rng.below(3) {
        0 => {
            json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text(rng),
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8,
                      "prompt_tokens_details": {"cached_tokens": 1}}})
        }
        1 => {
            json!({"error": {"message": text(rng), "type": "server_error", "code": odd_value(rng)}})
        }
        _ => json!({"choices": [], "model": null}),
    }
}

fn response_body(rng: &mut Rng) -> Vec<u8> {
    if rng.one_in(10) {
        return random_bytes(rng, 300);
    }
    let mut v = match rng.below(4) {
        0 => openai_response_seed(rng),
        1 => serde_json::from_slice(rng.pick(ANTHROPIC_SEEDS)).expect("fixture"),
        2 => serde_json::from_slice(rng.pick(GEMINI_SEEDS)).expect("fixture"),
        _ => {
            let mut e = gemini_error(rng);
            if rng.one_in(2) {
                e = json!({"type": "error", "error": {"type": rng.pick(&["overloaded_error", "x"]), "message": odd_value(rng)}});
            }
            e
        }
    };
    for _ in 0..rng.below(4) {
        mutate_value(rng, &mut v);
    }
    let mut bytes = to_bytes(rng, &v);
    if rng.one_in(5) {
        for _ in 0..rng.range(1, 3) {
            mutate_bytes(rng, &mut bytes);
        }
    }
    bytes
}

fn response_case(rng: &mut Rng) {
    let body = response_body(rng);
    let format = rng.pick(&[Format::OpenAi, Format::Anthropic, Format::Gemini]);
    match parse_response(format, body.clone()) {
        Ok(r) if format == Format::OpenAi => {
            assert_eq!(r.body, body, "forwarded byte for byte");
            serde_json::from_slice::<IgnoredAny>(&r.body).expect("JSON");
        }
        Ok(r) => {
            let v: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| {
                panic!(
                    "{format:?} pivot body is not JSON ({e}): {}",
                    String::from_utf8_lossy(&body)
                )
            });
            let choices = v["choices"].as_array().expect("choices");
            assert!(!choices.is_empty());
            match format {
                Format::OpenAi => unreachable!(),
                Format::Anthropic => {
                    assert_eq!(r.native.as_deref(), Some(&body[..]));
                    assert_eq!(v["object"], "chat.completion");
                }
                Format::Gemini => {
                    assert_eq!(v["object"], "chat.completion");
                    for c in choices {
                        assert_eq!(c["message"]["role"], "assistant");
                    }
                }
            }
        }
        Err(e) => {
            let _ = e.class;
        }
    }
    let status = rng.pick(&[
        0u16, 100, 200, 204, 299, 400, 401, 402, 403, 404, 408, 413, 422, 429, 500, 502, 503, 529,
        599, 600, 65535,
    ]);
    let retry = rng.pick(&[None, Some(0), Some(1500), Some(u64::MAX)]);
    let e = classify_error(format, status, &body, retry);
    assert_eq!(e.status, Some(status));
    assert_eq!(e.body.as_deref(), Some(&body[..]));
}

#[test]
fn fuzz_parse_responses() {
    fuzz("fuzz_parse_responses", 0x5E5B_0005, 2_500, response_case);
}
