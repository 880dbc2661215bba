//! What is stored for a cached answer, and which answers may be stored.
//!
//! Invariant: only a complete, clean answer is ever stored: a pivot chat completion (OpenAI
//! format, whatever the provider and the client) whose every choice finished with `stop` or
//! `length`, with the provider's own usage (never an estimate), from a request that ended
//! without an error and was not resumed. It is stored with the deployment, provider and
//! model that made it, so a hit can say where the answer came from.

use crate::engine::resume::Delivered;
use crate::engine::Meta;
use crate::usage::Usage;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Largest stored entry; a larger answer is served but not cached.
pub const MAX_ENTRY_BYTES: usize = 4 << 20;

/// A cached answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub deployment: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// The pivot `chat.completion`, usage included.
    pub completion: Value,
}

impl Entry {
    /// The entry to store for an answer, or None when it must not be cached. `pivot` is the
    /// answer as a pivot chat completion; `meta` what the engine said about it.
    pub fn storable(meta: &Meta, pivot: &[u8]) -> Option<Entry> {
        let clean = meta.error.is_none()
            && meta.resumes.is_empty()
            && !meta.usage_estimated
            && meta.usage.is_some();
        if !clean || pivot.len() > MAX_ENTRY_BYTES {
            return None;
        }
        let completion: Value = serde_json::from_slice(pivot).ok()?;
        if !complete(&completion) {
            return None;
        }
        Some(Entry {
            deployment: meta.deployment.clone(),
            provider: meta.provider.clone(),
            model: meta.model.clone(),
            completion,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A stored entry; None for anything else (an entry that does not decode is a miss).
    pub fn decode(bytes: &[u8]) -> Option<Entry> {
        let e: Entry = serde_json::from_slice(bytes).ok()?;
        complete(&e.completion).then_some(e)
    }
}

/// The pivot of an answer an Anthropic upstream gave an Anthropic client in its own format
/// (`client_ready`), when the pivot keeps all of it: only text blocks. A thinking block's
/// signature (needed to continue the conversation) or a server tool's blocks have no place in
/// the pivot, so such answers are not cached.
pub fn pivot_of_native_anthropic(body: &[u8]) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let blocks = v.get("content")?.as_array()?;
    let only_text = blocks
        .iter()
        .all(|b| b.get("type").and_then(Value::as_str) == Some("text"));
    if !only_text {
        return None;
    }
    crate::providers::anthropic::parse_response(body.to_vec())
        .ok()
        .map(|p| p.body)
}

/// The pivot of a streamed answer, from what its stream delivered and the usage it reported,
/// when the text is all of it: one choice, no tool call, reasoning or refusal, all its text
/// kept (`Delivered::overflowed` not set), and a finish reason. Anything else is not cached.
pub fn pivot_of_stream(d: &Delivered, usage: &Usage) -> Option<Vec<u8>> {
    if d.not_text_only || d.overflowed {
        return None;
    }
    let finish = d.finish_reason.as_deref()?;
    let mut usage_json = serde_json::Map::new();
    usage_json.insert("prompt_tokens".into(), usage.prompt_tokens.into());
    usage_json.insert("completion_tokens".into(), usage.completion_tokens.into());
    let total = usage.prompt_tokens.saturating_add(usage.completion_tokens);
    usage_json.insert("total_tokens".into(), total.into());
    if let Some(c) = usage.cached_tokens {
        usage_json.insert("prompt_tokens_details".into(), json!({"cached_tokens": c}));
    }
    if let Some(r) = usage.reasoning_tokens {
        usage_json.insert(
            "completion_tokens_details".into(),
            json!({"reasoning_tokens": r}),
        );
    }
    let completion = json!({
        "id": d.id,
        "object": "chat.completion",
        "created": d.created,
        "model": d.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": d.text()},
            "finish_reason": finish,
        }],
        "usage": usage_json,
    });
    serde_json::to_vec(&completion).ok()
}

/// A chat completion with choices that all finished with `stop` or `length`, and usage.
fn complete(c: &Value) -> bool {
    let finished = match c.get("choices") {
        Some(Value::Array(choices)) if !choices.is_empty() => choices.iter().all(|ch| {
            matches!(
                ch.get("finish_reason").and_then(Value::as_str),
                Some("stop" | "length")
            )
        }),
        _ => false,
    };
    let usage = c.get("usage").is_some_and(|u| {
        u.get("prompt_tokens").is_some_and(Value::is_u64)
            && u.get("completion_tokens").is_some_and(Value::is_u64)
    });
    finished && usage
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::resume::Method;

    fn meta() -> Meta {
        Meta {
            deployment: Some("d".into()),
            provider: Some("openai".into()),
            model: Some("m-1".into()),
            usage: Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 2,
                ..Usage::default()
            }),
            ..Meta::default()
        }
    }

    fn completion(finish: &str) -> Vec<u8> {
        json!({"id": "c1", "object": "chat.completion", "model": "m-1",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": finish}],
               "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_clean_answer_is_stored_and_decodes_again() {
        for finish in ["stop", "length"] {
            let e = Entry::storable(&meta(), &completion(finish)).unwrap();
            assert_eq!(e.deployment.as_deref(), Some("d"));
            assert_eq!(Entry::decode(&e.encode()), Some(e));
        }
    }

    #[test]
    fn a_native_anthropic_answer_is_cached_only_when_the_pivot_keeps_all_of_it() {
        let text = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 1}});
        let pivot = pivot_of_native_anthropic(text.to_string().as_bytes()).unwrap();
        let e = Entry::storable(&meta(), &pivot).unwrap();
        assert_eq!(e.completion["choices"][0]["message"]["content"], "Hi");
        let mut thinking = text.clone();
        thinking["content"] = json!([{"type": "thinking", "thinking": "hm", "signature": "sig"},
                                     {"type": "text", "text": "Hi"}]);
        assert_eq!(
            pivot_of_native_anthropic(thinking.to_string().as_bytes()),
            None
        );
        assert_eq!(pivot_of_native_anthropic(b"{\"type\":\"error\"}"), None);
    }

    #[test]
    fn answers_that_are_not_complete_and_clean_are_never_stored() {
        for finish in ["tool_calls", "content_filter", "function_call", ""] {
            assert_eq!(
                Entry::storable(&meta(), &completion(finish)),
                None,
                "{finish}"
            );
        }
        let mut m = meta();
        m.usage_estimated = true;
        assert_eq!(Entry::storable(&m, &completion("stop")), None);
        let mut m = meta();
        m.error = Some("stream_cut".into());
        assert_eq!(Entry::storable(&m, &completion("stop")), None);
        let mut m = meta();
        m.resumes.push(("d".into(), Method::Prefill));
        assert_eq!(Entry::storable(&m, &completion("stop")), None);
        let mut m = meta();
        m.usage = None;
        assert_eq!(Entry::storable(&m, &completion("stop")), None);
        let no_usage =
            br#"{"choices":[{"index":0,"message":{"content":"x"},"finish_reason":"stop"}]}"#;
        assert_eq!(Entry::storable(&meta(), no_usage), None);
        assert_eq!(Entry::storable(&meta(), b"{\"error\":{}}"), None);
        assert_eq!(Entry::storable(&meta(), b"not json"), None);
        assert_eq!(Entry::decode(b"{\"completion\":{}}"), None);
    }

    fn delivered(chunks: &[Value]) -> Delivered {
        let mut d = Delivered::default();
        for c in chunks {
            d.observe(format!("data: {c}\n\n").as_bytes());
        }
        d
    }

    fn chunk(delta: Value, finish: Value) -> Value {
        json!({"id": "c9", "object": "chat.completion.chunk", "created": 7, "model": "m-1",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    #[test]
    fn a_streamed_text_answer_becomes_a_storable_completion() {
        let d = delivered(&[
            chunk(json!({"role": "assistant", "content": "Hel"}), Value::Null),
            chunk(json!({"content": "lo"}), Value::Null),
            chunk(json!({}), json!("stop")),
        ]);
        let usage = Usage {
            prompt_tokens: 3,
            completion_tokens: 2,
            cached_tokens: Some(1),
            ..Usage::default()
        };
        let pivot = pivot_of_stream(&d, &usage).unwrap();
        let e = Entry::storable(&meta(), &pivot).unwrap();
        let c = &e.completion;
        assert_eq!(c["choices"][0]["message"]["content"], "Hello");
        assert_eq!(c["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            (c["id"].as_str(), c["model"].as_str()),
            (Some("c9"), Some("m-1"))
        );
        assert_eq!(c["usage"]["total_tokens"], 5);
        assert_eq!(c["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
    }

    #[test]
    fn a_streamed_answer_is_not_cached_when_its_text_is_not_all_of_it() {
        let usage = Usage::default();
        let cases = [
            // No finish reason: cut before the end.
            vec![chunk(json!({"content": "Hi"}), Value::Null)],
            // A tool call.
            vec![
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "t", "type": "function",
                    "function": {"name": "f", "arguments": "{}"}}]}),
                    Value::Null,
                ),
                chunk(json!({}), json!("tool_calls")),
            ],
            // Reasoning.
            vec![
                chunk(
                    json!({"reasoning_content": "hmm", "content": "Hi"}),
                    Value::Null,
                ),
                chunk(json!({}), json!("stop")),
            ],
            // A second choice (n = 2).
            vec![
                chunk(json!({"content": "Hi"}), json!("stop")),
                json!({"id": "c9", "choices": [{"index": 1, "delta": {"content": "Yo"}, "finish_reason": "stop"}]}),
            ],
        ];
        for chunks in cases {
            let d = delivered(&chunks);
            assert!(pivot_of_stream(&d, &usage).is_none(), "{chunks:?}");
        }
        // A content filter finish is a complete stream, but never a storable answer.
        let d = delivered(&[chunk(json!({"content": "Hi"}), json!("content_filter"))]);
        let pivot = pivot_of_stream(&d, &usage).unwrap();
        assert!(Entry::storable(&meta(), &pivot).is_none());
    }
}
