//! `/admin/api/routes` and `/admin/api/money`: the statistics the dashboard's routes panel and
//! key money view show, over a window of the last `hours` hours (`?hours=6|24|48`, 1..=48,
//! default 24).
//!
//! - `GET /admin/api/routes` — every route's requests, fallbacks, failures, response-cache
//!   hits, cost and prompt-cache savings, with each tried deployment's attempts, failover rate
//!   and latency; and the same attempt figures per provider. Read from every deployment's
//!   object (`/routes`), summed in the core (`state::route_view`).
//! - `GET /admin/api/money` — each gateway key's day and month spend against its budgets and
//!   its money figures over the window (from each key's object), `MAX_KEYS` keys a page (live
//!   keys first, newest first; `?offset=N` pages on, `next_offset` says where the next page
//!   starts).
//!
//! The objects are read in parallel; an object that does not answer counts as empty and is
//! named in `unavailable`.

use super::admin_keys::list_keys;
use super::config_source::{self, KV_BINDING};
use super::objects::{self, DEPLOYMENTS, KEYS};
use super::respond::json_response;
use super::transport::WorkerClock;
use crate::engine::Clock;
use crate::keys::KeyRecord;
use crate::state::key_money::budget_use;
use crate::state::quota::Spend;
use crate::state::route_stats::Figures;
use crate::state::route_view::{routes_view, DeploymentRoutes};
use futures_util::future::join_all;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use worker::{Context, Env, Response, Result};

/// Keys read by one `GET /admin/api/money`: one object call each, so that a page stays within
/// Workers Free's 50 subrequests per invocation together with the KV listing.
pub const MAX_KEYS: usize = 30;

/// The `offset` query parameter (0 when absent or not a number).
pub fn offset_param(req: &worker::Request) -> usize {
    crate::percent::query_param(&req.inner().url(), "offset")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0)
}

pub async fn routes(env: &Env, ctx: &Context, hours: u64) -> Result<Response> {
    let loaded = match config_source::current(env, ctx, WorkerClock.now_ms()).await {
        Ok(l) => l,
        Err(e) => {
            return super::admin_error::err(
                crate::api::error::ErrorKind::Unavailable,
                "config_unavailable",
                e,
            )
        }
    };
    let table = &loaded.table;
    let path = format!("/routes?hours={hours}");
    let replies = join_all(table.deployments.iter().map(|d| {
        let path = path.clone();
        async move {
            let reply: Result<BTreeMap<String, Figures>> =
                objects::call(env, DEPLOYMENTS, &d.name, &path, None::<&()>).await;
            (d, reply)
        }
    }))
    .await;
    let mut inputs = Vec::new();
    let mut unavailable = Vec::new();
    for (d, reply) in replies {
        let routes = reply.unwrap_or_else(|_| {
            unavailable.push(d.name.clone());
            BTreeMap::new()
        });
        inputs.push(DeploymentRoutes {
            deployment: d.name.clone(),
            provider: table
                .provider_of(d)
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            routes,
        });
    }
    let known: Vec<String> = table.routes.keys().cloned().collect();
    let mut body = routes_view(&inputs, &known, hours);
    if let Some(o) = body.as_object_mut() {
        o.insert("unavailable".into(), json!(unavailable));
    }
    json_response(200, &body)
}

pub async fn money(env: &Env, hours: u64, offset: usize) -> Result<Response> {
    let kv = env.kv(KV_BINDING)?;
    let mut keys = list_keys(&kv).await?;
    keys.sort_by_key(|k| {
        (
            k.get("revoked").and_then(Value::as_bool).unwrap_or(false),
            std::cmp::Reverse(k.get("created_ms").and_then(Value::as_u64).unwrap_or(0)),
        )
    });
    let total = keys.len();
    let keys: Vec<Value> = keys.into_iter().skip(offset).take(MAX_KEYS).collect();
    let next_offset = (offset.saturating_add(MAX_KEYS) < total).then(|| offset + MAX_KEYS);
    let path = format!("/usage?hours={hours}");
    let rows = join_all(keys.iter().map(|k| {
        let path = path.clone();
        async move {
            let id = k.get("id").and_then(Value::as_str).unwrap_or_default();
            let usage: Result<Value> = objects::call(env, KEYS, id, &path, None::<&()>).await;
            key_row(id, k, usage.ok())
        }
    }))
    .await;
    json_response(
        200,
        &json!({"hours": hours, "keys": rows, "total": total, "offset": offset, "next_offset": next_offset}),
    )
}

/// One key's money row: the object's copy of the record when it has one (KV's otherwise).
fn key_row(id: &str, listed: &Value, usage: Option<Value>) -> Value {
    let usage = usage.unwrap_or(Value::Null);
    let record = match usage.get("record") {
        Some(r) if r.is_object() => r,
        _ => listed,
    };
    // The listing adds `id`, which is no field of a stored record.
    let mut stored = record.clone();
    if let Some(o) = stored.as_object_mut() {
        o.remove("id");
    }
    let parsed = KeyRecord::parse(id, &stored.to_string()).ok();
    let spend: Option<Spend> = usage
        .get("spend")
        .and_then(|s| serde_json::from_value(s.clone()).ok());
    let limits = parsed.as_ref().map(|r| r.limits).unwrap_or_default();
    json!({
        "id": id,
        "name": record.get("name").cloned().unwrap_or(Value::Null),
        "revoked": usage.get("revoked").and_then(Value::as_bool)
            .or_else(|| record.get("revoked").and_then(Value::as_bool)).unwrap_or(false),
        "budget": budget_use(&limits, spend.as_ref()),
        "money": usage.get("money").cloned().unwrap_or(Value::Null),
        "available": !usage.is_null(),
    })
}
