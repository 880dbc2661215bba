//! Classifies Anthropic errors (`{"type":"error","error":{"type","message"}}`) into the
//! taxonomy: HTTP error responses by status first and error `type` second, and in-band errors
//! (a 200 body or an `event: error` in a stream) by error `type` alone. Message text is only
//! used to tell "prompt is too long" and content-policy blocks apart from other 400s.

use crate::resilience::{http_body_message, ErrorClass, UpstreamError};
use serde_json::Value;

/// Classifies a non-2xx response. Keeps the status, body and Retry-After hint.
pub fn classify_error(status: u16, body: &[u8], retry_after_ms: Option<u64>) -> UpstreamError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let kind = err
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
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
        429 => ErrorClass::RateLimited,
        // 402 `billing_error`: the account cannot pay; like a bad key, retrying will not help.
        401..=403 => ErrorClass::AuthError,
        404 => ErrorClass::NotFound,
        408 => ErrorClass::ServerError,
        400 | 413 | 422 => client_fault_class(&kind, &lower),
        503 | 529 => ErrorClass::Overloaded,
        500..=599 if kind == "overloaded_error" => ErrorClass::Overloaded,
        500..=599 => ErrorClass::ServerError,
        200..=299 => in_band_class(&kind, &lower),
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

/// Class of an error object that arrived with HTTP 200 (a body or a stream `error` event),
/// decided by the Anthropic error `type`. Unknown types count as server errors.
pub fn in_band_class(kind: &str, lower_message: &str) -> ErrorClass {
    match kind.to_ascii_lowercase().as_str() {
        "overloaded_error" => ErrorClass::Overloaded,
        "rate_limit_error" => ErrorClass::RateLimited,
        "authentication_error" | "permission_error" | "billing_error" => ErrorClass::AuthError,
        "not_found_error" => ErrorClass::NotFound,
        "invalid_request_error" | "request_too_large" => {
            client_fault_class("invalid_request_error", lower_message)
        }
        _ => ErrorClass::ServerError,
    }
}

/// The in-band error of an `{"type":"error","error":{...}}` object (`err` is the inner object).
pub fn in_band_error(err: &Value) -> UpstreamError {
    let kind = err.get("type").and_then(Value::as_str).unwrap_or("");
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| err.to_string());
    UpstreamError::new(in_band_class(kind, &message.to_ascii_lowercase()), message)
}

/// A 400-family error: context length, content policy, or a plain invalid request.
fn client_fault_class(kind: &str, lower_message: &str) -> ErrorClass {
    if is_context_length(lower_message) {
        ErrorClass::ContextLengthExceeded
    } else if is_content_policy(kind, lower_message) {
        ErrorClass::ContentPolicy
    } else {
        ErrorClass::InvalidRequest
    }
}

/// "prompt is too long: 208310 tokens > 200000 maximum", and variants naming the context window.
fn is_context_length(lower_message: &str) -> bool {
    lower_message.contains("prompt is too long")
        || (lower_message.contains("too long") && lower_message.contains("token"))
        || lower_message.contains("context window")
        || lower_message.contains("context limit")
        || lower_message.contains("context length")
}

/// Anthropic normally signals policy refusals with `stop_reason: "refusal"` on a 200, not with
/// an error. A 400 counts as a policy block only if its type names a policy, or its message
/// says the output or input was blocked by a content filtering / usage policy.
fn is_content_policy(kind: &str, lower_message: &str) -> bool {
    kind.contains("policy")
        || kind.contains("content_filter")
        || lower_message.contains("content filtering policy")
        || lower_message.contains("blocked by content filter")
        || (lower_message.contains("usage policy") && lower_message.contains("violat"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(status: u16, body: &str) -> ErrorClass {
        classify_error(status, body.as_bytes(), None).class
    }

    #[test]
    fn fixtures() {
        let e = classify_error(
            400,
            include_bytes!("testdata/error_400_prompt_too_long.json"),
            None,
        );
        assert_eq!(e.class, ErrorClass::ContextLengthExceeded);
        assert_eq!(
            e.message,
            "prompt is too long: 208310 tokens > 200000 maximum"
        );
        assert_eq!(e.status, Some(400));
        let body = include_bytes!("testdata/error_401_authentication_error.json");
        let e = classify_error(401, body, None);
        assert_eq!(e.class, ErrorClass::AuthError);
        assert_eq!(e.message, "invalid x-api-key");
        assert_eq!(e.body.as_deref(), Some(&body[..]));
        let e = classify_error(
            429,
            include_bytes!("testdata/error_429_rate_limit_error.json"),
            Some(2000),
        );
        assert_eq!(e.class, ErrorClass::RateLimited);
        assert_eq!(e.retry_after_ms, Some(2000));
        assert!(e.message.starts_with("This request would exceed"));
        let e = classify_error(
            529,
            include_bytes!("testdata/error_529_overloaded_error.json"),
            None,
        );
        assert_eq!(e.class, ErrorClass::Overloaded);
        assert_eq!(e.message, "Overloaded");
    }

    #[test]
    fn other_statuses_and_types() {
        let env = |t: &str, m: &str| {
            format!(r#"{{"type":"error","error":{{"type":"{t}","message":"{m}"}}}}"#)
        };
        assert_eq!(
            class(503, &env("api_error", "unavailable")),
            ErrorClass::Overloaded
        );
        assert_eq!(
            class(500, &env("api_error", "Internal server error")),
            ErrorClass::ServerError
        );
        assert_eq!(
            class(502, "<html>bad gateway</html>"),
            ErrorClass::ServerError
        );
        assert_eq!(
            class(504, &env("timeout_error", "t")),
            ErrorClass::ServerError
        );
        assert_eq!(
            class(500, &env("overloaded_error", "Overloaded")),
            ErrorClass::Overloaded
        );
        assert_eq!(
            class(403, &env("permission_error", "no")),
            ErrorClass::AuthError
        );
        assert_eq!(
            class(404, &env("not_found_error", "model: x")),
            ErrorClass::NotFound
        );
        assert_eq!(
            class(
                400,
                &env("invalid_request_error", "messages: field required")
            ),
            ErrorClass::InvalidRequest
        );
        assert_eq!(
            class(
                400,
                &env(
                    "invalid_request_error",
                    "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000"
                )
            ),
            ErrorClass::ContextLengthExceeded
        );
        assert_eq!(
            class(
                400,
                &env(
                    "invalid_request_error",
                    "Output blocked by content filtering policy"
                )
            ),
            ErrorClass::ContentPolicy
        );
        assert_eq!(
            class(
                413,
                &env("request_too_large", "Request exceeds the maximum size")
            ),
            ErrorClass::InvalidRequest
        );
        assert_eq!(class(404, ""), ErrorClass::NotFound);
    }

    #[test]
    fn non_json_bodies() {
        let e = classify_error(502, b"plain text", None);
        assert_eq!(e.message, "upstream answered HTTP 502: plain text");
        let e = classify_error(500, b"", None);
        assert_eq!(e.message, "upstream answered HTTP 500");
        let long = "é".repeat(400);
        let e = classify_error(500, long.as_bytes(), None);
        assert_eq!(e.message.chars().filter(|&c| c == 'é').count(), 300);
    }

    #[test]
    fn in_band() {
        assert_eq!(
            in_band_class("overloaded_error", ""),
            ErrorClass::Overloaded
        );
        assert_eq!(
            in_band_class("rate_limit_error", ""),
            ErrorClass::RateLimited
        );
        assert_eq!(in_band_class("api_error", ""), ErrorClass::ServerError);
        assert_eq!(in_band_class("whatever", ""), ErrorClass::ServerError);
        assert_eq!(
            in_band_class("invalid_request_error", "prompt is too long: 5 tokens > 4"),
            ErrorClass::ContextLengthExceeded
        );
        assert_eq!(
            in_band_class("invalid_request_error", "bad"),
            ErrorClass::InvalidRequest
        );
    }
}
