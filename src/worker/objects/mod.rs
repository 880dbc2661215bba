//! Durable Object classes (the shared truth) and the small JSON-over-fetch client the worker
//! uses to talk to them. One object per deployment (breaker, usage) and one per gateway key
//! (limits, budget, usage): never one global object.

pub mod deployment;
pub mod key;
pub(crate) mod stored;
pub mod table_log;

use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::{Env, Method, Request, RequestInit, Response, Result};

/// Binding of the per-deployment objects.
pub const DEPLOYMENTS: &str = "DEPLOYMENTS";
/// Binding of the per-key objects.
pub const KEYS: &str = "KEYS";
/// Binding of the routing table's version log (a single object).
pub const TABLE_LOG: &str = "TABLE_LOG";

/// Calls `path` on the object named `name` with a JSON body (POST) or none (GET) and reads
/// its JSON reply.
pub async fn call<B: Serialize, R: DeserializeOwned>(
    env: &Env,
    binding: &str,
    name: &str,
    path: &str,
    body: Option<&B>,
) -> Result<R> {
    let stub = env.durable_object(binding)?.get_by_name(name)?;
    let mut init = RequestInit::new();
    match body {
        Some(b) => {
            let text = serde_json::to_string(b)?;
            init.with_method(Method::Post)
                .with_body(Some(wasm_bindgen::JsValue::from_str(&text)));
        }
        None => {
            init.with_method(Method::Get);
        }
    }
    let req = Request::new_with_init(&format!("https://object{path}"), &init)?;
    let mut res = stub.fetch_with_request(req).await?;
    if res.status_code() != 200 {
        let text = res.text().await.unwrap_or_default();
        return Err(worker::Error::RustError(format!(
            "{binding}/{name}{path}: HTTP {}: {text}",
            res.status_code()
        )));
    }
    res.json().await
}

/// Reads an object request's JSON body.
pub(crate) async fn body<T: DeserializeOwned>(req: &mut Request) -> std::result::Result<T, String> {
    let text = req.text().await.unwrap_or_default();
    serde_json::from_str(&text).map_err(|e| format!("bad request body: {e}"))
}

pub(crate) fn json<T: Serialize>(value: &T) -> Result<Response> {
    Response::from_json(value)
}

pub(crate) fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// The `hours` query parameter (1..=48; 24 when absent or not a number).
pub(crate) fn hours_param(req: &Request) -> u64 {
    crate::percent::query_param(&req.inner().url(), "hours")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(24)
        .clamp(1, crate::state::hourly::KEEP_HOURS)
}
