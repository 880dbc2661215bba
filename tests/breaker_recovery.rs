//! Issue 15, part 2: with the BUILT-IN breaker defaults (the table sets no `breaker` block, no
//! timeouts, no retry policy), a deployment that fails for T and then heals, for T from 10 s to
//! 1 h, under steady user traffic (one request per second) and the once-a-minute cron probe:
//!
//! - traffic returns to it within 30 s of it healing;
//! - while it is down it gets at most one probe per 30 s, cron probes and forced probes
//!   (a chain whose every deployment is open) included;
//! - no user request is failed by a probe: a failed probe falls back within the request's
//!   deadline (only a chain with nothing to fall back to answers 503 while it is down).
//!
//! The engine runs with a manual clock, the real breaker state machine behind the `Health`
//! port (`support/health.rs`, what the Durable Object runs), and a transport whose deployment
//! `a` is down until `heal_at` (answering 503, or hanging) and healthy after.

#[path = "support/health.rs"]
mod health;
mod support;

use edge_router::api::parse_chat_request;
use edge_router::config::{parse_table, RoutingTable};
use edge_router::engine::ResponseHead;
use edge_router::engine::{Engine, Outcome, RequestContext, Transport, TransportError};
use edge_router::providers::HttpRequest;
use edge_router::state::breaker::{Phase, View};
use futures::executor::block_on;
use health::SharedBreakers;
use serde_json::json;
use std::cell::RefCell;
use std::rc::Rc;
use support::*;

const A: &str = "http://up-a/v1";
const B: &str = "http://up-b/v1";
const T0: u64 = 1_000_000;
const SECOND: u64 = 1_000;
const MINUTE: u64 = 60 * SECOND;
/// The bound of the issue: recovery within, and probes at most once per, 30 s.
const BOUND: u64 = 30 * SECOND;

/// Route `r` = [a, b], route `solo` = [a] (nothing to fall back to), route `cron-a` = what the
/// cron's probe of `a` runs (one attempt, no resume). Everything else is the built-in default.
fn table() -> RoutingTable {
    let dep =
        |p: &str| json!({"provider": p, "model": format!("model-{p}"), "context_window": 8000});
    let t = json!({
        "version": 1,
        "providers": {"pa": {"kind": "openai", "base_url": A}, "pb": {"kind": "openai", "base_url": B}},
        "deployments": {"a": dep("pa"), "b": dep("pb")},
        "routes": {
            "r": {"chain": ["a", "b"]},
            "solo": {"chain": ["a"]},
            "cron-a": {"chain": ["a"], "resume": "off"}
        }
    });
    parse_table(&t.to_string()).unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// 503 at once.
    Unavailable,
    /// Never answers (each attempt ends at its own timeout). User traffic streams: a stream's
    /// probe gives up after `connect_ms` / `first_token_ms` (10 s / 30 s), inside the bound.
    Hang,
}

impl Fault {
    fn streams(self) -> bool {
        matches!(self, Fault::Hang)
    }
}

/// One request that reached `a`: when it started, whether `a` was down, and whether it held
/// the probe lease (the breaker was half-open when it was sent).
#[derive(Debug, Clone, Copy)]
struct Hit {
    at: u64,
    down: bool,
    probe: bool,
}

/// `a` is down (per `fault`) until `heal_at`, then answers; `b` always answers.
struct Outage {
    down: Script,
    up: Script,
    clock: ManualClock,
    heal_at: u64,
    health: Rc<SharedBreakers>,
    hits: RefCell<Vec<Hit>>,
}

impl Outage {
    fn new(clock: &ManualClock, health: &Rc<SharedBreakers>, fault: Fault, heal_at: u64) -> Self {
        let down = Script::new(clock);
        down.on(
            A,
            vec![match fault {
                Fault::Unavailable => Step::json(503, &openai_error("down", "server_error", "")),
                Fault::Hang => Step::Hang,
            }],
        );
        let up = Script::new(clock);
        let answer = |text: &str| {
            if fault.streams() {
                full_stream(&[text], 0)
            } else {
                Step::json(200, &completion(text))
            }
        };
        up.on(A, vec![answer("from a")]);
        up.on(B, vec![answer("from b")]);
        down.on(B, vec![answer("from b")]);
        Outage {
            down,
            up,
            clock: clock.clone(),
            heal_at,
            health: Rc::clone(health),
            hits: RefCell::new(Vec::new()),
        }
    }
}

impl Transport for Outage {
    type Body = ScriptBody;

    async fn send(
        &self,
        req: HttpRequest,
        timeout_ms: u64,
    ) -> Result<ResponseHead<ScriptBody>, TransportError> {
        let now = self.clock.0.get();
        let down = now < self.heal_at;
        if req.url.starts_with(A) {
            let probe = matches!(self.health.breaker("a").phase, Phase::HalfOpen { .. });
            self.hits.borrow_mut().push(Hit {
                at: now,
                down,
                probe,
            });
        }
        if down {
            self.down.send(req, timeout_ms).await
        } else {
            self.up.send(req, timeout_ms).await
        }
    }
}

/// What a run of the outage looked like.
struct Run {
    hits: Vec<Hit>,
    /// User requests that did not get an answer, with when and why.
    failed: Vec<(u64, String)>,
    /// Answered by `a`, with when each request started.
    served_by_a: Vec<u64>,
}

/// Traffic on `route` at one request per second (sequential: a request that takes longer
/// delays the next), the cron every minute, from T0 to `heal_at + 2 min`.
fn simulate(route: &str, fault: Fault, outage_ms: u64) -> Run {
    let t = table();
    let clock = ManualClock::at(T0);
    let health = Rc::new(SharedBreakers::new(&clock));
    let heal_at = T0 + outage_ms;
    let transport = Outage::new(&clock, &health, fault, heal_at);
    let redactor = Rc::new(edge_router::redact::Redactor::for_table(&t, &NoSecrets));
    let engine = Engine {
        table: &t,
        transport: &transport,
        clock: &clock,
        secrets: &NoSecrets,
        health: health.as_ref(),
        redactor: &redactor,
    };
    // A request, to its end (a stream is read whole: its deployment hears of it then).
    let serve = |route: &str, n: u64| {
        let stream = fault.streams() && route != "cron-a";
        let body = json!({"model": route, "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
        let req = parse_chat_request(body.to_string().as_bytes()).unwrap();
        let ctx = RequestContext {
            order: None,
            outside_calls: 0,
            request_id: format!("req_{n}"),
            started_ms: clock.0.get(),
            jitter_seed: n,
        };
        match block_on(engine.run(t.route(route).unwrap(), &Rc::new(req), ctx)) {
            Outcome::Complete { meta, .. } => Ok(meta.deployment),
            Outcome::Stream(mut s) => {
                while block_on(s.next(&engine)).is_some() {}
                match &s.meta().error {
                    None => Ok(s.meta().deployment.clone()),
                    Some(e) => Err(e.clone()),
                }
            }
            Outcome::Failed { error, .. } => Err(error.code.to_string()),
        }
    };
    let mut run = Run {
        hits: Vec::new(),
        failed: Vec::new(),
        served_by_a: Vec::new(),
    };
    let end = heal_at + 2 * MINUTE;
    let mut next_cron = T0 + MINUTE;
    let mut n = 0;
    while clock.0.get() < end {
        let now = clock.0.get();
        if now >= next_cron {
            // The cron (src/worker/cron.rs): probe `a` if its breaker is half-open.
            next_cron += MINUTE;
            if health.view_now("a") == View::HalfOpen {
                n += 1;
                let _ = serve("cron-a", n);
            }
            continue;
        }
        n += 1;
        match serve(route, n) {
            Ok(Some(d)) if d == "a" => run.served_by_a.push(now),
            Ok(_) => {}
            Err(e) => run.failed.push((now, e)),
        }
        let next = now + SECOND;
        if clock.0.get() < next {
            clock.0.set(next);
        }
    }
    run.hits = transport.hits.take();
    run
}

/// The three properties, for the run of an outage of `outage_ms`.
fn check(route: &str, fault: Fault, outage_ms: u64, run: &Run) {
    let heal_at = T0 + outage_ms;
    let case = format!("{route} {fault:?} T = {} s", outage_ms / SECOND);
    // At most one probe per 30 s while down (cron and forced probes included).
    let probes: Vec<u64> = run
        .hits
        .iter()
        .filter(|h| h.down && h.probe)
        .map(|h| h.at)
        .collect();
    for pair in probes.windows(2) {
        assert!(
            pair[1] - pair[0] >= BOUND,
            "{case}: probes {} s apart (at {:?} s)",
            (pair[1] - pair[0]) as f64 / 1e3,
            probes.iter().map(|p| (p - T0) / SECOND).collect::<Vec<_>>()
        );
    }
    // Only probes reach it once it has tripped: every attempt while down after the first probe
    // is a probe.
    if let Some(&first) = probes.first() {
        let others = run
            .hits
            .iter()
            .filter(|h| h.down && h.at > first && !h.probe)
            .count();
        assert_eq!(others, 0, "{case}: non-probe attempts while open");
    }
    // Traffic returns within 30 s of healing, for a hanging deployment too: an attempt sent
    // before it healed that times out after (a stream's connect timeout, 10 s) may trip it,
    // but the cooldown counts from when that attempt started, before the healing.
    let back = run
        .served_by_a
        .iter()
        .find(|&&at| at >= heal_at)
        .copied()
        .unwrap_or_else(|| panic!("{case}: traffic never came back to a"));
    assert!(
        back - heal_at <= BOUND,
        "{case}: traffic back {} s after healing",
        (back - heal_at) / SECOND
    );
    // And stays: every request after that is answered by a.
    assert!(
        run.served_by_a
            .last()
            .is_some_and(|&l| l + 2 * SECOND >= heal_at + 2 * MINUTE),
        "{case}: a lost its traffic again"
    );
}

const OUTAGES_S: [u64; 9] = [10, 29, 31, 45, 60, 95, 301, 600, 3_600];

#[test]
fn a_healed_deployment_gets_its_traffic_back_within_30_s_and_is_probed_at_most_every_30_s() {
    for fault in [Fault::Unavailable, Fault::Hang] {
        for t in OUTAGES_S {
            let run = simulate("r", fault, t * SECOND);
            check("r", fault, t * SECOND, &run);
            // No user request is failed by a probe: b answers every one.
            assert!(
                run.failed.is_empty(),
                "{fault:?} T = {t} s: failed requests {:?}",
                run.failed
            );
        }
    }
}

#[test]
fn with_nothing_to_fall_back_to_forced_probes_keep_the_same_pace() {
    // Every deployment of `solo` is open: each request would force a probe of `a`. They are
    // still at most one per 30 s; the requests in between get 503 circuit_open.
    for t in OUTAGES_S {
        let run = simulate("solo", Fault::Unavailable, t * SECOND);
        check("solo", Fault::Unavailable, t * SECOND, &run);
        let heal_at = T0 + t * SECOND;
        assert!(
            run.failed.iter().all(|(at, _)| *at < heal_at + BOUND),
            "T = {t} s: failures after recovery {:?}",
            run.failed
                .iter()
                .filter(|(at, _)| *at >= heal_at)
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_failed_probe_falls_back_within_the_request_deadline() {
    // The probe of a hanging `a` costs its timeout (connect 10 s for a stream), well inside
    // the default 300 s request deadline: b answers.
    let run = simulate("r", Fault::Hang, 10 * MINUTE);
    assert!(run.failed.is_empty(), "{:?}", run.failed);
    assert!(run.hits.iter().any(|h| h.probe && h.down), "a was probed");
}
