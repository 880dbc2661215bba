//! Failures after the commit, resume and the breaker, and isolates with stale snapshots.

use super::*;

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
