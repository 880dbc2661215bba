//! Degradation verdicts: cold deployments, latency and TTFT creep, error and timeout drift,
//! hysteresis, and a baseline that a long degradation does not overwrite.

use super::*;

const MIN: u64 = 60_000;

fn cfg() -> DegradeConfig {
    DegradeConfig::default()
}

fn answer(latency_ms: u64) -> Sample {
    Sample {
        ok: true,
        latency_ms,
        ..Sample::default()
    }
}

fn streamed(ttft_ms: u64) -> Sample {
    Sample {
        ok: true,
        latency_ms: ttft_ms * 10,
        ttft_ms: Some(ttft_ms),
        ..Sample::default()
    }
}

fn failed(timeout: bool, client_fault: bool) -> Sample {
    Sample {
        ok: false,
        latency_ms: 100,
        timeout,
        client_fault,
        ..Sample::default()
    }
}

/// `n` samples spread evenly over [from, to).
fn feed(d: &mut Degradation, n: u64, from: u64, to: u64, sample: impl Fn(u64) -> Sample) {
    for i in 0..n {
        d.record(&cfg(), &sample(i), from + (to - from) * i / n);
    }
}

/// Healthy 200 ms answers from t = 0 to 55 min (so a recent window from 60 min on holds
/// none of them).
fn well() -> Degradation {
    let mut d = Degradation::default();
    feed(&mut d, 120, 0, 55 * MIN, |_| answer(200));
    assert_eq!(d.update(&cfg(), 55 * MIN), None);
    d
}

#[test]
fn buckets_are_monotonic_and_within_a_quarter() {
    let mut last = 0;
    for ms in 0..100_000u64 {
        let b = bucket(ms);
        assert!(b >= last);
        last = b;
        let floor = bucket_floor(b);
        assert!(floor <= ms && ms < floor + floor / 4 + 2, "{ms} -> {floor}");
    }
}

#[test]
fn a_cold_deployment_is_never_degraded() {
    let mut d = Degradation::default();
    // Slow and failing, but with no baseline at all.
    feed(&mut d, 40, 0, 4 * MIN, |i| {
        if i % 2 == 0 {
            answer(9_000)
        } else {
            failed(true, false)
        }
    });
    assert_eq!(d.update(&cfg(), 4 * MIN), None);
    // A baseline, but too few recent samples to judge.
    let mut d = well();
    feed(&mut d, 19, 60 * MIN, 62 * MIN, |_| answer(5_000));
    assert_eq!(d.update(&cfg(), 62 * MIN), None);
}

#[test]
fn latency_creeping_past_twice_the_baseline_p95_degrades() {
    let mut d = well();
    // 350 ms is under twice 200: not degraded.
    feed(&mut d, 40, 60 * MIN, 63 * MIN, |_| answer(350));
    assert_eq!(d.update(&cfg(), 63 * MIN), None);
    let mut d = well();
    feed(&mut d, 40, 60 * MIN, 63 * MIN, |_| answer(1_000));
    assert_eq!(d.update(&cfg(), 63 * MIN), Some(Reason::Latency));
    assert_eq!(Reason::Latency.as_str(), "degraded_latency");
}

#[test]
fn time_to_first_token_is_judged_apart_from_whole_answers() {
    let mut d = Degradation::default();
    feed(&mut d, 120, 0, 60 * MIN, |_| streamed(300));
    feed(&mut d, 30, 60 * MIN, 62 * MIN, |_| streamed(2_000));
    assert_eq!(d.update(&cfg(), 62 * MIN), Some(Reason::Ttft));
}

#[test]
fn error_and_timeout_rates_past_their_thresholds_degrade() {
    // 3 errors in 100: over 2 %.
    let mut d = well();
    feed(&mut d, 100, 60 * MIN, 64 * MIN, |i| {
        if i % 33 == 0 {
            failed(false, false)
        } else {
            answer(200)
        }
    });
    assert_eq!(d.update(&cfg(), 64 * MIN), Some(Reason::Errors));
    // 1 error in 100: under.
    let mut d = well();
    feed(&mut d, 100, 60 * MIN, 64 * MIN, |i| {
        if i == 50 {
            failed(false, false)
        } else {
            answer(200)
        }
    });
    assert_eq!(d.update(&cfg(), 64 * MIN), None);
    // 2 timeouts in 100: over 1 %.
    let mut d = well();
    feed(&mut d, 100, 60 * MIN, 64 * MIN, |i| {
        if i % 50 == 0 {
            failed(true, false)
        } else {
            answer(200)
        }
    });
    assert_eq!(d.update(&cfg(), 64 * MIN), Some(Reason::Timeouts));
}

#[test]
fn client_faults_are_not_counted() {
    let mut d = well();
    feed(&mut d, 100, 60 * MIN, 64 * MIN, |i| {
        if i % 2 == 0 {
            failed(false, true)
        } else {
            answer(200)
        }
    });
    assert_eq!(d.update(&cfg(), 64 * MIN), None);
    assert_eq!(d.figures(&cfg(), 64 * MIN).0.requests, 50);
}

#[test]
fn it_recovers_only_past_half_way_and_after_a_hold() {
    let mut d = well();
    feed(&mut d, 40, 60 * MIN, 62 * MIN, |_| answer(1_000));
    assert_eq!(d.update(&cfg(), 62 * MIN), Some(Reason::Latency));
    // Healthy again at once, but within the hold (one recent window): still degraded.
    feed(&mut d, 40, 62 * MIN, 66 * MIN, |_| answer(200));
    assert_eq!(d.update(&cfg(), 66 * MIN), Some(Reason::Latency));
    // Past the hold at 340 ms (170 % of the baseline): between the thresholds, it stays.
    let mut slow = d.clone();
    feed(&mut slow, 40, 67 * MIN, 71 * MIN, |_| answer(340));
    assert_eq!(slow.update(&cfg(), 72 * MIN), Some(Reason::Latency));
    // Past the hold and back to 200 ms over a whole recent window: restored.
    feed(&mut d, 40, 67 * MIN, 71 * MIN, |_| answer(200));
    assert_eq!(d.update(&cfg(), 72 * MIN), None);
}

#[test]
fn with_no_samples_after_the_hold_it_is_cold_again() {
    let mut d = well();
    feed(&mut d, 40, 60 * MIN, 62 * MIN, |_| answer(1_000));
    assert_eq!(d.update(&cfg(), 62 * MIN), Some(Reason::Latency));
    assert_eq!(d.update(&cfg(), 70 * MIN), None);
}

#[test]
fn a_long_degradation_does_not_become_the_baseline() {
    let mut d = well();
    feed(&mut d, 40, 60 * MIN, 62 * MIN, |_| answer(1_000));
    assert_eq!(d.update(&cfg(), 62 * MIN), Some(Reason::Latency));
    // Three more hours at 1 s, judged every minute.
    for m in 62..240 {
        feed(&mut d, 12, m * MIN, (m + 1) * MIN, |_| answer(1_000));
        assert_eq!(
            d.update(&cfg(), (m + 1) * MIN),
            Some(Reason::Latency),
            "{m}"
        );
    }
    let (_, base) = d.figures(&cfg(), 240 * MIN);
    assert_eq!(base.latency_p95_ms(), Some(bucket_floor(bucket(200))));
    // The state stays bounded: the recent window's slots and an hour of well ones.
    assert!(d.slots.len() <= 6 + 60, "{}", d.slots.len());
}

#[test]
fn switched_off_it_never_judges() {
    let off = DegradeConfig::off();
    let mut d = well();
    feed(&mut d, 40, 60 * MIN, 62 * MIN, |_| answer(1_000));
    assert_eq!(d.update(&off, 62 * MIN), None);
}

#[test]
fn the_stored_state_reads_back_the_same() {
    let mut d = well();
    feed(&mut d, 40, 60 * MIN, 62 * MIN, |_| answer(1_000));
    d.update(&cfg(), 62 * MIN);
    let text = serde_json::to_string(&d).unwrap();
    let back: Degradation = serde_json::from_str(&text).unwrap();
    assert_eq!(back, d);
    assert!(text.len() < 8_000, "{}", text.len());
}

#[test]
fn the_hedge_p95_comes_from_the_recent_window_else_the_baseline() {
    let mut d = Degradation::default();
    assert_eq!(d.hedge_p95_ms(&cfg(), true, 0), None);
    feed(&mut d, 60, 0, 55 * MIN, |_| streamed(300));
    assert_eq!(
        d.hedge_p95_ms(&cfg(), true, 55 * MIN),
        Some(bucket_ceiling(bucket(300)))
    );
    // Too few recent samples (the last five minutes hold some): still the baseline's.
    feed(&mut d, 25, 60 * MIN, 62 * MIN, |_| streamed(1_200));
    assert_eq!(
        d.hedge_p95_ms(&cfg(), true, 62 * MIN),
        Some(bucket_ceiling(bucket(1_200)))
    );
}

#[test]
fn the_hedge_waits_no_less_than_the_first_token_of_a_steady_deployment() {
    let mut d = Degradation::default();
    feed(&mut d, 30, 0, MIN, |_| streamed(700));
    let p95 = d.hedge_p95_ms(&cfg(), true, MIN).unwrap();
    assert!((700..=875).contains(&p95), "{p95}");
}

#[test]
fn a_deployment_its_hedge_always_beats_is_measured_by_when_it_was_cancelled() {
    let mut d = Degradation::default();
    let c = cfg();
    // Cancelled by a hedge that answered 150 ms after the hedge started, the hedge starting
    // at the p95 (or at a 100 ms floor while there is none): the p95 climbs.
    let mut hedge_at = 100;
    let mut seen = Vec::new();
    for i in 0..200 {
        let now = i * 1_000;
        d.record_hedge_wait(&c, wait(true, hedge_at + 150), now);
        hedge_at = d.hedge_p95_ms(&c, true, now).unwrap_or(100);
        seen.push(hedge_at);
        if hedge_at >= 700 {
            break;
        }
    }
    assert!(
        *seen.last().unwrap() >= 700,
        "the hedge delay reaches a first token at 700 ms: {seen:?}"
    );
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
}

#[test]
fn a_lower_bound_below_the_p95_is_not_counted() {
    let mut d = Degradation::default();
    let c = cfg();
    feed(&mut d, 30, 0, MIN, |_| streamed(1_000));
    let before = d.hedge_p95_ms(&c, true, MIN);
    for _ in 0..100 {
        d.record_hedge_wait(&c, wait(true, 200), MIN);
    }
    assert_eq!(
        d.hedge_p95_ms(&c, true, MIN),
        before,
        "a hedge cancelled early says little"
    );
    let off = DegradeConfig {
        enabled: false,
        ..c
    };
    let mut cold = Degradation::default();
    cold.record_hedge_wait(&off, wait(true, 500), 0);
    assert_eq!(cold, Degradation::default());
}

fn wait(stream: bool, waited_ms: u64) -> HedgeWait {
    HedgeWait { stream, waited_ms }
}

#[test]
fn a_non_streamed_request_hedges_on_the_whole_answers_p95() {
    let mut d = Degradation::default();
    let c = cfg();
    // First tokens at 200 ms, whole answers at 2 s.
    let mixed = |i: u64| {
        if i.is_multiple_of(2) {
            streamed(200)
        } else {
            answer(2_000)
        }
    };
    feed(&mut d, 60, 0, 2 * MIN, mixed);
    let stream = d.hedge_p95_ms(&c, true, 2 * MIN).unwrap();
    let whole = d.hedge_p95_ms(&c, false, 2 * MIN).unwrap();
    assert!((200..=250).contains(&stream), "{stream}");
    assert!((2_000..=2_500).contains(&whole), "{whole}");
    // A whole answer cancelled by its hedge is a latency lower bound, not a TTFT one.
    let mut e = Degradation::default();
    e.record_hedge_wait(&c, wait(false, 900), 0);
    let f = e.figures(&c, 0).0;
    assert_eq!(f.ttft_p95_ms(), None);
    assert_eq!(f.latency_p95_ms(), Some(bucket_floor(bucket(900))));
}
