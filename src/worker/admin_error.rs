//! The admin API's error answers, OpenAI-shaped (`{"error": {"message", "type", "code", …}}`)
//! with the status and type of an [`ErrorKind`]. Shared by `admin`, `admin_keys` and
//! `admin_table`, so none of them imports another for it.

use super::respond::{error_response, json_response};
use crate::api::error::ErrorKind;
use crate::api::ApiError;
use serde_json::{json, Value};
use worker::{Response, Result};

/// `{"error": {"message", "type", "code", "param": null}}`.
pub(super) fn err(kind: ErrorKind, code: &str, message: impl Into<String>) -> Result<Response> {
    error_response(&ApiError::of(kind, code, message), None)
}

/// `{"error": {"message", "type", "code", ...extra}}` (the routing-table API's form).
pub(super) fn error(kind: ErrorKind, code: &str, message: &str, extra: Value) -> Result<Response> {
    let mut e = json!({"message": message, "type": kind.openai_type(), "code": code});
    if let (Some(o), Value::Object(x)) = (e.as_object_mut(), extra) {
        o.extend(x);
    }
    json_response(kind.status(), &json!({ "error": e }))
}
