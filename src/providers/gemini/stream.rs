//! Gemini SSE (`streamGenerateContent?alt=sse`) → OpenAI `chat.completion.chunk` events.
//!
//! Gemini sends one `data: {GenerateContentResponse}` per event (CRLF line endings in
//! practice), `usageMetadata` on every event, `finishReason` on the last event of each
//! candidate, and no end marker: the stream ends when the connection closes. Per candidate
//! this emits a role chunk (not content) the first time it appears, then one chunk per run
//! of text parts and one per `functionCall` (id, name and complete arguments at once), then
//! a finish chunk. Once every candidate seen has finished: `Finish`, then the latest usage
//! (a `choices: []` chunk only if the client asked for usage, and always `Usage`). `Done`
//! is never emitted, since Gemini has no end marker. A blocked prompt, a filter stop before
//! any content, an `{"error":…}` event or malformed JSON is an `Error`; a close before the
//! finish is a `StreamCut`.

use super::errors::{error_object, in_band_error};
use super::response::{
    blocked_prompt, candidate_index, finish_reason, is_filter, pieces, response_id, usage_from,
    Piece,
};
use crate::providers::framing::{AfterFinish, Decoder, SseTranslator};
use crate::providers::StreamEvent;
use crate::resilience::{ErrorClass, UpstreamError};
use crate::sse::{encode_data, SseEvent};
use crate::usage::Usage;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Longest single SSE line accepted from the upstream (inline images can make events big).
const MAX_LINE: usize = 8 << 20;

/// Most candidates a stream may have (Gemini's `candidateCount` is at most 8). An 8 MiB line
/// holds hundreds of thousands of candidate indexes: past this many the stream is malformed.
const MAX_CANDIDATES: usize = 1024;

/// Per-candidate progress.
#[derive(Default)]
struct Candidate {
    /// Tool calls emitted so far (their `index` in the deltas).
    calls: usize,
    finished: bool,
}

/// Translates one Gemini stream (the framing is `SseTranslator`'s).
///
/// Invariant: the output depends only on the bytes fed, never on how they were split; after
/// an `Error` nothing more is emitted, and after `Finish` later upstream data is ignored, so
/// each stream yields at most one `Finish` and at most one `Error`, never both.
pub struct GeminiDecoder {
    client_wants_usage: bool,
    /// `id` of every chunk: the first `responseId` seen.
    id: Option<String>,
    /// Stem of synthesized tool-call ids (sanitized first `responseId`).
    id_base: Option<String>,
    model: Option<String>,
    /// By candidate index; at most `MAX_CANDIDATES`.
    candidates: BTreeMap<u64, Candidate>,
    /// Tool calls emitted over all candidates (numbers the synthesized ids).
    calls_total: usize,
    /// Some answer content has been emitted.
    content_seen: bool,
    usage: Option<(Usage, Value)>,
    finished: bool,
}

pub type StreamTranslator = SseTranslator<GeminiDecoder>;

impl SseTranslator<GeminiDecoder> {
    pub fn new(client_wants_usage: bool) -> Self {
        SseTranslator::with_decoder(GeminiDecoder {
            client_wants_usage,
            id: None,
            id_base: None,
            model: None,
            candidates: BTreeMap::new(),
            calls_total: 0,
            content_seen: false,
            usage: None,
            finished: false,
        })
    }
}

impl Decoder for GeminiDecoder {
    const MAX_LINE: usize = MAX_LINE;
    const MAX_LINE_TEXT: &'static str = "8 MiB";
    /// Gemini has no end marker: once every candidate finished, later data is ignored.
    const AFTER_FINISH: AfterFinish = AfterFinish::Ignore;

    fn complete(&self) -> bool {
        self.finished
    }

    /// The model the upstream named (`modelVersion`).
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    fn event(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), UpstreamError> {
        self.decode(&ev.data, out)
    }
}

impl GeminiDecoder {
    fn decode(&mut self, data: &str, out: &mut Vec<StreamEvent>) -> Result<(), UpstreamError> {
        let data = data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                let msg = format!("upstream sent a malformed stream chunk: {e}");
                return Err(UpstreamError::new(ErrorClass::MalformedResponse, msg));
            }
        };
        if let Some(err) = error_object(&v) {
            return Err(in_band_error(err, data.as_bytes()));
        }
        if self.model.is_none() {
            self.model = v
                .get("modelVersion")
                .and_then(Value::as_str)
                .map(Into::into);
        }
        if self.id.is_none() {
            self.id = v.get("responseId").and_then(Value::as_str).map(Into::into);
            self.id_base = self.id.is_some().then(|| response_id(&v));
        }
        if let Some(u) = v.get("usageMetadata").and_then(usage_from) {
            self.usage = Some(u);
        }
        let candidates = v
            .get("candidates")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if candidates.is_empty() {
            return blocked_prompt(&v).map_or(Ok(()), Err);
        }
        for (pos, c) in candidates.iter().enumerate() {
            self.candidate(c, candidate_index(c, pos), out)?;
        }
        if !self.candidates.is_empty() && self.candidates.values().all(|c| c.finished) {
            self.finish(out);
        }
        Ok(())
    }

    fn candidate(
        &mut self,
        c: &Value,
        index: u64,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), UpstreamError> {
        if !self.candidates.contains_key(&index) {
            if self.candidates.len() >= MAX_CANDIDATES {
                let msg = format!("upstream sent more than {MAX_CANDIDATES} candidates");
                return Err(UpstreamError::new(ErrorClass::MalformedResponse, msg));
            }
            self.candidates.insert(index, Candidate::default());
            self.emit(
                index,
                json!({"role": "assistant", "content": ""}),
                None,
                false,
                out,
            );
        }
        if self.candidates.get(&index).is_none_or(|s| s.finished) {
            return Ok(());
        }
        let mut text = String::new();
        for piece in pieces(c) {
            match piece {
                Piece::Text(t) => text.push_str(t),
                Piece::Call(call) => {
                    self.flush_text(index, &mut text, out);
                    let at = self.candidates.get(&index).map_or(0, |s| s.calls);
                    let base = self.id_base.as_deref().unwrap_or("");
                    let call = call.to_json(base, self.calls_total, Some(at));
                    self.calls_total += 1;
                    if let Some(s) = self.candidates.get_mut(&index) {
                        s.calls += 1;
                    }
                    self.content_seen = true;
                    self.emit(index, json!({"tool_calls": [call]}), None, true, out);
                }
            }
        }
        self.flush_text(index, &mut text, out);
        let Some(reason) = c.get("finishReason").and_then(Value::as_str) else {
            return Ok(());
        };
        if is_filter(reason) && !self.content_seen {
            let msg = format!("Gemini withheld the answer (finishReason {reason})");
            return Err(UpstreamError::new(ErrorClass::ContentPolicy, msg));
        }
        let has_calls = self.candidates.get(&index).is_some_and(|s| s.calls > 0);
        if let Some(s) = self.candidates.get_mut(&index) {
            s.finished = true;
        }
        let reason = finish_reason(reason, has_calls);
        self.emit(index, json!({}), Some(reason), true, out);
        Ok(())
    }

    fn flush_text(&mut self, index: u64, text: &mut String, out: &mut Vec<StreamEvent>) {
        if !text.is_empty() {
            self.content_seen = true;
            let delta = json!({ "content": std::mem::take(text) });
            self.emit(index, delta, None, true, out);
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        self.finished = true;
        out.push(StreamEvent::Finish);
        if let Some((usage, usage_json)) = self.usage.take() {
            if self.client_wants_usage {
                let mut chunk = self.envelope(json!([]));
                if let Value::Object(o) = &mut chunk {
                    o.insert("usage".into(), usage_json);
                }
                out.push(StreamEvent::Chunk {
                    bytes: encode_data(&chunk.to_string()),
                    content: false,
                    facts: None,
                });
            }
            out.push(StreamEvent::Usage(usage));
        }
    }

    fn envelope(&self, choices: Value) -> Value {
        json!({
            "id": self.id.as_deref().unwrap_or("chatcmpl-gemini"),
            "object": "chat.completion.chunk",
            "created": 0,
            "model": self.model.as_deref().unwrap_or(""),
            "choices": choices,
        })
    }

    fn emit(
        &self,
        index: u64,
        delta: Value,
        finish: Option<&str>,
        content: bool,
        out: &mut Vec<StreamEvent>,
    ) {
        let choice = json!({"index": index, "delta": delta, "finish_reason": finish});
        let chunk = self.envelope(json!([choice]));
        out.push(StreamEvent::Chunk {
            bytes: encode_data(&chunk.to_string()),
            content,
            facts: None,
        });
    }
}
