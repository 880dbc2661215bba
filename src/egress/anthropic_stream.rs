//! Pivot chunk stream → Anthropic Messages stream events.
//!
//! State: whether `message_start` went out, the one content block currently open (Anthropic
//! blocks never interleave: a new block closes the previous one), the finish reason and the
//! usage seen so far. Invariant: every opened block is closed before `message_delta`, and the
//! stream ends with exactly one of `message_stop` (complete) or `error` (broken).

use super::anthropic_message::stop_reason;
use crate::api::error::ErrorKind;
use crate::resilience::{ErrorClass, UpstreamError};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Default, Clone)]
pub struct AnthropicStreamEncoder {
    started: bool,
    ended: bool,
    open: Option<Block>,
    next_index: u64,
    finish: Option<String>,
    prompt_tokens: u64,
    completion_tokens: u64,
    cached_tokens: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    Text(u64),
    Thinking(u64),
    /// A tool call block for the pivot's tool-call index.
    Tool(u64, u64),
}

impl Block {
    fn index(self) -> u64 {
        match self {
            Block::Text(i) | Block::Thinking(i) | Block::Tool(i, _) => i,
        }
    }
}

#[derive(Deserialize)]
struct Chunk {
    id: Option<String>,
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    content: Option<String>,
    reasoning_content: Option<String>,
    tool_calls: Option<Vec<ToolCall>>,
}

#[derive(Deserialize)]
struct ToolCall {
    #[serde(default)]
    index: u64,
    id: Option<String>,
    function: Option<Function>,
}

#[derive(Deserialize)]
struct Function {
    name: Option<String>,
    arguments: Option<String>,
}

fn event(kind: &str, data: &Value) -> Vec<u8> {
    format!("event: {kind}\ndata: {data}\n\n").into_bytes()
}

impl AnthropicStreamEncoder {
    pub fn chunk(&mut self, sse: &[u8], out: &mut Vec<Vec<u8>>) {
        if self.ended {
            return;
        }
        let text = String::from_utf8_lossy(sse);
        let data = text
            .trim()
            .strip_prefix("data:")
            .map(str::trim)
            .unwrap_or("");
        let Ok(chunk) = serde_json::from_str::<Chunk>(data) else {
            return;
        };
        if !self.started {
            self.started = true;
            let id = chunk.id.clone().unwrap_or_else(|| "msg_gateway".into());
            let message = json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant",
                "model": chunk.model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}}});
            out.push(event("message_start", &message));
        }
        if let Some(u) = &chunk.usage {
            let n = |k: &str| u.get(k).and_then(Value::as_u64);
            self.prompt_tokens = n("prompt_tokens").unwrap_or(self.prompt_tokens);
            self.completion_tokens = n("completion_tokens").unwrap_or(self.completion_tokens);
            if let Some(c) = u
                .get("prompt_tokens_details")
                .and_then(|d| d.get("cached_tokens"))
                .and_then(Value::as_u64)
            {
                self.cached_tokens = c;
            }
        }
        for choice in chunk.choices {
            if let Some(r) = choice.delta.reasoning_content.filter(|s| !s.is_empty()) {
                self.ensure(Block::Thinking(self.next_index), out);
                let idx = self.open.map_or(0, Block::index);
                out.push(event("content_block_delta", &json!({"type": "content_block_delta", "index": idx, "delta": {"type": "thinking_delta", "thinking": r}})));
            }
            if let Some(t) = choice.delta.content.filter(|s| !s.is_empty()) {
                self.ensure(Block::Text(self.next_index), out);
                let idx = self.open.map_or(0, Block::index);
                out.push(event("content_block_delta", &json!({"type": "content_block_delta", "index": idx, "delta": {"type": "text_delta", "text": t}})));
            }
            for call in choice.delta.tool_calls.unwrap_or_default() {
                let (name, args) = match call.function {
                    Some(f) => (f.name, f.arguments),
                    None => (None, None),
                };
                let is_current = matches!(self.open, Some(Block::Tool(_, i)) if i == call.index);
                if !is_current {
                    self.close(out);
                    let idx = self.next_index;
                    self.next_index += 1;
                    self.open = Some(Block::Tool(idx, call.index));
                    let block = json!({"type": "tool_use", "id": call.id.unwrap_or_default(), "name": name.unwrap_or_default(), "input": {}});
                    out.push(event("content_block_start", &json!({"type": "content_block_start", "index": idx, "content_block": block})));
                }
                if let Some(a) = args.filter(|a| !a.is_empty()) {
                    let idx = self.open.map_or(0, Block::index);
                    out.push(event("content_block_delta", &json!({"type": "content_block_delta", "index": idx, "delta": {"type": "input_json_delta", "partial_json": a}})));
                }
            }
            if let Some(f) = choice.finish_reason {
                self.finish = Some(f);
            }
        }
    }

    /// Opens `want` unless a block of that kind is already open.
    fn ensure(&mut self, want: Block, out: &mut Vec<Vec<u8>>) {
        let same = matches!(
            (self.open, want),
            (Some(Block::Text(_)), Block::Text(_)) | (Some(Block::Thinking(_)), Block::Thinking(_))
        );
        if same {
            return;
        }
        self.close(out);
        let idx = self.next_index;
        self.next_index += 1;
        let (block, opened) = match want {
            Block::Thinking(_) => (
                json!({"type": "thinking", "thinking": ""}),
                Block::Thinking(idx),
            ),
            _ => (json!({"type": "text", "text": ""}), Block::Text(idx)),
        };
        self.open = Some(opened);
        out.push(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": idx, "content_block": block}),
        ));
    }

    fn close(&mut self, out: &mut Vec<Vec<u8>>) {
        if let Some(b) = self.open.take() {
            out.push(event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": b.index()}),
            ));
        }
    }

    pub fn done(&mut self, out: &mut Vec<Vec<u8>>) {
        if self.ended {
            return;
        }
        self.close(out);
        self.ended = true;
        let usage = json!({"input_tokens": self.prompt_tokens.saturating_sub(self.cached_tokens), "output_tokens": self.completion_tokens,
                           "cache_read_input_tokens": self.cached_tokens});
        let delta = json!({"type": "message_delta", "delta": {"stop_reason": stop_reason(self.finish.as_deref()), "stop_sequence": null}, "usage": usage});
        out.push(event("message_delta", &delta));
        out.push(event("message_stop", &json!({"type": "message_stop"})));
    }

    pub fn error(&mut self, e: &UpstreamError, message: &str, out: &mut Vec<Vec<u8>>) {
        if self.ended {
            return;
        }
        self.ended = true;
        out.push(error_event(e, message));
    }

    /// Ends the stream with an error the gateway raised (not the upstream).
    pub fn gateway_error(&mut self, kind: ErrorKind, message: &str, out: &mut Vec<Vec<u8>>) {
        if self.ended {
            return;
        }
        self.ended = true;
        out.push(gateway_error_event(kind, message));
    }
}

/// An Anthropic `error` stream event the gateway itself sends (an answer it cut).
pub fn gateway_error_event(kind: ErrorKind, message: &str) -> Vec<u8> {
    event(
        "error",
        &json!({"type": "error", "error": {"type": kind.anthropic_type(), "message": message}}),
    )
}

/// An Anthropic `error` stream event for a failure after the stream started.
pub fn error_event(e: &UpstreamError, message: &str) -> Vec<u8> {
    let kind = match e.class {
        ErrorClass::Overloaded => ErrorKind::Overloaded,
        ErrorClass::RateLimited => ErrorKind::RateLimited,
        ErrorClass::TimeoutIdle
        | ErrorClass::TimeoutAttempt
        | ErrorClass::TimeoutFirstToken
        | ErrorClass::TimeoutConnect => ErrorKind::Timeout,
        _ => ErrorKind::Internal,
    }
    .anthropic_type();
    event(
        "error",
        &json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::encode_data;

    fn chunk(delta: Value, finish: Option<&str>) -> Vec<u8> {
        encode_data(&json!({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).to_string())
    }

    fn events(out: &[Vec<u8>]) -> Vec<(String, Value)> {
        out.iter()
            .map(|b| {
                let s = String::from_utf8(b.clone()).unwrap();
                let mut lines = s.lines();
                let kind = lines
                    .next()
                    .unwrap()
                    .strip_prefix("event: ")
                    .unwrap()
                    .to_string();
                let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
                (kind, serde_json::from_str(data).unwrap())
            })
            .collect()
    }

    #[test]
    fn text_then_tool_call_then_finish() {
        let mut enc = AnthropicStreamEncoder::default();
        let mut out = Vec::new();
        enc.chunk(
            &chunk(json!({"role": "assistant", "content": ""}), None),
            &mut out,
        );
        enc.chunk(&chunk(json!({"content": "Hi"}), None), &mut out);
        enc.chunk(&chunk(json!({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}]}), None), &mut out);
        enc.chunk(
            &chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":1}"}}]}),
                None,
            ),
            &mut out,
        );
        enc.chunk(&chunk(json!({}), Some("tool_calls")), &mut out);
        enc.chunk(&encode_data(&json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}).to_string()), &mut out);
        enc.done(&mut out);
        let ev = events(&out);
        let kinds: Vec<&str> = ev.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(ev[4].1["content_block"]["name"], "f");
        assert_eq!(ev[4].1["index"], 1);
        assert_eq!(ev[5].1["delta"]["partial_json"], "{\"a\":1}");
        assert_eq!(ev[7].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(ev[7].1["usage"]["output_tokens"], 3);
    }

    #[test]
    fn error_ends_the_stream() {
        let mut enc = AnthropicStreamEncoder::default();
        let mut out = Vec::new();
        enc.chunk(&chunk(json!({"content": "Hi"}), None), &mut out);
        enc.error(
            &UpstreamError::new(ErrorClass::Overloaded, "x"),
            "Overloaded (incomplete)",
            &mut out,
        );
        enc.done(&mut out);
        let ev = events(&out);
        assert_eq!(ev.last().unwrap().0, "error");
        assert_eq!(ev.last().unwrap().1["error"]["type"], "overloaded_error");
        assert!(!ev.iter().any(|(k, _)| k == "message_stop"));
    }
}
