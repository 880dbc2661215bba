//! Non-streaming answers: a `GenerateContentResponse` → an OpenAI `chat.completion` body, and
//! the pieces the stream translator shares (parts, finish reasons, usage, tool-call ids).
//!
//! - `id` ← `responseId` (else `chatcmpl-gemini`), `created` 0, `model` ← `modelVersion`;
//! - one choice per candidate (`index` ← `candidate.index`, else its position): text parts
//!   concatenated → `message.content` (null when the answer is only tool calls); parts marked
//!   `thought: true` (thought summaries) are skipped; `functionCall` parts → `tool_calls`
//!   with `id` ← `functionCall.id`, else `call_<responseId>_<n>` (`call_<n>` without a
//!   responseId; n counts calls across the answer), `arguments` ← `args` as a JSON string and,
//!   when the part has a `thoughtSignature`, `extra_content.google.thought_signature` (the
//!   convention of Gemini's own OpenAI endpoint; sent back on the next turn);
//! - `finish_reason`: STOP → `stop` (`tool_calls` when the choice has calls), MAX_TOKENS →
//!   `length`, SAFETY / RECITATION / BLOCKLIST / PROHIBITED_CONTENT / SPII / IMAGE_* →
//!   `content_filter`, anything else → `stop`;
//! - `usage`: `promptTokenCount` (+ `toolUsePromptTokenCount`) → `prompt_tokens`,
//!   `candidatesTokenCount` + `thoughtsTokenCount` → `completion_tokens` (thoughts also as
//!   `completion_tokens_details.reasoning_tokens`), `cachedContentTokenCount` →
//!   `prompt_tokens_details.cached_tokens`.
//!
//! Refusals: a blocked prompt (`promptFeedback.blockReason`, no candidates) and an answer
//! whose every candidate was stopped by a filter before producing anything are
//! `ContentPolicy` errors (no HTTP status: the engine answers the caller 400). Partial text
//! cut by a filter is an answer with `finish_reason: content_filter`.

use super::errors::{error_object, in_band_error};
use crate::providers::ParsedResponse;
use crate::resilience::{ErrorClass, UpstreamError};
use crate::usage::Usage;
use serde_json::{json, Map, Value};

pub fn parse_response(body: Vec<u8>) -> Result<ParsedResponse, UpstreamError> {
    let v: Value = serde_json::from_slice(&body).map_err(|e| {
        UpstreamError::new(
            ErrorClass::MalformedResponse,
            format!("upstream answer is not valid JSON: {e}"),
        )
    })?;
    if let Some(err) = error_object(&v) {
        return Err(in_band_error(err, &body));
    }
    let candidates = v
        .get("candidates")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if candidates.is_empty() {
        return Err(blocked_prompt(&v).unwrap_or_else(|| {
            UpstreamError::new(
                ErrorClass::MalformedResponse,
                "upstream answer has no candidates",
            )
        }));
    }
    let id_base = response_id(&v);
    let mut calls_so_far = 0;
    let mut choices = Vec::with_capacity(candidates.len());
    let mut all_filtered_empty = true;
    let mut filter_reason = "";
    for (pos, c) in candidates.iter().enumerate() {
        let mut text = String::new();
        let mut calls = Vec::new();
        for piece in pieces(c) {
            match piece {
                Piece::Text(t) => text.push_str(t),
                Piece::Call(call) => {
                    calls.push(call.to_json(&id_base, calls_so_far, None));
                    calls_so_far += 1;
                }
            }
        }
        let reason = c.get("finishReason").and_then(Value::as_str);
        let empty = text.is_empty() && calls.is_empty();
        match reason.filter(|r| is_filter(r)) {
            Some(r) if empty => filter_reason = r,
            _ => all_filtered_empty = false,
        }
        let mut message = Map::new();
        message.insert("role".into(), json!("assistant"));
        let content = if text.is_empty() && !calls.is_empty() {
            Value::Null
        } else {
            Value::String(text)
        };
        message.insert("content".into(), content);
        let has_calls = !calls.is_empty();
        if has_calls {
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        choices.push(json!({
            "index": candidate_index(c, pos),
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(reason.unwrap_or("STOP"), has_calls),
        }));
    }
    if all_filtered_empty {
        return Err(UpstreamError::new(
            ErrorClass::ContentPolicy,
            format!("Gemini withheld the answer (finishReason {filter_reason})"),
        ));
    }
    let model = v
        .get("modelVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    let usage = v.get("usageMetadata").and_then(usage_from);
    let mut out = json!({
        "id": v.get("responseId").and_then(Value::as_str).unwrap_or("chatcmpl-gemini"),
        "object": "chat.completion",
        "created": 0,
        "model": model.as_deref().unwrap_or(""),
        "choices": choices,
    });
    if let (Some((_, usage_json)), Value::Object(o)) = (&usage, &mut out) {
        o.insert("usage".into(), usage_json.clone());
    }
    let body = serde_json::to_vec(&out)
        .map_err(|e| UpstreamError::new(ErrorClass::MalformedResponse, e.to_string()))?;
    Ok(ParsedResponse {
        body,
        usage: usage.map(|(u, _)| u),
        model,
        native: None,
    })
}

/// The error for a prompt Gemini refused to answer (`promptFeedback.blockReason`).
pub fn blocked_prompt(v: &Value) -> Option<UpstreamError> {
    let feedback = v.get("promptFeedback")?;
    let reason = feedback.get("blockReason").and_then(Value::as_str)?;
    let mut message = format!("Gemini blocked the prompt (blockReason {reason})");
    if let Some(m) = feedback.get("blockReasonMessage").and_then(Value::as_str) {
        message.push_str(": ");
        message.push_str(m);
    }
    Some(UpstreamError::new(ErrorClass::ContentPolicy, message))
}

/// `responseId` reduced to `[A-Za-z0-9_-]`, the stem of synthesized tool-call ids.
pub fn response_id(v: &Value) -> String {
    v.get("responseId")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect()
}

pub fn candidate_index(c: &Value, pos: usize) -> u64 {
    c.get("index").and_then(Value::as_u64).unwrap_or(pos as u64)
}

pub enum Piece<'a> {
    Text(&'a str),
    Call(Call<'a>),
}

pub struct Call<'a> {
    name: &'a str,
    args: Option<&'a Value>,
    id: Option<&'a str>,
    signature: Option<&'a str>,
}

impl Call<'_> {
    /// An OpenAI tool call; `n` numbers it within the answer, `index` is the stream position.
    pub fn to_json(&self, id_base: &str, n: usize, index: Option<usize>) -> Value {
        let id = match self.id.filter(|i| !i.is_empty()) {
            Some(id) => id.to_string(),
            None if id_base.is_empty() => format!("call_{n}"),
            None => format!("call_{id_base}_{n}"),
        };
        let arguments = match self.args {
            Some(a) if !a.is_null() => a.to_string(),
            _ => "{}".to_string(),
        };
        let mut call = Map::new();
        if let Some(i) = index {
            call.insert("index".into(), json!(i));
        }
        call.insert("id".into(), Value::String(id));
        call.insert("type".into(), json!("function"));
        call.insert(
            "function".into(),
            json!({"name": self.name, "arguments": arguments}),
        );
        if let Some(sig) = self.signature {
            call.insert(
                "extra_content".into(),
                json!({"google": {"thought_signature": sig}}),
            );
        }
        Value::Object(call)
    }
}

/// The answer parts of a candidate, in order; thoughts and empty or unknown parts skipped.
pub fn pieces(candidate: &Value) -> Vec<Piece<'_>> {
    let parts = candidate
        .get("content")
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array);
    let mut out = Vec::new();
    for p in parts.into_iter().flatten() {
        if p.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(f) = p.get("functionCall") {
            out.push(Piece::Call(Call {
                name: f.get("name").and_then(Value::as_str).unwrap_or(""),
                args: f.get("args"),
                id: f.get("id").and_then(Value::as_str),
                signature: p.get("thoughtSignature").and_then(Value::as_str),
            }));
        } else if let Some(t) = p.get("text").and_then(Value::as_str) {
            if !t.is_empty() {
                out.push(Piece::Text(t));
            }
        }
    }
    out
}

pub fn is_filter(reason: &str) -> bool {
    matches!(
        reason,
        "SAFETY"
            | "RECITATION"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT"
            | "IMAGE_RECITATION"
    )
}

pub fn finish_reason(reason: &str, has_tool_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        r if is_filter(r) => "content_filter",
        _ if has_tool_calls => "tool_calls",
        _ => "stop",
    }
}

/// `usageMetadata` → the usage record and its OpenAI `usage` object.
pub fn usage_from(meta: &Value) -> Option<(Usage, Value)> {
    let o = meta.as_object()?;
    let n = |k: &str| o.get(k).and_then(Value::as_u64);
    let prompt = n("promptTokenCount")
        .unwrap_or(0)
        .saturating_add(n("toolUsePromptTokenCount").unwrap_or(0));
    let thoughts = n("thoughtsTokenCount");
    let completion = n("candidatesTokenCount")
        .unwrap_or(0)
        .saturating_add(thoughts.unwrap_or(0));
    let cached = n("cachedContentTokenCount");
    let mut usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt.saturating_add(completion),
    });
    if let Value::Object(u) = &mut usage {
        if let Some(c) = cached {
            u.insert("prompt_tokens_details".into(), json!({"cached_tokens": c}));
        }
        if let Some(t) = thoughts {
            u.insert(
                "completion_tokens_details".into(),
                json!({"reasoning_tokens": t}),
            );
        }
    }
    let record = Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: cached,
        cache_write_tokens: None,
        reasoning_tokens: thoughts,
    };
    Some((record, usage))
}
