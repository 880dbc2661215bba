//! Anthropic Messages ingress (`POST /v1/messages`): validates an Anthropic request and
//! translates it into the pivot format (an OpenAI chat-completions body). The original body is
//! kept so that Anthropic upstreams receive it unchanged, provider-specific fields included.

use super::chat::{ChatRequest, ClientFormat};
use super::error::ApiError;
use super::fields;
use serde_json::{json, Map, Value};

pub fn parse_messages_request(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    let native = fields::json_object(bytes)?;
    let model = fields::model(&native)?;
    fields::positive_int(&native, "max_tokens")?;
    let messages = fields::messages(&native)?;
    let stream = fields::flag(&native, "stream")?;

    let mut out: Vec<Value> = Vec::new();
    let mut prompt_chars = 0;
    if let Some(system) = native.get("system") {
        let text = blocks_text(system);
        prompt_chars += text.chars().count();
        if !text.is_empty() {
            out.push(json!({"role": "system", "content": text}));
        }
    }
    for (i, m) in messages.iter().enumerate() {
        let param = format!("messages.{i}");
        let role = m.get("role").and_then(Value::as_str);
        let role = match role {
            Some(r @ ("user" | "assistant")) => r,
            _ => {
                return Err(ApiError::invalid(
                    "invalid_value",
                    &format!("{param}.role"),
                    format!("{param}.role: must be \"user\" or \"assistant\""),
                ))
            }
        };
        let content = m.get("content").ok_or_else(|| {
            ApiError::invalid(
                "missing_required_parameter",
                &format!("{param}.content"),
                format!("{param}.content: Field required"),
            )
        })?;
        prompt_chars += blocks_text(content).chars().count();
        convert_message(role, content, &mut out).map_err(|msg| {
            ApiError::invalid(
                "invalid_value",
                &format!("{param}.content"),
                format!("{param}.content: {msg}"),
            )
        })?;
    }

    let mut body = Map::new();
    body.insert("model".into(), Value::String(model.clone()));
    body.insert("messages".into(), Value::Array(out));
    if let Some(n) = native.get("max_tokens") {
        body.insert("max_tokens".into(), n.clone());
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = native.get(key) {
            body.insert(key.into(), v.clone());
        }
    }
    if let Some(stops) = native.get("stop_sequences") {
        body.insert("stop".into(), stops.clone());
    }
    if stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    if let Some(user) = native.get("metadata").and_then(|m| m.get("user_id")) {
        body.insert("user".into(), user.clone());
    }
    if let Some(Value::Array(tools)) = native.get("tools") {
        let tools: Vec<Value> = tools
            .iter()
            .filter(|t| t.get("input_schema").is_some())
            .map(|t| {
                json!({"type": "function", "function": {"name": t.get("name"), "description": t.get("description"),
                       "parameters": t.get("input_schema")}})
            })
            .collect();
        if !tools.is_empty() {
            body.insert("tools".into(), Value::Array(tools));
        }
    }
    if let Some(choice) = native.get("tool_choice") {
        let kind = choice.get("type").and_then(Value::as_str);
        let mapped = match kind {
            Some("auto") => Some(json!("auto")),
            Some("any") => Some(json!("required")),
            Some("none") => Some(json!("none")),
            Some("tool") => choice
                .get("name")
                .map(|n| json!({"type": "function", "function": {"name": n}})),
            _ => None,
        };
        if let Some(m) = mapped {
            body.insert("tool_choice".into(), m);
        }
        if choice.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
            body.insert("parallel_tool_calls".into(), Value::Bool(false));
        }
    }
    Ok(ChatRequest {
        body,
        client: ClientFormat::Anthropic,
        native_anthropic: Some(native),
        model,
        stream,
        include_usage: false,
        prompt_chars,
        anthropic_headers: Vec::new(),
        output_cap: None,
        output_schema: None,
    })
}

/// Appends the OpenAI messages for one Anthropic message.
fn convert_message(role: &str, content: &Value, out: &mut Vec<Value>) -> Result<(), String> {
    let blocks: Vec<Value> = match content {
        Value::String(s) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Value::Array(b) => b.clone(),
        _ => return Err("must be a string or an array of content blocks".into()),
    };
    let mut parts: Vec<Value> = Vec::new();
    let mut tool_calls: Vec<Value> = Vec::new();
    for block in &blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(json!({"type": "text", "text": block.get("text").and_then(Value::as_str).unwrap_or("")})),
            Some("image") => {
                let source = block.get("source");
                let url = match source.and_then(|s| s.get("type")).and_then(Value::as_str) {
                    Some("base64") => {
                        let s = |k: &str| source.and_then(|x| x.get(k)).and_then(Value::as_str).unwrap_or("");
                        format!("data:{};base64,{}", s("media_type"), s("data"))
                    }
                    Some("url") => source.and_then(|s| s.get("url")).and_then(Value::as_str).unwrap_or("").to_string(),
                    _ => return Err("image blocks need a base64 or url source".into()),
                };
                parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            Some("tool_use") if role == "assistant" => {
                let args = block.get("input").cloned().unwrap_or_else(|| json!({}));
                tool_calls.push(json!({"id": block.get("id"), "type": "function",
                    "function": {"name": block.get("name"), "arguments": args.to_string()}}));
            }
            Some("tool_result") => {
                let text = block.get("content").map(blocks_text).unwrap_or_default();
                let text = if block.get("is_error") == Some(&Value::Bool(true)) { format!("Error: {text}") } else { text };
                out.push(json!({"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text}));
            }
            // Thinking, documents and other blocks have no OpenAI equivalent; Anthropic
            // upstreams still get them through the native body.
            _ => {}
        }
    }
    if parts.is_empty() && tool_calls.is_empty() {
        return Ok(());
    }
    let only_text = parts
        .iter()
        .all(|p| p.get("type").and_then(Value::as_str) == Some("text"));
    let content = if only_text {
        let text: Vec<&str> = parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect();
        if text.is_empty() {
            Value::Null
        } else {
            Value::String(text.join(""))
        }
    } else {
        Value::Array(parts)
    };
    let mut msg = Map::new();
    msg.insert("role".into(), Value::String(role.into()));
    msg.insert("content".into(), content);
    if !tool_calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    out.push(Value::Object(msg));
    Ok(())
}

/// The text of a string or of an array of text blocks.
fn blocks_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The gateway's errors in Anthropic's shape: `{"type":"error","error":{"type","message"}}`.
pub fn error_body(e: &ApiError) -> Vec<u8> {
    json!({"type": "error", "error": {"type": anthropic_error_type(e), "message": e.message}})
        .to_string()
        .into_bytes()
}

/// The `error.type` of `e` in Anthropic's bodies (`ErrorKind` maps it).
pub fn anthropic_error_type(e: &ApiError) -> &'static str {
    e.error_kind().anthropic_type()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_system_images_tools_and_results() {
        let body = json!({"model": "claude", "max_tokens": 100, "system": [{"type": "text", "text": "Be brief."}],
        "tools": [{"name": "get_weather", "description": "d", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true}, "stop_sequences": ["END"], "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [
            {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}}, {"type": "text", "text": "What is this?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Let me check."}, {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]}]}
        ]});
        let r = parse_messages_request(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.client, ClientFormat::Anthropic);
        let m = &r.body["messages"];
        assert_eq!(m[0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(
            m[1]["content"][0]["image_url"]["url"],
            "data:image/png;base64,AAA"
        );
        assert_eq!(
            m[2]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"})
        );
        assert_eq!(r.body["tool_choice"], "required");
        assert_eq!(r.body["parallel_tool_calls"], false);
        assert_eq!(r.body["stop"], json!(["END"]));
        assert_eq!(
            r.body["tools"][0]["function"]["parameters"],
            json!({"type": "object"})
        );
        assert!(
            r.body.get("thinking").is_none(),
            "provider-specific fields stay in the native body only"
        );
        assert!(r.native_anthropic.unwrap().contains_key("thinking"));
    }

    #[test]
    fn rejects_what_anthropic_rejects() {
        for (body, param) in [
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
                "max_tokens",
            ),
            (
                json!({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
                "model",
            ),
            (
                json!({"model": "m", "max_tokens": 5, "messages": []}),
                "messages",
            ),
            (
                json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}),
                "messages.0.role",
            ),
        ] {
            let e = parse_messages_request(body.to_string().as_bytes()).unwrap_err();
            assert_eq!((e.status, e.param.as_deref()), (400, Some(param)));
        }
        let e = parse_messages_request(b"{nope").unwrap_err();
        assert!(String::from_utf8(error_body(&e))
            .unwrap()
            .contains("\"type\":\"invalid_request_error\""));
    }
}
