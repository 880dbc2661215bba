//! Classifies an OpenAI-style error (HTTP status + `{"error": {...}}` body) into the taxonomy.
//! Status and `code`/`type` decide; message text is only a hint for servers that send no code.

use crate::resilience::{http_body_message, ErrorClass, UpstreamError};
use serde_json::Value;

pub fn classify_error(status: u16, body: &[u8], retry_after_ms: Option<u64>) -> UpstreamError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let field = |k: &str| {
        err.and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let (code, kind) = (field("code"), field("type"));
    let message = err
        .and_then(|e| {
            e.get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| e.as_str().map(str::to_string))
        })
        .unwrap_or_else(|| http_body_message(status, body));
    let lower = message.to_ascii_lowercase();
    let class = match status {
        429 if code == "insufficient_quota" => ErrorClass::AuthError,
        429 => ErrorClass::RateLimited,
        401 | 403 => ErrorClass::AuthError,
        404 => ErrorClass::NotFound,
        408 => ErrorClass::ServerError,
        400 | 413 | 422 => {
            if is_context_length(&code, &lower) {
                ErrorClass::ContextLengthExceeded
            } else if is_content_policy(&code, &kind) {
                ErrorClass::ContentPolicy
            } else {
                ErrorClass::InvalidRequest
            }
        }
        503 | 529 => ErrorClass::Overloaded,
        500..=599 => ErrorClass::ServerError,
        200..=299 => in_band_class(&code, &kind, &lower),
        _ => ErrorClass::InvalidRequest,
    };
    UpstreamError {
        class,
        status: Some(status),
        message,
        retry_after_ms,
        body: Some(body.to_vec()),
        diverged: false,
    }
}

/// Class of an error object that arrived with HTTP 200 (in a body or inside a stream).
pub fn in_band_class(code: &str, kind: &str, lower_message: &str) -> ErrorClass {
    let code = code.to_ascii_lowercase();
    let kind = kind.to_ascii_lowercase();
    if is_context_length(&code, lower_message) {
        ErrorClass::ContextLengthExceeded
    } else if is_content_policy(&code, &kind) {
        ErrorClass::ContentPolicy
    } else if code.contains("rate_limit") || kind.contains("rate_limit") {
        ErrorClass::RateLimited
    } else if code.contains("overloaded") || kind.contains("overloaded") {
        ErrorClass::Overloaded
    } else {
        ErrorClass::ServerError
    }
}

fn is_context_length(code: &str, lower_message: &str) -> bool {
    code == "context_length_exceeded"
        || code == "string_above_max_length"
        || (code.is_empty()
            && (lower_message.contains("maximum context length")
                || lower_message.contains("context length exceeded")
                || lower_message.contains("context_length_exceeded")
                || lower_message.contains("prompt is too long")))
}

fn is_content_policy(code: &str, kind: &str) -> bool {
    matches!(
        code,
        "content_policy_violation" | "content_filter" | "content_policy"
    ) || kind == "content_policy_violation"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures() {
        let f = |status, body: &str| classify_error(status, body.as_bytes(), None).class;
        assert_eq!(
            f(
                429,
                r#"{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}"#
            ),
            ErrorClass::RateLimited
        );
        assert_eq!(
            f(
                429,
                r#"{"error":{"message":"quota","code":"insufficient_quota"}}"#
            ),
            ErrorClass::AuthError
        );
        assert_eq!(
            f(
                400,
                r#"{"error":{"message":"This model's maximum context length is 300000 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}"#
            ),
            ErrorClass::ContextLengthExceeded
        );
        assert_eq!(
            f(
                400,
                r#"{"error":{"message":"This model's maximum context length is 4096 tokens"}}"#
            ),
            ErrorClass::ContextLengthExceeded
        );
        assert_eq!(
            f(
                400,
                r#"{"error":{"message":"flagged","type":"invalid_request_error","code":"content_policy_violation"}}"#
            ),
            ErrorClass::ContentPolicy
        );
        assert_eq!(
            f(
                400,
                r#"{"error":{"message":"bad","type":"invalid_request_error","code":null}}"#
            ),
            ErrorClass::InvalidRequest
        );
        assert_eq!(
            f(
                401,
                r#"{"error":{"message":"Incorrect API key","code":"invalid_api_key"}}"#
            ),
            ErrorClass::AuthError
        );
        assert_eq!(
            f(500, r#"{"error":{"message":"The server had an error"}}"#),
            ErrorClass::ServerError
        );
        assert_eq!(
            f(503, r#"{"error":{"message":"overloaded"}}"#),
            ErrorClass::Overloaded
        );
        assert_eq!(f(502, "<html>bad gateway</html>"), ErrorClass::ServerError);
        assert_eq!(f(404, ""), ErrorClass::NotFound);
    }

    #[test]
    fn message_is_the_providers() {
        let e = classify_error(
            503,
            br#"{"error":{"message":"Our servers are currently overloaded."}}"#,
            Some(1000),
        );
        assert_eq!(e.message, "Our servers are currently overloaded.");
        assert_eq!(e.retry_after_ms, Some(1000));
        let e = classify_error(502, b"plain text", None);
        assert_eq!(e.message, "upstream answered HTTP 502: plain text");
    }
}
