//! `DeploymentState`: the Durable Object of one deployment. It owns the deployment's circuit
//! breaker, its usage counters and its own RPM/TPM window.
//!
//! Invariant: every change is written back before the reply (see `Stored`), so the breaker's
//! transitions are serial and survive restarts. The breaker's settings travel with each call
//! (they live in the routing table, not here).

use super::key::AdmitCall;
use super::stored::Stored;
use super::{body, json, now_ms};
use crate::state::breaker::{Breaker, BreakerConfig, Report, View};
use crate::state::quota::{Actual, Quota};
use crate::state::speed::Speed;
use crate::state::stats::{Sample, Stats};
use serde::{Deserialize, Serialize};
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

/// The reply to a report: the breaker's view and the deployment's measured speed, which the
/// isolate keeps in its snapshot.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ReportReply {
    pub view: View,
    #[serde(default)]
    pub speed: Speed,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ProbeReply {
    pub granted: bool,
    pub view: View,
}

#[durable_object]
pub struct DeploymentState {
    state: State,
    breaker: Stored<Breaker>,
    stats: Stored<Stats>,
    speed: Stored<Speed>,
    /// Only used when the table sets limits for this deployment.
    quota: Stored<Quota>,
}

impl DeploymentState {
    async fn report(&self, call: ReportCall, now: u64) -> Result<Response> {
        let storage = self.state.storage();
        let (changed, view) = self.breaker.with(|b| {
            let before = b.clone();
            for r in &call.reports {
                b.record(&call.config, *r, now);
            }
            (*b != before, b.view(now))
        });
        if changed {
            self.breaker.save(&storage).await?;
        }
        if !call.samples.is_empty() {
            self.stats.with(|s| {
                for sample in &call.samples {
                    s.record(sample, now);
                }
            });
            self.stats.save(&storage).await?;
            self.speed.with(|s| {
                for sample in &call.samples {
                    s.record(sample);
                }
            });
            self.speed.save(&storage).await?;
        }
        if !call.settles.is_empty() {
            self.quota.with(|q| {
                for (id, tokens) in &call.settles {
                    match tokens {
                        Some(t) => {
                            let actual = Actual {
                                tokens: *t,
                                cost_nanos: 0,
                            };
                            q.settle(id, actual, now);
                        }
                        None => {
                            q.release(id, now);
                        }
                    }
                }
            });
            self.quota.save(&storage).await?;
        }
        json(&ReportReply {
            view,
            speed: self.speed.with(|s| *s),
        })
    }

    /// Runs `f` on the breaker, saves it, and replies with its view.
    async fn breaker_change(&self, f: impl FnOnce(&mut Breaker), now: u64) -> Result<Response> {
        let view = self.breaker.with(|b| {
            f(b);
            b.view(now)
        });
        self.breaker.save(&self.state.storage()).await?;
        json(&view)
    }
}

impl DurableObject for DeploymentState {
    fn new(state: State, _env: Env) -> Self {
        DeploymentState {
            state,
            breaker: Stored::new("breaker"),
            stats: Stored::new("stats"),
            speed: Stored::new("speed"),
            quota: Stored::new("quota"),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let storage = self.state.storage();
        self.breaker.load(&storage).await;
        self.stats.load(&storage).await;
        self.speed.load(&storage).await;
        self.quota.load(&storage).await;
        let now = now_ms();
        let path = req.path();
        match (req.method(), path.as_str()) {
            (Method::Post, "/report") => match body::<ReportCall>(&mut req).await {
                Ok(call) => self.report(call, now).await,
                Err(e) => Response::error(e, 400),
            },
            (Method::Post, "/probe") => {
                let call: ProbeCall = match body(&mut req).await {
                    Ok(c) => c,
                    Err(e) => return Response::error(e, 400),
                };
                let reply = self.breaker.with(|b| ProbeReply {
                    granted: b.acquire_probe(&call.config, call.force, now),
                    view: b.view(now),
                });
                self.breaker.save(&storage).await?;
                json(&reply)
            }
            (Method::Post, "/admit") => {
                let call: AdmitCall = match body(&mut req).await {
                    Ok(c) => c,
                    Err(e) => return Response::error(e, 400),
                };
                let admission = self
                    .quota
                    .with(|q| q.admit(&call.id, &call.limits, call.estimate, now));
                self.quota.save(&storage).await?;
                json(&admission)
            }
            (Method::Get, "/state") => {
                let breaker = self.breaker.with(|b| b.clone());
                let usage = self.stats.with(|s| s.to_json(now));
                json(&serde_json::json!({
                    "view": breaker.view(now),
                    "breaker": breaker,
                    "usage": usage,
                    "speed": self.speed.with(|s| *s),
                }))
            }
            (Method::Get, "/view") => json(&self.breaker.with(|b| b.view(now))),
            (Method::Post, "/reset") => self.breaker_change(Breaker::reset, now).await,
            (Method::Post, "/force_open") => self.breaker_change(|b| b.force_open(now), now).await,
            _ => Response::error("not found", 404),
        }
    }
}
