//! The gate itself: an open breaker is a skip, the threshold, half-open probes (and a probe
//! held elsewhere), and how an outage is paced.

use super::*;

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

#[test]
fn a_probe_that_hangs_uses_at_most_half_the_time_left_and_the_request_falls_back() {
    let gw = Gw::new(table(
        json!({}),
        json!({}),
        json!({"request_timeout_ms": 10_000}),
    ));
    gw.script.on(A, vec![Step::Hang]);
    gw.script.on(B, vec![ok_json()]);
    gw.health.trip(gw.dep("a")); // open until T0 + 5 s
    gw.at(5000);
    let (_, meta) = gw.serve(false).ok();
    assert_eq!(
        meta.deployment.as_deref(),
        Some("b"),
        "the probe did not fail the request"
    );
    assert_eq!(meta.fallback_reasons(), "a:timeout_attempt");
    // The probe gave up after half of the 10 s the request had.
    assert_eq!(meta.attempts[0].duration_ms, 5000);
    assert_eq!(gw.health.probes("a"), vec![(false, true)]);
}
