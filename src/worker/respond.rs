//! Building worker responses: JSON bodies, OpenAI-style errors, and the `x-router-*` headers.

use crate::api::{ApiError, ClientFormat};
use crate::egress::error_for_client;
use crate::engine::Meta;
use crate::report::response_headers;
use serde_json::Value;
use wasm_bindgen::prelude::*;
use worker::{Headers, Response, Result};

#[wasm_bindgen(module = "/src/worker/http.js")]
extern "C" {
    #[wasm_bindgen(js_name = headerText)]
    fn header_text(headers: &web_sys::Headers) -> String;
    #[wasm_bindgen(js_name = readBody)]
    fn read_body_js(request: &web_sys::Request, limit: f64) -> js_sys::Promise;
    #[wasm_bindgen(js_name = respondBytes, catch)]
    fn respond_bytes(
        status: u16,
        body: &[u8],
        headers: &str,
    ) -> std::result::Result<web_sys::Response, JsValue>;
    #[wasm_bindgen(js_name = respondStream, catch)]
    fn respond_stream(
        status: u16,
        body: &web_sys::ReadableStream,
        headers: &str,
    ) -> std::result::Result<web_sys::Response, JsValue>;
}

fn js_err(e: JsValue) -> worker::Error {
    worker::Error::JsError(format!("{e:?}"))
}

/// Every request header, names lower-case, in one call (see `http.js`).
pub fn request_headers(headers: &web_sys::Headers) -> Vec<(String, String)> {
    let text = header_text(headers);
    let mut parts = text.split('\n');
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
        out.push((k.to_string(), v.to_string()));
    }
    out
}

/// The request's body, at most `limit` bytes (None when longer); one promise for the whole
/// read (`http.js`).
pub async fn read_body(
    request: &web_sys::Request,
    limit: usize,
) -> std::result::Result<Option<Vec<u8>>, String> {
    let value = super::settle::settle(&read_body_js(request, limit as f64))
        .await
        .map_err(|e| {
            e.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
                .unwrap_or_else(|| format!("{e:?}"))
        })?;
    if value.is_null() {
        return Ok(None);
    }
    Ok(Some(js_sys::Uint8Array::new(&value).to_vec()))
}

/// Header pairs as "name\nvalue\n…", the text `http.js` and `upstream.js` read back into
/// `Headers`. A name or value with a line feed would split wrongly (and no valid header has
/// one): refused, naming the header.
pub fn header_lines<K: AsRef<str>, V: AsRef<str>>(
    pairs: &[(K, V)],
) -> std::result::Result<String, String> {
    let mut s = String::with_capacity(pairs.len() * 48);
    for (k, v) in pairs {
        let (k, v) = (k.as_ref(), v.as_ref());
        if k.contains('\n') || v.contains('\n') {
            return Err(format!("bad header {k}: contains a line feed"));
        }
        s.push_str(k);
        s.push('\n');
        s.push_str(v);
        s.push('\n');
    }
    Ok(s)
}

/// A byte response built in one call (the hot path's answers).
pub fn raw_bytes_response(
    status: u16,
    content_type: &str,
    body: &[u8],
    extra: &[(&str, String)],
) -> Result<web_sys::Response> {
    let mut headers =
        header_lines(&[("content-type", content_type)]).map_err(worker::Error::RustError)?;
    headers.push_str(&header_lines(extra).map_err(worker::Error::RustError)?);
    respond_bytes(status, body, &headers).map_err(js_err)
}

/// A streamed response built in one call.
pub fn raw_stream_response(
    status: u16,
    body: &web_sys::ReadableStream,
    headers: &[(&str, String)],
) -> Result<web_sys::Response> {
    let headers = header_lines(headers).map_err(worker::Error::RustError)?;
    respond_stream(status, body, &headers).map_err(js_err)
}

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

/// An error in the shape the client's SDK expects (OpenAI, which the Responses API shares, or
/// Anthropic).
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
    if let Some(allow) = e.allow {
        extra.push(("allow", allow.as_str().to_string()));
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
