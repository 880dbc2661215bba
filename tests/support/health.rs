//! `Health` port doubles over the REAL breaker state machine (`state::breaker::Breaker`, the
//! one the Durable Object runs), driven by the test's manual clock.
//!
//! - `SharedBreakers`: one store every request sees at once (a perfectly consistent object),
//!   recording every port call so tests can assert how the engine uses the port.
//! - `StaleIsolate`: one isolate's view of a shared store, as the worker's `DoHealth` keeps
//!   it: a snapshot read once, refreshed only by a probe request or when queued reports are
//!   flushed (after the request), never on a plain view.
//!
//! Declare it next to `mod support;` with `#[path = "support/health.rs"] mod health;`.
#![allow(dead_code)]

use crate::support::ManualClock;
use edge_router::config::Deployment;
use edge_router::engine::{Clock, Health};
use edge_router::state::breaker::{Breaker, BreakerConfig, Phase, Report, View};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// Breakers by deployment name, shared by every double that holds it.
pub type Store = Rc<RefCell<HashMap<String, Breaker>>>;

/// One call the engine made on the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    View(String),
    Probe {
        dep: String,
        force: bool,
        granted: bool,
    },
    Report(String, Report),
}

pub struct SharedBreakers {
    pub store: Store,
    clock: ManualClock,
    calls: RefCell<Vec<Call>>,
}

impl SharedBreakers {
    pub fn new(clock: &ManualClock) -> Self {
        Self::sharing(&Store::default(), clock)
    }

    pub fn sharing(store: &Store, clock: &ManualClock) -> Self {
        SharedBreakers {
            store: Rc::clone(store),
            clock: clock.clone(),
            calls: RefCell::new(Vec::new()),
        }
    }

    // ---- what the engine asked ----

    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    pub fn clear_calls(&self) {
        self.calls.borrow_mut().clear();
    }

    /// Every port call naming `dep`.
    pub fn calls_for(&self, dep: &str) -> usize {
        self.views(dep) + self.probes(dep).len() + self.reports(dep).len()
    }

    pub fn views(&self, dep: &str) -> usize {
        self.calls
            .borrow()
            .iter()
            .filter(|c| matches!(c, Call::View(d) if d == dep))
            .count()
    }

    /// (force, granted) of every probe request for `dep`.
    pub fn probes(&self, dep: &str) -> Vec<(bool, bool)> {
        self.calls
            .borrow()
            .iter()
            .filter_map(|c| match c {
                Call::Probe {
                    dep: d,
                    force,
                    granted,
                } if d == dep => Some((*force, *granted)),
                _ => None,
            })
            .collect()
    }

    /// The reports `dep` received, without their attempts' start times (what the tests
    /// compare; `breaker_recovery` shows what the start times do).
    pub fn reports(&self, dep: &str) -> Vec<Report> {
        self.calls
            .borrow()
            .iter()
            .filter_map(|c| match c {
                Call::Report(d, r) if d == dep => Some(Report {
                    started_ms: None,
                    ..*r
                }),
                _ => None,
            })
            .collect()
    }

    // ---- the shared state, read and set as an operator or another isolate would ----

    pub fn breaker(&self, dep: &str) -> Breaker {
        self.store.borrow().get(dep).cloned().unwrap_or_default()
    }

    pub fn view_now(&self, dep: &str) -> View {
        self.breaker(dep).view(self.clock.now_ms())
    }

    /// When the open breaker's cooldown ends (None unless `Phase::Open`).
    pub fn open_until(&self, dep: &str) -> Option<u64> {
        match self.breaker(dep).phase {
            Phase::Open { until_ms } => Some(until_ms),
            _ => None,
        }
    }

    /// Opens `dep`'s breaker now the way traffic would: failure reports until it trips.
    pub fn trip(&self, dep: &Deployment) {
        let now = self.clock.now_ms();
        let mut store = self.store.borrow_mut();
        let b = store.entry(dep.name.clone()).or_default();
        for _ in 0..10_000 {
            if b.phase != Phase::Closed {
                return;
            }
            b.record(
                &dep.breaker.config,
                Report {
                    ok: false,
                    probe: false,
                    retry_after_ms: None,
                    started_ms: None,
                },
                now,
            );
        }
        panic!("breaker of {} never trips by count", dep.name);
    }

    /// The operator's kill switch.
    pub fn kill(&self, dep: &str) {
        let now = self.clock.now_ms();
        self.store
            .borrow_mut()
            .entry(dep.to_string())
            .or_default()
            .force_open(now);
    }

    /// Another isolate takes a probe lease (not counted as an engine call).
    pub fn hold_probe(&self, dep: &Deployment, force: bool) -> bool {
        let now = self.clock.now_ms();
        self.store
            .borrow_mut()
            .entry(dep.name.clone())
            .or_default()
            .acquire_probe(&dep.breaker.config, force, now)
    }
}

impl Health for SharedBreakers {
    async fn view(&self, dep: &Deployment, now_ms: u64) -> View {
        self.calls.borrow_mut().push(Call::View(dep.name.clone()));
        self.store
            .borrow()
            .get(&dep.name)
            .map_or(View::Closed, |b| b.view(now_ms))
    }

    async fn acquire_probe(&self, dep: &Deployment, force: bool, now_ms: u64) -> bool {
        let granted = self
            .store
            .borrow_mut()
            .entry(dep.name.clone())
            .or_default()
            .acquire_probe(&dep.breaker.config, force, now_ms);
        self.calls.borrow_mut().push(Call::Probe {
            dep: dep.name.clone(),
            force,
            granted,
        });
        granted
    }

    fn report(&self, dep: &Deployment, report: Report) {
        self.calls
            .borrow_mut()
            .push(Call::Report(dep.name.clone(), report));
        self.store
            .borrow_mut()
            .entry(dep.name.clone())
            .or_default()
            .record(&dep.breaker.config, report, self.clock.now_ms());
    }
}

/// One isolate in front of a shared store, with `DoHealth`'s consistency: a deployment never
/// seen is read from the store (once); after that `view` answers from the snapshot. The
/// snapshot is refreshed by a probe request (the object's reply) and by `flush`, which the
/// worker does after the request (reports go out through `wait_until`).
pub struct StaleIsolate {
    store: Store,
    clock: ManualClock,
    snapshot: RefCell<HashMap<String, View>>,
    pending: RefCell<Vec<(String, BreakerConfig, Report)>>,
    /// Calls that waited on the store (first views and probe requests).
    pub waited: Cell<u32>,
}

impl StaleIsolate {
    pub fn new(store: &Store, clock: &ManualClock) -> Self {
        StaleIsolate {
            store: Rc::clone(store),
            clock: clock.clone(),
            snapshot: RefCell::new(HashMap::new()),
            pending: RefCell::new(Vec::new()),
            waited: Cell::new(0),
        }
    }

    /// What this isolate believes about `dep` (None: never seen).
    pub fn snapshot(&self, dep: &str) -> Option<View> {
        self.snapshot.borrow().get(dep).copied()
    }

    fn store_view(&self, dep: &str, now_ms: u64) -> View {
        self.store
            .borrow()
            .get(dep)
            .map_or(View::Closed, |b| b.view(now_ms))
    }

    /// Sends the queued reports to the store; each reply refreshes the snapshot.
    pub fn flush(&self) {
        let now = self.clock.now_ms();
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        for (dep, cfg, report) in pending {
            self.store
                .borrow_mut()
                .entry(dep.clone())
                .or_default()
                .record(&cfg, report, now);
            let view = self.store_view(&dep, now);
            self.snapshot.borrow_mut().insert(dep, view);
        }
    }
}

impl Health for StaleIsolate {
    async fn view(&self, dep: &Deployment, now_ms: u64) -> View {
        if let Some(v) = self.snapshot(&dep.name) {
            return v;
        }
        self.waited.set(self.waited.get() + 1);
        let v = self.store_view(&dep.name, now_ms);
        self.snapshot.borrow_mut().insert(dep.name.clone(), v);
        v
    }

    async fn acquire_probe(&self, dep: &Deployment, force: bool, now_ms: u64) -> bool {
        self.waited.set(self.waited.get() + 1);
        let granted = self
            .store
            .borrow_mut()
            .entry(dep.name.clone())
            .or_default()
            .acquire_probe(&dep.breaker.config, force, now_ms);
        let v = self.store_view(&dep.name, now_ms);
        self.snapshot.borrow_mut().insert(dep.name.clone(), v);
        granted
    }

    fn report(&self, dep: &Deployment, report: Report) {
        self.pending
            .borrow_mut()
            .push((dep.name.clone(), dep.breaker.config.clone(), report));
    }
}
