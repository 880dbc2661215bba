//! `DeploymentState`: the Durable Object of one deployment. It owns the deployment's circuit
//! breaker and usage counters.
//!
//! Invariant: the in-memory copy is loaded from storage once and every change is written back
//! before the reply, and the runtime delivers one request at a time while a storage call is
//! pending (input gates), so the breaker's transitions are serial and survive restarts. The
//! breaker's settings travel with each call (they live in the routing table, not here).

use super::key::AdmitCall;
use super::{body, json, now_ms};
use crate::state::breaker::{Breaker, BreakerConfig, Report, View};
use crate::state::quota::{Actual, Quota};
use crate::state::stats::{Sample, Stats};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use worker::{durable_object, DurableObject, Env, Method, Request, Response, Result, State};

#[derive(Debug, Deserialize)]
pub struct ReportCall {
    pub config: BreakerConfig,
    #[serde(default)]
    pub reports: Vec<Report>,
    #[serde(default)]
    pub samples: Vec<Sample>,
    /// Rate-limit reservations to settle: (id, tokens used; None = release).
    #[serde(default)]
    pub settles: Vec<(String, Option<u64>)>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ProbeCall {
    pub config: BreakerConfig,
    pub force: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ProbeReply {
    pub granted: bool,
    pub view: View,
}

#[derive(Default)]
struct Inner {
    breaker: Breaker,
    stats: Stats,
    /// The deployment's own RPM/TPM window (only used when the table sets limits).
    quota: Quota,
}

#[durable_object]
pub struct DeploymentState {
    state: State,
    inner: RefCell<Option<Inner>>,
}

impl DeploymentState {
    async fn load(&self) -> Result<()> {
        if self.inner.borrow().is_some() {
            return Ok(());
        }
        let storage = self.state.storage();
        let breaker = storage.get::<Breaker>("breaker").await.ok().flatten();
        let stats = storage.get::<Stats>("stats").await.ok().flatten();
        let quota = storage.get::<Quota>("quota").await.ok().flatten();
        let mut slot = self.inner.borrow_mut();
        if slot.is_none() {
            *slot = Some(Inner {
                breaker: breaker.unwrap_or_default(),
                stats: stats.unwrap_or_default(),
                quota: quota.unwrap_or_default(),
            });
        }
        Ok(())
    }

    async fn save_quota(&self) -> Result<()> {
        let q = self.inner.borrow().as_ref().map(|i| i.quota.clone());
        if let Some(q) = q {
            self.state.storage().put("quota", q).await?;
        }
        Ok(())
    }

    async fn save(&self, breaker_changed: bool, stats_changed: bool) -> Result<()> {
        let (b, s) = {
            let slot = self.inner.borrow();
            let Some(inner) = slot.as_ref() else {
                return Ok(());
            };
            (
                breaker_changed.then(|| inner.breaker.clone()),
                stats_changed.then(|| inner.stats.clone()),
            )
        };
        let storage = self.state.storage();
        if let Some(b) = b {
            storage.put("breaker", b).await?;
        }
        if let Some(s) = s {
            storage.put("stats", s).await?;
        }
        Ok(())
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> Option<T> {
        self.inner.borrow_mut().as_mut().map(f)
    }
}

impl DurableObject for DeploymentState {
    fn new(state: State, _env: Env) -> Self {
        DeploymentState {
            state,
            inner: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        self.load().await?;
        let now = now_ms();
        let path = req.path();
        match (req.method(), path.as_str()) {
            (Method::Post, "/report") => {
                let call: ReportCall = match body(&mut req).await {
                    Ok(c) => c,
                    Err(e) => return Response::error(e, 400),
                };
                let before = self.with(|i| i.breaker.clone());
                let view = self.with(|i| {
                    for r in &call.reports {
                        i.breaker.record(&call.config, *r, now);
                    }
                    for s in &call.samples {
                        i.stats.record(s, now);
                    }
                    for (id, tokens) in &call.settles {
                        match tokens {
                            Some(t) => {
                                let actual = Actual {
                                    tokens: *t,
                                    cost_nanos: 0,
                                };
                                i.quota.settle(id, actual, now);
                            }
                            None => {
                                i.quota.release(id, now);
                            }
                        }
                    }
                    i.breaker.view(now)
                });
                let changed = self
                    .with(|i| Some(&i.breaker) != before.as_ref())
                    .unwrap_or(false);
                self.save(changed, !call.samples.is_empty()).await?;
                if !call.settles.is_empty() {
                    self.save_quota().await?;
                }
                json(&view.unwrap_or(View::Closed))
            }
            (Method::Post, "/probe") => {
                let call: ProbeCall = match body(&mut req).await {
                    Ok(c) => c,
                    Err(e) => return Response::error(e, 400),
                };
                let reply = self.with(|i| ProbeReply {
                    granted: i.breaker.acquire_probe(&call.config, call.force, now),
                    view: i.breaker.view(now),
                });
                self.save(true, false).await?;
                json(&reply)
            }
            (Method::Get, "/state") => {
                let state = self.with(|i| {
                    serde_json::json!({
                        "view": i.breaker.view(now),
                        "breaker": i.breaker,
                        "usage": i.stats.to_json(now),
                    })
                });
                json(&state)
            }
            (Method::Post, "/admit") => {
                let call: AdmitCall = match body(&mut req).await {
                    Ok(c) => c,
                    Err(e) => return Response::error(e, 400),
                };
                let admission =
                    self.with(|i| i.quota.admit(&call.id, &call.limits, call.estimate, now));
                self.save_quota().await?;
                json(&admission)
            }
            (Method::Get, "/view") => json(&self.with(|i| i.breaker.view(now))),
            (Method::Post, "/reset") => {
                let view = self.with(|i| {
                    i.breaker.reset();
                    i.breaker.view(now)
                });
                self.save(true, false).await?;
                json(&view)
            }
            (Method::Post, "/force_open") => {
                let view = self.with(|i| {
                    i.breaker.force_open(now);
                    i.breaker.view(now)
                });
                self.save(true, false).await?;
                json(&view)
            }
            _ => Response::error("not found", 404),
        }
    }
}
