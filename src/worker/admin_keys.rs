//! `/admin/api/keys*`: gateway keys. Only a key's SHA-256 is stored; its record lives in KV
//! (`gateway-key:<id>`, for listing and lookup) and, as the copy every change goes through,
//! in the key's object (`objects::key`).
//!
//! Every change is applied by the key's object first, one at a time, and then mirrored into
//! KV: a PATCH made from a stale copy cannot lift a revocation, and with `If-Match: <rev>` it
//! is refused (412) if the record changed since it was read. Revocation takes effect on the
//! next request in every isolate, since every request with a key asks its object.

use super::admin_error::err;
use super::config_source::KV_BINDING;
use super::kv_text;
use super::objects::key::{EditCall, EditReply, RevokeCall, RevokeReply};
use super::objects::{self, KEYS};
use super::respond::json_response;
use super::transport::WorkerClock;
use crate::api::error::ErrorKind;
use crate::engine::Clock;
use crate::keys::{hash_key, KeyRecord, KV_PREFIX};
use serde_json::{json, Map, Value};
use worker::{kv::KvStore, Env, Method, Request, Response, Result};

pub async fn handle(req: &mut Request, env: &Env, rest: &[&str], path: &str) -> Result<Response> {
    match (req.method(), rest) {
        (Method::Get, []) => {
            let kv = env.kv(KV_BINDING)?;
            let keys = list_keys(&kv).await?;
            json_response(200, &json!({ "keys": keys }))
        }
        (Method::Post, []) => create_key(req, env).await,
        (Method::Get, [id]) => {
            let kv = env.kv(KV_BINDING)?;
            let Some(text) = kv_text::get(&kv, &record_key(id)).await? else {
                return not_found(id);
            };
            let mut usage: Value = objects::call(env, KEYS, id, "/usage", None::<&()>).await?;
            // The object's copy is the current one; KV's may lag (or predate the object's).
            let record = match usage.get_mut("record").map(Value::take) {
                Some(r) if !r.is_null() => r,
                _ => serde_json::from_str(&text).unwrap_or(Value::Null),
            };
            let rev = usage.get("rev").cloned().unwrap_or(json!(0));
            json_response(
                200,
                &json!({"id": id, "record": record, "rev": rev, "state": usage}),
            )
        }
        (Method::Patch, [id]) => update_key(req, env, id).await,
        (Method::Post, [id, "revoke"]) => revoke_key(env, id).await,
        _ => err(
            ErrorKind::NotFound,
            "not_found",
            format!("unknown admin route {path}"),
        ),
    }
}

fn record_key(id: &str) -> String {
    format!("{KV_PREFIX}{id}")
}

fn not_found(id: &str) -> Result<Response> {
    err(
        ErrorKind::NotFound,
        "key_not_found",
        format!("no gateway key with id {id}"),
    )
}

fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Creates a gateway key from `{name, routes?, rpm?, tpm?, budget_day_usd?, budget_month_usd?}`:
/// its object first (the record's first revision), then the KV mirror.
async fn create_key(req: &mut Request, env: &Env) -> Result<Response> {
    let text = req.text().await.unwrap_or_default();
    let mut fields: Map<String, Value> = match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => m,
        _ => {
            return err(
                ErrorKind::BadRequest,
                "invalid_body",
                "expected a JSON object with at least \"name\"",
            )
        }
    };
    fields.remove("revoked");
    fields.remove("rev");
    fields.insert("created_ms".into(), json!(WorkerClock.now_ms()));
    let record_text = Value::Object(fields).to_string();
    let secret = match random_hex(24) {
        Some(h) => format!("sk-gw-{h}"),
        None => {
            return err(
                ErrorKind::Internal,
                "no_randomness",
                "crypto.getRandomValues is unavailable",
            )
        }
    };
    let id = hash_key(&secret);
    // Validate exactly as requests will read it.
    if let Err(e) = KeyRecord::parse(&id, &record_text) {
        return err(ErrorKind::BadRequest, "invalid_key_record", e);
    }
    let call = EditCall {
        seed: record_text,
        patch: Map::new(),
        if_rev: Some(0),
    };
    let stored = match objects::call(env, KEYS, &id, "/edit", Some(&call)).await? {
        EditReply::Saved { record, .. } => record,
        EditReply::Invalid { error } => {
            return err(ErrorKind::BadRequest, "invalid_key_record", error)
        }
        EditReply::Conflict { .. } => {
            return err(
                ErrorKind::Internal,
                "key_exists",
                "a key with this id already exists",
            )
        }
    };
    let kv = env.kv(KV_BINDING)?;
    kv_text::put(&kv, &record_key(&id), &stored).await?;
    json_response(
        201,
        &json!({"id": id, "key": secret, "record": parsed(&stored)}),
    )
}

/// `If-Match: <rev>` (quotes and a weak `W/` prefix allowed, as for an ETag).
fn if_match(req: &Request) -> std::result::Result<Option<u64>, ()> {
    let Some(v) = req.headers().get("if-match").ok().flatten() else {
        return Ok(None);
    };
    let v = v.trim();
    let v = v.strip_prefix("W/").unwrap_or(v).trim_matches('"');
    v.parse().map(Some).map_err(|_| ())
}

/// `PATCH /admin/api/keys/{id}`: merges the given fields into the key's record (by its
/// object; see the module doc), then mirrors it into KV. Isolates pick up a change of
/// `name` or `routes` within `CONFIG_CACHE_TTL_MS`; limits and revocation apply at once.
async fn update_key(req: &mut Request, env: &Env, id: &str) -> Result<Response> {
    let Ok(if_rev) = if_match(req) else {
        return err(
            ErrorKind::BadRequest,
            "invalid_if_match",
            "If-Match must be the record's `rev` (a number)",
        );
    };
    let text = req.text().await.unwrap_or_default();
    let Ok(Value::Object(patch)) = serde_json::from_str::<Value>(&text) else {
        return err(
            ErrorKind::BadRequest,
            "invalid_body",
            "expected a JSON object of fields to change",
        );
    };
    if let Some(bad) = patch
        .keys()
        .find(|k| !crate::keys::EDITABLE_FIELDS.contains(&k.as_str()))
    {
        return err(
            ErrorKind::BadRequest,
            "invalid_field",
            format!(
                "{bad:?} cannot be changed (allowed: {})",
                crate::keys::EDITABLE_FIELDS.join(", ")
            ),
        );
    }
    let kv = env.kv(KV_BINDING)?;
    let Some(seed) = kv_text::get(&kv, &record_key(id)).await? else {
        return not_found(id);
    };
    let call = EditCall {
        seed,
        patch,
        if_rev,
    };
    match objects::call(env, KEYS, id, "/edit", Some(&call)).await? {
        EditReply::Saved { record, rev } => {
            kv_text::put(&kv, &record_key(id), &record).await?;
            json_response(200, &json!({"id": id, "record": parsed(&record), "rev": rev}))
        }
        EditReply::Conflict { rev } => err(
            ErrorKind::PreconditionFailed,
            "key_changed",
            format!(
                "the key's record changed since it was read (If-Match {}, now rev {rev}); reload it and apply the change again",
                if_rev.unwrap_or_default()
            ),
        ),
        EditReply::Invalid { error } => err(ErrorKind::BadRequest, "invalid_key_record", error),
    }
}

/// `POST /admin/api/keys/{id}/revoke`: the key's object refuses the key from now on; then
/// the KV mirror is marked.
async fn revoke_key(env: &Env, id: &str) -> Result<Response> {
    let kv = env.kv(KV_BINDING)?;
    let Some(seed) = kv_text::get(&kv, &record_key(id)).await? else {
        return not_found(id);
    };
    let call = RevokeCall {
        seed: Some(seed.clone()),
    };
    let reply: RevokeReply = objects::call(env, KEYS, id, "/revoke", Some(&call)).await?;
    let mirror = match reply.record {
        Some(r) => r,
        // No valid record known (the KV copy does not parse): mark what KV holds.
        None => {
            let mut record: Value = serde_json::from_str(&seed).unwrap_or_else(|_| json!({}));
            if let Some(o) = record.as_object_mut() {
                o.insert("revoked".into(), json!(true));
            }
            record.to_string()
        }
    };
    kv_text::put(&kv, &record_key(id), &mirror).await?;
    json_response(200, &json!({"id": id, "revoked": true}))
}

/// Keys per KV bulk read (KV's maximum).
const BULK_READ_KEYS: usize = 100;

/// Every gateway-key record in KV, each with its `id`, in KV's key order. KV lists at most
/// 1,000 keys per call, so the listing follows the cursor until KV says it is complete; the
/// records are read 100 per bulk read (one KV operation each, where a read per key would pass
/// the 1,000 KV operations an invocation may make once there are about 1,000 keys). A key
/// deleted between the listing and the read, or a record that is not JSON, is left out.
pub(crate) async fn list_keys(kv: &KvStore) -> Result<Vec<Value>> {
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
