//! Tests of the non-streaming answer translation against the fixtures.

use super::response::{finish_reason, parse_response, response_id};
use crate::providers::ParsedResponse;
use crate::resilience::{ErrorClass, UpstreamError};
use crate::usage::Usage;
use serde_json::{json, Value};

const FUNCTION_CALL: &str = include_str!("testdata/generate_content_response_function_call.json");
const BLOCKED: &str = include_str!("testdata/response_blocked_prompt_safety.json");
const SAFETY: &str = include_str!("testdata/response_finish_reason_safety.json");

fn parse(body: &str) -> Result<(Value, ParsedResponse), UpstreamError> {
    let p = parse_response(body.as_bytes().to_vec())?;
    Ok((serde_json::from_slice(&p.body).unwrap(), p))
}

#[test]
fn function_call_fixture() {
    let (v, p) = parse(FUNCTION_CALL).unwrap();
    assert_eq!(
        v,
        json!({
            "id": "x9SfaLCQBs7shMIP2Mei0AI",
            "object": "chat.completion",
            "created": 0,
            "model": "gemini-2.0-flash",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": null, "tool_calls": [{
                    "id": "call_x9SfaLCQBs7shMIP2Mei0AI_0",
                    "type": "function",
                    "function": {"name": "customDivide",
                                 "arguments": "{\"denominator\":2,\"numerator\":100}"}
                }]},
                "logprobs": null,
                "finish_reason": "tool_calls"
            }],
            "usage": {"prompt_tokens": 21, "completion_tokens": 6, "total_tokens": 27}
        })
    );
    assert_eq!(p.model.as_deref(), Some("gemini-2.0-flash"));
    assert_eq!(
        p.usage,
        Some(Usage {
            prompt_tokens: 21,
            completion_tokens: 6,
            cached_tokens: None,
            cache_write_tokens: None,
            reasoning_tokens: None
        })
    );
    // What the pivot's own reader sees agrees.
    assert_eq!(Usage::from_openai(&v["usage"]), p.usage);
}

#[test]
fn blocked_prompt_is_content_policy() {
    let e = parse(BLOCKED).unwrap_err();
    assert_eq!(e.class, ErrorClass::ContentPolicy);
    assert_eq!(e.status, None);
    assert!(e.message.contains("SAFETY"), "{}", e.message);
    let e = parse(
        r#"{"candidates":[],"promptFeedback":{"blockReason":"OTHER","blockReasonMessage":"nope"}}"#,
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "Gemini blocked the prompt (blockReason OTHER): nope"
    );
    let e = parse(r#"{"modelVersion":"g"}"#).unwrap_err();
    assert_eq!(e.class, ErrorClass::MalformedResponse);
    let e = parse("not json").unwrap_err();
    assert_eq!(e.class, ErrorClass::MalformedResponse);
    let e = parse(r#"{"error":{"code":503,"message":"busy","status":"UNAVAILABLE"}}"#).unwrap_err();
    assert_eq!(e.class, ErrorClass::Overloaded);
}

#[test]
fn safety_finish() {
    // Partial text stopped by the filter: an answer flagged content_filter.
    let (v, p) = parse(SAFETY).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Safety error incoming in 5, 4, 3, 2..."
    );
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(
        p.usage.map(|u| (u.prompt_tokens, u.completion_tokens)),
        Some((7, 20))
    );
    // Nothing before the filter: a refusal.
    let e = parse(r#"{"candidates":[{"finishReason":"SAFETY","index":0}],"modelVersion":"g"}"#)
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::ContentPolicy);
    assert!(e.message.contains("SAFETY"));
}

#[test]
fn thoughts_usage_and_reasons() {
    let body = json!({
        "responseId": "r/1",
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "hidden", "thought": true},
            {"text": "Hello"},
            {"text": " there", "thoughtSignature": "s"},
            {"functionCall": {"name": "f", "id": "fc-9"}, "thoughtSignature": "sig"}
        ]}, "finishReason": "MAX_TOKENS"}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5,
                          "thoughtsTokenCount": 7, "cachedContentTokenCount": 4,
                          "toolUsePromptTokenCount": 1}
    });
    let (v, p) = parse(&body.to_string()).unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["message"]["content"], "Hello there");
    assert_eq!(
        choice["message"]["tool_calls"][0],
        json!({"id": "fc-9", "type": "function", "function": {"name": "f", "arguments": "{}"},
               "extra_content": {"google": {"thought_signature": "sig"}}})
    );
    assert_eq!(choice["finish_reason"], "length");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 12, "total_tokens": 23,
               "prompt_tokens_details": {"cached_tokens": 4},
               "completion_tokens_details": {"reasoning_tokens": 7}})
    );
    assert_eq!(p.usage.and_then(|u| u.cached_tokens), Some(4));
    assert_eq!(p.usage.and_then(|u| u.reasoning_tokens), Some(7));
    assert_eq!(response_id(&body), "r1");
    for (r, calls, want) in [
        ("STOP", false, "stop"),
        ("STOP", true, "tool_calls"),
        ("RECITATION", false, "content_filter"),
        ("PROHIBITED_CONTENT", true, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", false, "stop"),
        ("OTHER", false, "stop"),
    ] {
        assert_eq!(finish_reason(r, calls), want, "{r}");
    }
}
