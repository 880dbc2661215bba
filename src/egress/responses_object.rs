//! The Responses API's `response` object, shared by the non-streaming answer and the stream's
//! `response.created` / `response.completed` / `response.failed` events: ids derived from the
//! pivot's id, status from the finish reason, usage from the pivot's usage.
//!
//! The gateway is stateless and the egress sees only the answer, so request parameters are
//! not echoed: `instructions`, `tools`, `metadata`, `temperature`, … read as their defaults.

use serde_json::{json, Value};

/// What every `response` object of one answer shares.
#[derive(Clone, Debug, Default)]
pub struct Head {
    /// The pivot id without its `chatcmpl-` prefix: `resp_<suffix>`, `msg_<suffix>`.
    pub suffix: String,
    pub created_at: u64,
    pub model: Value,
}

impl Head {
    pub fn new(id: Option<&str>, created: Option<u64>, model: Option<&str>) -> Head {
        let id = id.unwrap_or("gateway");
        let suffix = id.strip_prefix("chatcmpl-").unwrap_or(id).to_string();
        Head {
            suffix,
            created_at: created.unwrap_or(0),
            model: model.map_or(Value::Null, |m| Value::String(m.to_string())),
        }
    }

    pub fn response_id(&self) -> String {
        format!("resp_{}", self.suffix)
    }

    /// The id of the message item at `output_index`.
    pub fn message_id(&self, output_index: usize) -> String {
        match output_index {
            0 => format!("msg_{}", self.suffix),
            i => format!("msg_{}_{i}", self.suffix),
        }
    }
}

/// How an answer ended, as the Responses API says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Completed,
    /// Stopped early: `max_output_tokens` or `content_filter`.
    Incomplete(&'static str),
    InProgress,
    Failed,
}

impl Status {
    /// From the pivot's `finish_reason`: a length stop is never a completed answer.
    pub fn of_finish(finish: Option<&str>) -> Status {
        match finish {
            Some("length") => Status::Incomplete("max_output_tokens"),
            Some("content_filter") => Status::Incomplete("content_filter"),
            _ => Status::Completed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::Incomplete(_) => "incomplete",
            Status::InProgress => "in_progress",
            Status::Failed => "failed",
        }
    }

    /// The status of the output items of an answer that ended so.
    pub fn item_status(self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::InProgress => "in_progress",
            Status::Incomplete(_) | Status::Failed => "incomplete",
        }
    }
}

/// The pivot's usage (`prompt_tokens`, …) as the Responses API's usage.
pub fn usage(u: Option<&Value>) -> Value {
    let Some(u) = u.filter(|u| u.is_object()) else {
        return Value::Null;
    };
    let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let input = n(u.get("prompt_tokens"));
    let output = n(u.get("completion_tokens"));
    let total = u
        .get("total_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(input + output);
    let cached = n(u
        .get("prompt_tokens_details")
        .and_then(|d| d.get("cached_tokens")));
    let reasoning = n(u
        .get("completion_tokens_details")
        .and_then(|d| d.get("reasoning_tokens")));
    json!({"input_tokens": input, "input_tokens_details": {"cached_tokens": cached},
           "output_tokens": output, "output_tokens_details": {"reasoning_tokens": reasoning},
           "total_tokens": total})
}

/// A `response` object. It carries `output_text` (the text of every `output_text` part), which
/// the official SDKs otherwise compute themselves, so raw HTTP clients and the SDKs' stream
/// helpers read the answer the same way.
pub fn response(
    head: &Head,
    status: Status,
    output: Vec<Value>,
    usage: Value,
    error: Value,
) -> Value {
    let incomplete = match status {
        Status::Incomplete(reason) => json!({"reason": reason}),
        _ => Value::Null,
    };
    let output_text: String = output
        .iter()
        .filter(|i| i.get("type").and_then(Value::as_str) == Some("message"))
        .filter_map(|i| i.get("content").and_then(Value::as_array))
        .flatten()
        .filter(|p| p.get("type").and_then(Value::as_str) == Some("output_text"))
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    json!({
        "id": head.response_id(),
        "object": "response",
        "created_at": head.created_at,
        "status": status.as_str(),
        "background": false,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": null,
        "max_output_tokens": null,
        "metadata": {},
        "model": head.model,
        "output": output,
        "output_text": output_text,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": false,
        "temperature": null,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
        "truncation": "disabled",
        "usage": usage,
        "user": null
    })
}

/// A message output item.
pub fn message_item(id: &str, status: &str, content: Vec<Value>) -> Value {
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

/// An `output_text` content part.
pub fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// A `function_call` output item.
pub fn call_item(call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"id": format!("fc_{call_id}"), "type": "function_call", "status": status,
           "call_id": call_id, "name": name, "arguments": arguments})
}
