//! The breaker gate in front of each deployment: go, go as the half-open probe, or skip.
//! It reads the isolate's snapshot through the `Health` port and waits on the shared store
//! only to ask for a probe lease. A deployment whose breaker the table disables is still
//! read: its kill switch (`ForcedOpen`) holds; nothing else about its breaker counts.

use super::meta::Skip;
use super::ports::Health;
use crate::config::Deployment;
use crate::resilience::subrequests::SubrequestBudget;
use crate::state::breaker::View;

pub(super) enum Gate {
    Go {
        /// The attempt holds a probe lease: one attempt only, and its outcome is reported as
        /// the probe's.
        probe: bool,
    },
    Skip {
        why: Skip,
        /// When the breaker's cooldown ends (None: a kill switch, never by itself).
        reopens_ms: Option<u64>,
    },
}

impl Gate {
    /// The gate asked the shared store for a probe lease (granted or not): a call of its own.
    pub(super) fn asked_probe(&self) -> bool {
        matches!(
            self,
            Gate::Go { probe: true }
                | Gate::Skip {
                    why: Skip::BreakerHalfOpen,
                    ..
                }
        )
    }
}

pub(super) async fn gate<H: Health>(health: &H, dep: &Deployment, now_ms: u64) -> Gate {
    let view = health.view(dep, now_ms).await;
    if !dep.breaker.enabled {
        // The table turned the breaker off: traffic never trips it and nothing probes it,
        // but the operator's kill switch (kept in the same object) still holds.
        return match view {
            View::ForcedOpen => forced_open(),
            _ => Gate::Go { probe: false },
        };
    }
    match view {
        View::Closed => Gate::Go { probe: false },
        View::Open { until_ms } if until_ms > now_ms => Gate::Skip {
            why: Skip::BreakerOpen,
            reopens_ms: Some(until_ms),
        },
        View::Open { .. } | View::HalfOpen => {
            if health.acquire_probe(dep, false, now_ms).await {
                Gate::Go { probe: true }
            } else {
                Gate::Skip {
                    why: Skip::BreakerHalfOpen,
                    reopens_ms: Some(now_ms),
                }
            }
        }
        View::ForcedOpen => forced_open(),
    }
}

/// The gate as hedges and resumes pass it, paid from the request's subrequest budget: None
/// when the budget cannot pay for the visit (the gate's calls and the attempt), else the
/// gate's answer with its calls charged. (The chain walk does the same in two steps, since it
/// is pure: `ChainWalk::next_candidate` checks, `ChainWalk::on_gate` charges.)
pub(super) async fn paid_gate<H: Health>(
    health: &H,
    budget: &mut SubrequestBudget,
    index: usize,
    dep: &Deployment,
    now_ms: u64,
) -> Option<Gate> {
    if !budget.affords_visit(index, dep.breaker.enabled, false) {
        return None;
    }
    let g = gate(health, dep, now_ms).await;
    budget.charge_gate(g.asked_probe());
    Some(g)
}

fn forced_open() -> Gate {
    Gate::Skip {
        why: Skip::BreakerForcedOpen,
        reopens_ms: None,
    }
}
