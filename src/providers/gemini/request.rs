//! Builds the upstream request: `POST {base_url}/models/{model}:generateContent` (or
//! `:streamGenerateContent?alt=sse`), key in `x-goog-api-key`, body translated from the pivot.
//!
//! Field mapping (OpenAI → Gemini, camelCase as the official SDKs send it):
//! - `messages` → `systemInstruction` + `contents` (see `contents`);
//! - `tools[].function` (and legacy `functions`) → `tools[0].functionDeclarations[]`
//!   `{name, description, parameters}`, the schema cleaned by `schema::to_gemini`, and left
//!   out when it declares no properties;
//! - `tool_choice` (and legacy `function_call`) → `toolConfig.functionCallingConfig`:
//!   `auto` → AUTO, `none` → NONE, `required` → ANY, a named function → ANY +
//!   `allowedFunctionNames`; `allowed_tools` keeps only the listed declarations, with mode
//!   ANY (+ names) when `required`, AUTO otherwise;
//! - `generationConfig`: `temperature`, `top_p` → `topP`, `top_k` → `topK`,
//!   `max_completion_tokens` (else `max_tokens`) → `maxOutputTokens`, `stop` →
//!   `stopSequences`, `n` → `candidateCount`, `seed`, `presence_penalty` →
//!   `presencePenalty`, `frequency_penalty` → `frequencyPenalty`, `response_format`
//!   `json_object` → `responseMimeType: application/json`, `json_schema` → the same plus
//!   `responseSchema` (the cleaned schema; Gemini's own subset, so `strict` is not enforced).
//!
//! Dropped: `model` (the deployment's is in the URL), `stream`/`stream_options` (the URL
//! decides; Gemini always reports usage), `parallel_tool_calls`, `logprobs`/`top_logprobs`,
//! `logit_bias`, `user`, `metadata`, `store`, `service_tier`, `reasoning_effort`,
//! `modalities`/`audio`, `prediction`, `web_search_options` and any unknown field.

use super::contents::{self, invalid};
use super::schema;
use crate::api::ChatRequest;
use crate::config::{Deployment, HttpProvider};
use crate::providers::{api_key, HttpRequest, Secrets};
use crate::resilience::UpstreamError;
use serde_json::{json, Map, Value};

pub fn build_request(
    provider: &HttpProvider,
    deployment: &Deployment,
    req: &ChatRequest,
    secrets: &dyn Secrets,
) -> Result<HttpRequest, UpstreamError> {
    let mut headers: Vec<(String, String)> = Vec::with_capacity(provider.headers.len() + 3);
    headers.push(("content-type".into(), "application/json".into()));
    let accept = if req.stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    headers.push(("accept".into(), accept.into()));
    if let Some(key) = api_key(provider, deployment, secrets)? {
        headers.push(("x-goog-api-key".into(), key));
    }
    for (k, v) in &provider.headers {
        headers.retain(|(existing, _)| existing != k);
        headers.push((k.clone(), v.clone()));
    }
    let body =
        serde_json::to_vec(&translate_body(&req.body)?).map_err(|e| invalid(e.to_string()))?;
    let method = if req.stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    };
    Ok(HttpRequest {
        url: format!(
            "{}/models/{}:{method}",
            provider.base_url,
            model_segment(&deployment.model)
        ),
        headers,
        body,
    })
}

/// The model as one path segment: a leading `models/` is dropped and every byte outside
/// `A-Z a-z 0-9 - . _ ~` is percent-encoded, so a `/`, `?` or `:` cannot change the URL.
pub(super) fn model_segment(model: &str) -> String {
    let model = model.strip_prefix("models/").unwrap_or(model);
    let mut out = String::with_capacity(model.len());
    for b in model.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The Gemini `GenerateContentRequest` for an OpenAI chat-completions body.
pub fn translate_body(body: &Map<String, Value>) -> Result<Value, UpstreamError> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("`messages` must be an array"))?;
    let converted = contents::convert(messages)?;
    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(converted.contents));
    if !converted.system.is_empty() {
        out.insert(
            "systemInstruction".into(),
            json!({ "parts": converted.system }),
        );
    }
    let (declarations, mode, names) = tools(body)?;
    if !declarations.is_empty() {
        out.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declarations }]),
        );
        if let Some(mode) = mode {
            let mut cfg = Map::new();
            cfg.insert("mode".into(), Value::String(mode.into()));
            if !names.is_empty() {
                cfg.insert("allowedFunctionNames".into(), json!(names));
            }
            out.insert("toolConfig".into(), json!({ "functionCallingConfig": cfg }));
        }
    }
    let config = generation_config(body)?;
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(Value::Object(out))
}

type ToolPlan = (Vec<Value>, Option<&'static str>, Vec<String>);

fn tools(body: &Map<String, Value>) -> Result<ToolPlan, UpstreamError> {
    let mut functions: Vec<&Value> = Vec::new();
    for (i, t) in array(body, "tools")?.iter().enumerate() {
        match t.get("type").and_then(Value::as_str) {
            Some("function") | None => functions.extend(t.get("function")),
            Some(other) => {
                return Err(invalid(format!(
                    "tools[{i}]: tool type {other:?} is not supported by Gemini"
                )))
            }
        }
    }
    functions.extend(array(body, "functions")?.iter());
    let choice = body
        .get("tool_choice")
        .filter(|c| !c.is_null())
        .or_else(|| body.get("function_call").filter(|c| !c.is_null()));
    let named = |c: &Value| {
        c.get("function")
            .and_then(|f| f.get("name"))
            .or_else(|| c.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (mode, names, keep): (Option<&'static str>, Vec<String>, Option<Vec<String>>) = match choice
    {
        None => (None, Vec::new(), None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => (Some("AUTO"), Vec::new(), None),
            "none" => (Some("NONE"), Vec::new(), None),
            "required" => (Some("ANY"), Vec::new(), None),
            other => return Err(invalid(format!("unknown tool_choice {other:?}"))),
        },
        Some(c) if c.get("type").and_then(Value::as_str) == Some("allowed_tools") => {
            let allowed = c.get("allowed_tools");
            let listed: Vec<String> = allowed
                .and_then(|a| a.get("tools"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(named)
                .collect();
            let required =
                allowed.and_then(|a| a.get("mode")).and_then(Value::as_str) == Some("required");
            if required {
                (Some("ANY"), listed.clone(), Some(listed))
            } else {
                (Some("AUTO"), Vec::new(), Some(listed))
            }
        }
        Some(c) => match named(c) {
            Some(name) => (Some("ANY"), vec![name], None),
            None => return Err(invalid("tool_choice names no function")),
        },
    };
    let mut declarations = Vec::with_capacity(functions.len());
    for f in functions {
        let Some(name) = f.get("name").and_then(Value::as_str) else {
            return Err(invalid("a tool function has no name"));
        };
        if keep.as_ref().is_some_and(|k| !k.iter().any(|n| n == name)) {
            continue;
        }
        let mut d = Map::new();
        d.insert("name".into(), Value::String(name.into()));
        if let Some(desc) = f.get("description").and_then(Value::as_str) {
            d.insert("description".into(), Value::String(desc.into()));
        }
        if let Some(params) = f.get("parameters").filter(|p| p.is_object()) {
            let params = schema::to_gemini(params);
            let has_props = params
                .get("properties")
                .and_then(Value::as_object)
                .is_some_and(|p| !p.is_empty());
            if has_props || params.get("type").and_then(Value::as_str) != Some("object") {
                d.insert("parameters".into(), params);
            }
        }
        declarations.push(Value::Object(d));
    }
    Ok((declarations, mode, names))
}

fn array<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], UpstreamError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(invalid(format!("`{key}` must be an array"))),
    }
}

fn generation_config(body: &Map<String, Value>) -> Result<Map<String, Value>, UpstreamError> {
    let mut cfg = Map::new();
    let number = |key: &str| -> Result<Option<Value>, UpstreamError> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v @ Value::Number(_)) => Ok(Some(v.clone())),
            Some(_) => Err(invalid(format!("`{key}` must be a number"))),
        }
    };
    let pairs = [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("n", "candidateCount"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ];
    for (from, to) in pairs {
        if let Some(v) = number(from)? {
            cfg.insert(to.into(), v);
        }
    }
    if let Some(v) = number("max_completion_tokens")?.or(number("max_tokens")?) {
        cfg.insert("maxOutputTokens".into(), v);
    }
    match body.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            cfg.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            if !a.is_empty() {
                cfg.insert("stopSequences".into(), Value::Array(a.clone()));
            }
        }
        Some(_) => return Err(invalid("`stop` must be a string or an array of strings")),
    }
    if let Some(rf) = body.get("response_format").filter(|r| !r.is_null()) {
        match rf.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some("json_object") => {
                cfg.insert("responseMimeType".into(), json!("application/json"));
            }
            Some("json_schema") => {
                cfg.insert("responseMimeType".into(), json!("application/json"));
                let schema = rf.get("json_schema").and_then(|j| j.get("schema"));
                if let Some(s) = schema.filter(|s| s.is_object()) {
                    cfg.insert("responseSchema".into(), schema::to_gemini(s));
                }
            }
            other => {
                return Err(invalid(format!(
                    "response_format type {other:?} is not supported"
                )))
            }
        }
    }
    Ok(cfg)
}
