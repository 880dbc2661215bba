//! The cache key: SHA-256 of the normalised request, hex-encoded.
//!
//! Invariant: the hashed text depends on the request's meaning, not its spelling. Object keys
//! are sorted at every depth and integral numbers written alike (`0` and `0.0`), so the same
//! request with its fields in another order gets the same key; every field that may change the
//! answer is part of it (messages, tools, sampling parameters, output limits, response
//! format, an Anthropic client's own body and `anthropic-beta`), and only fields that never do
//! are left out: `model` (the route's name stands in for it), `user`, `metadata`, `stream`
//! and `stream_options`. The caller's scope is part of the hashed text, so a key-scoped
//! answer can never be read by another key.

use crate::api::ChatRequest;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// Request fields that never change the answer.
pub const IGNORED_FIELDS: [&str; 5] = ["model", "user", "metadata", "stream", "stream_options"];

/// Whose cache a request reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    /// One gateway key's (by its id).
    Key(&'a str),
    /// Every caller of the route: `scope: "shared"`, or a gateway without keys (`open` mode).
    Everyone,
}

/// The hex SHA-256 key of `chat` on `route` for `owner`.
pub fn cache_key(route: &str, owner: Owner, chat: &ChatRequest) -> String {
    let mut text = String::from("edge-router cache v1\n");
    match owner {
        Owner::Key(id) => {
            text.push_str("key:");
            text.push_str(id);
        }
        Owner::Everyone => text.push_str("everyone"),
    }
    text.push('\n');
    canonical(&Value::String(route.to_string()), &mut text);
    text.push('\n');
    canonical_object(&chat.body, &mut text);
    text.push('\n');
    if let Some(native) = &chat.native_anthropic {
        canonical_object(native, &mut text);
    }
    text.push('\n');
    let mut headers: Vec<&(String, String)> = chat.anthropic_headers.iter().collect();
    headers.sort();
    for (k, v) in headers {
        let _ = writeln!(text, "{k}:{v}");
    }
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// A request body without the ignored fields, keys sorted.
fn canonical_object(body: &Map<String, Value>, out: &mut String) {
    let mut keys: Vec<&String> = body
        .keys()
        .filter(|k| !IGNORED_FIELDS.contains(&k.as_str()))
        .collect();
    keys.sort();
    write_object(body, &keys, out);
}

fn write_object(map: &Map<String, Value>, keys: &[&String], out: &mut String) {
    out.push('{');
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        canonical(&Value::String((*k).clone()), out);
        out.push(':');
        if let Some(v) = map.get(k.as_str()) {
            canonical(v, out);
        }
    }
    out.push('}');
}

/// JSON with sorted object keys and one spelling per number value.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            write_object(map, &keys, out);
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        Value::Number(n) => match n.as_f64() {
            // 2^53: below it every integer is exact in an f64.
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                let _ = write!(out, "{}", f as i64);
            }
            _ => out.push_str(&n.to_string()),
        },
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::anthropic::parse_messages_request;
    use crate::api::parse_chat_request;

    fn chat(body: &str) -> ChatRequest {
        parse_chat_request(body.as_bytes()).unwrap()
    }

    fn key(body: &str) -> String {
        cache_key("r", Owner::Everyone, &chat(body))
    }

    const BASE: &str = r#"{"model":"r","temperature":0,"max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#;

    #[test]
    fn the_same_request_with_its_fields_in_another_order_has_the_same_key() {
        let other = r#"{"messages":[{"content":"hi","role":"user"}],"max_tokens":50,"temperature":0.0,"model":"r"}"#;
        assert_eq!(key(BASE), key(other));
        assert_eq!(key(BASE).len(), 64);
        assert!(key(BASE).bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn every_field_that_changes_the_answer_changes_the_key() {
        for changed in [
            r#"{"model":"r","temperature":0.5,"max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"model":"r","temperature":0,"max_tokens":51,"messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"model":"r","temperature":0,"max_tokens":50,"messages":[{"role":"user","content":"hi!"}]}"#,
            r#"{"model":"r","temperature":0,"max_tokens":50,"messages":[{"role":"system","content":"hi"}]}"#,
            r#"{"model":"r","temperature":0,"max_tokens":50,"seed":7,"messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"model":"r","temperature":0,"max_tokens":50,"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]}"#,
            r#"{"model":"r","temperature":0,"max_tokens":50,"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}"#,
        ] {
            assert_ne!(key(BASE), key(changed), "{changed}");
        }
    }

    #[test]
    fn user_metadata_stream_and_model_do_not_change_the_key() {
        let other = r#"{"model":"other-alias","user":"u1","metadata":{"a":"b"},"stream":true,"stream_options":{"include_usage":true},"temperature":0,"max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#;
        assert_eq!(key(BASE), key(other));
    }

    #[test]
    fn the_route_and_the_owner_are_part_of_the_key() {
        let c = chat(BASE);
        let a = cache_key("r", Owner::Key("k1"), &c);
        assert_ne!(a, cache_key("r", Owner::Key("k2"), &c));
        assert_ne!(a, cache_key("r", Owner::Everyone, &c));
        assert_ne!(a, cache_key("r2", Owner::Key("k1"), &c));
        assert_eq!(a, cache_key("r", Owner::Key("k1"), &c));
    }

    #[test]
    fn large_integers_keep_their_digits_and_floats_keep_their_fraction() {
        let a =
            r#"{"model":"r","seed":9007199254740993,"messages":[{"role":"user","content":"hi"}]}"#;
        let b =
            r#"{"model":"r","seed":9007199254740992,"messages":[{"role":"user","content":"hi"}]}"#;
        assert_ne!(key(a), key(b));
        let c = r#"{"model":"r","top_p":0.25,"messages":[{"role":"user","content":"hi"}]}"#;
        let d = r#"{"model":"r","top_p":0.5,"messages":[{"role":"user","content":"hi"}]}"#;
        assert_ne!(key(c), key(d));
    }

    #[test]
    fn an_anthropic_clients_own_fields_are_part_of_the_key_but_not_its_stream_flag() {
        let a = r#"{"model":"r","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#;
        let thinking = r#"{"model":"r","max_tokens":50,"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":"hi"}]}"#;
        let streamed = r#"{"model":"r","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#;
        let k = |b: &str| {
            let c = parse_messages_request(b.as_bytes()).unwrap();
            cache_key("r", Owner::Everyone, &c)
        };
        assert_ne!(k(a), k(thinking));
        assert_eq!(k(a), k(streamed));
    }
}
