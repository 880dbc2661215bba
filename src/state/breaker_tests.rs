use super::*;

fn cfg() -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: 3,
        failure_rate_bps: 5_000,
        min_requests: 10,
        window_ms: 10_000,
        cooldown_ms: 1_000,
        cooldown_max_ms: 8_000,
        half_open_probes: 1,
        probe_lease_ms: 5_000,
    }
}

fn fail() -> Report {
    Report {
        ok: false,
        probe: false,
        retry_after_ms: None,
        started_ms: None,
    }
}
fn ok() -> Report {
    Report {
        ok: true,
        probe: false,
        retry_after_ms: None,
        started_ms: None,
    }
}
fn probe(ok: bool) -> Report {
    Report {
        ok,
        probe: true,
        retry_after_ms: None,
        started_ms: None,
    }
}

#[test]
fn opens_after_consecutive_failures() {
    let c = cfg();
    let mut b = Breaker::default();
    b.record(&c, fail(), 0);
    b.record(&c, fail(), 1);
    assert_eq!(b.view(2), View::Closed);
    b.record(&c, fail(), 2);
    assert_eq!(b.view(2), View::Open { until_ms: 1_002 });
}

#[test]
fn a_success_resets_the_count() {
    let c = BreakerConfig {
        failure_rate_bps: 6_000,
        ..cfg()
    };
    let mut b = Breaker::default();
    for t in 0..10 {
        b.record(&c, fail(), t * 10);
        b.record(&c, fail(), t * 10 + 1);
        b.record(&c, ok(), t * 10 + 2);
        b.record(&c, ok(), t * 10 + 3);
        b.record(&c, ok(), t * 10 + 4);
    }
    // At most 50% failures at any moment, never 3 in a row: stays closed.
    assert_eq!(b.view(100), View::Closed);
}

#[test]
fn opens_on_failure_rate_once_the_window_has_enough() {
    let c = BreakerConfig {
        consecutive_failures: 0,
        ..cfg()
    };
    let mut b = Breaker::default();
    // Alternate: 50% failures. Below min_requests nothing happens.
    for t in 0..9 {
        b.record(&c, if t % 2 == 0 { ok() } else { fail() }, t);
    }
    assert_eq!(b.view(9), View::Closed);
    b.record(&c, fail(), 9);
    assert!(matches!(b.view(9), View::Open { .. }));
}

#[test]
fn old_failures_leave_the_window() {
    let c = BreakerConfig {
        consecutive_failures: 0,
        min_requests: 4,
        ..cfg()
    };
    let mut b = Breaker::default();
    b.record(&c, fail(), 0);
    b.record(&c, fail(), 1);
    b.record(&c, ok(), 2);
    // 20 s later the old failures are gone; 1 failure in 4 is 25%.
    for t in 0..3 {
        b.record(&c, ok(), 20_000 + t);
    }
    b.record(&c, fail(), 20_010);
    assert_eq!(b.view(20_010), View::Closed);
}

#[test]
fn half_open_admits_one_probe_and_success_closes() {
    let c = cfg();
    let mut b = Breaker::default();
    for t in 0..3 {
        b.record(&c, fail(), t);
    }
    assert!(!b.acquire_probe(&c, false, 500), "cooldown not over");
    assert_eq!(b.view(1_002), View::HalfOpen);
    assert!(b.acquire_probe(&c, false, 1_002));
    assert!(!b.acquire_probe(&c, false, 1_003), "one probe in flight");
    // A late success from a request admitted before the trip does not close it.
    b.record(&c, ok(), 1_004);
    assert_eq!(b.view(1_004), View::HalfOpen);
    b.record(&c, probe(true), 1_100);
    assert_eq!(b.view(1_100), View::Closed);
    assert_eq!(b.trips, 0);
}

#[test]
fn probe_failure_reopens_with_a_growing_capped_cooldown() {
    let c = cfg();
    let mut b = Breaker::default();
    for t in 0..3 {
        b.record(&c, fail(), t);
    }
    let mut now = 2;
    let mut cooldowns = Vec::new();
    for _ in 0..6 {
        let View::Open { until_ms } = b.view(now) else {
            panic!("expected open, got {:?}", b.view(now));
        };
        cooldowns.push(until_ms - now);
        now = until_ms;
        assert!(b.acquire_probe(&c, false, now));
        b.record(&c, probe(false), now);
    }
    assert_eq!(cooldowns, vec![1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
}

#[test]
fn retry_after_lengthens_the_cooldown_up_to_the_cap() {
    let c = cfg();
    let mut b = Breaker::default();
    b.record(&c, fail(), 0);
    b.record(&c, fail(), 0);
    b.record(
        &c,
        Report {
            ok: false,
            probe: false,
            retry_after_ms: Some(5_000),
            started_ms: None,
        },
        0,
    );
    assert_eq!(b.view(0), View::Open { until_ms: 5_000 });
    let mut b2 = Breaker::default();
    for _ in 0..2 {
        b2.record(&c, fail(), 0);
    }
    b2.record(
        &c,
        Report {
            ok: false,
            probe: false,
            retry_after_ms: Some(3_600_000),
            started_ms: None,
        },
        0,
    );
    assert_eq!(b2.view(0), View::Open { until_ms: 8_000 });
}

#[test]
fn a_lost_probe_frees_its_lease() {
    let c = cfg();
    let mut b = Breaker::default();
    for t in 0..3 {
        b.record(&c, fail(), t);
    }
    assert!(b.acquire_probe(&c, false, 2_000));
    assert!(!b.acquire_probe(&c, false, 6_999));
    assert!(b.acquire_probe(&c, false, 7_000), "lease of 5 s expired");
}

#[test]
fn force_grants_an_early_probe_but_never_through_the_kill_switch() {
    let c = cfg();
    let mut b = Breaker::default();
    for t in 0..3 {
        b.record(&c, fail(), t);
    }
    assert!(b.acquire_probe(&c, true, 10));
    assert!(
        !b.acquire_probe(&c, true, 11),
        "the forced probe is in flight"
    );
    b.force_open(20);
    assert_eq!(b.view(1_000_000), View::ForcedOpen);
    assert!(!b.acquire_probe(&c, true, 1_000_000));
    b.record(&c, probe(true), 1_000_001);
    assert_eq!(b.view(1_000_001), View::ForcedOpen);
    b.reset();
    assert_eq!(b.view(1_000_002), View::Closed);
}

#[test]
fn failures_while_open_change_nothing() {
    let c = cfg();
    let mut b = Breaker::default();
    for t in 0..3 {
        b.record(&c, fail(), t);
    }
    let before = b.clone();
    for t in 3..50 {
        b.record(&c, fail(), t);
    }
    assert_eq!(b, before);
}

#[test]
fn outage_at_one_request_per_second_sees_only_probes() {
    // 60 s outage, one request per second; every request asks for a probe when not closed.
    let c = BreakerConfig {
        cooldown_ms: 5_000,
        cooldown_max_ms: 20_000,
        ..cfg()
    };
    let mut b = Breaker::default();
    let mut attempts = 0;
    for s in 0..60u64 {
        let now = s * 1_000;
        let allowed = match b.view(now) {
            View::Closed => true,
            View::HalfOpen => b.acquire_probe(&c, false, now),
            _ => false,
        };
        if allowed {
            attempts += 1;
            let was_probe = b.view(now) != View::Closed;
            b.record(
                &c,
                Report {
                    ok: false,
                    probe: was_probe,
                    retry_after_ms: None,
                    started_ms: None,
                },
                now + 10,
            );
        }
    }
    // 3 to trip, then probes at +5 s, +10 s, +20 s, +20 s …
    assert!(attempts <= 3 + 5, "attempts = {attempts}");
    // Recovery: the next probe succeeds and the breaker closes within one cooldown.
    let mut now = 60_000;
    while !b.acquire_probe(&c, false, now) {
        now += 1_000;
    }
    assert!(now - 60_000 <= 20_000);
    b.record(&c, probe(true), now);
    assert_eq!(b.view(now), View::Closed);
}

#[test]
fn state_round_trips_through_json() {
    let c = cfg();
    let mut b = Breaker::default();
    for t in 0..3 {
        b.record(&c, fail(), t);
    }
    b.acquire_probe(&c, true, 5);
    let json = serde_json::to_string(&b).unwrap();
    let back: Breaker = serde_json::from_str(&json).unwrap();
    assert_eq!(back, b);
}

#[test]
fn a_failed_probe_s_cooldown_counts_from_when_it_started() {
    let c = BreakerConfig {
        cooldown_max_ms: 1_000,
        ..cfg()
    };
    let mut b = Breaker::default();
    for t in 0..3 {
        b.record(&c, fail(), t);
    }
    // Probe at 1 002 that takes 400 ms to fail: the next one may go at 2 002, not 2 402.
    assert!(b.acquire_probe(&c, false, 1_002));
    b.record(&c, probe(false), 1_402);
    assert_eq!(b.view(1_402), View::Open { until_ms: 2_002 });
    // One that took longer than the cooldown: half-open at once (it started > 1 s ago).
    assert!(b.acquire_probe(&c, false, 2_002));
    b.record(&c, probe(false), 3_500);
    assert_eq!(b.view(3_500), View::HalfOpen);
}

#[test]
fn forced_probes_and_expired_leases_start_a_round_at_most_once_per_cooldown() {
    let c = BreakerConfig {
        probe_lease_ms: 200,
        ..cfg()
    };
    let mut b = Breaker::default();
    for t in 0..3 {
        b.record(&c, fail(), t);
    }
    // Forced (the whole chain open): granted, the breaker never probed before.
    assert!(b.acquire_probe(&c, true, 10));
    b.record(&c, probe(false), 20);
    // Forced again within cooldown_ms (1 s) of that probe: refused, however often asked.
    for t in [30, 500, 1_009] {
        assert!(!b.acquire_probe(&c, true, t), "forced at {t}");
    }
    assert!(b.acquire_probe(&c, true, 1_010), "1 s after the last probe");
    // A lost lease (200 ms) frees its slot, but the next round waits for the cooldown.
    assert!(
        !b.acquire_probe(&c, false, 1_500),
        "lease expired, cooldown not over"
    );
    assert!(b.acquire_probe(&c, false, 2_010));
    b.reset();
    assert_eq!(b.probed_at_ms, None);
}

#[test]
fn the_defaults_probe_every_30_s_and_never_grow() {
    let c = BreakerConfig::default();
    assert_eq!(
        (c.cooldown_ms, c.cooldown_max_ms, c.half_open_probes),
        (30_000, 30_000, 1)
    );
    let mut b = Breaker::default();
    for _ in 0..5 {
        b.record(&c, fail(), 0);
    }
    let mut probes = Vec::new();
    let mut now = 0;
    while now < 3_600_000 {
        if b.acquire_probe(&c, now % 7 == 0, now) {
            probes.push(now);
            b.record(&c, probe(false), now + 250);
        }
        now += 1_000;
    }
    let gaps: Vec<u64> = probes.windows(2).map(|p| p[1] - p[0]).collect();
    assert!(gaps.iter().all(|&g| g == 30_000), "{gaps:?}");
    assert_eq!(probes.len(), 120, "one probe per 30 s over an hour");
}

fn fail_started(at: u64) -> Report {
    Report {
        started_ms: Some(at),
        ..fail()
    }
}

#[test]
fn a_trip_counts_its_cooldown_from_when_the_tripping_attempt_started() {
    let c = cfg();
    let mut b = Breaker::default();
    b.record(&c, fail_started(0), 100);
    b.record(&c, fail_started(100), 200);
    // The third failure hung for 700 ms: the deployment was failing since 300.
    b.record(&c, fail_started(300), 1_000);
    assert_eq!(b.view(1_000), View::Open { until_ms: 1_300 });
    // A start older than a cooldown: the cooldown is over, a probe may go at once (probe
    // rounds stay a cooldown apart).
    let mut b = Breaker::default();
    b.record(&c, fail(), 0);
    b.record(&c, fail(), 1);
    b.record(&c, fail_started(0), 5_000);
    assert_eq!(b.view(5_000), View::HalfOpen);
    assert!(b.acquire_probe(&c, false, 5_000));
    assert!(!b.acquire_probe(&c, false, 5_001));
}

#[test]
fn failures_of_attempts_started_before_a_probe_closed_it_do_not_count() {
    let c = cfg();
    let mut b = Breaker::default();
    for t in 0..3 {
        b.record(&c, fail_started(t), t);
    }
    assert!(b.acquire_probe(&c, false, 1_500));
    b.record(&c, probe(true), 1_600);
    assert_eq!(b.view(1_600), View::Closed);
    // Attempts sent during the outage (stale isolates) time out after the probe closed it.
    for t in 0..5 {
        b.record(&c, fail_started(900 + t), 1_700 + t);
    }
    assert_eq!(b.view(1_800), View::Closed, "stale failures re-tripped it");
    // Attempts started after the close count as before; so do reports without a start.
    b.record(&c, fail_started(1_650), 1_900);
    b.record(&c, fail(), 1_901);
    b.record(&c, fail_started(1_700), 1_902);
    assert!(matches!(b.view(1_902), View::Open { .. }));
}
