//! `DeploymentState`: the Durable Object of one deployment. It owns the deployment's circuit
//! breaker, its usage counters, the hourly figures of the routes that sent it traffic
//! (`state::route_stats`, read by `GET /routes?hours=H`) and its own RPM/TPM window.
//!
//! Invariant: every change is written back before the reply (see `Stored`), so the breaker's
//! transitions are serial and survive restarts. The breaker's settings travel with each call
//! (they live in the routing table, not here). Unreadable state fails closed and is never
//! overwritten except by an operator's reset or kill: an unreadable breaker answers
//! `forced_open` (a kill switch it may have held stays on), an unreadable rate-limit window
//! refuses admission; unreadable usage counters only stop recording.
//!
//! Alerts (`state::alerts`): a report that moves the breaker (opened, closed) or the
//! degradation verdict queues an alert here, deduplicated per window, and sets the object's
//! alarm; the alarm sends it (`worker::alerts`), never the report's handler.

use super::key::AdmitCall;
use super::stored::Stored;
use super::{body, hours_param, json, now_ms};
use crate::state::alerts::{self, Alert, AlertSettings, Outbox, Subject};
use crate::state::alerts_fallback::RouteFallbacks;
use crate::state::breaker::{Breaker, BreakerConfig, Phase, Report, View};

/// How long a deployment whose rate-limit state is unreadable is skipped before it is asked again.
const UNREADABLE_RETRY_MS: u64 = 30_000;
use crate::state::degradation::{Degradation, DegradeConfig, HedgeWait, Reason};
use crate::state::quota::{Actual, Admission, Denial, Headroom, Quota};
use crate::state::route_stats::{RouteAttempt, RouteRequest, RouteStats};
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
    /// First attempts cancelled by their hedge, and how long they waited (lower bounds).
    #[serde(default)]
    pub hedge_waits: Vec<HedgeWait>,
    /// Rate-limit reservations to settle: (id, tokens used; None = release).
    #[serde(default)]
    pub settles: Vec<(String, Option<u64>)>,
    /// The table's `alerts` block, when it has one.
    #[serde(default)]
    pub alerts: Option<AlertSettings>,
    /// This deployment's name (for the alerts' text).
    #[serde(default)]
    pub name: Option<String>,
    /// Requests of routes whose first deployment this is: (route, fell back).
    #[serde(default)]
    pub routes: Vec<(String, bool)>,
    /// Per-route statistics (`state::route_stats`): the requests this object counts (see
    /// where in `route_stats`), and this deployment's attempts.
    #[serde(default)]
    pub route_requests: Vec<RouteRequest>,
    #[serde(default)]
    pub route_attempts: Vec<RouteAttempt>,
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
    /// Its measured p95 time to first token of streams, and to the whole answer of the
    /// others (p95 hedges).
    #[serde(default)]
    pub ttft_p95_ms: Option<u64>,
    #[serde(default)]
    pub answer_p95_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ProbeReply {
    pub granted: bool,
    pub view: View,
}

#[durable_object]
pub struct DeploymentState {
    state: State,
    env: Env,
    /// Alerts waiting for the alarm to send them.
    alerts: Stored<Outbox>,
    /// Fallback ratios of the routes this deployment is first in (`alerts.fallback_ratio`).
    fallbacks: Stored<RouteFallbacks>,
    breaker: Stored<Breaker>,
    stats: Stored<Stats>,
    /// Hourly figures of the routes that sent this deployment traffic (`state::route_stats`).
    route_stats: Stored<RouteStats>,
    speed: Stored<Speed>,
    degradation: Stored<Degradation>,
    /// Only used when the table sets limits for this deployment.
    quota: Stored<Quota>,
}

impl DeploymentState {
    async fn report(&self, call: ReportCall, now: u64) -> Result<Response> {
        let storage = self.state.storage();
        let mut raised: Vec<(alerts::Event, String)> = Vec::new();
        let recorded = self.breaker.with(|b| {
            let before = b.clone();
            for r in &call.reports {
                b.record(&call.config, *r, now);
            }
            let edge = alerts::breaker_edge(&before.phase, &b.phase);
            (
                *b != before,
                b.view(now),
                edge.map(|e| (e, phase_name(&b.phase))),
            )
        });
        let view = match recorded {
            Ok((changed, view, edge)) => {
                if changed {
                    self.breaker.save(&storage).await?;
                }
                raised.extend(edge);
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
        }
        if !call.samples.is_empty() || !call.hedge_waits.is_empty() {
            let speed = self.speed.with(|s| {
                for sample in &call.samples {
                    s.record(sample);
                }
                for w in &call.hedge_waits {
                    s.record_hedge_wait(*w);
                }
            });
            if speed.is_ok() {
                self.speed.save(&storage).await?;
            }
        }
        if !call.route_requests.is_empty() || !call.route_attempts.is_empty() {
            let recorded = self.route_stats.with(|r| {
                for q in &call.route_requests {
                    r.record_request(q, now);
                }
                for a in &call.route_attempts {
                    r.record_attempt(a, now);
                }
            });
            if recorded.is_ok() {
                self.route_stats.save(&storage).await?;
            }
        }
        let degraded = self.degradation.with(|d| {
            let before = d.clone();
            for sample in &call.samples {
                d.record(&call.degradation, sample, now);
            }
            for w in &call.hedge_waits {
                d.record_hedge_wait(&call.degradation, *w, now);
            }
            let verdict = d.update(&call.degradation, now);
            let edge = alerts::degradation_edge(before.current(), verdict);
            let p95 = (
                d.hedge_p95_ms(&call.degradation, true, now),
                d.hedge_p95_ms(&call.degradation, false, now),
            );
            (verdict, p95, *d != before, edge)
        });
        let (degraded, (ttft_p95_ms, answer_p95_ms)) = match degraded {
            Ok((verdict, p95, changed, edge)) => {
                if changed {
                    self.degradation.save(&storage).await?;
                }
                raised.extend(edge);
                (verdict, p95)
            }
            Err(_) => (None, (None, None)),
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
        if let Some(settings) = &call.alerts {
            let name = call.name.clone().unwrap_or_default();
            let mut queue: Vec<Alert> = raised
                .into_iter()
                .map(|(event, detail)| Alert {
                    event,
                    subject: Subject::Deployment,
                    name: name.clone(),
                    scope: String::new(),
                    detail,
                })
                .collect();
            queue.extend(
                self.route_fallbacks(&storage, settings, &call.routes, now)
                    .await?,
            );
            if !queue.is_empty() {
                self.raise(&storage, settings, queue, now).await?;
            }
        }
        json(&ReportReply {
            view,
            speed: self.speed.with(|s| *s).unwrap_or_default(),
            degraded,
            ttft_p95_ms,
            answer_p95_ms,
        })
    }

    /// Queues the deployment's alerts and sets the alarm that sends them.
    async fn raise(
        &self,
        storage: &worker::Storage,
        settings: &AlertSettings,
        raised: Vec<Alert>,
        now: u64,
    ) -> Result<()> {
        let queued = self.alerts.with(|o| {
            raised
                .into_iter()
                .fold(false, |any, alert| o.push(alert, settings, now) | any)
        });
        if matches!(queued, Ok(true)) {
            self.alerts.save(storage).await?;
            crate::worker::alerts::schedule(storage, &self.alerts).await?;
        }
        Ok(())
    }

    /// Counts the routes' requests; an alert for each route whose fallback ratio over the
    /// window passed the threshold.
    async fn route_fallbacks(
        &self,
        storage: &worker::Storage,
        settings: &AlertSettings,
        routes: &[(String, bool)],
        now: u64,
    ) -> Result<Vec<Alert>> {
        if routes.is_empty() || !settings.events.fallback_ratio {
            return Ok(Vec::new());
        }
        let window = settings.window_ms;
        let passed = self.fallbacks.with(|f| {
            for (route, fell_back) in routes {
                f.record(route, *fell_back, now, window);
            }
            let mut names: Vec<&String> = routes.iter().map(|(r, _)| r).collect();
            names.sort();
            names.dedup();
            names
                .into_iter()
                .filter_map(|route| {
                    let (fallbacks, requests) = f.ratio(route, now, window);
                    alerts::fallback_ratio_passed(fallbacks, requests, settings.fallback_ratio_bps)
                        .then(|| Alert {
                            event: alerts::Event::FallbackRatio,
                            subject: Subject::Route,
                            name: route.clone(),
                            scope: String::new(),
                            detail: format!(
                                "{fallbacks} of {requests} requests fell back in the last {} s (threshold {}%)",
                                window / 1_000,
                                settings.fallback_ratio_bps / 100
                            ),
                        })
                })
                .collect::<Vec<_>>()
        });
        match passed {
            Ok(passed) => {
                self.fallbacks.save(storage).await?;
                Ok(passed)
            }
            Err(_) => Ok(Vec::new()),
        }
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
            self.route_stats.problem(),
            self.speed.problem(),
            self.degradation.problem(),
            self.quota.problem(),
            self.alerts.problem(),
            self.fallbacks.problem(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

impl DurableObject for DeploymentState {
    fn new(state: State, env: Env) -> Self {
        DeploymentState {
            state,
            env,
            alerts: Stored::new("alerts"),
            fallbacks: Stored::new("route_fallbacks"),
            breaker: Stored::new("breaker"),
            stats: Stored::new("stats"),
            route_stats: Stored::new("route_stats"),
            speed: Stored::new("speed"),
            degradation: Stored::new("degradation"),
            quota: Stored::new("quota"),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let storage = self.state.storage();
        self.breaker.load(&storage).await;
        self.stats.load(&storage).await;
        self.route_stats.load(&storage).await;
        self.speed.load(&storage).await;
        self.degradation.load(&storage).await;
        self.quota.load(&storage).await;
        self.alerts.load(&storage).await;
        self.fallbacks.load(&storage).await;
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
            // Each route's figures over the last `hours` hours (`RouteStats::window`).
            (Method::Get, "/routes") => {
                match self.route_stats.with(|r| r.window(now, hours_param(&req))) {
                    Ok(window) => json(&window),
                    Err(e) => Response::error(e.to_string(), 503),
                }
            }
            (Method::Post, "/reset") => self.breaker_change(Breaker::reset, now).await,
            (Method::Post, "/force_open") => self.breaker_change(|b| b.force_open(now), now).await,
            _ => Response::error("not found", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        crate::worker::alerts::deliver(&self.env, &self.state.storage(), &self.alerts).await?;
        Response::ok("")
    }
}

/// The breaker's phase, for an alert's detail.
fn phase_name(p: &Phase) -> String {
    match p {
        Phase::Closed => "closed",
        Phase::Open { .. } => "open",
        Phase::HalfOpen { .. } => "half_open",
        Phase::ForcedOpen => "forced_open",
    }
    .to_string()
}
