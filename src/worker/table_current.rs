//! The routing table as a reader of the admin API sees it: KV's text, or the table log's newest
//! version when KV is behind the log (see `admin_table` for why KV is rolled forward).
//!
//! Invariant: the ETag offered with a table is the one the next write must name, so a reader
//! is never left unable to save (`state::table_log::KvState` decides; this module does I/O).

use super::config_source::{self, TABLE_KEY};
use super::kv_text;
use super::objects::{self, table_log::NAME as LOG_NAME, TABLE_LOG};
use super::transport::WorkerClock;
use crate::config::EMBEDDED_DEFAULT;
use crate::engine::Clock;
use crate::state::table_log::{etag, Entry, KvState, TableLog, KV_REPAIR_AFTER_MS};
use serde_json::{json, Value};
use worker::{console_log, kv::KvStore, Env, Result};

pub(super) const VERSION_PREFIX: &str = "routing-table:v:";

pub(super) fn version_key(n: u64) -> String {
    format!("{VERSION_PREFIX}{n}")
}

/// What KV holds now: (text, true when it is the embedded default because KV has none).
pub(super) async fn live(kv: &KvStore) -> Result<(String, bool)> {
    Ok(match kv_text::get(kv, TABLE_KEY).await? {
        Some(t) => (t, false),
        None => (EMBEDDED_DEFAULT.to_string(), true),
    })
}

pub(super) async fn log(env: &Env) -> Result<TableLog> {
    objects::call(env, TABLE_LOG, LOG_NAME, "/log", None::<&()>).await
}

/// `TABLE_REPAIR_AFTER_MS`: how old the log's newest version must be before a `GET` rewrites a
/// KV that lacks it (default `KV_REPAIR_AFTER_MS`; the tests set 0).
pub(super) fn repair_after_ms(env: &Env) -> u64 {
    super::vars::number(env, "TABLE_REPAIR_AFTER_MS", KV_REPAIR_AFTER_MS)
}

/// The current table as a reader sees it: normally KV's text; the log's newest version when
/// KV is behind the log (see the module docs).
pub(super) struct Current {
    pub(super) text: String,
    /// The ETag the next write must name.
    pub(super) etag: String,
    /// The logged version `text` is, if any.
    pub(super) entry: Option<Entry>,
    /// `"kv"`, `"embedded-default"` (KV holds no table) or `"log"` (KV is behind; `text` is
    /// the newest version's).
    pub(super) origin: &'static str,
    /// KV holds a text the API never wrote.
    pub(super) external: bool,
    /// When KV is behind the log: what it holds and whether this read repaired it.
    pub(super) kv_behind: Value,
}

/// Reads the current table; with `repair_after_ms` (GET only) rewrites a KV that has been
/// behind the log for that long.
pub(super) async fn current(
    kv: &KvStore,
    log: &TableLog,
    repair_after_ms: Option<u64>,
) -> Result<Current> {
    let (kv_text, is_default) = live(kv).await?;
    let kv_etag = etag(&kv_text);
    let after = repair_after_ms.unwrap_or(u64::MAX);
    let state = log.kv_state(&kv_etag, is_default, WorkerClock.now_ms(), after);
    let tag = state.etag(&kv_etag);
    let kv_origin = if is_default { "embedded-default" } else { "kv" };
    let (newest, kv_version, repair) = match state {
        KvState::Behind {
            newest,
            kv_version,
            repair,
        } => (newest, kv_version, repair),
        other => {
            let external = other == KvState::External;
            return Ok(Current {
                text: kv_text,
                etag: tag,
                entry: match other {
                    KvState::InSync { newest } => Some(newest),
                    _ => None,
                },
                origin: kv_origin,
                external,
                kv_behind: Value::Null,
            });
        }
    };
    let behind = |repaired: bool, error: Option<String>, text_missing: bool| {
        json!({
            "kv_version": kv_version,
            "kv_etag": if is_default { None } else { Some(&kv_etag) },
            "repaired": repaired,
            "repair_error": error,
            "text_missing": text_missing,
        })
    };
    let Some(text) = kv_text::get(kv, &version_key(newest.version)).await? else {
        // The newest version's text never reached KV: there is nothing to roll forward to.
        // The reader sees what KV holds, with the ETag a write must name, so that the next
        // save replaces the version that never took effect.
        return Ok(Current {
            text: kv_text,
            etag: tag,
            entry: kv_version.and_then(|n| log.get(n)).cloned(),
            origin: kv_origin,
            external: false,
            kv_behind: behind(false, None, true),
        });
    };
    let (repaired, error) = if repair {
        match kv_text::put(kv, TABLE_KEY, &text).await {
            Ok(()) => {
                config_source::invalidate();
                console_log!(
                    "{}",
                    json!({"msg": "table_kv_repaired", "version": newest.version,
                           "kv_version": kv_version})
                );
                (true, None)
            }
            Err(e) => (false, Some(e.to_string())),
        }
    } else {
        (false, None)
    };
    Ok(Current {
        text,
        etag: tag,
        entry: Some(newest),
        origin: if repaired { "kv" } else { "log" },
        external: false,
        kv_behind: behind(repaired, error, false),
    })
}
