//! CORS at the worker's door (the decisions are `api::cors`): the preflight answer, and the
//! headers an allowed origin's answer carries. The allowed origins come from the current
//! routing table (`cors.allow_origins`).

use super::config_source;
use super::transport::WorkerClock;
use crate::api::cors::{preflight_headers, response_headers};
use crate::engine::Clock;
use worker::{Context, Env, Result};

/// The origins the current table allows (none when no table can be read).
pub async fn origins(env: &Env, ctx: &Context) -> Vec<String> {
    match config_source::current(env, ctx, WorkerClock.now_ms()).await {
        Ok(l) => l.table.cors_origins.clone(),
        Err(_) => Vec::new(),
    }
}

/// `OPTIONS`: 204, with CORS headers when the origin is allowed (no key needed: browsers
/// send none with a preflight).
pub async fn preflight(
    env: &Env,
    ctx: &Context,
    origin: Option<&str>,
    requested_headers: Option<&str>,
) -> Result<web_sys::Response> {
    let origins = origins(env, ctx).await;
    let mut headers = preflight_headers(&origins, origin, requested_headers);
    headers.push(("allow", "GET, POST, OPTIONS".into()));
    let init = web_sys::ResponseInit::new();
    init.set_status(204);
    let h = web_sys::Headers::new().map_err(js)?;
    for (k, v) in &headers {
        h.set(k, v).map_err(js)?;
    }
    init.set_headers(&h);
    web_sys::Response::new_with_opt_str_and_init(None, &init).map_err(js)
}

/// Adds the CORS headers for `origin` to an answer, when `origins` allows it.
pub fn add_headers(answer: &web_sys::Response, origins: &[String], origin: Option<&str>) {
    let headers = answer.headers();
    for (k, v) in response_headers(origins, origin) {
        // An answer's headers are its own (never an upstream's immutable ones).
        let _ = headers.set(k, &v);
    }
}

fn js(e: wasm_bindgen::JsValue) -> worker::Error {
    worker::Error::JsError(format!("{e:?}"))
}
