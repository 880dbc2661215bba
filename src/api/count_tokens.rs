//! `POST /v1/messages/count_tokens` (Anthropic): the request, a Messages body without
//! `max_tokens`, and the estimate given when no Anthropic upstream can count it.

use super::anthropic::parse_messages_request;
use super::chat::ChatRequest;
use super::error::ApiError;
use super::fields;
use serde_json::Value;

/// Validates a count request as a Messages request (same fields, same errors), except that
/// it needs no `max_tokens` and is never streamed.
pub fn parse_count_tokens_request(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    let mut body = fields::json_object(bytes)?;
    body.entry("max_tokens").or_insert(Value::from(1));
    body.remove("stream");
    let bytes = serde_json::to_vec(&Value::Object(body))
        .map_err(|e| ApiError::invalid("invalid_json", "", format!("request body: {e}")))?;
    parse_messages_request(&bytes)
}

/// The prompt's tokens as `usage::estimate` counts them (text, tool definitions, tool calls,
/// images). Never 0: a prompt has at least one token.
pub fn estimate_input_tokens(req: &ChatRequest) -> u64 {
    crate::usage::estimate::prompt_tokens(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_request_needs_no_max_tokens_and_is_checked_like_messages() {
        let r = parse_count_tokens_request(
            br#"{"model":"m","system":"be brief","messages":[{"role":"user","content":"hello there"}]}"#,
        )
        .unwrap();
        assert_eq!(r.model, "m");
        assert!(!r.stream);
        // "be brief" + "hello there" = 19 characters → 5 tokens.
        assert_eq!(estimate_input_tokens(&r), 5);
        let bad = parse_count_tokens_request(
            br#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#,
        );
        assert!(bad.is_err());
        assert!(
            parse_count_tokens_request(br#"{"messages":[]}"#).is_err(),
            "model is required"
        );
    }

    #[test]
    fn tool_definitions_count_towards_the_estimate() {
        let plain = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let with_tools = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],
            "tools":[{"name":"get_weather","description":"Weather for a city","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}]}"#;
        let a = estimate_input_tokens(&parse_count_tokens_request(plain).unwrap());
        let b = estimate_input_tokens(&parse_count_tokens_request(with_tools).unwrap());
        assert_eq!(a, 1);
        assert!(b > a + 10, "{b}");
    }
}
