//! Pivot `chat.completion` → Responses API `response` object (non-streaming answers).
//!
//! The first choice's text (and refusal) becomes one `message` item, each tool call a
//! `function_call` item. A length stop reads `status: "incomplete"` with
//! `incomplete_details.reason: "max_output_tokens"`, never `completed`.

use super::responses_object::{call_item, message_item, response, text_part, usage, Head, Status};
use serde_json::{json, Value};

pub fn completion_to_response(body: &[u8]) -> Vec<u8> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let head = Head::new(
        v.get("id").and_then(Value::as_str),
        v.get("created").and_then(Value::as_u64),
        v.get("model").and_then(Value::as_str),
    );
    let choice = v.get("choices").and_then(|c| c.get(0));
    let message = choice.and_then(|c| c.get("message"));
    let status = Status::of_finish(
        choice
            .and_then(|c| c.get("finish_reason"))
            .and_then(Value::as_str),
    );
    let item_status = status.item_status();
    let text = |k: &str| {
        message
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let mut output: Vec<Value> = Vec::new();
    let mut content: Vec<Value> = Vec::new();
    if let Some(t) = text("content") {
        content.push(text_part(t));
    }
    if let Some(r) = text("refusal") {
        content.push(json!({"type": "refusal", "refusal": r}));
    }
    if !content.is_empty() {
        output.push(message_item(&head.message_id(0), item_status, content));
    }
    if let Some(Value::Array(calls)) = message.and_then(|m| m.get("tool_calls")) {
        for (i, c) in calls.iter().enumerate() {
            let f = c.get("function");
            let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
            let call_id = s(c.get("id")).unwrap_or_else(|| format!("call_{}_{i}", head.suffix));
            let name = s(f.and_then(|f| f.get("name"))).unwrap_or_default();
            let args = s(f.and_then(|f| f.get("arguments"))).unwrap_or_default();
            output.push(call_item(&call_id, &name, &args, item_status));
        }
    }
    response(&head, status, output, usage(v.get("usage")), Value::Null)
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(v: Value) -> Value {
        serde_json::from_slice(&completion_to_response(v.to_string().as_bytes())).unwrap()
    }

    #[test]
    fn text_answer_with_usage() {
        let r = convert(
            json!({"id": "chatcmpl-abc", "created": 1700000000, "model": "gpt-x",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hello."}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
                      "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 1}}}),
        );
        assert_eq!(r["object"], "response");
        assert_eq!(r["id"], "resp_abc");
        assert_eq!(r["created_at"], 1700000000);
        assert_eq!(r["model"], "gpt-x");
        assert_eq!(r["status"], "completed");
        assert_eq!(r["output_text"], "Hello.");
        assert_eq!(r["error"], Value::Null);
        assert_eq!(r["incomplete_details"], Value::Null);
        assert_eq!(
            r["output"],
            json!([{"id": "msg_abc", "type": "message", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hello.", "annotations": [], "logprobs": []}]}])
        );
        assert_eq!(
            r["usage"],
            json!({"input_tokens": 12, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 3,
                   "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 15})
        );
    }

    #[test]
    fn tool_calls_become_function_call_items() {
        let r = convert(
            json!({"id": "chatcmpl-1", "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 9}}),
        );
        assert_eq!(r["status"], "completed");
        assert_eq!(
            r["output"],
            json!([
                {"id": "fc_call_a", "type": "function_call", "status": "completed", "call_id": "call_a",
                 "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                {"id": "fc_call_b", "type": "function_call", "status": "completed", "call_id": "call_b",
                 "name": "get_time", "arguments": "{}"}])
        );
        assert_eq!(
            r["usage"]["total_tokens"], 14,
            "summed when the pivot has no total"
        );
    }

    #[test]
    fn a_length_stop_is_incomplete() {
        let r = convert(
            json!({"id": "chatcmpl-1", "model": "m", "choices": [{"index": 0, "finish_reason": "length",
            "message": {"role": "assistant", "content": "Once upon a"}}]}),
        );
        assert_eq!(r["status"], "incomplete");
        assert_eq!(
            r["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert_eq!(r["output"][0]["status"], "incomplete");
        assert_eq!(r["usage"], Value::Null);
        let filtered = convert(
            json!({"choices": [{"finish_reason": "content_filter", "message": {"refusal": "No."}}]}),
        );
        assert_eq!(filtered["incomplete_details"]["reason"], "content_filter");
        assert_eq!(
            filtered["output"][0]["content"][0],
            json!({"type": "refusal", "refusal": "No."})
        );
        assert_eq!(filtered["id"], "resp_gateway");
    }
}
