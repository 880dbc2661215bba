//! Validation shared by both ingress formats: the body is a JSON object, `model` a non-empty
//! string, `messages` a non-empty array, `stream` a boolean. Errors name the field (`param`).

use super::error::ApiError;
use serde_json::{Map, Value};

pub fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            400,
            "invalid_request_error",
            "invalid_json",
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    match value {
        Value::Object(o) => Ok(o),
        _ => Err(ApiError::new(
            400,
            "invalid_request_error",
            "invalid_json",
            "request body must be a JSON object",
        )),
    }
}

fn missing(field: &str) -> ApiError {
    ApiError::invalid(
        "missing_required_parameter",
        field,
        format!("missing required parameter: `{field}`"),
    )
}

pub fn model(body: &Map<String, Value>) -> Result<String, ApiError> {
    match body.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => Ok(m.clone()),
        Some(_) => Err(ApiError::invalid(
            "invalid_type",
            "model",
            "`model` must be a non-empty string",
        )),
        None => Err(missing("model")),
    }
}

/// Most messages accepted in one request (Anthropic's documented limit; the body size limit
/// bounds everything else).
pub const MAX_MESSAGES: usize = 100_000;

pub fn messages(body: &Map<String, Value>) -> Result<&Vec<Value>, ApiError> {
    match body.get("messages") {
        Some(Value::Array(m)) if m.len() > MAX_MESSAGES => Err(ApiError::invalid(
            "invalid_value",
            "messages",
            format!(
                "`messages` has {} entries; at most {MAX_MESSAGES} are accepted",
                m.len()
            ),
        )),
        Some(Value::Array(m)) if !m.is_empty() => Ok(m),
        Some(Value::Array(_)) => Err(ApiError::invalid(
            "invalid_value",
            "messages",
            "`messages` must not be empty",
        )),
        Some(_) => Err(ApiError::invalid(
            "invalid_type",
            "messages",
            "`messages` must be an array",
        )),
        None => Err(missing("messages")),
    }
}

/// An optional boolean field (absent or null: false).
pub fn flag(body: &Map<String, Value>, field: &str) -> Result<bool, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::invalid(
            "invalid_type",
            field,
            format!("`{field}` must be a boolean"),
        )),
    }
}

/// A required positive integer field.
pub fn positive_int(body: &Map<String, Value>, field: &str) -> Result<u64, ApiError> {
    match body.get(field) {
        Some(v) if v.as_u64().is_some_and(|n| n >= 1) => Ok(v.as_u64().unwrap_or(1)),
        Some(_) => Err(ApiError::invalid(
            "invalid_value",
            field,
            format!("`{field}` must be a positive integer"),
        )),
        None => Err(missing(field)),
    }
}
