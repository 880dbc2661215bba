//! Routing table from Workers KV, through a per-isolate cache.
//!
//! Invariant: once an isolate has served a valid table it never serves an invalid one. A bad
//! value in KV (written by `wrangler kv`, the dashboard, …) is reported on /healthz and in the
//! log while the last good table keeps serving: first the one in this isolate's memory, else
//! the copy under `routing-table:last-good`, which the worker writes whenever it adopts a new
//! valid table. Staleness: a KV change is seen within `CONFIG_CACHE_TTL_MS` (default 5 s) of
//! KV returning it; KV itself may take up to ~60 s to propagate to other locations.

use super::background::Background;
use crate::config::{parse_table, RoutingTable, EMBEDDED_DEFAULT};
use crate::hash::fnv1a;
use std::cell::RefCell;
use std::rc::Rc;
use worker::{console_error, console_log, Env};

pub const KV_BINDING: &str = "ROUTER_CONFIG";
pub const TABLE_KEY: &str = "routing-table";
pub const LAST_GOOD_KEY: &str = "routing-table:last-good";
const DEFAULT_TTL_MS: u64 = 5_000;
/// `raw_hash` of a state derived from an absent KV key (no text hashes to it in practice).
const MISSING_HASH: u64 = u64::MAX;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Source {
    Kv,
    LastGood,
    EmbeddedDefault,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Kv => "kv",
            Source::LastGood => "last-good",
            Source::EmbeddedDefault => "embedded-default",
        }
    }
}

#[derive(Clone)]
pub struct Loaded {
    pub table: Rc<RoutingTable>,
    pub source: Source,
    /// Why the KV value is not being served, if it is not.
    pub error: Option<String>,
    pub checked_at_ms: u64,
    /// Hash of the KV text this state was derived from (to skip re-validation).
    raw_hash: u64,
}

thread_local! {
    static CACHE: RefCell<Option<Loaded>> = const { RefCell::new(None) };
}

pub(super) fn ttl_ms(env: &Env) -> u64 {
    super::vars::number(env, "CONFIG_CACHE_TTL_MS", DEFAULT_TTL_MS)
}

/// Forgets this isolate's cached table, so that the next request reads KV (after the admin
/// API wrote a new table).
pub fn invalidate() {
    CACHE.with(|c| *c.borrow_mut() = None);
}

/// The table to serve now, or an error message when there is none at all.
pub async fn current(env: &Env, ctx: &dyn Background, now_ms: u64) -> Result<Loaded, String> {
    let cached = CACHE.with(|c| c.borrow().clone());
    if let Some(c) = &cached {
        if now_ms.saturating_sub(c.checked_at_ms) < ttl_ms(env) {
            return Ok(c.clone());
        }
    }
    let loaded = refresh(env, ctx, cached, now_ms).await?;
    CACHE.with(|c| *c.borrow_mut() = Some(loaded.clone()));
    Ok(loaded)
}

async fn refresh(
    env: &Env,
    ctx: &dyn Background,
    cached: Option<Loaded>,
    now_ms: u64,
) -> Result<Loaded, String> {
    let kv = env
        .kv(KV_BINDING)
        .map_err(|e| format!("KV binding {KV_BINDING} missing: {e}"))?;
    let text = match kv.get(TABLE_KEY).text().await {
        Ok(t) => t,
        Err(e) => {
            let msg = format!("reading {TABLE_KEY} from KV failed: {e}");
            console_error!("{}", log_json("config_read_failed", &msg));
            return match cached {
                Some(mut c) => {
                    c.checked_at_ms = now_ms;
                    Ok(c)
                }
                None => Err(msg),
            };
        }
    };
    let Some(text) = text else {
        return missing_table(&kv, cached, now_ms).await;
    };
    let hash = fnv1a(text.as_bytes());
    if let Some(mut c) = cached.clone().filter(|c| c.raw_hash == hash) {
        c.checked_at_ms = now_ms;
        return Ok(c);
    }
    match parse_table(&text) {
        Ok(table) => {
            console_log!(
                "{}",
                log_json(
                    "config_loaded",
                    &format!("routing table adopted ({} routes)", table.routes.len())
                )
            );
            let kv2 = kv.clone();
            ctx.spawn(Box::pin(async move {
                if let Ok(put) = kv2.put(LAST_GOOD_KEY, text) {
                    if let Err(e) = put.execute().await {
                        console_error!(
                            "{}",
                            log_json("config_last_good_write_failed", &e.to_string())
                        );
                    }
                }
            }));
            Ok(Loaded {
                table: Rc::new(table),
                source: Source::Kv,
                error: None,
                checked_at_ms: now_ms,
                raw_hash: hash,
            })
        }
        Err(errors) => {
            let msg = format!(
                "routing table in KV key {TABLE_KEY:?} is invalid, serving the last good table: {}",
                errors.join("; ")
            );
            console_error!("{}", log_json("config_invalid", &msg));
            if let Some(c) = cached {
                return Ok(Loaded {
                    source: Source::LastGood,
                    error: Some(msg),
                    checked_at_ms: now_ms,
                    raw_hash: hash,
                    ..c
                });
            }
            let last_good = kv
                .get(LAST_GOOD_KEY)
                .text()
                .await
                .ok()
                .flatten()
                .and_then(|t| parse_table(&t).ok());
            match last_good {
                Some(table) => Ok(Loaded {
                    table: Rc::new(table),
                    source: Source::LastGood,
                    error: Some(msg),
                    checked_at_ms: now_ms,
                    raw_hash: hash,
                }),
                None => Err(format!("{msg}; and no last good table is available")),
            }
        }
    }
}

/// KV holds no table. A table that was served before (in this isolate, or as last-good in KV)
/// keeps serving, degraded: a deleted key or a freshly bound namespace must not silently turn
/// production routes into the mock default. The embedded default serves only when no table
/// has ever been adopted.
async fn missing_table(
    kv: &worker::kv::KvStore,
    cached: Option<Loaded>,
    now_ms: u64,
) -> Result<Loaded, String> {
    let msg = format!(
        "KV key {TABLE_KEY:?} holds no routing table; serving the last good table (write a table, \
         or delete {LAST_GOOD_KEY:?} too to fall back to the embedded default)"
    );
    if let Some(c) = cached.filter(|c| c.source != Source::EmbeddedDefault) {
        return Ok(Loaded {
            source: Source::LastGood,
            error: Some(msg),
            checked_at_ms: now_ms,
            raw_hash: MISSING_HASH,
            ..c
        });
    }
    let last_good = kv.get(LAST_GOOD_KEY).text().await.ok().flatten();
    if let Some(table) = last_good.and_then(|t| parse_table(&t).ok()) {
        console_error!("{}", log_json("config_missing", &msg));
        return Ok(Loaded {
            table: Rc::new(table),
            source: Source::LastGood,
            error: Some(msg),
            checked_at_ms: now_ms,
            raw_hash: MISSING_HASH,
        });
    }
    let table = parse_table(EMBEDDED_DEFAULT)
        .map_err(|e| format!("embedded default table invalid: {}", e.join("; ")))?;
    Ok(Loaded {
        table: Rc::new(table),
        source: Source::EmbeddedDefault,
        error: None,
        checked_at_ms: now_ms,
        raw_hash: 0,
    })
}

fn log_json(event: &str, message: &str) -> String {
    serde_json::json!({"msg": event, "detail": message}).to_string()
}
