//! Errors the gateway itself answers with, in OpenAI's shape:
//! `{"error": {"message", "type", "code", "param"}}` (Anthropic's shape is made from the same
//! value, `api::anthropic::error_body`).
//!
//! [`ErrorKind`] is the one place that ties an HTTP status to the error type names of each
//! format: the admin API, the routing-table API and the Anthropic egress all read it.

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

/// What went wrong, as the caller should read it: one HTTP status and one error type name per
/// wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PreconditionFailed,
    TooLarge,
    PreconditionRequired,
    RateLimited,
    Internal,
    BadGateway,
    Unavailable,
    Timeout,
    /// Anthropic's 529.
    Overloaded,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 15] = [
        ErrorKind::BadRequest,
        ErrorKind::Unauthorized,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::Conflict,
        ErrorKind::PreconditionFailed,
        ErrorKind::TooLarge,
        ErrorKind::PreconditionRequired,
        ErrorKind::RateLimited,
        ErrorKind::Internal,
        ErrorKind::BadGateway,
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::Overloaded,
    ];

    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Conflict => 409,
            ErrorKind::PreconditionFailed => 412,
            ErrorKind::TooLarge => 413,
            ErrorKind::PreconditionRequired => 428,
            ErrorKind::RateLimited => 429,
            ErrorKind::Internal => 500,
            ErrorKind::BadGateway => 502,
            ErrorKind::Unavailable => 503,
            ErrorKind::Timeout => 504,
            ErrorKind::Overloaded => 529,
        }
    }

    /// The kind whose type names fit an error with this status: its own, else a client error
    /// (4xx) reads as `BadRequest` and anything else as `Internal` (the status stays the
    /// error's own).
    pub fn from_status(status: u16) -> ErrorKind {
        match ErrorKind::ALL.into_iter().find(|k| k.status() == status) {
            Some(k) => k,
            None if (400..500).contains(&status) => ErrorKind::BadRequest,
            None => ErrorKind::Internal,
        }
    }

    /// The `type` in the gateway's OpenAI-shaped bodies. (The client API answers an unknown
    /// path, model or key as OpenAI itself does, with `invalid_request_error`; see
    /// [`ApiError::not_found`].)
    pub fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::BadRequest | ErrorKind::MethodNotAllowed | ErrorKind::TooLarge => {
                "invalid_request_error"
            }
            ErrorKind::Unauthorized => "authentication_error",
            ErrorKind::Forbidden => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::Conflict
            | ErrorKind::PreconditionFailed
            | ErrorKind::PreconditionRequired => "conflict_error",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::Internal | ErrorKind::Unavailable => "api_error",
            ErrorKind::BadGateway => "upstream_error",
            ErrorKind::Timeout => "timeout_error",
            ErrorKind::Overloaded => "overloaded_error",
        }
    }

    /// The `error.type` of Anthropic's error bodies and stream `error` events.
    pub fn anthropic_type(self) -> &'static str {
        match self {
            ErrorKind::BadRequest
            | ErrorKind::MethodNotAllowed
            | ErrorKind::Conflict
            | ErrorKind::PreconditionFailed
            | ErrorKind::PreconditionRequired => "invalid_request_error",
            ErrorKind::Unauthorized => "authentication_error",
            ErrorKind::Forbidden => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::TooLarge => "request_too_large",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::Internal | ErrorKind::BadGateway | ErrorKind::Unavailable => "api_error",
            ErrorKind::Timeout => "timeout_error",
            ErrorKind::Overloaded => "overloaded_error",
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
    /// An error of `kind`: its status and its OpenAI type name.
    pub fn of(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::new(kind.status(), kind.openai_type(), code, message)
    }

    /// The kind this error reads as in other formats: its status's, except that a server
    /// error whose code is `overloaded` (every attempt found the providers overloaded) is
    /// `Overloaded`.
    pub fn error_kind(&self) -> ErrorKind {
        match ErrorKind::from_status(self.status) {
            ErrorKind::Internal | ErrorKind::BadGateway | ErrorKind::Unavailable
                if self.code == "overloaded" =>
            {
                ErrorKind::Overloaded
            }
            kind => kind,
        }
    }

    pub fn invalid(code: &str, param: &str, message: impl Into<String>) -> Self {
        let mut e = ApiError::of(ErrorKind::BadRequest, code, message);
        e.param = Some(param.to_string());
        e
    }
    /// 404 for the client API, typed `invalid_request_error` as OpenAI types its own.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(404, "invalid_request_error", "not_found", message)
    }
    pub fn method_not_allowed(allowed: Allowed) -> Self {
        let mut e = ApiError::of(
            ErrorKind::MethodNotAllowed,
            "method_not_allowed",
            format!("method not allowed; use {}", allowed.as_str()),
        );
        e.allow = Some(allowed);
        e
    }
    pub fn too_large(limit: usize) -> Self {
        ApiError::of(
            ErrorKind::TooLarge,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The mapping `api::anthropic` had before `ErrorKind`.
    fn anthropic_before(status: u16, code: &str) -> &'static str {
        match status {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            504 => "timeout_error",
            529 => "overloaded_error",
            400..=499 => "invalid_request_error",
            _ if code == "overloaded" => "overloaded_error",
            _ => "api_error",
        }
    }

    /// The mapping of the routing-table API before `ErrorKind`.
    fn table_before(status: u16) -> &'static str {
        match status {
            401 => "authentication_error",
            404 => "not_found_error",
            409 | 412 | 428 => "conflict_error",
            500..=599 => "api_error",
            _ => "invalid_request_error",
        }
    }

    #[test]
    fn every_kind_has_its_own_status() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_status(kind.status()), kind);
        }
        assert_eq!(ErrorKind::from_status(422), ErrorKind::BadRequest);
        assert_eq!(ErrorKind::from_status(418), ErrorKind::BadRequest);
        assert_eq!(ErrorKind::from_status(501), ErrorKind::Internal);
        assert_eq!(ErrorKind::from_status(200), ErrorKind::Internal);
    }

    #[test]
    fn anthropic_types_are_as_before_for_every_status() {
        for status in 100..=999 {
            for code in ["overloaded", "upstream_error", "not_found"] {
                let e = ApiError::new(status, "x", code, "m");
                assert_eq!(
                    e.error_kind().anthropic_type(),
                    anthropic_before(status, code),
                    "{status} {code}"
                );
            }
        }
    }

    #[test]
    fn admin_types_are_the_table_apis_for_the_statuses_they_answer() {
        use ErrorKind::*;
        let admin = [
            BadRequest,
            Unauthorized,
            NotFound,
            Conflict,
            PreconditionFailed,
            TooLarge,
            PreconditionRequired,
            Internal,
            Unavailable,
        ];
        for kind in admin {
            assert_eq!(kind.openai_type(), table_before(kind.status()), "{kind:?}");
        }
    }

    #[test]
    fn constructors_keep_their_wire_form() {
        let e = ApiError::of(ErrorKind::PreconditionFailed, "key_changed", "changed");
        assert_eq!((e.status, e.kind), (412, "conflict_error"));
        assert_eq!(
            e.to_value(),
            json!({"error": {"message": "changed", "type": "conflict_error", "code": "key_changed", "param": null}})
        );
        let e = ApiError::invalid("invalid_body", "messages", "m");
        assert_eq!((e.status, e.kind), (400, "invalid_request_error"));
        let e = ApiError::method_not_allowed(Allowed::Get);
        assert_eq!((e.status, e.kind), (405, "invalid_request_error"));
        let e = ApiError::too_large(10);
        assert_eq!((e.status, e.kind), (413, "invalid_request_error"));
        assert_eq!(e.error_kind().anthropic_type(), "request_too_large");
        let e = ApiError::not_found("m");
        assert_eq!((e.status, e.kind), (404, "invalid_request_error"));
        assert_eq!(e.error_kind().anthropic_type(), "not_found_error");
    }
}
