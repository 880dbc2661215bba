//! Anthropic SSE → OpenAI `chat.completion.chunk` SSE.
//!
//! | Anthropic event | Pivot output |
//! |---|---|
//! | `message_start` | role chunk `{"role":"assistant","content":""}` (not content); id, model, input/cache usage remembered |
//! | `content_block_start` text / thinking | nothing (or the block's initial text, if any) |
//! | `text_delta` | `delta.content` |
//! | `thinking_delta` | `delta.reasoning_content` (the DeepSeek-style field); `signature_delta` dropped |
//! | `content_block_start` tool_use | `delta.tool_calls[{index: tool ordinal, id, type, function{name, arguments:""}}]` |
//! | `input_json_delta` | `delta.tool_calls[{index, function{arguments}}]` (empty fragments skipped) |
//! | `content_block_stop` of a tool that got no arguments | `arguments: "{}"`, so clients can parse them |
//! | `message_delta` | finish chunk (`finish_reason` mapped), `Finish`, usage-only chunk (if the client asked), `Usage` |
//! | `message_stop` | `Done` |
//! | `error` | `Error`, classified by error type |
//! | `ping`, unknown events, server-tool and redacted-thinking blocks, citations | nothing |
//!
//! The event kind is the JSON `type` of the data (the `event:` name when there is none).

use super::errors::in_band_error;
use super::response::{finish_reason, Tokens};
use crate::providers::framing::{AfterFinish, Decoder, SseTranslator};
use crate::providers::StreamEvent;
use crate::resilience::{ErrorClass, UpstreamError};
use crate::sse::{encode_data, SseEvent};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Longest single SSE line accepted from an upstream.
const MAX_LINE: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Block {
    Text,
    Thinking,
    /// A client tool call: its position among tool calls, and whether arguments were sent.
    Tool {
        ordinal: u64,
        has_args: bool,
    },
    Other,
}

/// Translates one Anthropic stream into pivot chunks, statefully across `feed` calls (the
/// framing is `SseTranslator`'s).
///
/// Invariants: feeding the bytes whole or split at any points yields the same events; after an
/// `Error` the translator emits nothing more; after the finish (`message_delta`: finish chunk,
/// `Finish`, usage) it emits at most `Done` (a later error or malformed event is ignored: the
/// answer is complete); after `Done` (`message_stop`) it emits nothing more; `end` reports a
/// cut unless the finish or `Done` was seen.
pub struct AnthropicDecoder {
    /// Forward the usage-only chunk to the client (it asked with `stream_options.include_usage`).
    client_wants_usage: bool,
    id: String,
    model: Option<String>,
    tokens: Tokens,
    /// Content blocks seen, by Anthropic block index (a map: a stream may hold many).
    blocks: BTreeMap<u64, Block>,
    next_tool: u64,
    finished: bool,
    done: bool,
    /// Also emit each upstream event as it arrived (`StreamEvent::Native`).
    native: bool,
}

pub type StreamTranslator = SseTranslator<AnthropicDecoder>;

impl SseTranslator<AnthropicDecoder> {
    pub fn new(client_wants_usage: bool) -> Self {
        SseTranslator::with_decoder(AnthropicDecoder {
            client_wants_usage,
            id: String::new(),
            model: None,
            tokens: Tokens::default(),
            blocks: BTreeMap::new(),
            next_tool: 0,
            finished: false,
            done: false,
            native: false,
        })
    }

    /// In native mode every event except errors is also emitted as it arrived, before its
    /// pivot chunks, for a client that speaks Anthropic too.
    pub fn with_native(mut self, native: bool) -> Self {
        self.decoder.native = native;
        self
    }
}

impl Decoder for AnthropicDecoder {
    const MAX_LINE: usize = MAX_LINE;
    const MAX_LINE_TEXT: &'static str = "1 MiB";
    /// `message_stop` follows the finish; anything malformed after it is trailing noise.
    const AFTER_FINISH: AfterFinish = AfterFinish::DecodeQuietly;

    fn complete(&self) -> bool {
        self.finished || self.done
    }

    /// The model named in `message_start`.
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    fn event(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), UpstreamError> {
        self.decode(ev, out)
    }
}

impl AnthropicDecoder {
    fn decode(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), UpstreamError> {
        let data = ev.data.trim();
        if self.done || data.is_empty() {
            return Ok(());
        }
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) if self.finished => return Ok(()), // the answer is complete; trailing noise
            Err(e) => {
                let msg = format!("upstream sent a malformed stream event: {e}");
                return Err(UpstreamError::new(ErrorClass::MalformedResponse, msg));
            }
        };
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(ev.event.as_deref())
            .unwrap_or("");
        if self.native && kind != "error" && (!self.finished || kind == "message_stop") {
            // Event names are Anthropic's snake_case words; anything else (a line break could
            // inject events) is passed on as data only.
            let mut bytes = Vec::new();
            if kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') && !kind.is_empty() {
                bytes.extend_from_slice(format!("event: {kind}\n").as_bytes());
            }
            bytes.extend_from_slice(&crate::sse::encode_data(data));
            out.push(StreamEvent::Native(bytes));
        }
        match kind {
            "message_stop" => {
                self.done = true;
                out.push(StreamEvent::Done);
            }
            _ if self.finished => {} // the answer is complete: only `message_stop` matters
            "error" => return Err(in_band_error(v.get("error").unwrap_or(&Value::Null))),
            "message_delta" => self.message_delta(&v, out),
            "message_start" => {
                let m = v.get("message");
                let field = |k: &str| m.and_then(|m| m.get(k)).and_then(Value::as_str);
                if let Some(id) = field("id") {
                    self.id = id.to_string();
                }
                if let Some(model) = field("model") {
                    self.model = Some(model.to_string());
                }
                if let Some(u) = m.and_then(|m| m.get("usage")) {
                    self.tokens.merge(u);
                }
                let bytes = self.chunk(json!({"role": "assistant", "content": ""}), None);
                out.push(StreamEvent::Chunk {
                    bytes,
                    content: false,
                    facts: None,
                });
            }
            "content_block_start" => self.block_start(&v, out),
            "content_block_delta" => return self.block_delta(&v, out),
            "content_block_stop" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                if let Some(Block::Tool {
                    ordinal,
                    has_args: false,
                }) = self.block(index)
                {
                    self.set_block(
                        index,
                        Block::Tool {
                            ordinal,
                            has_args: true,
                        },
                    );
                    self.args(ordinal, "{}", out);
                }
            }
            _ => {} // ping and event types added after this was written
        }
        Ok(())
    }

    fn block_start(&mut self, v: &Value, out: &mut Vec<StreamEvent>) {
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let cb = v.get("content_block").unwrap_or(&Value::Null);
        let s = |k: &str| cb.get(k).and_then(Value::as_str).unwrap_or("");
        let block = match s("type") {
            "text" => {
                self.content("content", s("text"), out);
                Block::Text
            }
            "thinking" => {
                self.content("reasoning_content", s("thinking"), out);
                Block::Thinking
            }
            "tool_use" => {
                let ordinal = self.next_tool;
                self.next_tool += 1;
                let delta = json!({"tool_calls": [{
                    "index": ordinal,
                    "id": s("id"),
                    "type": "function",
                    "function": {"name": s("name"), "arguments": ""},
                }]});
                let bytes = self.chunk(delta, None);
                out.push(StreamEvent::Chunk {
                    bytes,
                    content: true,
                    facts: None,
                });
                // Anthropic sends `input: {}` here and the real input as deltas; a proxy
                // that sends the whole input up front is honoured.
                let has_args = match cb.get("input") {
                    Some(Value::Object(o)) if !o.is_empty() => {
                        let args = Value::Object(o.clone()).to_string();
                        self.args(ordinal, &args, out);
                        true
                    }
                    _ => false,
                };
                Block::Tool { ordinal, has_args }
            }
            _ => Block::Other,
        };
        self.set_block(index, block);
    }

    fn block_delta(&mut self, v: &Value, out: &mut Vec<StreamEvent>) -> Result<(), UpstreamError> {
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let delta = v.get("delta").unwrap_or(&Value::Null);
        let s = |k: &str| delta.get(k).and_then(Value::as_str).unwrap_or("");
        match s("type") {
            "text_delta" => self.content("content", s("text"), out),
            "thinking_delta" => self.content("reasoning_content", s("thinking"), out),
            "input_json_delta" => match self.block(index) {
                Some(Block::Tool { ordinal, .. }) => {
                    let partial = s("partial_json");
                    if !partial.is_empty() {
                        self.set_block(
                            index,
                            Block::Tool {
                                ordinal,
                                has_args: true,
                            },
                        );
                        self.args(ordinal, partial, out);
                    }
                }
                Some(_) => {} // server-tool input: not shown to the client
                None => {
                    let msg = format!("upstream sent tool input for unknown block {index}");
                    return Err(UpstreamError::new(ErrorClass::MalformedResponse, msg));
                }
            },
            _ => {} // signature_delta, citations_delta, …
        }
        Ok(())
    }

    fn message_delta(&mut self, v: &Value, out: &mut Vec<StreamEvent>) {
        if let Some(u) = v.get("usage") {
            self.tokens.merge(u);
        }
        self.finished = true;
        let stop = v
            .get("delta")
            .and_then(|d| d.get("stop_reason"))
            .and_then(Value::as_str);
        let bytes = self.chunk(json!({}), Some(finish_reason(stop)));
        out.push(StreamEvent::Chunk {
            bytes,
            content: true,
            facts: None,
        });
        out.push(StreamEvent::Finish);
        if self.client_wants_usage {
            let chunk = json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": 0,
                "model": self.model.as_deref().unwrap_or(""),
                "choices": [],
                "usage": self.tokens.openai(),
            });
            let bytes = encode_data(&chunk.to_string());
            out.push(StreamEvent::Chunk {
                bytes,
                content: false,
                facts: None,
            });
        }
        out.push(StreamEvent::Usage(self.tokens.usage()));
    }

    fn content(&self, field: &str, text: &str, out: &mut Vec<StreamEvent>) {
        if text.is_empty() {
            return;
        }
        let bytes = self.chunk(json!({ field: text }), None);
        out.push(StreamEvent::Chunk {
            bytes,
            content: true,
            facts: None,
        });
    }

    fn args(&self, ordinal: u64, args: &str, out: &mut Vec<StreamEvent>) {
        let delta = json!({"tool_calls": [{"index": ordinal, "function": {"arguments": args}}]});
        let bytes = self.chunk(delta, None);
        out.push(StreamEvent::Chunk {
            bytes,
            content: true,
            facts: None,
        });
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Vec<u8> {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": self.model.as_deref().unwrap_or(""),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        encode_data(&chunk.to_string())
    }

    fn block(&self, index: u64) -> Option<Block> {
        self.blocks.get(&index).copied()
    }

    fn set_block(&mut self, index: u64, block: Block) {
        self.blocks.insert(index, block);
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
