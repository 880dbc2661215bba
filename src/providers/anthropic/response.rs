//! Non-streaming answers: an Anthropic `message` becomes an OpenAI `chat.completion`.
//!
//! - `id`, `model` as the upstream sent them; `object: "chat.completion"`; `created: 0` (the
//!   core has no clock; Anthropic sends no timestamp).
//! - One choice: `content` = the text blocks joined (null when there are none); `tool_calls`
//!   from `tool_use` blocks (`arguments` = the `input` object serialised as a JSON string);
//!   `reasoning_content` = the `thinking` blocks joined (omitted when none; signatures and
//!   `redacted_thinking` are dropped). Server-tool blocks (`server_tool_use`, `*_tool_result`)
//!   and citations are dropped.
//! - `finish_reason` from `stop_reason` (see [`finish_reason`]).
//! - `usage`: `prompt_tokens` = input + cache read + cache creation tokens (what the prompt
//!   really was), `completion_tokens` = output tokens,
//!   `prompt_tokens_details.cached_tokens` = cache read tokens.
//!
//! A 200 body of `{"type":"error",...}` is an in-band error, classified by its error type.

use super::errors::in_band_error;
use crate::providers::ParsedResponse;
use crate::resilience::{ErrorClass, UpstreamError};
use crate::usage::Usage;
use serde_json::{json, Map, Value};

/// OpenAI `finish_reason` for an Anthropic `stop_reason`. `end_turn`, `stop_sequence` and
/// `pause_turn` (a server-tool loop paused; OpenAI has no equivalent) → `stop`; `max_tokens`
/// and `model_context_window_exceeded` → `length`; `tool_use` → `tool_calls`; `refusal` →
/// `content_filter`; anything else (or none) → `stop`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// Token counts as Anthropic reports them; a later report overrides field by field (stream
/// `message_delta` usage is cumulative).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: Option<u64>,
    pub cache_write: Option<u64>,
}

impl Tokens {
    pub fn merge(&mut self, usage: &Value) {
        let n = |k: &str| usage.get(k).and_then(Value::as_u64);
        if let Some(v) = n("input_tokens") {
            self.input = v;
        }
        if let Some(v) = n("output_tokens") {
            self.output = v;
        }
        if let Some(v) = n("cache_read_input_tokens") {
            self.cache_read = Some(v);
        }
        if let Some(v) = n("cache_creation_input_tokens") {
            self.cache_write = Some(v);
        }
    }

    pub fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt(),
            completion_tokens: self.output,
            cached_tokens: self.cache_read,
            cache_write_tokens: self.cache_write,
            reasoning_tokens: None,
        }
    }

    /// The OpenAI `usage` object.
    pub fn openai(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt(),
            "completion_tokens": self.output,
            "total_tokens": self.prompt().saturating_add(self.output),
            "prompt_tokens_details": {"cached_tokens": self.cache_read.unwrap_or(0)},
        })
    }

    fn prompt(&self) -> u64 {
        self.input
            .saturating_add(self.cache_read.unwrap_or(0))
            .saturating_add(self.cache_write.unwrap_or(0))
    }
}

fn malformed(message: impl Into<String>) -> UpstreamError {
    UpstreamError::new(ErrorClass::MalformedResponse, message)
}

pub fn parse_response(body: Vec<u8>) -> Result<ParsedResponse, UpstreamError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| malformed(format!("upstream answer is not valid JSON: {e}")))?;
    let Value::Object(msg) = v else {
        return Err(malformed("upstream answer is not a JSON object"));
    };
    if msg.get("type").and_then(Value::as_str) == Some("error") {
        let mut e = in_band_error(msg.get("error").unwrap_or(&Value::Null));
        e.body = Some(body);
        return Err(e);
    }
    let Some(Value::Array(blocks)) = msg.get("content") else {
        return Err(malformed("upstream answer has no content array"));
    };
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut tool_calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                let t = b.get("text").and_then(Value::as_str).unwrap_or("");
                text.get_or_insert_with(String::new).push_str(t);
            }
            Some("thinking") => {
                let t = b.get("thinking").and_then(Value::as_str).unwrap_or("");
                reasoning.get_or_insert_with(String::new).push_str(t);
            }
            Some("tool_use") => {
                let arguments = match b.get("input") {
                    Some(input) if !input.is_null() => input.to_string(),
                    _ => "{}".to_string(),
                };
                tool_calls.push(json!({
                    "id": b.get("id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {
                        "name": b.get("name").cloned().unwrap_or(Value::Null),
                        "arguments": arguments,
                    },
                }));
            }
            _ => {}
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    message.insert("content".into(), text.map_or(Value::Null, Value::String));
    if let Some(r) = reasoning {
        message.insert("reasoning_content".into(), r.into());
    }
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    let stop = msg.get("stop_reason").and_then(Value::as_str);
    let model = msg.get("model").and_then(Value::as_str).map(str::to_string);
    let tokens = msg.get("usage").filter(|u| u.is_object()).map(|u| {
        let mut t = Tokens::default();
        t.merge(u);
        t
    });
    let mut out = Map::new();
    out.insert(
        "id".into(),
        msg.get("id").cloned().unwrap_or_else(|| "".into()),
    );
    out.insert("object".into(), "chat.completion".into());
    out.insert("created".into(), 0.into());
    out.insert(
        "model".into(),
        model.clone().map_or(Value::Null, Value::String),
    );
    out.insert(
        "choices".into(),
        json!([{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(stop),
        }]),
    );
    if let Some(t) = &tokens {
        out.insert("usage".into(), t.openai());
    }
    let pivot = serde_json::to_vec(&out).map_err(|e| malformed(e.to_string()))?;
    Ok(ParsedResponse {
        body: pivot,
        usage: tokens.map(|t| t.usage()),
        model,
        native: Some(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_use_fixture() {
        let r = parse_response(include_bytes!("testdata/messages_response_tool_use.json").to_vec())
            .unwrap();
        assert_eq!(r.model.as_deref(), Some("claude-haiku-4-5-20251001"));
        assert_eq!(
            r.usage,
            Some(Usage {
                prompt_tokens: 701,
                completion_tokens: 93,
                cached_tokens: Some(0),
                cache_write_tokens: Some(0),
                reasoning_tokens: None,
            })
        );
        let b: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(b["id"], "msg_01UBZt9MX63Tk3v1gKvgxk3A");
        assert_eq!(b["object"], "chat.completion");
        assert_eq!(b["model"], "claude-haiku-4-5-20251001");
        let c = &b["choices"][0];
        assert_eq!(c["finish_reason"], "tool_calls");
        assert_eq!(c["message"]["role"], "assistant");
        assert_eq!(
            c["message"]["content"],
            "I'll get the weather for each of those cities. Let me start by checking San Francisco."
        );
        let call = &c["message"]["tool_calls"][0];
        assert_eq!(call["id"], "toolu_01LRanfq6DmHn1yDTB4d1SAh");
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"location":"San Francisco, CA","units":"f"}));
        assert_eq!(
            b["usage"],
            json!({"prompt_tokens":701,"completion_tokens":93,"total_tokens":794,
                   "prompt_tokens_details":{"cached_tokens":0}})
        );
        // The pivot body reads back through the OpenAI usage reader.
        assert_eq!(Usage::from_openai(&b["usage"]).unwrap().prompt_tokens, 701);
    }

    #[test]
    fn cache_thinking_and_refusal() {
        let body = json!({
            "id":"msg_1","type":"message","role":"assistant","model":"claude-x",
            "content":[{"type":"thinking","thinking":"hmm","signature":"sig"},
                       {"type":"redacted_thinking","data":"..."}],
            "stop_reason":"refusal",
            "usage":{"input_tokens":10,"cache_read_input_tokens":100,
                     "cache_creation_input_tokens":5,"output_tokens":3}
        });
        let r = parse_response(serde_json::to_vec(&body).unwrap()).unwrap();
        let u = r.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.cached_tokens, u.cache_write_tokens),
            (115, Some(100), Some(5))
        );
        let b: Value = serde_json::from_slice(&r.body).unwrap();
        let c = &b["choices"][0];
        assert_eq!(c["finish_reason"], "content_filter");
        assert_eq!(c["message"]["content"], Value::Null);
        assert_eq!(c["message"]["reasoning_content"], "hmm");
        assert!(c["message"].get("tool_calls").is_none());
        assert_eq!(b["usage"]["prompt_tokens_details"]["cached_tokens"], 100);
        assert_eq!(b["usage"]["total_tokens"], 118);
    }

    #[test]
    fn finish_reasons() {
        for (s, f) in [
            (Some("end_turn"), "stop"),
            (Some("stop_sequence"), "stop"),
            (Some("pause_turn"), "stop"),
            (Some("max_tokens"), "length"),
            (Some("model_context_window_exceeded"), "length"),
            (Some("tool_use"), "tool_calls"),
            (Some("refusal"), "content_filter"),
            (None, "stop"),
        ] {
            assert_eq!(finish_reason(s), f);
        }
    }

    #[test]
    fn errors() {
        let e = parse_response(b"{not json".to_vec()).unwrap_err();
        assert_eq!(e.class, ErrorClass::MalformedResponse);
        let e = parse_response(b"[]".to_vec()).unwrap_err();
        assert_eq!(e.class, ErrorClass::MalformedResponse);
        let e = parse_response(br#"{"type":"message","id":"x"}"#.to_vec()).unwrap_err();
        assert_eq!(e.class, ErrorClass::MalformedResponse);
        let body = include_bytes!("testdata/error_529_overloaded_error.json").to_vec();
        let e = parse_response(body.clone()).unwrap_err();
        assert_eq!(e.class, ErrorClass::Overloaded);
        assert_eq!(e.message, "Overloaded");
        assert_eq!(e.body, Some(body));
    }
}
