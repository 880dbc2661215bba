//! `KeyState`: the Durable Object of one gateway key. It enforces the key's request and token
//! rates and spend budgets, and keeps its usage.
//!
//! Invariant: admission is check-and-reserve in one step on this single object, so concurrent
//! requests cannot together pass a limit: each reserves its estimate before it is sent and
//! settles to the actual cost (or releases) afterwards. A revoked key is refused here at once,
//! whatever the isolates' KV caches still say. Every change is saved before the reply (see
//! `Stored`). Unreadable state fails closed: admission is refused (its budget and revocation
//! cannot be checked), settles are refused rather than written over it, and only a revoke
//! replaces it (keeping a copy).
//!
//! The object is also the single writer of the key's record (`StoredRecord`): every request
//! made with the key asks it first (`/admit`, one call, with or without limits), so a revoke
//! takes effect on the next request in every isolate; PATCH and revoke are applied here one
//! at a time to the object's copy (compare-and-set on `rev` when the caller gives one), so an
//! edit made from a stale copy can never lift a revocation or undo another edit. KV keeps a
//! mirror of the record for listing and lookup.
//!
//! Alerts (`state::alerts`): a settle whose spend passes 50, 80 or 100 % of the key's day or
//! month budget queues one alert per threshold and sets the object's alarm, which sends them
//! (`worker::alerts`); the settle's reply never waits for the webhook.

use super::stored::Stored;
use super::{body, hours_param, json, now_ms};
use crate::keys::{apply_edit, StoredRecord};
use crate::state::alerts::{self, Alert, AlertSettings, Outbox, Subject};
use crate::state::hourly::Hourly;
use crate::state::quota::{Actual, Admission, Denial, Estimate, Headroom, Limits, Quota, Spend};
use crate::state::recent::RecentIds;
use crate::state::route_stats::{Figures, RouteRequest};
use crate::state::stats::{Sample, Stats};
use serde::{Deserialize, Serialize};
use worker::{
    durable_object, DurableObject, Env, Method, Request, Response, Result, State, Storage,
};

#[derive(Debug, Serialize, Deserialize)]
pub struct AdmitCall {
    pub id: String,
    pub limits: Limits,
    pub estimate: Estimate,
    /// The request's deadline: its reservation is held at least until then.
    #[serde(default)]
    pub until_ms: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AdmitReply {
    #[serde(default)]
    pub revoked: bool,
    pub admission: Option<Admission>,
}

/// An operator's edit of the key's record (`PATCH`, or the record of a new key with an
/// empty patch).
#[derive(Debug, Serialize, Deserialize)]
pub struct EditCall {
    /// The record as the caller read it from KV; used only when the object has none yet.
    pub seed: String,
    pub patch: serde_json::Map<String, serde_json::Value>,
    /// Apply only if the object's `rev` is this (`If-Match`).
    pub if_rev: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome")]
pub enum EditReply {
    #[serde(rename = "saved")]
    Saved { record: String, rev: u64 },
    /// `if_rev` did not match: the record changed since the caller read it.
    #[serde(rename = "conflict")]
    Conflict { rev: u64 },
    #[serde(rename = "invalid")]
    Invalid { error: String },
}

/// Revoke, with the record as the caller read it from KV (for an object without one yet).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RevokeCall {
    #[serde(default)]
    pub seed: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RevokeReply {
    pub revoked: bool,
    /// The revoked record to mirror into KV; None if no valid record was known.
    pub record: Option<String>,
    pub rev: u64,
}

/// The end of a request: settle its reservation (or release it when nothing was billed) and
/// record its usage.
#[derive(Debug, Serialize, Deserialize)]
pub struct SettleCall {
    /// The request's id: a settle retried after it succeeded is applied once.
    #[serde(default)]
    pub request: Option<String>,
    /// Reservation id; None when the request was not admitted through this object.
    pub id: Option<String>,
    pub actual: Option<Actual>,
    pub sample: Sample,
    /// The table's `alerts` block and what budget alerts need, when the table has one.
    #[serde(default)]
    pub alerts: Option<KeyAlerts>,
    /// The request's money figures (cost, prompt-cache savings, response-cache hit) for the
    /// key's hourly money series (`route` is the request's route, unused here).
    #[serde(default)]
    pub money: Option<RouteRequest>,
}

/// What a settle carries for budget alerts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyAlerts {
    pub settings: AlertSettings,
    /// The key's id (the object's name).
    pub key: String,
    /// The key's limits as the caller knows them (the object's own record wins).
    pub limits: Limits,
}

#[derive(Default, Clone, Serialize, Deserialize)]
struct Inner {
    #[serde(default)]
    quota: Quota,
    #[serde(default)]
    stats: Stats,
    #[serde(default)]
    revoked: bool,
    /// Requests settled lately (see `SettleCall::request`).
    #[serde(default)]
    settled: RecentIds,
    /// Hourly money figures, 48 h (`state::route_stats::Figures`'s request figures).
    #[serde(default)]
    money: Hourly<Figures>,
}

#[durable_object]
pub struct KeyState {
    state: State,
    env: Env,
    /// Alerts waiting for the alarm to send them.
    alerts: Stored<Outbox>,
    inner: Stored<Inner>,
    record: Stored<StoredRecord>,
}

impl DurableObject for KeyState {
    fn new(state: State, env: Env) -> Self {
        KeyState {
            state,
            env,
            alerts: Stored::new("alerts"),
            inner: Stored::new("key"),
            record: Stored::new("record"),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let storage = self.state.storage();
        self.inner.load(&storage).await;
        self.record.load(&storage).await;
        self.alerts.load(&storage).await;
        let now = now_ms();
        let path = req.path();
        match (req.method(), path.as_str()) {
            (Method::Post, "/admit") => match body(&mut req).await {
                Ok(call) => self.admit(&storage, call, now).await,
                Err(e) => Response::error(e, 400),
            },
            (Method::Post, "/edit") => match body(&mut req).await {
                Ok(call) => self.edit(&storage, call).await,
                Err(e) => Response::error(e, 400),
            },
            (Method::Post, "/settle") => match body(&mut req).await {
                Ok(call) => self.settle(&storage, call, now).await,
                Err(e) => Response::error(e, 400),
            },
            (Method::Get, "/usage") => self.usage(now, hours_param(&req)),
            (Method::Post, "/revoke") => {
                let call: RevokeCall = body(&mut req).await.unwrap_or_default();
                self.revoke(&storage, call).await
            }
            _ => Response::error("not found", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        crate::worker::alerts::deliver(&self.env, &self.state.storage(), &self.alerts).await?;
        Response::ok("")
    }
}

impl KeyState {
    async fn admit(&self, storage: &Storage, call: AdmitCall, now: u64) -> Result<Response> {
        // The object's own record, when it has one, sets the limits (it is the copy
        // edits go through; the caller's may be stale).
        let limits = match self.record.with(|r| r.limits()) {
            Ok(own) => own.unwrap_or(call.limits),
            Err(_) => return json(&unreadable_reply()),
        };
        let reply = self.inner.with(|i| {
            if i.revoked {
                AdmitReply {
                    revoked: true,
                    admission: None,
                }
            } else if limits == Limits::default() {
                // Nothing to enforce or reserve: only revocation is checked.
                AdmitReply {
                    revoked: false,
                    admission: None,
                }
            } else {
                AdmitReply {
                    revoked: false,
                    admission: Some(i.quota.admit_until(
                        &call.id,
                        &limits,
                        call.estimate,
                        now,
                        call.until_ms,
                    )),
                }
            }
        });
        match reply {
            Ok(reply) => {
                if reply.admission.is_some() {
                    self.inner.save(storage).await?;
                }
                json(&reply)
            }
            // Fail closed: the key's budget and revocation cannot be checked.
            Err(_) => json(&unreadable_reply()),
        }
    }

    async fn edit(&self, storage: &Storage, call: EditCall) -> Result<Response> {
        let revoked = match self.inner.with(|i| i.revoked) {
            Ok(r) => r,
            Err(e) => return Response::error(e.to_string(), 503),
        };
        let reply = self.record.with(|r| {
            if call.if_rev.is_some_and(|want| want != r.rev) {
                return EditReply::Conflict { rev: r.rev };
            }
            let base = r.text.as_deref().unwrap_or(&call.seed);
            match apply_edit(base, &call.patch, revoked, r.rev + 1) {
                Ok(text) => {
                    r.rev += 1;
                    r.text = Some(text.clone());
                    EditReply::Saved {
                        record: text,
                        rev: r.rev,
                    }
                }
                Err(error) => EditReply::Invalid { error },
            }
        });
        match reply {
            Ok(reply) => {
                if matches!(reply, EditReply::Saved { .. }) {
                    self.record.save(storage).await?;
                }
                json(&reply)
            }
            Err(e) => Response::error(e.to_string(), 503),
        }
    }

    async fn settle(&self, storage: &Storage, call: SettleCall, now: u64) -> Result<Response> {
        let settled = self.inner.with(|i| {
            if let Some(request) = &call.request {
                if !i.settled.first_time(request, now) {
                    // A retry of a settle that was applied: its reply was lost.
                    let spend = i.quota.spend(now);
                    return (spend, spend);
                }
            }
            let before = i.quota.spend(now);
            match (&call.id, call.actual) {
                (Some(id), Some(actual)) => {
                    i.quota.settle(id, actual, now);
                }
                (Some(id), None) => {
                    i.quota.release(id, now);
                }
                (None, Some(actual)) => {
                    // Not admitted here (the key has no limits): still count the spend.
                    i.quota.settle("", actual, now);
                }
                (None, None) => {}
            }
            i.stats.record(&call.sample, now);
            if let Some(m) = &call.money {
                i.money.add(now, |f| f.add_request(m));
            }
            (before, i.quota.spend(now))
        });
        match settled {
            Ok((before, spend)) => {
                self.inner.save(storage).await?;
                if let Some(a) = &call.alerts {
                    self.budget_alerts(storage, a, before, spend, now).await?;
                }
                json(&spend)
            }
            Err(e) => Response::error(e.to_string(), 503),
        }
    }

    /// Queues an alert for each budget threshold the settle passed, and sets the alarm.
    async fn budget_alerts(
        &self,
        storage: &Storage,
        a: &KeyAlerts,
        before: Spend,
        after: Spend,
        now: u64,
    ) -> Result<()> {
        let limits = match self.record.with(|r| r.limits()) {
            Ok(Some(own)) => own,
            _ => a.limits,
        };
        let periods = [
            (
                "day",
                limits.budget_day_nanos,
                before.day_nanos,
                after.day_nanos,
            ),
            (
                "month",
                limits.budget_month_nanos,
                before.month_nanos,
                after.month_nanos,
            ),
        ];
        let mut raised = Vec::new();
        for (period, budget, was, is) in periods {
            let Some(budget) = budget else { continue };
            for pct in alerts::budget_crossings(was, is, budget) {
                raised.push(Alert {
                    event: alerts::Event::Budget,
                    subject: Subject::Key,
                    name: a.key.clone(),
                    scope: format!("{period}:{pct}"),
                    detail: format!(
                        "{pct}% of the {period} budget: spent {} of {} nano-USD",
                        is, budget
                    ),
                });
            }
        }
        if raised.is_empty() {
            return Ok(());
        }
        let queued = self.alerts.with(|o| {
            raised
                .into_iter()
                .fold(false, |any, alert| o.push(alert, &a.settings, now) | any)
        });
        if matches!(queued, Ok(true)) {
            self.alerts.save(storage).await?;
            crate::worker::alerts::schedule(storage, &self.alerts).await?;
        }
        Ok(())
    }

    /// The key's record, spend, usage, and its money figures over the last `hours` hours.
    fn usage(&self, now: u64, hours: u64) -> Result<Response> {
        // The record's copy here (None until the first edit through the object).
        let (record, rev) = self
            .record
            .with(|r| (r.text.clone(), r.rev))
            .unwrap_or_default();
        let record: serde_json::Value = record
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let errors: Vec<serde_json::Value> = [self.inner.problem(), self.record.problem()]
            .into_iter()
            .flatten()
            .collect();
        let body = match self.inner.with(|i| {
            let mut money = i.money.window(now, hours).requests_json();
            if let Some(o) = money.as_object_mut() {
                o.insert("hours".into(), hours.into());
            }
            (i.revoked, i.quota.spend(now), i.stats.to_json(now), money)
        }) {
            Ok((revoked, spend, usage, money)) => serde_json::json!({
                "revoked": revoked, "spend": spend, "usage": usage, "money": money,
                "record": record, "rev": rev, "state_errors": errors,
            }),
            Err(_) => serde_json::json!({
                "revoked": null, "spend": null, "usage": null, "money": null,
                "record": record, "rev": rev, "state_errors": errors,
            }),
        };
        json(&body)
    }

    async fn revoke(&self, storage: &Storage, call: RevokeCall) -> Result<Response> {
        // Revoking must work even over unreadable state (a copy of it is kept).
        self.inner.replace_unreadable(storage).await?;
        self.record.replace_unreadable(storage).await?;
        if let Err(e) = self.inner.with(|i| i.revoked = true) {
            return Response::error(e.to_string(), 503);
        }
        self.inner.save(storage).await?;
        let reply = self.record.with(|r| {
            let base = r.text.clone().or(call.seed.clone());
            let text =
                base.and_then(|b| apply_edit(&b, &serde_json::Map::new(), true, r.rev + 1).ok());
            if let Some(t) = &text {
                r.rev += 1;
                r.text = Some(t.clone());
            }
            RevokeReply {
                revoked: true,
                record: text,
                rev: r.rev,
            }
        });
        match reply {
            Ok(reply) => {
                self.record.save(storage).await?;
                json(&reply)
            }
            Err(e) => Response::error(e.to_string(), 503),
        }
    }
}

/// Admission refused because the key's stored state cannot be read (fail closed).
fn unreadable_reply() -> AdmitReply {
    AdmitReply {
        revoked: false,
        admission: Some(Admission::Denied {
            reason: Denial::StateUnreadable,
            retry_after_ms: 0,
            headroom: Headroom::default(),
        }),
    }
}
