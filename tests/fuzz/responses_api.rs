//! Target 6: the Responses API request parser (`api::responses::parse_responses_request`),
//! fed plausible Responses bodies (every input item kind, tools, formats, stateful fields),
//! mutated ones and random bytes. The oracle is the pivot itself: whatever is accepted must
//! be a valid chat-completions request (`parse_chat_request` accepts it) and carry none of the
//! Responses-only fields.

use crate::gen::{mutate_bytes, mutate_value, odd_value, random_bytes, text, to_bytes};
use crate::harness::{fuzz, Rng};
use edge_router::api::responses::parse_responses_request;
use edge_router::api::{parse_chat_request, ClientFormat};
use serde_json::{json, Map, Value};

fn content(rng: &mut Rng) -> Value {
    if rng.one_in(3) {
        return Value::String(text(rng));
    }
    let parts = (0..rng.size(4))
        .map(|_| match rng.below(6) {
            0 | 1 => json!({"type": "input_text", "text": text(rng)}),
            2 => json!({"type": "output_text", "text": text(rng), "annotations": []}),
            3 => json!({"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}),
            4 => json!({"type": "refusal", "refusal": text(rng)}),
            _ => json!({"type": "input_file", "file_id": "file-1"}),
        })
        .collect();
    Value::Array(parts)
}

fn item(rng: &mut Rng) -> Value {
    let role = rng.pick(&["user", "user", "assistant", "system", "developer"]);
    match rng.below(7) {
        0..=2 => json!({"role": role, "content": content(rng)}),
        3 => json!({"type": "message", "role": role, "content": content(rng)}),
        4 => json!({"type": "function_call", "call_id": format!("call_{}", rng.below(9)),
                    "name": "f", "arguments": text(rng)}),
        5 => json!({"type": "function_call_output", "call_id": format!("call_{}", rng.below(9)),
                    "output": if rng.one_in(2) { json!(text(rng)) } else { json!([{"type": "input_text", "text": text(rng)}]) }}),
        _ => {
            json!({"type": rng.pick(&["reasoning", "item_reference", "web_search_call"]), "id": "x_1"})
        }
    }
}

fn body(rng: &mut Rng) -> Value {
    let mut b = Map::new();
    b.insert(
        "model".into(),
        json!(rng.pick(&["gw", "auto", "mock-small"])),
    );
    let input = if rng.one_in(3) {
        json!(text(rng))
    } else {
        Value::Array((0..rng.size(6)).map(|_| item(rng)).collect())
    };
    b.insert("input".into(), input);
    let optional: [(&str, Value); 13] = [
        ("instructions", json!(text(rng))),
        ("stream", json!(rng.one_in(2))),
        ("store", json!(rng.one_in(4))),
        ("max_output_tokens", json!(rng.range(0, 5000))),
        ("temperature", json!(0.5)),
        ("top_p", json!(1)),
        ("metadata", json!({"task": "code"})),
        ("user", json!(text(rng))),
        (
            "tools",
            json!([{"type": rng.pick(&["function", "function", "web_search"]), "name": "f", "parameters": {"type": "object"}}]),
        ),
        (
            "tool_choice",
            rng.pick(&[
                json!("auto"),
                json!("required"),
                json!({"type": "function", "name": "f"}),
                json!("sometimes"),
            ]),
        ),
        (
            "text",
            json!({"format": rng.pick(&[json!({"type": "json_object"}), json!({"type": "text"}),
            json!({"type": "json_schema", "name": "s", "schema": {"type": "object"}, "strict": true}), json!({"type": "json_schema"})])}),
        ),
        (
            "previous_response_id",
            rng.pick(&[json!(null), json!("resp_1")]),
        ),
        ("background", json!(rng.one_in(4))),
    ];
    for (k, v) in optional {
        if rng.one_in(3) {
            b.insert(k.into(), v);
        }
    }
    Value::Object(b)
}

fn input(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0 => random_bytes(rng, 200),
        1 => {
            let v = body(rng);
            let mut bytes = to_bytes(rng, &v);
            mutate_bytes(rng, &mut bytes);
            bytes
        }
        2 => {
            let v = odd_value(rng);
            to_bytes(rng, &v)
        }
        3..=5 => {
            let mut v = body(rng);
            for _ in 0..rng.range(1, 4) {
                mutate_value(rng, &mut v);
            }
            to_bytes(rng, &v)
        }
        _ => {
            let v = body(rng);
            to_bytes(rng, &v)
        }
    }
}

const RESPONSES_ONLY: [&str; 8] = [
    "input",
    "instructions",
    "store",
    "previous_response_id",
    "background",
    "max_output_tokens",
    "text",
    "include",
];

fn case(rng: &mut Rng) {
    let bytes = input(rng);
    match parse_responses_request(&bytes) {
        Ok(r) => {
            assert_eq!(r.client, ClientFormat::Responses);
            assert_eq!(r.include_usage, r.stream);
            assert_eq!(r.body.get("stream") == Some(&json!(true)), r.stream);
            for k in RESPONSES_ONLY {
                assert!(r.body.get(k).is_none(), "{k} reached the pivot");
            }
            let pivot = serde_json::to_vec(&r.body).expect("serialisable");
            let again = parse_chat_request(&pivot).unwrap_or_else(|e| {
                panic!(
                    "the pivot of an accepted request is not a valid chat request ({e:?}): {}",
                    String::from_utf8_lossy(&pivot)
                )
            });
            assert_eq!(again.model, r.model);
            let messages = r.body["messages"].as_array().expect("messages");
            assert!(messages.iter().any(|m| m["role"] != "system"));
            for m in messages {
                let role = m["role"].as_str().expect("role");
                assert!(
                    ["system", "user", "assistant", "tool"].contains(&role),
                    "{role}"
                );
            }
            assert_eq!(again.needs(), r.needs());
        }
        Err(e) => {
            assert_eq!(e.status, 400, "{e:?}");
            assert!(!e.message.is_empty() && !e.code.is_empty(), "{e:?}");
            let v: Value = serde_json::from_slice(&e.to_body()).expect("JSON");
            assert!(v["error"]["message"].is_string());
        }
    }
}

#[test]
fn fuzz_responses_request_parser() {
    fuzz("fuzz_responses_request_parser", 0x8E90_0006, 1_500, case);
}
