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
//! - `/admin/api/table*` — the routing table (`admin_table.rs`)
//!
//! Full reference: docs/admin-api.md.

use super::config_source::{self, KV_BINDING};
use super::kv_text;
use super::objects::{self, DEPLOYMENTS, KEYS};
use super::respond::{error_response, json_response};
use super::transport::WorkerClock;
use crate::api::ApiError;
use crate::engine::Clock;
use crate::keys::{hash_key, KeyRecord, KV_PREFIX};
use crate::percent;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use worker::{kv::KvStore, Context, Env, Method, Request, Response, Result};

fn authorized(req: &Request, env: &Env) -> bool {
    let Ok(expected) = env.secret("ADMIN_TOKEN").map(|s| s.to_string()) else {
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

fn err(status: u16, code: &str, message: impl Into<String>) -> Result<Response> {
    let kind = match status {
        401 => "authentication_error",
        404 => "not_found_error",
        _ => "invalid_request_error",
    };
    error_response(&ApiError::new(status, kind, code, message), None)
}

pub async fn handle(mut req: Request, env: Env, ctx: Context) -> Result<Response> {
    if !authorized(&req, &env) {
        return err(
            401,
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
            400,
            "invalid_path",
            "admin API: a path segment is not valid percent-encoded UTF-8",
        );
    };
    let parts: Vec<&str> = decoded.iter().map(String::as_str).collect();
    // A failure of the objects or KV behind a route is the admin's to see, as a JSON error.
    match route(&mut req, &env, &ctx, &path, &parts).await {
        Ok(res) => Ok(res),
        Err(e) => err(503, "admin_state_unavailable", format!("admin API: {e}")),
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
                Err(e) => return err(503, "config_unavailable", e),
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
        (Method::Get, ["keys"]) => {
            let kv = env.kv(KV_BINDING)?;
            let keys = list_keys(&kv).await?;
            json_response(200, &json!({ "keys": keys }))
        }
        (_, ["table", rest @ ..]) => super::admin_table::handle(req, env, ctx, rest).await,
        (Method::Post, ["keys"]) => create_key(req, env).await,
        (Method::Patch, ["keys", id]) => update_key(req, env, id).await,
        (Method::Post, ["explain"]) => explain(req, env, ctx).await,
        (Method::Get, ["keys", id]) => {
            let kv = env.kv(KV_BINDING)?;
            let Some(text) = kv_text::get(&kv, &format!("{KV_PREFIX}{id}")).await? else {
                return err(404, "key_not_found", format!("no gateway key with id {id}"));
            };
            let record: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let usage: Value = objects::call(env, KEYS, id, "/usage", None::<&()>).await?;
            json_response(200, &json!({"id": id, "record": record, "state": usage}))
        }
        (Method::Post, ["keys", id, "revoke"]) => {
            let kv = env.kv(KV_BINDING)?;
            let name = format!("{KV_PREFIX}{id}");
            let Some(text) = kv_text::get(&kv, &name).await? else {
                return err(404, "key_not_found", format!("no gateway key with id {id}"));
            };
            let _: Value = objects::call(env, KEYS, id, "/revoke", Some(&json!({}))).await?;
            let mut record: Value = serde_json::from_str(&text).unwrap_or_else(|_| json!({}));
            if let Some(o) = record.as_object_mut() {
                o.insert("revoked".into(), json!(true));
            }
            kv_text::put(&kv, &name, &record.to_string()).await?;
            json_response(200, &json!({"id": id, "revoked": true}))
        }
        _ => err(404, "not_found", format!("unknown admin route {path}")),
    }
}

/// Keys per KV bulk read (KV's maximum).
const BULK_READ_KEYS: usize = 100;

/// Every gateway-key record in KV, each with its `id`, in KV's key order. KV lists at most
/// 1,000 keys per call, so the listing follows the cursor until KV says it is complete; the
/// records are read 100 per bulk read (one KV operation each, where a read per key would pass
/// the 1,000 KV operations an invocation may make once there are about 1,000 keys). A key
/// deleted between the listing and the read, or a record that is not JSON, is left out.
async fn list_keys(kv: &KvStore) -> Result<Vec<Value>> {
    let kv_err = |e: worker::kv::KvError| worker::Error::RustError(format!("KV: {e}"));
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut list = kv.list().prefix(KV_PREFIX.to_string());
        if let Some(c) = cursor.take() {
            list = list.cursor(c);
        }
        let page = list.execute().await.map_err(kv_err)?;
        names.extend(page.keys.into_iter().map(|k| k.name));
        if page.list_complete {
            break;
        }
        match page.cursor.filter(|c| !c.is_empty()) {
            Some(c) => cursor = Some(c),
            None => {
                return Err(worker::Error::RustError(
                    "KV: the key listing is incomplete but gave no cursor".into(),
                ))
            }
        }
    }
    let mut keys = Vec::with_capacity(names.len());
    for chunk in names.chunks(BULK_READ_KEYS) {
        let texts = kv.get_bulk(chunk).text().await.map_err(kv_err)?;
        for name in chunk {
            let Some(Some(text)) = texts.get(name) else {
                continue;
            };
            if let Ok(mut v) = serde_json::from_str::<Value>(text) {
                if let Some(o) = v.as_object_mut() {
                    o.insert(
                        "id".into(),
                        json!(name.strip_prefix(KV_PREFIX).unwrap_or(name)),
                    );
                }
                keys.push(v);
            }
        }
    }
    Ok(keys)
}

/// `POST /admin/api/explain` with `{"body": <chat request>, "headers": {...}, "path": ...}`:
/// how that request would be routed (task, route, rule, every candidate kept or removed and
/// why, the final order), without calling any provider.
async fn explain(req: &mut Request, env: &Env, ctx: &Context) -> Result<Response> {
    let text = req.text().await.unwrap_or_default();
    let Ok(Value::Object(input)) = serde_json::from_str::<Value>(&text) else {
        return err(
            400,
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
    let parsed = if path == "/v1/messages" {
        crate::api::anthropic::parse_messages_request(body.to_string().as_bytes())
    } else {
        crate::api::parse_chat_request(body.to_string().as_bytes())
    };
    let chat = match parsed {
        Ok(c) => c,
        Err(e) => return error_response(&e, None),
    };
    let loaded = match config_source::current(env, ctx, WorkerClock.now_ms()).await {
        Ok(l) => l,
        Err(e) => return err(503, "config_unavailable", e),
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

/// Creates a gateway key from `{name, routes?, rpm?, tpm?, budget_day_usd?, budget_month_usd?}`.
async fn create_key(req: &mut Request, env: &Env) -> Result<Response> {
    let text = req.text().await.unwrap_or_default();
    let mut fields: Map<String, Value> = match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => m,
        _ => {
            return err(
                400,
                "invalid_body",
                "expected a JSON object with at least \"name\"",
            )
        }
    };
    fields.remove("revoked");
    fields.insert("created_ms".into(), json!(WorkerClock.now_ms()));
    let record_text = Value::Object(fields).to_string();
    let secret = match random_hex(24) {
        Some(h) => format!("sk-gw-{h}"),
        None => {
            return err(
                500,
                "no_randomness",
                "crypto.getRandomValues is unavailable",
            )
        }
    };
    let id = hash_key(&secret);
    // Validate exactly as requests will read it.
    if let Err(e) = KeyRecord::parse(&id, &record_text) {
        return err(400, "invalid_key_record", e);
    }
    let kv = env.kv(KV_BINDING)?;
    kv_text::put(&kv, &format!("{KV_PREFIX}{id}"), &record_text).await?;
    let record: Value = serde_json::from_str(&record_text).unwrap_or(Value::Null);
    json_response(201, &json!({"id": id, "key": secret, "record": record}))
}

/// Fields an operator may change on an existing key (`null` removes a limit).
const KEY_FIELDS: [&str; 6] = [
    "name",
    "routes",
    "rpm",
    "tpm",
    "budget_day_usd",
    "budget_month_usd",
];

/// `PATCH /admin/api/keys/{id}`: merges the given fields into the key's record, validated as
/// requests will read it. Isolates pick the change up within `CONFIG_CACHE_TTL_MS`.
async fn update_key(req: &mut Request, env: &Env, id: &str) -> Result<Response> {
    let text = req.text().await.unwrap_or_default();
    let Ok(Value::Object(patch)) = serde_json::from_str::<Value>(&text) else {
        return err(
            400,
            "invalid_body",
            "expected a JSON object of fields to change",
        );
    };
    if let Some(bad) = patch.keys().find(|k| !KEY_FIELDS.contains(&k.as_str())) {
        return err(
            400,
            "invalid_field",
            format!(
                "{bad:?} cannot be changed (allowed: {})",
                KEY_FIELDS.join(", ")
            ),
        );
    }
    let kv = env.kv(KV_BINDING)?;
    let name = format!("{KV_PREFIX}{id}");
    let Some(old) = kv_text::get(&kv, &name).await? else {
        return err(404, "key_not_found", format!("no gateway key with id {id}"));
    };
    let mut record: Map<String, Value> = serde_json::from_str(&old).unwrap_or_default();
    for (k, v) in patch {
        if v.is_null() {
            record.remove(&k);
        } else {
            record.insert(k, v);
        }
    }
    let record_text = Value::Object(record.clone()).to_string();
    if let Err(e) = KeyRecord::parse(id, &record_text) {
        return err(400, "invalid_key_record", e);
    }
    kv_text::put(&kv, &name, &record_text).await?;
    json_response(200, &json!({"id": id, "record": record}))
}

/// `n` random bytes from the platform's CSPRNG, as hex.
fn random_hex(n: u32) -> Option<String> {
    let crypto = js_sys::Reflect::get(&js_sys::global(), &"crypto".into()).ok()?;
    let buf = js_sys::Uint8Array::new_with_length(n);
    let f: js_sys::Function = js_sys::Reflect::get(&crypto, &"getRandomValues".into())
        .ok()?
        .into();
    f.call1(&crypto, &buf).ok()?;
    Some(buf.to_vec().iter().map(|b| format!("{b:02x}")).collect())
}
