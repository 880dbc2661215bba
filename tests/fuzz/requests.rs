//! Target 3: the OpenAI and Anthropic request parsers, against independent validity oracles.

use crate::gen::{
    mutate_bytes, mutate_value, nested, num_value, odd_value, random_bytes, random_value, text,
    to_bytes,
};
use crate::harness::{fuzz, Rng};
use edge_router::api::anthropic::{error_body, parse_messages_request};
use edge_router::api::chat::last_user_text;
use edge_router::api::{parse_chat_request, ApiError, ChatRequest, ClientFormat};
use serde_json::{json, Map, Value};

const OPENAI_ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// An invalid choice, `1/n` of the time, unless the body is meant to be valid (`sane`).
pub(crate) fn bad(rng: &mut Rng, sane: bool, n: usize) -> bool {
    !sane && rng.one_in(n)
}

fn model_value(rng: &mut Rng, sane: bool) -> Option<Value> {
    if !bad(rng, sane, 2) {
        return Some(match rng.below(4) {
            0 => Value::String(format!("m{}", text(rng))),
            _ => json!(rng.pick(&["gpt-4o", "claude", "auto", "mock-small"])),
        });
    }
    match rng.below(5) {
        0 => None,
        1 => Some(json!("")),
        2 => Some(json!("   ")),
        3 => Some(odd_value(rng)),
        _ => Some(Value::String(text(rng))),
    }
}

fn flag_value(rng: &mut Rng, sane: bool) -> Option<Value> {
    if bad(rng, sane, 3) {
        return Some(rng.pick(&[json!("yes"), json!(1), json!([])]));
    }
    match rng.below(4) {
        0 => Some(Value::Null),
        1 => None,
        _ => Some(Value::Bool(rng.one_in(2))),
    }
}

fn openai_content(rng: &mut Rng) -> Option<Value> {
    match rng.below(8) {
        0 => None,
        1 => Some(odd_value(rng)),
        2..=4 => Some(Value::String(text(rng))),
        _ => {
            let parts = (0..rng.size(5))
                .map(|_| match rng.below(5) {
                    0 => json!({"type": "text", "text": text(rng)}),
                    1 => json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}),
                    2 => json!({"type": "text", "text": odd_value(rng)}),
                    3 => odd_value(rng),
                    _ => json!({"text": text(rng)}),
                })
                .collect();
            Some(Value::Array(parts))
        }
    }
}

fn message_count(rng: &mut Rng) -> usize {
    if rng.one_in(150) {
        rng.range(1_000, 3_000)
    } else {
        rng.range(1, 6)
    }
}

/// An OpenAI chat request; with `sane`, one the gateway must accept (any content is fine).
fn openai_body(rng: &mut Rng, sane: bool) -> Value {
    let mut m = Map::new();
    if let Some(v) = model_value(rng, sane) {
        m.insert("model".into(), v);
    }
    let messages = if bad(rng, sane, 4) {
        match rng.below(3) {
            0 => None,
            1 => Some(json!([])),
            _ => Some(odd_value(rng)),
        }
    } else {
        let msgs = (0..message_count(rng))
            .map(|_| {
                if bad(rng, sane, 20) {
                    return odd_value(rng);
                }
                let mut msg = Map::new();
                let role = role(rng, sane, ["wizard", ""], &OPENAI_ROLES);
                if let Some(r) = role {
                    msg.insert("role".into(), r);
                }
                if let Some(c) = openai_content(rng) {
                    msg.insert("content".into(), c);
                }
                if rng.one_in(5) {
                    msg.insert("name".into(), odd_value(rng));
                }
                Value::Object(msg)
            })
            .collect();
        Some(Value::Array(msgs))
    };
    if let Some(v) = messages {
        m.insert("messages".into(), v);
    }
    if let Some(v) = flag_value(rng, sane) {
        m.insert("stream".into(), v);
    }
    if bad(rng, sane, 6) {
        let so = if rng.one_in(2) {
            odd_value(rng)
        } else {
            json!({"include_usage": rng.pick(&[json!("yes"), json!(1)])})
        };
        m.insert("stream_options".into(), so);
    } else if rng.one_in(2) {
        let iu = flag_value(rng, true).unwrap_or(Value::Null);
        m.insert("stream_options".into(), json!({ "include_usage": iu }));
    }
    for k in ["tools", "response_format", "temperature", "x_custom"] {
        if rng.one_in(4) {
            m.insert(k.into(), random_value(rng, 2));
        }
    }
    Value::Object(m)
}

fn anthropic_block(rng: &mut Rng, sane: bool) -> Value {
    match rng.below(10) {
        0 => json!({"type": "text", "text": text(rng)}),
        1 => {
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}})
        }
        2 => json!({"type": "image", "source": {"type": "url", "url": text(rng)}}),
        3 if !sane => {
            json!({"type": "image", "source": rng.pick(&[json!(null), json!({"type": "file"}), json!("x")])})
        }
        4 => {
            json!({"type": "tool_use", "id": "toolu_1", "name": "f", "input": random_value(rng, 2)})
        }
        5 => {
            json!({"type": "tool_result", "tool_use_id": odd_value(rng), "is_error": rng.one_in(2),
                   "content": rng.pick(&[json!("ok"), json!([{"type": "text", "text": "sunny"}]), json!(null)])})
        }
        6 => json!({"type": "thinking", "thinking": text(rng), "signature": "sig"}),
        7 => json!({"type": "document", "source": {}}),
        8 => json!({"type": rng.pick(&[json!(null), json!(3), json!("mystery")])}),
        _ => {
            let v = odd_value(rng);
            if sane && v.get("type").and_then(Value::as_str) == Some("image") {
                json!({})
            } else {
                v
            }
        }
    }
}

/// An Anthropic Messages request; with `sane`, one the gateway must accept.
fn anthropic_body(rng: &mut Rng, sane: bool) -> Value {
    let mut m = Map::new();
    if let Some(v) = model_value(rng, sane) {
        m.insert("model".into(), v);
    }
    if bad(rng, sane, 4) {
        match rng.below(3) {
            0 => {}
            1 => {
                m.insert("max_tokens".into(), num_value(rng));
            }
            _ => {
                m.insert("max_tokens".into(), odd_value(rng));
            }
        }
    } else {
        m.insert("max_tokens".into(), json!(rng.range(1, 100_000)));
    }
    let messages = if bad(rng, sane, 4) {
        match rng.below(3) {
            0 => None,
            1 => Some(json!([])),
            _ => Some(odd_value(rng)),
        }
    } else {
        let msgs = (0..message_count(rng))
            .map(|_| {
                let mut msg = Map::new();
                let role = role(rng, sane, ["system", "tool"], &["user", "assistant"]);
                if let Some(r) = role {
                    msg.insert("role".into(), r);
                }
                let content = if bad(rng, sane, 6) {
                    rng.one_in(2).then(|| odd_value(rng))
                } else if rng.one_in(3) {
                    Some(Value::String(text(rng)))
                } else {
                    let blocks = (0..rng.size(5))
                        .map(|_| anthropic_block(rng, sane))
                        .collect();
                    Some(Value::Array(blocks))
                };
                if let Some(c) = content {
                    if !sane || c.is_string() || c.is_array() {
                        msg.insert("content".into(), c);
                    } else {
                        msg.insert("content".into(), json!(""));
                    }
                }
                Value::Object(msg)
            })
            .collect();
        Some(Value::Array(msgs))
    };
    if let Some(v) = messages {
        m.insert("messages".into(), v);
    }
    if let Some(v) = flag_value(rng, sane) {
        m.insert("stream".into(), v);
    }
    if rng.one_in(2) {
        let system = match rng.below(3) {
            0 => Value::String(text(rng)),
            1 => json!([{"type": "text", "text": text(rng)}, {"type": "text"}]),
            _ => odd_value(rng),
        };
        m.insert("system".into(), system);
    }
    if rng.one_in(3) {
        let tools = json!([{"name": "get_weather", "description": text(rng), "input_schema": {"type": "object"}},
                           {"name": "no_schema"}, odd_value(rng)]);
        m.insert("tools".into(), tools);
    }
    if rng.one_in(3) {
        let choice = match rng.below(6) {
            0 => json!({"type": "auto"}),
            1 => json!({"type": "any", "disable_parallel_tool_use": true}),
            2 => json!({"type": "none"}),
            3 => json!({"type": "tool", "name": "get_weather"}),
            4 => json!({"type": "tool"}),
            _ => odd_value(rng),
        };
        m.insert("tool_choice".into(), choice);
    }
    for k in [
        "metadata",
        "stop_sequences",
        "temperature",
        "top_p",
        "thinking",
    ] {
        if rng.one_in(5) {
            let v = if k == "metadata" && rng.one_in(2) {
                json!({"user_id": odd_value(rng)})
            } else {
                random_value(rng, 2)
            };
            m.insert(k.into(), v);
        }
    }
    Value::Object(m)
}

fn non_blank_string(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.trim().is_empty())
}

fn optional_bool(v: Option<&Value>) -> Option<bool> {
    match v {
        None | Some(Value::Null) => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => None,
    }
}

/// Whether an OpenAI chat request is valid, decided from the documented rules only.
fn openai_valid(v: &Value) -> bool {
    let Some(o) = v.as_object() else {
        return false;
    };
    let messages_ok = match o.get("messages") {
        Some(Value::Array(ms)) if !ms.is_empty() => ms.iter().all(|m| {
            m.is_object()
                && m.get("role")
                    .and_then(Value::as_str)
                    .is_some_and(|r| OPENAI_ROLES.contains(&r))
        }),
        _ => false,
    };
    let options_ok = match o.get("stream_options") {
        None | Some(Value::Null) => true,
        Some(Value::Object(so)) => optional_bool(so.get("include_usage")).is_some(),
        Some(_) => false,
    };
    non_blank_string(o.get("model")).is_some()
        && messages_ok
        && optional_bool(o.get("stream")).is_some()
        && options_ok
}

fn content_chars(c: Option<&Value>) -> usize {
    match c {
        Some(Value::String(s)) => s.chars().count(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .map(|t| t.chars().count())
            .sum(),
        _ => 0,
    }
}

/// Whether an Anthropic Messages request is valid, decided from the documented rules only.
fn anthropic_valid(v: &Value) -> bool {
    let Some(o) = v.as_object() else {
        return false;
    };
    let messages_ok = match o.get("messages") {
        Some(Value::Array(ms)) if !ms.is_empty() => ms.iter().all(|m| {
            let role_ok = matches!(
                m.get("role").and_then(Value::as_str),
                Some("user" | "assistant")
            );
            let content_ok = match m.get("content") {
                Some(Value::String(_)) => true,
                Some(Value::Array(blocks)) => blocks.iter().all(|b| {
                    b.get("type").and_then(Value::as_str) != Some("image")
                        || matches!(
                            b.pointer("/source/type").and_then(Value::as_str),
                            Some("base64" | "url")
                        )
                }),
                _ => false,
            };
            role_ok && content_ok
        }),
        _ => false,
    };
    non_blank_string(o.get("model")).is_some()
        && o.get("max_tokens")
            .and_then(Value::as_u64)
            .is_some_and(|n| n >= 1)
        && messages_ok
        && optional_bool(o.get("stream")).is_some()
}

fn check_api_error(e: &ApiError, input: &[u8]) {
    let shown = String::from_utf8_lossy(&input[..input.len().min(300)]).into_owned();
    assert!((400..=413).contains(&e.status), "{e:?} for {shown}");
    assert!(!e.message.trim().is_empty(), "{e:?}");
    assert!(
        !e.code.is_empty() && e.kind == "invalid_request_error",
        "{e:?}"
    );
    assert!(e.param.as_ref().is_none_or(|p| !p.is_empty()), "{e:?}");
    let body: Value = serde_json::from_slice(&e.to_body()).expect("error body is JSON");
    assert_eq!(body["error"]["message"], e.message.as_str());
}

fn check_request(r: &ChatRequest, v: &Value) {
    let o = v.as_object().expect("accepted bodies are objects");
    assert_eq!(Some(r.model.as_str()), non_blank_string(o.get("model")));
    assert_eq!(
        r.stream,
        optional_bool(o.get("stream")).expect("valid flag")
    );
    let _ = r.needs();
    let _ = last_user_text(&r.body);
}

/// Request bytes: a generated body, mutated structurally and byte-wise, or deep nesting, or
/// random bytes.
fn request_input(rng: &mut Rng, anthropic: bool) -> Vec<u8> {
    if rng.one_in(12) {
        return random_bytes(rng, 200);
    }
    if rng.one_in(10) {
        let depth = rng.pick(&[1, 64, 125, 126, 127, 128, 129, 200, 5_000]);
        let inner = nested(depth, "\"x\"", rng.one_in(2));
        let field = rng.pick(&["content", "role", "x"]);
        let max_tokens = if anthropic { "\"max_tokens\":5," } else { "" };
        return format!(
            "{{\"model\":\"m\",{max_tokens}\"messages\":[{{\"role\":\"user\",\"content\":\"hi\",\"{field}\":{inner}}}]}}"
        )
        .into_bytes();
    }
    let sane = rng.one_in(2);
    let mut v = if anthropic {
        anthropic_body(rng, sane)
    } else {
        openai_body(rng, sane)
    };
    let rounds = if sane && rng.one_in(2) {
        0
    } else {
        rng.below(3)
    };
    for _ in 0..rounds {
        mutate_value(rng, &mut v);
    }
    let mut bytes = to_bytes(rng, &v);
    if rounds > 0 && rng.one_in(4) {
        for _ in 0..rng.range(1, 3) {
            mutate_bytes(rng, &mut bytes);
        }
    }
    bytes
}

fn request_case(rng: &mut Rng) {
    let anthropic = rng.one_in(2);
    let input = request_input(rng, anthropic);
    let parsed: Option<Value> = serde_json::from_slice(&input).ok();
    if anthropic {
        let valid = parsed.as_ref().is_some_and(anthropic_valid);
        match parse_messages_request(&input) {
            Ok(r) => {
                let v = parsed.as_ref().expect("accepted bodies are JSON");
                assert!(valid, "accepted: {}", String::from_utf8_lossy(&input));
                check_request(&r, v);
                assert_eq!(r.client, ClientFormat::Anthropic);
                assert_eq!(r.native_anthropic.as_ref(), v.as_object());
                assert_eq!(r.body["model"], r.model.as_str());
                assert_eq!(r.body.get("stream") == Some(&json!(true)), r.stream);
                assert!(!r.include_usage);
                let msgs = r.body["messages"].as_array().expect("messages");
                for m in msgs {
                    let role = m["role"].as_str().expect("role");
                    assert!(["system", "user", "assistant", "tool"].contains(&role));
                }
            }
            Err(e) => {
                assert!(
                    !valid,
                    "rejected ({e:?}): {}",
                    String::from_utf8_lossy(&input)
                );
                check_api_error(&e, &input);
                let body: Value = serde_json::from_slice(&error_body(&e)).expect("JSON");
                assert_eq!(body["type"], "error");
            }
        }
    } else {
        let valid = parsed.as_ref().is_some_and(openai_valid);
        match parse_chat_request(&input) {
            Ok(r) => {
                let v = parsed.as_ref().expect("accepted bodies are JSON");
                assert!(valid, "accepted: {}", String::from_utf8_lossy(&input));
                check_request(&r, v);
                assert_eq!(r.client, ClientFormat::OpenAi);
                assert!(r.native_anthropic.is_none());
                assert_eq!(Some(&r.body), v.as_object(), "the body is kept as sent");
                let so = v.get("stream_options").and_then(|s| s.get("include_usage"));
                assert_eq!(r.include_usage, r.stream && so == Some(&json!(true)));
                let msgs = v["messages"].as_array().expect("messages");
                let chars: usize = msgs.iter().map(|m| content_chars(m.get("content"))).sum();
                assert_eq!(r.prompt_chars, chars);
            }
            Err(e) => {
                assert!(
                    !valid,
                    "rejected ({e:?}): {}",
                    String::from_utf8_lossy(&input)
                );
                check_api_error(&e, &input);
                if parsed.is_none() {
                    assert_eq!(e.code, "invalid_json");
                }
            }
        }
    }
}

#[test]
fn fuzz_request_parsers() {
    fuzz("fuzz_request_parsers", 0x8E90_0003, 2_500, request_case);
}

/// A message role: one of `good`, or (when this case is allowed to be bad) missing, one of
/// `wrong`, the right word in capitals, or an odd JSON value.
fn role(rng: &mut Rng, sane: bool, wrong: [&str; 2], good: &[&str]) -> Option<Value> {
    if bad(rng, sane, 6) {
        rng.pick(&[
            None,
            Some(json!(wrong[0])),
            Some(json!(wrong[1])),
            Some(json!("USER")),
        ])
        .or_else(|| rng.one_in(2).then(|| odd_value(rng)))
    } else {
        Some(json!(rng.pick(good)))
    }
}
