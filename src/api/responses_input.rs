//! The Responses API's `input` (a string, or a list of items) as pivot chat messages.
//!
//! Items map one by one: messages (roles `user`, `assistant`, `system`, `developer`; content
//! a string or `input_text` / `input_image` / `output_text` / `refusal` parts), `function_call`
//! (an assistant message's `tool_calls`; consecutive calls join one message) and
//! `function_call_output` (a `tool` message). `reasoning` items are dropped (no pivot
//! equivalent; a model re-reasons). Anything that needs stored state or a hosted tool
//! (`item_reference`, `input_file`, an image by `file_id`, hosted tool calls) is a 400 naming
//! the item, never silently lost.

use super::error::ApiError;
use serde_json::{json, Map, Value};

/// Pivot messages and the characters of text they carry (for estimates).
pub struct Converted {
    pub messages: Vec<Value>,
    pub chars: usize,
}

fn bad(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid("invalid_value", param, message)
}

fn unsupported(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid("unsupported_value", param, message)
}

/// `input` → pivot messages (appended to `out`, which may already hold the instructions).
pub fn convert_input(input: &Value, out: &mut Converted) -> Result<(), ApiError> {
    match input {
        Value::String(s) => {
            out.chars += s.chars().count();
            out.messages.push(json!({"role": "user", "content": s}));
            Ok(())
        }
        Value::Array(items) if items.is_empty() => Err(bad("input", "`input` must not be empty")),
        Value::Array(items) if items.len() > super::fields::MAX_MESSAGES => Err(bad(
            "input",
            format!(
                "`input` has {} items; at most {} are accepted",
                items.len(),
                super::fields::MAX_MESSAGES
            ),
        )),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                convert_item(item, &format!("input[{i}]"), out)?;
            }
            Ok(())
        }
        _ => Err(ApiError::invalid(
            "invalid_type",
            "input",
            "`input` must be a string or an array of input items",
        )),
    }
}

fn convert_item(item: &Value, param: &str, out: &mut Converted) -> Result<(), ApiError> {
    let Value::Object(item) = item else {
        return Err(ApiError::invalid(
            "invalid_type",
            param,
            format!("`{param}` must be an object"),
        ));
    };
    let kind = match item.get("type") {
        None | Some(Value::Null) => "message",
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err(bad(&format!("{param}.type"), "`type` must be a string")),
    };
    match kind {
        "message" => message(item, param, out),
        "function_call" => function_call(item, param, out),
        "function_call_output" => function_call_output(item, param, out),
        "reasoning" => Ok(()),
        "item_reference" => Err(unsupported(
            param,
            "`item_reference` needs stored responses, which this gateway does not keep (it is stateless): send the items themselves",
        )),
        other => Err(unsupported(
            &format!("{param}.type"),
            format!("input items of type `{other}` are not supported; use messages, `function_call` and `function_call_output`"),
        )),
    }
}

fn str_field<'a>(
    item: &'a Map<String, Value>,
    param: &str,
    key: &str,
) -> Result<&'a str, ApiError> {
    match item.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::invalid(
            "invalid_type",
            &format!("{param}.{key}"),
            format!("`{param}.{key}` must be a string"),
        )),
        None => Err(ApiError::invalid(
            "missing_required_parameter",
            &format!("{param}.{key}"),
            format!("missing required parameter: `{param}.{key}`"),
        )),
    }
}

fn message(item: &Map<String, Value>, param: &str, out: &mut Converted) -> Result<(), ApiError> {
    let role = match str_field(item, param, "role")? {
        "developer" | "system" => "system",
        r @ ("user" | "assistant") => r,
        other => {
            return Err(bad(
                &format!("{param}.role"),
                format!(
                    "`{param}.role` {other:?} is not one of user, assistant, system, developer"
                ),
            ))
        }
    };
    let content_param = format!("{param}.content");
    let parts = match item.get("content") {
        Some(Value::String(s)) => {
            out.chars += s.chars().count();
            out.messages.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Some(Value::Array(parts)) => parts,
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_type",
                &content_param,
                format!("`{content_param}` must be a string or an array of content parts"),
            ))
        }
        None => {
            return Err(ApiError::invalid(
                "missing_required_parameter",
                &content_param,
                format!("missing required parameter: `{content_param}`"),
            ))
        }
    };
    let mut pivot: Vec<Value> = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        pivot.push(content_part(part, &format!("{content_param}[{j}]"), out)?);
    }
    let has_image = pivot
        .iter()
        .any(|p| p.get("type").and_then(Value::as_str) == Some("image_url"));
    if has_image && role != "user" {
        return Err(unsupported(
            &content_param,
            "images are accepted in user messages only",
        ));
    }
    let content = if has_image {
        Value::Array(pivot)
    } else {
        let text: Vec<&str> = pivot
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect();
        Value::String(text.join(""))
    };
    out.messages.push(json!({"role": role, "content": content}));
    Ok(())
}

/// One content part as a pivot part (`text` or `image_url`).
fn content_part(part: &Value, param: &str, out: &mut Converted) -> Result<Value, ApiError> {
    let Value::Object(part) = part else {
        return Err(ApiError::invalid(
            "invalid_type",
            param,
            format!("`{param}` must be an object"),
        ));
    };
    match part.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text") => {
            let text = str_field(part, param, "text")?;
            out.chars += text.chars().count();
            Ok(json!({"type": "text", "text": text}))
        }
        Some("refusal") => {
            let text = str_field(part, param, "refusal")?;
            out.chars += text.chars().count();
            Ok(json!({"type": "text", "text": text}))
        }
        Some("input_image") => match part.get("image_url") {
            Some(Value::String(url)) => {
                let mut image = Map::new();
                image.insert("url".into(), Value::String(url.clone()));
                if let Some(Value::String(d)) = part.get("detail") {
                    image.insert("detail".into(), Value::String(d.clone()));
                }
                Ok(json!({"type": "image_url", "image_url": image}))
            }
            _ => Err(unsupported(
                param,
                "`input_image` needs an `image_url` (a URL or a data: URL); `file_id` is not supported (no Files API here)",
            )),
        },
        Some(other) => Err(unsupported(
            &format!("{param}.type"),
            format!("content parts of type `{other}` are not supported; use `input_text`, `input_image` or `output_text`"),
        )),
        None => Err(ApiError::invalid(
            "missing_required_parameter",
            &format!("{param}.type"),
            format!("missing required parameter: `{param}.type`"),
        )),
    }
}

fn function_call(
    item: &Map<String, Value>,
    param: &str,
    out: &mut Converted,
) -> Result<(), ApiError> {
    let call_id = str_field(item, param, "call_id")?;
    let name = str_field(item, param, "name")?;
    let arguments = str_field(item, param, "arguments")?;
    out.chars += name.chars().count() + arguments.chars().count();
    let call = json!({"id": call_id, "type": "function",
        "function": {"name": name, "arguments": arguments}});
    // Calls that follow an assistant turn (its text, or other calls) belong to that turn.
    if let Some(Value::Object(last)) = out.messages.last_mut() {
        if last.get("role").and_then(Value::as_str) == Some("assistant") {
            let calls = last
                .entry("tool_calls")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(calls) = calls {
                calls.push(call);
                return Ok(());
            }
        }
    }
    out.messages
        .push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
    Ok(())
}

fn function_call_output(
    item: &Map<String, Value>,
    param: &str,
    out: &mut Converted,
) -> Result<(), ApiError> {
    let call_id = str_field(item, param, "call_id")?;
    let output = match item.get("output") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut text = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                let p = format!("{param}.output[{j}]");
                match part.get("type").and_then(Value::as_str) {
                    Some("input_text" | "output_text") => {
                        text.push(part.get("text").and_then(Value::as_str).unwrap_or(""));
                    }
                    _ => return Err(unsupported(
                        &p,
                        "function call outputs may hold text only (`input_text` parts or a string)",
                    )),
                }
            }
            text.join("")
        }
        _ => {
            return Err(ApiError::invalid(
                "invalid_type",
                &format!("{param}.output"),
                format!("`{param}.output` must be a string or an array of `input_text` parts"),
            ))
        }
    };
    out.chars += output.chars().count();
    out.messages
        .push(json!({"role": "tool", "tool_call_id": call_id, "content": output}));
    Ok(())
}
