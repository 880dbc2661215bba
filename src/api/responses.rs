//! OpenAI Responses API ingress (`POST /v1/responses`): validates a Responses request and
//! translates it into the pivot format (an OpenAI chat-completions body), as the Anthropic
//! ingress does, so that it reaches every provider kind through the same engine.
//!
//! The gateway is stateless: whatever needs a stored response or conversation
//! (`previous_response_id`, `store: true`, `background: true`, `conversation`, `prompt`) is a
//! clear 400, never ignored. Mapped: `input` (see `responses_input`), `instructions` (a
//! leading system message), function `tools`, `tool_choice`, `parallel_tool_calls`,
//! `max_output_tokens` (→ `max_tokens`), `temperature`, `top_p`, `text.format` (→
//! `response_format`), `metadata`, `user`, `stream`. Other fields (`include`, `reasoning`,
//! `truncation`, `service_tier`, …) are accepted and not forwarded.

use super::chat::{ChatRequest, ClientFormat};
use super::error::ApiError;
use super::fields;
use super::responses_input::{convert_input, Converted};
use serde_json::{json, Map, Value};

fn unsupported(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid("unsupported_parameter", param, message)
}

/// Refuses what needs state the gateway does not keep.
fn refuse_stateful(native: &Map<String, Value>) -> Result<(), ApiError> {
    let set = |k: &str| !matches!(native.get(k), None | Some(Value::Null));
    if set("previous_response_id") {
        return Err(unsupported(
            "previous_response_id",
            "`previous_response_id` is not supported: this gateway does not store responses (it is stateless); send the whole conversation in `input`",
        ));
    }
    if fields::flag(native, "store")? {
        return Err(unsupported(
            "store",
            "`store: true` is not supported: this gateway does not store responses (it is stateless); omit `store` or set it to false",
        ));
    }
    if fields::flag(native, "background")? {
        return Err(unsupported(
            "background",
            "`background: true` is not supported: background responses need stored state; use `stream: true` for long answers",
        ));
    }
    if set("conversation") {
        return Err(unsupported(
            "conversation",
            "`conversation` is not supported: this gateway does not store conversations; send the whole conversation in `input`",
        ));
    }
    if set("prompt") {
        return Err(unsupported(
            "prompt",
            "`prompt` (stored prompt templates) is not supported; send `instructions` and `input`",
        ));
    }
    Ok(())
}

pub fn parse_responses_request(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    let native = fields::json_object(bytes)?;
    let model = fields::model(&native)?;
    refuse_stateful(&native)?;
    let stream = fields::flag(&native, "stream")?;

    let mut conv = Converted {
        messages: Vec::new(),
        chars: 0,
    };
    match native.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            conv.chars += s.chars().count();
            if !s.is_empty() {
                conv.messages.push(json!({"role": "system", "content": s}));
            }
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_type",
                "instructions",
                "`instructions` must be a string",
            ))
        }
    }
    match native.get("input") {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                "missing_required_parameter",
                "input",
                "missing required parameter: `input`",
            ))
        }
        Some(input) => convert_input(input, &mut conv)?,
    }
    if !conv
        .messages
        .iter()
        .any(|m| m.get("role").and_then(Value::as_str) != Some("system"))
    {
        return Err(ApiError::invalid(
            "invalid_value",
            "input",
            "`input` holds no message for the model to answer",
        ));
    }

    let mut body = Map::new();
    body.insert("model".into(), Value::String(model.clone()));
    body.insert("messages".into(), Value::Array(conv.messages));
    match native.get("max_output_tokens") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64().is_some_and(|n| n >= 1) => {
            body.insert("max_tokens".into(), v.clone());
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_value",
                "max_output_tokens",
                "`max_output_tokens` must be a positive integer",
            ))
        }
    }
    for key in ["temperature", "top_p"] {
        match native.get(key) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(_)) => {
                body.insert(key.into(), v.clone());
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    "invalid_type",
                    key,
                    format!("`{key}` must be a number"),
                ))
            }
        }
    }
    for key in ["metadata", "user", "parallel_tool_calls"] {
        if let Some(v) = native.get(key).filter(|v| !v.is_null()) {
            body.insert(key.into(), v.clone());
        }
    }
    if let Some(tools) = tools(native.get("tools"))? {
        body.insert("tools".into(), tools);
    }
    if let Some(choice) = tool_choice(native.get("tool_choice"))? {
        body.insert("tool_choice".into(), choice);
    }
    if let Some(format) = response_format(native.get("text"))? {
        body.insert("response_format".into(), format);
    }
    if stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    Ok(ChatRequest {
        body,
        client: ClientFormat::Responses,
        native_anthropic: None,
        model,
        stream,
        // The usage goes into `response.completed`: the egress needs the usage chunk.
        include_usage: stream,
        prompt_chars: conv.chars,
        anthropic_headers: Vec::new(),
        output_cap: None,
        // Set by `routing::prepare` from the pivot's `response_format` (`text.format` here).
        output_schema: None,
    })
}

/// Function tools as pivot tools; hosted tools (web search, file search, …) are refused.
fn tools(tools: Option<&Value>) -> Result<Option<Value>, ApiError> {
    let tools = match tools {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(t)) => t,
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_type",
                "tools",
                "`tools` must be an array",
            ))
        }
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        let param = format!("tools[{i}]");
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(other) => {
                return Err(ApiError::invalid(
                    "unsupported_value",
                    &format!("{param}.type"),
                    format!("tools of type `{other}` are not supported; only `function` tools are"),
                ))
            }
            None => {
                return Err(ApiError::invalid(
                    "missing_required_parameter",
                    &format!("{param}.type"),
                    format!("missing required parameter: `{param}.type`"),
                ))
            }
        }
        let Some(name) = t.get("name").and_then(Value::as_str) else {
            return Err(ApiError::invalid(
                "missing_required_parameter",
                &format!("{param}.name"),
                format!("missing required parameter: `{param}.name`"),
            ));
        };
        let mut function = Map::new();
        function.insert("name".into(), Value::String(name.to_string()));
        for key in ["description", "parameters", "strict"] {
            if let Some(v) = t.get(key).filter(|v| !v.is_null()) {
                function.insert(key.into(), v.clone());
            }
        }
        out.push(json!({"type": "function", "function": function}));
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

fn tool_choice(choice: Option<&Value>) -> Result<Option<Value>, ApiError> {
    match choice {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if matches!(s.as_str(), "none" | "auto" | "required") => {
            Ok(Some(Value::String(s.clone())))
        }
        Some(Value::Object(o)) if o.get("type").and_then(Value::as_str) == Some("function") => {
            match o.get("name").and_then(Value::as_str) {
                Some(name) => Ok(Some(json!({"type": "function", "function": {"name": name}}))),
                None => Err(ApiError::invalid(
                    "missing_required_parameter",
                    "tool_choice.name",
                    "missing required parameter: `tool_choice.name`",
                )),
            }
        }
        Some(_) => Err(ApiError::invalid(
            "unsupported_value",
            "tool_choice",
            "`tool_choice` must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"name\": …}",
        )),
    }
}

/// `text.format` as the pivot's `response_format` (None for plain text).
fn response_format(text: Option<&Value>) -> Result<Option<Value>, ApiError> {
    let Some(format) = text.and_then(|t| t.get("format")).filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let (Some(name), Some(schema)) = (
                format.get("name").and_then(Value::as_str),
                format.get("schema").filter(|s| s.is_object()),
            ) else {
                return Err(ApiError::invalid(
                    "missing_required_parameter",
                    "text.format",
                    "`text.format` of type `json_schema` needs a `name` and a `schema` object",
                ));
            };
            let mut js = Map::new();
            js.insert("name".into(), Value::String(name.to_string()));
            js.insert("schema".into(), schema.clone());
            for key in ["description", "strict"] {
                if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                    js.insert(key.into(), v.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": js})))
        }
        _ => Err(ApiError::invalid(
            "unsupported_value",
            "text.format.type",
            "`text.format.type` must be `text`, `json_object` or `json_schema`",
        )),
    }
}

#[cfg(test)]
#[path = "responses_tests.rs"]
mod tests;
