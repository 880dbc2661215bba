//! A cached answer served again, in the client's format, streamed or not.
//!
//! Invariant: a replayed stream is framed exactly like a live one: the pivot chunks a provider
//! translator would have produced for the same completion (role, reasoning, text, tool calls,
//! the finish), the usage chunk when the client asked for it (Anthropic streams always carry
//! usage in `message_delta`), then the normal end (`[DONE]`, `message_stop`), all through the
//! same egress encoders as a live stream.

use crate::api::ClientFormat;
use crate::egress::{completion_for_client, StreamEgress};
use crate::sse::encode_data;
use serde_json::{json, Value};

/// The cached `completion` as the client's response body: a JSON body, or the whole SSE
/// stream when `stream`.
pub fn answer_for_client(
    client: ClientFormat,
    completion: &Value,
    stream: bool,
    include_usage: bool,
) -> Vec<u8> {
    if !stream {
        return completion_for_client(client, completion.to_string().into_bytes());
    }
    let mut egress = StreamEgress::new(client, false);
    let mut out = Vec::new();
    // Only OpenAI clients choose; every other format reports usage at its stream's end.
    let with_usage = include_usage || client != ClientFormat::OpenAi;
    for chunk in pivot_chunks(completion, with_usage) {
        egress.chunk(chunk, &mut out);
    }
    egress.done(&mut out);
    out.concat()
}

/// The pivot stream (`data: {chat.completion.chunk}\n\n` each) of a complete answer.
pub fn pivot_chunks(completion: &Value, with_usage: bool) -> Vec<Vec<u8>> {
    let id = completion.get("id").cloned().unwrap_or(Value::Null);
    let model = completion.get("model").cloned().unwrap_or(Value::Null);
    let created = completion.get("created").cloned().unwrap_or(json!(0));
    let chunk = |choices: Value| {
        let c = json!({"id": id, "object": "chat.completion.chunk", "created": created,
                       "model": model, "choices": choices});
        encode_data(&c.to_string())
    };
    let mut out = Vec::new();
    let choices = completion
        .get("choices")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (pos, choice) in choices.iter().enumerate() {
        let index = choice.get("index").cloned().unwrap_or(json!(pos));
        let delta = |d: Value| json!([{"index": index, "delta": d, "finish_reason": null}]);
        let message = choice.get("message").cloned().unwrap_or(Value::Null);
        let text = |k: &str| {
            message
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        out.push(chunk(delta(json!({"role": "assistant", "content": ""}))));
        if let Some(r) = text("reasoning_content") {
            out.push(chunk(delta(json!({"reasoning_content": r}))));
        }
        if let Some(t) = text("content") {
            out.push(chunk(delta(json!({"content": t}))));
        }
        let calls = message
            .get("tool_calls")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, call) in calls.iter().enumerate() {
            let mut call = call.clone();
            if let Some(o) = call.as_object_mut() {
                o.insert("index".into(), json!(i));
            }
            out.push(chunk(delta(json!({"tool_calls": [call]}))));
        }
        let finish = choice
            .get("finish_reason")
            .cloned()
            .unwrap_or(json!("stop"));
        out.push(chunk(
            json!([{"index": index, "delta": {}, "finish_reason": finish}]),
        ));
    }
    if with_usage {
        if let Some(usage) = completion.get("usage") {
            let c = json!({"id": id, "object": "chat.completion.chunk", "created": created,
                           "model": model, "choices": [], "usage": usage});
            out.push(encode_data(&c.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion() -> Value {
        json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 5, "model": "m-1",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6,
                         "prompt_tokens_details": {"cached_tokens": 1}}})
    }

    fn events(body: &[u8]) -> Vec<Value> {
        String::from_utf8_lossy(body)
            .split("\n\n")
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }

    #[test]
    fn an_openai_stream_replays_the_text_the_finish_and_usage_only_when_asked() {
        let body = answer_for_client(ClientFormat::OpenAi, &completion(), true, true);
        let text = String::from_utf8_lossy(&body).to_string();
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        let ev = events(&body);
        let content: String = ev
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(content, "Hello there");
        assert!(ev
            .iter()
            .any(|e| e["choices"][0]["finish_reason"] == "stop"));
        let last = ev.last().unwrap();
        assert_eq!(last["usage"]["total_tokens"], 6);
        assert_eq!(last["choices"], json!([]));
        assert!(ev.iter().all(|e| e["object"] == "chat.completion.chunk"));
        let without = answer_for_client(ClientFormat::OpenAi, &completion(), true, false);
        assert!(events(&without).iter().all(|e| e.get("usage").is_none()));
    }

    #[test]
    fn an_anthropic_stream_has_its_events_and_usage() {
        let body = answer_for_client(ClientFormat::Anthropic, &completion(), true, false);
        let text = String::from_utf8_lossy(&body).to_string();
        assert!(text.starts_with("event: message_start\n"), "{text}");
        assert!(text.contains("\"text_delta\""), "{text}");
        assert!(text.contains("Hello there"), "{text}");
        assert!(text.contains("\"stop_reason\":\"end_turn\""), "{text}");
        assert!(text.contains("\"output_tokens\":2"), "{text}");
        assert!(
            text.trim_end().ends_with("{\"type\":\"message_stop\"}"),
            "{text}"
        );
    }

    #[test]
    fn tool_calls_and_reasoning_are_replayed() {
        let c = json!({"id": "c", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
            "reasoning_content": "think", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}});
        let ev = events(&answer_for_client(ClientFormat::OpenAi, &c, true, false));
        assert!(ev
            .iter()
            .any(|e| e["choices"][0]["delta"]["reasoning_content"] == "think"));
        let call = ev
            .iter()
            .find_map(|e| e["choices"][0]["delta"]["tool_calls"].get(0).cloned())
            .unwrap();
        assert_eq!(call["index"], 0);
        assert_eq!(call["function"]["arguments"], "{\"a\":1}");
        let anthropic = answer_for_client(ClientFormat::Anthropic, &c, true, false);
        assert!(String::from_utf8_lossy(&anthropic).contains("\"input_json_delta\""));
    }

    #[test]
    fn a_non_streamed_hit_is_the_completion_in_the_clients_format() {
        let openai = answer_for_client(ClientFormat::OpenAi, &completion(), false, false);
        let v: Value = serde_json::from_slice(&openai).unwrap();
        assert_eq!(v, completion());
        let anthropic = answer_for_client(ClientFormat::Anthropic, &completion(), false, false);
        let v: Value = serde_json::from_slice(&anthropic).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["content"][0]["text"], "Hello there");
    }
}
