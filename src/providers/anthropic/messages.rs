//! OpenAI `messages` → Anthropic `system` + `messages`.
//!
//! - `system`/`developer` messages (wherever they appear) become the top-level `system`: a
//!   string when there is exactly one plain text, else an array of text blocks.
//! - Content: a string becomes one text block; `text` parts become text blocks (their
//!   `cache_control`, if a client sent one, is kept); `image_url` parts become image blocks
//!   (`data:<mime>;base64,<data>` → a base64 source, any other URL → a url source; `detail` is
//!   dropped); an assistant `refusal` part becomes text. Empty texts are skipped (Anthropic
//!   rejects empty text blocks).
//! - Assistant `tool_calls` → `tool_use` blocks after the text; `input` is the parsed
//!   `arguments` object. Arguments that are empty, not JSON, or JSON but not an object become
//!   `{}`: the history is still accepted (a model may have produced truncated arguments), at
//!   the cost of that call's arguments.
//! - `tool` messages → `tool_result` blocks (`tool_use_id` = `tool_call_id`) in a user message.
//! - Consecutive messages of the same Anthropic role are merged into one (Anthropic requires
//!   alternation), so consecutive tool results share a user message, followed by any user text.
//! - Messages left with no blocks (e.g. `content: ""` and no tool calls) are dropped.
//! - The `name` field is dropped. Legacy `function` messages, audio and file parts, and images
//!   in system or assistant messages are refused as invalid requests.

use crate::resilience::{ErrorClass, UpstreamError};
use serde_json::{json, Map, Value};

/// The Anthropic shape of an OpenAI conversation.
#[derive(Debug)]
pub struct Converted {
    pub system: Option<Value>,
    pub messages: Vec<Value>,
}

pub fn invalid(message: impl Into<String>) -> UpstreamError {
    UpstreamError::new(ErrorClass::InvalidRequest, message)
}

pub fn convert_messages(messages: &[Value]) -> Result<Converted, UpstreamError> {
    let mut system: Vec<Value> = Vec::new();
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.extend(content_blocks(m.get("content"), Part::System, &at)?);
                continue;
            }
            "user" => ("user", content_blocks(m.get("content"), Part::User, &at)?),
            "assistant" => ("assistant", assistant_blocks(m, &at)?),
            "tool" => ("user", vec![tool_result(m, &at)?]),
            other => {
                return Err(invalid(format!(
                    "{at}: role {other:?} is not supported by Anthropic upstreams (use tools)"
                )))
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => out.push((role, blocks)),
        }
    }
    let system = match system.as_slice() {
        [] => None,
        [only] if only.get("cache_control").is_none() => only.get("text").cloned(),
        _ => Some(Value::Array(system)),
    };
    let messages = out
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok(Converted { system, messages })
}

/// Where content appears: decides which part types are allowed.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    System,
    User,
    Assistant,
    ToolResult,
}

fn content_blocks(
    content: Option<&Value>,
    at: Part,
    path: &str,
) -> Result<Vec<Value>, UpstreamError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(text_block(s, None).into_iter().collect()),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let path = format!("{path}.content[{j}]");
                if let Some(b) = part_block(part, at, &path)? {
                    blocks.push(b);
                }
            }
            Ok(blocks)
        }
        Some(_) => Err(invalid(format!(
            "{path}.content must be a string or an array of content parts"
        ))),
    }
}

fn part_block(part: &Value, at: Part, path: &str) -> Result<Option<Value>, UpstreamError> {
    if let Value::String(s) = part {
        return Ok(text_block(s, None));
    }
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" => {
            let text = part
                .get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("{path}.text must be a string")))?;
            Ok(text_block(text, part.get("cache_control")))
        }
        "refusal" if at == Part::Assistant => {
            let text = part.get("refusal").and_then(Value::as_str).unwrap_or("");
            Ok(text_block(text, None))
        }
        "image_url" if matches!(at, Part::User | Part::ToolResult) => {
            image_block(part, path).map(Some)
        }
        _ => Err(invalid(format!(
            "{path}: content part type {kind:?} is not supported here by Anthropic upstreams"
        ))),
    }
}

fn text_block(text: &str, cache_control: Option<&Value>) -> Option<Value> {
    if text.is_empty() {
        return None;
    }
    let mut b = Map::new();
    b.insert("type".into(), "text".into());
    b.insert("text".into(), text.into());
    if let Some(cc) = cache_control.filter(|c| !c.is_null()) {
        b.insert("cache_control".into(), cc.clone());
    }
    Some(Value::Object(b))
}

fn image_block(part: &Value, path: &str) -> Result<Value, UpstreamError> {
    let image = part.get("image_url");
    let url = image
        .and_then(|i| i.get("url").or(Some(i)))
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| invalid(format!("{path}.image_url.url must be a non-empty string")))?;
    let source = match url.strip_prefix("data:") {
        Some(rest) => {
            let (header, data) = rest
                .split_once(',')
                .ok_or_else(|| invalid(format!("{path}: malformed data URL")))?;
            let media_type = header
                .strip_suffix(";base64")
                .ok_or_else(|| invalid(format!("{path}: only base64 data URLs are supported")))?;
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        None => json!({"type": "url", "url": url}),
    };
    Ok(json!({"type": "image", "source": source}))
}

fn assistant_blocks(m: &Value, path: &str) -> Result<Vec<Value>, UpstreamError> {
    if m.get("function_call").is_some_and(|f| !f.is_null()) {
        return Err(invalid(format!(
            "{path}.function_call is not supported by Anthropic upstreams (use tool_calls)"
        )));
    }
    let mut blocks = content_blocks(m.get("content"), Part::Assistant, path)?;
    let calls = match m.get("tool_calls") {
        None | Some(Value::Null) => return Ok(blocks),
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err(invalid(format!("{path}.tool_calls must be an array"))),
    };
    for (j, call) in calls.iter().enumerate() {
        let at = format!("{path}.tool_calls[{j}]");
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{at}.id must be a string")))?;
        let function = call.get("function");
        let name = function
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{at}.function.name must be a string")))?;
        let input = function
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .and_then(|a| serde_json::from_str::<Value>(a).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| Value::Object(Map::new()));
        blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(blocks)
}

fn tool_result(m: &Value, path: &str) -> Result<Value, UpstreamError> {
    let id = m
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{path}.tool_call_id must be a string")))?;
    let mut b = Map::new();
    b.insert("type".into(), "tool_result".into());
    b.insert("tool_use_id".into(), id.into());
    match m.get("content") {
        Some(Value::String(s)) if !s.is_empty() => {
            b.insert("content".into(), s.as_str().into());
        }
        Some(Value::String(_)) | None | Some(Value::Null) => {}
        other => {
            let blocks = content_blocks(other, Part::ToolResult, path)?;
            if !blocks.is_empty() {
                b.insert("content".into(), Value::Array(blocks));
            }
        }
    }
    Ok(Value::Object(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(v: Value) -> Converted {
        convert_messages(v.as_array().unwrap()).unwrap()
    }

    #[test]
    fn system_string_or_blocks() {
        let c =
            conv(json!([{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]));
        assert_eq!(c.system, Some(json!("be brief")));
        assert_eq!(
            c.messages,
            vec![json!({"role":"user","content":[{"type":"text","text":"hi"}]})]
        );
        let c = conv(json!([
            {"role":"system","content":"a"},
            {"role":"developer","content":[{"type":"text","text":"b"}]},
            {"role":"user","content":"hi"}
        ]));
        assert_eq!(
            c.system,
            Some(json!([{"type":"text","text":"a"},{"type":"text","text":"b"}]))
        );
    }

    #[test]
    fn tool_round_trip_and_merging() {
        let c = conv(json!([
            {"role":"user","content":"weather?"},
            {"role":"user","content":[{"type":"text","text":"in Paris and Rome"}]},
            {"role":"assistant","content":null,"tool_calls":[
                {"id":"call_1","type":"function","function":{"name":"w","arguments":"{\"city\":\"Paris\"}"}},
                {"id":"call_2","type":"function","function":{"name":"w","arguments":"{\"city\":"}}
            ]},
            {"role":"tool","tool_call_id":"call_1","content":"sunny"},
            {"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"rain"}]},
            {"role":"user","content":"thanks"},
            {"role":"assistant","content":""}
        ]));
        assert_eq!(c.system, None);
        assert_eq!(
            c.messages,
            vec![
                json!({"role":"user","content":[
                    {"type":"text","text":"weather?"},
                    {"type":"text","text":"in Paris and Rome"}
                ]}),
                json!({"role":"assistant","content":[
                    {"type":"tool_use","id":"call_1","name":"w","input":{"city":"Paris"}},
                    {"type":"tool_use","id":"call_2","name":"w","input":{}}
                ]}),
                json!({"role":"user","content":[
                    {"type":"tool_result","tool_use_id":"call_1","content":"sunny"},
                    {"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"rain"}]},
                    {"type":"text","text":"thanks"}
                ]}),
            ]
        );
    }

    #[test]
    fn images() {
        let c = conv(json!([{"role":"user","content":[
            {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}},
            {"type":"image_url","image_url":{"url":"https://example.com/a.jpg"}}
        ]}]));
        assert_eq!(
            c.messages[0]["content"],
            json!([
                {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
                {"type":"image","source":{"type":"url","url":"https://example.com/a.jpg"}}
            ])
        );
    }

    #[test]
    fn refusals() {
        let bad = [
            json!([{"role":"function","name":"f","content":"x"}]),
            json!([{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]),
            json!([{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x"}}]}]),
            json!([{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]),
            json!([{"role":"tool","content":"no id"}]),
            json!([{"role":"user","content":42}]),
        ];
        for b in bad {
            let e = convert_messages(b.as_array().unwrap()).unwrap_err();
            assert_eq!(e.class, ErrorClass::InvalidRequest, "{b}");
        }
    }
}
