//! Validation of `routes.<name>`: the chain (names or `{deployment, weight}` entries), the
//! strategy, required tags, the canary and session affinity. A canary that the chain does not
//! list is appended as a `canary_only` step, so every deployment a plan can try is a step of
//! the chain (plans are lists of step indices).

use super::check::{check_name, join_keys, tag_list, Errors};
use super::policies::retry;
use super::raw::{RawCanary, RawDeployment, RawHedge, RawRoute};
use super::types::*;
use std::collections::BTreeMap;

const MAX_CHAIN: usize = 20;
/// Largest weight of a chain entry (weights are relative; this keeps sums small and exact).
pub const MAX_WEIGHT: u32 = 10_000;
/// Longest session affinity: one day.
pub const MAX_STICKY_TTL_MS: u64 = 86_400_000;

/// What the routes are validated against.
pub(super) struct RouteContext<'a> {
    pub raw_deployments: &'a BTreeMap<String, RawDeployment>,
    /// Name → index of every deployment that validated.
    pub deployment_index: &'a BTreeMap<&'a str, usize>,
    pub deployments: &'a [Deployment],
    /// Each deployment's retry policy (defaults, then its own fields).
    pub deployment_retry: &'a [RetryPolicy],
    pub default_retry: &'a RetryPolicy,
    pub default_request_ms: u64,
}

pub(super) fn routes(
    raw: &BTreeMap<String, RawRoute>,
    cx: &RouteContext,
    errs: &mut Errors,
) -> BTreeMap<String, Route> {
    let mut routes = BTreeMap::new();
    if raw.is_empty() {
        errs.push("routes", "must define at least one route");
    }
    for (name, r) in raw {
        if let Some(route) = route(name, r, cx, errs) {
            routes.insert(name.clone(), route);
        }
    }
    routes
}

fn route(name: &str, r: &RawRoute, cx: &RouteContext, errs: &mut Errors) -> Option<Route> {
    let path = format!("routes.{name}");
    check_name(&path, name, errs);
    if r.chain.len() > MAX_CHAIN {
        errs.push(
            &format!("{path}.chain"),
            format!("at most {MAX_CHAIN} deployments"),
        );
    }
    // Errors in the route's retry block are reported once, here (each step applies it again).
    retry(&format!("{path}.retry"), &r.retry, cx.default_retry, errs);
    let mut steps = chain_steps(&path, r, cx, errs);
    let strategy = strategy(&path, r.strategy.as_deref(), &steps, errs);
    let require_tags = tag_list(&format!("{path}.require_tags"), &r.require_tags, errs);
    if !require_tags.is_empty()
        && !steps.is_empty()
        && !steps
            .iter()
            .any(|s| has_tags(cx, s.deployment, &require_tags))
    {
        errs.push(
            &format!("{path}.require_tags"),
            "no deployment of the chain has every required tag",
        );
    }
    let canary = r.canary.as_ref().and_then(|c| {
        let idx = canary(&path, c, cx, &require_tags, errs)?;
        if !steps.iter().any(|s| s.deployment == idx) && !steps.is_empty() {
            steps.push(step(&path, r, cx, idx, 0, true));
        }
        Some(Canary {
            deployment: idx,
            percent_bps: c.percent_bps.min(10_000),
        })
    });
    let sticky_ttl_ms = r.sticky.as_ref().map(|s| {
        if s.ttl_ms == 0 || s.ttl_ms > MAX_STICKY_TTL_MS {
            errs.push(
                &format!("{path}.sticky.ttl_ms"),
                format!("must be between 1 and {MAX_STICKY_TTL_MS} ms"),
            );
        }
        s.ttl_ms
    });
    let request_timeout_ms = errs.ms(
        &format!("{path}.request_timeout_ms"),
        r.request_timeout_ms,
        cx.default_request_ms,
    );
    let (hedge_after_ms, hedge_p95_cap_ms) = match &r.hedge {
        None => (None, None),
        Some(h) => hedge(&path, h, request_timeout_ms, errs),
    };
    let resume = resume_policy(&path, r.resume.as_deref(), r.max_resumes, errs);
    let Some(chain) = Chain::new(steps) else {
        if r.chain.is_empty() {
            errs.push(
                &format!("{path}.chain"),
                "must list at least one deployment",
            );
        }
        return None;
    };
    Some(Route {
        name: name.to_string(),
        chain,
        request_timeout_ms,
        fallback_on_content_policy: r.fallback_on_content_policy,
        description: r.description.clone(),
        resume,
        strategy,
        require_tags,
        canary,
        sticky_ttl_ms,
        hedge_after_ms,
        hedge_p95_cap_ms,
        validate_output: r.validate_output.unwrap_or(true),
    })
}

/// The step for deployment `idx`: its retry policy, then the route's fields on top.
fn step(
    path: &str,
    r: &RawRoute,
    cx: &RouteContext,
    idx: usize,
    weight: u32,
    canary_only: bool,
) -> ChainStep {
    let base = cx.deployment_retry.get(idx).unwrap_or(cx.default_retry);
    // Errors in the route's retry block were reported once (`route`).
    let retry = retry(
        &format!("{path}.retry"),
        &r.retry,
        base,
        &mut Errors::default(),
    );
    ChainStep {
        deployment: idx,
        retry,
        weight,
        canary_only,
    }
}

/// `chain`: the listed deployments that exist, each once, with its weight.
fn chain_steps(path: &str, r: &RawRoute, cx: &RouteContext, errs: &mut Errors) -> Vec<ChainStep> {
    let mut steps: Vec<ChainStep> = Vec::new();
    for (i, entry) in r.chain.iter().enumerate() {
        let step_path = format!("{path}.chain[{i}]");
        let weight = match entry.weight {
            Some(w) if w > MAX_WEIGHT => {
                errs.push(
                    &format!("{step_path}.weight"),
                    format!("must be between 0 and {MAX_WEIGHT}"),
                );
                1
            }
            Some(w) => w,
            None => 1,
        };
        let dep = &entry.deployment;
        if let Some(idx) = lookup(&step_path, dep, cx, errs) {
            if steps.iter().any(|s| s.deployment == idx) {
                errs.push(&step_path, format!("deployment {dep:?} appears twice"));
            }
            steps.push(step(path, r, cx, idx, weight, false));
        }
    }
    steps
}

fn strategy(path: &str, name: Option<&str>, steps: &[ChainStep], errs: &mut Errors) -> Strategy {
    let strategy = match name {
        None => Strategy::default(),
        Some(s) => Strategy::from_name(s).unwrap_or_else(|| {
            let known: Vec<String> = Strategy::ALL
                .iter()
                .map(|s| format!("{:?}", s.as_str()))
                .collect();
            errs.push(
                &format!("{path}.strategy"),
                format!("{s:?} is not one of {}", known.join(", ")),
            );
            Strategy::default()
        }),
    };
    if strategy == Strategy::Weighted && !steps.is_empty() && steps.iter().all(|s| s.weight == 0) {
        errs.push(
            &format!("{path}.chain"),
            "strategy \"weighted\" needs at least one entry with a weight above 0",
        );
    }
    strategy
}

/// `canary`: the share, and the index of its deployment (which must have the required tags).
fn canary(
    path: &str,
    c: &RawCanary,
    cx: &RouteContext,
    require_tags: &[String],
    errs: &mut Errors,
) -> Option<usize> {
    if c.percent_bps > 10_000 {
        errs.push(
            &format!("{path}.canary.percent_bps"),
            "must be between 0 and 10000 (basis points: 500 = 5 %)",
        );
    }
    let dpath = format!("{path}.canary.deployment");
    let idx = lookup(&dpath, &c.deployment, cx, errs)?;
    if !has_tags(cx, idx, require_tags) {
        errs.push(
            &dpath,
            format!(
                "deployment {:?} lacks a required tag ({})",
                c.deployment,
                require_tags.join(", ")
            ),
        );
    }
    Some(idx)
}

/// Whether deployment `idx` has every tag of `tags`.
fn has_tags(cx: &RouteContext, idx: usize, tags: &[String]) -> bool {
    cx.deployments
        .get(idx)
        .is_some_and(|d| tags.iter().all(|t| d.has_tag(t)))
}

/// The index of deployment `name`, reporting an unknown one at `path`.
fn lookup(path: &str, name: &str, cx: &RouteContext, errs: &mut Errors) -> Option<usize> {
    match cx.deployment_index.get(name) {
        Some(&idx) => Some(idx),
        None if cx.raw_deployments.contains_key(name) => None, // reported under deployments
        None => {
            let known = join_keys(cx.raw_deployments.keys());
            errs.push(
                path,
                format!("unknown deployment {name:?} (known: {known})"),
            );
            None
        }
    }
}

fn resume_policy(
    path: &str,
    mode: Option<&str>,
    max: Option<u32>,
    errs: &mut Errors,
) -> ResumePolicy {
    let mode = match mode {
        None | Some("auto") => ResumeMode::Auto,
        Some("prefill") => ResumeMode::Prefill,
        Some("replay") => ResumeMode::Replay,
        Some("off") => ResumeMode::Off,
        Some(other) => {
            errs.push(
                &format!("{path}.resume"),
                format!("{other:?} is not one of \"auto\", \"prefill\", \"replay\", \"off\""),
            );
            ResumeMode::Auto
        }
    };
    let max = match max {
        Some(n) if n > 5 => {
            errs.push(&format!("{path}.max_resumes"), "must be at most 5");
            2
        }
        Some(n) => n,
        None => 2,
    };
    ResumePolicy { mode, max }
}

/// Default floor and cap of a p95 hedge (`hedge: {"after": "p95"}`).
const P95_FLOOR_MS: u64 = 250;
const P95_CAP_MS: u64 = 10_000;

/// `hedge`: a fixed `after_ms`, or `after: "p95"` with an optional `floor_ms` and `cap_ms`.
/// Returns (the fixed delay or the floor, the cap of a p95 hedge).
fn hedge(
    path: &str,
    h: &RawHedge,
    request_timeout_ms: u64,
    errs: &mut Errors,
) -> (Option<u64>, Option<u64>) {
    let at = |f: &str| format!("{path}.hedge.{f}");
    match (h.after.as_deref(), h.after_ms) {
        (None, Some(ms)) => {
            if h.floor_ms.is_some() || h.cap_ms.is_some() {
                errs.push(
                    &at("floor_ms"),
                    "floor_ms and cap_ms go with after: \"p95\"",
                );
            }
            (
                Some(errs.ms(&at("after_ms"), Some(ms), request_timeout_ms)),
                None,
            )
        }
        (Some("p95"), None) => {
            let floor = errs.ms(&at("floor_ms"), h.floor_ms, P95_FLOOR_MS);
            let cap = errs.ms(&at("cap_ms"), h.cap_ms, P95_CAP_MS.max(floor));
            if cap < floor {
                errs.push(&at("cap_ms"), "must not be below floor_ms");
            }
            (Some(floor), Some(cap))
        }
        (Some("p95"), Some(_)) => {
            errs.push(
                &at("after_ms"),
                "after_ms and after: \"p95\" exclude each other",
            );
            (None, None)
        }
        (Some(other), _) => {
            errs.push(&at("after"), format!("{other:?} is not \"p95\""));
            (None, None)
        }
        (None, None) => {
            errs.push(&at("after_ms"), "a hedge needs after_ms or after: \"p95\"");
            (None, None)
        }
    }
}
