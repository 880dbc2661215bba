//! The end of a request, whatever way it ended: usage samples and breaker reports to the
//! deployment objects, the settlement of the key's reservation, and the one log line. All of
//! it is sent through `wait_until`, so none of it delays the answer.

use super::auth::{self, Admitted};
use super::background::Background;
use super::health::DoHealth;
use super::objects::key::{KeyAlerts, SettleCall};
use super::routing;
use super::transport::WorkerClock;
use crate::config::RoutingTable;
use crate::engine::{CacheStatus, Clock, Meta, Skip};
use crate::keys::KeyRecord;
use crate::report::log_line;
use crate::routing::prepare::Routed;
use crate::state::quota::Actual;
use crate::state::stats::Sample;
use std::rc::Rc;
use worker::{console_log, Env};

pub struct Finish {
    pub env: Env,
    pub ctx: Rc<dyn Background>,
    pub health: DoHealth,
    pub key: Option<KeyRecord>,
    pub admitted: Option<Admitted>,
    /// Calls waited on before the engine ran (the key's admission).
    pub waited_before: u32,
    /// How the request was routed (task, plan, session).
    pub routed: Routed,
    /// On a caching route: what the cache did (`x-router-cache`).
    pub cache: Option<CacheStatus>,
}

impl Finish {
    fn table(&self) -> &RoutingTable {
        self.health.table()
    }

    /// What the glue knows that the engine does not: key, rate-limit headroom.
    pub fn decorate(&self, meta: &mut Meta) {
        meta.key_name = self.key.as_ref().map(|k| k.name.clone());
        meta.cache = self.cache;
        if let Some(a) = &self.admitted {
            meta.extra_headers = auth::ratelimit_headers(&a.headroom);
        }
        let r = &self.routed;
        meta.task = r.class.task.clone();
        meta.route_source = Some(r.class.source.to_string());
        // Deployments the plan left out come first among the fallback reasons.
        let mut removed: Vec<(String, Skip)> = r
            .plan
            .removed
            .iter()
            .map(|(d, why)| (d.clone(), Skip::Plan(why)))
            .collect();
        removed.append(&mut meta.skipped);
        meta.skipped = removed;
        meta.deferred = r.plan.deferred.clone();
        if let Some(task) = &r.class.task {
            meta.extra_headers.push(("x-router-task", task.clone()));
        }
        if r.plan.canary {
            meta.extra_headers.push(("x-router-canary", "true".into()));
        }
        if r.plan.sticky {
            meta.extra_headers.push(("x-router-sticky", "true".into()));
        }
        if r.plan.explored {
            meta.extra_headers.push(("x-router-explore", "true".into()));
        }
    }

    /// Breaker reports gathered so far (failed attempts before a stream committed).
    pub fn flush_reports(&self) {
        self.health.flush();
    }

    /// The request is over: record, settle, log.
    pub fn done(&mut self, meta: &mut Meta) {
        let now = WorkerClock.now_ms();
        if let (Some(session), Some(dep)) = (&self.routed.session, &meta.deployment) {
            if let Some(route) = self.table().route(&meta.route) {
                routing::remember_session(self.table(), route, session, dep, now);
            }
        }
        let figures = self.health.add_samples(meta);
        self.health.flush();
        if let Some(key) = &self.key {
            // A request that failed still spends what providers billed for its attempts.
            let answered = meta.deployment.is_some() && meta.usage.is_some();
            let billed = meta.failed_prompts_nanos() > 0;
            let actual = (answered || billed).then(|| Actual {
                tokens: meta
                    .usage
                    .map_or(0, |u| u.prompt_tokens.saturating_add(u.completion_tokens)),
                cost_nanos: meta.cost_nanos.unwrap_or(0),
            });
            let sample = Sample {
                ok: meta.status == 200 && meta.error.is_none(),
                fallback: meta.fell_back(),
                input_tokens: meta.usage.map_or(0, |u| u.prompt_tokens),
                output_tokens: meta.usage.map_or(0, |u| u.completion_tokens),
                cost_nanos: meta.cost_nanos.unwrap_or(0),
                latency_ms: now.saturating_sub(meta.started_ms),
                ..Sample::default()
            };
            let reservation = self.admitted.take().and_then(|a| a.reservation);
            let call = SettleCall {
                request: Some(meta.request_id.clone()),
                id: reservation,
                actual,
                sample,
                alerts: self.table().alerts.clone().map(|settings| KeyAlerts {
                    settings,
                    key: key.id.clone(),
                    limits: key.limits,
                }),
                money: Some(figures),
            };
            self.ctx.spawn(Box::pin(auth::settle(
                self.env.clone(),
                key.id.clone(),
                call,
            )));
            self.health.count_background();
        }
        let (waited, background) = self.health.calls();
        meta.state_calls = (self.waited_before + waited, background);
        console_log!("{}", log_line(meta, now));
    }
}
