//! Every breaker open (the first to reopen is probed early), kill switches and forced probes.

use super::*;

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
