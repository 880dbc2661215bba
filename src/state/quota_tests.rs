use super::*;

/// 2024-02-29T00:00:00Z: a leap day, handy for calendar edges.
const LEAP_DAY: u64 = 1_709_164_800_000;
const MAR_1_2024: u64 = 1_709_251_200_000;
const MIN: u64 = 60_000;
const HOUR: u64 = 3_600_000;

fn est(tokens: u64, cost_nanos: u64) -> Estimate {
    Estimate { tokens, cost_nanos }
}

fn act(tokens: u64, cost_nanos: u64) -> Actual {
    Actual { tokens, cost_nanos }
}

fn rpm(n: u32) -> Limits {
    Limits {
        rpm: Some(n),
        ..Limits::default()
    }
}

fn tpm(n: u64) -> Limits {
    Limits {
        tpm: Some(n),
        ..Limits::default()
    }
}

fn is_admitted(a: &Admission) -> bool {
    matches!(a, Admission::Admitted { .. })
}

fn denial(a: &Admission) -> Option<(Denial, u64)> {
    match a {
        Admission::Denied {
            reason,
            retry_after_ms,
            ..
        } => Some((*reason, *retry_after_ms)),
        Admission::Admitted { .. } => None,
    }
}

fn headroom(a: &Admission) -> Headroom {
    match a {
        Admission::Admitted { headroom } | Admission::Denied { headroom, .. } => *headroom,
    }
}

/// xorshift64: deterministic pseudo-random sequence for the property tests.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[test]
fn rpm_same_instant_admits_exactly_the_limit() {
    let mut q = Quota::default();
    let results: Vec<Admission> = (0..20)
        .map(|i| q.admit(&format!("r{i}"), &rpm(5), est(10, 0), LEAP_DAY))
        .collect();
    assert_eq!(results.iter().filter(|a| is_admitted(a)).count(), 5);
    assert!(results.iter().take(5).all(is_admitted));
    // Admitted on a whole second: the bucket leaves the window exactly 60 s later.
    assert_eq!(denial(&results[5]), Some((Denial::Rpm, 60_000)));
    let h = headroom(&results[19]);
    assert_eq!(h.limit_requests, Some(5));
    assert_eq!(h.remaining_requests, Some(0));
    assert_eq!(h.reset_requests_ms, Some(60_000));
    assert_eq!(h.limit_tokens, None);
    assert_eq!(h.remaining_tokens, None);
    assert_eq!(q.spend(LEAP_DAY).reservations, 5);
}

#[test]
fn rpm_window_slides_and_retry_after_is_exact() {
    let mut q = Quota::default();
    let l = rpm(3);
    let t = LEAP_DAY + 400;
    for (i, dt) in [0u64, 10_000, 20_000].iter().enumerate() {
        assert!(is_admitted(&q.admit(
            &format!("a{i}"),
            &l,
            est(0, 0),
            t + dt
        )));
    }
    let now = t + 30_000;
    let (reason, retry) = denial(&q.admit("b", &l, est(0, 0), now)).unwrap();
    assert_eq!(reason, Denial::Rpm);
    // The first request's bucket (second LEAP_DAY/1000) leaves at LEAP_DAY + 60_000.
    assert_eq!(retry, LEAP_DAY + MIN - now);
    assert!(!is_admitted(&q.clone().admit(
        "b",
        &l,
        est(0, 0),
        now + retry - 1
    )));
    assert!(is_admitted(&q.admit("b", &l, est(0, 0), now + retry)));
}

#[test]
fn rpm_zero_denies_everything() {
    let mut q = Quota::default();
    let a = q.admit("x", &rpm(0), est(0, 0), LEAP_DAY + 123);
    assert_eq!(denial(&a), Some((Denial::Rpm, 60_000)));
}

#[test]
fn tpm_counts_reserved_tokens() {
    let mut q = Quota::default();
    let l = tpm(1000);
    assert!(is_admitted(&q.admit("a", &l, est(400, 0), LEAP_DAY)));
    assert!(is_admitted(&q.admit(
        "b",
        &l,
        est(400, 0),
        LEAP_DAY + 5_000
    )));
    let a = q.admit("c", &l, est(400, 0), LEAP_DAY + 10_000);
    assert_eq!(denial(&a), Some((Denial::Tpm, 50_000)));
    let h = headroom(&a);
    assert_eq!(h.remaining_tokens, Some(200));
    assert_eq!(h.reset_tokens_ms, Some(50_000));
    // A smaller request still fits.
    assert!(is_admitted(&q.admit(
        "d",
        &l,
        est(200, 0),
        LEAP_DAY + 10_000
    )));
}

#[test]
fn tpm_oversized_request_passes_only_on_an_empty_window() {
    let mut q = Quota::default();
    let l = tpm(1000);
    assert!(is_admitted(&q.admit("big", &l, est(5000, 0), LEAP_DAY)));
    let a = q.admit("small", &l, est(1, 0), LEAP_DAY + 1_000);
    assert_eq!(denial(&a), Some((Denial::Tpm, 59_000)));
    assert_eq!(headroom(&a).remaining_tokens, Some(0));
    // A second oversized one waits until the window is empty again.
    assert_eq!(
        denial(&q.admit("big2", &l, est(5000, 0), LEAP_DAY + 30_000)),
        Some((Denial::Tpm, 30_000))
    );
    assert!(is_admitted(&q.admit(
        "big2",
        &l,
        est(5000, 0),
        LEAP_DAY + MIN
    )));
}

#[test]
fn tpm_zero_admits_only_zero_token_requests() {
    let mut q = Quota::default();
    assert!(is_admitted(&q.admit("a", &tpm(0), est(0, 0), LEAP_DAY)));
    assert_eq!(
        denial(&q.admit("b", &tpm(0), est(1, 0), LEAP_DAY)),
        Some((Denial::Tpm, 60_000))
    );
}

#[test]
fn settle_replaces_reserved_tokens_in_their_bucket() {
    let mut q = Quota::default();
    let l = tpm(1000);
    assert!(is_admitted(&q.admit("a", &l, est(1000, 0), LEAP_DAY)));
    assert!(!is_admitted(&q.admit(
        "b",
        &l,
        est(800, 0),
        LEAP_DAY + 2_000
    )));
    assert!(q.settle("a", act(200, 0), LEAP_DAY + 3_000));
    assert_eq!(q.headroom(&l, LEAP_DAY + 3_000).remaining_tokens, Some(800));
    assert!(is_admitted(&q.admit(
        "b",
        &l,
        est(800, 0),
        LEAP_DAY + 3_000
    )));
    // Settled tokens still leave with the original bucket.
    assert_eq!(q.headroom(&l, LEAP_DAY + MIN).remaining_tokens, Some(200));
}

#[test]
fn settle_after_the_window_moved_on_leaves_the_current_window_alone() {
    let mut q = Quota::default();
    let l = tpm(1000);
    assert!(is_admitted(&q.admit("a", &l, est(100, 7), LEAP_DAY)));
    assert!(q.settle("a", act(900, 9), LEAP_DAY + 2 * MIN));
    assert_eq!(
        q.headroom(&l, LEAP_DAY + 2 * MIN).remaining_tokens,
        Some(1000)
    );
    assert_eq!(q.spend(LEAP_DAY + 2 * MIN).day_nanos, 9);
}

#[test]
fn settle_unknown_id_still_records_spend_and_tokens() {
    let mut q = Quota::default();
    let l = tpm(1000);
    assert!(!q.settle("ghost", act(300, 42), LEAP_DAY + 500));
    let s = q.spend(LEAP_DAY + 500);
    assert_eq!((s.day_nanos, s.month_nanos, s.reserved_nanos), (42, 42, 0));
    let h = q.headroom(&l, LEAP_DAY + 500);
    assert_eq!(h.remaining_tokens, Some(700));
    assert_eq!(h.reset_tokens_ms, Some(59_500));
    // Settling twice: the second one counts as unknown.
    assert!(is_admitted(&q.admit("a", &l, est(100, 10), LEAP_DAY + 600)));
    assert!(q.settle("a", act(100, 10), LEAP_DAY + 700));
    assert!(!q.settle("a", act(100, 10), LEAP_DAY + 700));
    assert_eq!(q.spend(LEAP_DAY + 700).day_nanos, 62);
}

#[test]
fn release_frees_tokens_and_budget_but_keeps_the_request() {
    let mut q = Quota::default();
    let l = Limits {
        rpm: Some(10),
        tpm: Some(1000),
        budget_day_nanos: Some(100),
        budget_month_nanos: None,
    };
    assert!(is_admitted(&q.admit("a", &l, est(600, 80), LEAP_DAY)));
    assert_eq!(q.spend(LEAP_DAY).reserved_nanos, 80);
    assert!(q.release("a", LEAP_DAY + 1));
    assert!(!q.release("a", LEAP_DAY + 1));
    let h = q.headroom(&l, LEAP_DAY + 1);
    assert_eq!(h.remaining_requests, Some(9));
    assert_eq!(h.remaining_tokens, Some(1000));
    assert_eq!(q.spend(LEAP_DAY + 1), Spend::default());
    assert!(is_admitted(&q.admit("b", &l, est(1000, 100), LEAP_DAY + 2)));
}

#[test]
fn admitting_the_same_id_twice_is_idempotent() {
    let mut q = Quota::default();
    let l = Limits {
        rpm: Some(1),
        tpm: Some(100),
        budget_day_nanos: Some(10),
        budget_month_nanos: Some(10),
    };
    let first = q.admit("a", &l, est(100, 10), LEAP_DAY);
    let again = q.admit("a", &l, est(100, 10), LEAP_DAY + 10);
    assert!(is_admitted(&first) && is_admitted(&again));
    assert_eq!(headroom(&again).remaining_requests, Some(0));
    assert_eq!(headroom(&again).remaining_tokens, Some(0));
    let s = q.spend(LEAP_DAY + 10);
    assert_eq!((s.reserved_nanos, s.reservations), (10, 1));
}

#[test]
fn a_denial_changes_nothing() {
    let mut q = Quota::default();
    let l = Limits {
        rpm: Some(2),
        tpm: Some(100),
        budget_day_nanos: Some(50),
        budget_month_nanos: Some(50),
    };
    assert!(is_admitted(&q.admit("a", &l, est(60, 30), LEAP_DAY)));
    let before = q.clone();
    for e in [est(50, 0), est(0, 30)] {
        assert!(!is_admitted(&q.admit("b", &l, e, LEAP_DAY)));
        assert_eq!(q, before);
    }
    assert!(is_admitted(&q.admit("b", &l, est(40, 20), LEAP_DAY)));
    assert!(!is_admitted(&q.admit("c", &l, est(0, 0), LEAP_DAY)));
}

#[test]
fn checks_report_the_first_failing_limit_in_order() {
    let mut q = Quota::default();
    let all = Limits {
        rpm: Some(1),
        tpm: Some(10),
        budget_day_nanos: Some(10),
        budget_month_nanos: Some(10),
    };
    assert!(is_admitted(&q.admit("a", &all, est(10, 10), LEAP_DAY)));
    let reason =
        |q: &mut Quota, l: Limits| denial(&q.admit("b", &l, est(1, 1), LEAP_DAY)).map(|d| d.0);
    assert_eq!(reason(&mut q, all), Some(Denial::Rpm));
    let no_rpm = Limits { rpm: None, ..all };
    assert_eq!(reason(&mut q, no_rpm), Some(Denial::Tpm));
    let budgets = Limits {
        tpm: None,
        ..no_rpm
    };
    assert_eq!(reason(&mut q, budgets), Some(Denial::BudgetDay));
    let month = Limits {
        budget_day_nanos: None,
        ..budgets
    };
    assert_eq!(reason(&mut q, month), Some(Denial::BudgetMonth));
}

#[test]
fn budget_covering_ten_estimates_admits_exactly_ten() {
    let mut q = Quota::default();
    let l = Limits {
        budget_day_nanos: Some(10 * 1_000),
        ..Limits::default()
    };
    let now = LEAP_DAY + HOUR;
    let results: Vec<Admission> = (0..50)
        .map(|i| q.admit(&format!("r{i}"), &l, est(0, 1_000), now))
        .collect();
    let admitted: Vec<usize> = (0..50).filter(|i| is_admitted(&results[*i])).collect();
    assert_eq!(admitted, (0..10).collect::<Vec<_>>());
    // Budget denials wait for the next UTC day.
    assert_eq!(
        denial(&results[10]),
        Some((Denial::BudgetDay, 86_400_000 - HOUR))
    );
    // Settling each at 400 frees 600 per request: 10 * 600 = 6000 → 6 more fit.
    for i in 0..10 {
        assert!(q.settle(&format!("r{i}"), act(0, 400), now + 1));
    }
    let more = (50..70)
        .filter(|i| is_admitted(&q.admit(&format!("r{i}"), &l, est(0, 1_000), now + 2)))
        .count();
    assert_eq!(more, 6);
    let s = q.spend(now + 2);
    assert_eq!((s.day_nanos, s.reserved_nanos), (4_000, 6_000));
}

#[test]
fn day_and_month_budgets_roll_over_at_utc_boundaries() {
    let mut q = Quota::default();
    let l = Limits {
        budget_day_nanos: Some(100),
        budget_month_nanos: Some(150),
        ..Limits::default()
    };
    let last_ms_of_feb = MAR_1_2024 - 1;
    let feb_28 = LEAP_DAY - HOUR;
    assert!(!q.settle("x", act(0, 90), feb_28));
    // New day (the leap day): day spend resets, month spend continues.
    let s = q.spend(LEAP_DAY);
    assert_eq!((s.day_nanos, s.month_nanos), (0, 90));
    let a = q.admit("a", &l, est(0, 70), last_ms_of_feb);
    assert_eq!(denial(&a), Some((Denial::BudgetMonth, 1)));
    assert!(is_admitted(&q.admit("a", &l, est(0, 60), last_ms_of_feb)));
    let a = q.admit("b", &l, est(0, 1), last_ms_of_feb);
    assert_eq!(denial(&a), Some((Denial::BudgetMonth, 1)));
    // March: both periods are new; the reservation still holds 60.
    assert!(q.settle("a", act(0, 60), MAR_1_2024));
    let s = q.spend(MAR_1_2024);
    assert_eq!((s.day_nanos, s.month_nanos, s.reserved_nanos), (60, 60, 0));
    assert!(is_admitted(&q.admit("b", &l, est(0, 40), MAR_1_2024)));
    // Ten minutes later: "b" is still reserved (TTL 15 min), the day budget is full.
    let a = q.admit("c", &l, est(0, 1), MAR_1_2024 + 10 * MIN);
    assert_eq!(denial(&a), Some((Denial::BudgetDay, 86_400_000 - 10 * MIN)));
}

#[test]
fn month_denial_waits_until_next_month_across_year_end() {
    let dec_31_2023: u64 = 1_703_980_800_000;
    let jan_1_2024: u64 = 1_704_067_200_000;
    let mut q = Quota::default();
    let l = Limits {
        budget_month_nanos: Some(0),
        ..Limits::default()
    };
    let a = q.admit("a", &l, est(0, 1), dec_31_2023 + 5);
    assert_eq!(
        denial(&a),
        Some((Denial::BudgetMonth, jan_1_2024 - dec_31_2023 - 5))
    );
    // A zero-cost request fits a zero budget.
    assert!(is_admitted(&q.admit("b", &l, est(0, 0), dec_31_2023)));
}

#[test]
fn reservations_expire_after_the_ttl() {
    let mut q = Quota::default();
    let l = Limits {
        budget_day_nanos: Some(100),
        ..Limits::default()
    };
    assert!(is_admitted(&q.admit("a", &l, est(0, 100), LEAP_DAY)));
    let late = LEAP_DAY + RESERVATION_TTL_MS;
    assert!(!is_admitted(&q.admit("b", &l, est(0, 1), late - 1)));
    // spend() already ignores it without mutation.
    assert_eq!(q.spend(late).reserved_nanos, 0);
    assert_eq!(q.spend(late - 1).reservations, 1);
    let mut expired = q.clone();
    expired.expire(late);
    assert_eq!(expired.spend(late - 1).reservations, 0);
    assert!(is_admitted(&q.admit("b", &l, est(0, 1), late)));
    // A settle arriving after expiry still records real spend.
    assert!(!q.settle("a", act(0, 30), late + 1));
    assert_eq!(q.spend(late + 1).day_nanos, 30);
}

#[test]
fn outstanding_reservations_are_bounded() {
    let mut q = Quota::default();
    let l = Limits::default();
    for i in 0..MAX_RESERVATIONS + 5 {
        let now = LEAP_DAY + u64::try_from(i).unwrap();
        assert!(is_admitted(&q.admit(&format!("r{i}"), &l, est(1, 1), now)));
    }
    let now = LEAP_DAY + 20_000;
    assert_eq!(q.spend(now).reservations as usize, MAX_RESERVATIONS);
    // The oldest were evicted; the newest are still there.
    assert!(!q.release("r0", now));
    assert!(!q.release("r4", now));
    assert!(q.release("r5", now));
    assert!(q.release(&format!("r{}", MAX_RESERVATIONS + 4), now));
}

#[test]
fn headroom_without_limits_is_empty_and_reset_tracks_oldest_bucket() {
    let mut q = Quota::default();
    assert_eq!(
        q.headroom(&Limits::default(), LEAP_DAY),
        Headroom::default()
    );
    let l = Limits {
        rpm: Some(10),
        tpm: Some(100),
        ..Limits::default()
    };
    let h = q.headroom(&l, LEAP_DAY);
    assert_eq!(h.reset_requests_ms, Some(0));
    assert_eq!(h.reset_tokens_ms, Some(0));
    assert!(is_admitted(&q.admit("a", &l, est(0, 0), LEAP_DAY + 250)));
    assert!(is_admitted(&q.admit(
        "b",
        &l,
        est(30, 0),
        LEAP_DAY + 20_000
    )));
    let h = q.headroom(&l, LEAP_DAY + 30_000);
    assert_eq!(h.remaining_requests, Some(8));
    assert_eq!(h.reset_requests_ms, Some(30_000));
    assert_eq!(h.remaining_tokens, Some(70));
    assert_eq!(h.reset_tokens_ms, Some(50_000));
}

#[test]
fn a_clock_going_back_neither_panics_nor_loses_spend() {
    let mut q = Quota::default();
    let l = Limits {
        rpm: Some(2),
        budget_day_nanos: Some(100),
        ..Limits::default()
    };
    assert!(is_admitted(&q.admit(
        "a",
        &l,
        est(0, 50),
        MAR_1_2024 + 5_000
    )));
    assert!(q.settle("a", act(0, 50), MAR_1_2024 + 5_000));
    assert!(is_admitted(&q.admit(
        "b",
        &l,
        est(0, 50),
        MAR_1_2024 - 10_000
    )));
    let a = q.admit("c", &l, est(0, 1), MAR_1_2024 - 10_000);
    let (reason, retry) = denial(&a).unwrap();
    assert_eq!(reason, Denial::Rpm);
    assert!((1..=60_000).contains(&retry));
    assert_eq!(q.spend(MAR_1_2024 - 10_000).day_nanos, 50);
}

#[test]
fn civil_dates_handle_leap_years_and_month_ends() {
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(LEAP_DAY / MS_PER_DAY), (2024, 2, 29));
    assert_eq!(
        civil_from_days((MAR_1_2024 - 1) / MS_PER_DAY),
        (2024, 2, 29)
    );
    assert_eq!(civil_from_days(MAR_1_2024 / MS_PER_DAY), (2024, 3, 1));
    assert_eq!(civil_from_days(11_016), (2000, 2, 29)); // divisible by 400: leap
    assert_eq!(civil_from_days(47_540), (2100, 2, 28)); // divisible by 100: not leap
    assert_eq!(civil_from_days(47_541), (2100, 3, 1));
    assert_eq!(civil_from_days(19_722), (2023, 12, 31));
    assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    for d in (0..200_000).step_by(7).chain(19_700..19_900) {
        let (y, m, day) = civil_from_days(d);
        assert_eq!(days_from_civil(y, m, day), d);
    }
    assert_eq!(month_of(MAR_1_2024 - 1), 2024 * 12 + 1);
    assert_eq!(month_of(MAR_1_2024), 2024 * 12 + 2);
    assert_eq!(next_month_start_ms(LEAP_DAY), MAR_1_2024);
    assert_eq!(next_month_start_ms(MAR_1_2024 - 1), MAR_1_2024);
    assert_eq!(next_month_start_ms(MAR_1_2024), 1_711_929_600_000); // 2024-04-01
    assert_eq!(next_month_start_ms(1_703_980_800_000), 1_704_067_200_000); // Dec → Jan
}

#[test]
fn json_round_trips_and_old_json_loads() {
    let mut q = Quota::default();
    let l = Limits {
        rpm: Some(5),
        ..Limits::default()
    };
    assert!(is_admitted(&q.admit("a", &l, est(10, 20), LEAP_DAY)));
    assert!(!q.settle("z", act(1, 2), LEAP_DAY));
    let s = serde_json::to_string(&q).unwrap();
    let back: Quota = serde_json::from_str(&s).unwrap();
    assert_eq!(back, q);
    assert_eq!(
        serde_json::from_str::<Quota>("{}").unwrap(),
        Quota::default()
    );
    assert_eq!(
        serde_json::to_string(&Quota::default()).unwrap(),
        r#"{"d":{"id":0,"nanos":0},"m":{"id":0,"nanos":0}}"#
    );
    assert_eq!(
        serde_json::from_str::<Limits>("{}").unwrap(),
        Limits::default()
    );
    let l: Limits = serde_json::from_str(r#"{"rpm":3}"#).unwrap();
    assert_eq!(l, rpm(3));
    let denied = Admission::Denied {
        reason: Denial::BudgetMonth,
        retry_after_ms: 7,
        headroom: Headroom::default(),
    };
    let v = serde_json::to_value(&denied).unwrap();
    assert_eq!(v["result"], "denied");
    assert_eq!(v["reason"], "budget_month");
    assert_eq!(v["retry_after_ms"], 7);
    let v = serde_json::to_value(Admission::Admitted {
        headroom: Headroom::default(),
    })
    .unwrap();
    assert_eq!(v["result"], "admitted");
}

#[test]
fn property_rpm_never_exceeded_and_retry_after_is_exact() {
    for seed in [1u64, 0x9E37_79B9, 0xDEAD_BEEF, 42] {
        let mut rng = XorShift(seed);
        let mut q = Quota::default();
        let l = rpm(7);
        let mut now = LEAP_DAY + rng.below(1000);
        let mut admitted_secs: Vec<u64> = Vec::new();
        for step in 0..3000 {
            now += rng.below(3000);
            let a = q.admit(&format!("s{step}"), &l, est(0, 0), now);
            if let Some((reason, retry)) = denial(&a) {
                assert_eq!(reason, Denial::Rpm);
                assert!(!is_admitted(&q.clone().admit(
                    "p",
                    &l,
                    est(0, 0),
                    now + retry - 1
                )));
                assert!(is_admitted(&q.clone().admit(
                    "p",
                    &l,
                    est(0, 0),
                    now + retry
                )));
            } else {
                admitted_secs.push(now / 1000);
                let sec = now / 1000;
                let in_window = admitted_secs.iter().filter(|s| **s + 60 > sec).count();
                assert!(in_window <= 7, "seed {seed} step {step}: {in_window}");
            }
        }
    }
}

/// Random admit/settle/release traffic against day and month budgets. After every step:
/// `spent + reserved <= budget + overshoot`, where `overshoot` sums `actual − estimate` of
/// settles since the last admission (the reservations that were in flight at that moment).
/// With `actual <= estimate`, spend never exceeds the budget.
fn budget_property(seed: u64, allow_overshoot: bool) {
    let mut rng = XorShift(seed);
    let l = Limits {
        budget_day_nanos: Some(20_000_000),
        budget_month_nanos: Some(30_000_000),
        ..Limits::default()
    };
    let (day_budget, month_budget) = (20_000_000u64, 30_000_000u64);
    let mut q = Quota::default();
    // Starts 40 minutes before midnight at the end of February, so both periods roll over.
    let mut now = MAR_1_2024 - 40 * MIN;
    let mut in_flight: Vec<(String, u64, u64)> = Vec::new(); // (id, cost, admitted at)
    let (mut overshoot, mut admitted, mut denied, mut late) = (0u64, 0u32, 0u32, 0u32);
    for step in 0..6000 {
        now += rng.below(1000);
        match rng.below(10) {
            0..=4 => {
                let cost = 1 + rng.below(200_000);
                let id = format!("s{step}");
                match q.admit(&id, &l, est(rng.below(500), cost), now) {
                    Admission::Admitted { .. } => {
                        in_flight.push((id, cost, now));
                        overshoot = 0;
                        admitted += 1;
                    }
                    Admission::Denied { reason, .. } => {
                        assert!(matches!(reason, Denial::BudgetDay | Denial::BudgetMonth));
                        denied += 1;
                    }
                }
            }
            op if !in_flight.is_empty() => {
                let i = usize::try_from(rng.below(in_flight.len() as u64)).unwrap();
                let (id, cost, at) = in_flight.swap_remove(i);
                if op == 9 {
                    assert_eq!(q.release(&id, now), now < at + RESERVATION_TTL_MS);
                    continue;
                }
                let actual = if allow_overshoot {
                    rng.below(2 * cost + 1)
                } else {
                    rng.below(cost + 1)
                };
                let known = q.settle(&id, act(0, actual), now);
                assert_eq!(known, now < at + RESERVATION_TTL_MS);
                // An expired reservation's late spend is all overshoot.
                overshoot += if known {
                    actual.saturating_sub(cost)
                } else {
                    actual
                };
                late += u32::from(!known);
            }
            _ => {}
        }
        let s = q.spend(now);
        assert!(
            s.day_nanos + s.reserved_nanos <= day_budget + overshoot,
            "seed {seed} step {step}"
        );
        assert!(
            s.month_nanos + s.reserved_nanos <= month_budget + overshoot,
            "seed {seed} step {step}"
        );
        if !allow_overshoot && late == 0 {
            assert!(s.day_nanos <= day_budget && s.month_nanos <= month_budget);
        }
    }
    assert!(
        admitted > 100 && denied > 100,
        "{admitted} admitted, {denied} denied"
    );
}

#[test]
fn property_budget_never_exceeded_when_actual_within_estimate() {
    for seed in [7u64, 0x1234_5678, 0xCAFE_F00D] {
        budget_property(seed, false);
    }
}

#[test]
fn property_budget_overshoot_bounded_by_in_flight_excess() {
    for seed in [11u64, 0x0BAD_5EED, 0xFEED_FACE] {
        budget_property(seed, true);
    }
}
