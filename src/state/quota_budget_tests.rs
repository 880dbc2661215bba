//! Budget tests of the quota: reservations against day and month budgets, and the UTC
//! calendar they roll over on.

use super::tests::*;
use super::*;

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
fn a_reservation_is_held_until_its_requests_deadline_even_past_the_ttl() {
    let limits = Limits {
        budget_day_nanos: Some(1_000),
        ..Limits::default()
    };
    let t0 = LEAP_DAY;
    let deadline = t0 + RESERVATION_TTL_MS + 30 * MIN;
    let mut q = Quota::default();
    assert!(is_admitted(&q.admit_until(
        "long",
        &limits,
        est(10, 800),
        t0,
        Some(deadline)
    )));
    // Past the TTL but before the deadline: still held, so a second request cannot spend it.
    let later = t0 + RESERVATION_TTL_MS + MIN;
    assert_eq!(q.spend(later).reserved_nanos, 800);
    assert!(!is_admitted(&q.admit(
        "other",
        &limits,
        est(10, 800),
        later
    )));
    // Its settle finds it, and the actual replaces the estimate.
    assert!(q.settle("long", act(10, 500), later + MIN));
    assert_eq!(q.spend(later + MIN).day_nanos, 500);
    // Without a deadline the TTL alone applies, as before.
    let mut q = Quota::default();
    assert!(is_admitted(&q.admit("short", &limits, est(10, 800), t0)));
    assert_eq!(q.spend(later).reserved_nanos, 0);
}
