//! Reports to the deployment objects, batched per isolate.
//!
//! Invariant: a report or usage sample reaches its deployment's object at most
//! `FLUSH_INTERVAL_MS` after the request that made it ended (a timer task sends what no later
//! request did), unless the isolate is evicted within that second; failures and probe outcomes
//! are sent at once, together with everything queued before them, in order. Why: one object
//! call per request doubled the gateway's CPU per request and halved its throughput
//! (bench/RESULTS.md); batching makes it one call per deployment per second per isolate on the
//! happy path, while breakers still hear of failures without delay.

use super::background::Background;
use super::objects::{self, deployment::ReportReply, DEPLOYMENTS};
use super::snapshot::{remember, remember_degraded, remember_hedge_p95, remember_speed};
use crate::state::alerts::AlertSettings;
use crate::state::breaker::{BreakerConfig, Report};
use crate::state::degradation::{DegradeConfig, HedgeWait};
use crate::state::route_stats::{RouteAttempt, RouteRequest};
use crate::state::stats::Sample;
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use worker::{Delay, Env};

/// The longest a report waits in the isolate before it is sent.
pub const FLUSH_INTERVAL_MS: u64 = 1_000;
/// A batch this large is sent at once (bounds memory under heavy traffic).
const MAX_BATCH: usize = 500;

/// What one call to a deployment's object carries (`/report`).
#[derive(Debug, Clone, Serialize)]
pub struct Batch {
    pub config: BreakerConfig,
    pub degradation: DegradeConfig,
    pub reports: Vec<Report>,
    pub samples: Vec<Sample>,
    /// First attempts cancelled by their hedge, and how long they waited (lower bounds).
    pub hedge_waits: Vec<HedgeWait>,
    /// Rate-limit reservations to settle: (id, tokens used; None = release).
    pub settles: Vec<(String, Option<u64>)>,
    /// The table's `alerts` block: the object raises alerts with it (`state::alerts`).
    pub alerts: Option<AlertSettings>,
    /// The deployment's name (set here), for the alerts' text.
    pub name: Option<String>,
    /// Requests of routes whose first deployment this is: (route, fell back).
    pub routes: Vec<(String, bool)>,
    /// Per-route statistics (`state::route_stats`): the requests this object counts (see
    /// where in `route_stats`), and this deployment's attempts, by route.
    pub route_requests: Vec<RouteRequest>,
    pub route_attempts: Vec<RouteAttempt>,
}

impl Batch {
    fn len(&self) -> usize {
        self.reports.len()
            + self.samples.len()
            + self.hedge_waits.len()
            + self.settles.len()
            + self.routes.len()
            + self.route_requests.len()
            + self.route_attempts.len()
    }
    /// Failures and probe outcomes must reach the breaker now.
    fn urgent(&self) -> bool {
        self.reports.iter().any(|r| !r.ok || r.probe)
    }
}

thread_local! {
    static OUTBOX: RefCell<BTreeMap<String, Batch>> = const { RefCell::new(BTreeMap::new()) };
    static LAST_SENT: RefCell<HashMap<String, u64>> = RefCell::new(HashMap::new());
    static TIMER_ARMED: Cell<bool> = const { Cell::new(false) };
}

/// Queues `add` for deployment `name` and sends what is due. Returns the object calls this
/// started (a send, or arming the timer that will send).
pub fn post(env: &Env, ctx: &Rc<dyn Background>, name: &str, add: Batch, now_ms: u64) -> u32 {
    let due = OUTBOX.with(|o| {
        let mut o = o.borrow_mut();
        let batch = o.entry(name.to_string()).or_insert_with(|| Batch {
            config: add.config.clone(),
            degradation: add.degradation,
            reports: Vec::new(),
            samples: Vec::new(),
            hedge_waits: Vec::new(),
            settles: Vec::new(),
            alerts: None,
            name: Some(name.to_string()),
            routes: Vec::new(),
            route_requests: Vec::new(),
            route_attempts: Vec::new(),
        });
        batch.config = add.config.clone();
        batch.alerts = add.alerts.clone();
        batch.degradation = add.degradation;
        batch.reports.extend(add.reports.iter().copied());
        batch.samples.extend(add.samples.iter().copied());
        batch.hedge_waits.extend(add.hedge_waits.iter().copied());
        batch.settles.extend(add.settles.iter().cloned());
        batch.routes.extend(add.routes.iter().cloned());
        batch.route_requests.extend(add.route_requests);
        batch.route_attempts.extend(add.route_attempts);
        batch.urgent() || batch.len() >= MAX_BATCH
    });
    let last = LAST_SENT.with(|l| l.borrow().get(name).copied());
    let stale = last.is_none_or(|at| now_ms.saturating_sub(at) >= FLUSH_INTERVAL_MS);
    if due || stale {
        if let Some(batch) = take(name, now_ms) {
            let env = env.clone();
            let name = name.to_string();
            ctx.spawn(Box::pin(async move { send(&env, &name, &batch).await }));
            return 1;
        }
        return 0;
    }
    if TIMER_ARMED.with(|t| t.replace(true)) {
        return 0;
    }
    let env = env.clone();
    ctx.spawn(Box::pin(async move {
        Delay::from(std::time::Duration::from_millis(FLUSH_INTERVAL_MS)).await;
        TIMER_ARMED.with(|t| t.set(false));
        let names: Vec<String> = OUTBOX.with(|o| o.borrow().keys().cloned().collect());
        for name in names {
            if let Some(batch) = take(&name, objects::now_ms()) {
                send(&env, &name, &batch).await;
            }
        }
    }));
    1
}

fn take(name: &str, now_ms: u64) -> Option<Batch> {
    let batch = OUTBOX.with(|o| o.borrow_mut().remove(name))?;
    LAST_SENT.with(|l| {
        let mut l = l.borrow_mut();
        if l.len() > 10_000 {
            l.clear();
        }
        l.insert(name.to_string(), now_ms);
    });
    (batch.len() > 0).then_some(batch)
}

async fn send(env: &Env, name: &str, batch: &Batch) {
    let reply: worker::Result<ReportReply> =
        objects::call(env, DEPLOYMENTS, name, "/report", Some(batch)).await;
    if let Ok(r) = reply {
        remember(name, r.view, objects::now_ms());
        remember_speed(name, r.speed);
        remember_degraded(name, r.degraded);
        remember_hedge_p95(name, r.ttft_p95_ms, r.answer_p95_ms);
    }
}
