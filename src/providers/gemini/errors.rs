//! Classifies a Gemini error: HTTP status plus a `google.rpc.Status` body
//! (`{"error":{"code","message","status","details":[…]}}`, sometimes wrapped in a one-element
//! array). The canonical `status` string and `ErrorInfo.reason` decide before the HTTP status;
//! the message is read only to spot an over-long prompt, which Gemini reports as a plain
//! `INVALID_ARGUMENT`. A `google.rpc.RetryInfo.retryDelay` is the retry hint when the HTTP
//! `Retry-After` header gave none (Gemini documents no rate-limit headers).

use crate::resilience::{http_body_message, ErrorClass, UpstreamError};
use serde_json::Value;

pub fn classify_error(status: u16, body: &[u8], retry_after_ms: Option<u64>) -> UpstreamError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(error_object);
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| http_body_message(status, body));
    let class = match err {
        Some(e) => class_of(status, e, &message),
        None => class_of(status, &Value::Null, &message),
    };
    UpstreamError {
        class,
        status: Some(status),
        message,
        retry_after_ms: retry_after_ms.or_else(|| err.and_then(retry_delay_ms)),
        body: Some(body.to_vec()),
        diverged: false,
    }
}

/// An error object that arrived inside a 200 answer or stream: its own `code` stands in for
/// the HTTP status (500 when absent).
pub fn in_band_error(err: &Value, raw: &[u8]) -> UpstreamError {
    let code = err
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
        .unwrap_or(500);
    let mut wrapped = serde_json::Map::new();
    wrapped.insert("error".into(), err.clone());
    let body = serde_json::to_vec(&Value::Object(wrapped)).unwrap_or_else(|_| raw.to_vec());
    classify_error(code, &body, None)
}

/// `{"error":{…}}`, or the same inside a one-element array (as `streamGenerateContent`
/// without `alt=sse` answers).
pub fn error_object(v: &Value) -> Option<&Value> {
    let v = match v {
        Value::Array(items) => items.first()?,
        other => other,
    };
    v.get("error").filter(|e| e.is_object())
}

fn class_of(status: u16, err: &Value, message: &str) -> ErrorClass {
    let rpc_status = err.get("status").and_then(Value::as_str).unwrap_or("");
    let reasons: Vec<&str> = details(err)
        .filter(|d| type_is(d, "google.rpc.ErrorInfo"))
        .filter_map(|d| d.get("reason").and_then(Value::as_str))
        .collect();
    let lower = message.to_ascii_lowercase();
    if reasons.iter().any(|r| r.starts_with("API_KEY_"))
        || matches!(rpc_status, "UNAUTHENTICATED" | "PERMISSION_DENIED")
        || matches!(status, 401 | 403)
    {
        return ErrorClass::AuthError;
    }
    if status == 429 || rpc_status == "RESOURCE_EXHAUSTED" {
        return ErrorClass::RateLimited;
    }
    if matches!(status, 503 | 529) || rpc_status == "UNAVAILABLE" {
        return ErrorClass::Overloaded;
    }
    if status == 404 || rpc_status == "NOT_FOUND" {
        return ErrorClass::NotFound;
    }
    // e.g. "User location is not supported for the API use": this deployment cannot serve,
    // another one may.
    if rpc_status == "FAILED_PRECONDITION" {
        return ErrorClass::AuthError;
    }
    if matches!(status, 400 | 413 | 422)
        || matches!(rpc_status, "INVALID_ARGUMENT" | "OUT_OF_RANGE")
    {
        return if is_context_length(&lower) {
            ErrorClass::ContextLengthExceeded
        } else {
            ErrorClass::InvalidRequest
        };
    }
    match status {
        408 | 500..=599 => ErrorClass::ServerError,
        400..=499 => ErrorClass::InvalidRequest,
        _ => ErrorClass::ServerError,
    }
}

/// "The input token count (1234567) exceeds the maximum number of tokens allowed (1048576)."
fn is_context_length(lower: &str) -> bool {
    lower.contains("exceeds the maximum number of tokens")
        || (lower.contains("token count") && lower.contains("exceeds"))
        || lower.contains("context length")
        || lower.contains("too many tokens")
}

fn details(err: &Value) -> impl Iterator<Item = &Value> {
    err.get("details")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn type_is(detail: &Value, name: &str) -> bool {
    detail
        .get("@type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.ends_with(name))
}

/// `RetryInfo.retryDelay`, a protobuf Duration in JSON ("30s", "1.5s", "0.250s"), in ms
/// rounded up.
fn retry_delay_ms(err: &Value) -> Option<u64> {
    let delay = details(err)
        .filter(|d| type_is(d, "google.rpc.RetryInfo"))
        .find_map(|d| d.get("retryDelay"))?;
    match delay {
        Value::String(s) => parse_duration_ms(s),
        // The proto form `{"seconds": N, "nanos": M}`, in case a proxy re-encoded it.
        Value::Object(o) => {
            let secs = o.get("seconds").and_then(|s| {
                s.as_u64()
                    .or_else(|| s.as_str().and_then(|t| t.parse().ok()))
            });
            let nanos = o.get("nanos").and_then(Value::as_u64).unwrap_or(0);
            Some(
                secs.unwrap_or(0)
                    .saturating_mul(1000)
                    .saturating_add(nanos.div_ceil(1_000_000)),
            )
        }
        _ => None,
    }
}

fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim().strip_suffix('s')?;
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(frac) {
        return None;
    }
    let secs: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut ms = secs.checked_mul(1000)?;
    // First three fractional digits are ms; anything after them rounds up.
    let mut scale = 100;
    for (i, b) in frac.bytes().enumerate() {
        let d = u64::from(b - b'0');
        if i < 3 {
            ms = ms.checked_add(d * scale)?;
            scale /= 10;
        } else if d > 0 {
            return ms.checked_add(1);
        }
    }
    Some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVALID_KEY: &str = include_str!("testdata/error_400_invalid_argument.json");
    const QUOTA: &str = include_str!("testdata/error_429_resource_exhausted.json");

    fn class(status: u16, body: &str) -> ErrorClass {
        classify_error(status, body.as_bytes(), None).class
    }

    #[test]
    fn fixtures() {
        let e = classify_error(400, INVALID_KEY.as_bytes(), None);
        assert_eq!(e.class, ErrorClass::AuthError);
        assert_eq!(e.message, "API key not valid. Please pass a valid API key.");
        assert_eq!(e.status, Some(400));
        assert_eq!(e.body.as_deref(), Some(INVALID_KEY.as_bytes()));
        let e = classify_error(429, QUOTA.as_bytes(), Some(7000));
        assert_eq!(e.class, ErrorClass::RateLimited);
        assert!(e.message.starts_with("Quota exceeded for quota metric"));
        assert_eq!(e.retry_after_ms, Some(7000));
        assert_eq!(
            classify_error(429, QUOTA.as_bytes(), None).retry_after_ms,
            None
        );
    }

    #[test]
    fn retry_info_gives_the_hint() {
        let body = r#"{"error":{"code":429,"message":"You exceeded your current quota","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"41s"}]}}"#;
        let e = classify_error(429, body.as_bytes(), None);
        assert_eq!(
            (e.class, e.retry_after_ms),
            (ErrorClass::RateLimited, Some(41_000))
        );
        // The header hint wins.
        assert_eq!(
            classify_error(429, body.as_bytes(), Some(2000)).retry_after_ms,
            Some(2000)
        );
        assert_eq!(parse_duration_ms("1.5s"), Some(1500));
        assert_eq!(parse_duration_ms("0.0001s"), Some(1));
        assert_eq!(parse_duration_ms("12.345678s"), Some(12_346));
        assert_eq!(parse_duration_ms("3"), None);
        assert_eq!(parse_duration_ms("-1s"), None);
        assert_eq!(parse_duration_ms("s"), None);
    }

    #[test]
    fn status_table() {
        let status = |code: u16, s: &str, msg: &str| {
            format!(r#"{{"error":{{"code":{code},"message":"{msg}","status":"{s}"}}}}"#)
        };
        let cases = [
            (503, "UNAVAILABLE", "The model is overloaded.", ErrorClass::Overloaded),
            (529, "", "overloaded", ErrorClass::Overloaded),
            (500, "INTERNAL", "An internal error has occurred.", ErrorClass::ServerError),
            (504, "DEADLINE_EXCEEDED", "Deadline expired", ErrorClass::ServerError),
            (502, "", "bad gateway", ErrorClass::ServerError),
            (401, "UNAUTHENTICATED", "no key", ErrorClass::AuthError),
            (403, "PERMISSION_DENIED", "denied", ErrorClass::AuthError),
            (404, "NOT_FOUND", "models/x is not found", ErrorClass::NotFound),
            (400, "FAILED_PRECONDITION", "User location is not supported", ErrorClass::AuthError),
            (
                400,
                "INVALID_ARGUMENT",
                "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
                ErrorClass::ContextLengthExceeded,
            ),
            (400, "INVALID_ARGUMENT", "Invalid JSON payload received.", ErrorClass::InvalidRequest),
        ];
        for (code, s, msg, want) in cases {
            assert_eq!(class(code, &status(code, s, msg)), want, "{code} {s}");
        }
        assert_eq!(
            class(502, "<html>bad gateway</html>"),
            ErrorClass::ServerError
        );
        assert_eq!(class(404, ""), ErrorClass::NotFound);
        assert_eq!(class(418, "teapot"), ErrorClass::InvalidRequest);
        // Array-wrapped body, as non-SSE streaming answers errors.
        let wrapped = format!("[{}]", status(429, "RESOURCE_EXHAUSTED", "slow down"));
        let e = classify_error(429, wrapped.as_bytes(), None);
        assert_eq!(
            (e.class, e.message.as_str()),
            (ErrorClass::RateLimited, "slow down")
        );
        let e = classify_error(502, b"plain text", None);
        assert_eq!(e.message, "upstream answered HTTP 502: plain text");
    }

    #[test]
    fn in_band_uses_the_code() {
        let err: Value = serde_json::from_str(
            r#"{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}"#,
        )
        .unwrap();
        let e = in_band_error(&err, b"");
        assert_eq!((e.class, e.status), (ErrorClass::Overloaded, Some(503)));
        let e = in_band_error(&serde_json::json!({"message": "boom"}), b"");
        assert_eq!(
            (e.class, e.message.as_str()),
            (ErrorClass::ServerError, "boom")
        );
    }
}
