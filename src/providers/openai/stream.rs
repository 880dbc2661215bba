//! OpenAI SSE → OpenAI SSE translator with explicit state. It forwards each upstream event's
//! bytes unchanged (no re-serialisation), and tells the engine what each event means: content
//! (the commit point), finish, usage, end marker, in-band error, or malformed data.
//!
//! Invariant: after an `Error` event the translator emits nothing more; the stream is over.

use super::errors::in_band_class;
use super::shape::{Field, Shape};
use crate::providers::framing::{AfterFinish, Decoder, SseTranslator};
use crate::providers::{ChunkFacts, StreamEvent};
use crate::resilience::{ErrorClass, UpstreamError};
use crate::sse::{encode_data, SseEvent};
use crate::usage::Usage;
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeSet;

/// Longest single SSE line accepted from an upstream (a chunk is normally < 2 KB).
const MAX_LINE: usize = 1 << 20;

/// Most choices that may be unfinished at once (OpenAI's `n` is at most 128). A megabyte
/// line holds tens of thousands of choice indexes: past this many the stream is malformed.
const MAX_OPEN_CHOICES: usize = 1024;

/// What a chunk's event is read for: nothing of a delta is copied, only whether it holds
/// anything, and the few strings the engine records are borrowed from the event (once per
/// chunk, so no `Value` tree).
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<Choice<'a>>,
    usage: Option<Value>,
    error: Option<Value>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
}

/// What names the answer, read from a stream's chunks until one names an id.
#[derive(Deserialize)]
struct Naming<'a> {
    #[serde(default, borrow)]
    id: Field<'a>,
    #[serde(default, borrow)]
    model: Field<'a>,
    created: Option<Value>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default)]
    index: u64,
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Field<'a>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Field<'a>,
    #[serde(default)]
    tool_calls: Shape,
    #[serde(default)]
    refusal: Shape,
    #[serde(default)]
    function_call: Shape,
    #[serde(default)]
    reasoning_content: Shape,
    #[serde(default)]
    reasoning: Shape,
}

/// The OpenAI format's reading of its stream (the framing is `SseTranslator`'s).
pub struct OpenAiDecoder {
    /// Forward usage-only chunks to the client (it asked with `stream_options.include_usage`).
    client_wants_usage: bool,
    /// Choice indexes that have not finished yet (choice 0 is expected until seen finishing);
    /// at most `MAX_OPEN_CHOICES`.
    open_choices: BTreeSet<u64>,
    finished: bool,
    model: Option<String>,
    /// A chunk's facts named an id: later facts leave out `id`, `model` and `created` (the
    /// engine keeps only the first named ones).
    named: bool,
}

pub type StreamTranslator = SseTranslator<OpenAiDecoder>;

impl SseTranslator<OpenAiDecoder> {
    pub fn new(client_wants_usage: bool) -> Self {
        SseTranslator::with_decoder(OpenAiDecoder {
            client_wants_usage,
            open_choices: BTreeSet::from([0]),
            finished: false,
            model: None,
            named: false,
        })
    }
}

impl Decoder for OpenAiDecoder {
    const MAX_LINE: usize = MAX_LINE;
    const MAX_LINE_TEXT: &'static str = "1 MiB";
    /// A malformed chunk fails the stream also after the finish (the engine keeps a
    /// finished answer whatever follows).
    const AFTER_FINISH: AfterFinish = AfterFinish::Decode;

    fn complete(&self) -> bool {
        self.finished
    }

    /// The model the upstream named in its chunks.
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    fn event(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), UpstreamError> {
        let data = ev.data.trim();
        if data == "[DONE]" {
            out.push(StreamEvent::Done);
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        let chunk: Chunk = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("upstream sent a malformed stream chunk: {e}");
                return Err(UpstreamError::new(ErrorClass::MalformedResponse, msg));
            }
        };
        if let Some(err) = chunk.error.as_ref().filter(|e| !e.is_null()) {
            return Err(in_band_error(err));
        }
        if ev.event.as_deref() == Some("error") {
            let msg = format!("upstream error event: {data}");
            return Err(UpstreamError::new(ErrorClass::ServerError, msg));
        }
        if self.model.is_none() {
            self.model = chunk.model.as_deref().map(str::to_string);
        }
        let usage = chunk.usage.as_ref().and_then(Usage::from_openai);
        let mut content = false;
        for c in &chunk.choices {
            if c.delta.as_ref().is_some_and(Delta::has_content) {
                content = true;
            }
            if !self.finished {
                self.open_choices.insert(c.index);
                if self.open_choices.len() > MAX_OPEN_CHOICES {
                    let msg = format!("upstream opened more than {MAX_OPEN_CHOICES} choices");
                    return Err(UpstreamError::new(ErrorClass::MalformedResponse, msg));
                }
            }
            if c.finish_reason.shape.present() {
                content = true;
                self.open_choices.remove(&c.index);
            }
        }
        let usage_only = chunk.choices.is_empty() && usage.is_some();
        if !usage_only || self.client_wants_usage {
            out.push(StreamEvent::Chunk {
                bytes: encode_data(data),
                content,
                facts: self.facts(&chunk, data).map(Box::new),
            });
        }
        if let Some(u) = usage {
            out.push(StreamEvent::Usage(u));
        }
        if !self.finished && self.open_choices.is_empty() {
            self.finished = true;
            out.push(StreamEvent::Finish);
        }
        Ok(())
    }
}

impl OpenAiDecoder {
    /// What the chunk (whose JSON is `data`) says of choice 0, as `Delivered::observe` would
    /// read it from the forwarded bytes. None: left to `observe` (a chunk whose naming fields
    /// are odd, such as a repeated key).
    fn facts(&mut self, chunk: &Chunk<'_>, data: &str) -> Option<ChunkFacts> {
        let first = chunk.choices.first();
        let delta = first.and_then(|c| c.delta.as_ref());
        let mut facts = ChunkFacts {
            other_choice: chunk.choices.len() > 1 || first.is_some_and(|c| c.index != 0),
            text: delta.and_then(|d| d.content.text.as_deref().map(str::to_string)),
            tool_call: delta.is_some_and(|d| d.tool_calls.present()),
            other_content: delta
                .is_some_and(|d| d.reasoning_content.present() || d.refusal.present()),
            finish_reason: first.and_then(|c| {
                let f = &c.finish_reason;
                f.shape
                    .present()
                    .then(|| f.text.as_deref().unwrap_or("").to_string())
            }),
            ..ChunkFacts::default()
        };
        if !self.named {
            // Until a chunk names an id (normally only the first chunk is read again).
            let naming: Naming = serde_json::from_str(data).ok()?;
            facts.id = naming.id.text.map(Cow::into_owned);
            facts.model = naming.model.text.map(Cow::into_owned);
            facts.created = naming.created;
            self.named = facts.id.is_some();
        }
        Some(facts)
    }
}

impl Delta<'_> {
    fn has_content(&self) -> bool {
        [
            self.content.shape,
            self.tool_calls,
            self.refusal,
            self.function_call,
            self.reasoning_content,
            self.reasoning,
        ]
        .iter()
        .any(|s| s.filled())
    }
}

fn in_band_error(err: &Value) -> UpstreamError {
    let s = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let code = err
        .get("code")
        .map(|c| {
            c.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| c.to_string())
        })
        .unwrap_or_default();
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| err.to_string());
    let class = in_band_class(&code, &s("type"), &message.to_ascii_lowercase());
    UpstreamError::new(class, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], wants_usage: bool) -> Vec<StreamEvent> {
        let mut t = StreamTranslator::new(wants_usage);
        let mut out = Vec::new();
        t.feed(input, &mut out);
        t.end(&mut out);
        out
    }

    #[test]
    fn role_chunk_is_not_content() {
        let ev = run(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n", false);
        assert!(matches!(&ev[0], StreamEvent::Chunk { content: false, .. }));
        assert!(matches!(&ev[1], StreamEvent::Error(e) if e.class == ErrorClass::StreamCut));
    }

    #[test]
    fn usage_chunk_hidden_unless_asked() {
        let body = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";
        let hidden = run(body, false);
        let shown = run(body, true);
        let chunks = |ev: &[StreamEvent]| {
            ev.iter()
                .filter(|e| matches!(e, StreamEvent::Chunk { .. }))
                .count()
        };
        assert_eq!(chunks(&hidden), 2);
        assert_eq!(chunks(&shown), 3);
        assert!(hidden.contains(&StreamEvent::Finish));
        assert!(hidden.contains(&StreamEvent::Usage(Usage {
            prompt_tokens: 3,
            completion_tokens: 1,
            cached_tokens: None,
            cache_write_tokens: None,
            reasoning_tokens: None
        })));
        assert_eq!(hidden.last(), Some(&StreamEvent::Done));
    }

    #[test]
    fn malformed_and_in_band_errors() {
        let ev = run(b"data: {not json\n\n", false);
        assert!(
            matches!(&ev[0], StreamEvent::Error(e) if e.class == ErrorClass::MalformedResponse)
        );
        let ev = run(
            b"data: {\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\"}}\n\n",
            false,
        );
        assert!(
            matches!(&ev[0], StreamEvent::Error(e) if e.class == ErrorClass::Overloaded && e.message == "Overloaded")
        );
        assert_eq!(ev.len(), 1);
    }

    /// `{"choices":[{"index":first},…,{"index":first+n-1}]}`, all finishing if `finish`.
    fn choices_event(first: u64, n: u64, finish: bool) -> Vec<u8> {
        let choice = |i| match finish {
            true => serde_json::json!({"index": i, "finish_reason": "stop"}),
            false => serde_json::json!({ "index": i }),
        };
        let choices: Vec<Value> = (first..first + n).map(choice).collect();
        let data = serde_json::json!({ "choices": choices }).to_string();
        format!("data: {data}\n\n").into_bytes()
    }

    #[test]
    fn choice_indexes_are_bounded() {
        // Up to the limit, every choice is tracked until it finishes.
        let n = MAX_OPEN_CHOICES as u64;
        let mut input = choices_event(0, n, false);
        input.extend(choices_event(0, n - 1, true));
        let ev = run(&input, false);
        assert!(
            matches!(&ev[..], [StreamEvent::Chunk { .. }, StreamEvent::Chunk { .. }, StreamEvent::Error(e)] if e.class == ErrorClass::StreamCut)
        );
        input.extend(choices_event(n - 1, 1, true));
        let ev = run(&input, false);
        assert_eq!(ev.last(), Some(&StreamEvent::Finish));
        // Tens of thousands of distinct indexes in one event (a hostile upstream; the set
        // scan they used to cost was quadratic): a clean error, before the event is passed on.
        let ev = run(&choices_event(0, 50_000, false), false);
        assert!(
            matches!(&ev[..], [StreamEvent::Error(e)] if e.class == ErrorClass::MalformedResponse
                && e.message == "upstream opened more than 1024 choices"),
            "{ev:?}"
        );
        // Choices that finish as they come never add up.
        let ev = run(&choices_event(1, 25_000, true), false);
        assert!(
            matches!(&ev[..], [StreamEvent::Chunk { .. }, StreamEvent::Error(e)] if e.class == ErrorClass::StreamCut)
        );
    }

    #[test]
    fn overlong_line_comes_after_the_events_before_it() {
        let mut input =
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n".to_vec();
        input.extend_from_slice(b"data: ");
        input.resize(input.len() + MAX_LINE, b'x');
        let ev = run(&input, false);
        assert!(matches!(&ev[0], StreamEvent::Chunk { content: true, .. }));
        assert!(
            matches!(&ev[1..], [StreamEvent::Error(e)] if e.class == ErrorClass::MalformedResponse)
        );
    }

    #[test]
    fn data_over_the_limit_across_lines_is_malformed() {
        // Short lines, one event: its data passes the limit without any line doing so.
        let mut input =
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n".to_vec();
        let line = format!("data: {}\n", "x".repeat(1023));
        for _ in 0..(MAX_LINE / 1024 + 1) {
            input.extend_from_slice(line.as_bytes());
        }
        let ev = run(&input, false);
        assert!(matches!(&ev[0], StreamEvent::Chunk { content: true, .. }));
        assert!(matches!(&ev[1..], [StreamEvent::Error(e)]
            if e.class == ErrorClass::MalformedResponse
                && e.message == "upstream sent an SSE event whose data is over 1 MiB"));
    }
}
