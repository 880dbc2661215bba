//! `/admin/api/*`: the operator's view of shared state, behind the `ADMIN_TOKEN` Worker
//! secret (bearer, compared in constant time over SHA-256 digests). Without the secret the
//! admin API is off (401 for everyone).
//!
//! - `GET  /admin/api/deployments` — every deployment's breaker and usage
//! - `GET  /admin/api/deployments/{name}` — one of them
//! - `POST /admin/api/deployments/{name}/reset` | `/force-open` — breaker reset / kill switch
//! - `GET  /admin/api/keys` — every gateway key (records only; secrets are never stored)
//! - `POST /admin/api/keys` — create a key; the secret is in this reply only
//! - `GET  /admin/api/keys/{id}` — a key's record, spend and usage
//! - `PATCH /admin/api/keys/{id}` — change a key's name, routes, limits or budgets
//! - `POST /admin/api/keys/{id}/revoke` — revoke at once (object) and in KV
//!   (the key routes are in `admin_keys.rs`)
//! - `/admin/api/table*` — the routing table (`admin_table.rs`)
//! - `GET  /admin/api/routes?hours=H` | `GET /admin/api/money?hours=H` — per-route statistics
//!   and each key's money over the last H hours (`admin_stats.rs`)
//!
//! Full reference: docs/admin-api.md.

use super::admin_error::err;
use super::config_source;
use super::objects::{self, DEPLOYMENTS};
use super::respond::{error_response, json_response};
use super::transport::WorkerClock;
use crate::api::error::ErrorKind;
use crate::engine::Clock;
use crate::percent;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use worker::{Context, Env, Method, Request, Response, Result};

fn authorized(req: &Request, env: &Env) -> bool {
    let Some(expected) = super::vars::get(env, "ADMIN_TOKEN") else {
        return false;
    };
    if expected.is_empty() {
        return false;
    }
    let given = req
        .headers()
        .get("authorization")
        .ok()
        .flatten()
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_string))
        .unwrap_or_default();
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

pub async fn handle(mut req: Request, env: Env, ctx: Context) -> Result<Response> {
    if !authorized(&req, &env) {
        return err(
            ErrorKind::Unauthorized,
            "unauthorized",
            "admin API: missing or wrong bearer token (ADMIN_TOKEN)",
        );
    }
    let path = req.path();
    // Each segment is decoded once: names may hold `:`, `/` or `@`, which clients encode.
    let decoded: Option<Vec<String>> = path
        .trim_start_matches("/admin/api/")
        .split('/')
        .filter(|p| !p.is_empty())
        .map(percent::decode)
        .collect();
    let Some(decoded) = decoded else {
        return err(
            ErrorKind::BadRequest,
            "invalid_path",
            "admin API: a path segment is not valid percent-encoded UTF-8",
        );
    };
    let parts: Vec<&str> = decoded.iter().map(String::as_str).collect();
    // A failure of the objects or KV behind a route is the admin's to see, as a JSON error.
    match route(&mut req, &env, &ctx, &path, &parts).await {
        Ok(res) => Ok(res),
        Err(e) => err(
            ErrorKind::Unavailable,
            "admin_state_unavailable",
            format!("admin API: {e}"),
        ),
    }
}

async fn route(
    req: &mut Request,
    env: &Env,
    ctx: &Context,
    path: &str,
    parts: &[&str],
) -> Result<Response> {
    let method = req.method();
    match (method, parts) {
        (Method::Get, ["deployments"]) => {
            let loaded = match config_source::current(env, ctx, WorkerClock.now_ms()).await {
                Ok(l) => l,
                Err(e) => return err(ErrorKind::Unavailable, "config_unavailable", e),
            };
            let mut out = Vec::new();
            for d in &loaded.table.deployments {
                let state: Value = objects::call(env, DEPLOYMENTS, &d.name, "/state", None::<&()>)
                    .await
                    .unwrap_or(Value::Null);
                out.push(json!({"name": d.name, "model": d.model, "provider": loaded.table.providers.get(d.provider).map(|p| p.name.clone()),
                                "breaker_enabled": d.breaker.enabled, "state": state}));
            }
            json_response(200, &json!({"deployments": out}))
        }
        (Method::Get, ["deployments", name]) => {
            let state: Value = objects::call(env, DEPLOYMENTS, name, "/state", None::<&()>).await?;
            json_response(200, &json!({"name": name, "state": state}))
        }
        (Method::Post, ["deployments", name, action @ ("reset" | "force-open")]) => {
            let path = if *action == "reset" {
                "/reset"
            } else {
                "/force_open"
            };
            let view: Value = objects::call(env, DEPLOYMENTS, name, path, Some(&json!({}))).await?;
            json_response(200, &json!({"name": name, "view": view}))
        }
        (Method::Get, ["routes"]) => {
            super::admin_stats::routes(env, ctx, objects::hours_param(req)).await
        }
        (Method::Get, ["money"]) => {
            let offset = super::admin_stats::offset_param(req);
            super::admin_stats::money(env, objects::hours_param(req), offset).await
        }
        (_, ["table", rest @ ..]) => super::admin_table::handle(req, env, ctx, rest).await,
        (_, ["keys", rest @ ..]) => super::admin_keys::handle(req, env, rest, path).await,
        (Method::Post, ["explain"]) => explain(req, env, ctx).await,
        _ => err(
            ErrorKind::NotFound,
            "not_found",
            format!("unknown admin route {path}"),
        ),
    }
}

/// `POST /admin/api/explain` with `{"body": <chat request>, "headers": {...}, "path": ...}`:
/// how that request would be routed (task, route, rule, every candidate kept or removed and
/// why, the final order), without calling any provider.
async fn explain(req: &mut Request, env: &Env, ctx: &Context) -> Result<Response> {
    let text = req.text().await.unwrap_or_default();
    let Ok(Value::Object(input)) = serde_json::from_str::<Value>(&text) else {
        return err(
            ErrorKind::BadRequest,
            "invalid_body",
            "expected {\"body\": {...chat request...}, \"headers\": {...}}",
        );
    };
    let body = input.get("body").cloned().unwrap_or(Value::Null);
    let path = input
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or("/v1/chat/completions")
        .to_string();
    let headers: Vec<(String, String)> = input
        .get("headers")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.to_ascii_lowercase(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let bytes = body.to_string().into_bytes();
    let parsed = match path.as_str() {
        "/v1/messages" => crate::api::anthropic::parse_messages_request(&bytes),
        "/v1/responses" => crate::api::responses::parse_responses_request(&bytes),
        _ => crate::api::parse_chat_request(&bytes),
    };
    let chat = match parsed {
        Ok(c) => c,
        Err(e) => return error_response(&e, None),
    };
    let loaded = match config_source::current(env, ctx, WorkerClock.now_ms()).await {
        Ok(l) => l,
        Err(e) => return err(ErrorKind::Unavailable, "config_unavailable", e),
    };
    let table = &loaded.table;
    let random = (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64;
    match super::routing::explain_request(
        table,
        &chat,
        &path,
        &headers,
        random,
        WorkerClock.now_ms(),
    ) {
        Ok(v) => json_response(200, &v),
        Err(e) => error_response(&e, None),
    }
}
