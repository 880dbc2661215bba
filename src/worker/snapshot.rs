//! The isolate's snapshot of what the deployments' objects last said: each breaker's view
//! (with when it was learned), each deployment's measured speed, whether it is degraded, and
//! its rate-limit headroom.
//! Filled from report replies (`outbox`), probe and view replies and admissions (`health`);
//! read by the `Health` port and by the routing strategies (`SnapshotStats`). Invariant: it is
//! per isolate (lost with it) and only advisory: a view is used however old it is, its age
//! only decides when `health` refreshes it in the background.

use crate::routing::DeploymentStats;
use crate::state::breaker::View;
use crate::state::degradation::Reason;
use crate::state::quota::Headroom;
use crate::state::speed::Speed;
use std::cell::RefCell;
use std::collections::HashMap;

/// After this long a snapshot is refreshed in the background (it is still used meanwhile).
pub const SNAPSHOT_TTL_MS: u64 = 2_000;

/// (p95 to the first token of streams, p95 to the whole answer of the others).
type HedgeP95 = (Option<u64>, Option<u64>);

thread_local! {
    /// deployment name → (view, when it was learned).
    static SNAPSHOT: RefCell<HashMap<String, (View, u64)>> = RefCell::new(HashMap::new());
    /// deployment name → why it is degraded (from report replies; absent: it is not).
    static DEGRADED: RefCell<HashMap<String, Reason>> = RefCell::new(HashMap::new());
    /// deployment name → measured p95 times to commit, (first token, whole answer), for
    /// p95 hedges (from report replies).
    static HEDGE_P95: RefCell<HashMap<String, HedgeP95>> = RefCell::new(HashMap::new());
    /// deployment name → measured speed (from report replies).
    static SPEED: RefCell<HashMap<String, Speed>> = RefCell::new(HashMap::new());
    /// deployment name → share of its own rate limit left, in basis points (from admissions).
    static HEADROOM: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

pub(super) fn remember_degraded(name: &str, degraded: Option<Reason>) {
    DEGRADED.with(|d| {
        let mut d = d.borrow_mut();
        match degraded {
            Some(r) => d.insert(name.to_string(), r),
            None => d.remove(name),
        };
    });
}

/// `ttft`: the p95 time to first token of streams; `answer`: to the whole answer of the others.
pub(super) fn remember_hedge_p95(name: &str, ttft: Option<u64>, answer: Option<u64>) {
    HEDGE_P95.with(|m| {
        let mut m = m.borrow_mut();
        if ttft.is_none() && answer.is_none() {
            m.remove(name);
        } else {
            m.insert(name.to_string(), (ttft, answer));
        }
    });
}

/// The deployment's measured p95 time to commit (`stream`: to the first token), as its object
/// last said.
pub(super) fn hedge_p95_ms(name: &str, stream: bool) -> Option<u64> {
    HEDGE_P95.with(|m| {
        let (ttft, answer) = m.borrow().get(name).copied()?;
        if stream {
            ttft
        } else {
            answer
        }
    })
}

pub(super) fn remember_speed(name: &str, speed: Speed) {
    SPEED.with(|s| {
        s.borrow_mut().insert(name.to_string(), speed);
    });
}

pub(super) fn remember_headroom(name: &str, h: &Headroom) {
    let share = |left: Option<u64>, limit: Option<u64>| match (left, limit) {
        (Some(l), Some(m)) if m > 0 => Some((l.min(m) * 10_000 / m) as u32),
        _ => None,
    };
    let requests = share(
        h.remaining_requests.map(u64::from),
        h.limit_requests.map(u64::from),
    );
    let tokens = share(h.remaining_tokens, h.limit_tokens);
    let bps = match (requests, tokens) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some(bps) = bps {
        HEADROOM.with(|m| {
            m.borrow_mut().insert(name.to_string(), bps);
        });
    }
}

/// The isolate's view of every deployment's speed and headroom, for the routing strategies
/// ("fastest", "least used"). As fresh as the last report reply or admission.
pub struct SnapshotStats;

impl DeploymentStats for SnapshotStats {
    fn ttft_ms(&self, dep: &str) -> Option<u64> {
        SPEED.with(|s| s.borrow().get(dep).and_then(Speed::first_token_ms))
    }
    fn tokens_per_s(&self, dep: &str) -> Option<u64> {
        SPEED.with(|s| s.borrow().get(dep).and_then(|s| s.tokens_per_s))
    }
    fn headroom_bps(&self, dep: &str) -> Option<u32> {
        HEADROOM.with(|h| h.borrow().get(dep).copied())
    }
    fn degraded(&self, dep: &str) -> Option<Reason> {
        DEGRADED.with(|d| d.borrow().get(dep).copied())
    }
}

pub(super) fn remember(name: &str, view: View, now_ms: u64) {
    SNAPSHOT.with(|s| {
        s.borrow_mut().insert(name.to_string(), (view, now_ms));
    });
}

pub(super) fn cached(name: &str) -> Option<(View, u64)> {
    SNAPSHOT.with(|s| s.borrow().get(name).copied())
}
