//! OpenAI `messages` → Gemini `systemInstruction` + `contents`.
//!
//! - `system`/`developer` → `systemInstruction.parts` (text only, wherever they stand);
//! - `user` → role `user`; `assistant` → role `model`;
//! - `tool` (and legacy `function`) → role `user` with a `functionResponse` part, named after
//!   the matching `tool_calls[].id` in the nearest earlier assistant message (else the
//!   message's own `name`); its `response` is the tool output when that is a JSON object,
//!   else `{"content": <text>}`;
//! - consecutive contents of the same role are merged (Gemini wants parallel function
//!   responses in one turn), empty text parts are skipped and contents left without parts
//!   are dropped.
//!
//! Parts: `text` → `{text}`; `image_url` with a `data:` URL → `{inlineData}`, with an http(s)
//! URL → `{fileData:{mimeType (from the extension, else image/jpeg), fileUri}}` (`detail` is
//! dropped); `input_audio` → `{inlineData: audio/<format>}`; `file` with `file_data` →
//! `{inlineData}`; assistant `tool_calls` / `function_call` → `{functionCall:{name, args}}`.
//! A function call replayed without the `extra_content.google.thought_signature` this
//! adapter put on it gets Gemini's documented placeholder signature on the first call of the
//! turn, so Gemini 3 models accept histories from other models or clients that dropped it.
//! Anything else (a `file_id`, an unknown part type) is refused as an invalid request.

use crate::resilience::{ErrorClass, UpstreamError};
use serde_json::{json, Map, Value};

/// Gemini's documented stand-in for a missing thought signature.
const PLACEHOLDER_SIGNATURE: &str = "skip_thought_signature_validator";

pub struct Converted {
    pub system: Vec<Value>,
    pub contents: Vec<Value>,
}

pub fn convert(messages: &[Value]) -> Result<Converted, UpstreamError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let content = m.get("content");
        let (role, parts) = match role {
            "system" | "developer" => {
                system.extend(text_parts(content, i)?);
                continue;
            }
            "user" => ("user", user_parts(content, i)?),
            "assistant" => ("model", assistant_parts(m, i)?),
            "tool" => {
                let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
                let name = tool_name(messages.get(..i).unwrap_or_default(), id)
                    .or_else(|| m.get("name").and_then(Value::as_str))
                    .ok_or_else(|| {
                        invalid(format!(
                            "messages[{i}]: no earlier assistant tool call has id {id:?}"
                        ))
                    })?;
                ("user", vec![function_response(name, content, i)?])
            }
            "function" => {
                let name = m.get("name").and_then(Value::as_str).ok_or_else(|| {
                    invalid(format!("messages[{i}]: a function message needs a name"))
                })?;
                ("user", vec![function_response(name, content, i)?])
            }
            other => return Err(invalid(format!("messages[{i}]: unknown role {other:?}"))),
        };
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, acc)) if *last == role => acc.extend(parts),
            _ => turns.push((role, parts)),
        }
    }
    let contents = turns
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    Ok(Converted { system, contents })
}

pub fn invalid(message: impl Into<String>) -> UpstreamError {
    UpstreamError::new(ErrorClass::InvalidRequest, message)
}

fn text_part(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({ "text": text }))
}

/// Text-only content (system messages, tool outputs): a string or an array of text parts.
fn text_parts(content: Option<&Value>, i: usize) -> Result<Vec<Value>, UpstreamError> {
    Ok(joined_text(content, i)?
        .as_deref()
        .and_then(text_part)
        .into_iter()
        .collect())
}

fn joined_text(content: Option<&Value>, i: usize) -> Result<Option<String>, UpstreamError> {
    match content {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for p in parts {
                match (kind(p), p.get("text").and_then(Value::as_str)) {
                    ("text", Some(t)) => text.push_str(t),
                    (k, _) => {
                        return Err(invalid(format!(
                            "messages[{i}]: content part {k:?} is not supported here"
                        )))
                    }
                }
            }
            Ok(Some(text))
        }
        Some(_) => Err(invalid(format!("messages[{i}].content has a bad type"))),
    }
}

fn kind(part: &Value) -> &str {
    part.get("type").and_then(Value::as_str).unwrap_or("")
}

fn user_parts(content: Option<&Value>, i: usize) -> Result<Vec<Value>, UpstreamError> {
    let Some(Value::Array(items)) = content else {
        return text_parts(content, i);
    };
    let mut parts = Vec::with_capacity(items.len());
    for p in items {
        let part = match kind(p) {
            "text" => p.get("text").and_then(Value::as_str).and_then(text_part),
            "image_url" => {
                let url = p
                    .get("image_url")
                    .and_then(|u| u.get("url").or(Some(u)))
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("messages[{i}]: image_url without url")))?;
                Some(image_part(url, i)?)
            }
            "input_audio" => {
                let audio = p.get("input_audio");
                let field = |k: &str| audio.and_then(|a| a.get(k)).and_then(Value::as_str);
                let (Some(data), Some(format)) = (field("data"), field("format")) else {
                    return Err(invalid(format!(
                        "messages[{i}]: input_audio needs data and format"
                    )));
                };
                Some(json!({"inlineData": {"mimeType": format!("audio/{format}"), "data": data}}))
            }
            "file" => {
                let data = p
                    .get("file")
                    .and_then(|f| f.get("file_data"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        invalid(format!(
                            "messages[{i}]: only inline file_data files are supported"
                        ))
                    })?;
                Some(inline_data(data, i)?)
            }
            other => {
                return Err(invalid(format!(
                    "messages[{i}]: content part type {other:?} is not supported by Gemini"
                )))
            }
        };
        parts.extend(part);
    }
    Ok(parts)
}

fn image_part(url: &str, i: usize) -> Result<Value, UpstreamError> {
    if url.starts_with("data:") {
        return inline_data(url, i);
    }
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return Err(invalid(format!(
            "messages[{i}]: image URL must be http(s) or a data: URL"
        )));
    }
    let path = lower.split(['?', '#']).next().unwrap_or("");
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    let mime = match ext {
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => "image/jpeg",
    };
    Ok(json!({"fileData": {"mimeType": mime, "fileUri": url}}))
}

/// `data:<mime>;base64,<data>` → `{inlineData:{mimeType, data}}`.
fn inline_data(url: &str, i: usize) -> Result<Value, UpstreamError> {
    let parsed = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','));
    let Some((meta, data)) = parsed else {
        return Err(invalid(format!("messages[{i}]: malformed data: URL")));
    };
    let Some(mime) = meta.strip_suffix(";base64") else {
        return Err(invalid(format!("messages[{i}]: data: URL must be base64")));
    };
    let mime = if mime.is_empty() {
        "application/octet-stream"
    } else {
        mime
    };
    Ok(json!({"inlineData": {"mimeType": mime, "data": data}}))
}

fn assistant_parts(m: &Value, i: usize) -> Result<Vec<Value>, UpstreamError> {
    let mut parts = match m.get("content") {
        Some(Value::Array(items)) => {
            // Assistant content parts are `text` or `refusal`.
            let mut text = String::new();
            for p in items {
                let t = p.get("text").or_else(|| p.get("refusal"));
                text.push_str(t.and_then(Value::as_str).unwrap_or(""));
            }
            text_part(&text).into_iter().collect()
        }
        other => text_parts(other, i)?,
    };
    let calls = m.get("tool_calls").and_then(Value::as_array);
    for (n, call) in calls.into_iter().flatten().enumerate() {
        let f = call.get("function");
        let name = f.and_then(|f| f.get("name")).and_then(Value::as_str);
        let Some(name) = name else {
            return Err(invalid(format!(
                "messages[{i}].tool_calls[{n}] has no function name"
            )));
        };
        let signature = call
            .get("extra_content")
            .and_then(|e| e.get("google"))
            .and_then(|g| g.get("thought_signature"))
            .and_then(Value::as_str)
            .or((n == 0).then_some(PLACEHOLDER_SIGNATURE));
        let args = arguments(f.and_then(|f| f.get("arguments")), i)?;
        parts.push(function_call(name, args, signature));
    }
    if let Some(f) = m.get("function_call").filter(|f| f.is_object()) {
        let name = f.get("name").and_then(Value::as_str).unwrap_or("");
        let args = arguments(f.get("arguments"), i)?;
        let signature = calls.is_none().then_some(PLACEHOLDER_SIGNATURE);
        parts.push(function_call(name, args, signature));
    }
    Ok(parts)
}

fn function_call(name: &str, args: Value, signature: Option<&str>) -> Value {
    let mut part = Map::new();
    part.insert("functionCall".into(), json!({"name": name, "args": args}));
    if let Some(s) = signature {
        part.insert("thoughtSignature".into(), Value::String(s.to_string()));
    }
    Value::Object(part)
}

/// Tool-call arguments: a JSON object in a string (empty means `{}`).
fn arguments(raw: Option<&Value>, i: usize) -> Result<Value, UpstreamError> {
    let parsed = match raw {
        None | Some(Value::Null) => return Ok(json!({})),
        Some(Value::Object(o)) => return Ok(Value::Object(o.clone())),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(json!({})),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).ok(),
        Some(_) => None,
    };
    match parsed {
        Some(v @ Value::Object(_)) => Ok(v),
        _ => Err(invalid(format!(
            "messages[{i}]: tool call arguments must be a JSON object"
        ))),
    }
}

/// Name of the tool call `id` in the nearest earlier assistant message that has it.
fn tool_name<'a>(earlier: &'a [Value], id: &str) -> Option<&'a str> {
    earlier
        .iter()
        .rev()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
        .filter_map(|m| m.get("tool_calls").and_then(Value::as_array))
        .flatten()
        .find(|c| c.get("id").and_then(Value::as_str) == Some(id))
        .and_then(|c| c.get("function")?.get("name")?.as_str())
}

fn function_response(
    name: &str,
    content: Option<&Value>,
    i: usize,
) -> Result<Value, UpstreamError> {
    let text = joined_text(content, i)?.unwrap_or_default();
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(obj @ Value::Object(_)) => obj,
        _ => json!({ "content": text }),
    };
    Ok(json!({"functionResponse": {"name": name, "response": response}}))
}
