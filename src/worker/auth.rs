//! Gateway keys at the door: who is calling (the key's record, found by its hash in KV), and
//! the key object's admission of the request against its limits and budgets.
//!
//! Key records are cached per isolate for `CONFIG_CACHE_TTL_MS` (misses too, so a flood of
//! bad keys does not become a flood of KV reads). The key's object is the single source of
//! truth for revocation and limits: every request made with a known key asks it once
//! (`admit`) before anything is sent upstream, so a revoke takes effect on the next request
//! in every isolate, whatever the caches and KV still say. Cost per keyed request: one object
//! call waited on (admit; no storage write for a key without limits) and one in the
//! background (settle, which records usage and spend).

use super::config_source::ttl_ms;
use super::objects::{self, key::AdmitCall, key::AdmitReply, key::SettleCall, KEYS};
use crate::api::ApiError;
use crate::keys::{hash_key, presented_key, KeyRecord, KV_PREFIX};
use crate::state::quota::{Admission, Denial, Estimate, Headroom};
use std::cell::RefCell;
use std::collections::HashMap;
use worker::{Delay, Env, Request};

use super::config_source::KV_BINDING;

thread_local! {
    /// key hash → (record or None for "no such key", when it was read).
    static KEYS_SEEN: RefCell<HashMap<String, (Option<KeyRecord>, u64)>> = RefCell::new(HashMap::new());
}

/// `AUTH_MODE = "open"` lets requests without a valid key through (local development);
/// anything else requires a gateway key.
fn open_mode(env: &Env) -> bool {
    super::vars::get(env, "AUTH_MODE").is_some_and(|v| v.eq_ignore_ascii_case("open"))
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(401, "invalid_request_error", "invalid_api_key", message)
}

/// The caller's key record; None in open mode when no known key was given.
pub async fn authenticate(
    req: &Request,
    env: &Env,
    now_ms: u64,
) -> Result<Option<KeyRecord>, ApiError> {
    let headers = req.headers();
    let authorization = headers.get("authorization").ok().flatten();
    let x_api_key = headers.get("x-api-key").ok().flatten();
    check(authorization.as_deref(), x_api_key.as_deref(), env, now_ms).await
}

/// `authenticate` from the request's headers already read (names lower-case).
pub async fn authenticate_headers(
    headers: &[(String, String)],
    env: &Env,
    now_ms: u64,
) -> Result<Option<KeyRecord>, ApiError> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    check(get("authorization"), get("x-api-key"), env, now_ms).await
}

async fn check(
    authorization: Option<&str>,
    x_api_key: Option<&str>,
    env: &Env,
    now_ms: u64,
) -> Result<Option<KeyRecord>, ApiError> {
    let open = open_mode(env);
    let Some(secret) = presented_key(authorization, x_api_key) else {
        return if open {
            Ok(None)
        } else {
            Err(unauthorized(
                "Missing gateway key: send it as `Authorization: Bearer <key>` or `x-api-key`.",
            ))
        };
    };
    let id = hash_key(secret);
    let record = lookup(env, &id, now_ms).await?;
    match record {
        Some(r) if r.revoked => Err(unauthorized("This gateway key has been revoked.")),
        Some(r) => Ok(Some(r)),
        None if open => Ok(None),
        None => Err(unauthorized("Incorrect gateway key provided.")),
    }
}

/// Whether the caller may see the gateway's configuration (route names, paths, the table's
/// state): in open mode anyone, in keys mode a caller with a valid key. A key that cannot be
/// checked (key store unavailable) counts as none.
pub async fn may_see_details(req: &Request, env: &Env, now_ms: u64) -> bool {
    authenticate(req, env, now_ms).await.is_ok()
}

async fn lookup(env: &Env, id: &str, now_ms: u64) -> Result<Option<KeyRecord>, ApiError> {
    if let Some((rec, at)) = KEYS_SEEN.with(|k| k.borrow().get(id).cloned()) {
        if now_ms.saturating_sub(at) < ttl_ms(env) {
            return Ok(rec);
        }
    }
    let unavailable = |e: String| ApiError::new(503, "api_error", "key_store_unavailable", e);
    let kv = env
        .kv(KV_BINDING)
        .map_err(|e| unavailable(format!("KV binding {KV_BINDING} missing: {e}")))?;
    let text = kv
        .get(&format!("{KV_PREFIX}{id}"))
        .text()
        .await
        .map_err(|e| unavailable(format!("reading the gateway key failed: {e}")))?;
    let record = match text {
        None => None,
        Some(t) => Some(
            KeyRecord::parse(id, &t)
                .map_err(|e| ApiError::new(500, "api_error", "key_record_invalid", e))?,
        ),
    };
    KEYS_SEEN.with(|k| {
        let mut k = k.borrow_mut();
        if k.len() > 10_000 {
            k.clear();
        }
        k.insert(id.to_string(), (record.clone(), now_ms));
    });
    Ok(record)
}

/// A request admitted by its key's object: the reservation to settle (None when the key has
/// no limits, so nothing was reserved), and the headroom left.
pub struct Admitted {
    pub reservation: Option<String>,
    pub headroom: Headroom,
}

/// Asks the key's object to admit the request: revocation for every key, limits and budgets
/// for keys that set them (waits: this is what must be strict).
pub async fn admit(
    env: &Env,
    key: &KeyRecord,
    reservation: &str,
    estimate: Estimate,
    until_ms: u64,
) -> Result<Admitted, (ApiError, Headroom)> {
    let call = AdmitCall {
        id: reservation.to_string(),
        limits: key.limits,
        estimate,
        until_ms: Some(until_ms),
    };
    let reply: worker::Result<AdmitReply> =
        objects::call(env, KEYS, &key.id, "/admit", Some(&call)).await;
    let reply = reply.map_err(|e| {
        (
            ApiError::new(
                503,
                "api_error",
                "key_store_unavailable",
                format!("admitting the request failed: {e}"),
            ),
            Headroom::default(),
        )
    })?;
    if reply.revoked {
        return Err((
            unauthorized("This gateway key has been revoked."),
            Headroom::default(),
        ));
    }
    match reply.admission {
        Some(Admission::Admitted { headroom }) => Ok(Admitted {
            reservation: Some(reservation.to_string()),
            headroom,
        }),
        Some(Admission::Denied {
            reason,
            retry_after_ms,
            headroom,
        }) => {
            if reason == Denial::StateUnreadable {
                let e = ApiError::new(
                    503,
                    "api_error",
                    "key_state_unreadable",
                    format!(
                        "Gateway key \"{}\": its usage state cannot be read.",
                        key.name
                    ),
                );
                return Err((e, headroom));
            }
            let (code, what) = match reason {
                Denial::StateUnreadable => ("key_state_unreadable", "stored state"),
                Denial::Rpm => ("rate_limit_exceeded", "requests per minute"),
                Denial::Tpm => ("rate_limit_exceeded", "tokens per minute"),
                Denial::BudgetDay => ("budget_exceeded", "daily budget"),
                Denial::BudgetMonth => ("budget_exceeded", "monthly budget"),
            };
            let kind = if code == "budget_exceeded" {
                "insufficient_quota"
            } else {
                "rate_limit_error"
            };
            let mut e = ApiError::new(
                429,
                kind,
                code,
                format!(
                    "Gateway key \"{}\" is over its {what} limit; retry after {} ms.",
                    key.name, retry_after_ms
                ),
            );
            e.retry_after_s = Some(retry_after_ms.div_ceil(1000).max(1));
            Err((e, headroom))
        }
        None => Ok(Admitted {
            reservation: None,
            headroom: Headroom::default(),
        }),
    }
}

/// Settles (or releases, when `actual` is None) the request's reservation and records its
/// usage on the key's object. Sent in the background.
pub async fn settle(env: Env, key_id: String, call: SettleCall) {
    // The key's object applies a request's settle once, so a retry after a lost reply is safe.
    for (attempt, wait_ms) in SETTLE_RETRY_MS.iter().enumerate() {
        if attempt > 0 {
            Delay::from(std::time::Duration::from_millis(*wait_ms)).await;
        }
        let sent: worker::Result<serde_json::Value> =
            objects::call(&env, KEYS, &key_id, "/settle", Some(&call)).await;
        if sent.is_ok() {
            return;
        }
    }
}

/// Waits before each try of a settle (the first goes at once): a key's spend must not be lost
/// to one failed call, and all of it stays within `wait_until`'s time.
const SETTLE_RETRY_MS: [u64; 3] = [0, 250, 1_000];

/// OpenAI's `x-ratelimit-*` headers for the headroom the key has left.
pub fn ratelimit_headers(h: &Headroom) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let dur = |ms: u64| format!("{}s", ms.div_ceil(1000));
    if let Some(v) = h.limit_requests {
        out.push(("x-ratelimit-limit-requests", v.to_string()));
    }
    if let Some(v) = h.remaining_requests {
        out.push(("x-ratelimit-remaining-requests", v.to_string()));
    }
    if let Some(v) = h.reset_requests_ms {
        out.push(("x-ratelimit-reset-requests", dur(v)));
    }
    if let Some(v) = h.limit_tokens {
        out.push(("x-ratelimit-limit-tokens", v.to_string()));
    }
    if let Some(v) = h.remaining_tokens {
        out.push(("x-ratelimit-remaining-tokens", v.to_string()));
    }
    if let Some(v) = h.reset_tokens_ms {
        out.push(("x-ratelimit-reset-tokens", dur(v)));
    }
    out
}
