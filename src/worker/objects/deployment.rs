//! `DeploymentState`: the Durable Object of one deployment. It owns the deployment's circuit
//! breaker, its usage counters and its own RPM/TPM window.
//!
//! Invariant: every change is written back before the reply (see `Stored`), so the breaker's
//! transitions are serial and survive restarts. The breaker's settings travel with each call
//! (they live in the routing table, not here). Unreadable state fails closed and is never
//! overwritten except by an operator's reset or kill: an unreadable breaker answers
//! `forced_open` (a kill switch it may have held stays on), an unreadable rate-limit window
//! refuses admission; unreadable usage counters only stop recording.

use super::key::AdmitCall;
use super::stored::Stored;
use super::{body, json, now_ms};
use crate::state::breaker::{Breaker, BreakerConfig, Report, View};

/// How long a deployment whose rate-limit state is unreadable is skipped before it is asked again.
const UNREADABLE_RETRY_MS: u64 = 30_000;
use crate::state::degradation::{Degradation, DegradeConfig, Reason};
use crate::state::quota::{Actual, Admission, Denial, Headroom, Quota};
use crate::state::speed::Speed;
use crate::state::stats::{Sample, Stats};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{durable_object, DurableObject, Env, Method, Request, Response, Result, State};

#[derive(Debug, Deserialize)]
pub struct ReportCall {
    pub config: BreakerConfig,
    #[serde(default)]
    pub degradation: DegradeConfig,
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
    /// Why the deployment is degraded, if it is (`state::degradation`).
    #[serde(default)]
    pub degraded: Option<Reason>,
    /// Its measured p95 time to first token (p95 hedges).
    #[serde(default)]
    pub ttft_p95_ms: Option<u64>,
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
    degradation: Stored<Degradation>,
    /// Only used when the table sets limits for this deployment.
    quota: Stored<Quota>,
}

impl DeploymentState {
    async fn report(&self, call: ReportCall, now: u64) -> Result<Response> {
        let storage = self.state.storage();
        let recorded = self.breaker.with(|b| {
            let before = b.clone();
            for r in &call.reports {
                b.record(&call.config, *r, now);
            }
            (*b != before, b.view(now))
        });
        let view = match recorded {
            Ok((changed, view)) => {
                if changed {
                    self.breaker.save(&storage).await?;
                }
                view
            }
            Err(_) => View::ForcedOpen,
        };
        if !call.samples.is_empty() {
            let stats = self.stats.with(|s| {
                for sample in &call.samples {
                    s.record(sample, now);
                }
            });
            if stats.is_ok() {
                self.stats.save(&storage).await?;
            }
            let speed = self.speed.with(|s| {
                for sample in &call.samples {
                    s.record(sample);
                }
            });
            if speed.is_ok() {
                self.speed.save(&storage).await?;
            }
        }
        let degraded = self.degradation.with(|d| {
            let before = d.clone();
            for sample in &call.samples {
                d.record(&call.degradation, sample, now);
            }
            let verdict = d.update(&call.degradation, now);
            (verdict, d.ttft_p95_ms(&call.degradation, now), *d != before)
        });
        let (degraded, ttft_p95_ms) = match degraded {
            Ok((verdict, p95, changed)) => {
                if changed {
                    self.degradation.save(&storage).await?;
                }
                (verdict, p95)
            }
            Err(_) => (None, None),
        };
        if !call.settles.is_empty() {
            let settled = self.quota.with(|q| {
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
            if settled.is_ok() {
                self.quota.save(&storage).await?;
            }
        }
        json(&ReportReply {
            view,
            speed: self.speed.with(|s| *s).unwrap_or_default(),
            degraded,
            ttft_p95_ms,
        })
    }

    /// An operator's reset or kill: replaces unreadable breaker state (keeping a copy), runs
    /// `f` on the breaker, saves it, and replies with its view.
    async fn breaker_change(&self, f: impl FnOnce(&mut Breaker), now: u64) -> Result<Response> {
        let storage = self.state.storage();
        self.breaker.replace_unreadable(&storage).await?;
        let view = self.breaker.with(|b| {
            f(b);
            b.view(now)
        });
        match view {
            Ok(view) => {
                self.breaker.save(&storage).await?;
                json(&view)
            }
            Err(e) => Response::error(e.to_string(), 503),
        }
    }

    /// The breaker's view; `forced_open` when its state cannot be read.
    fn view(&self, now: u64) -> View {
        self.breaker
            .with(|b| b.view(now))
            .unwrap_or(View::ForcedOpen)
    }

    fn problems(&self) -> Vec<Value> {
        [
            self.breaker.problem(),
            self.stats.problem(),
            self.speed.problem(),
            self.degradation.problem(),
            self.quota.problem(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

impl DurableObject for DeploymentState {
    fn new(state: State, _env: Env) -> Self {
        DeploymentState {
            state,
            breaker: Stored::new("breaker"),
            stats: Stored::new("stats"),
            speed: Stored::new("speed"),
            degradation: Stored::new("degradation"),
            quota: Stored::new("quota"),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let storage = self.state.storage();
        self.breaker.load(&storage).await;
        self.stats.load(&storage).await;
        self.speed.load(&storage).await;
        self.degradation.load(&storage).await;
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
                match reply {
                    Ok(reply) => {
                        self.breaker.save(&storage).await?;
                        json(&reply)
                    }
                    Err(_) => json(&ProbeReply {
                        granted: false,
                        view: View::ForcedOpen,
                    }),
                }
            }
            (Method::Post, "/admit") => {
                let call: AdmitCall = match body(&mut req).await {
                    Ok(c) => c,
                    Err(e) => return Response::error(e, 400),
                };
                let admission = self
                    .quota
                    .with(|q| q.admit(&call.id, &call.limits, call.estimate, now));
                match admission {
                    Ok(admission) => {
                        self.quota.save(&storage).await?;
                        json(&admission)
                    }
                    Err(_) => json(&Admission::Denied {
                        reason: Denial::StateUnreadable,
                        retry_after_ms: UNREADABLE_RETRY_MS,
                        headroom: Headroom::default(),
                    }),
                }
            }
            (Method::Get, "/state") => {
                let breaker = self.breaker.with(|b| b.clone()).ok();
                let usage = self.stats.with(|s| s.to_json(now)).unwrap_or(Value::Null);
                json(&serde_json::json!({
                    "view": self.view(now),
                    "breaker": breaker,
                    "usage": usage,
                    "speed": self.speed.with(|s| *s).unwrap_or_default(),
                    "degradation": self.degradation.with(|d| d.to_json(now)).unwrap_or(Value::Null),
                    "state_errors": self.problems(),
                }))
            }
            (Method::Get, "/view") => json(&self.view(now)),
            (Method::Post, "/reset") => self.breaker_change(Breaker::reset, now).await,
            (Method::Post, "/force_open") => self.breaker_change(|b| b.force_open(now), now).await,
            _ => Response::error("not found", 404),
        }
    }
}
