//! `/admin/api/table*`: read, validate, replace (If-Match), list versions, diff and roll back
//! the routing table (see docs/admin-api.md).
//!
//! Order of a write: validate; ask the `TableLog` object to commit (the compare-and-set);
//! then store the version's text and the live table in KV. A failure between the two (KV takes
//! one write per second per key; a crash) never leaves a live table that was not validated or
//! a lost concurrent write, but it leaves the log ahead of KV. That is reconciled by rolling KV
//! forward to the log's newest version (why forward, not the log back: `state::table_log`):
//! `GET` shows that version's text (from `routing-table:v:<n>`) with its ETag, which the next
//! write accepts and which rewrites KV, and once the version is `TABLE_REPAIR_AFTER_MS` old
//! (default 60 s, KV's propagation bound) a `GET` rewrites `routing-table` from it. A write
//! whose KV writes failed answers 503 `table_not_applied`.

use super::admin_error::error;
use super::background::Background;
use super::config_source::{self, KV_BINDING, TABLE_KEY};
use super::kv_text;
use super::objects::{self, table_log::NAME as LOG_NAME, TABLE_LOG};
use super::respond::json_response;
use super::table_current::{current, live, log, repair_after_ms, version_key};
use super::transport::WorkerClock;
use crate::api::error::ErrorKind;
use crate::config::diff::diff;
use crate::config::{parse, Problem, RoutingTable};
use crate::engine::Clock;
use crate::state::table_log::{
    decode_message, etag, Commit, CommitResult, Entry, Origin, TableLog,
};
use serde_json::{json, Value};
use worker::{kv::KvStore, Env, Method, Request, Response, Result};

fn summary(t: &RoutingTable) -> Value {
    json!({"routes": t.routes.len(), "deployments": t.deployments.len(),
           "providers": t.providers.len()})
}

fn validation(text: &str) -> Value {
    match parse(text) {
        Ok(t) => json!({"valid": true, "errors": [], "summary": summary(&t)}),
        Err(problems) => json!({"valid": false, "errors": problems, "summary": null}),
    }
}

fn invalid_table(problems: &[Problem]) -> Result<Response> {
    let n = problems.len();
    let message = format!(
        "routing table has {n} problem{}",
        if n == 1 { "" } else { "s" }
    );
    error(
        ErrorKind::BadRequest,
        "invalid_routing_table",
        &message,
        json!({ "errors": problems }),
    )
}

fn entry_json(e: &Entry) -> Value {
    serde_json::to_value(e).unwrap_or(Value::Null)
}

fn with_etag(res: Result<Response>, tag: &str) -> Result<Response> {
    let mut res = res?;
    res.headers_mut().set("etag", tag)?;
    Ok(res)
}

pub async fn handle(
    req: &mut Request,
    env: &Env,
    ctx: &dyn Background,
    parts: &[&str],
) -> Result<Response> {
    let kv = env.kv(KV_BINDING)?;
    match (req.method(), parts) {
        (Method::Get, []) => get_table(env, ctx, &kv).await,
        (Method::Put, []) => put_table(req, env, &kv).await,
        (Method::Post, ["validate"]) => {
            let text = req.text().await.unwrap_or_default();
            json_response(200, &validation(&text))
        }
        (Method::Get, ["versions"]) => versions(env, &kv).await,
        (Method::Get, ["versions", n]) => version(env, &kv, n).await,
        (Method::Post, ["diff"]) => diff_request(req, env, &kv).await,
        (Method::Post, ["rollback"]) => rollback(req, env, &kv).await,
        _ => error(
            ErrorKind::NotFound,
            "not_found",
            "unknown table route",
            json!({}),
        ),
    }
}

/// `PUT /admin/api/table`: a new table, if it validates and `If-Match` names the live one.
async fn put_table(req: &mut Request, env: &Env, kv: &KvStore) -> Result<Response> {
    let Some(if_match) = if_match(req) else {
        return precondition_required();
    };
    let message = decode_message(&req.headers().get("x-change-message")?.unwrap_or_default());
    let text = req.text().await.unwrap_or_default();
    if let Err(problems) = parse(&text) {
        return invalid_table(&problems);
    }
    write(env, kv, &text, if_match, message, Origin::Api, None).await
}

/// `GET /admin/api/table/versions`: the log, newest first, and the version KV serves.
async fn versions(env: &Env, kv: &KvStore) -> Result<Response> {
    let log = log(env).await?;
    // The version KV holds: the one the gateway serves (`GET /admin/api/table` names
    // the newest instead while KV is behind the log).
    let (text, is_default) = live(kv).await?;
    let tag = etag(&text);
    let current = log
        .entries()
        .iter()
        .rev()
        .find(|e| !is_default && e.etag == tag)
        .map(|e| e.version);
    let versions: Vec<Value> = log.entries().iter().rev().map(entry_json).collect();
    json_response(200, &json!({"current": current, "versions": versions}))
}

/// `GET /admin/api/table/versions/{n}`: one version's entry, text and table.
async fn version(env: &Env, kv: &KvStore, n: &str) -> Result<Response> {
    let Ok(n) = n.parse::<u64>() else {
        return error(
            ErrorKind::BadRequest,
            "invalid_version",
            "versions are numbers",
            json!({}),
        );
    };
    let log = log(env).await?;
    let Some(entry) = log.get(n) else {
        return unknown_version(n);
    };
    let Some(text) = kv_text::get(kv, &version_key(n)).await? else {
        return error(
            ErrorKind::NotFound,
            "version_text_missing",
            &format!("version {n} is logged but its text is not in KV"),
            json!({}),
        );
    };
    let mut out = entry_json(entry);
    if let Some(o) = out.as_object_mut() {
        o.insert(
            "table".into(),
            serde_json::from_str(&text).unwrap_or(Value::Null),
        );
        o.insert("text".into(), json!(text));
    }
    json_response(200, &out)
}

/// `POST /admin/api/table/rollback` with `{"version": n}`: that version's text, written as a
/// new version, if it still validates.
async fn rollback(req: &mut Request, env: &Env, kv: &KvStore) -> Result<Response> {
    let Some(if_match) = if_match(req) else {
        return precondition_required();
    };
    let text = req.text().await.unwrap_or_default();
    let Some(n) = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("version").and_then(Value::as_u64))
    else {
        return error(
            ErrorKind::BadRequest,
            "invalid_body",
            "expected {\"version\": <number>}",
            json!({}),
        );
    };
    if log(env).await?.get(n).is_none() {
        return unknown_version(n);
    }
    let Some(old) = kv_text::get(kv, &version_key(n)).await? else {
        return unknown_version(n);
    };
    if let Err(problems) = parse(&old) {
        return error(
            ErrorKind::Conflict,
            "version_invalid",
            &format!("version {n} does not validate any more; it cannot be restored"),
            json!({ "errors": problems }),
        );
    }
    let message = format!("rollback to version {n}");
    write(env, kv, &old, if_match, message, Origin::Rollback, Some(n)).await
}

fn if_match(req: &Request) -> Option<String> {
    req.headers()
        .get("if-match")
        .ok()
        .flatten()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn precondition_required() -> Result<Response> {
    error(
        ErrorKind::PreconditionRequired,
        "precondition_required",
        "send If-Match with the ETag of the table you edited (GET /admin/api/table), or * to overwrite",
        json!({}),
    )
}

fn unknown_version(n: u64) -> Result<Response> {
    error(
        ErrorKind::NotFound,
        "version_not_found",
        &format!("no routing-table version {n} (the newest 50 are kept)"),
        json!({}),
    )
}

async fn get_table(env: &Env, ctx: &dyn Background, kv: &KvStore) -> Result<Response> {
    // An unreadable version log is reported, not hidden: the table is still shown.
    let (log, log_error) = match log(env).await {
        Ok(l) => (l, None),
        Err(e) => (TableLog::default(), Some(e.to_string())),
    };
    let cur = current(kv, &log, Some(repair_after_ms(env))).await?;
    let serving = config_source::current(env, ctx, WorkerClock.now_ms()).await;
    let (serving, serving_error) = match &serving {
        Ok(l) => (json!(l.source.as_str()), json!(l.error)),
        Err(e) => (Value::Null, json!(e)),
    };
    let entry = cur.entry.as_ref();
    let check = validation(&cur.text);
    let body = json!({
        "version": entry.map(|e| e.version),
        "etag": cur.etag,
        "text": cur.text,
        "table": serde_json::from_str::<Value>(&cur.text).unwrap_or(Value::Null),
        "origin": cur.origin,
        "valid": check.get("valid"),
        "errors": check.get("errors"),
        "summary": check.get("summary"),
        "serving": serving,
        "serving_error": serving_error,
        "external_change": cur.external,
        "kv_behind": cur.kv_behind,
        "updated_ms": entry.map(|e| e.created_ms),
        "message": entry.map(|e| e.message.clone()),
        "log_error": log_error,
    });
    with_etag(json_response(200, &body), &cur.etag)
}

async fn write(
    env: &Env,
    kv: &KvStore,
    text: &str,
    if_match: String,
    message: String,
    origin: Origin,
    rolled_back_to: Option<u64>,
) -> Result<Response> {
    let (live_text, live_is_default) = live(kv).await?;
    let commit = Commit {
        if_match,
        live_etag: etag(&live_text),
        live_is_default,
        live_bytes: live_text.len() as u64,
        new_etag: etag(text),
        new_bytes: text.len() as u64,
        message,
        origin,
        rolled_back_to,
    };
    let result: CommitResult =
        objects::call(env, TABLE_LOG, LOG_NAME, "/commit", Some(&commit)).await?;
    match result {
        CommitResult::Conflict {
            current_etag,
            current_version,
        } => error(
            ErrorKind::PreconditionFailed,
            "version_conflict",
            "the routing table changed since you read it; reload, reapply your edit and save again",
            json!({"current_etag": current_etag, "current_version": current_version}),
        ),
        CommitResult::Accepted {
            entry,
            external,
            dropped,
            unchanged,
        } => {
            let mut puts = vec![(version_key(entry.version), text), (TABLE_KEY.into(), text)];
            if let Some(ext) = &external {
                puts.insert(0, (version_key(ext.version), live_text.as_str()));
            }
            for (key, value) in puts {
                if let Err(e) = kv_text::put(kv, &key, value).await {
                    return not_applied(&entry, &e.to_string());
                }
            }
            config_source::invalidate();
            for n in dropped {
                // Best effort: an orphaned text is harmless (never listed).
                let _ = kv.delete(&version_key(n)).await;
            }
            let body = json!({
                "version": entry.version,
                "etag": entry.etag,
                "rolled_back_to": entry.rolled_back_to,
                "external_logged": external.map(|e| e.version),
                "unchanged": unchanged,
            });
            with_etag(json_response(200, &body), &entry.etag)
        }
    }
}

/// 503 for a write the log committed but whose text KV did not take: the version stays in the
/// log and KV is rolled forward to it later (see the module docs).
fn not_applied(entry: &Entry, cause: &str) -> Result<Response> {
    error(
        ErrorKind::Unavailable,
        "table_not_applied",
        &format!(
            "version {} is in the version log, but KV did not take it ({cause}); the gateway \
             keeps serving the previous table. Reload the table and save again: the ETag it \
             shows is accepted",
            entry.version
        ),
        json!({"version": entry.version, "etag": entry.etag}),
    )
}

/// One side of a diff: `"current"` (the table `GET` shows), a version number, or absent.
async fn side(
    env: &Env,
    kv: &KvStore,
    which: Option<&Value>,
) -> std::result::Result<String, Result<Response>> {
    match which {
        Some(Value::String(s)) if s == "current" => {
            let log = log(env).await.unwrap_or_default();
            current(kv, &log, None).await.map(|c| c.text).map_err(Err)
        }
        Some(v) => match v.as_u64() {
            Some(n) => match kv_text::get(kv, &version_key(n)).await {
                Ok(Some(t)) => Ok(t),
                Ok(None) => Err(unknown_version(n)),
                Err(e) => Err(Err(e)),
            },
            None => Err(error(
                ErrorKind::BadRequest,
                "invalid_body",
                "\"from\" and \"to\" are version numbers or \"current\"",
                json!({}),
            )),
        },
        None => Err(error(
            ErrorKind::BadRequest,
            "invalid_body",
            "expected {\"from\": n|\"current\", \"to\": n|\"current\"} or {\"from\": ..., \"text\": \"...\"}",
            json!({}),
        )),
    }
}

async fn diff_request(req: &mut Request, env: &Env, kv: &KvStore) -> Result<Response> {
    let text = req.text().await.unwrap_or_default();
    let Ok(input) = serde_json::from_str::<Value>(&text) else {
        return error(
            ErrorKind::BadRequest,
            "invalid_body",
            "expected a JSON object",
            json!({}),
        );
    };
    let from = match side(env, kv, input.get("from")).await {
        Ok(t) => t,
        Err(res) => return res,
    };
    let to = match input.get("text").and_then(Value::as_str) {
        Some(draft) => draft.to_string(),
        None => match side(env, kv, input.get("to")).await {
            Ok(t) => t,
            Err(res) => return res,
        },
    };
    let parse = |label: &str, t: &str| {
        serde_json::from_str::<Value>(t).map_err(|e| {
            error(
                ErrorKind::BadRequest,
                "invalid_json",
                &format!("the {label} side is not valid JSON: {e}"),
                json!({}),
            )
        })
    };
    let before = match parse("from", &from) {
        Ok(v) => v,
        Err(res) => return res,
    };
    let after = match parse("to", &to) {
        Ok(v) => v,
        Err(res) => return res,
    };
    match diff(&before, &after) {
        Ok(d) => json_response(200, &serde_json::to_value(d).unwrap_or(Value::Null)),
        Err(e) => error(ErrorKind::TooLarge, "diff_too_large", &e, json!({})),
    }
}
