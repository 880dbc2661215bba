//! The request's subrequest budget (`limits.subrequests`, issue 18 item 11) through the real
//! engine: a scripted transport, a manual clock and a `Health` port over the real breaker
//! state machine that records every call. The budget's cost model is in
//! `src/resilience/subrequests.rs`: 6 reserved per request, 1 per gate (+1 for a probe
//! lease), 2 per deployment with an attempt (its reports), 1 per upstream request.

#[path = "support/health.rs"]
mod health;
mod support;

use edge_router::api::{parse_chat_request, ApiError};
use edge_router::config::{parse_table, RoutingTable};
use edge_router::engine::{Engine, Meta, Outcome, RequestContext, Skip};
use edge_router::resilience::subrequests::{
    CACHE_CALLS, DEFAULT_SUBREQUESTS, MIN_SUBREQUESTS, REPORT_CALLS, RESERVED_CALLS,
};
use futures::executor::block_on;
use health::{Call, SharedBreakers};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::rc::Rc;
use support::*;

fn url(i: usize) -> String {
    format!("http://up-{i}/v1")
}

/// Route `r` over deployments d0..d{n-1} (d{i} at `url(i)`), 2 attempts each, breakers on
/// but never tripping (so every gate reads the breaker and nothing is skipped), and
/// `limits.subrequests` when given.
fn table(n: usize, subrequests: Option<u32>, route_extra: Value) -> RoutingTable {
    let mut providers = serde_json::Map::new();
    let mut deployments = serde_json::Map::new();
    for i in 0..n {
        providers.insert(
            format!("p{i}"),
            json!({"kind": "openai", "base_url": url(i)}),
        );
        deployments.insert(
            format!("d{i}"),
            json!({"provider": format!("p{i}"), "model": format!("m{i}"), "context_window": 8000}),
        );
    }
    let mut route = json!({"chain": (0..n).map(|i| format!("d{i}")).collect::<Vec<_>>()});
    if let (Value::Object(r), Value::Object(extra)) = (&mut route, route_extra) {
        r.extend(extra);
    }
    let mut t = json!({
        "version": 1,
        "defaults": {
            "retry": {"max_attempts": 2, "backoff_base_ms": 100, "backoff_max_ms": 1000, "max_retry_after_ms": 5000},
            "timeouts": {"connect_ms": 1000, "first_token_ms": 2000, "idle_ms": 3000, "attempt_ms": 20000},
            "request_timeout_ms": 600000,
            "breaker": {"consecutive_failures": 0, "failure_rate_bps": 0}
        },
        "providers": providers,
        "deployments": deployments,
        "routes": {"r": route}
    });
    if let Some(s) = subrequests {
        t["limits"] = json!({"subrequests": s});
    }
    parse_table(&t.to_string()).unwrap()
}

fn server_error() -> Step {
    Step::json(500, &openai_error("boom", "server_error", ""))
}

/// The caller's side of one request.
enum Served {
    Ok(String, Meta),
    Err(ApiError, Meta),
}

impl Served {
    fn err(self) -> (ApiError, Meta) {
        match self {
            Served::Err(e, m) => (e, m),
            Served::Ok(_, m) => panic!("expected an error, got an answer from {:?}", m.deployment),
        }
    }
    fn ok(self) -> (String, Meta) {
        match self {
            Served::Ok(t, m) => (t, m),
            Served::Err(e, _) => panic!("expected an answer, got {e:?}"),
        }
    }
}

struct Gw {
    table: RoutingTable,
    clock: ManualClock,
    script: Script,
    health: SharedBreakers,
}

impl Gw {
    fn new(table: RoutingTable) -> Gw {
        let clock = ManualClock::at(1_000_000);
        Gw {
            script: Script::new(&clock),
            health: SharedBreakers::new(&clock),
            table,
            clock,
        }
    }

    fn serve(&self, stream: bool) -> Served {
        self.serve_spending(stream, 0)
    }

    /// `serve`, with `outside` calls made outside the engine (the response cache's).
    fn serve_spending(&self, stream: bool, outside: u32) -> Served {
        let body = json!({"model": "r", "messages": [{"role": "user", "content": "hi"}], "stream": stream});
        let req = Rc::new(parse_chat_request(body.to_string().as_bytes()).unwrap());
        let engine = Engine {
            table: &self.table,
            transport: &self.script,
            clock: &self.clock,
            secrets: &NoSecrets,
            health: &self.health,
            redactor: &Rc::new(edge_router::redact::Redactor::for_table(
                &self.table,
                &NoSecrets,
            )),
        };
        let ctx = RequestContext {
            order: None,
            outside_calls: outside,
            request_id: "req_budget".into(),
            started_ms: self.clock.0.get(),
            jitter_seed: 7,
        };
        let route = self.table.route("r").unwrap();
        match block_on(engine.run(route, &req, ctx)) {
            Outcome::Complete { body, meta, .. } => {
                Served::Ok(String::from_utf8(body).unwrap(), meta)
            }
            Outcome::Stream(mut s) => {
                let mut out = Vec::new();
                while let Some(b) = block_on(s.next(&engine)) {
                    out.extend(b);
                }
                Served::Ok(String::from_utf8(out).unwrap(), s.meta().clone())
            }
            Outcome::Failed { error, meta } => Served::Err(error, meta),
        }
    }

    fn hits(&self, i: usize) -> usize {
        self.script.hits(&url(i))
    }

    /// Failure reports the breakers received for deployment `i`.
    fn failures(&self, i: usize) -> usize {
        let name = format!("d{i}");
        self.health.reports(&name).iter().filter(|r| !r.ok).count()
    }

    /// The subrequests this request made by the cost model's own rules, counted from what
    /// the ports saw: the reserve, every breaker read and probe request, reports for every
    /// deployment with an attempt, and every upstream request.
    fn spent(&self) -> u32 {
        let calls = self.health.calls();
        let gates = calls
            .iter()
            .filter(|c| matches!(c, Call::View(_) | Call::Probe { .. }))
            .count() as u32;
        let attempted: BTreeSet<String> = self
            .script
            .requests
            .borrow()
            .iter()
            .map(|r| r.url.clone())
            .collect();
        let upstream = self.script.requests.borrow().len() as u32;
        RESERVED_CALLS + gates + REPORT_CALLS * attempted.len() as u32 + upstream
    }
}

/// A chain of failing deployments stops where the budget runs out, with a 503 naming the
/// limit, and no breaker hears of the stop: the deployments after it get no request and no
/// report.
#[test]
fn a_long_chain_stops_at_the_budget_and_charges_no_breaker_for_the_stop() {
    // 6 reserved; each deployment: gate 1 + first attempt 1 + reports 2 + retry 1 = 5. After
    // four deployments 26 are spent; the fifth needs up to 5 (a probe lease included): 31 > 30.
    let gw = Gw::new(table(12, Some(30), json!({})));
    for i in 0..11 {
        gw.script.on(&url(i), vec![server_error()]);
    }
    gw.script
        .on(&url(11), vec![Step::json(200, &completion("ok"))]);
    let (e, meta) = gw.serve(false).err();
    assert_eq!(
        (e.status, e.code.as_str()),
        (503, "subrequest_budget_exhausted")
    );
    assert!(
        e.message.contains("limits.subrequests = 30"),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("stopped after 8 upstream attempt(s)"),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("last error from deployment \"d3\""),
        "{}",
        e.message
    );
    for i in 0..4 {
        assert_eq!((gw.hits(i), gw.failures(i)), (2, 2), "d{i}");
    }
    for i in 4..12 {
        assert_eq!(gw.hits(i), 0, "d{i} got a request past the budget");
        assert_eq!(
            gw.health.calls_for(&format!("d{i}")),
            0,
            "d{i} was gated or reported"
        );
    }
    assert!(meta
        .skipped
        .contains(&("d4".to_string(), Skip::SubrequestBudget)));
    assert_eq!(meta.subrequests, 26);
    assert_eq!(gw.spent(), 26);
    assert_eq!(meta.attempts.len(), 8);
}

/// Whatever the limit, what the request spends (counted from the ports) never passes it, and
/// the budget stops it before the chain's end only when the chain could not fit.
#[test]
fn no_limit_is_ever_passed() {
    for limit in MIN_SUBREQUESTS..=80 {
        for stream in [false, true] {
            let gw = Gw::new(table(12, Some(limit), json!({})));
            for i in 0..12 {
                gw.script.on(&url(i), vec![server_error()]);
            }
            let (e, meta) = gw.serve(stream).err();
            assert!(gw.spent() <= limit, "limit {limit}: spent {}", gw.spent());
            assert_eq!(meta.subrequests, gw.spent(), "limit {limit}");
            // The whole chain costs 6 + 12 * 5 = 66.
            let expected = if limit >= 66 { 502 } else { 503 };
            assert_eq!(e.status, expected, "limit {limit}: {e:?}");
        }
    }
}

/// Without a `limits` block the budget is Workers Free's 50, object calls included: a chain
/// of 20 failing deployments is cut after 16 upstream requests instead of making 40.
#[test]
fn the_default_fits_workers_free() {
    let gw = Gw::new(table(20, None, json!({})));
    assert_eq!(gw.table.limits.subrequests, DEFAULT_SUBREQUESTS);
    assert_eq!(DEFAULT_SUBREQUESTS, 50);
    for i in 0..20 {
        gw.script.on(&url(i), vec![server_error()]);
    }
    let (e, _) = gw.serve(false).err();
    assert_eq!(e.code, "subrequest_budget_exhausted");
    assert!(
        e.message.contains("limits.subrequests = 50"),
        "{}",
        e.message
    );
    assert_eq!(gw.script.requests.borrow().len(), 16);
    assert!(gw.spent() <= 50);
}

/// Retries on one deployment are paid one by one: the one that does not fit is not made.
#[test]
fn retries_stop_at_the_budget() {
    // 6 + gate 1 + first attempt 3 = 10, then 1 per retry: 12 allows 3 attempts of 10.
    let gw = Gw::new(table(1, Some(12), json!({"retry": {"max_attempts": 10}})));
    gw.script.on(&url(0), vec![server_error()]);
    let (e, meta) = gw.serve(false).err();
    assert_eq!(e.code, "subrequest_budget_exhausted");
    assert_eq!(gw.hits(0), 3);
    assert_eq!(gw.failures(0), 3);
    assert_eq!(meta.subrequests, 12);
    assert!(
        e.message.contains("boom"),
        "the last upstream reason: {}",
        e.message
    );
}

/// A chain that fits is served as before: the budget changes nothing below its limit.
#[test]
fn a_chain_that_fits_is_untouched() {
    let gw = Gw::new(table(3, None, json!({})));
    gw.script.on(&url(0), vec![server_error()]);
    gw.script.on(&url(1), vec![server_error()]);
    gw.script
        .on(&url(2), vec![Step::json(200, &completion("from d2"))]);
    let (text, meta) = gw.serve(false).ok();
    assert!(text.contains("from d2"));
    assert_eq!(meta.deployment.as_deref(), Some("d2"));
    // 6 + 5 + 5 + (1 + 3) = 20.
    assert_eq!(meta.subrequests, 20);
}

fn cut_stream(words: &[&str]) -> Step {
    let mut chunks = vec![(0, role_chunk())];
    for w in words {
        chunks.push((0, chunk(w)));
    }
    Step::sse(chunks, End::Reset)
}

/// After the commit, a resume the budget cannot pay for is not tried: the stream ends with
/// the in-band error of the break, naming the limit; one more subrequest and it resumes.
#[test]
fn a_resume_past_the_budget_ends_the_stream_in_band() {
    // 6 + gate 1 + attempt 3 = 10 before the commit; resuming on d0 costs gate 1 + probe
    // lease 1 (worst case) + 1 = 3 more.
    for (limit, resumed) in [(12, false), (13, true)] {
        let gw = Gw::new(table(2, Some(limit), json!({"resume": "replay"})));
        gw.script.on(
            &url(0),
            vec![
                cut_stream(&["Hello", " there"]),
                full_stream(&["Hello", " there", " friend"], 0),
            ],
        );
        gw.script.on(
            &url(1),
            vec![full_stream(&["Hello", " there", " friend"], 0)],
        );
        let (text, meta) = gw.serve(true).ok();
        assert_eq!(gw.hits(1), 0, "limit {limit}");
        if resumed {
            assert!(text.contains("friend") && text.contains("[DONE]"), "{text}");
            assert_eq!(meta.resume_list(), vec!["d0:replay".to_string()]);
        } else {
            assert_eq!(gw.hits(0), 1, "no resume past the budget");
            assert!(!text.contains("[DONE]"), "{text}");
            assert!(text.contains("\"code\":\"stream_cut\""), "{text}");
            assert!(text.contains("not resumed"), "{text}");
            assert!(text.contains("limits.subrequests = 12"), "{text}");
            assert!(meta.resumes.is_empty());
            assert!(meta
                .error
                .as_deref()
                .unwrap_or("")
                .contains("limits.subrequests"));
        }
        assert!(gw.spent() <= limit);
        // The break itself is the deployment's failure (reported); the stop is not.
        assert_eq!(gw.failures(0), 1, "limit {limit}");
        assert_eq!(gw.health.calls_for("d1"), 0, "limit {limit}");
    }
}

/// The response cache's lookup and store come out of the same budget, before any attempt:
/// with the smallest limit that reaches the chain's last deployment, spending the cache's
/// calls up front stops the chain before it, and the same limit plus those calls reaches it
/// again, with the calls counted.
#[test]
fn the_cache_calls_come_out_of_the_budget() {
    let serve = |limit: u32, outside: u32| {
        let gw = Gw::new(table(3, Some(limit), json!({})));
        gw.script.on(&url(0), vec![server_error()]);
        gw.script.on(&url(1), vec![server_error()]);
        gw.script
            .on(&url(2), vec![Step::json(200, &completion("from d2"))]);
        let served = gw.serve_spending(false, outside);
        (served, gw.hits(2))
    };
    let smallest = (MIN_SUBREQUESTS..60)
        .find(|&l| matches!(serve(l, 0).0, Served::Ok(..)))
        .unwrap();
    let Served::Ok(_, before) = serve(smallest, 0).0 else {
        unreachable!()
    };
    match serve(smallest, CACHE_CALLS) {
        (Served::Err(e, meta), hits) => {
            assert_eq!(e.status, 503);
            assert!(e.message.contains("limits.subrequests"), "{}", e.message);
            assert_eq!(hits, 0, "d2 is never reached");
            assert!(meta.subrequests <= smallest);
        }
        (Served::Ok(..), _) => panic!("the cache's calls were not charged"),
    }
    let (Served::Ok(text, meta), _) = serve(smallest + CACHE_CALLS, CACHE_CALLS) else {
        panic!("the limit plus the cache's calls pays for the same chain")
    };
    assert!(text.contains("from d2"));
    assert_eq!(meta.subrequests, before.subrequests + CACHE_CALLS);
}

/// A caching route needs room for the cache's calls and one attempt.
#[test]
fn a_caching_route_needs_room_for_the_cache() {
    let mut t = json!({"version": 1, "providers": {"m": {"kind": "mock"}},
        "deployments": {"d": {"provider": "m", "model": "m", "context_window": 1000}},
        "routes": {"r": {"chain": ["d"], "cache": {"ttl_s": 60}}},
        "limits": {"subrequests": MIN_SUBREQUESTS}});
    let errors = parse_table(&t.to_string()).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("routes.r.cache: needs limits.subrequests of at least"),
        "{errors:?}"
    );
    t["limits"] = json!({"subrequests": MIN_SUBREQUESTS + CACHE_CALLS});
    assert!(parse_table(&t.to_string()).is_ok());
}

/// `limits.subrequests` is validated: below what one attempt needs is an error with its path.
#[test]
fn the_limit_is_validated() {
    let mut t = json!({"version": 1, "providers": {"m": {"kind": "mock"}},
        "deployments": {"d": {"provider": "m", "model": "m", "context_window": 1000}},
        "routes": {"r": {"chain": ["d"]}}, "limits": {"subrequests": MIN_SUBREQUESTS - 1}});
    let errors = parse_table(&t.to_string()).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("limits.subrequests: must be at least"),
        "{errors:?}"
    );
    t["limits"] = json!({"subrequests": 10000});
    assert_eq!(
        parse_table(&t.to_string()).unwrap().limits.subrequests,
        10000
    );
    t["limits"] = json!({"subrequest": 100});
    let errors = parse_table(&t.to_string()).unwrap_err();
    assert!(
        errors[0].starts_with("limits.subrequest: unknown field `subrequest`"),
        "{errors:?}"
    );
}
