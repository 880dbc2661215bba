//! The engine driven by a scripted transport and a manual clock: one test per error class and
//! per streaming-contract rule. Time is virtual, so timeouts are exact and tests are instant.

#[path = "../support/mod.rs"]
mod support;

mod after_commit;
mod before_commit;
mod billing;
mod budget_cap;
mod resume;
mod schema;

use edge_router::api::parse_chat_request;
use edge_router::config::{parse_table, RoutingTable};
use edge_router::engine::{
    AlwaysClosed, CommittedStream, Engine, Meta, Outcome, ReadAhead, RequestContext,
};
use futures::executor::block_on;
use serde_json::{json, Value};
use support::*;

const A: &str = "http://up-a/v1";
const B: &str = "http://up-b/v1";
const C: &str = "http://up-c/v1";

/// Three OpenAI-compatible deployments a, b, c (context 8k, 8k, 128k) and routes over them.
fn table(route_extra: Value) -> RoutingTable {
    parse_table(&table_json(route_extra)).unwrap()
}

/// `table`'s JSON text.
fn table_json(route_extra: Value) -> String {
    let dep = |url_provider: &str, ctx: u32| {
        json!({"provider": url_provider, "model": format!("model-{url_provider}"), "context_window": ctx,
               "price": {"input_per_mtok_usd": 1, "output_per_mtok_usd": 2}})
    };
    let mut route = json!({"chain": ["a", "b", "c"]});
    if let (Value::Object(r), Value::Object(extra)) = (&mut route, route_extra) {
        r.extend(extra);
    }
    let t = json!({
        "version": 1,
        "defaults": {"retry": {"max_attempts": 2, "backoff_base_ms": 100, "backoff_max_ms": 1000, "max_retry_after_ms": 5000},
                     "timeouts": {"connect_ms": 1000, "first_token_ms": 2000, "idle_ms": 3000, "attempt_ms": 20000},
                     "request_timeout_ms": 60000},
        "providers": {
            "pa": {"kind": "openai", "base_url": A, "api_key_secret": "TEST_KEY", "headers": {"x-extra": "1"}},
            "pb": {"kind": "openai", "base_url": B, "api_key_secret": "TEST_KEY"},
            "pc": {"kind": "openai", "base_url": C}
        },
        "deployments": {"a": dep("pa", 8000), "b": dep("pb", 8000), "c": dep("pc", 128000)},
        "routes": {"r": route}
    });
    t.to_string()
}

struct Run {
    outcome: Outcome<ScriptBody>,
    clock: ManualClock,
    script: Script,
    table: RoutingTable,
}

fn run(t: &RoutingTable, script: &Script, clock: &ManualClock, body: Value) -> Run {
    let req = parse_chat_request(body.to_string().as_bytes()).unwrap();
    run_request(t, script, clock, req)
}

/// `run` for a request the test prepared itself (fields the worker sets at the door).
fn run_request(
    t: &RoutingTable,
    script: &Script,
    clock: &ManualClock,
    req: edge_router::api::ChatRequest,
) -> Run {
    let engine = Engine {
        table: t,
        transport: script,
        clock,
        secrets: &NoSecrets,
        health: &AlwaysClosed,
        redactor: &std::rc::Rc::new(edge_router::redact::Redactor::for_table(t, &NoSecrets)),
    };
    let ctx = RequestContext {
        order: None,
        outside_calls: 0,
        request_id: "req_1".into(),
        started_ms: clock.0.get(),
        jitter_seed: 42,
    };
    let route = t.route("r").unwrap();
    Run {
        outcome: block_on(engine.run(route, &std::rc::Rc::new(req), ctx)),
        clock: clock.clone(),
        script: script.clone(),
        table: t.clone(),
    }
}

fn req(stream: bool) -> Value {
    json!({"model": "r", "messages": [{"role": "user", "content": "hi"}], "stream": stream})
}

fn setup() -> (RoutingTable, ManualClock, Script) {
    let clock = ManualClock::at(1_000_000);
    let script = Script::new(&clock);
    (table(json!({})), clock, script)
}

fn complete(r: Run) -> (Value, Meta) {
    match r.outcome {
        Outcome::Complete { body, meta, .. } => (serde_json::from_slice(&body).unwrap(), meta),
        Outcome::Failed { error, .. } => panic!("expected an answer, got {error:?}"),
        Outcome::Stream(_) => panic!("expected a complete answer, got a stream"),
    }
}

fn failed(r: Run) -> (edge_router::api::ApiError, Meta) {
    match r.outcome {
        Outcome::Failed { error, meta } => (error, meta),
        _ => panic!("expected a failure"),
    }
}

/// Drains a committed stream: (client bytes as text, final meta).
fn drain(r: Run) -> (String, Meta) {
    let Run {
        outcome,
        clock,
        script,
        table,
    } = r;
    let engine = Engine {
        table: &table,
        transport: &script,
        clock: &clock,
        secrets: &NoSecrets,
        health: &AlwaysClosed,
        redactor: &std::rc::Rc::new(edge_router::redact::Redactor::for_table(&table, &NoSecrets)),
    };
    let mut s: Box<CommittedStream<ScriptBody>> = match outcome {
        Outcome::Stream(s) => s,
        Outcome::Failed { error, .. } => panic!("expected a stream, got {error:?}"),
        Outcome::Complete { .. } => panic!("expected a stream"),
    };
    let mut out = Vec::new();
    while let Some(b) = block_on(s.next(&engine)) {
        out.extend(b);
    }
    (String::from_utf8(out).unwrap(), s.meta().clone())
}

fn reasons(meta: &Meta) -> String {
    meta.fallback_reasons()
}

fn last_event(text: &str) -> Value {
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap()
}
