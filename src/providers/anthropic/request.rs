//! Builds the Anthropic Messages request: `POST {base_url}/messages`.
//!
//! An Anthropic client's own body (`native_anthropic`) is sent as is, with `model`, `stream`
//! and (when absent) `max_tokens` set. Otherwise the OpenAI pivot body is translated:
//!
//! | OpenAI | Anthropic |
//! |---|---|
//! | `messages` | `system` + `messages` (see `messages.rs`) |
//! | `max_completion_tokens`, else `max_tokens` | `max_tokens` (provider default when absent or not a positive integer) |
//! | `temperature` | `temperature`, clamped to [0, 1] |
//! | `top_p` < 1 | `top_p` (1 or more is a no-op and is dropped: newer models refuse `temperature` with `top_p`) |
//! | `top_k` (non-OpenAI extension) | `top_k` |
//! | `stop` (string or array) | `stop_sequences` (whitespace-only entries dropped) |
//! | `stream` | `stream` |
//! | `user` | `metadata.user_id` |
//! | `tools` (function) | `tools`: `name`, `description`, `input_schema` = `parameters` (empty object schema when absent) |
//! | `tool_choice` auto / none / required / named | `{"type":"auto"}` / `{"type":"none"}` / `{"type":"any"}` / `{"type":"tool","name"}` |
//! | `parallel_tool_calls: false` | `disable_parallel_tool_use: true` on `tool_choice` (`auto` if none given) |
//!
//! Dropped without error: `n` = 1, `logprobs`, `top_logprobs`, `presence_penalty`,
//! `frequency_penalty`, `logit_bias`, `seed`, `response_format`, `stream_options`, `store`,
//! `metadata`, `service_tier`, `reasoning_effort`, `modalities`, `audio`, `prediction`,
//! `web_search_options`, `verbosity`, and any other field not in the table. `tool_choice`
//! without tools is dropped. Refused as invalid: `n` > 1, legacy `functions`/`function_call`,
//! non-function tools, unknown `tool_choice` shapes.

use super::messages::{convert_messages, invalid};
use crate::api::ChatRequest;
use crate::config::{AnthropicProvider, Deployment};
use crate::providers::{api_key, HttpRequest, Secrets};
use crate::resilience::UpstreamError;
use serde_json::{json, Map, Value};

pub fn build_request(
    p: &AnthropicProvider,
    deployment: &Deployment,
    req: &ChatRequest,
    secrets: &dyn Secrets,
) -> Result<HttpRequest, UpstreamError> {
    let headers = headers(p, deployment, req, secrets)?;
    let body = messages_body(p, deployment, req)?;
    let body = serde_json::to_vec(&body).map_err(|e| invalid(e.to_string()))?;
    Ok(HttpRequest {
        url: format!("{}/messages", p.http.base_url),
        headers,
        body,
    })
}

/// Fields of a Messages body that `count_tokens` accepts (it refuses the others).
const COUNT_TOKENS_FIELDS: [&str; 7] = [
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "mcp_servers",
];

/// `POST {base_url}/messages/count_tokens` for the same prompt as `build_request` would send
/// (the client's own body for an Anthropic client), reduced to the fields it accepts.
pub fn build_count_tokens(
    p: &AnthropicProvider,
    deployment: &Deployment,
    req: &ChatRequest,
    secrets: &dyn Secrets,
) -> Result<HttpRequest, UpstreamError> {
    let headers = headers(p, deployment, req, secrets)?;
    let mut body = messages_body(p, deployment, req)?;
    body.retain(|k, _| COUNT_TOKENS_FIELDS.contains(&k.as_str()));
    let body = serde_json::to_vec(&body).map_err(|e| invalid(e.to_string()))?;
    Ok(HttpRequest {
        url: format!("{}/messages/count_tokens", p.http.base_url),
        headers,
        body,
    })
}

/// The Messages body: the client's own for an Anthropic client, else a translation.
fn messages_body(
    p: &AnthropicProvider,
    deployment: &Deployment,
    req: &ChatRequest,
) -> Result<Map<String, Value>, UpstreamError> {
    Ok(match &req.native_anthropic {
        Some(native) => native_body(p, deployment, req, native),
        None => translate_body(p, deployment, req)?,
    })
}

fn headers(
    p: &AnthropicProvider,
    deployment: &Deployment,
    req: &ChatRequest,
    secrets: &dyn Secrets,
) -> Result<Vec<(String, String)>, UpstreamError> {
    let mut headers: Vec<(String, String)> = Vec::with_capacity(p.http.headers.len() + 4);
    headers.push(("content-type".into(), "application/json".into()));
    if let Some(key) = api_key(&p.http, deployment, secrets)? {
        headers.push(("x-api-key".into(), key));
    }
    headers.push(("anthropic-version".into(), p.version.clone()));
    let accept = if req.stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    headers.push(("accept".into(), accept.into()));
    // The client's `anthropic-version` / `anthropic-beta` (an allowlist: no other client
    // header reaches an upstream) win over the provider's configured version.
    for (k, v) in &req.anthropic_headers {
        headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(k));
        headers.push((k.clone(), v.clone()));
    }
    for (k, v) in &p.http.headers {
        headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(k));
        headers.push((k.clone(), v.clone()));
    }
    Ok(headers)
}

fn native_body(
    p: &AnthropicProvider,
    deployment: &Deployment,
    req: &ChatRequest,
    native: &Map<String, Value>,
) -> Map<String, Value> {
    let mut body = native.clone();
    body.insert("model".into(), deployment.model.as_str().into());
    body.insert("stream".into(), Value::Bool(req.stream));
    if body.get("max_tokens").is_none_or(Value::is_null) {
        body.insert("max_tokens".into(), p.default_max_tokens.into());
    }
    body
}

fn translate_body(
    p: &AnthropicProvider,
    deployment: &Deployment,
    req: &ChatRequest,
) -> Result<Map<String, Value>, UpstreamError> {
    let src = &req.body;
    let get = |k: &str| src.get(k).filter(|v| !v.is_null());
    if get("functions").is_some() || get("function_call").is_some() {
        return Err(invalid(
            "legacy `functions`/`function_call` are not supported by Anthropic upstreams; use `tools`",
        ));
    }
    if get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(invalid(
            "Anthropic upstreams return one choice: `n` must be 1",
        ));
    }
    let messages = match get("messages") {
        Some(Value::Array(m)) => m.as_slice(),
        _ => return Err(invalid("`messages` must be an array")),
    };
    let converted = convert_messages(messages)?;

    let mut body = Map::new();
    body.insert("model".into(), deployment.model.as_str().into());
    if let Some(system) = converted.system {
        body.insert("system".into(), system);
    }
    body.insert("messages".into(), Value::Array(converted.messages));
    let max_tokens = get("max_completion_tokens")
        .or_else(|| get("max_tokens"))
        .and_then(Value::as_u64)
        .filter(|&n| n > 0)
        .unwrap_or(u64::from(p.default_max_tokens));
    body.insert("max_tokens".into(), max_tokens.into());
    if let Some(t) = get("temperature").and_then(Value::as_f64) {
        body.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(tp) = get("top_p").and_then(Value::as_f64).filter(|&v| v < 1.0) {
        body.insert("top_p".into(), json!(tp.max(0.0)));
    }
    if let Some(k) = get("top_k").and_then(Value::as_u64) {
        body.insert("top_k".into(), k.into());
    }
    let stops: Vec<Value> = match get("stop") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|s| !s.trim().is_empty())
    .map(Value::from)
    .collect();
    if !stops.is_empty() {
        body.insert("stop_sequences".into(), Value::Array(stops));
    }
    body.insert("stream".into(), Value::Bool(req.stream));
    if let Some(user) = get("user")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    {
        body.insert("metadata".into(), json!({ "user_id": user }));
    }
    tools(src, &mut body)?;
    Ok(body)
}

/// `tools`, `tool_choice` and `parallel_tool_calls`.
fn tools(src: &Map<String, Value>, body: &mut Map<String, Value>) -> Result<(), UpstreamError> {
    let list = match src.get("tools") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(invalid("`tools` must be an array")),
    };
    let mut tools = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let kind = t.get("type").and_then(Value::as_str).unwrap_or("function");
        let f = t
            .get("function")
            .filter(|_| kind == "function")
            .ok_or_else(|| {
                invalid(format!(
                    "tools[{i}]: tool type {kind:?} is not supported by Anthropic upstreams"
                ))
            })?;
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("tools[{i}].function.name must be a string")))?;
        let mut tool = Map::new();
        tool.insert("name".into(), name.into());
        if let Some(d) = f.get("description").and_then(Value::as_str) {
            tool.insert("description".into(), d.into());
        }
        let schema = f
            .get("parameters")
            .filter(|p| p.is_object())
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        tool.insert("input_schema".into(), schema);
        if let Some(cc) = t.get("cache_control").filter(|c| !c.is_null()) {
            tool.insert("cache_control".into(), cc.clone());
        }
        tools.push(Value::Object(tool));
    }
    if tools.is_empty() {
        return Ok(());
    }
    body.insert("tools".into(), Value::Array(tools));

    let mut choice = match src.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "none" => Some(json!({"type": "none"})),
            "required" => Some(json!({"type": "any"})),
            other => return Err(invalid(format!("tool_choice {other:?} is not supported"))),
        },
        Some(v) => {
            let name = v
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .filter(|_| v.get("type").and_then(Value::as_str) == Some("function"))
                .ok_or_else(|| invalid(format!("tool_choice {v} is not supported")))?;
            Some(json!({"type": "tool", "name": name}))
        }
    };
    if src.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if let Value::Object(o) = c {
            if o.get("type").and_then(Value::as_str) != Some("none") {
                o.insert("disable_parallel_tool_use".into(), Value::Bool(true));
            }
        }
    }
    if let Some(c) = choice {
        body.insert("tool_choice".into(), c);
    }
    Ok(())
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
