//! Client-facing OpenAI chat-completions request: parsed just enough to route and validate,
//! with the whole JSON object kept so unknown fields reach a same-format upstream untouched.

use super::error::ApiError;
use super::fields;
use serde_json::{Map, Value};

/// The wire format the client speaks (and gets its answer in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFormat {
    OpenAi,
    Anthropic,
}

#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The request as an OpenAI chat-completions body (the pivot format): the client's own
    /// body for OpenAI clients, a translation for Anthropic clients.
    pub body: Map<String, Value>,
    pub client: ClientFormat,
    /// An Anthropic client's original body, sent as is (model replaced) to Anthropic upstreams
    /// so provider-specific fields (`thinking`, `cache_control`, …) survive.
    pub native_anthropic: Option<Map<String, Value>>,
    /// Public model (route) name the client asked for.
    pub model: String,
    pub stream: bool,
    /// The client asked for a final usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// Characters of message text, for rough token estimates.
    pub prompt_chars: usize,
    /// Anthropic's own request headers the client sent (`ANTHROPIC_HEADERS`), forwarded to
    /// Anthropic upstreams only; never any other client header.
    pub anthropic_headers: Vec<(String, String)>,
    /// The output limit the gateway set itself (`keys::cap_output`): a stream reaching it ends
    /// with an in-band `budget_exceeded` error, never as a complete answer.
    pub output_cap: Option<u64>,
    /// The strict JSON schema the answer must follow, when the request asks for one and its
    /// route checks answers (`routing::prepare`): an answer off it is a failed attempt.
    pub output_schema: Option<Value>,
}

/// Client headers an Anthropic upstream receives as sent: the API version and the beta
/// features the client opted into (Claude Code sends both).
pub const ANTHROPIC_HEADERS: [&str; 2] = ["anthropic-version", "anthropic-beta"];

/// Longest forwarded value of one of those headers (a beta list is short; this only bounds
/// what a hostile client can make the gateway send).
const MAX_ANTHROPIC_HEADER_BYTES: usize = 1024;

/// The `ANTHROPIC_HEADERS` among a request's headers (names lower-case), to forward.
pub fn anthropic_headers_of(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, v)| {
            ANTHROPIC_HEADERS.contains(&k.as_str())
                && !v.trim().is_empty()
                && v.len() <= MAX_ANTHROPIC_HEADER_BYTES
        })
        .map(|(k, v)| (k.clone(), v.trim().to_string()))
        .collect()
}

const ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

pub fn parse_chat_request(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    let body = fields::json_object(bytes)?;
    let model = fields::model(&body)?;
    let messages = fields::messages(&body)?;
    let mut prompt_chars = 0;
    for (i, m) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let Value::Object(m) = m else {
            return Err(ApiError::invalid(
                "invalid_type",
                &param,
                format!("`{param}` must be an object"),
            ));
        };
        match m.get("role") {
            Some(Value::String(r)) if ROLES.contains(&r.as_str()) => {}
            Some(r) => {
                return Err(ApiError::invalid(
                    "invalid_value",
                    &format!("{param}.role"),
                    format!("`{param}.role` {r} is not one of {ROLES:?}"),
                ))
            }
            None => {
                return Err(ApiError::invalid(
                    "missing_required_parameter",
                    &format!("{param}.role"),
                    format!("missing `{param}.role`"),
                ))
            }
        }
        prompt_chars += content_chars(m.get("content"));
    }
    let stream = fields::flag(&body, "stream")?;
    let include_usage = match body.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => match o.get("include_usage") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(ApiError::invalid(
                    "invalid_type",
                    "stream_options.include_usage",
                    "`stream_options.include_usage` must be a boolean",
                ))
            }
        },
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_type",
                "stream_options",
                "`stream_options` must be an object",
            ))
        }
    };
    Ok(ChatRequest {
        body,
        client: ClientFormat::OpenAi,
        native_anthropic: None,
        model,
        stream,
        include_usage: stream && include_usage,
        prompt_chars,
        anthropic_headers: Vec::new(),
        output_cap: None,
        output_schema: None,
    })
}

fn content_chars(content: Option<&Value>) -> usize {
    match content {
        Some(Value::String(s)) => s.chars().count(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .map(|t| t.chars().count())
            .sum(),
        _ => 0,
    }
}

/// Capabilities a request needs from a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    pub tools: bool,
    pub vision: bool,
    pub json: bool,
    pub streaming: bool,
}

impl ChatRequest {
    /// What a deployment must support to serve this request (read from the pivot body).
    pub fn needs(&self) -> Needs {
        let b = &self.body;
        let tools = matches!(b.get("tools"), Some(Value::Array(t)) if !t.is_empty());
        let vision = matches!(b.get("messages"), Some(Value::Array(ms)) if ms.iter().any(|m| {
            matches!(m.get("content"), Some(Value::Array(parts))
                if parts.iter().any(|p| p.get("type").and_then(Value::as_str) == Some("image_url")))
        }));
        let json = matches!(
            b.get("response_format")
                .and_then(|f| f.get("type"))
                .and_then(Value::as_str),
            Some("json_object" | "json_schema")
        );
        Needs {
            tools,
            vision,
            json,
            streaming: self.stream,
        }
    }
}

/// The text of the last user message (used by the mock provider to echo something useful).
pub fn last_user_text(body: &Map<String, Value>) -> String {
    let Some(Value::Array(messages)) = body.get("messages") else {
        return String::new();
    };
    let Some(m) = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    else {
        return String::new();
    };
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_keeps_unknown_fields() {
        let r = parse_chat_request(br#"{"model":"m","messages":[{"role":"user","content":"hello"}],"stream":true,"stream_options":{"include_usage":true},"x_custom":1}"#).unwrap();
        assert!(r.stream && r.include_usage);
        assert_eq!(r.prompt_chars, 5);
        assert_eq!(r.body["x_custom"], 1);
    }

    #[test]
    fn bounds_the_number_of_messages() {
        let body = |n: usize| {
            let msgs = vec![r#"{"role":"user","content":"x"}"#; n].join(",");
            format!(r#"{{"model":"m","messages":[{msgs}]}}"#)
        };
        assert!(parse_chat_request(body(fields::MAX_MESSAGES).as_bytes()).is_ok());
        let e = parse_chat_request(body(fields::MAX_MESSAGES + 1).as_bytes()).unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (400, "invalid_value"));
        assert_eq!(e.param.as_deref(), Some("messages"));
    }

    #[test]
    fn rejects_with_param() {
        let cases: [(&[u8], &str); 6] = [
            (b"nope", "invalid_json"),
            (b"[]", "invalid_json"),
            (
                br#"{"messages":[{"role":"user"}]}"#,
                "missing_required_parameter",
            ),
            (br#"{"model":"m","messages":[]}"#, "invalid_value"),
            (
                br#"{"model":"m","messages":[{"role":"wizard"}]}"#,
                "invalid_value",
            ),
            (
                br#"{"model":"m","messages":[{"role":"user"}],"stream":"yes"}"#,
                "invalid_type",
            ),
        ];
        for (body, code) in cases {
            let e = parse_chat_request(body).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(e.code, code, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn only_anthropic_headers_are_picked_for_forwarding() {
        let h = |k: &str, v: &str| (k.to_string(), v.to_string());
        let picked = anthropic_headers_of(&[
            h(
                "anthropic-beta",
                "prompt-caching-2024-07-31,fine-grained-tool-streaming-2025-05-14",
            ),
            h("anthropic-version", "2023-06-01"),
            h("authorization", "Bearer sk-client"),
            h("x-api-key", "sk-gw"),
            h("anthropic-dangerous-direct-browser-access", "true"),
            h("cookie", "a=b"),
        ]);
        assert_eq!(
            picked,
            vec![
                h(
                    "anthropic-beta",
                    "prompt-caching-2024-07-31,fine-grained-tool-streaming-2025-05-14"
                ),
                h("anthropic-version", "2023-06-01"),
            ]
        );
        assert!(anthropic_headers_of(&[h("anthropic-beta", &"x".repeat(5000))]).is_empty());
    }
}
