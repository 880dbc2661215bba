//! Sends an object's pending alerts to the operator's webhook, from the object's alarm.
//!
//! Invariant: alerts leave only from `alarm` (never from a request's handler, which only
//! queues them and sets the alarm), one POST each with a `TIMEOUT_MS` limit; what to retry
//! and when is decided by `state::alerts::Outbox` (bounded tries), and the alarm is set again
//! only while alerts are pending. The webhook URL is a secret: it is read from the binding the
//! table names, sent nowhere else and never logged (nor the fetch's error, which may hold it).

use super::objects::now_ms;
use super::objects::stored::Stored;
use super::vars;
use crate::state::alerts::{payload, Outbox, Retry};
use futures_util::future::{select, Either};
use serde_json::{json, Value};
use wasm_bindgen::JsValue;
use worker::{
    console_log, AbortController, Delay, Env, Fetch, Headers, Method, Request, RequestInit, Result,
    Storage,
};

/// A webhook that has not answered within this is counted as failed (and retried).
pub const TIMEOUT_MS: u64 = 3_000;

/// After a handler queued alerts: the alarm fires when the first one is due (an alarm set
/// earlier is kept).
pub async fn schedule(storage: &Storage, outbox: &Stored<Outbox>) -> Result<()> {
    let Ok(Some(at)) = outbox.with(|o| o.next_alarm_ms()) else {
        return Ok(());
    };
    if let Some(set) = storage.get_alarm().await? {
        if u64::try_from(set).is_ok_and(|set| set <= at) {
            return Ok(());
        }
    }
    let offset = i64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
    storage.set_alarm(offset).await
}

/// The alarm: sends what is due, records each outcome, and sets the alarm for the next retry.
pub async fn deliver(env: &Env, storage: &Storage, outbox: &Stored<Outbox>) -> Result<()> {
    outbox.load(storage).await;
    let due = outbox.with(|o| o.due(now_ms())).unwrap_or_default();
    for p in due {
        let id = p.id();
        let Some(url) = vars::get(env, &p.secret) else {
            let dropped = outbox.with(|o| o.drop_all()).unwrap_or(0);
            console_log!(
                "{}",
                json!({"event": "alerts_dropped", "why": "webhook secret not set",
                       "secret": p.secret, "alerts": dropped})
            );
            break;
        };
        let sent = post(&url, &payload(&p, &iso(p.at_ms))).await;
        let outcome = outbox.with(|o| {
            if sent {
                o.delivered(&id);
                None
            } else {
                Some(o.failed(&id, now_ms()))
            }
        });
        if let Ok(Some(retry)) = outcome {
            let retry_at = match retry {
                Retry::At(t) => Value::from(t),
                Retry::GaveUp => Value::Null,
            };
            console_log!(
                "{}",
                json!({"event": "alert_failed", "alert": id, "retry_at_ms": retry_at})
            );
        }
    }
    outbox.save(storage).await?;
    schedule(storage, outbox).await
}

/// One POST; true when the webhook answered 2xx within `TIMEOUT_MS`.
async fn post(url: &str, body: &Value) -> bool {
    let headers = Headers::new();
    if headers.set("content-type", "application/json").is_err() {
        return false;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(&body.to_string())));
    let Ok(req) = Request::new_with_init(url, &init) else {
        return false;
    };
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(req);
    let send = std::pin::pin!(fetch.send_with_signal(&signal));
    let timer = std::pin::pin!(Delay::from(std::time::Duration::from_millis(TIMEOUT_MS)));
    match select(send, timer).await {
        Either::Left((Ok(res), _)) => (200..300).contains(&res.status_code()),
        Either::Left((Err(_), _)) => false,
        Either::Right(_) => {
            controller.abort();
            false
        }
    }
}

fn iso(ms: u64) -> String {
    js_sys::Date::new(&JsValue::from_f64(ms as f64))
        .to_iso_string()
        .as_string()
        .unwrap_or_default()
}
