//! The response cache's I/O: `caches.default` of the Workers Cache API, keyed by a synthetic
//! URL (`https://cache.invalid/<sha256>`) and kept for the route's `ttl_s`
//! (`Cache-Control: max-age`). The decisions (key, what may be stored, the replay) are the
//! core's (`crate::cache`).
//!
//! Invariant: the cache never fails a request. A lookup that errors is a miss, a store runs in
//! the background (`wait_until`) after the answer went out, and its failure is only lost
//! caching. The Cache API is per data centre: a hit needs an earlier answer stored in the same
//! location.

use super::background::Background;
use super::finish::Finish;
use super::respond::raw_bytes_response;
use super::transport::WorkerClock;
use crate::api::{ChatRequest, ClientFormat};
use crate::cache::entry::pivot_of_native_anthropic;
use crate::cache::{answer_for_client, Decision, Entry};
use crate::engine::{CacheStatus, Clock, Meta};
use crate::report::response_headers;
use crate::resilience::subrequests::RESERVED_CALLS;
use std::rc::Rc;
use worker::{Cache, Headers, Response, Result};

const URL_BASE: &str = "https://cache.invalid/";

/// What the request does with the cache, for the `x-router-cache` header.
pub fn status(decision: Option<&Decision>) -> Option<CacheStatus> {
    decision.map(|d| match d {
        Decision::Use { .. } => CacheStatus::Miss,
        Decision::Bypass(_) => CacheStatus::Bypass,
    })
}

/// The subrequests the cache costs the request (see `Decision::subrequests`).
pub fn outside_calls(decision: Option<&Decision>) -> u32 {
    decision.map_or(0, Decision::subrequests)
}

/// The cached answer for `decision`, if there is one.
pub async fn lookup(decision: Option<&Decision>) -> Option<Entry> {
    let Some(Decision::Use { key, .. }) = decision else {
        return None;
    };
    let mut res = Cache::default()
        .get(format!("{URL_BASE}{key}"), false)
        .await
        .ok()??;
    if res.status_code() != 200 {
        return None;
    }
    let bytes = res.bytes().await.ok()?;
    Entry::decode(&bytes)
}

/// Stores a complete answer in the background when the core says it may be cached. `body`
/// is the answer as the engine gave it: the pivot, or (`client_ready`) an Anthropic message.
pub fn store(
    ctx: &Rc<dyn Background>,
    decision: Option<&Decision>,
    meta: &Meta,
    body: &[u8],
    client_ready: bool,
) {
    let Some(Decision::Use { key, ttl_s }) = decision else {
        return;
    };
    let pivot = if client_ready {
        match pivot_of_native_anthropic(body) {
            Some(p) => p,
            None => return,
        }
    } else {
        body.to_vec()
    };
    let Some(entry) = Entry::storable(meta, &pivot) else {
        return;
    };
    let (key, ttl_s) = (key.clone(), *ttl_s);
    ctx.spawn(Box::pin(async move {
        let _ = put(&key, ttl_s, &entry).await;
    }));
}

async fn put(key: &str, ttl_s: u32, entry: &Entry) -> Result<()> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set("cache-control", &format!("max-age={ttl_s}"))?;
    let res = Response::from_bytes(entry.encode())?.with_headers(headers);
    Cache::default().put(format!("{URL_BASE}{key}"), res).await
}

/// A hit: the cached answer in the client's format (streamed if asked), at no cost; finished
/// (settled at 0, logged) like any other request. No deployment answered, so none is named.
pub fn serve_hit(
    entry: &Entry,
    chat: &ChatRequest,
    client: ClientFormat,
    mut meta: Meta,
    mut finish: Finish,
) -> Result<web_sys::Response> {
    finish.decorate(&mut meta);
    // No deployment was tried or passed over.
    meta.skipped.clear();
    meta.deferred.clear();
    meta.model = entry.model.clone();
    meta.cost_nanos = Some(0);
    meta.status = 200;
    meta.cache = Some(CacheStatus::Hit);
    // The reserve, the lookup, and the hit's report to the route's first deployment's
    // object (route statistics); nothing is stored.
    meta.subrequests = RESERVED_CALLS + 2;
    let mut headers = response_headers(&meta, WorkerClock.now_ms());
    finish.done(&mut meta);
    let body = answer_for_client(client, &entry.completion, chat.stream, chat.include_usage);
    if chat.stream {
        headers.push(("cache-control", "no-cache".into()));
        raw_bytes_response(200, "text/event-stream; charset=utf-8", &body, &headers)
    } else {
        raw_bytes_response(200, "application/json", &body, &headers)
    }
}
