use super::*;

/// 2024-02-29T00:00:00Z: a leap day, handy for calendar edges.
pub(super) const LEAP_DAY: u64 = 1_709_164_800_000;
pub(super) const MAR_1_2024: u64 = 1_709_251_200_000;
pub(super) const MIN: u64 = 60_000;
pub(super) const HOUR: u64 = 3_600_000;

pub(super) fn est(tokens: u64, cost_nanos: u64) -> Estimate {
    Estimate { tokens, cost_nanos }
}

pub(super) fn act(tokens: u64, cost_nanos: u64) -> Actual {
    Actual { tokens, cost_nanos }
}

pub(super) fn rpm(n: u32) -> Limits {
    Limits {
        rpm: Some(n),
        ..Limits::default()
    }
}

pub(super) fn tpm(n: u64) -> Limits {
    Limits {
        tpm: Some(n),
        ..Limits::default()
    }
}

pub(super) fn is_admitted(a: &Admission) -> bool {
    matches!(a, Admission::Admitted { .. })
}

pub(super) fn denial(a: &Admission) -> Option<(Denial, u64)> {
    match a {
        Admission::Denied {
            reason,
            retry_after_ms,
            ..
        } => Some((*reason, *retry_after_ms)),
        Admission::Admitted { .. } => None,
    }
}

pub(super) fn headroom(a: &Admission) -> Headroom {
    match a {
        Admission::Admitted { headroom } | Admission::Denied { headroom, .. } => *headroom,
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
