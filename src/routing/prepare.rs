//! The door's decisions for one chat request, before any upstream is called: which task and
//! route serve it, whether the caller's key may use that route, how its output is capped, in
//! which order the route's deployments are tried, and what the key reserves for it.
//!
//! Pure: the isolate's session memory and live stats come in through traits, the time and the
//! randomness as values, so every rule here is tested natively. The glue does the I/O around
//! it (the key's admission, the engine, the response).

use super::{classify, explain, plan, sticky, Classification, DeploymentStats, Plan, PlanInput};
use super::{RequestFacts, TASK_HEADER};
use crate::api::models::model_not_found;
use crate::api::{ApiError, ChatRequest};
use crate::config::money::usd_to_nanos;
use crate::config::{Route, RoutingTable};
use crate::keys::{cap_output, estimate, estimated_usage, KeyRecord};
use crate::state::quota::Estimate;
use serde_json::Value;

/// Per-request cost ceiling, in USD.
pub const COST_HEADER: &str = "x-max-cost-usd";

/// Where sessions on sticky routes were last answered (the glue keeps this per isolate).
pub trait Sessions {
    /// The deployment that last answered `session` on `route`, while that is still fresh.
    fn remembered(&self, route: &str, session: &str, now_ms: u64) -> Option<String>;
}

/// No session memory: sticky routes fall back to rendezvous hashing.
pub struct NoSessions;

impl Sessions for NoSessions {
    fn remembered(&self, _: &str, _: &str, _: u64) -> Option<String> {
        None
    }
}

/// What arrived with the request besides its body.
pub struct Door<'r> {
    pub path: &'r str,
    /// Lower-case names.
    pub headers: &'r [(String, String)],
    /// The caller's gateway key, if it used one.
    pub key: Option<&'r KeyRecord>,
    pub now_ms: u64,
    pub random: u64,
}

/// The world the decisions read.
pub struct World<'w> {
    pub table: &'w RoutingTable,
    pub sessions: &'w dyn Sessions,
    pub stats: &'w dyn DeploymentStats,
}

/// How a request was routed: its task and route, its deployments' order, its session.
pub struct Routed {
    pub class: Classification,
    pub plan: Plan,
    pub session: Option<String>,
}

/// A request ready for the engine.
pub struct Prepared<'t> {
    pub route: &'t Route,
    pub routed: Routed,
    /// What the caller's key reserves for it (None without a key).
    pub reserve: Option<Estimate>,
}

/// Decides everything about `chat` that needs no upstream; notes the schema its answer must
/// follow (when its route checks answers); caps its output when the caller's key has a token
/// or spend limit (the answer may not cost more than is reserved).
pub fn prepare<'t>(
    world: &World<'t>,
    chat: &mut ChatRequest,
    door: &Door,
) -> Result<Prepared<'t>, ApiError> {
    let (route, routed) = route_request(world, chat, door)?;
    chat.output_schema = route
        .validate_output
        .then(|| crate::schema::requested(&chat.body).cloned())
        .flatten();
    let Some(key) = door.key else {
        return Ok(Prepared {
            route,
            routed,
            reserve: None,
        });
    };
    if !key.allows(&route.name) {
        let mut e = ApiError::new(
            403,
            "permission_error",
            "model_not_allowed",
            format!(
                "Gateway key \"{}\" may not use model `{}`.",
                key.name, route.name
            ),
        );
        e.param = Some("model".into());
        return Err(e);
    }
    cap_output(chat, key, world.table);
    Ok(Prepared {
        route,
        routed,
        reserve: Some(estimate(chat, route, world.table)),
    })
}

/// The routing decision for a request as JSON (the admin API's explain endpoint).
pub fn explain_request(world: &World, chat: &ChatRequest, door: &Door) -> Result<Value, ApiError> {
    let (route, routed) = route_request(world, chat, door)?;
    let input = plan_input(world, route, chat, door, routed.session.as_deref())?;
    Ok(serde_json::json!({
        "classification": routed.class.to_json(),
        "session": routed.session,
        "strategy": route.strategy.as_str(),
        "plan": explain(&input, world.stats),
    }))
}

/// The route for this request, and its deployments in the order to try. An unknown model's
/// error lists only the routes the caller's key may use.
fn route_request<'t>(
    world: &World<'t>,
    chat: &ChatRequest,
    door: &Door,
) -> Result<(&'t Route, Routed), ApiError> {
    let table = world.table;
    let facts = RequestFacts::from_request(chat, door.path, door.headers);
    let class = classify(table, &facts).map_err(|msg| {
        let from_header = header(door.headers, TASK_HEADER).is_some_and(|t| !t.is_empty());
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
            door.key.is_none_or(|k| k.allows(name))
        }));
    };
    let session = sticky::session_of(chat, door.headers);
    let input = plan_input(world, route, chat, door, session.as_deref())?;
    let plan = plan(&input, world.stats);
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
    Ok((
        route,
        Routed {
            class,
            plan,
            session,
        },
    ))
}

fn plan_input<'a>(
    world: &World<'a>,
    route: &'a Route,
    chat: &ChatRequest,
    door: &Door,
    session: Option<&str>,
) -> Result<PlanInput<'a>, ApiError> {
    let table = world.table;
    let max_cost_nanos = match header(door.headers, COST_HEADER) {
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
        (Some(s), Some(_)) => world
            .sessions
            .remembered(&route.name, s, door.now_ms)
            .and_then(|name| table.deployments.iter().position(|d| d.name == name))
            .or_else(|| sticky::rendezvous(route, table, s)),
        _ => None,
    };
    Ok(PlanInput {
        route,
        table,
        est: estimated_usage(chat, table),
        max_cost_nanos,
        sticky,
        random: door.random,
    })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
}
