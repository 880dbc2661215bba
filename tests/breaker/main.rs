//! The circuit-breaker gate through the real engine: every test drives `Engine::run` with a
//! scripted transport, a manual clock and a `Health` port backed by the REAL breaker state
//! machine (`state::breaker::Breaker`, what the Durable Object runs). Time is virtual: no
//! sleeps, exact cooldowns.
//!
//! Defaults here (see `table`): route `r` over [a, b]; 2 attempts per deployment; breakers
//! trip after 3 failures in a row (rate trip off), cooldown 5 s doubling up to 20 s; a probe
//! lease lasts `attempt_ms` (20 s).

#[path = "../support/health.rs"]
mod health;
#[path = "../support/mod.rs"]
mod support;

mod after_commit;
mod all_open;
mod gate;
mod what_counts;

use edge_router::api::{parse_chat_request, ApiError};
use edge_router::config::{parse_table, Deployment, RoutingTable};
use edge_router::engine::{Clock, Engine, Health, Meta, Outcome, RequestContext};
use edge_router::state::breaker::{Phase, Report, View};
use futures::executor::block_on;
use health::{SharedBreakers, StaleIsolate, Store};
use serde_json::{json, Value};
use std::rc::Rc;
use support::*;

const A: &str = "http://up-a/v1";
const B: &str = "http://up-b/v1";
const C: &str = "http://up-c/v1";
/// The clock's start; tests name times as offsets from it.
const T0: u64 = 1_000_000;

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

/// Deployments a, b, c (OpenAI-compatible at A, B, C); `breaker` is merged into
/// `defaults.breaker`, `deps` into `deployments`, `route` into route `r`.
fn table(breaker: Value, deps: Value, route: Value) -> RoutingTable {
    let dep =
        |p: &str| json!({"provider": p, "model": format!("model-{p}"), "context_window": 8000});
    let mut t = json!({
        "version": 1,
        "defaults": {
            "retry": {"max_attempts": 2, "backoff_base_ms": 100, "backoff_max_ms": 1000, "max_retry_after_ms": 5000},
            "timeouts": {"connect_ms": 1000, "first_token_ms": 2000, "idle_ms": 3000, "attempt_ms": 20000},
            "request_timeout_ms": 60000,
            "breaker": {"consecutive_failures": 3, "failure_rate_bps": 0, "cooldown_ms": 5000, "cooldown_max_ms": 20000}
        },
        "providers": {
            "pa": {"kind": "openai", "base_url": A},
            "pb": {"kind": "openai", "base_url": B},
            "pc": {"kind": "openai", "base_url": C}
        },
        "deployments": {"a": dep("pa"), "b": dep("pb"), "c": dep("pc")},
        "routes": {"r": {"chain": ["a", "b"]}}
    });
    merge(&mut t["defaults"]["breaker"], breaker);
    merge(&mut t["deployments"], deps);
    merge(&mut t["routes"]["r"], route);
    parse_table(&t.to_string()).unwrap()
}

fn plain_table() -> RoutingTable {
    table(json!({}), json!({}), json!({}))
}

/// What the caller got: an answer (the body, or the whole stream as text) or an error.
enum Served {
    Ok { text: String, meta: Meta },
    Err { error: ApiError, meta: Meta },
}

impl Served {
    fn ok(self) -> (String, Meta) {
        match self {
            Served::Ok { text, meta } => (text, meta),
            Served::Err { error, .. } => panic!("expected an answer, got {error:?}"),
        }
    }
    fn meta(self) -> Meta {
        self.ok().1
    }
    fn err(self) -> (ApiError, Meta) {
        match self {
            Served::Err { error, meta } => (error, meta),
            Served::Ok { meta, .. } => panic!(
                "expected an error, got an answer from {:?}",
                meta.deployment
            ),
        }
    }
}

/// One gateway: table, transport script, clock and the shared breakers.
struct Gw {
    table: RoutingTable,
    clock: ManualClock,
    script: Script,
    health: SharedBreakers,
}

impl Gw {
    fn new(table: RoutingTable) -> Gw {
        let clock = ManualClock::at(T0);
        Gw {
            script: Script::new(&clock),
            health: SharedBreakers::new(&clock),
            table,
            clock,
        }
    }

    fn dep(&self, name: &str) -> &Deployment {
        self.table
            .deployments
            .iter()
            .find(|d| d.name == name)
            .unwrap()
    }

    /// Moves the clock to `ms` after T0 (never backwards).
    fn at(&self, ms: u64) {
        assert!(T0 + ms >= self.clock.now_ms(), "clock would go backwards");
        self.clock.0.set(T0 + ms);
    }

    fn serve(&self, stream: bool) -> Served {
        self.serve_with(&self.health, stream)
    }

    fn serve_with<H: Health>(&self, health: &H, stream: bool) -> Served {
        let body = json!({"model": "r", "messages": [{"role": "user", "content": "hi"}], "stream": stream});
        let req = Rc::new(parse_chat_request(body.to_string().as_bytes()).unwrap());
        let engine = Engine {
            table: &self.table,
            transport: &self.script,
            clock: &self.clock,
            secrets: &NoSecrets,
            health,
            redactor: &std::rc::Rc::new(edge_router::redact::Redactor::for_table(
                &self.table,
                &NoSecrets,
            )),
        };
        let ctx = RequestContext {
            order: None,
            outside_calls: 0,
            request_id: "req_breaker".into(),
            started_ms: self.clock.now_ms(),
            jitter_seed: 7,
        };
        let route = self.table.route("r").unwrap();
        match block_on(engine.run(route, &req, ctx)) {
            Outcome::Complete { body, meta, .. } => Served::Ok {
                text: String::from_utf8(body).unwrap(),
                meta,
            },
            Outcome::Stream(mut s) => {
                let mut out = Vec::new();
                while let Some(b) = block_on(s.next(&engine)) {
                    out.extend(b);
                }
                Served::Ok {
                    text: String::from_utf8(out).unwrap(),
                    meta: s.meta().clone(),
                }
            }
            Outcome::Failed { error, meta } => Served::Err { error, meta },
        }
    }
}

fn ok_json() -> Step {
    Step::json(200, &completion("ok"))
}

fn overloaded() -> Step {
    Step::json(503, &openai_error("overloaded", "server_error", ""))
}

fn server_error() -> Step {
    Step::json(500, &openai_error("boom", "server_error", ""))
}

fn rate_limited(retry_after_s: &str) -> Step {
    Step::json(
        429,
        &openai_error("slow down", "requests", "rate_limit_exceeded"),
    )
    .with_header("retry-after", retry_after_s)
}

fn invalid_request() -> Step {
    Step::json(
        400,
        &openai_error(
            "temperature must be <= 2",
            "invalid_request_error",
            "invalid_value",
        ),
    )
}

fn content_policy() -> Step {
    Step::json(
        400,
        &openai_error(
            "rejected by the safety system",
            "invalid_request_error",
            "content_policy_violation",
        ),
    )
}

/// A stream that commits ("Hello") and then breaks: a reset connection.
fn cut_after_commit() -> Step {
    Step::sse(vec![(0, role_chunk()), (0, chunk("Hello"))], End::Reset)
}

fn failure(probe: bool) -> Report {
    Report {
        ok: false,
        probe,
        retry_after_ms: None,
        started_ms: None,
    }
}

fn success(probe: bool) -> Report {
    Report {
        ok: true,
        probe,
        retry_after_ms: None,
        started_ms: None,
    }
}

fn skipped(meta: &Meta) -> Vec<(&str, &str)> {
    meta.skipped
        .iter()
        .map(|(d, w)| (d.as_str(), w.as_str()))
        .collect()
}

fn attempts_on(meta: &Meta, dep: &str) -> usize {
    meta.attempts.iter().filter(|a| a.deployment == dep).count()
}
