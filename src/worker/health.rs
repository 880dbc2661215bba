//! The engine's `Health` port over the per-deployment Durable Objects.
//!
//! Consistency, and why: a request must not wait on a Durable Object just to learn breaker
//! state (DESIGN invariant 4), so each isolate keeps a snapshot of every breaker it has seen,
//! refreshed from the objects' replies (kept in `snapshot`):
//! - every report (sent after the request through `wait_until`, batched per isolate: see
//!   `outbox`) returns the breaker's view;
//! - a snapshot older than `SNAPSHOT_TTL_MS` is still used, and refreshed in the background;
//! - only a deployment this isolate has never seen is read with a wait (once per isolate);
//! - only a would-be half-open probe waits, to ask the object for the lease.
//!
//! So an isolate may keep sending to a breaker another isolate just opened until its next
//! report or refresh returns: at most the requests it starts within one reply's round trip
//! (or `SNAPSHOT_TTL_MS`, if it sends nothing to that deployment) after the trip. If an object
//! cannot be reached, the gateway fails open (breaker treated as closed, probe granted):
//! availability first, the object is advisory for routing.

use super::background::Background;
use super::objects::key::AdmitCall;
use super::objects::{self, deployment::ProbeCall, deployment::ProbeReply, DEPLOYMENTS};
use super::outbox::{self, Batch};
use super::snapshot::{cached, remember, remember_headroom, SNAPSHOT_TTL_MS};
use crate::config::{Deployment, RoutingTable};
use crate::engine::{CacheStatus, Health, Meta};
use crate::resilience::ErrorClass;
use crate::state::breaker::{Report, View};
use crate::state::degradation::HedgeWait;
use crate::state::quota::{Admission, Estimate, Limits};
use crate::state::route_stats::{RouteAttempt, RouteRequest};
use crate::state::stats::Sample;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use worker::Env;

pub struct DoHealth {
    env: Env,
    ctx: Rc<dyn Background>,
    table: Rc<RoutingTable>,
    /// Reports not yet sent, by deployment name.
    pending: RefCell<Vec<(String, Report)>>,
    samples: RefCell<Vec<(String, Sample)>>,
    /// First attempts cancelled by their hedge: (deployment, the wait, a lower bound).
    hedge_waits: RefCell<Vec<(String, HedgeWait)>>,
    /// Rate-limit reservations to settle: (deployment, id, tokens).
    settles: RefCell<Vec<(String, String, Option<u64>)>>,
    /// Route outcomes for alerts: (the route's first deployment, route, fell back).
    routes: RefCell<Vec<(String, String, bool)>>,
    /// Per-route statistics: (the object that counts the request, its figures: see
    /// `request_home`).
    route_requests: RefCell<Vec<(String, RouteRequest)>>,
    /// Per-route statistics: (the attempt's deployment, the attempt).
    route_attempts: RefCell<Vec<(String, RouteAttempt)>>,
    waited: Cell<u32>,
    background: Cell<u32>,
}

impl DoHealth {
    pub fn new(env: Env, ctx: Rc<dyn Background>, table: Rc<RoutingTable>) -> Self {
        DoHealth {
            env,
            ctx,
            table,
            pending: RefCell::new(Vec::new()),
            samples: RefCell::new(Vec::new()),
            hedge_waits: RefCell::new(Vec::new()),
            settles: RefCell::new(Vec::new()),
            routes: RefCell::new(Vec::new()),
            route_requests: RefCell::new(Vec::new()),
            route_attempts: RefCell::new(Vec::new()),
            waited: Cell::new(0),
            background: Cell::new(0),
        }
    }

    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    /// (calls waited on, calls sent in the background) so far.
    pub fn calls(&self) -> (u32, u32) {
        (self.waited.get(), self.background.get())
    }

    /// Counts a background call made for this request by someone else (the key's settle).
    pub fn count_background(&self) {
        self.background.set(self.background.get() + 1);
    }

    /// Queues one usage sample per attempt of a finished request, and its route figures;
    /// returns those figures (the key's settle carries them too).
    pub fn add_samples(&self, meta: &Meta) -> RouteRequest {
        let now = objects::now_ms();
        let last = if meta.deployment.is_some() {
            meta.attempts
                .iter()
                .rposition(|a| a.class.is_none())
                .unwrap_or(usize::MAX)
        } else {
            usize::MAX
        };
        let fallback = meta.fell_back();
        self.add_route_outcome(meta, fallback);
        let figures = self.request_figures(meta);
        if let Some(home) = self.request_home(meta) {
            self.route_requests
                .borrow_mut()
                .push((home, figures.clone()));
        }
        self.hedge_waits
            .borrow_mut()
            .extend(meta.hedge_waits.iter().map(|(d, waited_ms)| {
                let wait = HedgeWait {
                    stream: meta.stream,
                    waited_ms: *waited_ms,
                };
                (d.clone(), wait)
            }));
        let mut samples = self.samples.borrow_mut();
        let mut route_attempts = self.route_attempts.borrow_mut();
        let known_route = self.table.route(&meta.route).is_some();
        // Each billed failed attempt's prompt goes to its own deployment, in attempt order;
        // the answer's deployment gets the rest of the request's cost.
        let mut billed = meta.failed_prompts.iter().peekable();
        let answer_cost = meta
            .cost_nanos
            .unwrap_or(0)
            .saturating_sub(meta.failed_prompts_nanos());
        for (i, a) in meta.attempts.iter().enumerate() {
            let answered = i == last && a.class.is_none() && meta.deployment.is_some();
            // A committed stream's attempt record ends at its first content chunk.
            let (ttft_ms, latency_ms) = if answered && meta.stream {
                (Some(a.duration_ms), now.saturating_sub(a.started_ms))
            } else {
                (None, a.duration_ms)
            };
            let usage = if answered { meta.usage } else { None };
            let sample = Sample {
                ok: a.class.is_none(),
                fallback: answered && fallback,
                input_tokens: usage.map_or(0, |u| u.prompt_tokens),
                output_tokens: usage.map_or(0, |u| u.completion_tokens),
                cost_nanos: if answered {
                    answer_cost
                } else if a.class.is_some_and(ErrorClass::billed_by_provider) {
                    billed
                        .next_if(|(d, _)| *d == a.deployment)
                        .map_or(0, |(_, n)| *n)
                } else {
                    0
                },
                latency_ms,
                ttft_ms,
                timeout: a.class.is_some_and(ErrorClass::is_timeout),
                client_fault: a.class.is_some_and(ErrorClass::is_client_fault),
            };
            if known_route {
                route_attempts.push((
                    a.deployment.clone(),
                    RouteAttempt {
                        route: meta.route.clone(),
                        ok: sample.ok,
                        latency_ms: sample.latency_ms,
                        cost_nanos: sample.cost_nanos,
                    },
                ));
            }
            samples.push((a.deployment.clone(), sample));
        }
        figures
    }

    /// The deployment whose object counts a request's route figures (`state::route_stats`):
    /// the one that answered, else the last one tried (both get this request's reports anyway,
    /// so no call is added that the subrequest budget did not plan for); only a request that
    /// tried none (a response-cache hit, every deployment skipped) is counted in the route's
    /// first deployment's object. None for a request without a known route.
    fn request_home(&self, meta: &Meta) -> Option<String> {
        let route = self.table.route(&meta.route)?;
        meta.deployment
            .clone()
            .or_else(|| meta.attempts.last().map(|a| a.deployment.clone()))
            .or_else(|| {
                route
                    .chain
                    .steps()
                    .first()
                    .and_then(|s| self.table.deployment(s.deployment))
                    .map(|d| d.name.clone())
            })
    }

    /// A finished request's figures for the route and key statistics: fallback, failure,
    /// response-cache hit, cost, and what the provider's prompt cache saved (priced at the
    /// answering deployment's input and cached-input prices).
    fn request_figures(&self, meta: &Meta) -> RouteRequest {
        let cache_hit = meta.cache == Some(CacheStatus::Hit);
        let answered = meta
            .deployment
            .as_deref()
            .and_then(|name| self.table.deployments.iter().find(|d| d.name == name));
        let (cached_tokens, savings_nanos) = match (answered, meta.usage) {
            (Some(dep), Some(u)) => (
                u.cached_tokens.unwrap_or(0),
                crate::usage::cache_savings_nanos(&u, &dep.price),
            ),
            _ => (0, 0),
        };
        RouteRequest {
            route: meta.route.clone(),
            fell_back: !cache_hit && meta.deployment.is_some() && meta.fell_back(),
            failed: !cache_hit && meta.deployment.is_none(),
            cache_hit,
            cost_nanos: meta.cost_nanos.unwrap_or(0),
            savings_nanos,
            cached_tokens,
        }
    }

    /// For `alerts.fallback_ratio`: the request's route and whether it fell back (or failed),
    /// counted in the object of the route's first deployment.
    fn add_route_outcome(&self, meta: &Meta, fallback: bool) {
        let on = self
            .table
            .alerts
            .as_ref()
            .is_some_and(|a| a.events.fallback_ratio);
        let first = self
            .table
            .route(&meta.route)
            .and_then(|r| r.chain.steps().first())
            .and_then(|s| self.table.deployment(s.deployment));
        if let (true, Some(first)) = (on, first) {
            // A response-cache hit names no deployment, but nothing failed.
            let cache_hit = meta.cache == Some(CacheStatus::Hit);
            let fell_back = fallback || (meta.deployment.is_none() && !cache_hit);
            self.routes
                .borrow_mut()
                .push((first.name.clone(), meta.route.clone(), fell_back));
        }
    }

    /// Hands everything queued to the isolate's outbox (see `outbox`): failures and probe
    /// outcomes go out at once, the rest within `FLUSH_INTERVAL_MS`.
    pub fn flush(&self) {
        let reports = std::mem::take(&mut *self.pending.borrow_mut());
        let samples = std::mem::take(&mut *self.samples.borrow_mut());
        let hedge_waits = std::mem::take(&mut *self.hedge_waits.borrow_mut());
        let settles = std::mem::take(&mut *self.settles.borrow_mut());
        let routes = std::mem::take(&mut *self.routes.borrow_mut());
        let route_requests = std::mem::take(&mut *self.route_requests.borrow_mut());
        let route_attempts = std::mem::take(&mut *self.route_attempts.borrow_mut());
        let mut names: Vec<&String> = reports
            .iter()
            .map(|(n, _)| n)
            .chain(samples.iter().map(|(n, _)| n))
            .chain(hedge_waits.iter().map(|(n, _)| n))
            .chain(settles.iter().map(|(n, _, _)| n))
            .chain(routes.iter().map(|(n, _, _)| n))
            .chain(route_requests.iter().map(|(n, _)| n))
            .chain(route_attempts.iter().map(|(n, _)| n))
            .collect();
        names.sort();
        names.dedup();
        let now = objects::now_ms();
        for name in names {
            let Some(dep) = self.table.deployments.iter().find(|d| &d.name == name) else {
                continue;
            };
            let batch = Batch {
                config: dep.breaker.config.clone(),
                degradation: dep.degradation,
                reports: reports
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, r)| *r)
                    .collect(),
                samples: samples
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, s)| *s)
                    .collect(),
                hedge_waits: hedge_waits
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, w)| *w)
                    .collect(),
                settles: settles
                    .iter()
                    .filter(|(n, _, _)| n == name)
                    .map(|(_, id, t)| (id.clone(), *t))
                    .collect(),
                alerts: self.table.alerts.clone(),
                name: Some(name.clone()),
                routes: routes
                    .iter()
                    .filter(|(n, _, _)| n == name)
                    .map(|(_, r, f)| (r.clone(), *f))
                    .collect(),
                route_requests: route_requests
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, r)| r.clone())
                    .collect(),
                route_attempts: route_attempts
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, a)| a.clone())
                    .collect(),
            };
            let started = outbox::post(&self.env, &self.ctx, name, batch, now);
            self.background.set(self.background.get() + started);
        }
    }

    fn refresh_in_background(&self, name: &str, now_ms: u64) {
        // Mark it fresh now so that concurrent requests do not all refresh it.
        if let Some((view, _)) = cached(name) {
            remember(name, view, now_ms);
        }
        let env = self.env.clone();
        let name = name.to_string();
        self.background.set(self.background.get() + 1);
        self.ctx.spawn(Box::pin(async move {
            let reply: worker::Result<View> =
                objects::call(&env, DEPLOYMENTS, &name, "/view", None::<&()>).await;
            if let Ok(view) = reply {
                remember(&name, view, objects::now_ms());
            }
        }));
    }
}

impl Health for DoHealth {
    async fn view(&self, dep: &Deployment, now_ms: u64) -> View {
        if let Some((view, at)) = cached(&dep.name) {
            if now_ms.saturating_sub(at) > SNAPSHOT_TTL_MS {
                self.refresh_in_background(&dep.name, now_ms);
            }
            return view;
        }
        self.waited.set(self.waited.get() + 1);
        let reply: worker::Result<View> =
            objects::call(&self.env, DEPLOYMENTS, &dep.name, "/view", None::<&()>).await;
        match reply {
            Ok(view) => {
                remember(&dep.name, view, now_ms);
                view
            }
            Err(_) => View::Closed,
        }
    }

    async fn acquire_probe(&self, dep: &Deployment, force: bool, now_ms: u64) -> bool {
        self.waited.set(self.waited.get() + 1);
        let call = ProbeCall {
            config: dep.breaker.config.clone(),
            force,
        };
        let reply: worker::Result<ProbeReply> =
            objects::call(&self.env, DEPLOYMENTS, &dep.name, "/probe", Some(&call)).await;
        match reply {
            Ok(r) => {
                remember(&dep.name, r.view, now_ms);
                r.granted
            }
            Err(_) => true,
        }
    }

    fn report(&self, dep: &Deployment, report: Report) {
        self.pending.borrow_mut().push((dep.name.clone(), report));
    }

    async fn admit(
        &self,
        dep: &Deployment,
        reservation: &str,
        tokens: u64,
        _now_ms: u64,
    ) -> Result<(), u64> {
        self.waited.set(self.waited.get() + 1);
        let call = AdmitCall {
            id: reservation.to_string(),
            limits: Limits {
                rpm: dep.limits.rpm,
                tpm: dep.limits.tpm,
                ..Limits::default()
            },
            estimate: Estimate {
                tokens,
                cost_nanos: 0,
            },
            until_ms: None,
        };
        let reply: worker::Result<Admission> =
            objects::call(&self.env, DEPLOYMENTS, &dep.name, "/admit", Some(&call)).await;
        match &reply {
            Ok(Admission::Denied { headroom, .. } | Admission::Admitted { headroom }) => {
                remember_headroom(&dep.name, headroom);
            }
            Err(_) => {}
        }
        match reply {
            Ok(Admission::Denied { retry_after_ms, .. }) => Err(retry_after_ms),
            // Admitted, or the object is unreachable: fail open.
            _ => Ok(()),
        }
    }

    fn hedge_p95_ms(&self, dep: &Deployment, stream: bool) -> Option<u64> {
        super::snapshot::hedge_p95_ms(&dep.name, stream)
    }

    fn settle(&self, dep: &Deployment, reservation: &str, tokens: Option<u64>) {
        self.settles
            .borrow_mut()
            .push((dep.name.clone(), reservation.to_string(), tokens));
    }
}
