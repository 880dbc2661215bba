//! Tests of `engine::walk`: the chain walk's transitions (skip rules, what each class of
//! failure leads to, the forced probe, the budget and deadline stops, the final error), with
//! no transport and no clock.
use super::*;
use crate::config::{parse_table, RoutingTable};
use crate::resilience::ErrorClass;
use serde_json::{json, Value};

/// The skips as the log line and headers write them.
fn skips(meta: &Meta) -> Vec<(String, String)> {
    meta.skipped
        .iter()
        .map(|(d, why)| (d.clone(), why.as_str().to_string()))
        .collect()
}

/// Deployments a, b (context 8,000) and c (128,000, no tools) on route "r" = [a, b, c];
/// `extra` is merged into the table (top-level keys) and `route` into the route.
fn table(route: Value, extra: Value) -> RoutingTable {
    let dep = |ctx: u32| {
        json!({"provider": "p", "model": "m", "context_window": ctx,
               "price": {"input_per_mtok_usd": 1, "output_per_mtok_usd": 2}})
    };
    let mut r = json!({"chain": ["a", "b", "c"]});
    if let (Value::Object(r), Value::Object(x)) = (&mut r, route) {
        r.extend(x);
    }
    let mut c = dep(128_000);
    c["capabilities"] = json!({"tools": false});
    let mut t = json!({
        "version": 1,
        "defaults": {"retry": {"max_attempts": 2, "backoff_base_ms": 100, "backoff_max_ms": 1000,
                               "max_retry_after_ms": 5000},
                     "request_timeout_ms": 60000},
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:1"}},
        "deployments": {"a": dep(8000), "b": dep(8000), "c": c},
        "routes": {"r": r}
    });
    if let (Value::Object(t), Value::Object(x)) = (&mut t, extra) {
        t.extend(x);
    }
    match parse_table(&t.to_string()) {
        Ok(t) => t,
        Err(e) => panic!("test table: {e:?}"),
    }
}

const DEADLINE: u64 = 60_000;

fn walk(t: &RoutingTable, needs: Needs) -> ChainWalk<'_> {
    let route = t.route("r").expect("route r");
    let order = super::super::chain_order(route);
    ChainWalk::new(t, route, needs, order, DEADLINE, 7)
}

fn error(class: ErrorClass, status: Option<u16>) -> UpstreamError {
    UpstreamError {
        class,
        status,
        message: format!("{class:?}"),
        retry_after_ms: None,
        body: None,
        diverged: false,
    }
}

/// Visits the next candidate: its name, the breaker letting it through (no probe).
fn visit<'r>(w: &mut ChainWalk<'r>, meta: &mut Meta) -> Option<Candidate<'r>> {
    let c = w.next_candidate(meta)?;
    assert_eq!(w.on_gate(&c, Gate::Go { probe: false }, meta), Some(false));
    Some(c)
}

fn name(c: &Option<Candidate<'_>>) -> Option<String> {
    c.as_ref().map(|c| c.dep.name.clone())
}

/// Books a failed attempt in `meta` as the engine does.
fn record(meta: &mut Meta, c: &Candidate<'_>, e: &UpstreamError) {
    meta.attempts.push(crate::engine::AttemptRecord {
        deployment: c.dep.name.clone(),
        class: Some(e.class),
        status: e.status,
        started_ms: 0,
        duration_ms: 0,
    });
}

#[test]
fn the_chain_is_visited_in_order_each_deployment_once() {
    let t = table(json!({}), json!({}));
    let mut w = walk(&t, Needs::default());
    let mut meta = Meta::default();
    let mut seen = Vec::new();
    while let Some(c) = visit(&mut w, &mut meta) {
        seen.push(c.dep.name.clone());
    }
    assert_eq!(seen, ["a", "b", "c"]);
    assert!(skips(&meta).is_empty());
}

#[test]
fn a_retryable_failure_is_retried_on_the_same_deployment_up_to_max_attempts() {
    let t = table(json!({}), json!({}));
    for class in [
        ErrorClass::ServerError,
        ErrorClass::Overloaded,
        ErrorClass::RateLimited,
    ] {
        let mut meta = Meta::default();
        let mut w = walk(&t, Needs::default());
        let c = visit(&mut w, &mut meta).expect("a");
        assert!(w.may_start(&c, 1000));
        match w.on_failure(&c, false, error(class, Some(500)), 1000) {
            AfterFailure::RetryAt(at) => {
                assert!((1000..=1000 + 1000).contains(&at), "{class:?}: {at}")
            }
            s => panic!("{class:?}: {s:?}"),
        }
        // The second attempt is the last on this deployment (max_attempts 2).
        assert!(w.may_start(&c, 1100));
        assert_eq!(
            w.on_failure(&c, false, error(class, Some(500)), 1100),
            AfterFailure::Next
        );
    }
}

#[test]
fn timeouts_and_auth_errors_move_on_at_once() {
    let t = table(json!({}), json!({}));
    for class in [
        ErrorClass::TimeoutConnect,
        ErrorClass::TimeoutFirstToken,
        ErrorClass::TimeoutAttempt,
        ErrorClass::AuthError,
        ErrorClass::NotFound,
    ] {
        let mut w = walk(&t, Needs::default());
        let mut meta = Meta::default();
        let c = visit(&mut w, &mut meta).expect("a");
        assert!(w.may_start(&c, 0));
        assert_eq!(
            w.on_failure(&c, false, error(class, None), 10),
            AfterFailure::Next
        );
        assert_eq!(name(&visit(&mut w, &mut meta)).as_deref(), Some("b"));
    }
}

#[test]
fn a_failed_probe_is_not_retried_there() {
    let t = table(json!({}), json!({}));
    let mut w = walk(&t, Needs::default());
    let mut meta = Meta::default();
    let c = w.next_candidate(&mut meta).expect("a");
    assert_eq!(
        w.on_gate(&c, Gate::Go { probe: true }, &mut meta),
        Some(true)
    );
    assert!(w.may_start(&c, 0));
    let e = error(ErrorClass::ServerError, Some(500));
    assert_eq!(w.on_failure(&c, true, e, 10), AfterFailure::Next);
}

#[test]
fn a_retry_that_would_start_past_the_deadline_moves_on_instead() {
    let t = table(json!({}), json!({}));
    let mut w = walk(&t, Needs::default());
    let mut meta = Meta::default();
    let c = visit(&mut w, &mut meta).expect("a");
    assert!(w.may_start(&c, DEADLINE - 10));
    let e = error(ErrorClass::ServerError, Some(500));
    assert_eq!(w.on_failure(&c, false, e, DEADLINE - 1), AfterFailure::Next);
}

#[test]
fn after_a_context_length_error_only_larger_deployments_are_visited() {
    let t = table(json!({}), json!({}));
    let mut w = walk(&t, Needs::default());
    let mut meta = Meta::default();
    let c = visit(&mut w, &mut meta).expect("a");
    assert!(w.may_start(&c, 0));
    let e = error(ErrorClass::ContextLengthExceeded, Some(400));
    assert_eq!(w.on_failure(&c, false, e, 0), AfterFailure::Next);
    // b has the same window as a: skipped; c is larger.
    assert_eq!(name(&visit(&mut w, &mut meta)).as_deref(), Some("c"));
    assert_eq!(
        skips(&meta),
        [("b".to_string(), "context_window".to_string())]
    );
}

#[test]
fn the_callers_own_fault_stops_the_walk_with_the_providers_status() {
    let t = table(json!({}), json!({}));
    let mut w = walk(&t, Needs::default());
    let mut meta = Meta::default();
    let c = visit(&mut w, &mut meta).expect("a");
    assert!(w.may_start(&c, 0));
    let e = error(ErrorClass::InvalidRequest, Some(422));
    match w.on_failure(&c, false, e, 0) {
        AfterFailure::Fail(api) => {
            assert_eq!((api.status, api.kind), (422, "invalid_request_error"))
        }
        s => panic!("{s:?}"),
    }
}

#[test]
fn content_policy_falls_back_only_when_the_route_says_so() {
    for (route, expect_next) in [
        (json!({}), false),
        (json!({"fallback_on_content_policy": true}), true),
    ] {
        let t = table(route, json!({}));
        let mut w = walk(&t, Needs::default());
        let mut meta = Meta::default();
        let c = visit(&mut w, &mut meta).expect("a");
        assert!(w.may_start(&c, 0));
        let step = w.on_failure(&c, false, error(ErrorClass::ContentPolicy, Some(400)), 0);
        assert_eq!(step == AfterFailure::Next, expect_next, "{step:?}");
    }
}

#[test]
fn a_deployment_without_a_needed_capability_is_skipped_and_named_if_none_has_it() {
    let t = table(json!({"chain": ["c"]}), json!({}));
    let needs = Needs {
        tools: true,
        ..Needs::default()
    };
    let mut w = walk(&t, needs);
    let mut meta = Meta::default();
    assert!(w.next_candidate(&mut meta).is_none());
    assert_eq!(
        skips(&meta),
        [("c".to_string(), "missing_capability_tools".to_string())]
    );
    let api = w.final_error(&meta, 0);
    assert_eq!(
        (api.status, api.code.as_str()),
        (400, "capability_unsupported")
    );
}

#[test]
fn when_every_breaker_is_open_the_first_to_reopen_is_probed_once() {
    let t = table(json!({}), json!({}));
    let mut w = walk(&t, Needs::default());
    let mut meta = Meta::default();
    for reopens in [5000, 3000, 4000] {
        let c = w.next_candidate(&mut meta).expect("candidate");
        let skip = Gate::Skip {
            why: Skip::BreakerOpen,
            reopens_ms: Some(reopens),
        };
        assert_eq!(w.on_gate(&c, skip, &mut meta), None);
    }
    let probe = w.next_candidate(&mut meta).expect("forced probe");
    assert!(probe.forced);
    assert_eq!(probe.dep.name, "b");
    assert!(w.on_forced_probe(true));
    assert!(w.may_start(&probe, 0));
    let mut e = error(ErrorClass::ServerError, Some(500));
    e.retry_after_ms = Some(90_000);
    record(&mut meta, &probe, &e);
    assert_eq!(w.on_failure(&probe, true, e, 1000), AfterFailure::Next);
    assert!(w.next_candidate(&mut meta).is_none(), "probed once only");
    let api = w.final_error(&meta, 1000);
    assert_eq!((api.status, api.code.as_str()), (503, "circuit_open"));
    // The failed probe re-opened b for its Retry-After (90 s): c reopens first, at 4 s.
    assert_eq!(api.retry_after_s, Some(3));
}

#[test]
fn a_refused_forced_probe_ends_the_walk() {
    let t = table(json!({"chain": ["a"]}), json!({}));
    let mut w = walk(&t, Needs::default());
    let mut meta = Meta::default();
    let c = w.next_candidate(&mut meta).expect("a");
    let skip = Gate::Skip {
        why: Skip::BreakerOpen,
        reopens_ms: Some(2500),
    };
    w.on_gate(&c, skip, &mut meta);
    let probe = w.next_candidate(&mut meta).expect("forced probe");
    assert!(!w.on_forced_probe(false));
    assert!(w.next_candidate(&mut meta).is_none());
    let api = w.final_error(&meta, 1000);
    assert_eq!((api.status, api.retry_after_s), (503, Some(2)));
    let _ = probe;
}

#[test]
fn a_kill_switched_chain_has_no_retry_after() {
    let t = table(json!({"chain": ["a"]}), json!({}));
    let mut w = walk(&t, Needs::default());
    let mut meta = Meta::default();
    let c = w.next_candidate(&mut meta).expect("a");
    let skip = Gate::Skip {
        why: Skip::BreakerForcedOpen,
        reopens_ms: None,
    };
    w.on_gate(&c, skip, &mut meta);
    assert!(w.next_candidate(&mut meta).is_none(), "nothing to probe");
    let api = w.final_error(&meta, 0);
    assert_eq!(
        (api.status, api.code.as_str(), api.retry_after_s),
        (503, "circuit_open", None)
    );
}

#[test]
fn every_deployment_at_its_own_limit_is_a_429_until_the_first_admits() {
    let t = table(json!({}), json!({}));
    let mut w = walk(&t, Needs::default());
    let mut meta = Meta::default();
    for retry_ms in [9000, 2500, 7000] {
        let c = visit(&mut w, &mut meta).expect("candidate");
        assert!(w.may_start(&c, 1000));
        w.on_limited(&c, 1000, retry_ms, &mut meta);
    }
    assert!(w.next_candidate(&mut meta).is_none());
    let api = w.final_error(&meta, 1000);
    assert_eq!(
        (api.status, api.code.as_str(), api.retry_after_s),
        (429, "deployment_rate_limited", Some(3))
    );
}

#[test]
fn no_attempt_starts_at_the_deadline_and_the_caller_gets_a_504() {
    let t = table(json!({}), json!({}));
    let mut w = walk(&t, Needs::default());
    let mut meta = Meta::default();
    let c = visit(&mut w, &mut meta).expect("a");
    assert!(!w.may_start(&c, DEADLINE));
    assert!(w.next_candidate(&mut meta).is_none(), "the walk is over");
    let api = w.final_error(&meta, DEADLINE);
    assert_eq!((api.status, api.code.as_str()), (504, "request_timeout"));
}

#[test]
fn the_budget_stops_the_walk_before_a_visit_it_cannot_pay_for() {
    // 6 reserved + a's visit (gate 2, attempt 1, reports 2) = 11; b's would need 5 more.
    let t = table(json!({}), json!({"limits": {"subrequests": 12}}));
    let mut w = walk(&t, Needs::default());
    let mut meta = Meta::default();
    let c = visit(&mut w, &mut meta).expect("a");
    assert!(w.may_start(&c, 0));
    let e = error(ErrorClass::TimeoutConnect, None);
    record(&mut meta, &c, &e);
    assert_eq!(w.on_failure(&c, false, e, 0), AfterFailure::Next);
    assert!(w.next_candidate(&mut meta).is_none());
    assert_eq!(
        skips(&meta),
        [("b".to_string(), "subrequest_budget".to_string())]
    );
    let api = w.final_error(&meta, 0);
    assert_eq!(
        (api.status, api.code.as_str()),
        (503, "subrequest_budget_exhausted")
    );
}

#[test]
fn the_last_failure_explains_an_exhausted_chain() {
    let t = table(json!({"chain": ["a", "b"]}), json!({}));
    let mut w = walk(&t, Needs::default());
    let mut meta = Meta::default();
    while let Some(c) = visit(&mut w, &mut meta) {
        assert!(w.may_start(&c, 0));
        let e = error(ErrorClass::TimeoutFirstToken, None);
        record(&mut meta, &c, &e);
        assert_eq!(w.on_failure(&c, false, e, 0), AfterFailure::Next);
    }
    let api = w.final_error(&meta, 0);
    assert_eq!(
        (api.status, api.code.as_str()),
        (504, "timeout_first_token")
    );
}

#[test]
fn only_the_requests_first_attempt_is_hedged_and_a_failed_hedge_is_not_visited_again() {
    let t = table(json!({"hedge": {"after_ms": 300}}), json!({}));
    let req = crate::api::parse_chat_request(
        br#"{"model":"r","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .expect("request");
    let mut w = walk(&t, Needs::default());
    let mut meta = Meta::default();
    let c = visit(&mut w, &mut meta).expect("a");
    assert!(w.may_start(&c, 0));
    assert!(
        w.hedge(&c, true, &req, &meta, None).is_none(),
        "never on a probe"
    );
    match w.hedge(&c, false, &req, &meta, None) {
        Some((after, hp)) => assert_eq!((after, hp.primary_step, hp.rest), (300, 0, vec![1, 2])),
        None => panic!("the first attempt is hedged"),
    }
    w.on_hedge_failed(1);
    let e = error(ErrorClass::ServerError, Some(500));
    record(&mut meta, &c, &e);
    assert!(matches!(
        w.on_failure(&c, false, e, 0),
        AfterFailure::RetryAt(_)
    ));
    assert!(w.may_start(&c, 500));
    assert!(
        w.hedge(&c, false, &req, &meta, None).is_none(),
        "a retry is not hedged"
    );
    assert_eq!(
        w.on_failure(&c, false, error(ErrorClass::ServerError, Some(500)), 600),
        AfterFailure::Next
    );
    assert_eq!(name(&visit(&mut w, &mut meta)).as_deref(), Some("c"));
}

#[test]
fn a_hedge_obeys_the_same_skip_rules_as_a_visit() {
    let t = table(json!({"hedge": {"after_ms": 300}}), json!({}));
    let req = crate::api::parse_chat_request(
        br#"{"model":"r","messages":[{"role":"user","content":"hi"}],
            "tools":[{"type":"function","function":{"name":"f","parameters":{}}}]}"#,
    )
    .expect("request");
    let mut w = walk(&t, req.needs());
    let mut meta = Meta::default();
    let c = visit(&mut w, &mut meta).expect("a");
    assert!(w.may_start(&c, 0));
    match w.hedge(&c, false, &req, &meta, None) {
        // c has no tools: never a hedge for a request that needs them.
        Some((_, hp)) => assert_eq!(hp.rest, vec![1]),
        None => panic!("the first attempt is hedged"),
    }
}

#[test]
fn a_p95_hedge_waits_for_the_measured_p95_within_its_floor_and_cap() {
    let t = table(
        json!({"hedge": {"after": "p95", "floor_ms": 100, "cap_ms": 2000}}),
        json!({}),
    );
    let req = crate::api::parse_chat_request(
        br#"{"model":"r","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .expect("request");
    for (measured, want) in [
        (None, 100),
        (Some(40), 100),
        (Some(700), 700),
        (Some(9000), 2000),
    ] {
        let mut w = walk(&t, Needs::default());
        let mut meta = Meta::default();
        let c = visit(&mut w, &mut meta).expect("a");
        assert!(w.may_start(&c, 0));
        match w.hedge(&c, false, &req, &meta, measured) {
            Some((after, _)) => assert_eq!(after, want, "{measured:?}"),
            None => panic!("the first attempt is hedged"),
        }
    }
    // A fixed delay ignores measurements.
    let fixed = table(json!({"hedge": {"after_ms": 300}}), json!({}));
    let mut w = walk(&fixed, Needs::default());
    let mut meta = Meta::default();
    let c = visit(&mut w, &mut meta).expect("a");
    assert!(w.may_start(&c, 0));
    assert_eq!(
        w.hedge(&c, false, &req, &meta, Some(900)).map(|h| h.0),
        Some(300)
    );
}
