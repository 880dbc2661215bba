//! The door's decisions: key scope, output caps and reservations, task and cost-header errors,
//! and session memory on sticky routes.

use super::prepare::*;
use super::{NoStats, TASK_HEADER};
use crate::api::{parse_chat_request, ChatRequest};
use crate::config::{parse_table, RoutingTable};
use crate::keys::KeyRecord;
use serde_json::{json, Value};

fn table() -> RoutingTable {
    let dep = |price: &str| {
        json!({"provider": "mock", "model": "m", "context_window": 100000,
               "price": {"input_per_mtok_usd": price, "output_per_mtok_usd": price}})
    };
    let t = json!({
        "version": 1,
        "providers": {"mock": {"kind": "mock"}},
        "deployments": {"a": dep("1"), "b": dep("2"), "c": dep("4")},
        "routes": {
            "fast": {"chain": ["a", "b"]},
            "smart": {"chain": ["c"]},
            "pinned": {"chain": ["a", "b", "c"], "sticky": {"ttl_ms": 60000}},
        },
        "tasks": {"routes": {"code": "smart"}},
        "defaults": {"estimated_output_tokens": 50},
    });
    parse_table(&t.to_string()).unwrap()
}

fn chat(body: Value) -> ChatRequest {
    parse_chat_request(body.to_string().as_bytes()).unwrap()
}

fn hello(model: &str) -> ChatRequest {
    chat(json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]}))
}

fn key(record: Value) -> KeyRecord {
    KeyRecord::parse("id", &record.to_string()).unwrap()
}

struct Remember(&'static str);

impl Sessions for Remember {
    fn remembered(&self, route: &str, session: &str, _: u64) -> Option<String> {
        (route == "pinned" && session == "s1").then(|| self.0.to_string())
    }
}

fn run(
    t: &RoutingTable,
    chat: &mut ChatRequest,
    headers: &[(String, String)],
    key: Option<&KeyRecord>,
    sessions: &dyn Sessions,
) -> Result<(String, Vec<String>, Option<u64>), crate::api::ApiError> {
    let world = World {
        table: t,
        sessions,
        stats: &NoStats,
    };
    let door = Door {
        path: "/v1/chat/completions",
        headers,
        key,
        now_ms: 1_000,
        random: 7,
    };
    let p = prepare(&world, chat, &door)?;
    let steps = p.route.chain.steps();
    let order = p
        .routed
        .plan
        .order
        .iter()
        .map(|&i| t.deployment(steps[i].deployment).unwrap().name.clone())
        .collect();
    Ok((p.route.name.clone(), order, p.reserve.map(|r| r.tokens)))
}

#[test]
fn without_a_key_the_request_is_routed_and_nothing_is_reserved() {
    let t = table();
    let mut c = hello("fast");
    let (route, order, reserve) = run(&t, &mut c, &[], None, &NoSessions).unwrap();
    assert_eq!((route.as_str(), reserve), ("fast", None));
    assert_eq!(order, ["a", "b"]);
    assert!(c.body.get("max_tokens").is_none());
}

#[test]
fn a_key_may_use_only_its_routes_and_an_unknown_model_lists_only_those() {
    let t = table();
    let k = key(json!({"name": "team", "routes": ["fast"]}));
    let e = run(&t, &mut hello("smart"), &[], Some(&k), &NoSessions).unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (403, "model_not_allowed"));
    assert_eq!(e.param.as_deref(), Some("model"));
    assert!(e.message.contains("\"team\"") && e.message.contains("`smart`"));
    let e = run(&t, &mut hello("nope"), &[], Some(&k), &NoSessions).unwrap_err();
    assert_eq!(e.status, 404);
    assert!(e.message.contains("fast") && !e.message.contains("smart"));
}

#[test]
fn a_budgeted_key_caps_the_output_at_what_it_reserves() {
    let t = table();
    let k = key(json!({"name": "b", "budget_day_usd": "1"}));
    let mut c = hello("fast");
    let (_, _, reserve) = run(&t, &mut c, &[], Some(&k), &NoSessions).unwrap();
    assert_eq!(c.body.get("max_tokens"), Some(&json!(50)));
    // The prompt's estimate plus the 50 output tokens it may now write at most.
    assert!(reserve.is_some_and(|r| r > 50 && r < 60), "{reserve:?}");
    // A client's own limit stands, and is what is reserved.
    let mut c = chat(json!({"model": "fast", "max_tokens": 500,
                           "messages": [{"role": "user", "content": "hi"}]}));
    let (_, _, reserve) = run(&t, &mut c, &[], Some(&k), &NoSessions).unwrap();
    assert_eq!(c.body.get("max_tokens"), Some(&json!(500)));
    assert!(reserve.is_some_and(|r| r >= 500), "{reserve:?}");
    // A key without limits leaves the request alone.
    let open = key(json!({"name": "o"}));
    let mut c = hello("fast");
    run(&t, &mut c, &[], Some(&open), &NoSessions).unwrap();
    assert!(c.body.get("max_tokens").is_none());
}

#[test]
fn header_errors_name_the_header() {
    let t = table();
    let h = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    let e = run(
        &t,
        &mut hello("fast"),
        &h(TASK_HEADER, "poetry"),
        None,
        &NoSessions,
    )
    .unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (400, "unknown_task"));
    assert_eq!(e.param.as_deref(), Some(TASK_HEADER));
    let e = run(
        &t,
        &mut hello("fast"),
        &h(COST_HEADER, "lots"),
        None,
        &NoSessions,
    )
    .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.param.as_deref()),
        ("invalid_cost_ceiling", Some(COST_HEADER))
    );
    // A ceiling no deployment meets: a 400 naming why each was left out.
    let e = run(
        &t,
        &mut hello("fast"),
        &h(COST_HEADER, "0.000000001"),
        None,
        &NoSessions,
    )
    .unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (400, "no_eligible_deployment"));
    assert!(e.message.contains("a: cost_ceiling"), "{}", e.message);
}

#[test]
fn a_remembered_session_goes_first_on_a_sticky_route_and_a_stale_name_is_ignored() {
    let t = table();
    let session = vec![("x-session-id".to_string(), "s1".to_string())];
    for dep in ["a", "b", "c"] {
        let (_, order, _) = run(&t, &mut hello("pinned"), &session, None, &Remember(dep)).unwrap();
        assert_eq!(order[0], dep);
    }
    let (_, gone, _) = run(&t, &mut hello("pinned"), &session, None, &Remember("zz")).unwrap();
    let (_, none, _) = run(&t, &mut hello("pinned"), &session, None, &NoSessions).unwrap();
    // A name the table no longer has falls back to the session's rendezvous deployment.
    assert_eq!(gone, none);
    // Routes without sticky ignore the memory.
    let (_, order, _) = run(&t, &mut hello("fast"), &session, None, &Remember("b")).unwrap();
    assert_eq!(order, ["a", "b"]);
}
