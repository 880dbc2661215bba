//! Errors the gateway itself answers with, in OpenAI's shape:
//! `{"error": {"message", "type", "code", "param"}}`.

use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub kind: &'static str,
    pub code: String,
    pub param: Option<String>,
    /// Seconds for a `Retry-After` response header.
    pub retry_after_s: Option<u64>,
    /// The method for an `Allow` response header (a 405).
    pub allow: Option<Allowed>,
}

/// The one method an endpoint answers, named in a 405's `Allow` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    Get,
    Post,
}

impl Allowed {
    pub fn as_str(self) -> &'static str {
        match self {
            Allowed::Get => "GET",
            Allowed::Post => "POST",
        }
    }
}

impl ApiError {
    pub fn new(
        status: u16,
        kind: &'static str,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            code: code.into(),
            param: None,
            retry_after_s: None,
            allow: None,
        }
    }
    pub fn invalid(code: &str, param: &str, message: impl Into<String>) -> Self {
        let mut e = ApiError::new(400, "invalid_request_error", code, message);
        e.param = Some(param.to_string());
        e
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(404, "invalid_request_error", "not_found", message)
    }
    pub fn method_not_allowed(allowed: Allowed) -> Self {
        let mut e = ApiError::new(
            405,
            "invalid_request_error",
            "method_not_allowed",
            format!("method not allowed; use {}", allowed.as_str()),
        );
        e.allow = Some(allowed);
        e
    }
    pub fn too_large(limit: usize) -> Self {
        ApiError::new(
            413,
            "invalid_request_error",
            "request_too_large",
            format!("request body exceeds the limit of {limit} bytes"),
        )
    }

    pub fn to_value(&self) -> Value {
        json!({ "error": { "message": self.message, "type": self.kind, "code": self.code, "param": self.param } })
    }
    pub fn to_body(&self) -> Vec<u8> {
        self.to_value().to_string().into_bytes()
    }
}
