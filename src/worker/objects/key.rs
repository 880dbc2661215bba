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

use super::stored::Stored;
use super::{body, json, now_ms};
use crate::state::quota::{Actual, Admission, Denial, Estimate, Headroom, Limits, Quota};
use crate::state::stats::{Sample, Stats};
use serde::{Deserialize, Serialize};
use worker::{durable_object, DurableObject, Env, Method, Request, Response, Result, State};

#[derive(Debug, Serialize, Deserialize)]
pub struct AdmitCall {
    pub id: String,
    pub limits: Limits,
    pub estimate: Estimate,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AdmitReply {
    #[serde(default)]
    pub revoked: bool,
    pub admission: Option<Admission>,
}

/// The end of a request: settle its reservation (or release it when nothing was billed) and
/// record its usage.
#[derive(Debug, Serialize, Deserialize)]
pub struct SettleCall {
    /// Reservation id; None when the request was not admitted through this object.
    pub id: Option<String>,
    pub actual: Option<Actual>,
    pub sample: Sample,
}

#[derive(Default, Clone, Serialize, Deserialize)]
struct Inner {
    #[serde(default)]
    quota: Quota,
    #[serde(default)]
    stats: Stats,
    #[serde(default)]
    revoked: bool,
}

#[durable_object]
pub struct KeyState {
    state: State,
    inner: Stored<Inner>,
}

impl DurableObject for KeyState {
    fn new(state: State, _env: Env) -> Self {
        KeyState {
            state,
            inner: Stored::new("key"),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let storage = self.state.storage();
        self.inner.load(&storage).await;
        let now = now_ms();
        let path = req.path();
        match (req.method(), path.as_str()) {
            (Method::Post, "/admit") => {
                let call: AdmitCall = match body(&mut req).await {
                    Ok(c) => c,
                    Err(e) => return Response::error(e, 400),
                };
                let reply = self.inner.with(|i| {
                    if i.revoked {
                        AdmitReply {
                            revoked: true,
                            admission: None,
                        }
                    } else {
                        AdmitReply {
                            revoked: false,
                            admission: Some(i.quota.admit(
                                &call.id,
                                &call.limits,
                                call.estimate,
                                now,
                            )),
                        }
                    }
                });
                match reply {
                    Ok(reply) => {
                        self.inner.save(&storage).await?;
                        json(&reply)
                    }
                    // Fail closed: the key's budget and revocation cannot be checked.
                    Err(_) => json(&AdmitReply {
                        revoked: false,
                        admission: Some(Admission::Denied {
                            reason: Denial::StateUnreadable,
                            retry_after_ms: 0,
                            headroom: Headroom::default(),
                        }),
                    }),
                }
            }
            (Method::Post, "/settle") => {
                let call: SettleCall = match body(&mut req).await {
                    Ok(c) => c,
                    Err(e) => return Response::error(e, 400),
                };
                let settled = self.inner.with(|i| {
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
                    i.quota.spend(now)
                });
                match settled {
                    Ok(spend) => {
                        self.inner.save(&storage).await?;
                        json(&spend)
                    }
                    Err(e) => Response::error(e.to_string(), 503),
                }
            }
            (Method::Get, "/usage") => match self.inner.with(|i| {
                serde_json::json!({
                    "revoked": i.revoked,
                    "spend": i.quota.spend(now),
                    "usage": i.stats.to_json(now),
                    "state_errors": [],
                })
            }) {
                Ok(v) => json(&v),
                Err(_) => json(&serde_json::json!({
                    "revoked": null,
                    "spend": null,
                    "usage": null,
                    "state_errors": [self.inner.problem()],
                })),
            },
            (Method::Post, "/revoke") => {
                // Revoking must work even over unreadable state (a copy of it is kept).
                self.inner.replace_unreadable(&storage).await?;
                match self.inner.with(|i| i.revoked = true) {
                    Ok(()) => {
                        self.inner.save(&storage).await?;
                        json(&serde_json::json!({"revoked": true}))
                    }
                    Err(e) => Response::error(e.to_string(), 503),
                }
            }
            _ => Response::error("not found", 404),
        }
    }
}
