//! Building worker responses: JSON bodies, OpenAI-style errors, and the `x-router-*` headers.

use crate::api::{ApiError, ClientFormat};
use crate::egress::error_for_client;
use crate::engine::Meta;
use crate::report::response_headers;
use serde_json::Value;
use worker::{Headers, Response, Result};

pub fn json_response(status: u16, body: &Value) -> Result<Response> {
    bytes_response(
        status,
        "application/json",
        body.to_string().into_bytes(),
        &[],
    )
}

pub fn bytes_response(
    status: u16,
    content_type: &str,
    body: Vec<u8>,
    extra: &[(&str, String)],
) -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", content_type)?;
    for (k, v) in extra {
        headers.set(k, v)?;
    }
    Ok(Response::from_bytes(body)?
        .with_status(status)
        .with_headers(headers))
}

pub fn error_response(e: &ApiError, meta: Option<(&Meta, u64)>) -> Result<Response> {
    client_error_response(ClientFormat::OpenAi, e, meta)
}

/// An error in the shape the client's SDK expects (OpenAI or Anthropic).
pub fn client_error_response(
    client: ClientFormat,
    e: &ApiError,
    meta: Option<(&Meta, u64)>,
) -> Result<Response> {
    let mut extra: Vec<(&str, String)> = meta
        .map(|(m, now)| response_headers(m, now))
        .unwrap_or_default();
    if let Some(s) = e.retry_after_s {
        extra.push(("retry-after", s.to_string()));
    }
    if e.status == 405 {
        let allow = if e.message.contains("POST") {
            "POST"
        } else {
            "GET"
        };
        extra.push(("allow", allow.to_string()));
    }
    bytes_response(
        e.status,
        "application/json",
        error_for_client(client, e),
        &extra,
    )
}

pub fn config_unavailable(msg: String) -> ApiError {
    ApiError::new(503, "api_error", "config_unavailable", msg)
}

pub fn headers_from(pairs: &[(&str, String)]) -> Result<Headers> {
    let h = Headers::new();
    for (k, v) in pairs {
        h.set(k, v)?;
    }
    Ok(h)
}
