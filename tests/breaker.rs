//! The circuit-breaker gate through the real engine: every test drives `Engine::run` with a
//! scripted transport, a manual clock and a `Health` port backed by the REAL breaker state
//! machine (`state::breaker::Breaker`, what the Durable Object runs). Time is virtual: no
//! sleeps, exact cooldowns.
//!
//! Defaults here (see `table`): route `r` over [a, b]; 2 attempts per deployment; breakers
//! trip after 3 failures in a row (rate trip off), cooldown 5 s doubling up to 20 s; a probe
//! lease lasts `attempt_ms` (20 s).

#[path = "support/health.rs"]
mod health;
mod support;

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
    }
}

fn success(probe: bool) -> Report {
    Report {
        ok: true,
        probe,
        retry_after_ms: None,
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

// ---------- 1. an open breaker is a skip ----------

#[test]
fn an_open_breaker_is_skipped_without_an_attempt_and_the_next_deployment_answers() {
    let gw = Gw::new(plain_table());
    gw.script.on(A, vec![ok_json()]);
    gw.script.on(B, vec![ok_json()]);
    gw.health.trip(gw.dep("a"));

    let meta = gw.serve(false).meta();
    assert_eq!(
        gw.script.hits(A),
        0,
        "no request reaches an open deployment"
    );
    assert_eq!(gw.script.hits(B), 1);
    assert_eq!(meta.deployment.as_deref(), Some("b"));
    assert_eq!(skipped(&meta), vec![("a", "breaker_open")]);
    assert_eq!(meta.fallback_reasons(), "a:skipped_breaker_open");
    assert_eq!(meta.attempts.len(), 1, "the skip is not an attempt");
    // Port usage: one local read per deployment, no probe request (cooldown not over), one
    // report, for the deployment that answered.
    assert_eq!((gw.health.views("a"), gw.health.views("b")), (1, 1));
    assert!(gw.health.probes("a").is_empty());
    assert!(gw.health.reports("a").is_empty());
    assert_eq!(gw.health.reports("b"), vec![success(false)]);
    assert_eq!(
        gw.health.view_now("a"),
        View::Open {
            until_ms: T0 + 5000
        },
        "a skip changes nothing"
    );
}

// ---------- 2. the threshold ----------

#[test]
fn the_breaker_opens_at_the_threshold_and_then_keeps_traffic_off_the_primary() {
    // Long cooldown: no probe within the 20 requests.
    let gw = Gw::new(table(
        json!({"cooldown_ms": 60000, "cooldown_max_ms": 120000}),
        json!({}),
        json!({}),
    ));
    gw.script.on(A, vec![overloaded()]);
    gw.script.on(B, vec![ok_json()]);
    let mut hits_per_request = Vec::new();
    for i in 0..20 {
        gw.at(i * 1000);
        let before = gw.script.hits(A);
        let meta = gw.serve(false).meta();
        assert_eq!(meta.deployment.as_deref(), Some("b"), "request {i}");
        hits_per_request.push(gw.script.hits(A) - before);
        if i >= 2 {
            assert_eq!(skipped(&meta), vec![("a", "breaker_open")], "request {i}");
        }
    }
    // Request 0: 2 attempts (2 failures). Request 1: its first attempt is the 3rd failure in
    // a row and trips the breaker; the retry it had already been granted (max_attempts 2)
    // still goes out: the engine gates a deployment once per request, not per retry (with the
    // worker's Health port the trip is not even known before the request ends). That 4th
    // report reaches an open breaker and is ignored. From request 2 on: no traffic.
    assert_eq!(hits_per_request[..3], [2, 2, 0]);
    assert_eq!(gw.script.hits(A), 4);
    assert_eq!(gw.health.reports("a"), vec![failure(false); 4]);
    let b = gw.health.breaker("a");
    assert_eq!(b.total_trips, 1, "the late failure did not re-trip it");
    assert_eq!(
        gw.health.open_until("a"),
        Some(T0 + 1000 + 60000),
        "opened at the 3rd failure"
    );

    // With one attempt per request the primary sees exactly the threshold.
    let gw = Gw::new(table(
        json!({"cooldown_ms": 60000, "cooldown_max_ms": 120000}),
        json!({"a": {"retry": {"max_attempts": 1}}}),
        json!({}),
    ));
    gw.script.on(A, vec![overloaded()]);
    gw.script.on(B, vec![ok_json()]);
    for i in 0..20 {
        gw.at(i * 1000);
        assert_eq!(gw.serve(false).meta().deployment.as_deref(), Some("b"));
    }
    assert_eq!(gw.script.hits(A), 3);
    assert_eq!(gw.health.open_until("a"), Some(T0 + 2000 + 60000));
}

// ---------- 3. half-open ----------

#[test]
fn after_the_cooldown_one_probe_decides_a_failed_probe_reopens_longer_a_good_one_closes() {
    let gw = Gw::new(plain_table());
    gw.script.on(A, vec![overloaded(), ok_json()]);
    gw.script.on(B, vec![ok_json()]);
    gw.health.trip(gw.dep("a")); // open until T0 + 5 s

    gw.at(4999);
    let meta = gw.serve(false).meta();
    assert_eq!(skipped(&meta), vec![("a", "breaker_open")]);
    assert_eq!(gw.script.hits(A), 0);
    assert!(
        gw.health.probes("a").is_empty(),
        "no probe request before the cooldown ends"
    );

    // Cooldown over: this request is the probe. It fails, and is not retried here even
    // though the deployment allows 2 attempts.
    gw.at(5000);
    let meta = gw.serve(false).meta();
    assert_eq!(gw.script.hits(A), 1);
    assert_eq!(attempts_on(&meta, "a"), 1);
    assert_eq!(meta.deployment.as_deref(), Some("b"));
    assert_eq!(meta.fallback_reasons(), "a:overloaded:503");
    assert_eq!(gw.health.probes("a"), vec![(false, true)]);
    assert_eq!(gw.health.reports("a"), vec![failure(true)]);
    assert_eq!(
        gw.health.open_until("a"),
        Some(T0 + 5000 + 10_000),
        "re-opened with the cooldown doubled (5 s → 10 s)"
    );

    gw.at(14_999);
    gw.serve(false).meta();
    assert_eq!(gw.script.hits(A), 1, "still open");

    // Second probe succeeds: closed, and this very request is served by the primary.
    gw.at(15_000);
    let meta = gw.serve(false).meta();
    assert_eq!(meta.deployment.as_deref(), Some("a"));
    assert!(meta.skipped.is_empty());
    assert_eq!(gw.health.reports("a").last(), Some(&success(true)));
    assert_eq!(gw.health.view_now("a"), View::Closed);
    assert_eq!(gw.health.breaker("a").trips, 0);

    // Traffic is back on the primary without further probe requests.
    let probes = gw.health.probes("a").len();
    for i in 1..=5 {
        gw.at(15_000 + i * 100);
        assert_eq!(gw.serve(false).meta().deployment.as_deref(), Some("a"));
    }
    assert_eq!(gw.health.probes("a").len(), probes);
    assert_eq!(gw.script.hits(A), 7);

    // A successful probe reset the cooldown growth: the next trip gets the first cooldown.
    gw.at(20_000);
    gw.health.trip(gw.dep("a"));
    assert_eq!(gw.health.open_until("a"), Some(T0 + 20_000 + 5000));
}

#[test]
fn a_probe_in_flight_elsewhere_keeps_other_requests_off_the_deployment_until_its_lease_ends() {
    let gw = Gw::new(plain_table());
    gw.script.on(A, vec![ok_json()]);
    gw.script.on(B, vec![ok_json()]);
    gw.health.trip(gw.dep("a"));
    gw.at(5000);
    assert!(
        gw.health.hold_probe(gw.dep("a"), false),
        "another isolate probes"
    );

    let meta = gw.serve(false).meta();
    assert_eq!(skipped(&meta), vec![("a", "breaker_half_open")]);
    assert_eq!(meta.deployment.as_deref(), Some("b"));
    assert_eq!(gw.script.hits(A), 0);
    assert_eq!(gw.health.probes("a"), vec![(false, false)]);

    // That probe never reports: its lease (attempt_ms = 20 s) frees the slot.
    gw.at(5000 + 19_999);
    gw.serve(false).meta();
    assert_eq!(gw.script.hits(A), 0);
    gw.at(5000 + 20_000);
    let meta = gw.serve(false).meta();
    assert_eq!(meta.deployment.as_deref(), Some("a"));
    assert_eq!(gw.health.view_now("a"), View::Closed);
}

// ---------- 4. outage discipline ----------

#[test]
fn an_outage_costs_the_primary_the_threshold_plus_spaced_probes_and_recovery_is_seen_within_a_cooldown(
) {
    let gw = Gw::new(plain_table());
    gw.script.on(A, vec![overloaded()]);
    gw.script.on(B, vec![ok_json()]);
    let mut primary_hit_at = Vec::new();
    for s in 0..60 {
        gw.at(s * 1000);
        let before = gw.script.hits(A);
        let meta = gw.serve(false).meta();
        assert_eq!(meta.deployment.as_deref(), Some("b"), "request at {s} s");
        for _ in before..gw.script.hits(A) {
            primary_hit_at.push(s);
        }
    }
    // 0 s: 2 failures; 1 s: the 3rd trips (open until 6 s) + the retry already granted;
    // probes at 6 s (→ open 10 s), 16 s (→ 20 s), 36 s (→ 20 s, the cap), 56 s (→ 76 s).
    assert_eq!(primary_hit_at, vec![0, 0, 1, 1, 6, 16, 36, 56]);
    assert_eq!(
        gw.health.probes("a"),
        vec![(false, true); 4],
        "exactly one probe request per cooldown"
    );
    assert_eq!(gw.health.open_until("a"), Some(T0 + 76_000));
    assert_eq!(gw.script.hits(B), 60);

    // The primary recovers at 60 s: the next probe (at the end of the current cooldown,
    // at most cooldown_max_ms away) finds it and traffic moves back at once.
    gw.script.on(A, vec![ok_json()]);
    let mut back_at = None;
    for s in 60..100 {
        gw.at(s * 1000);
        let meta = gw.serve(false).meta();
        if meta.deployment.as_deref() == Some("a") {
            back_at = Some(s);
            break;
        }
    }
    let back_at = back_at.expect("traffic never returned to the primary");
    assert_eq!(back_at, 76);
    assert!(back_at - 60 <= 20, "within one (maximal) cooldown");
    assert_eq!(gw.health.view_now("a"), View::Closed);
    gw.at(77_000);
    assert_eq!(gw.serve(false).meta().deployment.as_deref(), Some("a"));
}

// ---------- 5. every breaker open ----------

#[test]
fn when_every_breaker_is_open_the_first_to_reopen_is_probed_early() {
    let setup = |a_step: Step| {
        let gw = Gw::new(plain_table());
        gw.script.on(A, vec![a_step]);
        gw.script.on(B, vec![ok_json()]);
        gw.health.trip(gw.dep("a")); // open until 5 s
        gw.at(2000);
        gw.health.trip(gw.dep("b")); // open until 7 s
        gw.at(3000);
        gw
    };

    // The forced probe succeeds: the caller is served, the breaker closes.
    let gw = setup(ok_json());
    let meta = gw.serve(false).meta();
    assert_eq!(meta.deployment.as_deref(), Some("a"));
    assert_eq!(
        skipped(&meta),
        vec![("a", "breaker_open"), ("b", "breaker_open")]
    );
    assert_eq!(gw.health.probes("a"), vec![(true, true)], "forced, granted");
    assert!(gw.health.probes("b").is_empty());
    assert_eq!(gw.script.hits(B), 0);
    assert_eq!(gw.health.reports("a"), vec![success(true)]);
    assert_eq!(gw.health.view_now("a"), View::Closed);

    // The forced probe fails: one attempt, then 503 circuit_open with a Retry-After.
    let gw = setup(overloaded());
    let (err, meta) = gw.serve(false).err();
    assert_eq!(
        (err.status, err.kind, err.code.as_str()),
        (503, "service_unavailable", "circuit_open")
    );
    assert!(err.retry_after_s.is_some_and(|s| s >= 1), "{err:?}");
    assert!(err.message.contains("the probe of deployment \"a\" failed"));
    assert_eq!((gw.script.hits(A), gw.script.hits(B)), (1, 0));
    assert_eq!(attempts_on(&meta, "a"), 1, "a probe is never retried");
    assert_eq!(gw.health.reports("a"), vec![failure(true)]);
    assert_eq!(gw.health.open_until("a"), Some(T0 + 3000 + 10_000));

    // Chain order does not matter: the one that reopens first is probed.
    let gw = Gw::new(plain_table());
    gw.script.on(A, vec![ok_json()]);
    gw.script.on(B, vec![ok_json()]);
    gw.health.trip(gw.dep("b")); // until 5 s
    gw.at(2000);
    gw.health.trip(gw.dep("a")); // until 7 s
    gw.at(3000);
    let meta = gw.serve(false).meta();
    assert_eq!(meta.deployment.as_deref(), Some("b"));
    assert_eq!(gw.script.hits(A), 0);
    assert!(gw.health.probes("a").is_empty());
}

#[test]
fn a_kill_switched_deployment_is_never_probed() {
    let gw = Gw::new(plain_table());
    gw.script.on(A, vec![ok_json()]);
    gw.script.on(B, vec![overloaded()]);
    gw.health.kill("a");
    gw.health.trip(gw.dep("b")); // until 5 s

    // a is first in the chain and healthy, but killed: the forced probe goes to b.
    gw.at(1000);
    let (err, meta) = gw.serve(false).err();
    assert_eq!((err.status, err.code.as_str()), (503, "circuit_open"));
    assert_eq!(
        skipped(&meta),
        vec![("a", "breaker_forced_open"), ("b", "breaker_open")]
    );
    assert_eq!(gw.health.probes("b"), vec![(true, true)]);
    assert!(gw.health.probes("a").is_empty());
    assert_eq!(gw.script.hits(A), 0);

    // Long after every cooldown: a is still never sent anything.
    for s in 2..40 {
        gw.at(s * 1000);
        let _ = gw.serve(false);
    }
    assert_eq!(gw.script.hits(A), 0);
    assert!(gw.health.probes("a").is_empty());
    assert!(gw.health.reports("a").is_empty());
    assert_eq!(gw.health.view_now("a"), View::ForcedOpen);
}

#[test]
fn a_forced_probe_already_held_elsewhere_gives_503_at_once() {
    let gw = Gw::new(plain_table());
    gw.script.on(A, vec![ok_json()]);
    gw.script.on(B, vec![ok_json()]);
    gw.health.trip(gw.dep("a")); // until 5 s
    gw.at(1000);
    gw.health.trip(gw.dep("b")); // until 6 s
    gw.at(2000);
    assert!(
        gw.health.hold_probe(gw.dep("a"), true),
        "another isolate's forced probe of a is in flight"
    );

    let (err, meta) = gw.serve(false).err();
    assert_eq!((err.status, err.code.as_str()), (503, "circuit_open"));
    assert_eq!(err.retry_after_s, Some(1));
    assert!(meta.attempts.is_empty());
    assert_eq!(
        skipped(&meta),
        vec![("a", "breaker_half_open"), ("b", "breaker_open")]
    );
    assert_eq!(gw.health.probes("a"), vec![(false, false), (true, false)]);
    assert_eq!((gw.script.hits(A), gw.script.hits(B)), (0, 0));
}

/// After a failed forced probe, Retry-After points at a real reopening: the probe pushed the
/// probed deployment's reopening back, so another deployment may now reopen first.
#[test]
fn retry_after_of_a_failed_forced_probe_points_at_a_real_reopening() {
    let gw = Gw::new(plain_table());
    gw.script.on(A, vec![overloaded()]);
    gw.script.on(B, vec![overloaded()]);
    gw.health.trip(gw.dep("a")); // until 5 s
    gw.at(2000);
    gw.health.trip(gw.dep("b")); // until 7 s
    gw.at(3000);

    let (err, _) = gw.serve(false).err();
    assert_eq!(err.code, "circuit_open");
    // After the probe: a reopens at 13 s (3 s + doubled cooldown), b at 7 s.
    let earliest = ["a", "b"]
        .iter()
        .filter_map(|d| gw.health.open_until(d))
        .min()
        .unwrap();
    assert_eq!(earliest, T0 + 7000);
    let honest = (earliest - gw.clock.now_ms()).div_ceil(1000);
    assert_eq!(
        err.retry_after_s,
        Some(honest),
        "Retry-After must not point at a.until from before the failed probe (5 s)"
    );
}

/// Every deployment kill-switched: 503 `circuit_open` (no upstream was contacted), not 502.
#[test]
fn every_deployment_kill_switched_is_a_503_circuit_open() {
    let gw = Gw::new(plain_table());
    gw.script.on(A, vec![ok_json()]);
    gw.script.on(B, vec![ok_json()]);
    gw.health.kill("a");
    gw.health.kill("b");
    let (err, meta) = gw.serve(false).err();
    assert_eq!((gw.script.hits(A), gw.script.hits(B)), (0, 0));
    assert!(meta.attempts.is_empty());
    assert!(gw.health.probes("a").is_empty() && gw.health.probes("b").is_empty());
    assert_eq!(
        (err.status, err.code.as_str()),
        (503, "circuit_open"),
        "{err:?}"
    );
}

// ---------- 6. what counts, and a disabled breaker ----------

#[test]
fn client_errors_never_count_toward_opening_the_breaker() {
    // Even with a threshold of 1.
    let t = table(
        json!({"consecutive_failures": 1}),
        json!({}),
        json!({"fallback_on_content_policy": true}),
    );
    let gw = Gw::new(t);
    gw.script.on(A, vec![invalid_request()]);
    gw.script.on(B, vec![ok_json()]);
    for i in 0..10 {
        gw.at(i * 1000);
        let (err, _) = gw.serve(false).err();
        assert_eq!((err.status, err.code.as_str()), (400, "invalid_value"));
    }
    gw.script.on(A, vec![content_policy()]);
    for i in 10..20 {
        gw.at(i * 1000);
        let meta = gw.serve(false).meta();
        assert_eq!(meta.deployment.as_deref(), Some("b"));
        assert_eq!(meta.fallback_reasons(), "a:content_policy:400");
    }
    assert_eq!(gw.script.hits(A), 20, "every request still reaches a");
    assert!(gw.health.reports("a").is_empty(), "nothing reported");
    assert_eq!(gw.health.view_now("a"), View::Closed);
}

#[test]
fn a_probe_answered_with_a_client_error_closes_the_breaker() {
    let gw = Gw::new(plain_table());
    gw.script.on(A, vec![invalid_request()]);
    gw.script.on(B, vec![ok_json()]);
    gw.health.trip(gw.dep("a"));
    gw.at(5000);
    let (err, _) = gw.serve(false).err();
    assert_eq!((err.status, err.code.as_str()), (400, "invalid_value"));
    assert_eq!(gw.health.reports("a"), vec![success(true)]);
    assert_eq!(gw.health.view_now("a"), View::Closed);
}

#[test]
fn only_the_configured_error_classes_count() {
    let gw = Gw::new(table(
        json!({}),
        json!({"a": {"breaker": {"count": ["server_error"]}}}),
        json!({}),
    ));
    gw.script.on(A, vec![overloaded()]);
    gw.script.on(B, vec![ok_json()]);
    for i in 0..5 {
        gw.at(i * 1000);
        assert_eq!(gw.serve(false).meta().deployment.as_deref(), Some("b"));
    }
    assert_eq!(gw.script.hits(A), 10, "503s (overloaded) do not count here");
    assert!(gw.health.reports("a").is_empty());
    assert_eq!(gw.health.view_now("a"), View::Closed);

    gw.script.on(A, vec![server_error()]);
    for i in 5..10 {
        gw.at(i * 1000);
        gw.serve(false).meta();
    }
    assert_eq!(gw.script.hits(A), 14, "500s do: open after the 3rd");
    assert!(matches!(gw.health.view_now("a"), View::Open { .. }));
}

#[test]
fn a_disabled_breaker_never_trips_and_is_never_probed_or_reported_to() {
    let gw = Gw::new(table(
        json!({"consecutive_failures": 1}),
        json!({"a": {"breaker": {"enabled": false}}}),
        json!({}),
    ));
    gw.script.on(A, vec![overloaded()]);
    gw.script.on(B, vec![ok_json()]);
    for i in 0..10 {
        gw.at(i * 1000);
        let meta = gw.serve(false).meta();
        assert_eq!(meta.deployment.as_deref(), Some("b"));
        assert!(meta.skipped.is_empty());
    }
    assert_eq!(gw.script.hits(A), 20, "2 attempts on every request");
    assert!(gw.health.probes("a").is_empty() && gw.health.reports("a").is_empty());
    assert!(!gw.health.store.borrow().contains_key("a"));
    assert_eq!(gw.health.views("b"), 10);
    assert_eq!(gw.health.reports("b"), vec![success(false); 10]);
}

/// Issue 18, item 7: the admin API answers 200 to a kill switch on a deployment whose breaker
/// the table disables, so the kill switch must hold there too; a reset brings it back.
#[test]
fn the_kill_switch_holds_when_the_breaker_is_disabled() {
    let gw = Gw::new(table(
        json!({}),
        json!({"a": {"breaker": {"enabled": false}}}),
        json!({}),
    ));
    gw.script.on(A, vec![ok_json()]);
    gw.script.on(B, vec![ok_json()]);
    gw.health.kill("a");
    for i in 0..5 {
        gw.at(i * 60_000);
        let meta = gw.serve(false).meta();
        assert_eq!(meta.deployment.as_deref(), Some("b"));
        assert_eq!(skipped(&meta), vec![("a", "breaker_forced_open")]);
    }
    assert_eq!(gw.script.hits(A), 0);
    assert!(gw.health.probes("a").is_empty() && gw.health.reports("a").is_empty());

    // The operator's reset.
    if let Some(b) = gw.health.store.borrow_mut().get_mut("a") {
        b.reset();
    }
    gw.at(301_000);
    assert_eq!(gw.serve(false).meta().deployment.as_deref(), Some("a"));
}

/// A breaker left open while it was enabled does not keep traffic off once the table disables
/// it: only the kill switch does.
#[test]
fn an_open_breaker_is_ignored_once_the_table_disables_it() {
    let gw = Gw::new(table(
        json!({}),
        json!({"a": {"breaker": {"enabled": false}}}),
        json!({}),
    ));
    let enabled = plain_table();
    gw.health
        .trip(enabled.deployments.iter().find(|d| d.name == "a").unwrap());
    assert!(matches!(gw.health.view_now("a"), View::Open { .. }));
    gw.script.on(A, vec![ok_json()]);
    let meta = gw.serve(false).meta();
    assert_eq!(meta.deployment.as_deref(), Some("a"));
    assert!(meta.skipped.is_empty());
    assert!(gw.health.probes("a").is_empty());
}

// ---------- 7. Retry-After sets the cooldown ----------

#[test]
fn a_429_retry_after_that_trips_the_breaker_sets_the_cooldown_capped_at_the_maximum() {
    // (Retry-After in s, expected cooldown in ms): longer than the cooldown → honoured;
    // beyond cooldown_max_ms → capped; shorter → the cooldown stands.
    for (retry_after, cooldown) in [("12", 12_000), ("600", 20_000), ("1", 5000)] {
        let gw = Gw::new(table(
            json!({"consecutive_failures": 1}),
            json!({"a": {"retry": {"max_attempts": 1}}}),
            json!({}),
        ));
        gw.script.on(A, vec![rate_limited(retry_after), ok_json()]);
        gw.script.on(B, vec![ok_json()]);
        let meta = gw.serve(false).meta();
        assert_eq!(meta.deployment.as_deref(), Some("b"));
        assert_eq!(
            gw.health.reports("a")[0].retry_after_ms,
            Some(retry_after.parse::<u64>().unwrap() * 1000)
        );
        assert_eq!(
            gw.health.open_until("a"),
            Some(T0 + cooldown),
            "Retry-After {retry_after} s"
        );
        gw.at(cooldown - 1);
        gw.serve(false).meta();
        assert_eq!(gw.script.hits(A), 1, "still open just before {cooldown} ms");
        gw.at(cooldown);
        assert_eq!(gw.serve(false).meta().deployment.as_deref(), Some("a"));
        assert_eq!(gw.health.view_now("a"), View::Closed);
    }
}

// ---------- 8. failures after commit ----------

#[test]
fn a_stream_cut_after_commit_counts_as_a_failure_of_the_deployment() {
    let gw = Gw::new(table(
        json!({"consecutive_failures": 1}),
        json!({}),
        json!({"resume": "off"}),
    ));
    gw.script.on(A, vec![cut_after_commit()]);
    gw.script.on(B, vec![full_stream(&["fine"], 0)]);

    let (text, meta) = gw.serve(true).ok();
    assert!(text.contains("Hello") && !text.contains("[DONE]"));
    assert!(meta.error.unwrap().starts_with("stream_cut"));
    // A stream is judged when it ends: the cut is one failure (no success at commit), and it
    // tripped the breaker.
    assert_eq!(gw.health.reports("a"), vec![failure(false)]);
    assert_eq!(gw.health.open_until("a"), Some(T0 + 5000));

    gw.at(1000);
    let (text, meta) = gw.serve(true).ok();
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert_eq!(meta.deployment.as_deref(), Some("b"));
    assert_eq!(skipped(&meta), vec![("a", "breaker_open")]);
    assert_eq!(gw.script.hits(A), 1);
}

/// A stream is reported when it ends, so a deployment that breaks every stream after commit
/// reaches `consecutive_failures` (a success at commit would restart the run each time).
#[test]
fn a_deployment_that_breaks_every_stream_after_commit_opens_at_the_threshold() {
    let gw = Gw::new(table(json!({}), json!({}), json!({"resume": "off"})));
    gw.script.on(A, vec![cut_after_commit()]);
    gw.script.on(B, vec![full_stream(&["fine"], 0)]);
    for i in 0..6 {
        gw.at(i * 1000);
        let (text, _) = gw.serve(true).ok();
        assert!(text.contains("Hello") || text.contains("fine"));
    }
    assert_eq!(
        gw.script.hits(A),
        3,
        "3 broken streams in a row must open a breaker with consecutive_failures = 3 \
         (breaker: {:?}; reports: {:?})",
        gw.health.breaker("a"),
        gw.health.reports("a")
    );
}

// ---------- resume and the breaker ----------

/// Resuming a broken stream goes through the breaker gate: never to a kill-switched (or open)
/// deployment.
#[test]
fn resuming_a_broken_stream_respects_the_kill_switch() {
    let gw = Gw::new(table(json!({}), json!({}), json!({"resume": "replay"})));
    // a breaks after "Hello", then refuses the replay; b is healthy but kill-switched.
    gw.script.on(A, vec![cut_after_commit(), overloaded()]);
    gw.script.on(B, vec![full_stream(&["Hello", " world"], 0)]);
    gw.health.kill("b");
    let (_, meta) = gw.serve(true).ok();
    assert_eq!(
        gw.script.hits(B),
        0,
        "kill-switched deployment b received a resume (resumes: {:?})",
        meta.resumes
    );
}

/// A resume attempt that fails before it commits counts against its deployment.
#[test]
fn a_failed_resume_attempt_counts_against_the_deployment() {
    let gw = Gw::new(table(json!({}), json!({}), json!({"resume": "replay"})));
    gw.script.on(A, vec![cut_after_commit(), overloaded()]);
    gw.script.on(B, vec![full_stream(&["Hello", " world"], 0)]);
    let (text, meta) = gw.serve(true).ok();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(meta.resume_list(), vec!["b:replay".to_string()]);
    assert_eq!(gw.script.hits(A), 2);
    assert_eq!(
        gw.health.reports("a"),
        vec![failure(false), failure(false)],
        "cut, failed replay (503)"
    );
    assert_eq!(
        gw.health.reports("b"),
        vec![success(false)],
        "the resumed stream ended well"
    );
}

// ---------- stale isolate snapshots ----------

#[test]
fn a_stale_isolate_sends_at_most_one_request_after_another_isolate_tripped_the_breaker() {
    let gw = Gw::new(plain_table());
    let store = Store::default();
    let ops = SharedBreakers::sharing(&store, &gw.clock);
    let x = StaleIsolate::new(&store, &gw.clock);
    let y = StaleIsolate::new(&store, &gw.clock);
    let w = StaleIsolate::new(&store, &gw.clock);
    gw.script.on(A, vec![ok_json()]);
    gw.script.on(B, vec![ok_json()]);

    // Every isolate learns a (closed) once, waiting on the store for it only then.
    for iso in [&x, &y, &w] {
        assert_eq!(
            gw.serve_with(iso, false).meta().deployment.as_deref(),
            Some("a")
        );
        iso.flush();
        assert_eq!(iso.waited.get(), 1, "only a is consulted; b never needed");
        assert_eq!(iso.snapshot("a"), Some(View::Closed));
    }

    // a goes down. y's traffic trips it (reports reach the store after each request).
    gw.script.on(A, vec![overloaded()]);
    let hits = |gw: &Gw| gw.script.hits(A);
    gw.at(1000);
    gw.serve_with(&y, false).meta();
    y.flush();
    gw.at(2000);
    gw.serve_with(&y, false).meta();
    y.flush();
    let until = ops.open_until("a").expect("tripped by y's 3rd failure");
    assert_eq!(ops.breaker("a").total_trips, 1);
    assert!(matches!(y.snapshot("a"), Some(View::Open { .. })));
    let after_trip = hits(&gw);

    // y learned it from its report's reply: no more traffic from y.
    gw.at(3000);
    gw.serve_with(&y, false).meta();
    assert_eq!(hits(&gw), after_trip);

    // x still believes a is closed: one request's attempts (≤ max_attempts) go out.
    let meta = gw.serve_with(&x, false).meta();
    assert_eq!(meta.deployment.as_deref(), Some("b"));
    assert_eq!(hits(&gw) - after_trip, 2, "at most max_attempts extra");
    x.flush();
    // Those late failures moved nothing: same cooldown, no second trip.
    assert_eq!(ops.open_until("a"), Some(until));
    assert_eq!(ops.breaker("a").total_trips, 1);
    // And x now knows.
    gw.at(4000);
    gw.serve_with(&x, false).meta();
    assert_eq!(hits(&gw) - after_trip, 2);

    // Half-open: another isolate's probe is in flight; a has recovered. w's stale "closed"
    // lets one request through, whose success must NOT close the breaker (only the probe's
    // outcome may).
    gw.at(until - T0);
    assert!(ops.hold_probe(gw.dep("a"), false));
    gw.script.on(A, vec![ok_json()]);
    assert_eq!(
        gw.serve_with(&w, false).meta().deployment.as_deref(),
        Some("a")
    );
    w.flush();
    assert!(matches!(ops.breaker("a").phase, Phase::HalfOpen { .. }));
    assert_eq!(w.snapshot("a"), Some(View::HalfOpen));
    let before = hits(&gw);
    let meta = gw.serve_with(&w, false).meta();
    assert_eq!(skipped(&meta), vec![("a", "breaker_half_open")]);
    assert_eq!(hits(&gw), before, "w now waits for the probe like everyone");
}
