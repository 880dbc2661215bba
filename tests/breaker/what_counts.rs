//! What counts toward opening (client errors never; only the configured classes), a disabled
//! breaker, and a 429's Retry-After setting the cooldown.

use super::*;

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
