//! Routing at the door: classify the request (task → route), then let the route's strategy
//! order its deployments (`crate::routing`), with the isolate's live stats, the request's cost
//! ceiling and its session's affinity.
//!
//! Sessions: a request's session is `x-session-id`, else the body's `user`. On routes with
//! `sticky`, the session goes to the deployment that last answered it in this isolate (kept
//! for the route's `ttl_ms`), else to its rendezvous-hash deployment, which every isolate
//! computes alike, so affinity mostly survives isolate changes without shared state.

use super::health::SnapshotStats;
use crate::api::models::model_not_found;
use crate::api::{ApiError, ChatRequest};
use crate::config::money::usd_to_nanos;
use crate::config::{Route, RoutingTable};
use crate::keys::estimated_usage;
use crate::keys::KeyRecord;
use crate::routing::{
    classify, explain, plan, sticky, Classification, Plan, PlanInput, RequestFacts, TASK_HEADER,
};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;

/// Per-request cost ceiling, in USD.
pub const COST_HEADER: &str = "x-max-cost-usd";
const MAX_SESSIONS: usize = 10_000;

thread_local! {
    /// (route, session) → (deployment name, expires at). Names, not indices: a reloaded table
    /// may number its deployments differently.
    static SESSIONS: RefCell<HashMap<(String, String), (String, u64)>> = RefCell::new(HashMap::new());
}

/// The decision for a request as JSON, for the admin API's explain endpoint.
pub fn explain_request(
    table: &RoutingTable,
    chat: &ChatRequest,
    path: &str,
    headers: &[(String, String)],
    random: u64,
    now_ms: u64,
) -> Result<Value, ApiError> {
    let routed = route_request(table, chat, path, headers, random, now_ms, None)?;
    let route = table
        .route(&routed.class.route)
        .ok_or_else(|| ApiError::not_found("route vanished"))?;
    let input = plan_input(
        table,
        route,
        chat,
        headers,
        routed.session.as_deref(),
        random,
        now_ms,
    )?;
    Ok(serde_json::json!({
        "classification": routed.class.to_json(),
        "session": routed.session,
        "strategy": route.strategy.as_str(),
        "plan": explain(&input, &SnapshotStats),
    }))
}

pub struct Routed {
    pub class: Classification,
    pub plan: Plan,
    pub session: Option<String>,
}

/// Request headers with lower-case names.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
}

/// The route's name for this request, and its deployments in the order to try. `key` is the
/// caller's gateway key: an unknown model's error lists only the routes it may use.
pub fn route_request(
    table: &RoutingTable,
    chat: &ChatRequest,
    path: &str,
    headers: &[(String, String)],
    random: u64,
    now_ms: u64,
    key: Option<&KeyRecord>,
) -> Result<Routed, ApiError> {
    let facts = RequestFacts::from_request(chat, path, headers);
    let class = classify(table, &facts).map_err(|msg| {
        let from_header = header(headers, TASK_HEADER).is_some_and(|t| !t.is_empty());
        let mut e = ApiError::new(400, "invalid_request_error", "unknown_task", msg);
        e.param = Some(
            if from_header {
                TASK_HEADER
            } else {
                "metadata.task"
            }
            .into(),
        );
        e
    })?;
    let Some(route) = table.route(&class.route) else {
        return Err(model_not_found(table, &chat.model, |name| {
            key.is_none_or(|k| k.allows(name))
        }));
    };
    let session = sticky::session_of(chat, headers);
    let input = plan_input(
        table,
        route,
        chat,
        headers,
        session.as_deref(),
        random,
        now_ms,
    )?;
    let plan = plan(&input, &SnapshotStats);
    if plan.order.is_empty() {
        let why: Vec<String> = plan
            .removed
            .iter()
            .map(|(d, r)| format!("{d}: {r}"))
            .collect();
        return Err(ApiError::new(
            400,
            "invalid_request_error",
            "no_eligible_deployment",
            format!(
                "no deployment of model `{}` meets this request's constraints ({})",
                route.name,
                why.join(", ")
            ),
        ));
    }
    Ok(Routed {
        class,
        plan,
        session,
    })
}

fn plan_input<'a>(
    table: &'a RoutingTable,
    route: &'a Route,
    chat: &ChatRequest,
    headers: &[(String, String)],
    session: Option<&str>,
    random: u64,
    now_ms: u64,
) -> Result<PlanInput<'a>, ApiError> {
    let max_cost_nanos = match header(headers, COST_HEADER) {
        None => None,
        Some(v) => Some(usd_to_nanos(&Value::String(v.to_string())).map_err(|msg| {
            let mut e = ApiError::new(
                400,
                "invalid_request_error",
                "invalid_cost_ceiling",
                format!("{COST_HEADER}: {msg}"),
            );
            e.param = Some(COST_HEADER.into());
            e
        })?),
    };
    let sticky = match (session, route.sticky_ttl_ms) {
        (Some(s), Some(_)) => {
            remembered(table, route, s, now_ms).or_else(|| sticky::rendezvous(route, table, s))
        }
        _ => None,
    };
    Ok(PlanInput {
        route,
        table,
        est: estimated_usage(chat, table),
        max_cost_nanos,
        sticky,
        random,
    })
}

fn remembered(table: &RoutingTable, route: &Route, session: &str, now_ms: u64) -> Option<usize> {
    let name = SESSIONS.with(|s| {
        s.borrow()
            .get(&(route.name.clone(), session.to_string()))
            .filter(|(_, expires)| *expires > now_ms)
            .map(|(dep, _)| dep.clone())
    })?;
    table.deployments.iter().position(|d| d.name == name)
}

/// Remembers which deployment answered a session on a sticky route.
pub fn remember_session(
    table: &RoutingTable,
    route: &Route,
    session: &str,
    deployment: &str,
    now_ms: u64,
) {
    let Some(ttl) = route.sticky_ttl_ms else {
        return;
    };
    if !table.deployments.iter().any(|d| d.name == deployment) {
        return;
    }
    SESSIONS.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() >= MAX_SESSIONS {
            s.retain(|_, (_, expires)| *expires > now_ms);
            if s.len() >= MAX_SESSIONS {
                s.clear();
            }
        }
        s.insert(
            (route.name.clone(), session.to_string()),
            (deployment.to_string(), now_ms.saturating_add(ttl)),
        );
    });
}
