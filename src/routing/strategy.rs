//! Attempt plans: which of a route's deployments to try, in which order. Pure: live numbers
//! come through `DeploymentStats`, randomness as one caller-supplied `u64`.
//!
//! Invariants: a deployment removed by a constraint (missing a required tag, estimated cost
//! above the request's ceiling) is absent from the plan, so it is never a fallback either; a
//! `canary_only` step appears only when the canary slice was drawn (or a session is stuck to
//! it); precedence for the first place is sticky > canary > strategy. The low 32 bits of
//! `random` draw the weighted pick, the high 32 bits the canary slice, so the two are
//! independent when `random` is uniform; a mix of all 64 draws the recovery share.
//!
//! Degraded deployments (`state::degradation`) are moved behind the healthy ones of the plan,
//! in their order, and stay in it as fallbacks; in `recovery_share_bps` of requests they keep
//! their place, so their figures keep coming and their recovery is seen.
//!
//! `fastest` explores: in `EXPLORE_SHARE_BPS` of its plans (a draw of its own, mixed from
//! `random`) another candidate goes first, an unmeasured one if there is one. Without it a
//! deployment the isolate has no speed for (a new one) would never be tried while the others
//! answer, and one whose average was once slow would never be seen to recover.

use crate::config::{ChainStep, Deployment, Route, RoutingTable, Strategy};
use crate::state::degradation::Reason;
use crate::usage::{format_usd, Usage};
use serde_json::{json, Value};
use std::cmp::Reverse;

/// Headroom assumed for a deployment without stats (all of it).
pub const FULL_HEADROOM_BPS: u32 = 10_000;

/// Live per-deployment numbers (from breaker/limit snapshots); None = unknown.
pub trait DeploymentStats {
    /// Recent time to first token.
    fn ttft_ms(&self, dep: &str) -> Option<u64>;
    /// Recent output speed.
    fn tokens_per_s(&self, dep: &str) -> Option<u64>;
    /// Remaining rate-limit capacity / limit, in basis points.
    fn headroom_bps(&self, dep: &str) -> Option<u32>;
    /// Why the deployment is degraded, if it is.
    fn degraded(&self, _dep: &str) -> Option<Reason> {
        None
    }
}

/// No live numbers: `fastest` degrades to chain order, `least_used` too.
pub struct NoStats;

impl DeploymentStats for NoStats {
    fn ttft_ms(&self, _: &str) -> Option<u64> {
        None
    }
    fn tokens_per_s(&self, _: &str) -> Option<u64> {
        None
    }
    fn headroom_bps(&self, _: &str) -> Option<u32> {
        None
    }
}

pub struct PlanInput<'a> {
    pub route: &'a Route,
    pub table: &'a RoutingTable,
    /// Estimated prompt + completion tokens of the request.
    pub est: Usage,
    /// Per-request cost ceiling in nano-USD (from a header).
    pub max_cost_nanos: Option<u64>,
    /// The deployment (index into `table.deployments`) this request's session is stuck to;
    /// ignored on routes without `sticky`.
    pub sticky: Option<usize>,
    /// A uniformly random value supplied by the caller.
    pub random: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Indices into `route.chain.steps()`, in the order to try.
    pub order: Vec<usize>,
    /// Candidates left out: (deployment name, "tag" | "cost_ceiling").
    pub removed: Vec<(String, &'static str)>,
    /// The canary slice put the canary first.
    pub canary: bool,
    /// The session's remembered deployment was put first.
    pub sticky: bool,
    /// Degraded deployments moved behind healthy ones, with why.
    pub deferred: Vec<(String, Reason)>,
    /// `fastest` explored: a deployment other than the fastest known was put first.
    pub explored: bool,
}

/// Share of `fastest` plans that try another deployment first (5 %).
pub const EXPLORE_SHARE_BPS: u32 = 500;

pub const REMOVED_TAG: &str = "tag";
pub const REMOVED_COST: &str = "cost_ceiling";

/// The canary draw: 0..10000 from the high half of `random`.
pub fn canary_draw(random: u64) -> u32 {
    ((random >> 32) % 10_000) as u32
}

pub fn plan(input: &PlanInput, stats: &dyn DeploymentStats) -> Plan {
    let route = input.route;
    let steps = route.chain.steps();
    let step_of = |dep: usize| steps.iter().position(|s| s.deployment == dep);
    let survives = |i: usize| steps.get(i).is_some_and(|s| verdict(input, s).is_none());
    // Only routes with `sticky` configured honour a remembered deployment.
    let sticky_step = input
        .sticky
        .filter(|_| route.sticky_ttl_ms.is_some())
        .and_then(step_of)
        .filter(|&i| survives(i));
    let canary_step = route
        .canary
        .filter(|c| sticky_step.is_none() && canary_draw(input.random) < c.percent_bps)
        .and_then(|c| step_of(c.deployment));

    let mut kept = Vec::new();
    let mut removed = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let considered = !step.canary_only || canary_step == Some(i) || sticky_step == Some(i);
        if !considered {
            continue;
        }
        match verdict(input, step) {
            Some(why) => {
                if let Some(d) = input.table.deployment(step.deployment) {
                    removed.push((d.name.clone(), why));
                }
            }
            None => kept.push(i),
        }
    }
    let listed: Vec<usize> = kept
        .iter()
        .copied()
        .filter(|&i| steps.get(i).is_some_and(|s| !s.canary_only))
        .collect();
    let (mut order, explored) = strategy_order(input, stats, listed);
    let first = sticky_step.or(canary_step.filter(|i| kept.contains(i)));
    if let Some(f) = first {
        order.retain(|&i| i != f);
        order.insert(0, f);
    }
    let deferred = defer_degraded(input, stats, &mut order);
    let first = first.filter(|f| order.first() == Some(f));
    let explored = explored.is_some_and(|e| order.first() == Some(&e));
    Plan {
        order,
        removed,
        canary: sticky_step.is_none() && first.is_some(),
        sticky: sticky_step.is_some() && first.is_some(),
        deferred,
        explored,
    }
}

/// The exploration draw: 0..10000, and a second number to pick with, mixed from `random` with
/// a salt of their own, so they are independent of the other draws.
pub fn explore_draw(random: u64) -> (u32, u64) {
    let z = splitmix(random ^ 0xA076_1D64_78BD_642F);
    ((z % 10_000) as u32, z >> 32)
}

fn splitmix(random: u64) -> u64 {
    let mut z = random ^ (random >> 30);
    z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^= z >> 27;
    z = z.wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The recovery draw: 0..10000 from all 64 bits of `random`, mixed (splitmix64's finalizer),
/// so it is independent of the weighted and canary draws.
pub(crate) fn recovery_draw(random: u64) -> u32 {
    (splitmix(random) % 10_000) as u32
}

/// Moves degraded deployments behind the healthy ones (stable), unless the recovery draw
/// keeps them in place; returns those moved ahead of a healthy one, with why.
fn defer_degraded(
    input: &PlanInput,
    stats: &dyn DeploymentStats,
    order: &mut Vec<usize>,
) -> Vec<(String, Reason)> {
    let steps = input.route.chain.steps();
    let dep = |i: usize| {
        steps
            .get(i)
            .and_then(|s| input.table.deployment(s.deployment))
    };
    let verdict = |i: usize| {
        dep(i)
            .filter(|d| d.degradation.enabled)
            .and_then(|d| stats.degraded(&d.name).map(|r| (d, r)))
    };
    let (mut healthy, mut degraded) = (Vec::new(), Vec::new());
    let mut deferred = Vec::new();
    for &i in order.iter() {
        match verdict(i) {
            Some((d, why)) if recovery_draw(input.random) >= d.degradation.recovery_share_bps => {
                degraded.push(i);
                deferred.push((d.name.clone(), why));
            }
            _ => healthy.push(i),
        }
    }
    if degraded.is_empty() {
        return deferred;
    }
    // Only those that stood before a healthy deployment were moved.
    let last_healthy = order.iter().rposition(|i| healthy.contains(i));
    let moved: Vec<bool> = order
        .iter()
        .enumerate()
        .filter(|(_, i)| degraded.contains(i))
        .map(|(pos, _)| last_healthy.is_some_and(|h| pos < h))
        .collect();
    let mut kept = moved.iter();
    deferred.retain(|_| kept.next().copied().unwrap_or(false));
    healthy.append(&mut degraded);
    *order = healthy;
    deferred
}

/// Why a step is left out, if it is.
fn verdict(input: &PlanInput, step: &ChainStep) -> Option<&'static str> {
    let dep = input.table.deployment(step.deployment)?;
    if !input.route.require_tags.iter().all(|t| dep.has_tag(t)) {
        return Some(REMOVED_TAG);
    }
    let over = input
        .max_cost_nanos
        .is_some_and(|max| input.est.cost_nanos(&dep.price) > max);
    over.then_some(REMOVED_COST)
}

/// The strategy's order, and for `fastest` the step it explored (put first), if it did.
fn strategy_order(
    input: &PlanInput,
    stats: &dyn DeploymentStats,
    mut v: Vec<usize>,
) -> (Vec<usize>, Option<usize>) {
    let steps = input.route.chain.steps();
    let dep = |i: &usize| -> Option<&Deployment> {
        steps
            .get(*i)
            .and_then(|s| input.table.deployment(s.deployment))
    };
    let name = |i: &usize| dep(i).map_or("", |d| d.name.as_str());
    // `sort_by_key` is stable: ties keep chain order.
    match input.route.strategy {
        Strategy::Ordered => {}
        Strategy::Weighted => {
            if let Some(pos) = weighted_pick(steps, &v, input.random) {
                let first = v.remove(pos);
                v.insert(0, first);
            }
        }
        Strategy::Cheapest => {
            v.sort_by_key(|i| dep(i).map_or(u64::MAX, |d| input.est.cost_nanos(&d.price)));
        }
        Strategy::Fastest => {
            v.sort_by_key(|i| match stats.ttft_ms(name(i)) {
                Some(t) => (false, t, Reverse(stats.tokens_per_s(name(i)).unwrap_or(0))),
                None => (true, 0, Reverse(0)),
            });
            let (draw, pick) = explore_draw(input.random);
            let others = v.len().saturating_sub(1);
            if draw < EXPLORE_SHARE_BPS && others > 0 {
                // An unmeasured one first (they are sorted last, in chain order), else any.
                let pos = v
                    .iter()
                    .skip(1)
                    .position(|i| stats.ttft_ms(name(i)).is_none())
                    .unwrap_or((pick % others as u64) as usize)
                    + 1;
                let explored = v.remove(pos);
                v.insert(0, explored);
                return (v, Some(explored));
            }
        }
        Strategy::LeastUsed => {
            v.sort_by_key(|i| Reverse(stats.headroom_bps(name(i)).unwrap_or(FULL_HEADROOM_BPS)))
        }
    }
    (v, None)
}

/// Position in `candidates` of the weighted first pick; None when every weight is 0.
fn weighted_pick(steps: &[ChainStep], candidates: &[usize], random: u64) -> Option<usize> {
    let weight = |i: &usize| u64::from(steps.get(*i).map_or(0, |s| s.weight));
    let total: u64 = candidates.iter().map(weight).sum();
    if total == 0 {
        return None;
    }
    let mut draw = (random & 0xFFFF_FFFF) % total;
    for (pos, i) in candidates.iter().enumerate() {
        let w = weight(i);
        if draw < w {
            return Some(pos);
        }
        draw -= w;
    }
    None
}

/// The decision for `input`, for an admin "explain" endpoint: every step with whether it was
/// kept and why not, the canary and sticky outcomes, and the final order.
pub fn explain(input: &PlanInput, stats: &dyn DeploymentStats) -> Value {
    let p = plan(input, stats);
    let route = input.route;
    let steps = route.chain.steps();
    let name_of = |i: usize| {
        steps
            .get(i)
            .and_then(|s| input.table.deployment(s.deployment))
            .map(|d| d.name.clone())
    };
    let candidates: Vec<Value> = steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let d = input.table.deployment(s.deployment)?;
            let cost = input.est.cost_nanos(&d.price);
            let removed = p.removed.iter().find(|(n, _)| *n == d.name).map(|r| r.1);
            let reason = match (p.order.contains(&i), removed) {
                (true, _) => Value::Null,
                (false, Some(why)) => json!(why),
                (false, None) => json!("canary_not_drawn"),
            };
            let missing: Vec<&String> = route
                .require_tags
                .iter()
                .filter(|t| !d.has_tag(t))
                .collect();
            Some(json!({
                "step": i,
                "deployment": d.name,
                "kept": p.order.contains(&i),
                "reason": reason,
                "missing_tags": missing,
                "tags": d.tags,
                "weight": s.weight,
                "canary_only": s.canary_only,
                "estimated_cost_nanos": cost,
                "estimated_cost_usd": format_usd(cost),
                "ttft_ms": stats.ttft_ms(&d.name),
                "tokens_per_s": stats.tokens_per_s(&d.name),
                "headroom_bps": stats.headroom_bps(&d.name),
                "degraded": stats.degraded(&d.name).map(Reason::as_str),
            }))
        })
        .collect();
    let canary = route.canary.map(|c| {
        json!({
            "deployment": input.table.deployment(c.deployment).map(|d| d.name.clone()),
            "percent_bps": c.percent_bps,
            "draw": canary_draw(input.random),
            "first": p.canary,
        })
    });
    let sticky_name = input
        .sticky
        .and_then(|i| input.table.deployment(i))
        .map(|d| d.name.clone());
    json!({
        "route": route.name,
        "strategy": route.strategy.as_str(),
        "require_tags": route.require_tags,
        "estimate": {"prompt_tokens": input.est.prompt_tokens, "completion_tokens": input.est.completion_tokens},
        "max_cost_nanos": input.max_cost_nanos,
        "candidates": candidates,
        "canary": canary,
        "sticky": {"ttl_ms": route.sticky_ttl_ms, "remembered": sticky_name, "first": p.sticky},
        "deferred": p.deferred.iter().map(|(d, why)| json!({"deployment": d, "reason": why.as_str()})).collect::<Vec<_>>(),
        "explore": (route.strategy == Strategy::Fastest).then(|| json!({
            "share_bps": EXPLORE_SHARE_BPS,
            "draw": explore_draw(input.random).0,
            "first": p.explored,
        })),
        "order": p.order.iter().filter_map(|&i| name_of(i)).collect::<Vec<_>>(),
        "order_steps": p.order,
    })
}
